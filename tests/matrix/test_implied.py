"""Implied pairs: a sampled ping plan's pairs without a measurement or a reason of their own have
no row, and every view and count reads as if they had (the frame before them is the reference).

The reference is the long form as probe built it before implied pairs: every ordered pair
assembled (a builder told its run has none), from the same records.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.matrix import build
from probe.matrix.build import MatrixBuilder, implied_by_region, implied_pairs, with_implied
from probe.matrix.implied import implied_of, region_sizes
from probe.model import INBOUND_NONE, CellStatus
from probe.store.records import (
    HostRecord,
    Iperf3MultiRecord,
    Iperf3Record,
    PingRecord,
    PingTrain,
    SampleRecord,
)
from probe.store.rundoc import InventoryRef, RunDoc, RunHost, RunOptionsDoc
from tests.matrix.test_build import iperf


def _run(hosts: tuple[RunHost, ...], ping_pairs: str, pairs: str, bandwidth: bool) -> RunDoc:
    return RunDoc(
        run_id="r1", probe_version="0", inventory=InventoryRef("inventory.yaml", "0" * 64),
        started_utc="2026-11-23T00:00:00Z", hosts=hosts,
        options=RunOptionsDoc(ping_pairs=ping_pairs, pairs=pairs, bandwidth=bandwidth),
    )  # fmt: skip


def _ping(src: str, dst: str, lost: bool) -> PingRecord:
    rtts = [None, None] if lost else [1.0, 2.5]
    got = [r for r in rtts if r is not None]
    train = PingTrain(sent=2, received=len(got), duplicates=0,
                      probes=tuple((i + 1, r) for i, r in enumerate(rtts)))  # fmt: skip
    return PingRecord(src, dst, CellStatus.ALL_LOST if lost else CellStatus.OK, train=train)


def _iperf(src: str, dst: str, multi: bool) -> Iperf3Record | Iperf3MultiRecord:
    return iperf(src, dst, 900.0, multi=multi, streams=4 if multi else 1)


def full_frame(run: RunDoc, records: list[SampleRecord]) -> pd.DataFrame:
    """The long form with every pair assembled: the frame of probe before implied pairs."""
    builder = MatrixBuilder(run)
    builder._implied = None
    builder.add_all(records)
    return builder.frame()


@st.composite
def runs(draw: st.DrawFn) -> tuple[RunDoc, list[SampleRecord]]:
    n = draw(st.integers(2, 7))
    regions = [draw(st.sampled_from(["eu", "us", "ap"])) for _ in range(n)]
    zones = [draw(st.sampled_from([None, "z1", "z2"])) for _ in range(n)]
    closed = [draw(st.booleans()) and draw(st.booleans()) for _ in range(n)]
    hosts = tuple(
        RunHost(f"h{i}", f"10.0.0.{i + 1}", region=regions[i], zone=zones[i],
                inbound=INBOUND_NONE if closed[i] else RunHost("x", "y").inbound)
        for i in range(n)
    )  # fmt: skip
    ping_pairs = draw(st.sampled_from(["sample:1", "sample:2", "intra-region", "intra-zone"]))
    pairs = draw(st.sampled_from(["all", "sample:1", "intra-region", "cross-region"]))
    run = _run(hosts, ping_pairs, pairs, draw(st.booleans()))
    names = [h.name for h in hosts]
    cells = [(a, b) for a in names for b in names if a != b]
    records: list[SampleRecord] = []
    for name in names:
        if draw(st.integers(0, 5)) == 0:
            records.append(HostRecord(name, CellStatus.UNREACHABLE, "connection refused"))
    for a, b in draw(st.lists(st.sampled_from(cells), max_size=12)):
        records.append(_ping(a, b, draw(st.booleans())))
    for a, b in draw(st.lists(st.sampled_from(cells), max_size=4)):
        records.append(_iperf(a, b, draw(st.booleans())))
    return run, records


def assert_same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal frames, text columns compared as objects: pandas infers its ``str`` dtype for a
    column of text from its values, so a column whose text rows are implied ones reads as
    ``object`` without them."""

    def plain(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for c in out.columns:
            if isinstance(out[c].dtype, pd.StringDtype):
                out[c] = out[c].astype(object).where(out[c].notna(), None)
        return out

    pd.testing.assert_frame_equal(plain(left), plain(right))


def _measured(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` that read as implied ones, by pair, dropped."""
    pure = (
        (frame["status"] == "not-planned")
        & frame["reason"].str.startswith("not in the ")
        & (frame["bw_status"] == "not-planned")
        & frame[build._FIGURES].isna().all(axis=1)
    )
    pair = frame["src"] + ">" + frame["dst"]
    keep = ~pure | pair.isin(pair[~pure])
    return frame[keep].reset_index(drop=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_the_frame_is_the_full_one_without_its_implied_pairs(
    case: tuple[RunDoc, list[SampleRecord]],
) -> None:
    run, records = case
    full = full_frame(run, records)
    frame = build.build_matrix(run, records)
    assert_same(frame, _measured(full))
    assert_same(with_implied(frame, run), full)
    # counts from the hosts are the full frame's counts
    implied = Counter(zip(full["src_region"], full["dst_region"], strict=True)) - Counter(
        zip(frame["src_region"], frame["dst_region"], strict=True)
    )
    assert implied_by_region(frame, run) == implied
    full_sizes = Counter(zip(full["src_region"], full["dst_region"], strict=True))
    assert region_sizes(h.region for h in run.measured_hosts) == dict(full_sizes)
    assert len(implied_pairs(frame, run)[0]) == len(full) - len(frame)


def test_a_sampled_run_stores_only_what_it_planned_or_measured() -> None:
    """Two regions of three hosts, ``sample:1``, bandwidth inside regions: of 30 ordered pairs,
    12 are intra-region, 2 between the representatives; the other 16 are implied."""
    hosts = tuple(
        RunHost(f"{r}{i}", f"10.0.{k}.{i}", region=r)
        for k, r in enumerate(["eu", "us"]) for i in range(3)
    )  # fmt: skip
    run = _run(hosts, "sample:1", "intra-region", True)
    frame = build.build_matrix(run, [])
    assert len(frame) == 14
    assert set(frame["status"]) == {"skipped"}  # planned, not measured yet
    full = with_implied(frame, run)
    assert len(full) == 30
    left = full[full["status"] == "not-planned"]
    assert len(left) == 16 and set(left["reason"]) == {"not in the sample:1 plan"}
    assert set(left["bw_reason"]) == {"not in the --pairs intra-region plan"}
    pd.testing.assert_frame_equal(full, full_frame(run, []))


def test_a_full_mesh_run_has_no_implied_pairs() -> None:
    hosts = (RunHost("a", "10.0.0.1"), RunHost("b", "10.0.0.2", region="us"))
    run = _run(hosts, "all", "all", False)
    assert implied_of(run) is None
    frame = build.build_matrix(run, [_ping("a", "b", False)])
    assert with_implied(frame, run) is frame
    pd.testing.assert_frame_equal(frame, full_frame(run, [_ping("a", "b", False)]))


def _sampled() -> tuple[RunDoc, list[SampleRecord]]:
    """Three regions of three hosts, ``sample:1``, bandwidth inside regions; a ping and a lost
    ping inside eu, one iperf3 test, a host down."""
    hosts = tuple(
        RunHost(f"{r}{i}", f"10.0.{k}.{i}", region=r)
        for k, r in enumerate(["eu", "us", "ap"]) for i in range(3)
    )  # fmt: skip
    records: list[SampleRecord] = [
        HostRecord("ap2", CellStatus.UNREACHABLE, "connection refused"),
        _ping("eu0", "eu1", False),
        _ping("eu1", "eu0", True),
        iperf("eu0", "eu1", 900.0),
    ]
    return _run(hosts, "sample:1", "intra-region", True), records


def test_views_and_counts_of_a_sampled_run_are_those_of_the_full_frame() -> None:
    from probe.decide.gate import _excluded_note
    from probe.report import coverage

    run, records = _sampled()
    frame, full = build.build_matrix(run, records), full_frame(run, records)
    assert len(frame) < len(full)
    order = build.host_order(run)
    for bw in (False, True):
        pd.testing.assert_frame_equal(
            build.status_grid(frame, order, bandwidth=bw, run=run).astype(object),
            build.status_grid(full, order, bandwidth=bw).astype(object),
        )
    for metric in ("rtt_p50_ms", "loss_pct", "bw_mbps"):
        assert build.by_region(frame, metric, run) == build.by_region(full, metric)
        assert build.left_out_by_region(frame, metric, run) == build.left_out_by_region(
            full, metric
        )
    assert coverage(run, build.preferred(frame)) == coverage(run, build.preferred(full))
    sparse, old = build.to_anchors(run, frame), build.to_anchors(run, full)
    assert sparse.regions == old.regions and len(sparse.pairs) < len(old.pairs)
    assert _excluded_note(sparse) == _excluded_note(old)
    for p in old.pairs:
        assert sparse.pair(p.src, p.dst) is not None
        got = sparse.pair(p.src, p.dst)
        assert got is not None and (got.status, got.reason) == (p.status, p.reason)


def test_export_with_unplanned_writes_every_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.cli import run as cli
    from probe.matrix.stored import save_matrix, stamp_of
    from probe.store.rundoc import encode_run

    run, records = _sampled()
    (tmp_path / "run.json").write_text(encode_run(run))
    frame = build.build_matrix(run, records)
    save_matrix(tmp_path, frame, stamp_of(tmp_path))
    assert cli(["export", str(tmp_path)]) == 0
    stored = capsys.readouterr().out
    assert cli(["export", str(tmp_path), "--with-unplanned"]) == 0
    every = capsys.readouterr().out
    assert len(stored.splitlines()) == len(frame) + 1
    assert len(every.splitlines()) == 9 * 8 + 1
    assert every == full_frame(run, records).to_csv(index=False)


def test_a_sampled_runs_anchors_file_is_v3_and_reads_back_its_implied_pairs() -> None:
    """A /2 reader would take a missing pair for one the run never had: the file says /3."""
    from probe.matrix.anchors import SCHEMA, SCHEMA_IMPLIED, dump_anchors, parse_anchors

    run, records = _sampled()
    anchors = build.to_anchors(run, build.build_matrix(run, records))
    text = dump_anchors(anchors)
    assert json.loads(text)["schema"] == SCHEMA_IMPLIED == "probe.anchors/3"
    back = parse_anchors(text)
    assert back.implied == anchors.implied and len(back.pairs) == len(anchors.pairs)
    left = back.pair("eu0", "us1")
    assert left is not None and left.status is CellStatus.NOT_PLANNED
    assert left.reason == "not in the sample:1 plan"
    hosts = (RunHost("a", "10.0.0.1"), RunHost("b", "10.0.0.2", region="us"))
    mesh = _run(hosts, "all", "all", False)
    full = build.to_anchors(mesh, build.build_matrix(mesh, [_ping("a", "b", False)]))
    assert full.implied is None and json.loads(dump_anchors(full))["schema"] == SCHEMA
