"""What preflight catches on the lab (issue 12): a hanging iperf3 costs the run its 5 s
deadline, not a timeout per test; iperf3 already running on a host is a loud warning."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from probe.lab import control
from tests.measure.test_faults_lab import (
    FAST,
    assert_clean,
    assert_every_cell_explained,
    matrix,
    probe,
    run_dir,
)

pytestmark = pytest.mark.lab
#: Tests long enough that the preflight's 5 s deadline is a small part of the run.
BW = ["--pairs", "intra-region", "--duration", "3", "--omit", "0"]
HUNG = "iperf3 hangs on us1 (no answer to --version within 5 s)"


def _host_records(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    lines = (run_dir(proc) / "samples.jsonl").read_text().splitlines()
    return {r["host"]: r for r in map(json.loads, lines) if r["kind"] == "host"}


def test_a_hanging_iperf3_is_skipped_at_preflight_and_costs_no_timeouts(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    """Issue 12, case 6: with us1's iperf3 hanging, every test with us1 timed out and the run
    took 3.7× as long. Now its tests are skipped as ``tool-hung`` and the run takes about as
    long as the same run without the fault (measured here, in the same test)."""
    started = time.monotonic()
    normal = probe("run", str(lab.inventory), "-o", str(tmp_path / "normal"), *FAST, *BW)
    normal_s = time.monotonic() - started
    assert normal.returncode == 0, normal.stderr
    control.break_tool(lab, "us1", "iperf3", "hang")
    try:
        started = time.monotonic()
        proc = probe("run", str(lab.inventory), "-o", str(tmp_path / "hung"), *FAST, *BW)
        hung_s = time.monotonic() - started
    finally:
        control.restore_tool(lab, "us1", "iperf3")
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert hung_s <= 1.5 * normal_s, (hung_s, normal_s)
    frame = matrix(proc)
    assert_every_cell_explained(frame)
    assert set(frame.status) == {"ok"}  # ping is fine on us1
    us = frame[(frame.src_region == "us") & (frame.dst_region == "us")]
    assert set(us.bw_status) == {"tool-hung"} and set(us.bw_reason) == {HUNG}
    others = frame[(frame.src_region == frame.dst_region) & (frame.src_region != "us")]
    assert set(others.bw_status) == {"ok"}
    us1 = _host_records(proc)["us1"]
    assert us1["status"] == "ok" and us1["hung"] == {"iperf3": "no answer to --version within 5 s"}
    assert_clean(lab)


def test_an_iperf3_already_running_on_a_host_is_a_loud_warning(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    """Issue 12, case 4: two runs from two folders on the same hosts each cut the other's
    bandwidth. An iperf3 found on a host at preflight (here a foreign server in us2's
    namespace) is one WARNING line naming that host, and it is recorded with the host."""
    assert_clean(lab)  # an earlier test's server still ending (its remote deadline) is not foreign
    foreign = subprocess.Popen(
        lab.exec_argv("us2", "iperf3", "-s", "-p", "5299"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        proc = probe("run", str(lab.inventory), "-o", str(tmp_path), *FAST, "--no-bandwidth")
    finally:
        foreign.kill()
        foreign.wait()
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING:")]
    assert warnings == [
        "WARNING: us2: 1 iperf3 already running (another probe run, or another tool?): "
        "bandwidth figures from these hosts may be cut"
    ], proc.stderr
    records = _host_records(proc)
    assert records["us2"]["already_running"] == {"iperf3": 1}
    assert all(r["already_running"] == {} for name, r in records.items() if name != "us2")
    assert_clean(lab)
