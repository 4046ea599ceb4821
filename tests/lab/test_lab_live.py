"""The lab while it runs: a live link change, `lab exec` as the host, and a two-hop jump chain.

Each test once showed the lab disturbing itself or hiding a host's view: a `lab link` froze every
other link ~0.3 s, `lab exec HOST -- hostname` printed the controller's name, and the topology
knew one jump host only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from probe.lab import control
from probe.lab.state import PairTable, load
from tests.conftest import ROOT, unique_topology
from tests.lab.test_lab import _leftovers, _ping, address
from tests.measure.test_faults_lab import FAST, matrix, probe, run_dir

pytestmark = pytest.mark.lab
CHAIN_TOPOLOGY = ROOT / "inventory" / "lab-chain.yaml"
CHANGES = 10
FREEZE_BOUND_MS = 20.0  # a tc per pair on every change showed 307 ms; jitter stays far below


def _run(argv: tuple[str, ...] | list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


def test_a_live_link_change_does_not_disturb_the_other_links(
    lab: control.LabInfo, truth: dict[tuple[str, str], dict[str, float]]
) -> None:
    """`lab link` made the emulator re-run tc for every pair before forwarding again: an
    unrelated 0.5 ms path showed 307 ms. Ping eu1→eu2 every 10 ms while us1<>us2 changes
    rate and delay 10 times; the last change must be in effect afterwards."""
    changed = ("us1", "us2")
    before = load(lab.paths.pairs, PairTable).pairs
    originals = {pair: before[pair] for pair in (changed, changed[::-1])}
    pinger = subprocess.Popen(
        lab.exec_argv("eu1", "ping", "-n", "-q", "-c", "500", "-i", "0.01", address(lab, "eu2")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(0.5)
        for i in range(CHANGES):
            rate = 50e6 if i % 2 else 100e6
            control.set_link(lab, *changed, {"delay_ms": 1.0 + i, "rate_bps": rate}, both=True)
            time.sleep(0.15)
        assert pinger.poll() is None, "every change must fall inside the ping train"
        out, _ = pinger.communicate(timeout=30)
        now = _ping(lab, "us1", "us2", count=20, interval="0.05")
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait()
        for (src, dst), p in originals.items():
            control.set_link(lab, src, dst, {"delay_ms": p.delay_ms, "rate_bps": p.rate_bps},
                             both=False)  # fmt: skip
    rtt = re.search(r"= [\d.]+/[\d.]+/([\d.]+)/[\d.]+ ms", out)
    assert rtt, out
    assert float(rtt.group(1)) <= truth["eu1", "eu2"]["rtt_ms"] + FREEZE_BOUND_MS, out
    last_delay_ms = CHANGES  # 1.0 + (CHANGES - 1), each way
    assert now["avg"] == pytest.approx(2 * last_delay_ms, abs=2.0), now


def test_exec_runs_as_the_host_sees_the_machine(lab: control.LabInfo) -> None:
    """`lab exec eu1 -- hostname` printed the controller's name."""
    if control.find_host("eu1").name == lab.name:  # the CLI takes the first lab with an eu1
        cli = probe("lab", "exec", "eu1", "--", "hostname")
        assert cli.returncode == 0 and cli.stdout.strip() == "eu1", cli.stderr
    cmd = control.host_command(lab, "eu1", ["hostname"])
    assert cmd.host_view and _run(cmd.argv).strip() == "eu1"
    home = control.host_command(
        lab, "eu1", ["sh", "-c", 'stat -f -c %T "$(getent passwd root | cut -d: -f6)"']
    )
    assert _run(home.argv).strip() == "tmpfs"  # its own empty home, not this machine's
    ps = control.host_command(lab, "eu1", ["ps", "-e", "-o", "pid="])
    assert str(os.getpid()) in _run(ps.argv).split()  # the PIDs are this machine's (README)
    control.stop_sshd(lab, "eu2")
    try:
        down = control.host_command(lab, "eu2", ["hostname"])
        assert not down.host_view
        assert _run(down.argv).strip() == socket.gethostname()  # the network only
        assert address(lab, "eu2") in _run(
            control.host_command(lab, "eu2", ["ip", "-o", "addr"]).argv
        )
    finally:
        control.start_sshd(lab, "eu2")


def test_a_two_hop_jump_chain_is_measured_through_the_inner_jump(tmp_path: Path) -> None:
    """bastion → inner → host: every cell measured, run.json and the inventory show the chain,
    the hosts behind inner saw their logins come from inner, and `lab down` leaves nothing."""
    info = control.up(str(unique_topology(CHAIN_TOPOLOGY, tmp_path, slot=2)), echo=False)
    marker = str(info.paths.root)
    try:
        proc = probe("run", str(info.inventory), "-o", str(tmp_path / "runs"), *FAST,
                     "--no-bandwidth")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        frame = matrix(proc)
        assert len(frame) == 4 * 3 and set(frame.status) == {"ok"}, frame
        run = json.loads((run_dir(proc) / "run.json").read_text())
        via = {h["name"]: h["ssh"]["via"] for h in run["hosts"]}
        assert via["us1"] == via["us2"] == via["ap1"] == ["bastion", "inner"]
        assert via["eu1"] == via["inner"] == ["bastion"] and via["bastion"] == []
        written = {h["name"]: h["ssh"].get("via") for h in yaml.safe_load(
            info.inventory.read_text())["hosts"]}  # fmt: skip
        assert written["ap1"] == ["bastion", "inner"]
        inner, bastion = address(info, "inner"), address(info, "bastion")
        us1_log = info.paths.sshd_log("us1").read_text()
        assert f"Accepted publickey for root from {inner} " in us1_log
        assert f"from {bastion} " not in us1_log
    finally:
        control.down(info.name, echo=False)
    assert _leftovers(info.prefix, marker) == []
    assert not Path(marker).exists()
