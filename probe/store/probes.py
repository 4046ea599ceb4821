"""The probe store: a run's ping records as Parquet, one row per probe (``<run>/probes/``).

samples.jsonl stays the fsynced write-ahead log and the source of truth; ``probes/`` is a
columnar copy of its ``ping`` records that a query engine reads without parsing JSON (at 1,000
hosts the JSONL holds a million records: decoding them is most of a rebuild). The ping mesh
appends each source's results with ``RunStore.append_many``, which writes one part per batch:
``probes/ping-<offset of the batch's first ping line, 12 digits>.parquet``.

Columns (``SCHEMA``; README "probes/*.parquet"), one row per probe sent, lost ones included; a
record without probes (an error, a timeout, a host that failed, a train of zero probes) is one
row with ``seq`` and ``rtt_ms`` null. A record's rows are contiguous, in its train's order.

- ``offset`` (int64): the byte offset of the record's line in samples.jsonl — its identity and
  its order (the latest record of a cell wins, as in the JSONL).
- ``phase``: ``ping`` (the mesh). ``src``, ``dst``, ``network`` (the network pinged over:
  ``default`` for an inventory without named networks, as the records and the matrix key it),
  ``status`` (the record's ``CellStatus`` value), ``reason`` (null unless the record has one).
  ``phase``, ``src``, ``dst``, ``network`` and ``status`` are dictionary-encoded strings: a few
  distinct values over millions of rows.
- ``sent``, ``received``, ``duplicates`` (int32): the train's counts, null without a train.
- ``sum_min_ms``, ``sum_avg_ms``, ``sum_max_ms``, ``sum_mdev_ms`` (float64): ping's own summary
  line, null when it printed none (fping, busybox's mdev).
- ``seq`` (int32, null: no probe) and ``rtt_ms`` (float64, null: lost, or no probe).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from probe.errors import StoreError
from probe.store import bandwidth
from probe.store.parts import save_part
from probe.store.records import (
    PING_LINE,
    IperfTestRecord,
    PingRecord,
    Probe,
    SampleRecord,
    UnknownRecord,
    line_start,
)
from probe.store.rundir import Covered, index_lines, iter_lines

#: The probe store's folder in a run directory.
PROBES_DIR = "probes"
#: The statistics parts' folder: one file per ping part, named as it is.
STATS_DIR = "stats"
#: The phase of the ping mesh's rows (other phases may add theirs).
PING_PHASE = "ping"

_NAME = pa.dictionary(pa.int32(), pa.string())

SCHEMA = pa.schema(
    [
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("phase", _NAME, nullable=False),
        pa.field("src", _NAME, nullable=False),
        pa.field("dst", _NAME, nullable=False),
        pa.field("network", _NAME),
        pa.field("status", _NAME, nullable=False),
        pa.field("reason", pa.string()),
        pa.field("sent", pa.int32()),
        pa.field("received", pa.int32()),
        pa.field("duplicates", pa.int32()),
        pa.field("sum_min_ms", pa.float64()),
        pa.field("sum_avg_ms", pa.float64()),
        pa.field("sum_max_ms", pa.float64()),
        pa.field("sum_mdev_ms", pa.float64()),
        pa.field("seq", pa.int32()),
        pa.field("rtt_ms", pa.float64()),
    ]
)

#: The columns a record gives each of its rows, in ``ping_rows``' order.
_PER_RECORD = (
    "offset", "src", "dst", "network", "status", "reason", "sent", "received", "duplicates",
    "sum_min_ms", "sum_avg_ms", "sum_max_ms", "sum_mdev_ms",
)  # fmt: skip
#: Ping records no part covers are converted this many at a time (the reader's fallback).
_CHUNK_RECORDS = 1 << 14
_NO_PROBE: tuple[tuple[None, None], ...] = ((None, None),)


def ping_rows(records: Sequence[tuple[int, PingRecord]]) -> pa.Table:
    """(offset in samples.jsonl, record) → rows in ``SCHEMA``: the one converter (the part
    writer, the reader's fallback for lines no part covers, tests and benchmarks use it).

    Per-record values are built once per record and repeated per probe (``take``): a record's
    columns cost its probe count only in integers."""
    n = len(records)
    per_record: list[tuple[object, ...]] = []
    probes: list[Probe | tuple[None, None]] = []
    lengths = np.empty(n, np.int64)
    for i, (offset, rec) in enumerate(records):
        train = rec.train
        counts = (None,) * 3 if train is None else (train.sent, train.received, train.duplicates)
        summary = None if train is None else train.summary
        line = (
            (None,) * 4 if summary is None
            else (summary.rtt_min_ms, summary.rtt_avg_ms, summary.rtt_max_ms, summary.rtt_mdev_ms)
        )  # fmt: skip
        per_record.append(
            (offset, rec.src, rec.dst, rec.network, rec.status.value, rec.reason, *counts, *line)
        )
        train_probes = () if train is None else train.probes
        probes.extend(train_probes or _NO_PROBE)
        lengths[i] = len(train_probes) or 1
    repeat = pa.array(np.repeat(np.arange(n, dtype=np.int64), lengths))
    columns: dict[str, pa.Array] = {}
    transposed = list(zip(*per_record, strict=True)) or [()] * len(_PER_RECORD)
    for name, values in zip(_PER_RECORD, transposed, strict=True):
        kind = SCHEMA.field(name).type
        array = (
            pa.array(values, pa.string()).dictionary_encode()
            if pa.types.is_dictionary(kind)
            else pa.array(values, kind)
        )
        columns[name] = array.take(repeat)
    rows = len(probes)
    columns["phase"] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, np.int32)), pa.array([PING_PHASE])
    )
    columns["seq"] = pa.array([p[0] for p in probes], pa.int32())
    columns["rtt_ms"] = pa.array([p[1] for p in probes], pa.float64())
    return pa.table([columns[f.name] for f in SCHEMA], schema=SCHEMA)


def part_path(run_dir: Path, first_offset: int) -> Path:
    """``<run>/probes/ping-<offset of the batch's first ping line, 12 digits>.parquet``."""
    return run_dir / PROBES_DIR / f"ping-{first_offset:012d}.parquet"


#: A ping part's rows → its statistics part (``probe.matrix.engine.part_stats``: the run hands
#: it in, so the store knows no statistics).
Summarize = Callable[[pa.Table], pa.Table]


def stats_path(part: Path) -> Path:
    """``<run>/stats/ping-<offset>.parquet``: the statistics of ``probes/ping-<offset>.parquet``'s
    records (a folder of their own: ``probes/*.parquet`` stays one schema for a query engine)."""
    return part.parent.parent / STATS_DIR / part.name


def write_part(
    run_dir: Path, pings: Sequence[tuple[int, PingRecord]], summarize: Summarize | None = None
) -> Path:
    """One part for a batch of ping records just appended to samples.jsonl (``save_part``),
    then, with ``summarize``, its statistics part (``stats_path``): each record reduced as it
    arrives, so the run's end reads a million records' statistics instead of 20 million
    probes. Written after its ping part, it is only read beside it."""
    rows = ping_rows(pings)
    path = save_part(part_path(run_dir, pings[0][0]), rows)
    if summarize is not None:
        save_part(stats_path(path), summarize(rows))
    return path


#: ``PingRows.records``' columns: the per-record ones and ``rows``, the record's probe rows.
RECORD_SCHEMA = pa.schema([*(SCHEMA.field(n) for n in _PER_RECORD), pa.field("rows", pa.int32())])


@dataclass(frozen=True, slots=True, eq=False)
class PingRows:
    """``SCHEMA`` rows as the engine reads them, each per-record value held once: ``records``
    (``RECORD_SCHEMA``: one row per record, ``rows`` its probe rows) and the probe rows, record
    after record, as numpy columns (a null as 0 and ``has_seq`` / ``has_rtt`` false). At 1,000
    hosts the row form repeats 13 per-record columns over 20 M rows: ~1.7 GiB, this ~0.3 GiB."""

    records: pa.Table
    seq: NDArray[np.int32]
    has_seq: NDArray[np.bool_]
    rtt_ms: NDArray[np.float64]
    has_rtt: NDArray[np.bool_]

    @classmethod
    def of(cls, table: pa.Table, breaks: Sequence[int] = ()) -> PingRows:
        """Rows in ``SCHEMA`` (a record's rows contiguous) split at each change of ``offset``
        and at each row of ``breaks`` (where one part's rows end and the next one's begin)."""
        offset = table["offset"].to_numpy()
        n = len(offset)
        starts = np.r_[True, offset[1:] != offset[:-1]] if n else np.zeros(0, np.bool_)
        starts[[b for b in breaks if b < n]] = True
        first = np.flatnonzero(starts)
        heads = table.select(_PER_RECORD).take(pa.array(first, pa.int64()))
        rows = pa.array(np.diff(np.r_[first, n]).astype(np.int32))
        records = pa.Table.from_arrays([*heads.columns, rows], schema=RECORD_SCHEMA)
        seq, has_seq = _filled(table["seq"], 0)
        rtt, has_rtt = _filled(table["rtt_ms"], 0.0)
        return cls(
            records, seq.astype(np.int32, copy=False), has_seq,
            rtt.astype(np.float64, copy=False), has_rtt,
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[PingRows]) -> PingRows:
        parts = [p for p in parts if p.records.num_rows] or parts[:1]  # no copy for nothing
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.of(ping_rows([]))
        records = pa.concat_tables([p.records for p in parts])
        return cls(
            records,
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _PROBE_FIELDS),
        )

    def lengths(self) -> NDArray[np.int64]:
        """Each record's rows."""
        lengths: NDArray[np.int64] = self.records["rows"].to_numpy().astype(np.int64)
        return lengths

    def table(self) -> pa.Table:
        """The ``SCHEMA`` rows (tests, small exports: every per-record value repeated)."""
        repeat = pa.array(np.repeat(np.arange(self.records.num_rows), self.lengths()))
        heads = self.records.take(repeat)
        phase = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(len(repeat), np.int32)), pa.array([PING_PHASE])
        )
        columns = {"phase": phase, **{n: heads[n] for n in _PER_RECORD}}
        columns["seq"] = pa.array(self.seq, pa.int32(), mask=~self.has_seq)
        columns["rtt_ms"] = pa.array(self.rtt_ms, pa.float64(), mask=~self.has_rtt)
        return pa.table([columns[f.name] for f in SCHEMA], schema=SCHEMA)

    def take(self, records: NDArray[np.int64]) -> PingRows:
        """Those records (indices, in that order) with their rows."""
        lengths = self.lengths()
        rows = _ranges((np.cumsum(lengths) - lengths)[records], lengths[records])
        return PingRows(
            self.records.take(pa.array(records, pa.int64())),
            *(getattr(self, f)[rows] for f in _PROBE_FIELDS),
        )

    def keep(self, wanted: pa.Array) -> PingRows:
        """The records whose ``offset`` is in ``wanted``, with their rows."""
        keep = pc.is_in(self.records["offset"], wanted).to_numpy(zero_copy_only=False)
        return self.take(np.flatnonzero(keep))


_PROBE_FIELDS = ("seq", "has_seq", "rtt_ms", "has_rtt")


def _ranges(starts: NDArray[np.int64], lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """The concatenated index ranges [start, start + length)."""
    ends = np.cumsum(lengths)
    index: NDArray[np.int64] = np.arange(int(lengths.sum()), dtype=np.int64)
    index += np.repeat(starts - (ends - lengths), lengths)
    return index


def _filled(column: pa.ChunkedArray, fill: Any) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """A column as (values with nulls filled, validity)."""
    valid = pc.is_valid(column).to_numpy().astype(np.bool_, copy=False)
    return pc.fill_null(column, fill).to_numpy(), valid


@dataclass(frozen=True, slots=True, eq=False)
class PartProbes:
    """The probes of the records a statistics part gave (``summaries``): read from their ping
    parts only when asked for (the anchors' samples), only the columns needed."""

    parts: tuple[Path, ...]
    offsets: tuple[NDArray[np.int64], ...]  # per part: the records taken from it, sorted

    def __call__(
        self, wanted: NDArray[np.int64], counts: NDArray[np.int64]
    ) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
        """(seq, rtt_ms) of the received probes of the ``wanted`` records (offsets, sorted;
        ``counts``: how many each has, as its statistics say), record after record. A part
        whose probes are not as many is damage (``StoreError``, naming it)."""
        jobs = []
        firsts = [int(own[0]) for own in self.offsets if len(own)]
        lasts = [int(own[-1]) for own in self.offsets if len(own)]
        if any(b <= a for a, b in zip(lasts, firsts[1:], strict=False)):  # only a copied part
            raise StoreError(
                f"{self.parts[0].parent}: parts whose records interleave; delete the copied "
                "ones (samples.jsonl has every record)"
            )
        for path, own in zip(self.parts, self.offsets, strict=True):
            lo, hi = np.searchsorted(wanted, [own[0], own[-1] + 1]) if len(own) else (0, 0)
            among = wanted[lo:hi]
            found = np.isin(among, own, assume_unique=True)
            if found.any():  # every record of the part, mostly: no offset to read
                whole = bool(found.all()) and len(among) == len(own)
                jobs.append(
                    (path, None if whole else among[found], int(counts[lo:hi][found].sum()))
                )
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            got = list(pool.map(_received, jobs))
        if not got:
            return np.zeros(0, np.int32), np.zeros(0, np.float64)
        return np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])


def _received(
    job: tuple[Path, NDArray[np.int64] | None, int],
) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    """One part's received probes (of its records ``only``: None, all of them)."""
    path, only, expected = job
    try:
        columns = ["seq", "rtt_ms"] if only is None else ["offset", "seq", "rtt_ms"]
        table = pq.ParquetFile(path).read(columns, use_threads=False)
    except (OSError, KeyError, pa.ArrowException) as exc:
        raise StoreError(
            f"{path}: cannot read its probes ({exc}); delete it and stats/ of the same name "
            "(samples.jsonl has every record)"
        ) from exc
    got = pc.and_(pc.is_valid(table["seq"]), pc.is_valid(table["rtt_ms"]))
    if only is not None:
        got = pc.and_(got, pc.is_in(table["offset"], pa.array(only)))
    table = table.filter(got)
    if table.num_rows != expected:
        raise StoreError(
            f"{path}: {table.num_rows} received probes where its statistics part counts "
            f"{expected}; delete it and stats/ of the same name (samples.jsonl has every record)"
        )
    return (
        table["seq"].to_numpy().astype(np.int32, copy=False),
        table["rtt_ms"].to_numpy().astype(np.float64, copy=False),
    )


@dataclass(frozen=True, slots=True, eq=False)
class StoredRun:
    """A run's records as the matrix reads them: every ``ping`` record of samples.jsonl
    (``PingRows``), every ``iperf3`` and ``iperf3_multi`` record (``tests``: rows in
    ``probe.store.bandwidth.SCHEMA``) — neither deduplicated (a cell's latest record is its
    greatest ``offset``) nor in offset order — and every other record, in file order, with its
    line's offset (``others_at``).

    Read with ``summaries``, the ping records of parts that have a statistics part are not in
    ``pings`` but in ``summarized`` (its rows, one per record), their probes in
    ``summarized_probes``."""

    pings: PingRows
    tests: pa.Table
    others: tuple[SampleRecord, ...]
    others_at: tuple[int, ...]
    summarized: pa.Table | None = None
    summarized_probes: PartProbes | None = None


def read_store(
    run_dir: Path,
    torn: list[int],
    *,
    warn: Callable[[str], None] | None = None,
    summaries: pa.Schema | None = None,
) -> StoredRun:
    """samples.jsonl read through the probe and bandwidth stores: a line a part covers is
    passed over unparsed, every other line decoded (the ping and iperf3 lines no part covers —
    a crash between the append and its part, runs from before the stores, ``probe import`` —
    are converted with :func:`ping_rows` and ``bandwidth_rows``). Torn lines are appended to
    ``torn`` as ``scan_samples`` does. With ``summaries`` (the statistics parts' schema, its
    metadata naming their version), a ping part whose statistics part is readable and of that
    schema gives its records' statistics instead of its probes.

    samples.jsonl wins: a part that cannot be read, or whose rows name offsets that are not
    whole lines of their kind in the file (a file cut or edited since, a part copied from
    another run), is left out — its records are read from the JSONL — and ``warn`` told,
    naming the part."""
    with ThreadPoolExecutor(1) as scan:  # the JSONL scanned for lines beside the parts' reads
        lines = scan.submit(index_lines, run_dir)
        found = _read_parts(run_dir, warn, summaries)
        index = lines.result()
    parts, rows = found.parts, found.rows
    n_rows = rows.records.num_rows
    offsets = np.concatenate(
        [rows.records["offset"].to_numpy(), found.stats["offset"].to_numpy()]
    ).astype(np.int64)
    part_of = np.concatenate([found.part_of, found.stats_part_of]).astype(np.int64)
    by_part = np.argsort(part_of, kind="stable")  # a record in two parts: the first one's
    kept = np.empty(len(offsets), np.bool_)
    kept[by_part] = _first_copies(offsets[by_part], part_of[by_part], parts, warn)

    def refuse(path: Path, exc: Exception) -> None:
        _tell(warn, f"{path}: not a part of the bandwidth store ({exc}); left out")

    bw_parts, tests, bw_part_of = bandwidth.read_parts(run_dir, refuse)
    bw_offsets = tests["offset"].to_numpy()
    bw_kept = _first_copies(bw_offsets, bw_part_of, bw_parts, warn)
    multi = pc.equal(tests["kind"].cast(pa.string()), "iperf3_multi").to_numpy(False)
    covered = [
        Covered(PING_LINE, np.sort(offsets[kept])),
        Covered(line_start("iperf3"), np.sort(bw_offsets[bw_kept & ~multi])),
        Covered(line_start("iperf3_multi"), np.sort(bw_offsets[bw_kept & multi])),
    ]
    uncovered: list[tuple[int, PingRecord]] = []
    converted: list[PingRows] = []  # records converted a chunk at a time: rows are smaller
    tested: list[tuple[int, IperfTestRecord]] = []
    others: list[SampleRecord] = []
    others_at: list[int] = []
    for n, offset, rec in iter_lines(run_dir, covered, index):
        if rec is None:
            torn.append(n)
        elif isinstance(rec, PingRecord):
            uncovered.append((offset, rec))
            if len(uncovered) == _CHUNK_RECORDS:
                converted.append(PingRows.of(ping_rows(uncovered)))
                uncovered.clear()
        elif isinstance(rec, IperfTestRecord):
            tested.append((offset, rec))
        elif not isinstance(rec, UnknownRecord):
            others.append(rec)
            others_at.append(offset)
    whole = _whole(offsets, covered[0], kept, part_of, parts, "ping", warn)
    if not whole[:n_rows].all():
        rows = rows.take(np.flatnonzero(whole[:n_rows]))
    summarized = whole[n_rows:]
    stats = found.stats if summarized.all() else found.stats.filter(pa.array(summarized))
    taken = found.stats_part_of[summarized]  # in part order: parts were read in order
    stats_at = offsets[n_rows:][summarized]
    which, first = np.unique(taken, return_index=True)
    probes = PartProbes(
        tuple(parts[i] for i in which.tolist()),
        tuple(np.sort(a) for a in np.split(stats_at, first[1:])),
    )
    bw_whole = np.zeros(len(bw_offsets), np.bool_)
    for cover, of_kind in ((covered[1], ~multi), (covered[2], multi)):
        kind = "iperf3_multi" if of_kind is multi else "iperf3"
        bw_whole |= _whole(bw_offsets, cover, bw_kept & of_kind, bw_part_of, bw_parts, kind, warn)
    if not bw_whole.all():
        tests = tests.filter(pa.array(bw_whole))
    converted.append(PingRows.of(ping_rows(uncovered)))
    return StoredRun(
        PingRows.concat([rows, *converted]),
        pa.concat_tables([tests, bandwidth.bandwidth_rows(tested)]),
        tuple(others),
        tuple(others_at),
        stats if summaries is not None else None,
        probes if summaries is not None else None,
    )


def _whole(
    offsets: NDArray[np.int64],
    cover: Covered,
    kept: NDArray[np.bool_],
    part_of: NDArray[np.int64],
    parts: Sequence[Path],
    kind: str,
    warn: Callable[[str], None] | None,
) -> NDArray[np.bool_]:
    """Which of the ``kept`` rows name a line ``iter_lines`` passed over for ``cover``; the
    parts of the others are named (``warn``)."""
    lines = np.concatenate(cover.found) if cover.found else np.zeros(0, np.int64)  # sorted
    at = np.minimum(np.searchsorted(lines, offsets), max(len(lines) - 1, 0))
    whole = lines[at] == offsets if len(lines) else np.zeros(len(offsets), np.bool_)
    for i in np.unique(part_of[kept & ~whole]).tolist():
        stray = offsets[kept & ~whole & (part_of == i)]
        _tell(warn, f"{parts[i]}: {len(stray)} of its records name no whole {kind} line of "
                    f"samples.jsonl (offset {stray[0]}); left out")  # fmt: skip
    return kept & whole


#: Parts are read this many at a time and split together (few Python calls per record).
_PARTS_AT_ONCE = 64


@dataclass(frozen=True, slots=True, eq=False)
class _Parts:
    parts: list[Path]  # the ping parts used, in offset order
    rows: PingRows  # the records of those read for their probes
    part_of: NDArray[np.int64]  # each record's part (an index into ``parts``)
    stats: pa.Table  # the records of those read for their statistics
    stats_part_of: NDArray[np.int64]


def _read_parts(
    run_dir: Path, warn: Callable[[str], None] | None, summaries: pa.Schema | None
) -> _Parts:
    """The parts in offset order, split as they are read (``PingRows``: the per-record columns
    once per record) or, with ``summaries``, their statistics parts where they have one; the
    index of each record's part. A part unreadable, or of another schema, is left out
    (``warn``); a statistics part so, or of another version, is passed over for its part."""
    paths = sorted((run_dir / PROBES_DIR).glob("ping-*.parquet"))
    parts: list[Path] = []
    split: list[PingRows] = []
    part_of: list[NDArray[np.int64]] = []
    stats: list[pa.Table] = []
    stats_part_of: list[NDArray[np.int64]] = []
    batch: list[tuple[int, pa.Table]] = []

    def flush() -> None:
        if batch:
            breaks = np.cumsum([t.num_rows for _, t in batch])[:-1].tolist()
            rows = PingRows.of(pa.concat_tables([t for _, t in batch]), breaks)
            split.append(rows)
            starts = np.cumsum(rows.lengths()) - rows.lengths()
            index = np.array([i for i, _ in batch], np.int64)
            part_of.append(index[np.searchsorted(breaks, starts, side="right")])
            batch.clear()
            # mimalloc keeps what the batch's tables freed: ~0.4 GiB of RSS at 1,000 hosts
            pa.default_memory_pool().release_unused()

    # a part is small: one thread each, and the parts of a batch side by side (Parquet's
    # decoding leaves the GIL); a batch at a time bounds what is held before it is split
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for start in range(0, len(paths), _PARTS_AT_ONCE):
            window = paths[start : start + _PARTS_AT_ONCE]
            summary: list[pa.Table | None] = [None] * len(window)
            if summaries is not None:
                read = partial(_read_stats, schema=summaries)
                for k, got in enumerate(pool.map(read, window)):
                    if isinstance(got, Exception):
                        _tell(warn, f"{stats_path(window[k])}: not a statistics part ({got}); "
                                    "its part's probes are read instead")  # fmt: skip
                    else:
                        summary[k] = got
            unsummarized = [p for p, t in zip(window, summary, strict=True) if t is None]
            tables = dict(zip(unsummarized, pool.map(_read_part, unsummarized), strict=True))
            for path, summed in zip(window, summary, strict=True):
                if summed is not None:
                    stats.append(summed)
                    stats_part_of.append(np.full(summed.num_rows, len(parts), np.int64))
                    parts.append(path)
                    continue
                table = tables[path]
                if isinstance(table, Exception):
                    _tell(warn, f"{path}: not a part of the probe store ({table}); left out")
                    continue
                batch.append((len(parts), table))
                parts.append(path)
            flush()
    empty = np.zeros(0, np.int64)
    return _Parts(
        parts,
        PingRows.concat(split),
        np.concatenate(part_of) if part_of else empty,
        pa.concat_tables(stats) if stats else (summaries or _NO_STATS).empty_table(),
        np.concatenate(stats_part_of) if stats_part_of else empty,
    )


_NO_STATS = pa.schema([pa.field("offset", pa.int64())])


def _read_part(path: Path) -> pa.Table | Exception:
    """One part in ``SCHEMA``, or why it is not one."""
    try:
        table = pq.ParquetFile(path).read(use_threads=False)  # small: threads cost more
        return pa.Table.from_arrays(table.select(SCHEMA.names).columns, schema=SCHEMA)
    except (OSError, KeyError, pa.ArrowException) as exc:
        return exc


def _read_stats(part: Path, schema: pa.Schema) -> pa.Table | Exception | None:
    """``part``'s statistics part in ``schema``; None when it has none or one of another
    version (its probes are reduced instead), or why it cannot be read."""
    path = stats_path(part)
    if not path.exists():
        return None
    try:
        file = pq.ParquetFile(path)
        version = (file.schema_arrow.metadata or {}).get(_STATS_KEY)
        if version is None or version != (schema.metadata or {}).get(_STATS_KEY):
            return None
        table = file.read(use_threads=False)
        return pa.Table.from_arrays(table.select(schema.names).columns, schema=schema)
    except (OSError, KeyError, pa.ArrowException) as exc:
        return exc


#: The statistics parts' schema metadata key naming their version.
_STATS_KEY = b"probe.stats"


def _first_copies(
    offsets: NDArray[np.int64],
    part_of: NDArray[np.int64],
    parts: Sequence[Path],
    warn: Callable[[str], None] | None,
) -> NDArray[np.bool_]:
    """Which records to keep: a record in two parts (only a copied file makes one) is kept in
    the first (``warn`` told of the other)."""
    kept = np.zeros(len(offsets), np.bool_)
    kept[np.unique(offsets, return_index=True)[1]] = True  # parts are in order: the first
    for i in np.unique(part_of[~kept]).tolist():
        _tell(warn, f"{parts[i]}: holds records an earlier part holds; those left out")
    return kept


def _tell(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is not None:
        warn(f"{message} (samples.jsonl has every record: delete the part to silence this)")
