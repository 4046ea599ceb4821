"""The bandwidth store: a run's iperf3 records as Parquet, one row per test (``<run>/bandwidth/``).

Like the probe store (``probe.store.probes``) it is a columnar copy of samples.jsonl, which stays
the source of truth: an iperf3 record is a JSON object of ~40 keys, and decoding 99k of them
was a third of a 1,000-host rebuild. The bandwidth phase appends its records one at a time;
``RunStore`` keeps their rows and writes a part every ``PART_RECORDS`` tests and when it closes:
``bandwidth/bw-<offset of the part's first line, 12 digits>.parquet``. A part lost to a crash, or
one that could not be written, leaves its records to be decoded from samples.jsonl.

Columns (``SCHEMA``; README "bandwidth/*.parquet"), one row per ``iperf3`` or ``iperf3_multi``
record — what the matrix reads of it:

- ``offset`` (int64): the byte offset of the record's line in samples.jsonl (identity, order).
- ``kind`` (``iperf3``, ``iperf3_multi``), ``src``, ``dst``, ``network``, ``status``: dictionary
  strings; ``reason`` (null unless the record has one).
- from ``result`` (all null when the record has none): ``receiver_bps``, ``retransmits``,
  ``mean_rtt_ms``, ``cpu_bound``, ``streams``, ``duration_s``, ``sender_cc``, ``receiver_cc``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from probe.store.parts import save_part
from probe.store.records import IperfTestRecord

#: The bandwidth store's folder in a run directory.
BANDWIDTH_DIR = "bandwidth"
#: Tests a part holds at most (a crash leaves at most this many lines to decode).
PART_RECORDS = 4096

_NAME = pa.dictionary(pa.int32(), pa.string())

SCHEMA = pa.schema(
    [
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("kind", _NAME, nullable=False),
        pa.field("src", _NAME, nullable=False),
        pa.field("dst", _NAME, nullable=False),
        pa.field("network", _NAME, nullable=False),
        pa.field("status", _NAME, nullable=False),
        pa.field("reason", pa.string()),
        pa.field("receiver_bps", pa.float64()),
        pa.field("retransmits", pa.int64()),
        pa.field("mean_rtt_ms", pa.float64()),
        pa.field("cpu_bound", pa.bool_()),
        pa.field("streams", pa.int32()),
        pa.field("duration_s", pa.float64()),
        pa.field("sender_cc", _NAME),
        pa.field("receiver_cc", _NAME),
    ]
)
_RESULT = (
    "receiver_bps", "retransmits", "mean_rtt_ms", "cpu_bound", "streams", "duration_s",
    "sender_cc", "receiver_cc",
)  # fmt: skip


def bandwidth_rows(records: Sequence[tuple[int, IperfTestRecord]]) -> pa.Table:
    """(offset in samples.jsonl, record) → rows in ``SCHEMA``: the one converter (the part
    writer, the reader's fallback for lines no part covers, the matrix's records)."""
    values: dict[str, list[object]] = {f.name: [] for f in SCHEMA}
    for offset, rec in records:
        for name, value in (
            ("offset", offset), ("kind", rec.kind), ("src", rec.src), ("dst", rec.dst),
            ("network", rec.network), ("status", rec.status.value), ("reason", rec.reason),
        ):  # fmt: skip
            values[name].append(value)
        result = rec.result
        for name in _RESULT:
            values[name].append(None if result is None else getattr(result, name))
    columns = [
        pa.array(values[f.name], pa.string()).dictionary_encode()
        if pa.types.is_dictionary(f.type)
        else pa.array(values[f.name], f.type)
        for f in SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def part_path(run_dir: Path, first_offset: int) -> Path:
    """``<run>/bandwidth/bw-<offset of the part's first line, 12 digits>.parquet``."""
    return run_dir / BANDWIDTH_DIR / f"bw-{first_offset:012d}.parquet"


def write_part(run_dir: Path, tests: Sequence[tuple[int, IperfTestRecord]]) -> Path:
    """One part for records already in samples.jsonl (``save_part``)."""
    return save_part(part_path(run_dir, tests[0][0]), bandwidth_rows(tests))


def read_parts(
    run_dir: Path, refuse: Callable[[Path, Exception], None]
) -> tuple[list[Path], pa.Table, NDArray[np.int64]]:
    """The parts in offset order, their rows, and each row's part (an index into the paths);
    one unreadable or of another schema is left out (``refuse`` told)."""
    paths: list[Path] = []
    tables: list[pa.Table] = []
    for path in sorted((run_dir / BANDWIDTH_DIR).glob("bw-*.parquet")):
        try:
            table = pq.ParquetFile(path).read(use_threads=False)
            table = pa.Table.from_arrays(table.select(SCHEMA.names).columns, schema=SCHEMA)
        except (OSError, KeyError, pa.ArrowException) as exc:
            refuse(path, exc)
            continue
        paths.append(path)
        tables.append(table)
    part_of = np.repeat(np.arange(len(tables), dtype=np.int64), [t.num_rows for t in tables])
    rows = pa.concat_tables(tables).combine_chunks() if tables else bandwidth_rows([])
    return paths, rows, part_of
