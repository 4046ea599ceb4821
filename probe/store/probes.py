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

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from probe.store.records import PingRecord, Probe

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
