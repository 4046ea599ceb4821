"""The probe store: ping records as Parquet rows, one per probe, and back."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.model import CellStatus
from probe.store.probes import SCHEMA, ping_rows
from probe.store.records import PingRecord, PingTrain
from probe.tools.ping import PingSummary

INT32 = st.integers(0, 2**31 - 1)
MS = st.floats(0, 1e5, allow_nan=False)
NAMES = st.text(min_size=1, max_size=8)


@st.composite
def trains(draw: st.DrawFn) -> PingTrain:
    probes = draw(st.lists(st.tuples(INT32, st.none() | MS), max_size=30))
    summary = draw(st.none() | st.builds(PingSummary, MS, MS, MS, st.none() | MS))
    sent = draw(st.integers(1, 2**31 - 1))
    return PingTrain(sent, draw(st.integers(0, sent)), draw(INT32), tuple(probes), summary)


@st.composite
def records(draw: st.DrawFn) -> PingRecord:
    status = draw(st.sampled_from(CellStatus))
    measured = status in (CellStatus.OK, CellStatus.ALL_LOST)
    return PingRecord(
        src=draw(NAMES),
        dst=draw(NAMES),
        status=status,
        reason=draw(st.none() | st.text(max_size=20)),
        train=draw(trains()) if measured else None,
        network=draw(st.sampled_from(["default", "ib", "eth"])),
    )


def stored(rec: PingRecord) -> tuple[Any, ...]:
    """What the store keeps of a record: every field its rows carry."""
    t = rec.train
    return (
        rec.src, rec.dst, rec.network, rec.status.value, rec.reason,
        None if t is None else (t.sent, t.received, t.duplicates),
        None if t is None or t.summary is None else vars_of(t.summary),
        () if t is None else t.probes,
    )  # fmt: skip


def vars_of(summary: PingSummary) -> tuple[float | None, ...]:
    return (summary.rtt_min_ms, summary.rtt_avg_ms, summary.rtt_max_ms, summary.rtt_mdev_ms)


def back(table: pa.Table) -> list[tuple[int, tuple[Any, ...]]]:
    """The rows read back into one tuple per record (its rows are contiguous)."""
    out: list[tuple[int, tuple[Any, ...]]] = []
    rows = table.to_pylist()
    i = 0
    while i < len(rows):
        first = rows[i]
        j = i
        while j < len(rows) and rows[j]["offset"] == first["offset"]:
            j += 1
        counts = (first["sent"], first["received"], first["duplicates"])
        line = tuple(first[k] for k in ("sum_min_ms", "sum_avg_ms", "sum_max_ms", "sum_mdev_ms"))
        probes = tuple((r["seq"], r["rtt_ms"]) for r in rows[i:j] if r["seq"] is not None)
        assert {r["phase"] for r in rows[i:j]} == {"ping"}
        record = (
            first["src"], first["dst"], first["network"], first["status"], first["reason"],
            None if counts[0] is None else counts, None if line[0] is None else line, probes,
        )  # fmt: skip
        out.append((first["offset"], record))
        i = j
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(records(), max_size=12))
def test_records_round_trip_through_rows(recs: list[PingRecord]) -> None:
    numbered = [(100 * i, rec) for i, rec in enumerate(recs)]
    table = ping_rows(numbered)
    assert table.schema == SCHEMA
    assert back(table) == [(offset, stored(rec)) for offset, rec in numbered]
    # a record without probes is one row; otherwise one row per probe, lost ones included
    sizes = [len(r.train.probes) if r.train is not None else 0 for r in recs]
    assert table.num_rows == sum(max(1, n) for n in sizes)


def test_a_record_without_probes_is_one_row_with_null_seq_and_rtt() -> None:
    failed = PingRecord("a", "b", CellStatus.TIMEOUT, reason="ping a → b: timed out")
    empty = PingRecord("a", "c", CellStatus.ALL_LOST, train=PingTrain(5, 0, 0, ()))
    rows = ping_rows([(0, failed), (90, empty)]).to_pylist()
    assert [(r["offset"], r["seq"], r["rtt_ms"], r["sent"]) for r in rows] == [
        (0, None, None, None),
        (90, None, None, 5),
    ]
    assert rows[0]["reason"] == "ping a → b: timed out" and rows[1]["reason"] is None


def test_no_records_is_an_empty_table_of_the_schema() -> None:
    table = ping_rows([])
    assert table.num_rows == 0 and table.schema == SCHEMA
