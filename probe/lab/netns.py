"""Network namespaces, the controller link and the guard route, and the sweep that removes them.

Everything the lab creates in the kernel carries the lab prefix, so the sweep finds it by name and
does not depend on a state file that a crash may never have written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from probe.errors import LabError

GUARD = "198.18.0.0/15"  # the whole benchmarking range: never leaves this machine
NETNS_SYSCTLS = (
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
    "net.ipv4.ping_group_range=0 2147483647",
)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip``; a failure becomes a LabError that names the command and its message."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def list_netns(prefix: str) -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def list_links(prefix: str) -> list[str]:
    out = ip("-o", "link", "show", check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n.startswith(prefix)]


def create_netns(name: str) -> None:
    """A namespace with loopback up and IPv6 off (the emulator forwards IPv4 only), where
    unprivileged ICMP is allowed as on most cloud images."""
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")
    subprocess.run(  # one process for all three: each `ip netns exec` costs ~17 ms
        ["ip", "netns", "exec", name, "sysctl", "-q", "-w", *NETNS_SYSCTLS],
        capture_output=True,
        check=False,
    )


def create_controller_link(link: str, netns: str, ctl_addr: str, jump_addr: str) -> None:
    """veth ``link`` (root) <-> ``ctl0`` (jump host): the only way into the lab."""
    ip("link", "add", link, "type", "veth", "peer", "name", "ctl0", "netns", netns)
    ip("addr", "add", f"{ctl_addr}/30", "dev", link)
    ip("link", "set", link, "up")
    ip("-n", netns, "addr", "add", f"{jump_addr}/30", "dev", "ctl0")
    ip("-n", netns, "link", "set", "ctl0", "up")


#: A NAT gateway's rules: out of tun0 the LAN hosts take the gateway's address on the network
#: of the destination (masquerade picks the tun0 address whose subnet holds it); into the LANs,
#: only replies: nothing connects to a host behind NAT.
NAT_RULESET = """table ip probe_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "tun0" masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "n-*" oifname "tun0" accept
    iifname "tun0" ct state established,related accept
  }
}
"""


def lan_link(host: str) -> str:
    """The gateway's side of the veth to ``host`` (``n-`` + a host name fits IFNAMSIZ)."""
    return f"n-{host}"


def create_nat_lan(gateway_ns: str, host_ns: str, host: str, lan: tuple[str, str]) -> None:
    """A veth between the gateway and the host behind it, made inside the two namespaces (so
    it goes with them), the host's default route through the gateway: ``lan`` is (the host's,
    the gateway's) address on their /30."""
    host_addr, gateway_addr = lan
    gateway_if = lan_link(host)
    ip("-n", gateway_ns, "link", "add", gateway_if, "type", "veth", "peer", "name", "eth0",
       "netns", host_ns)  # fmt: skip
    ip("-n", gateway_ns, "addr", "add", f"{gateway_addr}/30", "dev", gateway_if)
    ip("-n", gateway_ns, "link", "set", gateway_if, "up")
    ip("-n", host_ns, "addr", "add", f"{host_addr}/30", "dev", "eth0")
    ip("-n", host_ns, "link", "set", "eth0", "up")
    ip("-n", host_ns, "route", "add", "default", "via", gateway_addr)


def start_nat(gateway_ns: str) -> None:
    """Forwarding on and the masquerade rules in the gateway's namespace."""
    for argv in (
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ["nft", "-f", "-"],
    ):
        proc = subprocess.run(
            ["ip", "netns", "exec", gateway_ns, *argv],
            input=NAT_RULESET if argv[0] == "nft" else None,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(f"{' '.join(argv)} in {gateway_ns}: {proc.stderr.strip()}")


def add_guard_route() -> bool:
    """Install ``unreachable 198.18.0.0/15`` unless present; True when we added it."""
    if GUARD in ip("route", "show", "type", "unreachable", check=False).stdout:
        return False
    ip("route", "add", "unreachable", GUARD)
    return True


def remove_guard_route() -> None:
    ip("route", "del", "unreachable", GUARD, check=False)


def netns_pids(name: str) -> list[int]:
    out = ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def in_netns(pid: int, name: str) -> bool:
    """``pid`` runs in the network namespace ``name`` (a dead PID or a reused number does not)."""
    try:
        ns, own = Path(f"/run/netns/{name}").stat(), Path(f"/proc/{pid}/ns/net").stat()
    except OSError:
        return False
    return (ns.st_dev, ns.st_ino) == (own.st_dev, own.st_ino)


def kill_pids(pids: list[int], grace_s: float = 1.0) -> None:
    """TERM, wait up to ``grace_s``, then KILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.02)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def alive(pid: int) -> bool:
    """Running and not a zombie (a zombie's parent will reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_with_marker(marker: str, spared: set[int] | None = None) -> list[int]:
    """PIDs whose command line mentions ``marker`` (the lab's state directory), except this
    process and its ancestors: the shell of ``make demo`` names the lab's inventory in its own
    command line, and ``lab up`` (which first sweeps the lab it replaces) once killed it."""
    spared = spared if spared is not None else self_and_ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def self_and_ancestors() -> set[int]:
    pids: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def sweep(prefix: str, state_marker: str) -> list[str]:
    """Remove every lab object with ``prefix`` or ``state_marker``; returns what it removed."""
    removed: list[str] = []
    spared = self_and_ancestors()
    leftovers = processes_with_marker(state_marker, spared)
    if leftovers:
        kill_pids(leftovers)
        removed.append(f"{len(leftovers)} process(es)")
    for ns in list_netns(prefix):
        pids = [p for p in netns_pids(ns) if p not in spared]
        if pids:
            kill_pids(pids, grace_s=0.5)
            removed.append(f"{len(pids)} process(es) in {ns}")
        ip("netns", "del", ns, check=False)
        removed.append(f"netns {ns}")
    for link in list_links(prefix):
        ip("link", "del", link, check=False)
        removed.append(f"link {link}")
    return removed
