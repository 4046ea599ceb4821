"""Text views of a running lab for ``lab up`` and ``lab status``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tabulate import tabulate

from probe.lab import control, netns
from probe.lab.control import LabInfo
from probe.lab.state import PairTable, load
from probe.lab.topology import MESH, LabHost, Topology, load_topology, ports_text
from probe.lab.truth import PairTruth, expectations


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, USER_HZ=100


def render_status(info: LabInfo, *, links: bool = True) -> str:
    topo = load_topology(info.topology)
    rows = []
    for h in topo.hosts:
        pids = netns.netns_pids(info.netns(h.name))
        rows.append(
            [
                h.name,
                h.region,
                h.zone or "",
                _addresses(topo, h),
                info.netns(h.name),
                "jump" if h.name == topo.jump else ("yes" if h.measure else "no"),
                " → ".join(topo.chain(h.name)) or "(controller)",
                "up" if pids else "DOWN",
                host_traits(h),
            ]
        )
    out = [f"lab {info.name} ({info.topology})"]
    header = ["host", "region", "zone", "address", "netns", "measured", "ssh via", "sshd", "unlike"]
    out.append(tabulate(rows, header))
    pid = control.emulator_pid(info)
    cpu = _cpu_s(pid) if pid else None
    out.append(
        f"emulator: pid {pid}, cpu {cpu:.2f}s" if cpu is not None else "emulator: NOT RUNNING"
    )
    out.append(f"inventory:  {info.paths.inventory}")
    out.append(f"truth:      {info.paths.truth}")
    out.append(f"ssh_config: {info.paths.ssh_config}  (try: ssh -F THAT_FILE {topo.hosts[1].name})")
    if links:
        live = replace(topo, links=load(info.paths.pairs, PairTable).pairs)  # `lab link` included
        names = [h.name for h in topo.hosts]
        grid = [[a, *(_grid_cell(live, a, b) for b in names)] for a in names]
        out.append(LINK_LEGEND)
        out.append(tabulate(grid, ["src \\ dst", *names], disable_numparse=True))
    return "\n".join(out)


def host_traits(h: LabHost) -> str:
    """What sets the host apart (``lab status``'s "unlike" column): its login when not root,
    ICMP withheld from it, busybox tools, its congestion control, the TCP ports it drops."""
    traits = [f"login {h.user}"] if h.user else []
    traits += [] if h.unprivileged_icmp else ["no icmp"]
    traits += ["busybox"] if h.tools == "busybox" else []
    traits += [f"cc {h.cc}"] if h.cc else []
    traits += [f"drops tcp {ports_text(h.drop_tcp)}"] if h.drop_tcp else []
    return ", ".join(traits)


LINK_LEGEND = (
    "links now (pairs.json), over the first network both share: RTT ms ±jitter (RTT std, ms) / "
    "row→col Mbit/s (0 = unlimited), round-trip loss; n/m: not measurable (both behind NAT, or "
    "no network in common)"
)


def _addresses(topo: Topology, h: LabHost) -> str:
    if h.nat is not None:
        return f"{h.address} (NAT via {h.nat})"
    if [n.name for n in topo.networks] == [MESH]:
        return h.address
    return " ".join(f"{net}={address}" for net, address in h.addresses)


def _grid_cell(topo: Topology, a: str, b: str) -> str:
    if a == b:
        return "—"
    first = expectations(topo, a, b)[0]
    return link_cell(first) if isinstance(first, PairTruth) else "n/m"


def link_cell(t: PairTruth) -> str:
    """One pair, compact: ``240±2.8/20 2%``; the jitter and the loss only when there is some."""
    jitter = f"±{t.rtt_std_ms:.2g}" if t.rtt_std_ms > 0 else ""
    loss = f" {t.loss_pct:.3g}%" if t.loss_pct > 0 else ""
    return f"{t.rtt_ms:g}{jitter}/{t.rate_fwd_bps / 1e6:g}{loss}"
