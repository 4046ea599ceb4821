"""The report's confidence notes and the region spread column."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from probe.matrix.regions import Spread
from probe.report import build_report, markdown, spread_cell
from probe.report import html as html_report
from probe.report.confidence import confidence_notes
from tests.report.runs import lab8_records, run_doc, write_run


def _run(tmp_path: Path, short: set[tuple[str, str]]) -> Path:
    names, records = lab8_records(random.Random(8))
    for rec in records:
        if rec["kind"] == "iperf3" and rec["result"] and (rec["src"], rec["dst"]) in short:
            rec["result"]["duration_s"] = 2.0
    run_dir = tmp_path / "20261123T090000Z"
    return write_run(run_dir, run_doc(names, run_dir.name, records[-1]["t"] + 1.0), records)


def test_the_report_notes_short_tests_few_sample_p99s_and_split_regions(tmp_path: Path) -> None:
    report = build_report(_run(tmp_path, {("eu1", "ap1"), ("eu1", "eu2")}))
    few, short, split = report.confidence
    assert few.startswith("RTT p99 from fewer than 100 replies in every ok cell (41)")
    assert short.startswith("Bandwidth tests shorter than 20 round trips")
    assert "eu1→ap1 (2 s at 165 ms)" in short and "eu1→eu2" not in short  # 2 s is plenty on a LAN
    assert "--duration 3 or more" in short  # 20 × 165 ms
    assert "eu → eu (pair p50s 0.504–6.69 ms)" in split  # eu2 is slow as a source
    md = markdown.render(report)
    assert "## Confidence" in md and "| 0.50–6.69 multi-modal |" in md
    page = html_report.render(report)
    assert '<h2 id="confidence">Confidence</h2>' in page and "0.50–6.69 multi-modal" in page


def test_no_notes_when_nothing_rests_on_too_little() -> None:
    frame = pd.DataFrame(
        {"src": ["a"], "dst": ["b"], "status": ["ok"], "p99_few_samples": [False],
         "bw_short_for_rtt": pd.array([None], dtype="boolean")}
    )  # fmt: skip
    assert confidence_notes(frame, {("r", "r"): Spread(1.0, 1.2, 2, False)}) == ()
    old = frame.drop(columns=["p99_few_samples", "bw_short_for_rtt"])  # a matrix from before
    assert confidence_notes(old, {}) == ()


def test_spread_cell() -> None:
    assert spread_cell(None) == "–"
    assert spread_cell(Spread(0.45, 16.3, 12, True)) == "0.45–16.30 multi-modal"
    assert spread_cell(Spread(79.5, 80.25, 9, False)) == "79.50–80.25"
