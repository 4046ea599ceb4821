"""What ``lab up`` writes for SSH: the probe inventory and the OpenSSH client config of a lab
whose hosts sit behind a chain of jump hosts (no root: the files only)."""

from __future__ import annotations

from pathlib import Path

import yaml

from probe.inventory import parse_inventory
from probe.lab import files
from probe.lab.files import LabPaths
from probe.lab.topology import load_topology
from tests.conftest import DEFAULT_TOPOLOGY, ROOT
from tests.lab.conftest import FIELD_HOSTS

CHAIN_TOPOLOGY = ROOT / "inventory" / "lab-chain.yaml"


def _inventory(topology: Path, tmp_path: Path) -> dict[str, tuple[str, ...]]:
    """Each host's resolved jump chain, as probe reads the generated inventory."""
    doc = files.inventory_doc(load_topology(str(topology)), LabPaths(tmp_path))
    text = yaml.safe_dump(doc, sort_keys=False)
    inventory = parse_inventory(text, source="inventory.yaml", base_dir=tmp_path)
    return {h.name: h.ssh.via for h in inventory.hosts}


def test_the_inventory_writes_each_hosts_whole_jump_chain(tmp_path: Path) -> None:
    """The topology allowed one jump host; hosts behind an inner jump get ``[bastion, inner]``."""
    doc = files.inventory_doc(load_topology(str(CHAIN_TOPOLOGY)), LabPaths(tmp_path))
    hosts = doc["hosts"]
    assert isinstance(hosts, list)
    written = {h["name"]: h["ssh"].get("via") for h in hosts}
    assert written["us1"] == written["ap1"] == ["bastion", "inner"]
    assert written["inner"] == written["eu1"] == ["bastion"] and written["bastion"] is None
    assert _inventory(CHAIN_TOPOLOGY, tmp_path) == {
        "bastion": (), "eu1": ("bastion",), "inner": ("bastion",),
        "us1": ("bastion", "inner"), "us2": ("bastion", "inner"), "ap1": ("bastion", "inner"),
    }  # fmt: skip


def test_one_jump_host_stays_one_hop(tmp_path: Path) -> None:
    chains = _inventory(DEFAULT_TOPOLOGY, tmp_path)
    assert chains.pop("bastion") == () and set(chains.values()) == {("bastion",)}


def test_the_ssh_config_writes_proxyjump_chains(tmp_path: Path) -> None:
    text = files.openssh_client_config(load_topology(str(CHAIN_TOPOLOGY)), LabPaths(tmp_path))
    blocks = {b.split("\n")[0]: b for b in text.split("Host ")[2:]}  # after "Host *"
    assert "ProxyJump bastion,inner" in blocks["us1"] and "ProxyJump" not in blocks["bastion"]
    assert blocks["inner"].rstrip().endswith("ProxyJump bastion")
    assert "AllowTcpForwarding yes" in files.sshd_config(
        load_topology(str(CHAIN_TOPOLOGY)), LabPaths(tmp_path), "inner"
    )  # a ProxyJump hop is a forwarded TCP connection


def test_a_user_host_logs_in_as_its_account_with_the_labs_key(tmp_path: Path) -> None:
    """The inventory and ssh_config name the account; its sshd reads the lab's root-only key
    file through root (sshd opens AuthorizedKeysFile as the user, who cannot traverse there)."""
    topo, paths = load_topology(str(FIELD_HOSTS)), LabPaths(tmp_path)
    inventory = parse_inventory(
        yaml.safe_dump(files.inventory_doc(topo, paths)), source="i.yaml", base_dir=tmp_path
    )
    users = {h.name: h.ssh.user for h in inventory.hosts}
    assert users == {"fbj": "root", "fw": "root", "nonroot": "probefb", "noicmp": "probefb",
                     "bbox": "root"}  # fmt: skip
    config = files.openssh_client_config(topo, paths)
    blocks = {b.split("\n")[0]: b for b in config.split("Host ")[2:]}
    assert "User probefb" in blocks["nonroot"] and "User root" in blocks["fw"]
    assert "  User " not in config.split("Host ")[1]  # Host * comes first: its User would win
    nonroot = files.sshd_config(topo, paths, "nonroot").splitlines()
    assert "AuthorizedKeysFile none" in nonroot and "AuthorizedKeysCommandUser root" in nonroot
    assert any(
        line.startswith("AuthorizedKeysCommand /") and line.endswith(f"cat {paths.authorized_keys}")
        for line in nonroot
    )
    assert f"AuthorizedKeysFile {paths.authorized_keys}" in files.sshd_config(topo, paths, "fw")
