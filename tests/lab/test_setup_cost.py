"""What ``lab up`` costs per host: processes, not per-pair commands (no root: the commands are
recorded, not run). At 61 hosts the per-pair ``tc`` took 19 s of a 20 s readiness bound."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from probe.errors import LabError
from probe.lab import files, htb, netns
from probe.lab.files import LabPaths
from probe.lab.topology import load_topology
from tests.conftest import ROOT

LARGE = ROOT / "inventory" / "lab-large.yaml"
Run = list[tuple[tuple[str, ...], str | None]]  # (argv, stdin) of each process started


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Run:
    calls: Run = []

    def run(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        stdin = kw.get("input")
        calls.append((tuple(argv), stdin if isinstance(stdin, str) else None))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_htb_installs_every_pair_with_one_tc_per_sender(started: Run, tmp_path: Path) -> None:
    topo = load_topology(str(LARGE))
    config, table = files.emulator_files(topo, LabPaths(tmp_path))
    htb.install(config, table.pairs)
    assert len(started) == len(topo.hosts) == 61
    for argv, script in started:
        assert argv[:2] == ("tc", "-n") and argv[3:] == ("-batch", "-")
        assert script is not None
        lines = script.splitlines()
        assert lines[0] == "qdisc add dev tun0 root handle 1: htb"
        assert sum(ln.startswith("class add ") for ln in lines) == 60  # one per destination
        assert sum(ln.startswith("filter add ") for ln in lines) == 60


def test_a_failed_batch_names_the_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "RTNETLINK answers: File exists")

    monkeypatch.setattr(subprocess, "run", refuse)
    with pytest.raises(LabError, match=r"tc -n bl-eu1 -batch: RTNETLINK answers: File exists"):
        htb.tc_batch("bl-eu1", [("qdisc", "add", "dev", "tun0", "root", "handle", "1:", "htb")])


def test_a_namespace_takes_three_processes_whatever_it_sets(started: Run) -> None:
    netns.create_netns("bl-eu1")
    argvs = [argv for argv, _ in started]
    assert argvs == [
        ("ip", "netns", "add", "bl-eu1"),
        ("ip", "-n", "bl-eu1", "link", "set", "lo", "up"),
        ("ip", "netns", "exec", "bl-eu1", "sysctl", "-q", "-w", *netns.NETNS_SYSCTLS),
    ]
    assert "net.ipv4.ping_group_range=0 2147483647" in netns.NETNS_SYSCTLS
