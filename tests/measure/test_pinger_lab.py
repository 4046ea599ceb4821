"""The pinger and the ping plan on the lab: fping and ping measure the same truth, and a sampled
plan leaves not-planned cells that make no run partial.

The lab hosts run this machine's binaries, so they have fping when the machine has it (``make
sysdeps`` installs it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from probe.lab import control, netns
from probe.plan import parse_ping_pairs, select_ping_pairs
from probe.store.rundir import read_run
from tests.measure.test_faults_lab import assert_clean
from tests.measure.test_run_lab import probe

pytestmark = pytest.mark.lab
PINGS = 100  # per ordered pair, as the full run of test_run_lab: its RTT bound needs them
TRAIN = ["--count", str(PINGS), "--interval", "0.05", "--no-bandwidth"]


def _run_dir(proc: Any) -> Path:
    return Path(proc.stdout.strip().splitlines()[-1])


def _matrix(run_dir: Path) -> list[dict[Any, Any]]:
    return pd.read_csv(run_dir / "matrix.csv").to_dict("records")


def _records(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module", params=["fping", "ping"])
def pinged(
    request: pytest.FixtureRequest, lab: control.LabInfo, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    pinger: str = request.param
    if pinger == "fping" and shutil.which("fping") is None:
        pytest.skip("fping is not installed on this machine (`make sysdeps` installs it)")
    out = tmp_path_factory.mktemp(f"runs-{pinger}")
    proc = probe("run", str(lab.inventory), "-o", str(out), "--pinger", pinger, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    return pinger, _run_dir(proc)


def test_every_rtt_cell_is_within_the_truth_bound_with_either_pinger(
    pinged: tuple[str, Path], truth: dict[tuple[str, str], dict[str, float]]
) -> None:
    """test_run_lab's bound, 0.5 ms + 2 % of the configured RTT, on every ordered pair."""
    _, run_dir = pinged
    rows = _matrix(run_dir)
    assert len(rows) == 42 and {row["status"] for row in rows} == {"ok"}
    for row in rows:
        want = truth[row["src"], row["dst"]]
        assert row["sent"] == PINGS, row
        assert abs(row["rtt_p50_ms"] - want["rtt_ms"]) <= 0.5 + 0.02 * want["rtt_ms"], (row, want)
        if want["loss_pct"] == 0:
            assert row["loss_pct"] == 0, row


def test_the_records_say_which_tool_measured(pinged: tuple[str, Path]) -> None:
    pinger, run_dir = pinged
    fanouts = {r["id"]: r for r in _records(run_dir, "ping_fanout")}
    assert len(fanouts) == 7  # one command per source
    pings = _records(run_dir, "ping")
    assert len(pings) == 42
    for rec in pings:
        fanout = fanouts[rec["fanout"]]
        assert fanout["src"] == rec["src"]
        if pinger == "fping":
            assert rec["flavor"] == "fping" and rec["argv"] == []
            assert fanout["argv"][:2] == ["fping", "-C"] and fanout["argv"][2] == str(PINGS)
        else:
            assert rec["flavor"] == "iputils" and rec["argv"][:2] == ["ping", "-n"]
            assert fanout["argv"][:2] == ["sh", "-c"]
    run = read_run(run_dir)
    assert run.options.pinger == pinger and run.complete
    has_fping = shutil.which("fping") is not None  # preflight finds it, whichever pinger ran
    for host in run.measured_hosts:
        assert host.connection is not None
        assert (host.connection.tools.get("fping") is not None) == has_fping


def test_nothing_is_left_running_after_either_pinger(
    pinged: tuple[str, Path], lab: control.LabInfo
) -> None:
    for host in lab.hosts:
        for pid in netns.netns_pids(lab.netns(host)):
            comm = Path(f"/proc/{pid}/comm")
            name = comm.read_text().strip() if comm.exists() else ""
            assert name not in ("fping", "ping", "timeout"), (host, pid, name)


def test_a_sampled_ping_plan_leaves_not_planned_cells_and_exits_0(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    proc = probe("run", str(lab.inventory), "-o", str(tmp_path), "--ping-pairs", "sample:1",
                 "--count", "5", "--interval", "0.05", "--no-bandwidth")  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # not-planned cells are not failures
    run_dir = _run_dir(proc)
    run = read_run(run_dir)
    plan = select_ping_pairs(run.measured_hosts, parse_ping_pairs("sample:1"))
    # matrix.csv holds what was planned; a pair the plan left out is implied (no row), and
    # `export --with-unplanned` writes it as the not-planned row it is
    rows = _matrix(run_dir)
    assert {(row["src"], row["dst"]) for row in rows} == set(plan.pairs)
    assert {row["status"] for row in rows} == {"ok"}
    every = probe("export", str(run_dir), "--with-unplanned", "-o", str(tmp_path / "all.csv"))
    assert every.returncode == 0, every.stderr
    full = pd.read_csv(tmp_path / "all.csv").to_dict("records")
    left_out = [row for row in full if row["status"] == "not-planned"]
    assert {(row["src"], row["dst"]) for row in left_out} == set(plan.not_planned())
    assert left_out and {row["reason"] for row in left_out} == {"not in the sample:1 plan"}
    assert len(full) == len(rows) + len(left_out)
    assert {(r["src"], r["dst"]) for r in _records(run_dir, "ping")} == set(plan.pairs)
    assert run.complete and run.options.ping_pairs == "sample:1"
    assert run.cells is not None and run.cells.rtt_not_planned == len(left_out)
    shown = probe("show", str(run_dir), "--metric", "rtt_p50_ms", "--by", "region")
    assert shown.returncode == 0 and "not planned)" in shown.stdout, shown.stdout


def test_a_hanging_fping_is_caught_at_preflight_auto_pings_with_ping_there(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    """fping's version probe is part of preflight: where ``fping -v`` hangs, ``auto`` pings with
    ping from that host and the run is complete; ``--pinger fping`` makes its row tool-hung."""
    if shutil.which("fping") is None:
        pytest.skip("fping is not installed on this machine (`make sysdeps` installs it)")
    train = ["--count", "5", "--interval", "0.05", "--no-bandwidth"]
    control.break_tool(lab, "ap2", "fping", "hang")
    try:
        auto = probe("run", str(lab.inventory), "-o", str(tmp_path / "auto"), *train)
        forced = probe("run", str(lab.inventory), "-o", str(tmp_path / "fping"), *train,
                       "--pinger", "fping")  # fmt: skip
    finally:
        control.restore_tool(lab, "ap2", "fping")
    assert auto.returncode == 0, auto.stderr
    run_dir = _run_dir(auto)
    assert {row["status"] for row in _matrix(run_dir)} == {"ok"}
    tools = {r["src"]: r["argv"][0] for r in _records(run_dir, "ping_fanout")}
    assert tools.pop("ap2") == "sh" and set(tools.values()) == {"fping"}
    (ap2,) = [r for r in _records(run_dir, "host") if r["host"] == "ap2"]
    assert ap2["hung"] == {"fping": "no answer to -v within 5 s"}
    assert forced.returncode == 4, forced.stderr
    rows = _matrix(_run_dir(forced))
    assert {row["status"] for row in rows if row["src"] == "ap2"} == {"tool-hung"}
    assert all(
        row["reason"].startswith("fping hangs on ap2") for row in rows if row["src"] == "ap2"
    )
    assert {row["status"] for row in rows if row["src"] != "ap2"} == {"ok"}
    assert_clean(lab)  # the hung fping -v was stopped at its deadline
