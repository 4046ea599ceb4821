"""What ``lab up`` writes into the state directory: keys, sshd and client configs, the probe
inventory of the fleet and ``truth.json``.

The state directory is root-owned, mode 0700 and outside /tmp, so sshd keeps ``StrictModes yes``
(/tmp's mode 1777 made it refuse the authorized_keys file in the prototype).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import yaml

from probe.errors import LabError
from probe.lab.topology import Topology, truth_table


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader (the emulator on SIGHUP, a test reading truth.json)
    sees the old file or the new one, never a truncated one. ``write_text`` truncates first, and
    an emulator that re-read a torn pair table once took the whole lab down."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class LabPaths:
    """Every file of one lab, derived from its state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = root / "keys"
        self.client_key = self.keys / "id_ed25519"
        self.authorized_keys = self.keys / "authorized_keys"
        self.known_hosts = root / "known_hosts"
        self.ssh_config = root / "ssh_config"
        self.inventory = root / "inventory.yaml"
        self.truth = root / "truth.json"
        self.state = root / "state.json"
        self.emulator_config = root / "emulator.json"
        self.pairs = root / "pairs.json"
        self.emulator_ready = root / "emulator.ready"
        self.stats = root / "emulator-stats.json"
        self.ready = root / "lab.ready"
        self.logs = root / "logs"

    def host_key(self, host: str) -> Path:
        return self.keys / f"host_{host}"

    def sshd_config(self, host: str) -> Path:
        return self.root / f"sshd_{host}.conf"

    def sshd_log(self, host: str) -> Path:
        return self.logs / f"sshd_{host}.log"


def keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair; returns the public key line."""
    proc = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(f"ssh-keygen failed: {proc.stderr.strip()}")
    return path.with_suffix(".pub").read_text().strip()


def ssh_host_of(topo: Topology, host: str) -> str:
    """The address the controller's SSH client dials for ``host`` (through the jump host)."""
    return topo.controller_addresses[1] if host == topo.jump else topo.host(host).address


def known_hosts_name(topo: Topology, host: str) -> str:
    addr = ssh_host_of(topo, host)
    return addr if topo.ssh_port == 22 else f"[{addr}]:{topo.ssh_port}"


def write_keys_and_configs(topo: Topology, paths: LabPaths) -> None:
    paths.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.logs.mkdir(mode=0o700, exist_ok=True)
    client_pub = keygen(paths.client_key, f"probe-lab-{topo.name}")
    paths.authorized_keys.write_text(client_pub + "\n")
    paths.authorized_keys.chmod(0o600)
    known: list[str] = []
    for h in topo.hosts:
        pub = keygen(paths.host_key(h.name), f"{h.name}@{topo.name}")
        key_type, key_b64 = pub.split()[:2]
        known.append(f"{known_hosts_name(topo, h.name)} {key_type} {key_b64}")
        paths.sshd_config(h.name).write_text(sshd_config(topo, paths, h.name))
    paths.known_hosts.write_text("\n".join(known) + "\n")
    paths.ssh_config.write_text(openssh_client_config(topo, paths))


def sshd_config(topo: Topology, paths: LabPaths, host: str) -> str:
    """Key-only root login; MaxStartups raised because every ProxyJump login comes from the one
    jump-host address (the default 10:30:100 dropped 9 of 40 concurrent logins)."""
    return "\n".join(
        [
            f"Port {topo.ssh_port}",
            "ListenAddress 0.0.0.0",
            "AddressFamily inet",
            f"HostKey {paths.host_key(host)}",
            "PidFile none",
            f"AuthorizedKeysFile {paths.authorized_keys}",
            "StrictModes yes",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "UseDNS no",
            "GSSAPIAuthentication no",
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            "AllowTcpForwarding yes",
            "PermitTunnel no",
            "X11Forwarding no",
            "PrintMotd no",
            "LogLevel INFO",
            "",
        ]
    )


def openssh_client_config(topo: Topology, paths: LabPaths) -> str:
    lines = [
        "# Generated by probe lab: use with ssh -F THIS_FILE HOST",
        "Host *",
        "  User root",
        f"  Port {topo.ssh_port}",
        f"  IdentityFile {paths.client_key}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {paths.known_hosts}",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 10",
    ]
    for h in topo.hosts:
        lines += [f"Host {h.name}", f"  HostName {ssh_host_of(topo, h.name)}"]
        if h.name != topo.jump:
            lines.append(f"  ProxyJump {topo.jump}")
    return "\n".join(lines) + "\n"


def inventory_doc(topo: Topology, paths: LabPaths) -> dict[str, object]:
    """The probe inventory of the lab fleet: every host behind the jump host."""
    hosts: list[dict[str, object]] = []
    for h in topo.hosts:
        entry: dict[str, object] = {"name": h.name, "address": h.address, "region": h.region}
        if h.zone:
            entry["zone"] = h.zone
        entry["provider"] = "lab"
        ssh: dict[str, object] = {"host": ssh_host_of(topo, h.name)}
        if h.name != topo.jump:
            ssh["via"] = topo.jump
        entry["ssh"] = ssh
        if h.name == topo.jump or not h.measure:
            entry["measure"] = h.measure and h.name != topo.jump
        hosts.append(entry)
    return {
        "known_hosts": str(paths.known_hosts),
        "defaults": {
            "ssh": {"user": "root", "port": topo.ssh_port, "identity": str(paths.client_key)}
        },
        "hosts": hosts,
    }


def write_inventory_and_truth(topo: Topology, paths: LabPaths) -> None:
    header = f"# Generated by `probe lab up {topo.source}` for lab {topo.name!r}.\n"
    paths.inventory.write_text(header + yaml.safe_dump(inventory_doc(topo, paths), sort_keys=False))
    paths.truth.write_text(json.dumps(truth_doc(topo), indent=1))


def truth_doc(topo: Topology) -> dict[str, object]:
    return {
        "schema": "probe.lab-truth/1",
        "lab": topo.name,
        "topology": topo.source,
        "note": "rtt/std/ipdv/loss: round trip seen from src; rates: one-way (fwd = src->dst)",
        "hosts": [{"name": h.name, "region": h.region, "address": h.address} for h in topo.hosts],
        "pairs": [
            {
                **asdict(t),
                "tcp_max_fwd_bps": t.tcp_max_fwd_bps,
                "tcp_max_rev_bps": t.tcp_max_rev_bps,
            }
            for t in truth_table(topo)
        ],
    }


def emulator_docs(topo: Topology, paths: LabPaths) -> tuple[dict[str, object], dict[str, object]]:
    """(emulator config, pair table). The pair table is rewritten by ``lab link`` + SIGHUP."""
    config: dict[str, object] = {
        "hosts": [
            {"name": h.name, "netns": topo.netns(h.name), "address": h.address} for h in topo.hosts
        ],
        "mesh": topo.mesh,
        "gso": topo.emulator.gso,
        "rate_impl": topo.emulator.rate_impl,
        "timing": {
            "guard_us": topo.emulator.guard_us,
            "spin_us": topo.emulator.spin_us,
            "sched_fifo": topo.emulator.sched_fifo,
            "comp_us": topo.emulator.comp_us,
        },
        "pairs_path": str(paths.pairs),
        "stats_path": str(paths.stats),
        "ready_path": str(paths.emulator_ready),
    }
    pairs = {
        "comp_us": topo.emulator.comp_us,
        "pairs": {f"{a}>{b}": asdict(p) for (a, b), p in topo.links.items()},
    }
    return config, pairs
