"""Cells without a record (not measured) apart from cells that failed with a reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.matrix.build import bandwidth_cells, load_matrix
from probe.matrix.unmeasured import Unmeasured, unmeasured
from probe.store.rundir import read_run
from probe.store.rundoc import RunOptionsDoc
from tests.report.runs import cut_short

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"
RESUME = "resume with probe run inventory/lab-3regions.yaml --resume R"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(GOLDEN, tmp_path / GOLDEN.name))


def _unmeasured(run_dir: Path) -> Unmeasured:
    doc = read_run(run_dir)
    return unmeasured(doc, load_matrix(run_dir, run=doc))


def _drop(run_dir: Path, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Keep the records of samples.jsonl for which ``keep(record as a dict)`` holds."""
    path = run_dir / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if keep(json.loads(line))))


def _options(run_dir: Path, **changes: object) -> None:
    doc = json.loads((run_dir / "run.json").read_text())
    doc["options"].update(changes)
    (run_dir / "run.json").write_text(json.dumps(doc))


def test_a_complete_run_with_failed_cells_misses_nothing(run_dir: Path) -> None:
    """ap2 down, us3 without iperf3, an all-lost pair: failures with reasons, not gaps."""
    doc = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**doc, "complete": False}))  # as probe writes
    got = _unmeasured(run_dir)
    assert got == Unmeasured(0, 56, 0, 56, interrupted=False, finished=True)
    assert not got.incomplete and got.notice("R", "inv.yaml") is None


def test_an_interrupted_run_counts_the_cells_it_never_reached(run_dir: Path) -> None:
    got = _unmeasured(cut_short(run_dir, 12))
    assert (got.rtt, got.bw, got.interrupted) == (0, 12, True)
    assert got.notice("R", "inventory/lab-3regions.yaml") == (
        "incomplete: 12 of 56 bandwidth cells and 0 of 56 RTT cells not measured "
        f"(interrupted; {RESUME})"
    )


def test_a_killed_run_did_not_finish(run_dir: Path) -> None:
    got = _unmeasured(cut_short(run_dir, 60, interrupted=False))
    assert got.bw == 42 and got.rtt == 18 and not got.finished
    assert got.notice("R", "inventory/lab-3regions.yaml") == (
        "incomplete: 42 of 56 bandwidth cells and 18 of 56 RTT cells not measured "
        f"(not finished; {RESUME})"
    )


def test_a_resume_killed_before_its_end_did_not_finish(run_dir: Path) -> None:
    doc = read_run(run_dir)
    assert doc.ended_utc is not None
    frame = load_matrix(run_dir, run=doc)
    assert unmeasured(replace(doc, resumed_utc="2026-11-23T10:00:00.000Z"), frame).incomplete
    assert not unmeasured(replace(doc, resumed_utc=doc.started_utc), frame).incomplete


def test_only_planned_bandwidth_cells_can_be_missing(run_dir: Path) -> None:
    regions = {h.name: h.region for h in read_run(run_dir).hosts}
    _drop(run_dir, lambda r: r["kind"] != "iperf3" or regions[r["src"]] != regions[r["dst"]])
    assert _unmeasured(run_dir).bw == 12  # eu: 3·2, us: 3·2 (ap2 is down: a reason, not a gap)
    _options(run_dir, pairs="cross-region")
    got = _unmeasured(run_dir)
    assert (got.bw, got.bw_cells, got.incomplete) == (0, 2 * (3 * 3 + 3 * 2 + 3 * 2), False)


def test_only_rtt_cells_the_ping_plan_holds_count(run_dir: Path) -> None:
    """``--ping-pairs intra-region``: the cross-region pairs are not-planned, never missing."""
    regions = {h.name: h.region for h in read_run(run_dir).hosts}
    _drop(run_dir, lambda r: r["kind"] != "ping" or regions[r["src"]] == regions[r["dst"]])
    assert _unmeasured(run_dir).rtt > 0  # the full mesh misses them
    _options(run_dir, ping_pairs="intra-region")
    got = _unmeasured(run_dir)
    assert (got.rtt, got.rtt_cells, got.incomplete) == (0, 3 * 2 + 3 * 2 + 2 * 1, False)
    _drop(run_dir, lambda r: (r["kind"], r.get("src"), r.get("dst")) != ("ping", "eu1", "eu2"))
    assert _unmeasured(run_dir).notice("R", "inventory/lab-3regions.yaml") == (
        f"incomplete: 0 of 56 bandwidth cells and 1 of 14 RTT cells not measured ({RESUME})"
    )


def test_without_bandwidth_only_rtt_cells_count(run_dir: Path) -> None:
    _drop(run_dir, lambda r: r["kind"] != "iperf3")
    _options(run_dir, bandwidth=False)
    assert not _unmeasured(run_dir).incomplete
    got = _unmeasured(cut_short(run_dir, 5))
    assert got.notice("R", "inventory/lab-3regions.yaml") == (
        f"incomplete: 5 of 56 RTT cells not measured (interrupted; {RESUME})"
    )


def test_the_bandwidth_plan_is_the_one_probe_run_makes() -> None:
    doc = read_run(GOLDEN)
    hosts = [h.name for h in doc.measured_hosts]
    assert bandwidth_cells(doc) == {(a, b) for a in hosts for b in hosts if a != b}
    no_bw = replace(doc, options=RunOptionsDoc(bandwidth=False))
    assert bandwidth_cells(no_bw) == frozenset()
    sampled = bandwidth_cells(replace(doc, options=RunOptionsDoc(pairs="sample:1")))
    intra = {(a, b) for a, b in bandwidth_cells(doc) if a[:2] == b[:2]}
    assert intra < sampled and len(sampled - intra) == 2 * 3  # one host per region, 3 regions
