"""What ``lab up`` writes into the state directory: keys, sshd and client configs, the probe
inventory of the fleet and ``truth.json``.

The state directory is root-owned, mode 0700 and outside /tmp, so sshd keeps ``StrictModes yes``
(/tmp's mode 1777 made it refuse the authorized_keys file in the prototype).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from probe.errors import LabError
from probe.lab.state import EmulatedHost, EmulatorConfig, LabTruth, PairTable, TruthHost, save
from probe.lab.topology import MESH, Topology
from probe.lab.truth import truth_table


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
    """The address the controller's SSH client dials for ``host`` (through its jump chain)."""
    return topo.controller_addresses[1] if host == topo.jump else topo.ssh_address(host)


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
    """Key-only root login; TCP forwarding on, as any host may be a jump host of others (a
    ProxyJump hop is a forwarded TCP connection); MaxStartups raised because every ProxyJump
    login comes from the one jump-host address (the default 10:30:100 dropped 9 of 40
    concurrent logins). A ``user:`` host's account cannot read the root-only state directory,
    where sshd opens authorized keys as the user: root reads the same file for it (``cat``)."""
    if topo.host(host).user is None:
        keys = [f"AuthorizedKeysFile {paths.authorized_keys}"]
    else:
        cat = shutil.which("cat") or "/bin/cat"
        keys = [
            "AuthorizedKeysFile none",
            f"AuthorizedKeysCommand {cat} {paths.authorized_keys}",
            "AuthorizedKeysCommandUser root",
        ]
    return "\n".join(
        [
            f"Port {topo.ssh_port}",
            "ListenAddress 0.0.0.0",
            "AddressFamily inet",
            f"HostKey {paths.host_key(host)}",
            "PidFile none",
            *keys,
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
        f"  Port {topo.ssh_port}",
        f"  IdentityFile {paths.client_key}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {paths.known_hosts}",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 10",
    ]
    for h in topo.hosts:  # User per host: OpenSSH takes the first value, Host * comes first
        lines += [f"Host {h.name}", f"  HostName {ssh_host_of(topo, h.name)}",
                  f"  User {h.user or 'root'}"]  # fmt: skip
        if chain := topo.chain(h.name):
            lines.append(f"  ProxyJump {','.join(chain)}")
    return "\n".join(lines) + "\n"


def inventory_doc(topo: Topology, paths: LabPaths) -> dict[str, object]:
    """The probe inventory of the lab fleet: every host behind the jump host, or behind a chain
    of them (``via: [bastion, inner]``, outermost first). A one-network lab gives each host its
    ``address``; otherwise each host lists ``addresses`` by network, ``networks`` gives the
    preference order, and a host behind NAT is at its gateway's addresses with ``nat: true``
    (SSH reaches it through the gateway, at its LAN address)."""
    named = [n.name for n in topo.networks] != [MESH]
    hosts: list[dict[str, object]] = []
    for h in topo.hosts:
        entry: dict[str, object] = {"name": h.name}
        if named:
            entry["addresses"] = topo.peer_addresses(h.name)
        else:
            entry["address"] = h.address
        entry["region"] = h.region
        if h.nat is not None:
            entry["nat"] = True
        if h.zone:
            entry["zone"] = h.zone
        entry["provider"] = "lab"
        ssh: dict[str, object] = {"host": ssh_host_of(topo, h.name)}
        if h.user is not None:
            ssh["user"] = h.user
        if chain := topo.chain(h.name):
            ssh["via"] = list(chain)
        entry["ssh"] = ssh
        if h.name == topo.jump or not h.measure:
            entry["measure"] = h.measure and h.name != topo.jump
        hosts.append(entry)
    doc: dict[str, object] = {
        "known_hosts": str(paths.known_hosts),
        "defaults": {
            "ssh": {"user": "root", "port": topo.ssh_port, "identity": str(paths.client_key)}
        },
    }
    if named:
        doc["networks"] = [n.name for n in topo.networks]
    doc["hosts"] = hosts
    return doc


def write_inventory_and_truth(topo: Topology, paths: LabPaths) -> None:
    header = f"# Generated by `probe lab up {topo.source}` for lab {topo.name!r}.\n"
    paths.inventory.write_text(header + yaml.safe_dump(inventory_doc(topo, paths), sort_keys=False))
    save(paths.truth, lab_truth(topo))


def lab_truth(topo: Topology) -> LabTruth:
    hosts = tuple(
        TruthHost(h.name, h.region, h.address, topo.peer_addresses(h.name), h.nat, h.cc)
        for h in topo.hosts
    )
    return LabTruth(topo.name, topo.source, hosts, *truth_table(topo))


def emulator_files(topo: Topology, paths: LabPaths) -> tuple[EmulatorConfig, PairTable]:
    """(emulator config, pair table). The pair table is rewritten by ``lab link`` + SIGHUP."""
    config = EmulatorConfig(
        hosts=tuple(
            EmulatedHost(h.name, topo.netns(h.name), dict(h.addresses)) for h in topo.emulated
        ),
        networks=topo.networks,
        settings=topo.emulator,
        pairs_path=str(paths.pairs),
        stats_path=str(paths.stats),
        ready_path=str(paths.emulator_ready),
    )
    return config, PairTable(dict(topo.links), topo.emulator.comp_us)
