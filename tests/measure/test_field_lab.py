"""Field faults on the lab (issue "survive the field"): a run never crashes, never mixes runs.

Each test breaks one thing the way a real fleet does, runs the real CLI against real sshd, ping
and iperf3, and checks what the operator sees: a documented exit code, no traceback, every cell a
measurement or a reason, nothing left on the hosts.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from probe.lab import control
from tests.measure.test_faults_lab import (
    FAST,
    _killed_at_exit,
    _only_run,
    _start,
    _wait_for,
    _wait_for_file,
    assert_clean,
    assert_every_cell_explained,
    probe,
)

pytestmark = pytest.mark.lab
BW = ["--duration", "1", "--omit", "0"]  # the faults here cut tests, they measure no rate


def test_a_jump_host_reboot_mid_bandwidth_ends_the_run_cleanly_and_resume_finishes_it(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    with _killed_at_exit(_start(lab, tmp_path, *FAST, *BW)) as proc:
        _wait_for_file(tmp_path)
        run = _only_run(tmp_path)
        _wait_for(run / "samples.jsonl", "iperf3", 3)
        control.stop_sshd(lab, lab.jump)  # the jump host goes down: its sessions die with it
        assert control.drop_sessions(lab, lab.jump) >= 1
        try:
            _, err = proc.communicate(timeout=180)
        finally:
            control.start_sshd(lab, lab.jump)
    assert proc.returncode == 4, err
    assert "Traceback" not in err and "ExceptionGroup" not in err
    frame = pd.read_csv(run / "matrix.csv")
    assert len(frame) == 42 and set(frame.status) == {"ok"}  # the ping phase had finished
    assert_every_cell_explained(frame)
    lost = frame[frame.bw_status != "ok"]
    assert len(lost) >= 1 and set(lost.bw_status) == {"unreachable"}
    assert all("connection lost" in r for r in lost.bw_reason), list(lost.bw_reason)
    assert_clean(lab)
    resumed = probe("run", str(lab.inventory), "--resume", str(run), *FAST, *BW)
    assert resumed.returncode == 0, resumed.stderr
    frame = pd.read_csv(run / "matrix.csv")
    assert set(frame.bw_status) == {"ok"}
    assert json.loads((run / "run.json").read_text())["complete"] is True
    assert_clean(lab)


def test_a_measured_host_reboot_is_reconnected_and_the_run_goes_on(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    with _killed_at_exit(_start(lab, tmp_path, *FAST, *BW)) as proc:
        _wait_for_file(tmp_path)
        run = _only_run(tmp_path)
        _wait_for(run / "samples.jsonl", "iperf3", 3)
        control.stop_sshd(lab, "us1")
        control.drop_sessions(lab, "us1")
        time.sleep(1.0)
        control.start_sshd(lab, "us1")  # back before probe next needs it: one reconnect will do
        _, err = proc.communicate(timeout=180)
    assert proc.returncode in (0, 4), err
    assert "Traceback" not in err and "ExceptionGroup" not in err
    frame = pd.read_csv(run / "matrix.csv")
    assert_every_cell_explained(frame)
    assert set(frame.status) == {"ok"}  # the ping phase had finished
    us1 = frame[(frame.src == "us1") | (frame.dst == "us1")]
    # the tests cut by the reboot say so; the later ones ran on the new connection
    assert set(us1.bw_status) <= {"ok", "unreachable"}
    assert (us1.bw_status == "ok").sum() >= len(us1) // 2
    assert all("connection lost" in r for r in us1[us1.bw_status != "ok"].bw_reason)
    assert set(frame[(frame.src != "us1") & (frame.dst != "us1")].bw_status) == {"ok"}
    assert_clean(lab)


def test_a_second_run_or_resume_in_a_busy_folder_stops_before_connecting(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    slow = ["--count", "100", "--interval", "0.1", "--no-bandwidth"]  # holds the folder ~12 s
    with _killed_at_exit(_start(lab, tmp_path, *slow)) as first:
        _wait_for_file(tmp_path)
        run = _only_run(tmp_path)
        second = probe("run", str(lab.inventory), "-o", str(tmp_path), *FAST, "--no-bandwidth")
        again = probe("run", str(lab.inventory), "--resume", str(run), *FAST, "--no-bandwidth")
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    for proc in (second, again):
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip()
        assert "\n" not in line and "in use by another probe run" in line
        assert f"pid {first.pid}" in line and str(tmp_path) in line
    assert [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()] == [run]
    assert_clean(lab)


def test_a_network_stall_mid_test_is_stalled_not_a_measurement(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    """The WAN emulator frozen for 3.5 s while tests run: what a stalled path does to iperf3.
    A test that sat through it says so (``stalled``, how long, from when) and the matrix takes
    no goodput from it; the rest are measurements."""
    args = [*FAST, "--pairs", "intra-region", "--duration", "6", "--omit", "0"]
    with _killed_at_exit(_start(lab, tmp_path, *args)) as proc:
        _wait_for_file(tmp_path)
        run = _only_run(tmp_path)
        _wait_for(run / "samples.jsonl", "iperf3", 1)
        time.sleep(2.0)  # the next tests are running now
        pid = control.emulator_pid(lab)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(3.5)
        finally:
            os.kill(pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == 4, err
    frame = pd.read_csv(run / "matrix.csv")
    assert_every_cell_explained(frame)
    tested = frame[frame.src_region == frame.dst_region]
    stalled = tested[tested.bw_status == "stalled"]
    assert len(stalled) >= 1 and set(tested.bw_status) <= {"ok", "stalled"}
    assert all("stalled for" in r for r in stalled.bw_reason)
    assert stalled.bw_fwd_mbps.isna().all()  # never a goodput
    assert_clean(lab)
