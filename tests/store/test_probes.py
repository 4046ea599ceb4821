"""The probe store: ping records as Parquet rows, one per probe, and back."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import StoreError
from probe.matrix.engine import STATS_SCHEMA, part_stats
from probe.model import CellStatus
from probe.store import probes, rundir
from probe.store.bandwidth import bandwidth_rows
from probe.store.probes import SCHEMA, StoredRun, ping_rows, read_store, write_part
from probe.store.records import (
    HostRecord,
    Iperf3Record,
    IperfTestRecord,
    PingFanoutRecord,
    PingRecord,
    PingTrain,
    SampleRecord,
    decode_record,
    encode_record,
)
from probe.store.rundir import RunStore, read_samples
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


PING_SUMMARY = PingSummary(0.4, 0.425, 0.45, 0.025)


# --- the store of a run: parts written per batch, read back with samples.jsonl -------------

A_B = PingRecord(
    "a", "b", CellStatus.OK, train=PingTrain(3, 2, 0, ((0, 0.5), (1, None), (2, 0.75))),
    network="default", fanout="f1",
)  # fmt: skip
A_C = PingRecord("a", "c", CellStatus.TIMEOUT, reason="fping a → c: timed out", fanout="f1")
B_A = PingRecord(
    "b", "a", CellStatus.OK, train=PingTrain(2, 2, 1, ((0, 0.4), (1, 0.45)), PING_SUMMARY),
)  # fmt: skip
HOST = HostRecord("a", CellStatus.OK)
FANOUT = PingFanoutRecord("f1", "a", ("fping", "-C", "3"))
IPERF = Iperf3Record("a", "b", "a", "b", False, CellStatus.BLOCKED, reason="refused")


def _run(tmp_path: Path, *batches: Sequence[SampleRecord]) -> Path:
    store = RunStore.create(tmp_path)
    for batch in batches:
        store.append_many(batch)
    store.close()
    return store.dir


def _jsonl_records(run: Path) -> list[tuple[int, object]]:
    """Every record with its offset, decoded from samples.jsonl alone."""
    found: list[tuple[int, object]] = []
    offset = 0
    for line in (run / "samples.jsonl").read_bytes().splitlines(keepends=True):
        found.append((offset, decode_record(line.decode(), "test")))
        offset += len(line)
    return found


def _jsonl_pings(run: Path) -> list[tuple[int, PingRecord]]:
    """The ping records with their offsets, decoded from samples.jsonl alone."""
    found, offset = [], 0
    for line in (run / "samples.jsonl").read_bytes().splitlines(keepends=True):
        rec = decode_record(line.decode(), "test")
        if isinstance(rec, PingRecord):
            found.append((offset, rec))
        offset += len(line)
    return found


def _sorted(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.to_pylist()
    return sorted(rows, key=lambda r: (r["offset"], r["seq"] is None, r["seq"] or 0))


def _same_as_jsonl(run: Path, stored: StoredRun, others: Sequence[SampleRecord]) -> None:
    """Every ping and iperf3 record as rows, and the ``others`` (iperf3 ones: rows too)."""
    assert stored.pings.table().schema == SCHEMA
    assert _sorted(stored.pings.table()) == _sorted(ping_rows(_jsonl_pings(run)))
    assert stored.others == tuple(r for r in others if not isinstance(r, IperfTestRecord))
    tests = [(o, r) for o, r in _jsonl_records(run) if isinstance(r, IperfTestRecord)]
    assert [r for _, r in tests] == [r for r in others if isinstance(r, IperfTestRecord)]
    assert stored.tests.to_pylist() == bandwidth_rows(tests).to_pylist()
    starts = [o for o, r in _jsonl_records(run) if r in stored.others]
    assert list(stored.others_at) == starts


@pytest.fixture
def unparsed_pings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ping records read_store decoded (those no part covers)."""
    decoded: list[str] = []

    def spy(line: str, where: str) -> Any:
        rec = decode_record(line, where)
        if isinstance(rec, PingRecord):
            decoded.append(where)
        return rec

    monkeypatch.setattr(rundir, "decode_record", spy)
    return decoded


def test_every_ping_line_a_part_covers_is_read_from_the_part_unparsed(
    tmp_path: Path, unparsed_pings: list[str]
) -> None:
    run = _run(tmp_path, [HOST], [FANOUT, A_B, A_C], [B_A], [IPERF])
    parts = sorted(p.name for p in (run / "probes").iterdir())
    offsets = [o for o, _ in _jsonl_pings(run)]
    assert parts == [f"ping-{offsets[0]:012d}.parquet", f"ping-{offsets[2]:012d}.parquet"]
    torn: list[int] = []
    stored = read_store(run, torn)
    _same_as_jsonl(run, stored, [HOST, FANOUT, IPERF])
    assert unparsed_pings == [] and torn == []
    # the records scan_samples reads, with each probe a row
    assert [r for r in read_samples(run).records if isinstance(r, PingRecord)] == [A_B, A_C, B_A]


def test_a_record_whose_part_was_never_written_is_read_from_the_jsonl_once(
    tmp_path: Path, unparsed_pings: list[str]
) -> None:
    """The crash window: the batch's lines were fsynced, the process died before its part."""
    run = _run(tmp_path, [FANOUT, A_B, A_C], [B_A])
    (crashed,) = [
        p
        for p in (run / "probes").iterdir()
        if p.name.endswith(f"{_jsonl_pings(run)[2][0]:012d}.parquet")
    ]
    crashed.unlink()
    stored = read_store(run, [])
    _same_as_jsonl(run, stored, [FANOUT])
    assert len(unparsed_pings) == 1 and unparsed_pings[0].endswith("samples.jsonl:4")
    offsets = stored.pings.table()["offset"].to_pylist()
    assert offsets.count(_jsonl_pings(run)[2][0]) == 2


def test_a_cell_measured_again_keeps_both_records_latest_offset_last(tmp_path: Path) -> None:
    """``--resume`` re-measures a failed cell: both records stay, the later one wins by offset."""
    again = PingRecord("a", "c", CellStatus.OK, train=PingTrain(1, 1, 0, ((0, 0.9),)))
    run = _run(tmp_path, [FANOUT, A_C], [again])
    rows = [r for r in read_store(run, []).pings.table().to_pylist() if r["dst"] == "c"]
    assert [(r["status"], r["rtt_ms"]) for r in rows] == [("timeout", None), ("ok", 0.9)]
    assert rows[0]["offset"] < rows[1]["offset"]


def test_a_part_written_after_a_torn_line_names_the_lines_as_they_are(
    tmp_path: Path, unparsed_pings: list[str]
) -> None:
    """A resumed run appends after a kill's torn line (a newline, a ``torn`` record first):
    its part's offsets count those, and the torn line is reported as scan_samples reports it."""
    run = _run(tmp_path, [FANOUT, A_B])
    with (run / "samples.jsonl").open("a") as fh:
        fh.write(encode_record(A_C)[:30])  # SIGKILL mid-write
    store = RunStore(run.parent, run.name)  # what --resume opens
    store.append_many([B_A])
    store.close()
    torn: list[int] = []
    stored = read_store(run, torn)
    _same_as_jsonl(run, stored, [FANOUT])
    assert unparsed_pings == [] and torn == [3] == list(read_samples(run).torn_lines)
    # a torn last line: reported, never a row
    with (run / "samples.jsonl").open("a") as fh:
        fh.write(encode_record(A_C)[:30])
    torn.clear()
    assert len(read_store(run, torn).pings.seq) == len(stored.pings.seq) and torn == [3, 6]


@pytest.mark.parametrize("offset", [1, 10**9], ids=["not-a-line-start", "beyond-the-end"])
def test_a_part_naming_lines_the_file_does_not_have_is_left_out_with_a_warning(
    tmp_path: Path, offset: int
) -> None:
    run = _run(tmp_path, [HOST], [FANOUT, A_B])
    stray = write_part(run, [(offset, B_A)])
    warned: list[str] = []
    stored = read_store(run, [], warn=warned.append)
    _same_as_jsonl(run, stored, [HOST, FANOUT])
    (message,) = warned
    assert message.startswith(f"{stray}: 1 of its records name no whole ping line")


def test_a_part_over_a_line_that_is_no_ping_is_left_out_and_the_line_read(tmp_path: Path) -> None:
    run = _run(tmp_path, [HOST], [FANOUT, A_B])
    write_part(run, [(0, B_A)])  # offset 0: the host record's line
    warned: list[str] = []
    _same_as_jsonl(run, read_store(run, [], warn=warned.append), [HOST, FANOUT])
    assert len(warned) == 1 and "ping-000000000000.parquet: 1 of its records" in warned[0]


def test_an_unreadable_part_is_left_out_and_its_records_read_from_the_jsonl(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, [FANOUT, A_B, A_C])
    (part,) = (run / "probes").iterdir()
    part.write_bytes(b"PAR1 not really")
    warned: list[str] = []
    _same_as_jsonl(run, read_store(run, [], warn=warned.append), [FANOUT])
    assert len(warned) == 1 and warned[0].startswith(f"{part}: not a part of the probe store")


def test_a_part_that_cannot_be_written_is_one_warning_and_no_error(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path)
    (store.dir / "probes").write_text("a file where the folder goes")
    warned: list[str] = []
    store.append_many([FANOUT, A_B], warn=warned.append)
    store.append_many([B_A], warn=warned.append)
    store.close()
    (message,) = warned  # the first failure only
    assert (
        message.startswith(f"WARNING: {store.dir / 'probes'}/ping-") and "nothing lost" in message
    )
    _same_as_jsonl(store.dir, read_store(store.dir, []), [FANOUT])


def test_a_batch_without_ping_records_writes_no_part(tmp_path: Path) -> None:
    run = _run(tmp_path, [HOST, IPERF], [])
    assert not (run / "probes").exists()
    stored = read_store(run, [])
    assert len(stored.pings.seq) == 0 and stored.others == (HOST,)
    assert stored.tests["status"].to_pylist() == ["blocked"]


def test_records_no_part_covers_convert_alike_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path, [FANOUT, A_B, A_C], [B_A])
    shutil.rmtree(run / "probes")  # a run from before the probe store
    monkeypatch.setattr(probes, "_CHUNK_RECORDS", 2)
    _same_as_jsonl(run, read_store(run, []), [FANOUT])


# --- statistics parts: each record reduced as it arrives, read instead of its probes ----------


def _summarized_run(tmp_path: Path, *batches: Sequence[SampleRecord]) -> Path:
    store = RunStore.create(tmp_path, summarize=part_stats)
    for batch in batches:
        store.append_many(batch)
    store.close()
    return store.dir


def test_a_statistics_part_is_read_instead_of_its_probes(
    tmp_path: Path, unparsed_pings: list[str]
) -> None:
    run = _summarized_run(tmp_path, [HOST], [FANOUT, A_B, A_C], [B_A])
    offsets = [o for o, _ in _jsonl_pings(run)]
    for folder in ("probes", "stats"):  # a statistics part beside each ping part
        parts = sorted(p.name for p in (run / folder).iterdir())
        assert parts == [f"ping-{o:012d}.parquet" for o in (offsets[0], offsets[2])]
    stored = read_store(run, [], summaries=STATS_SCHEMA)
    assert unparsed_pings == [] and stored.pings.records.num_rows == 0
    assert stored.summarized is not None and stored.summarized_probes is not None
    assert stored.summarized["offset"].to_pylist() == offsets
    assert stored.summarized["replies"].to_pylist() == [2, 0, 2]
    assert stored.summarized["rtt_max_ms"].to_pylist()[0::2] == [0.75, 0.45]
    got = stored.summarized_probes(np.array([offsets[0], offsets[2]]), np.array([2, 2]))
    assert [a.tolist() for a in got] == [[0, 2, 0, 1], [0.5, 0.75, 0.4, 0.45]]
    only = stored.summarized_probes(np.array([offsets[2]]), np.array([2]))  # a part's share
    assert [a.tolist() for a in only] == [[0, 1], [0.4, 0.45]]
    with pytest.raises(StoreError, match=r"ping-.*: 2 received probes where its statistics"):
        stored.summarized_probes(np.array([offsets[2]]), np.array([3]))
    # without ``summaries`` the probes are read as before: the same store
    _same_as_jsonl(run, read_store(run, []), [HOST, FANOUT])


def test_a_statistics_part_of_another_version_is_passed_over_silently(tmp_path: Path) -> None:
    run = _summarized_run(tmp_path, [FANOUT, A_B, A_C])
    (part,) = (run / "stats").glob("ping-*.parquet")
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({b"probe.stats": b"0"}), part)
    warned: list[str] = []
    stored = read_store(run, [], warn=warned.append, summaries=STATS_SCHEMA)
    assert warned == [] and stored.summarized is not None and stored.summarized.num_rows == 0
    _same_as_jsonl(run, stored, [FANOUT])


def test_an_unreadable_statistics_part_is_told_and_its_probes_read(tmp_path: Path) -> None:
    run = _summarized_run(tmp_path, [FANOUT, A_B, A_C])
    (part,) = (run / "stats").glob("ping-*.parquet")
    part.write_bytes(b"PAR1 not really")
    warned: list[str] = []
    stored = read_store(run, [], warn=warned.append, summaries=STATS_SCHEMA)
    (message,) = warned
    assert message.startswith(f"{part}: not a statistics part") and "probes are read" in message
    _same_as_jsonl(run, stored, [FANOUT])


def test_a_statistics_part_without_its_ping_part_is_not_read(
    tmp_path: Path, unparsed_pings: list[str]
) -> None:
    """Deleting a part (as a warning suggests) deletes what its statistics rest on."""
    run = _summarized_run(tmp_path, [FANOUT, A_B, A_C])
    (part,) = (run / "probes").glob("ping-*.parquet")
    part.unlink()
    stored = read_store(run, [], summaries=STATS_SCHEMA)
    assert stored.summarized is not None and stored.summarized.num_rows == 0
    assert len(unparsed_pings) == 2
    _same_as_jsonl(run, stored, [FANOUT])


def test_a_statistics_part_naming_lines_the_file_does_not_have_is_left_out(
    tmp_path: Path,
) -> None:
    run = _summarized_run(tmp_path, [HOST], [FANOUT, A_B])
    stray = write_part(run, [(1, B_A)], part_stats)
    warned: list[str] = []
    stored = read_store(run, [], warn=warned.append, summaries=STATS_SCHEMA)
    (message,) = warned
    assert message.startswith(f"{stray}: 1 of its records name no whole ping line")
    assert stored.summarized is not None
    assert stored.summarized["offset"].to_pylist() == [_jsonl_pings(run)[0][0]]
