"""The report's rehearsal section: read back from the summaries ``probe rehearse`` writes."""

from __future__ import annotations

import json
from pathlib import Path

from probe.cli.jsondoc import rehearse_document
from probe.cli.rehearse import save_summary
from probe.decide.options import CalcOptions, RehearseOptions
from probe.decide.rehearse import Figure, traffic
from probe.measure.rehearsal import HostOutcome, Rehearsal, write_timings
from probe.model import CellStatus
from probe.report import build_report, html, markdown
from probe.report.rehearsals import read_rehearsals
from tests.report.runs import make_lab8


def _rehearsed(run_dir: Path, rid: str, figure: Figure, run_id: str | None) -> Path:
    """A decode rehearsal over three hosts, saved as ``probe rehearse`` saves it."""
    t = traffic(["us1", "eu1", "ap1"], CalcOptions(), RehearseOptions("decode"))
    hosts = tuple(HostOutcome(h, CellStatus.OK, None, "10.0.0.1", 5201) for h in t.hosts)
    done = Rehearsal(rid, t, hosts, (), 12.5)
    folder = run_dir / f"rehearsal-{rid}"
    timings = write_timings(folder, done)
    return save_summary(folder, rehearse_document(done, [figure], run_id, str(timings)))


def test_the_report_shows_each_rehearsal_newest_first_with_its_figures(tmp_path: Path) -> None:
    run_dir = make_lab8(tmp_path / "run")
    old = Figure("per token", "ms", 128, 14.25, 20.5, 13.0, 15.0, 13.5)
    new = Figure("per token", "ms", 64, 151.75, 190.5, 140.0, 170.0, 150.0, lower_bound=True)
    _rehearsed(run_dir, "20261130T100000Z-aaaa", old, run_dir.name)
    _rehearsed(run_dir, "20261130T110000Z-bbbb", new, None)
    report = build_report(run_dir)
    assert [r.rehearsal_id for r in report.rehearsals] == [
        "20261130T110000Z-bbbb", "20261130T100000Z-aaaa"
    ]  # fmt: skip
    assert report.rehearsals[1].figures == (old,)  # the summary reads back as it was written
    text = markdown.render(report)
    assert "## Rehearsals" in text
    assert text.index("20261130T110000Z-bbbb") < text.index("20261130T100000Z-aaaa")
    assert "decode over us1 → eu1 → ap1 → us1" in text
    row = "| per token | ms     | 128       | 14.25          | 20.50          | 13.00"
    assert row in text
    assert "+9.6" in text and "+36.7" in text and "+5.6" in text  # errors p50, p99, corrected
    assert "≥140.00" in text  # a lower bound says so
    assert "no prediction: rehearsed on an inventory" in text
    page = html.render(report)
    assert '<h2 id="rehearsals">Rehearsals</h2>' in page and "151.75" in page


def test_without_a_rehearsal_there_is_no_section(tmp_path: Path) -> None:
    report = build_report(make_lab8(tmp_path / "run"))
    assert report.rehearsals == ()
    assert "Rehearsals" not in markdown.render(report)
    assert "rehearsals" not in html.render(report)


def test_a_damaged_summary_is_one_warning_naming_it_and_the_others_stay(tmp_path: Path) -> None:
    run_dir = make_lab8(tmp_path / "run")
    good = Figure("per token", "ms", 8, 14.0, 20.0)
    _rehearsed(run_dir, "20261130T100000Z-aaaa", good, None)
    torn = _rehearsed(run_dir, "20261130T110000Z-bbbb", good, None)
    torn.write_text(torn.read_text()[:40], encoding="utf-8")
    wrong = _rehearsed(run_dir, "20261130T120000Z-cccc", good, None)
    doc = json.loads(wrong.read_text())
    doc["figures"][0]["samples"] = "many"
    wrong.write_text(json.dumps(doc), encoding="utf-8")
    warnings: list[str] = []
    found = read_rehearsals(run_dir, warnings.append)
    assert [r.rehearsal_id for r in found] == ["20261130T100000Z-aaaa"]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert str(wrong) in warnings[0] and "'figures[0].samples'" in warnings[0]
    assert str(torn) in warnings[1] and "not valid JSON" in warnings[1]
    assert len(build_report(run_dir, warn=warnings.append).rehearsals) == 1


def test_a_rehearsal_predicted_from_another_run_is_left_out_with_a_warning(tmp_path: Path) -> None:
    run_dir = make_lab8(tmp_path / "run")
    ours = Figure("per token", "ms", 8, 14.0, 20.0, 13.0, 15.0, 13.5)
    _rehearsed(run_dir, "20261130T100000Z-aaaa", ours, run_dir.name)
    copied = _rehearsed(run_dir, "20261130T110000Z-bbbb", ours, "20261101T000000Z")
    warnings: list[str] = []
    report = build_report(run_dir, warn=warnings.append)
    assert [r.rehearsal_id for r in report.rehearsals] == ["20261130T100000Z-aaaa"]
    (line,) = warnings
    assert str(copied) in line and "from run 20261101T000000Z, not from this run" in line
