"""A stalled bandwidth test through the CLI (issue 12, case 5): ``probe calc`` labels every
figure over it a lower bound and prints its caveat; ``probe report`` lists the stalled tests,
hints at them in their own words and prints the caveats of its headline."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from probe.cli import run
from probe.matrix.anchors import write_anchors
from probe.report import Headline, build_report, html, markdown
from tests.decide.fleet import make_anchors, with_stalled_bw
from tests.report.runs import HOSTS, iperf3_record

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"
STALL = "iperf3 client on a-0 → server b-0: stalled for 5.0 s of 10 s (from 2.0 s)"
CAVEAT = f"caveat: a-0→b-0: bandwidth stalled ({STALL})"


@pytest.fixture
def stalled_anchors(tmp_path: Path) -> Path:
    """Two hosts 223 ms apart; the test a-0 → b-0 stalled (the issue's 111.5 ms prefill)."""
    anchors = with_stalled_bw(make_anchors({"a": 1, "b": 1}, 223.0), "a-0", "b-0", STALL, None)
    path = tmp_path / "anchors.json"
    write_anchors(path, anchors)
    return path


def test_calc_labels_a_figure_over_a_stalled_hop_and_prints_its_caveat(
    stalled_anchors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = run(["calc", str(stalled_anchors), "--path", "a-0,b-0", "--open",
              "--scenario", "decode,prefill"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    prefill = out[out.index("== prefill") :]
    assert "per request (lower bound)" in prefill and "111.5" in prefill
    assert prefill.splitlines()[-1] == CAVEAT  # under the table it qualifies
    assert out.count(CAVEAT) == 2  # once per scenario, not once per row


def test_calc_prints_the_caveat_under_tensor_parallel_and_pool_too(
    stalled_anchors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = run(["calc", str(stalled_anchors), "--path", "a-0,b-0", "--scenario", "tp,pool",
              "--pool-service", "800ms"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.count(CAVEAT) == 2 and "(lower bound)" in out


def test_calc_without_a_stall_prints_no_caveat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "anchors.json"
    write_anchors(path, make_anchors({"a": 1, "b": 1}, 223.0))
    assert run(["calc", str(path), "--path", "a-0,b-0", "--scenario", "prefill"]) == 0
    out = capsys.readouterr().out
    assert "caveat" not in out and "lower bound" not in out


def test_the_report_shows_stalled_tests_and_the_caveats_of_its_headline(tmp_path: Path) -> None:
    """Every test to or from eu2 stalled (a later record wins): the report lists them with their
    reason, hints at eu2 in the words of a stall, and its headline is placed around them."""
    run_dir = Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))
    live = [h for hosts in HOSTS.values() for h in hosts if h not in ("ap2", "us3")]
    lines = []
    for other in (h for h in live if h != "eu2"):
        for src, dst in (("eu2", other), (other, "eu2")):
            rec = iperf3_record(src, dst, 1_795_500_000.0, 0.0, None)
            why = f"iperf3 client on {src} → server {dst}: no bytes received in 5 s"
            lines.append(json.dumps({**rec, "status": "stalled", "reason": why}) + "\n")
    with (run_dir / "samples.jsonl").open("a") as samples:
        samples.writelines(lines)
    assert run(["report", str(run_dir)]) == 0
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:4] for line in md.splitlines() if "| stalled " in line]
    assert len(rows) == 10 and {r[0].strip() for r in rows} == {"bandwidth"}
    reasons = {r[2].strip() for r in rows}
    assert "iperf3 client on eu2 → server eu1: no bytes received in 5 s" in reasons
    assert "eu2: bandwidth stalled as source (5/6) and as destination (5/6)" in md  # 6th: us3
    assert "suspect the host itself stopping for seconds" in md
    assert "`stall` bandwidth test stalled" in md
    headline = md[md.index("## Calculator headline") : md.index("## Pipeline fitness")]
    placed = headline.split("auto-placed on ")[1].split(":")[0]
    assert "eu2" not in placed and "lower bound" not in headline  # placed around the stalls

    report = build_report(run_dir)
    caveat = "eu1→eu2: bandwidth stalled (iperf3 client on eu1 → server eu2: no bytes …)"
    shown = replace(report, headline=Headline(report.headline.text, (caveat,)))
    assert f"{report.headline.text}\n\n- caveat: {caveat}\n" in markdown.render(shown)
    assert f'<ul class="caveats"><li>caveat: {caveat}</li></ul>' in html.render(shown)
