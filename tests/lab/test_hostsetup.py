"""What makes a lab host unlike the others, without root: the settings, rules, mounts and
accounts ``lab up`` would apply (the lab tests apply them: tests/lab/test_field_hosts_lab.py)."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

from probe.errors import LabError
from probe.lab import control, hostsetup
from probe.lab.files import LabPaths
from probe.lab.render import host_traits
from probe.lab.state import LabState, load, save
from probe.lab.topology import LabHost, Topology, load_topology
from tests.lab.conftest import FIELD_HOSTS


@pytest.fixture
def topo() -> Topology:
    return load_topology(str(FIELD_HOSTS))


def test_sysctls_set_the_congestion_control_and_withhold_icmp(topo: Topology) -> None:
    assert hostsetup.sysctls(topo.host("fw")) == ("net.ipv4.tcp_congestion_control=cubic",)
    assert hostsetup.sysctls(topo.host("noicmp")) == ("net.ipv4.ping_group_range=1 0",)
    assert hostsetup.sysctls(topo.host("bbox")) == ()


def test_the_firewall_drops_inbound_tcp_to_its_ports_only(topo: Topology) -> None:
    rules = hostsetup.nft_ruleset(topo.host("fw"))
    assert "hook input" in rules and "tcp dport { 5201-5299 } drop" in rules
    assert "icmp" not in rules and "output" not in rules


def test_the_host_descriptions_lab_status_prints(topo: Topology) -> None:
    traits = {h.name: host_traits(h) for h in topo.hosts}
    assert traits == {
        "fbj": "",
        "fw": "cc cubic, drops tcp 5201-5299",
        "nonroot": "login probefb, cc bbr",
        "noicmp": "login probefb, no icmp",
        "bbox": "busybox",
    }


@pytest.mark.skipif(shutil.which("busybox") is None, reason="make sysdeps installs busybox")
def test_busybox_is_bound_over_ping_and_timeout_and_fping_is_hidden(
    topo: Topology, tmp_path: Path
) -> None:
    binds = hostsetup.tool_binds(topo.host("bbox"), LabPaths(tmp_path))
    applets = {os.path.basename(t) for s, t in binds if s == shutil.which("busybox")}
    hidden = {os.path.basename(t) for s, t in binds if s == "/dev/null"}
    assert applets == {"ping", "timeout"} and len(applets) + len(hidden) == len({*applets, *hidden})
    assert hidden == ({"fping"} if shutil.which("fping") else set())
    assert len({target for _, target in binds}) == len(binds)  # /bin is /usr/bin here: once


@pytest.mark.skipif(shutil.which("ping") is None, reason="make sysdeps installs iputils-ping")
def test_a_host_without_icmp_gets_a_ping_without_its_capability(
    topo: Topology, tmp_path: Path
) -> None:
    """iputils ping is cap_net_raw=ep: ping_group_range alone would withhold nothing."""
    binds = hostsetup.tool_binds(topo.host("noicmp"), LabPaths(tmp_path))
    plain = tmp_path / "ping-without-capability"
    assert binds and all(source == str(plain) for source, _ in binds)
    assert plain.read_bytes() == Path(binds[0][1]).read_bytes()
    assert os.access(plain, os.X_OK) and "security.capability" not in os.listxattr(plain)
    assert hostsetup.tool_binds(topo.host("nonroot"), LabPaths(tmp_path)) == ()


@pytest.fixture
def cc_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    allowed = tmp_path / "allowed"
    allowed.write_text("reno bbr\n")
    (tmp_path / "available").write_text("reno bbr cubic\n")
    monkeypatch.setattr(hostsetup, "ALLOWED_CC", allowed)
    monkeypatch.setattr(hostsetup, "AVAILABLE_CC", tmp_path / "available")
    return allowed


def test_a_restricted_congestion_control_is_allowed_while_the_lab_runs(
    topo: Topology, cc_files: Path
) -> None:
    """A namespace may only default to an allowed algorithm (EPERM): here cubic is not."""
    assert hostsetup.cc_to_allow(topo.hosts) == ("cubic",)
    hostsetup.change_allowed_cc(add=("cubic",))
    assert cc_files.read_text() == "reno bbr cubic\n"
    assert hostsetup.cc_to_allow(topo.hosts) == ()
    hostsetup.change_allowed_cc(remove=("cubic",))
    assert cc_files.read_text() == "reno bbr\n"


def test_a_congestion_control_the_kernel_lacks_is_a_lab_error(
    topo: Topology, cc_files: Path
) -> None:
    (cc_files.parent / "available").write_text("reno bbr\n")
    with pytest.raises(LabError, match=r"congestion control cubic is not in this kernel \(reno"):
        hostsetup.cc_to_allow(topo.hosts)


def test_only_missing_accounts_are_added_once_each(topo: Topology) -> None:
    existing = pwd.getpwuid(0).pw_name
    hosts = (*topo.hosts, LabHost("x", "r1", "198.18.249.99", user=existing))
    missing = hostsetup.missing_users(hosts)
    assert existing not in missing
    assert missing == (() if _has("probefb") else ("probefb",))


def _has(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_down_deletes_only_the_accounts_carrying_the_labs_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = hostsetup.account_marker(LabPaths(tmp_path / "fb"))
    entries = [
        pwd.struct_passwd(("ours", "x", 990, 990, marker, "/home/ours", "/bin/bash")),
        pwd.struct_passwd(("theirs", "x", 991, 991, marker + "2", "/home/t", "/bin/bash")),
        pwd.struct_passwd(("admin", "x", 1000, 1000, "Admin", "/home/admin", "/bin/bash")),
    ]
    ran: list[list[str]] = []
    monkeypatch.setattr(pwd, "getpwall", lambda: entries)
    monkeypatch.setattr(hostsetup, "_run", lambda argv, what, stdin=None: ran.append(argv))
    assert hostsetup.remove_users(marker) == ["user ours"]
    assert ran == [["userdel", "ours"]]
    assert marker == f"probe lab {tmp_path / 'fb'}" and ":" not in marker  # a valid GECOS


def test_an_account_is_recorded_before_it_exists(
    topo: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between useradd and the record must not hide the account from ``lab down``."""
    paths = LabPaths(tmp_path)
    state = LabState(topo.name, topo.prefix, str(FIELD_HOSTS), (), topo.jump)
    save(paths.state, state)
    added: list[tuple[str, tuple[str, ...]]] = []
    monkeypatch.setattr(hostsetup, "missing_users", lambda hosts: ("probefb",))
    monkeypatch.setattr(hostsetup, "add_user", lambda name, marker: added.append(
        (marker, load(paths.state, LabState).created_users)))  # fmt: skip
    control._add_users(topo, paths, state)
    assert added == [(hostsetup.account_marker(paths), ("probefb",))]
