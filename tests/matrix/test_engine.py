"""The vectorised engine gives the floats ``train_stats`` + ``rtt_confidence`` give, exactly."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from probe.matrix.engine import (
    CONFIDENCE,
    STATS,
    PingCells,
    ProbeReader,
    ping_cells,
    record_stats,
    train_stats,
)
from probe.matrix.exact import fsum_rows, mean_rows, pstdev_rows
from probe.model import CellStatus
from probe.stats import rtt_confidence
from probe.store.probes import PingRows, ping_rows
from probe.store.records import PingRecord, PingTrain
from probe.store.rundir import read_samples
from probe.tools.fping import parse_fping
from probe.tools.ping import PingSummary, parse_ping

FIXTURES = Path(__file__).parent.parent / "fixtures"


def reader(rows: PingRows) -> ProbeReader:
    """The received probes of some of ``rows``' records, in offset order (as parts give them),
    as many as their statistics count."""

    def read(wanted: NDArray[np.int64], counts: NDArray[np.int64]) -> tuple[Any, Any]:
        offset = np.repeat(rows.records["offset"].to_numpy(), rows.lengths())
        keep = rows.has_seq & rows.has_rtt & np.isin(offset, wanted)
        order = np.argsort(offset[keep], kind="stable")
        assert keep.sum() == counts.sum()
        return rows.seq[keep][order], rows.rtt_ms[keep][order]

    return read


def summarized(records: Sequence[tuple[int, PingRecord]]) -> PingCells:
    """The cells with every other record's statistics given (a statistics part) and its
    probes read on demand: what a rebuild from a run's parts does."""
    given, rest = records[::2], records[1::2]
    rows = PingRows.of(ping_rows(given))
    return ping_cells(PingRows.of(ping_rows(rest)), record_stats(rows), reader(rows))


def check(records: Sequence[tuple[int, PingRecord]]) -> None:
    """Each cell's row equals the Python figures of its latest record (largest offset), and
    the same cells come from statistics computed beforehand (``record_stats``)."""
    cells = ping_cells(PingRows.of(ping_rows(records)))
    other = summarized(records)
    pd.testing.assert_frame_equal(other.cells, cells.cells)
    assert other.start.tolist() == cells.start.tolist()
    assert other.count.tolist() == cells.count.tolist()
    assert other.rtt_ms.tobytes() == cells.rtt_ms.tobytes()
    assert other.seq.tolist() == cells.seq.tolist()
    latest: dict[tuple[str, str, str], tuple[int, PingRecord]] = {}
    for offset, rec in records:
        key = (rec.src, rec.dst, rec.network)
        if key not in latest or latest[key][0] < offset:
            latest[key] = (offset, rec)
    frame = cells.cells
    assert sorted(zip(frame["src"], frame["dst"], frame["network"], strict=True)) == sorted(latest)
    for i, row in enumerate(frame.to_dict("records")):
        rec = latest[row["src"], row["dst"], row["network"]][1]
        assert (row["status"], row["reason"]) == (rec.status.value, rec.reason)
        assert row["trained"] == (rec.train is not None)
        if rec.train is None:
            assert cells.count[i] == 0
            continue
        stats = train_stats(rec.train)
        got = [r for _, r in rec.train.probes if r is not None]
        confidence = rtt_confidence(stats, got)
        for name in STATS + CONFIDENCE:
            want = getattr(stats if name in STATS else confidence, name)
            have = row[name]
            if want is None:
                assert have is None or have is pd.NA or math.isnan(have), name
            else:
                assert have == want and type(have) is not str, (name, have, want, rec.train)
        probes = cells.probes(i)
        assert probes.rtt_ms.tolist() == (got if rec.status is CellStatus.OK else [])
        if rec.status is CellStatus.OK:
            assert probes.seq is not None
            assert probes.seq.tolist() == [s for s, r in rec.train.probes if r is not None]


def record(src: str, dst: str, train: PingTrain | None, network: str = "default") -> PingRecord:
    ok = train is not None and any(r is not None for _, r in train.probes)
    status = CellStatus.OK if ok else CellStatus.ALL_LOST if train else CellStatus.TIMEOUT
    return PingRecord(src, dst, status, None if ok else "no reply", train=train, network=network)


def test_every_ping_and_fping_capture() -> None:
    trains = [
        PingTrain.from_report(parse_ping(p.read_text()))
        for p in sorted((FIXTURES / "ping").rglob("*.out"))
    ]
    for path in sorted((FIXTURES / "fping").rglob("*")):
        if path.is_file() and "stderr" in path.name:
            trains += [
                PingTrain.from_report(r) for r in parse_fping(path.read_text()).reports.values()
            ]
    trains = [t for t in trains if t.sent >= 1]
    assert len(trains) > 80
    check([(i, record("a", f"h{i}", t)) for i, t in enumerate(trains)])


def test_the_fixture_run() -> None:
    samples = read_samples(FIXTURES / "runs" / "20261123T090000Z")
    pings = [r for r in samples.records if isinstance(r, PingRecord)]
    assert pings
    check(list(enumerate(pings)))


def test_latest_record_of_a_cell_wins_whatever_the_row_order() -> None:
    early = PingTrain(3, 3, 0, ((1, 1.0), (2, 2.0), (3, 3.0)))
    late = PingTrain(2, 1, 0, ((1, None), (2, 9.5)))
    check([(500, record("a", "b", late)), (100, record("a", "b", early)),
           (300, record("a", "b", None)), (200, record("a", "b", early, "ib"))])  # fmt: skip


def test_no_rows() -> None:
    assert ping_cells(PingRows.of(ping_rows([]))).cells.empty


# RTTs as ping prints them (µs resolution: exact ties in sums are common) and arbitrary ones
MS = st.one_of(
    st.integers(0, 200_000_000).map(lambda us: us / 1000),
    st.floats(0.0, 1e5, allow_nan=False, allow_infinity=False),
)


@st.composite
def trains(draw: st.DrawFn) -> PingTrain:
    rtts = draw(st.lists(st.none() | MS, max_size=40))
    seqs = list(range(1, len(rtts) + 1))
    if draw(st.booleans()):
        seqs = draw(st.permutations(seqs))
    got = [r for r in rtts if r is not None]
    sent = max(len(rtts), draw(st.integers(1, 45)))
    received = draw(st.sampled_from([len(got), 0, min(sent, len(got) + 1)]))
    summary = None
    if draw(st.booleans()) and got:
        mdev = draw(st.none() | MS)
        summary = PingSummary(min(got), draw(MS), max(got), mdev)
    duplicates = draw(st.sampled_from([0, 0, 1, 3]))
    return PingTrain(sent, received, duplicates, tuple(zip(seqs, rtts, strict=True)), summary)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.none() | trains(), min_size=1, max_size=12))
def test_same_figures_as_train_stats(trains: list[PingTrain | None]) -> None:
    check([(10 * i, record("a", f"b{i % 5}", t)) for i, t in enumerate(trains)])


ROWS = st.integers(1, 25).flatmap(
    lambda n: st.lists(st.lists(MS, min_size=n, max_size=n), min_size=1, max_size=20)
)


@settings(max_examples=100, deadline=None)
@given(ROWS)
def test_exact_sums_means_and_deviations(rows: list[list[float]]) -> None:
    """Certified results are the correctly rounded ones Python gives; sums and means of RTTs
    as ping prints them (exact ties included) are all certified."""
    x = np.array(rows, np.float64)
    printed = np.all((x == 0) | ((x >= 0.001) & (np.round(x * 1000) / 1000 == x)), axis=1)
    for (value, certain), python in (
        (fsum_rows(x), math.fsum),
        (mean_rows(x), statistics.mean),
        (pstdev_rows(x), statistics.pstdev),
    ):
        if python is not statistics.pstdev:
            assert certain[printed].all()
        for v, sure, row in zip(value.tolist(), certain.tolist(), rows, strict=True):
            if sure:
                assert v == python(row), (python, row)
