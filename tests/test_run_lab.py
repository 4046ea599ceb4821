"""`probe run` end to end on the lab: real sshd through the jump host, real ping, real iperf3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from probe.lab import control, netns
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
PROBE = str(ROOT / ".venv" / "bin" / "probe")


def probe(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROBE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def full_run(lab: control.LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    proc = probe(
        "run",
        str(lab.inventory),
        "-o",
        str(out),
        "--count",
        "20",
        "--interval",
        "0.1",
        "--duration",
        "4",
        "--omit",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def frame(full_run: Path) -> pd.DataFrame:
    return pd.read_csv(full_run / "matrix.csv")


def test_every_ordered_pair_is_measured(frame: pd.DataFrame, lab: control.LabInfo) -> None:
    measured = [h for h in lab.hosts if h != lab.jump]
    assert len(frame) == len(measured) * (len(measured) - 1)
    assert set(frame["status"]) == {"ok"}
    assert set(frame["bw_status"]) == {"ok"}


def test_rtt_matches_truth(frame: pd.DataFrame, truth: dict) -> None:
    for row in frame.itertuples():
        want = truth[row.src, row.dst]
        assert abs(row.rtt_p50_ms - want["rtt_ms"]) <= 0.5 + 0.02 * want["rtt_ms"], (row, want)
        assert row.sent == 20


def test_jitter_and_loss_match_truth(frame: pd.DataFrame, truth: dict) -> None:
    for row in frame.itertuples():
        want = truth[row.src, row.dst]
        if want["rtt_std_ms"] >= 1.0:  # 20 samples: sampling error of a std is ~16 %
            assert row.rtt_mdev_ms == pytest.approx(want["rtt_std_ms"], rel=0.45), (row, want)
            assert row.ipdv_ms == pytest.approx(want["ipdv_ms"], rel=0.5), (row, want)
        if want["loss_pct"] == 0:
            assert row.loss_pct == 0, row
        else:  # 20 probes at ~2 %: bound by 4 binomial standard deviations
            sd = 100 * (want["loss_pct"] / 100 * (1 - want["loss_pct"] / 100) / 20) ** 0.5
            assert abs(row.loss_pct - want["loss_pct"]) <= 4 * sd, (row, want)


def test_bandwidth_matches_truth_in_both_directions(frame: pd.DataFrame, truth: dict) -> None:
    for row in frame.itertuples():
        want = truth[row.src, row.dst]
        got = row.bw_fwd_mbps * 1e6
        assert got == pytest.approx(want["tcp_max_fwd_bps"], rel=0.05), (row.src, row.dst, got)
        assert row.bw_rev_mbps * 1e6 == pytest.approx(want["tcp_max_rev_bps"], rel=0.05)
    home = frame[(frame.src == "home1") & (frame.dst == "eu1")].iloc[0]
    assert home.bw_fwd_mbps < home.bw_rev_mbps / 3  # residential: 10 up, 50 down


def test_nothing_left_running_on_the_hosts(full_run: Path, lab: control.LabInfo) -> None:
    for host in lab.hosts:
        for pid in netns.netns_pids(lab.netns(host)):
            comm = (
                Path(f"/proc/{pid}/comm").read_text().strip()
                if Path(f"/proc/{pid}").exists()
                else ""
            )
            assert comm not in ("iperf3", "ping", "timeout"), (host, pid, comm)


def test_run_store_is_complete(full_run: Path) -> None:
    run = json.loads((full_run / "run.json").read_text())
    assert run["schema"] == "probe.run/1" and run["complete"] is True
    assert run["inventory"]["sha256"] and run["phases"]["ping_s"] > 0
    assert all(h["tools"]["iperf3"] for h in run["hosts"] if h["measure"])
    kinds = [
        json.loads(line)["kind"] for line in (full_run / "samples.jsonl").read_text().splitlines()
    ]
    assert kinds.count("ping") == 42 and kinds.count("iperf3") == 42 and kinds.count("host") == 7
    assert (full_run.parent / "latest").resolve() == full_run
    parquet = pd.read_parquet(full_run / "matrix.parquet")
    assert len(parquet) == 42


def test_show_and_calc_read_the_run(full_run: Path) -> None:
    shown = probe("show", str(full_run), "--metric", "rtt_p50_ms")
    assert shown.returncode == 0 and "ap1" in shown.stdout
    calc = probe("calc", str(full_run), "--model", "llama-3-8b", "--path", "eu1,us1,ap1")
    assert calc.returncode == 0, calc.stderr


def test_a_host_without_sshd_is_unreachable_and_the_rest_is_measured(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    control.stop_sshd(lab, "us2")
    try:
        proc = probe(
            "run",
            str(lab.inventory),
            "-o",
            str(tmp_path),
            "--count",
            "5",
            "--interval",
            "0.05",
            "--no-bandwidth",
            "--connect-timeout",
            "3",
        )
    finally:
        control.start_sshd(lab, "us2")
    assert proc.returncode == 4, proc.stderr  # partial: some cells carry a reason
    frame = pd.read_csv(Path(proc.stdout.strip().splitlines()[-1]) / "matrix.csv")
    from_us2 = frame[frame.src == "us2"]
    assert set(from_us2.status) == {"unreachable"}
    assert all("us2" in r for r in from_us2.reason)
    rest = frame[frame.src != "us2"]
    assert set(rest.status) == {"ok"}  # pings *to* us2 still work: only its sshd is down
