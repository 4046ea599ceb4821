"""The probe store read at scale: rows split per record (``PingRows``), samples.jsonl cut into
lines a block at a time, parts read in batches and deduplicated."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import StoreError
from probe.matrix.build import MatrixBuilder
from probe.model import CellStatus
from probe.store import probes, rundir
from probe.store.probes import SCHEMA, PingRows, ping_rows, read_store, write_part
from probe.store.records import (
    PING_LINE,
    HostRecord,
    PingRecord,
    SampleRecord,
    TornMark,
    UnknownRecord,
    encode_record,
)
from probe.store.rundir import Covered, RunStore, iter_lines
from tests.matrix.test_build import RUN
from tests.store.test_probes import A_B, A_C, B_A, FANOUT, HOST, IPERF, _jsonl_pings, records


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), max_size=12))
def test_rows_split_per_record_and_back(recs: list[PingRecord]) -> None:
    numbered = [(100 * i, rec) for i, rec in enumerate(recs)]
    table = ping_rows(numbered)
    rows = PingRows.of(table)
    assert rows.records.num_rows == len(recs)
    assert rows.records["offset"].to_pylist() == [o for o, _ in numbered]
    assert int(rows.lengths().sum()) == len(rows.seq) == table.num_rows
    assert rows.table().schema == SCHEMA and _rows(rows.table()) == _rows(table)
    # any records, in any order, with their rows
    pick = np.array([i for i in range(len(recs)) if i % 2 == 0][::-1], np.int64)
    assert _rows(rows.take(pick).table()) == _rows(ping_rows([numbered[i] for i in pick]))


def test_a_break_splits_two_parts_holding_the_same_record() -> None:
    """Only a copied part makes two parts hold one offset: each copy stays its own record."""
    table = ping_rows([(7, A_B)])
    rows = PingRows.of(pa.concat_tables([table, table]), [table.num_rows])
    assert rows.records["offset"].to_pylist() == [7, 7]
    assert rows.lengths().tolist() == [3, 3]


def test_concat_copies_nothing_for_empty_pieces() -> None:
    rows = PingRows.of(ping_rows([(0, A_B), (90, A_C)]))
    empty = PingRows.of(ping_rows([]))
    assert PingRows.concat([empty, rows, empty]) is rows
    both = PingRows.concat([rows, PingRows.of(ping_rows([(200, B_A)]))])
    assert _rows(both.table()) == _rows(ping_rows([(0, A_B), (90, A_C), (200, B_A)]))
    assert PingRows.concat([]).records.num_rows == 0


def _store(tmp_path: Path) -> Path:
    store = RunStore.create(tmp_path)
    batches: list[list[SampleRecord]] = [[HOST], [FANOUT, A_B, A_C], [B_A], [IPERF]]
    for batch in batches:
        store.append_many(batch)
    store.close()
    return store.dir


def test_a_record_in_two_parts_is_kept_from_the_first(tmp_path: Path) -> None:
    run = _store(tmp_path)
    first = sorted((run / "probes").iterdir())[0]
    copy = run / "probes" / "ping-999999999999.parquet"
    shutil.copy(first, copy)
    warned: list[str] = []
    stored = read_store(run, [], warn=warned.append)
    assert len(warned) == 1 and warned[0].startswith(f"{copy}: holds records an earlier part")
    key = ["offset", "seq"]
    got = sorted(_rows(stored.pings.table()), key=lambda r: [r[k] or 0 for k in key])
    assert got == _rows(ping_rows(_jsonl_pings(run)))


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 24])
def test_lines_read_alike_whatever_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Blank lines, covered ping lines, a torn line and its mark, a last line without its
    newline: every block size cuts the file into the same lines."""
    run = _store(tmp_path)
    covered = np.array(sorted(o for o, _ in _jsonl_pings(run))[:2], np.int64)
    with (run / "samples.jsonl").open("a") as fh:  # a blank line, a kill mid-write, a resume
        fh.write("\n" + encode_record(HostRecord("b", CellStatus.OK))[:20] + "\n")
        fh.write(encode_record(TornMark(8)) + "\n" + encode_record(HostRecord("b", CellStatus.OK)))
        fh.write("\n" + encode_record(HostRecord("c", CellStatus.OK)))  # its newline not yet

    def lines() -> tuple[list[tuple[int, int, SampleRecord | UnknownRecord | None]], list[int]]:
        cover = Covered(PING_LINE, covered)
        seen = list(iter_lines(run, [cover]))
        return seen, np.concatenate(cover.found).tolist()

    want = lines()
    monkeypatch.setattr(rundir, "_BLOCK_BYTES", block)
    assert lines() == want
    seen, found = want
    assert found == covered.tolist()
    assert [rec for _, _, rec in seen if isinstance(rec, PingRecord)] == [B_A]
    assert [n for n, _, rec in seen if rec is None] == [8]
    assert seen[-1][2] == HostRecord("c", CellStatus.OK)


@pytest.mark.parametrize("block", [5, 1 << 24])
def test_a_torn_line_followed_by_a_covered_ping_line_is_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Only a ``torn`` mark may follow a torn line: a ping line the store covers is a record."""
    run = RunStore.create(tmp_path).dir
    torn = encode_record(HostRecord("a", CellStatus.OK))[:20] + "\n"
    ping = encode_record(A_B)
    (run / "samples.jsonl").write_text(torn + ping)
    write_part(run, [(len(torn), A_B)])
    monkeypatch.setattr(rundir, "_BLOCK_BYTES", block)
    with pytest.raises(StoreError, match=r"samples.jsonl:1: a record cut short in the middle"):
        read_store(run, [])


def test_parts_read_in_batches_name_their_own_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part naming lines the file does not have is named in the warning, whichever batch."""
    monkeypatch.setattr(probes, "_PARTS_AT_ONCE", 1)
    run = _store(tmp_path)
    write_part(run, [(10**9, A_C)])
    warned: list[str] = []
    stored = read_store(run, [], warn=warned.append)
    assert len(warned) == 1 and "ping-001000000000.parquet: 1 of its records" in warned[0]
    assert sorted(stored.pings.records["offset"].to_pylist()) == [o for o, _ in _jsonl_pings(run)]


def test_the_builder_reduces_once() -> None:
    """The rows are let go once reduced: a ping record added after is a programming error."""
    builder = MatrixBuilder(RUN)
    builder.add_all([A_B, A_C])
    assert builder.samples()[("a", "b")].rtt_ms.tolist() == [0.5, 0.75]
    with pytest.raises(ValueError, match="after the matrix was reduced"):
        builder.add(B_A)
    builder.add(HostRecord("c", CellStatus.UNREACHABLE, "gone"))  # the others still stream in
    frame = builder.frame().set_index(["src", "dst"])
    assert frame.loc[("a", "b"), "rtt_min_ms"] == 0.5
    assert frame.loc[("b", "c"), "status"] == "unreachable"
