"""`probe run` end to end on the lab: real sshd through the jump host, real ping, real iperf3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from probe.lab import control, netns
from tests.cells import Cells, as_float, as_str
from tests.conftest import ROOT, Truth
from tests.measure.watch import PINGS, IperfWatcher

pytestmark = pytest.mark.lab
PROBE = str(ROOT / ".venv" / "bin" / "probe")


def probe(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROBE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def full_run(lab_run: tuple[Path, IperfWatcher]) -> Path:
    return lab_run[0]


def test_no_host_ever_ran_two_iperf3_at_once(lab_run: tuple[Path, IperfWatcher]) -> None:
    _, watcher = lab_run
    assert watcher.samples > 100
    # each host served or sent, one test at a time; every measured host took part
    assert max(watcher.most_tests.values()) == 1, watcher.most_tests
    assert sum(v == 1 for v in watcher.most_tests.values()) == 7, watcher.most_tests
    # at most the running test and the next one's armed listener
    assert max(watcher.most_processes.values()) <= 2, watcher.most_processes


@pytest.fixture(scope="module")
def frame(full_run: Path) -> pd.DataFrame:
    return pd.read_csv(full_run / "matrix.csv")


def test_every_ordered_pair_is_measured(frame: pd.DataFrame, lab: control.LabInfo) -> None:
    measured = [h for h in lab.hosts if h != lab.jump]
    assert len(frame) == len(measured) * (len(measured) - 1)
    assert set(frame["status"]) == {"ok"}
    assert set(frame["bw_status"]) == {"ok"}


def test_rtt_matches_truth(frame: pd.DataFrame, truth: Truth) -> None:
    """The issue's bound, 0.5 ms + 2 %, for every ordered pair. The median of n jittered samples
    has a standard error of 1.2533·σ/√n: with 20 samples the σ = 1.4 ms, 12.5 ms pairs missed
    that bound by chance (1.9 standard errors; CI once saw 1.15 ms), with 100 it is 4.2."""
    for row in frame.itertuples():
        want = truth[as_str(row.src), as_str(row.dst)]
        assert row.sent == PINGS
        error_ms = abs(as_float(row.rtt_p50_ms) - want["rtt_ms"])
        assert error_ms <= 0.5 + 0.02 * want["rtt_ms"], (row, want)


def test_jitter_and_loss_match_truth(frame: pd.DataFrame, truth: Truth) -> None:
    """Per link class (pairs with the same configured jitter), averaged over its pairs: one
    pair's std or IPDV from 100 samples is still a noisy estimate (±10-15 %)."""
    classes: dict[float, list[tuple[float, float]]] = {}
    for row in frame.itertuples():
        want = truth[as_str(row.src), as_str(row.dst)]
        if want["rtt_std_ms"] >= 1.0:
            mdev, ipdv = as_float(row.rtt_mdev_ms), as_float(row.ipdv_ms)
            ratio = (mdev / want["rtt_std_ms"], ipdv / want["ipdv_ms"])
            classes.setdefault(round(want["rtt_std_ms"], 3), []).append(ratio)
        if want["loss_pct"] == 0:
            assert row.loss_pct == 0, row
        else:  # PINGS probes at ~2 %: bound by 4 binomial standard deviations
            sd = 100 * (want["loss_pct"] / 100 * (1 - want["loss_pct"] / 100) / PINGS) ** 0.5
            assert abs(as_float(row.loss_pct) - want["loss_pct"]) <= 4 * sd, (row, want)
    assert len(classes) >= 3
    for std, ratios in classes.items():
        mdev = sum(r[0] for r in ratios) / len(ratios)
        ipdv = sum(r[1] for r in ratios) / len(ratios)
        assert 0.75 <= mdev <= 1.3, (std, mdev, len(ratios))
        assert 0.7 <= ipdv <= 1.4, (std, ipdv, len(ratios))


def test_bandwidth_matches_truth_in_both_directions(frame: pd.DataFrame, truth: Truth) -> None:
    """Loss-free pairs within 5 % of the TCP maximum of their rate. On the lossy pair (1 % each
    way) a 4 s single stream is set by its loss recoveries as much as by the rate (CI once saw
    181 of 193 Mbit/s): there goodput may fall short, never exceed the rate."""
    lossless = 0
    for row in frame.itertuples():
        src, dst = as_str(row.src), as_str(row.dst)
        want = truth[src, dst]
        fwd, rev = as_float(row.bw_fwd_mbps) * 1e6, as_float(row.bw_rev_mbps) * 1e6
        if want["loss_pct"] == 0 and truth[dst, src]["loss_pct"] == 0:
            lossless += 1
            assert fwd == pytest.approx(want["tcp_max_fwd_bps"], rel=0.05), (row.src, row.dst, fwd)
            assert rev == pytest.approx(want["tcp_max_rev_bps"], rel=0.05), (row.src, row.dst, rev)
        else:
            assert 0.6 * want["tcp_max_fwd_bps"] <= fwd <= 1.05 * want["tcp_max_fwd_bps"], row
    assert lossless >= len(frame) - 2  # only ap1↔ap2 is lossy
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


def test_check_reports_every_host_and_a_missing_tool(lab: control.LabInfo) -> None:
    healthy = probe("check", str(lab.inventory))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    rows = {line.split()[0]: line for line in healthy.stdout.splitlines()[2:]}
    assert set(rows) == set(lab.hosts)  # the relay too: every host is reached through it
    relays = {name: rows.pop(name) for name in list(rows) if rows[name].split()[1] == "(relay)"}
    assert lab.jump in relays
    assert all(" ok " in row and "MISSING" not in row for row in relays.values()), relays
    assert all(" ok " in row and "iperf 3." in row for row in rows.values()), rows
    assert "\t" not in healthy.stdout
    control.break_tool(lab, "us1", "iperf3", "missing")
    try:
        broken = probe("check", str(lab.inventory))
    finally:
        control.restore_tool(lab, "us1", "iperf3")
    assert broken.returncode == 1
    (us1,) = [line for line in broken.stdout.splitlines() if line.startswith("us1 ")]
    assert "MISSING" in us1
    assert sum("MISSING" in line for line in broken.stdout.splitlines()) == 1


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


def test_diff_flags_exactly_the_link_that_changed(
    lab: control.LabInfo, full_run: Path, tmp_path: Path
) -> None:
    from probe.matrix.build import load_matrix
    from probe.report.diff import diff_runs

    control.set_link(lab, "eu1", "us1", {"delay_ms": 50.0}, both=False)  # was 20 ms one way
    try:
        proc = probe("run", str(lab.inventory), "-o", str(tmp_path), "--count", "20",
                     "--interval", "0.1", "--no-bandwidth")  # fmt: skip
    finally:
        control.set_link(lab, "eu1", "us1", {"delay_ms": 20.0}, both=False)
    after = Path(proc.stdout.strip().splitlines()[-1])
    result = diff_runs(load_matrix(full_run), load_matrix(after))
    rtt = {(p.src, p.dst) for p in result.regressed_pairs if "rtt_p50" in p.regressions}
    assert rtt == {("eu1", "us1"), ("us1", "eu1")}  # a round trip: both ordered cells see it
    cli = probe("diff", str(full_run), str(after), "--fail-on", "rtt_p50")
    assert cli.returncode == 1, cli.stdout + cli.stderr
    same = probe("diff", str(full_run), str(full_run))
    assert same.returncode == 0, same.stdout


def test_latency_under_load_and_multi_stream_comparison(
    frame: pd.DataFrame, lab: control.LabInfo, truth: Truth, tmp_path: Path
) -> None:
    proc = probe("run", str(lab.inventory), "-o", str(tmp_path), "--count", "5", "--interval",
                 "0.05", "--pairs", "intra-region", "--duration", "4", "--omit", "1",
                 "--under-load", "--compare-streams", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # unselected pairs are "not-planned", not failures
    loaded = pd.read_csv(Path(proc.stdout.strip().splitlines()[-1]) / "matrix.csv")
    measured = loaded[loaded.bw_status == "ok"]
    assert len(measured) == 10 and measured.rtt_loaded_p50_ms.notna().all()
    assert set(loaded[loaded.bw_status != "ok"].bw_status) == {"not-planned"}
    idle = Cells(frame)
    for row in measured.itertuples():
        idle_ms = idle.num(as_str(row.src), as_str(row.dst), "rtt_p50_ms")
        assert as_float(row.rtt_loaded_p50_ms) >= idle_ms - 0.5, row
    uplink = measured[(measured.src == "home1") & (measured.dst == "eu1")].iloc[0]
    uplink_idle_ms = idle.num("home1", "eu1", "rtt_p50_ms")
    assert uplink.rtt_loaded_p50_ms > uplink_idle_ms + 2  # 10 Mbit/s residential uplink
    assert (measured.bw_multi_streams == 2).all()
    for row in measured.itertuples():  # a rate-limited path: two streams share the same cap
        cap = truth[as_str(row.src), as_str(row.dst)]["tcp_max_fwd_bps"] / 1e6
        assert 0.85 * cap <= as_float(row.bw_fwd_multi_mbps) <= 1.05 * cap, row
