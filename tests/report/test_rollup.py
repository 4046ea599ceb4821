"""Every view of a region pair shows the same roll-up: show --by region, anchors, report, diff."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from probe.cli import run
from probe.matrix.build import bandwidth_cells, load_matrix, to_anchors
from probe.model import INBOUND_NONE
from probe.plan import parse_ping_pairs, select_ping_pairs
from probe.report import build_report, markdown
from probe.report.diff import diff_runs
from probe.report.heatmap import HEATMAPS, UNPLANNED, grids
from probe.store.rundir import read_run
from tests.report.runs import T0, iperf3_record, ping_record, run_doc, write_run

REGION = {"a1": "a", "b1": "b", "b2": "b", "b3": "b"}
#: a1 → b*: 0 % of 10, 0 % of 10 and 30 % of 40 probes. Pooled loss 12/60 = 20 %, while the
#: median of the pairs' losses is 0 % (and their mean 10 %).
PROBES = {("a1", "b1"): (10, 0), ("a1", "b2"): (10, 0), ("a1", "b3"): (40, 12)}
RTT_MS = {("a1", "b1"): 10.0, ("a1", "b2"): 20.0, ("a1", "b3"): 40.0}
BW_BPS = {("a1", "b1"): 100e6, ("a1", "b2"): 300e6}


def _run(run_dir: Path) -> Path:
    names = list(REGION)
    records = []
    t = T0
    for src in names:
        for dst in names:
            if src == dst:
                continue
            t += 1.0
            sent, lost = PROBES.get((src, dst), (20, 0))
            rtt = RTT_MS.get((src, dst), 1.0)
            rtts = [None if i < lost else rtt + 0.1 * (i % 3) for i in range(sent)]
            records.append(ping_record(src, dst, t, rtts))
            bps = BW_BPS.get((src, dst))  # the other tests failed: the run is complete
            reason = None if bps is not None else "no goodput in this fixture"
            records.append(iperf3_record(src, dst, t, bps, reason))
    doc = run_doc(names, run_dir.name, t + 1.0)
    hosts = tuple(replace(h, region=REGION[h.name]) for h in doc.hosts)
    return write_run(run_dir, replace(doc, hosts=hosts), records)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("runs") / "20261123T090000Z")


def _show(run_dir: Path, metric: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert run(["show", str(run_dir), "--metric", metric, "--by", "region"]) == 0
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if re.match(r"^a\s+b\s", ln)]
    return line.split()[2]


def test_show_anchors_report_and_diff_agree_on_a_region_pair(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = to_anchors(read_run(run_dir), load_matrix(run_dir))
    row = anchors.region("a", "b")
    assert row is not None and row.rtt is not None
    report = build_report(run_dir)
    (reported,) = [r for r in report.rollup if (r.src_region, r.dst_region) == ("a", "b")]
    diff = diff_runs(load_matrix(run_dir), load_matrix(run_dir))
    (region,) = [d for d in diff.regions if (d.src, d.dst) == ("a", "b")]
    before = {c.kind: c.before for c in region.changes}
    # loss: pooled over probes everywhere, not the median of 0, 0 and 30 %
    assert row.loss_pct == pytest.approx(20.0)
    assert reported.loss_pct == before["loss"] == row.loss_pct
    assert _show(run_dir, "loss_pct", capsys) == "20"
    # and every other figure: the report shows the anchors' rows, diff and show read them
    assert reported == row
    assert before == {
        "rtt_p50": row.rtt.p50_ms,
        "rtt_p99": row.rtt.p99_ms,
        "loss": row.loss_pct,
        "bw": row.bw.forward_mbps,
    }
    assert _show(run_dir, "rtt_p50_ms", capsys) == f"{row.rtt.p50_ms:.3g}"
    assert _show(run_dir, "bw_mbps", capsys) == f"{row.bw.forward_mbps:.0f}"


def test_show_by_region_says_what_each_figure_rests_on(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", str(run_dir), "--metric", "bw_mbps", "--by", "region"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bw_mbps by region (median over pairs with a goodput)")
    assert re.search(r"^a\s+b\s+200\s+2/3$", out, re.M)
    assert run(["show", str(run_dir), "--metric", "rtt_max_ms", "--by", "region"]) == 2
    err = capsys.readouterr().err
    assert "no region roll-up of 'rtt_max_ms'" in err and len(err.strip().splitlines()) == 1


def _sampled_run(run_dir: Path) -> Path:
    """The same four hosts pinged with ``--ping-pairs sample:1``: records for the planned pairs
    only (b's full mesh, a1 ↔ b's representative), as ``probe run`` writes them."""
    doc = run_doc(list(REGION), run_dir.name, T0 + 100.0)
    hosts = tuple(replace(h, region=REGION[h.name]) for h in doc.hosts)
    doc = replace(doc, hosts=hosts, options=replace(doc.options, ping_pairs="sample:1"))
    plan = select_ping_pairs(doc.measured_hosts, parse_ping_pairs("sample:1"))
    records = [ping_record(s, d, T0 + i, [1.0] * 20) for i, (s, d) in enumerate(plan.pairs)]
    return write_run(run_dir, doc, records)


def test_pairs_a_sampled_plan_left_out_are_not_planned_in_every_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _sampled_run(tmp_path / "20261123T090000Z")
    frame = load_matrix(run_dir)
    left_out = frame[frame.status == "not-planned"]
    assert len(left_out) == 4 and set(left_out.reason) == {"not in the sample:1 plan"}
    assert set(frame[frame.status != "not-planned"].status) == {"ok"}
    # the region roll-up rests on the planned, measured pair only, and says so
    row = to_anchors(read_run(run_dir), frame).region("a", "b")
    assert row is not None and (row.pairs, row.pairs_ok, row.pairs_probed) == (3, 1, 1)
    assert run(["show", str(run_dir), "--metric", "rtt_p50_ms", "--by", "region"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^a\s+b\s+1\s+1/3 \(2 not planned\)$", out, re.M), out
    assert re.search(r"^b\s+b\s+1\s+6/6$", out, re.M), out
    # the report counts them apart, not as failures; the heatmap marks them with their own code
    report = build_report(run_dir)
    assert report.coverage.ping_not_planned == 4
    assert not [h for h in report.hints if h.aspect == "ping failed"]
    assert "all probes lost 0, not planned 4, failed 0;" in markdown.render(report)
    codes = grids(frame, list(REGION), HEATMAPS[0])[1]
    assert (codes == UNPLANNED).sum() == 4 and set(codes.flat) == {"", UNPLANNED}


def _nat_run(run_dir: Path) -> Path:
    """a1 and b3 sit behind NAT (``inbound: none``): the cells between them are not-measurable,
    those toward one of them come from its own pings (from_reverse); every other test ran."""
    doc = run_doc(list(REGION), run_dir.name, T0 + 100.0)
    hosts = tuple(
        replace(h, region=REGION[h.name], inbound=INBOUND_NONE if h.name in NAT else h.inbound)
        for h in doc.hosts
    )
    doc = replace(doc, hosts=hosts)
    pinged = [(s, d) for s in REGION for d in REGION if s != d and d not in NAT]
    records = [ping_record(s, d, T0 + i, [1.0] * 20) for i, (s, d) in enumerate(pinged)]
    tests = sorted(bandwidth_cells(doc))
    records += [iperf3_record(s, d, T0 + 50 + i, 100e6, None) for i, (s, d) in enumerate(tests)]
    return write_run(run_dir, doc, records)


NAT = ("a1", "b3")


def test_pairs_that_cannot_be_measured_are_not_measurable_in_every_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _nat_run(tmp_path / "20261123T090000Z")
    frame = load_matrix(run_dir)
    apart = frame[frame.status == "not-measurable"]
    assert sorted(zip(apart.src, apart.dst, strict=True)) == [("a1", "b3"), ("b3", "a1")]
    assert set(apart.bw_status) == {"not-measurable"}
    assert set(frame[frame.status != "not-measurable"].status) == {"ok"}
    # show --by region: the figures rest on the measurable pairs, and say what was left out
    for metric in ("rtt_p50_ms", "bw_mbps"):
        assert run(["show", str(run_dir), "--metric", metric, "--by", "region"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^a\s+b\s+\S+\s+2/3 \(1 not measurable\)$", out, re.M), out
        assert re.search(r"^b\s+a\s+\S+\s+2/3 \(1 not measurable\)$", out, re.M), out
        assert re.search(r"^b\s+b\s+\S+\s+6/6$", out, re.M), out
        # --json counts what the text says (once they disagreed: JSON knew only not-planned)
        assert run(["show", str(run_dir), "--metric", metric, "--by", "region", "--json"]) == 0
        regions = {(r["src_region"], r["dst_region"]): r for r in json.loads(
            capsys.readouterr().out)["regions"]}  # fmt: skip
        assert (regions["a", "b"]["pairs_measured"], regions["a", "b"]["pairs"]) == (2, 3)
        assert regions["a", "b"]["pairs_not_measurable"] == 1
        assert regions["b", "a"]["pairs_not_measurable"] == 1
        assert regions["b", "b"]["pairs_not_measurable"] == 0
        assert {r["pairs_not_planned"] for r in regions.values()} == {0}
    # the report counts them apart, never as failures, and the heatmaps mark them n/m
    report = build_report(run_dir)
    assert (report.coverage.ping_not_measurable, report.coverage.bw_not_measurable) == (2, 2)
    assert not [h for h in report.hints if h.aspect in ("ping failed", "bandwidth failed")]
    text = markdown.render(report)
    counts = "lost 0, not measurable 2, failed 0; bandwidth ok 10, not measurable 2, failed 0."
    assert counts in text, text
    assert "`n/m` not measurable" in text and "`fw` iperf3 port blocked" in text
    codes = grids(frame, list(REGION), HEATMAPS[0])[1]
    assert (codes == "n/m").sum() == 2
