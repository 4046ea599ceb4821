"""samples → matrix: every ordered pair has a row, a measurement or a reason, never a silent 0."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from probe.matrix.anchors import dump_anchors, parse_anchors
from probe.matrix.build import (
    COLUMNS,
    MatrixBuilder,
    build_matrix,
    by_region,
    rtt_samples,
    stored_run,
    to_anchors,
    wide,
)
from probe.matrix.engine import part_stats
from probe.matrix.samples import Probes
from probe.model import CellStatus
from probe.store.records import (
    HostRecord,
    Iperf3MultiRecord,
    Iperf3Record,
    PingLoadRecord,
    PingRecord,
    PingTrain,
    SampleRecord,
)
from probe.store.rundir import RunStore, read_run, read_samples
from probe.store.rundoc import InventoryRef, RunDoc, RunHost
from probe.tools.iperf3 import IperfResult
from tests.cells import Cells, as_float

RUN = RunDoc(
    run_id="r1",
    probe_version="0",
    inventory=InventoryRef("inventory.yaml", "0" * 64),
    started_utc="2026-11-23T00:00:00Z",
    hosts=(
        RunHost("a", "10.0.0.1", region="eu"),
        RunHost("b", "10.0.0.2", region="eu"),
        RunHost("c", "10.0.0.3", region="us"),
        RunHost("j", "10.0.0.4", region="eu", measure=False),
    ),
)


def train(rtts: list[float | None]) -> PingTrain:
    got = [r for r in rtts if r is not None]
    probes = tuple((i + 1, r) for i, r in enumerate(rtts))
    return PingTrain(sent=len(rtts), received=len(got), duplicates=0, probes=probes)


def ping(src: str, dst: str, rtts: list[float | None]) -> PingRecord:
    ok = any(r is not None for r in rtts)
    return PingRecord(
        src=src, dst=dst, status=CellStatus.OK if ok else CellStatus.ALL_LOST,
        reason=None if ok else "all lost", train=train(rtts),
    )  # fmt: skip


def iperf(
    src: str, dst: str, mbps: float, multi: bool = False, streams: int = 1
) -> Iperf3Record | Iperf3MultiRecord:
    result = IperfResult(
        receiver_bps=mbps * 1e6, sender_bps=mbps * 1e6, retransmits=3, max_snd_cwnd_bytes=None,
        mean_rtt_ms=40.0, cpu_local_pct=None, cpu_remote_pct=None, cpu_bound=False, version=None,
        reverse=False, streams=streams, duration_s=10.0, omit_s=2.0, bytes_received=0,
    )  # fmt: skip
    return (Iperf3MultiRecord if multi else Iperf3Record)(
        src=src, dst=dst, client=src, server=dst, reverse=False, status=CellStatus.OK,
        result=result,
    )  # fmt: skip


def records() -> list[SampleRecord]:
    return [
        HostRecord("a", CellStatus.OK),
        HostRecord("b", CellStatus.OK),
        HostRecord("c", CellStatus.UNREACHABLE, "connection refused"),
        ping("a", "b", [1.0, 2.0, 3.0, 2.0]),
        ping("b", "a", [1.0, 1.0]),
        ping("a", "c", [None, None]),
        ping("b", "c", [40.0, 41.0]),
        iperf("a", "b", 90.0),
        iperf("b", "a", 45.0),
    ]


def test_every_ordered_pair_of_measured_hosts_has_a_row() -> None:
    frame = build_matrix(RUN, records())
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 6  # 3 measured hosts; the jump host j is not a row
    cell = Cells(frame)
    ab = tuple(
        cell.num("a", "b", c) for c in ("rtt_mean_ms", "ipdv_ms", "rtt_min_ms", "rtt_max_ms")
    )
    # 1, 2, 3, 2: mean 2, IPDV = (1 + 1 + 1) / 3, mdev = sqrt(((1)² + 0 + 1² + 0) / 4)
    assert ab == (2.0, 1.0, 1.0, 3.0)
    assert cell.num("a", "b", "rtt_mdev_ms") == pytest.approx(math.sqrt(0.5))
    assert cell.text("a", "c", "status") == "all-lost" and cell.num("a", "c", "loss_pct") == 100.0
    assert math.isnan(cell.num("a", "c", "rtt_p50_ms"))  # no RTT: NaN with a status, never 0


def test_a_failed_host_explains_its_rows_and_pings_towards_it_still_count() -> None:
    cell = Cells(build_matrix(RUN, records()))
    for dst in ("a", "b"):
        status, reason = cell.text("c", dst, "status"), cell.text("c", dst, "reason")
        assert status == "unreachable" and "source c" in reason
    assert cell.text("b", "c", "status") == "ok"
    assert cell.text("c", "a", "bw_status") == "unreachable"


def test_bandwidth_reverse_is_the_opposite_rows_forward() -> None:
    cell = Cells(build_matrix(RUN, records()))
    assert cell.num("a", "b", "bw_fwd_mbps") == 90.0 and cell.num("a", "b", "bw_rev_mbps") == 45.0
    assert cell.num("b", "a", "bw_rev_mbps") == 90.0


def test_the_latest_record_of_a_cell_wins_as_after_resume() -> None:
    failed = PingRecord("a", "b", CellStatus.TIMEOUT, "slow")
    cell = Cells(build_matrix(RUN, [failed, *records()]))
    assert cell.text("a", "b", "status") == "ok"
    cell = Cells(build_matrix(RUN, [*records(), failed]))
    assert cell.text("a", "b", "status") == "timeout"
    assert math.isnan(cell.num("a", "b", "rtt_p50_ms"))


def test_loaded_rtt_and_multi_stream_columns() -> None:
    extra = [
        PingLoadRecord("a", "b", CellStatus.OK, train=train([5.0, 7.0, 9.0])),
        iperf("a", "b", 180.0, multi=True, streams=4),
    ]
    cell = Cells(build_matrix(RUN, [*records(), *extra]))
    assert cell.num("a", "b", "rtt_loaded_p50_ms") == 7.0
    assert (
        cell.num("a", "b", "bw_fwd_multi_mbps") == 180.0
        and cell.num("a", "b", "bw_multi_streams") == 4
    )
    assert cell.num("a", "b", "bw_fwd_mbps") == 90.0  # the single stream is not replaced
    assert math.isnan(cell.num("b", "a", "rtt_loaded_p50_ms"))


def test_views_and_anchors() -> None:
    frame = build_matrix(RUN, records())
    grid = wide(frame, "rtt_mean_ms", ["a", "b", "c"])
    assert as_float(grid.loc["a", "b"]) == 2.0 and math.isnan(as_float(grid.loc["c", "a"]))
    roll = {(f.src_region, f.dst_region): f for f in by_region(frame, "rtt_mean_ms")}
    assert roll["eu", "eu"].pairs == 2 and roll["eu", "us"].measured == 1
    anchors = to_anchors(RUN, frame, rtt_samples(records()))
    again = parse_anchors(dump_anchors(anchors))  # strict JSON: no NaN anywhere
    pair = anchors.pair("a", "b")
    probes = None if pair is None else anchors.rtt_samples(pair)
    assert probes is not None and probes.rtt_ms.tolist() == [1.0, 2.0, 3.0, 2.0]
    assert again.pair("a", "b") == pair
    ca = again.pair("c", "a")
    assert ca is not None and ca.reason


def test_the_builder_streams_to_the_same_matrix_and_samples() -> None:
    """MatrixBuilder reduces records as they come; a host failure that comes *after* its cells
    still explains them, and a later failed ping drops the pair's RTT samples."""
    host_down = HostRecord("b", CellStatus.UNREACHABLE, "gone")
    failed = PingRecord("a", "c", CellStatus.TIMEOUT, "slow")
    stream = [*records(), failed, host_down]
    builder = MatrixBuilder(RUN)
    builder.add_all(iter(stream))  # an iterator: read once, never held
    frame = builder.frame()
    pd.testing.assert_frame_equal(frame, build_matrix(RUN, stream))
    cell = Cells(frame)
    assert cell.text("a", "b", "status") == "ok"  # measured before b's host record: kept
    assert cell.text("b", "a", "bw_status") == "ok"
    samples = builder.samples()
    assert samples["a", "b"].rtt_ms.tolist() == [1.0, 2.0, 3.0, 2.0]
    assert ("a", "c") not in samples
    expected = rtt_samples(stream)

    def plain(probes: Probes) -> tuple[list[float], list[int] | None]:
        return probes.rtt_ms.tolist(), None if probes.seq is None else probes.seq.tolist()

    assert {k: plain(v) for k, v in samples.items()} == {
        k: plain(v) for k, v in expected.items() if cell.text(*k, "status") == "ok"
    }


def test_statistics_parts_give_the_frame_and_samples_their_probes_give(tmp_path: Path) -> None:
    """A run writes each batch's statistics beside its probes; a rebuild reads them instead.
    Same frame, same samples, whatever mix: a cell measured again in a later part (the latest
    wins across parts), a part lost in a crash (its records from samples.jsonl)."""
    fixture = Path(__file__).parent.parent / "fixtures" / "runs" / "20261123T090000Z"
    records = read_samples(fixture).records
    pings = [r for r in records if isinstance(r, PingRecord)]
    store = RunStore.create(tmp_path, "run", summarize=part_stats)
    store.write_run(read_run(fixture))
    store.append_many([r for r in records if not isinstance(r, PingRecord)])
    for src in dict.fromkeys(r.src for r in pings):
        store.append_many([r for r in pings if r.src == src])
    again = replace(pings[0], train=PingTrain(2, 2, 0, ((0, 9.5), (1, 9.25))))
    store.append_many([again])
    store.append_many([replace(pings[1], status=CellStatus.TIMEOUT, train=None)])
    store.close()
    lost = sorted((store.dir / "probes").glob("ping-*.parquet"))[-1]
    lost.unlink()  # the crash window of the last batch
    run = read_run(store.dir)
    builders = []
    for summaries in (True, False):
        builder = MatrixBuilder(run)
        stored = stored_run(store.dir, [], summaries=summaries)
        builder.add_store(stored)
        builders.append(builder)
        if summaries:  # every record from its statistics but the lost part's one
            assert stored.summarized is not None
            assert stored.summarized.num_rows == len(pings) + 1
            assert stored.pings.records.num_rows == 1
    read, probed = builders
    pd.testing.assert_frame_equal(read.frame(), probed.frame())
    a, b = read.samples(), probed.samples()
    assert sorted(a) == sorted(b) and len(a) > 3
    for pair in b:
        assert a[pair].rtt_ms.tolist() == b[pair].rtt_ms.tolist()
        seq_a, seq_b = a[pair].seq, b[pair].seq
        assert seq_a is not None and seq_b is not None
        assert seq_a.tolist() == seq_b.tolist()
    frame = read.frame()
    cell = (frame["src"] == again.src) & (frame["dst"] == again.dst)
    assert frame.loc[cell, "rtt_max_ms"].tolist() == [9.5]
