"""The probe store's ping rows → each cell's statistics, vectorised (numpy over Arrow).

One cell is (src, dst, network); its latest record (largest ``offset``) is reduced to exactly
what ``train_stats`` and ``probe.stats.rtt_confidence`` give — the same floats, not close ones:
ping's summary unless duplicates, percentiles clamped into [min, max], IPDV in seq order, mdev
as ``statistics.pstdev``, Wilson loss bounds, order-statistic p50/p99 bounds. Trains are
bucketed by how many replies they hold, so each bucket is a dense (cells × replies) matrix:
one sort, one set of percentile positions and quantile ranks per bucket. Sums that Python
rounds once (``math.fsum``, ``statistics``) are rounded once here too, certified
(``probe.matrix.exact``); a train the arithmetic cannot certify, or one the Python path would
refuse, goes through ``train_stats`` itself.

Why numpy (bench/bench_engine.py → reports/bench/engine.json; 20 probes per pair, each engine
in its own child process in the same run, 2 shared cores): at 1,000 hosts (20 M probe rows)
numpy 18 s / 4.8 GiB peak, DuckDB 35 s / 3.7 GiB, Polars 32 s / 2.0 GiB; at 300 hosts all three
take about 2 s (numpy 0.63 GiB, DuckDB 0.41, Polars 0.36). The deciding reason is exactness: the
matrix must carry the very floats ``train_stats`` gives (the fixtures, the hypothesis tests),
and neither engine's sum, mean, stddev or quantile is bit-identical to ``statistics`` and
``math.fsum`` — each would still need this module's certified pass or a Python one. numpy was
also the fastest and adds no dependency. That 4.8 GiB was mostly the probe table itself (every
per-record column repeated per probe row): the engine now reads ``PingRows`` (each per-record
value once, the probes as numpy columns) and keeps no per-row record index, so a 1,000-host
rebuild peaks near 1.5 GiB (bench_scale).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from probe.matrix.exact import fsum_rows, mean_rows, pstdev_rows
from probe.matrix.samples import Probes
from probe.model import CellStatus
from probe.networks import DEFAULT_NETWORK
from probe.stats import (
    P99_MIN_SAMPLES,
    RttConfidence,
    RttStats,
    quantile_ranks,
    rtt_confidence,
    rtt_stats,
    wilson,
)
from probe.store.probes import PingRows
from probe.store.records import PingTrain
from probe.tools.ping import PingProbe, PingSummary

#: ``RttStats`` and ``RttConfidence`` fields: the figure columns of ``PingCells.cells``.
STATS = [f.name for f in fields(RttStats)]
CONFIDENCE = [f.name for f in fields(RttConfidence)]
_FIGURES = [c for c in STATS if c not in ("sent", "received")]
_BOUNDS = [c for c in CONFIDENCE if c != "p99_few_samples"]
_SUMMARY = ("sum_min_ms", "sum_avg_ms", "sum_max_ms", "sum_mdev_ms")
_PERCENTILES = (("rtt_p50_ms", 50), ("rtt_p90_ms", 90), ("rtt_p99_ms", 99))
#: RTTs reduced at a time: the certified sums hold ~15 temporaries the size of their rows.
_CHUNK_VALUES = 1 << 21


def train_stats(train: PingTrain) -> RttStats:
    """Statistics of one ping train of samples.jsonl; ping's summary unless duplicates
    polluted it (see ``probe.stats.report_stats``)."""
    return rtt_stats(
        [PingProbe(seq, rtt) for seq, rtt in train.probes],
        sent=train.sent,
        received=train.received,
        summary=train.summary if not train.duplicates else None,
    )


#: Version of ``STATS_SCHEMA``'s meaning: a part written under another is not read (its
#: records are reduced from their probes again).
STATS_VERSION = b"1"
_NAME = pa.dictionary(pa.int32(), pa.string())
#: One ping record reduced (``record_stats``): what ``stats/ping-<offset>.parquet`` holds
#: beside each ping part, so that a rebuild reads each record's statistics instead of its probes
#: (README "probes/*.parquet"). ``replies``: its received probes (the samples' count).
STATS_SCHEMA = pa.schema(
    [
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("src", _NAME, nullable=False),
        pa.field("dst", _NAME, nullable=False),
        pa.field("network", _NAME),
        pa.field("status", _NAME, nullable=False),
        pa.field("reason", pa.string()),
        pa.field("trained", pa.bool_(), nullable=False),
        pa.field("sent", pa.int64(), nullable=False),
        pa.field("received", pa.int64(), nullable=False),
        pa.field("replies", pa.int64(), nullable=False),
        *(pa.field(c, pa.float64()) for c in _FIGURES + _BOUNDS),
        pa.field("p99_few_samples", pa.bool_()),
    ],
    metadata={b"probe.stats": STATS_VERSION},
)
_IDENTITY = ("offset", "src", "dst", "network", "status", "reason")

#: The received probes of records (their ``offset``s, ascending, and how many each has) as
#: (seq, rtt_ms), record after record, each record's in arrival order.
ProbeReader = Callable[
    [NDArray[np.int64], NDArray[np.int64]], tuple[NDArray[np.int32], NDArray[np.float64]]
]


class PingCells:
    """Each cell's latest ping record, reduced.

    ``columns``, one row per cell in the order of the records' ``offset``: ``src``, ``dst``,
    ``network``, ``status``, ``reason`` (objects), ``offset`` (the record's),
    ``trained`` (the record holds a train: the figure columns are its statistics), the
    ``RttStats`` fields (``sent`` and ``received`` int64, 0 without a train; the figures float64,
    NaN for None) and the ``RttConfidence`` fields (NaN for None; ``p99_few_samples`` int8:
    1 true, 0 false, -1 None). ``codes``: ``src``, ``dst`` and ``network`` as codes into their
    distinct values (a lookup per value, not per cell). ``rtt_ms`` / ``seq``: the received
    probes of every ``ok`` cell with a train, in arrival order, cell after cell: cell i's are
    ``[start[i], start[i] + count[i])``. They are gathered on first use: a rebuild from
    statistics parts never reads a probe.
    """

    __slots__ = ("_gather", "_probes", "codes", "columns", "count", "start")

    def __init__(
        self,
        columns: dict[str, NDArray[Any]],
        codes: dict[str, tuple[NDArray[np.int64], list[str]]],
        start: NDArray[np.int64],
        count: NDArray[np.int64],
        gather: Callable[[], tuple[NDArray[np.float64], NDArray[np.int32]]],
    ) -> None:
        self.columns, self.codes, self.start, self.count = columns, codes, start, count
        self._gather = gather
        self._probes: tuple[NDArray[np.float64], NDArray[np.int32]] | None = None

    @property
    def cells(self) -> pd.DataFrame:
        """``columns`` as a frame (``p99_few_samples`` boolean with NA)."""
        few = self.columns["p99_few_samples"]
        columns: dict[str, Any] = {n: pd.Series(v, dtype=v.dtype) for n, v in self.columns.items()}
        columns["p99_few_samples"] = pd.arrays.BooleanArray(few == 1, few < 0)
        return pd.DataFrame(columns)

    @property
    def rtt_ms(self) -> NDArray[np.float64]:
        return self._received()[0]

    @property
    def seq(self) -> NDArray[np.int32]:
        return self._received()[1]

    def _received(self) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
        if self._probes is None:
            self._probes = self._gather()
        return self._probes

    def probes(self, i: int) -> Probes:
        """Cell i's received probes (views, no copy)."""
        a, b = int(self.start[i]), int(self.start[i] + self.count[i])
        return Probes(self.rtt_ms[a:b], self.seq[a:b])


def _values(column: pa.ChunkedArray, fill: Any) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """A column as (values with nulls filled, validity)."""
    valid = pc.is_valid(column).to_numpy().astype(np.bool_, copy=False)
    return pc.fill_null(column, fill).to_numpy(), valid


def _codes(column: pa.ChunkedArray, null: str | None) -> tuple[NDArray[np.int64], list[str]]:
    """A string column as codes into its distinct values (null: ``null``); a dictionary
    column's chunks (one per part) share one dictionary first, no string materialised."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column.cast(pa.string()))
    column = column.unify_dictionaries()
    chunks = [c for c in column.chunks if len(c)]
    if not chunks:
        return np.zeros(0, np.int64), []
    values: list[Any] = chunks[0].dictionary.to_pylist()
    codes = np.concatenate(
        [c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in chunks]
    ).astype(np.int64)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(values), codes)
        values.append(null)
    return codes, values


def record_stats(pings: PingRows) -> pa.Table:
    """Every record of ``pings`` reduced (``STATS_SCHEMA``), in their order: the statistics
    part a run writes beside each ping part, and a rebuild's reduction of the rest."""
    head = pings.records.select(
        ["offset", "src", "dst", "network", "status", "reason", "sent", "received", "duplicates",
         *_SUMMARY]
    ).combine_chunks()  # fmt: skip
    reduced = _reduce(head, pings)
    columns: dict[str, Any] = {name: head[name] for name in _IDENTITY}
    for name in ("trained", "sent", "received"):
        columns[name] = reduced.columns[name]
    columns["replies"] = reduced.replies
    for name in _FIGURES + _BOUNDS:
        columns[name] = reduced.columns[name]
    columns["p99_few_samples"] = pa.array(reduced.few == 1, mask=reduced.few < 0)
    arrays = [
        (c if isinstance(c, pa.Array | pa.ChunkedArray) else pa.array(c)).cast(f.type)
        for f, c in ((f, columns[f.name]) for f in STATS_SCHEMA)
    ]
    return pa.Table.from_arrays(arrays, schema=STATS_SCHEMA)


def part_stats(rows: pa.Table) -> pa.Table:
    """A ping part's rows (``probe.store.probes.SCHEMA``) → its statistics part."""
    return record_stats(PingRows.of(rows))


def ping_cells(
    pings: PingRows, summarized: pa.Table | None = None, read: ProbeReader | None = None
) -> PingCells:
    """Each cell's latest ping record (max ``offset``) of the probe store's rows, reduced, and
    of ``summarized``: records reduced already (``STATS_SCHEMA``, statistics parts), whose
    probes ``read`` gives when they are asked for."""
    own = record_stats(pings)
    stats = (
        own
        if summarized is None or not summarized.num_rows
        else pa.concat_tables([summarized.cast(STATS_SCHEMA), own])
    )
    n_summarized = stats.num_rows - own.num_rows
    offset = stats["offset"].to_numpy().astype(np.int64, copy=False)
    src, src_names = _codes(stats["src"], None)
    dst, dst_names = _codes(stats["dst"], None)
    net, net_names = _codes(stats["network"], DEFAULT_NETWORK)
    key = (src * len(dst_names) + dst) * len(net_names) + net
    if pd.Index(key).is_unique:  # one record per cell (a run not resumed): every record
        chosen = np.arange(len(key))
    else:  # a cell measured again (--resume): its latest record
        order = np.lexsort((offset, key))
        last = np.r_[key[order][1:] != key[order][:-1], True]
        chosen = order[last]
    chosen = chosen[np.argsort(offset[chosen], kind="stable")]
    every = len(chosen) == stats.num_rows and bool((chosen == np.arange(len(chosen))).all())

    def pick(name: str) -> NDArray[Any]:
        values: NDArray[Any] = stats[name].to_numpy()
        return values if every else values[chosen]

    status, status_names = _codes(stats["status"], None)
    status_of = np.asarray(status_names, dtype=object)[status[chosen]]
    trained = pick("trained")
    few = stats["p99_few_samples"]
    known = pc.is_valid(few).to_numpy(zero_copy_only=False)
    flags = np.where(known, pc.fill_null(few, False).to_numpy(zero_copy_only=False), -1)
    columns: dict[str, NDArray[Any]] = {
        "src": np.asarray(src_names, dtype=object)[src[chosen]],
        "dst": np.asarray(dst_names, dtype=object)[dst[chosen]],
        "network": np.asarray(net_names, dtype=object)[net[chosen]],
        "status": status_of,
        "reason": np.asarray(stats["reason"].to_pylist(), dtype=object)[chosen],
        "offset": offset[chosen],
        "trained": trained,
        **{c: pick(c) for c in ("sent", "received", *_FIGURES, *_BOUNDS)},
        "p99_few_samples": flags.astype(np.int8)[chosen],
    }
    codes = {"src": (src[chosen], src_names), "dst": (dst[chosen], dst_names),
             "network": (net[chosen], net_names)}  # fmt: skip
    ok = (status_of == CellStatus.OK.value) & trained
    count = np.where(ok, pick("replies"), 0).astype(np.int64)
    start = np.cumsum(count) - count
    return PingCells(
        columns,
        codes,
        start,
        count,
        lambda: _gather(pings, chosen, count, n_summarized, offset, read),
    )


def _gather(
    pings: PingRows,
    chosen: NDArray[np.int64],
    count: NDArray[np.int64],
    n_summarized: int,
    offset: NDArray[np.int64],
    read: ProbeReader | None,
) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
    """The received probes of the cells with ``count`` (in the cells' offset order): the
    summarized records' from ``read``, the others' from ``pings``' rows."""
    wanted = count > 0
    from_rows = chosen >= n_summarized
    outside = wanted & ~from_rows
    if read is None or not outside.any():
        if outside.any():
            raise ValueError("summarized records without a reader of their probes")
        seq, rtt = np.zeros(0, np.int32), np.zeros(0, np.float64)
    else:
        seq, rtt = read(offset[chosen[outside]], count[outside])
    if not (wanted & from_rows).any():  # every cell's probes from the statistics parts' reader
        return rtt.astype(np.float64, copy=False), seq.astype(np.int32, copy=False)
    mine = np.zeros(pings.records.num_rows, np.bool_)
    mine[chosen[wanted & from_rows] - n_summarized] = True
    keep = pings.has_seq & pings.has_rtt & np.repeat(mine, pings.lengths())
    at = np.repeat(pings.records["offset"].to_numpy().astype(np.int64), pings.lengths())[keep]
    at = np.concatenate([np.repeat(offset[chosen[outside]], count[outside]), at])
    seq = np.concatenate([seq, pings.seq[keep]])
    rtt = np.concatenate([rtt, pings.rtt_ms[keep]])
    order = np.argsort(at, kind="stable")  # records from both, in offset order
    return rtt[order].astype(np.float64, copy=False), seq[order].astype(np.int32, copy=False)


@dataclass(frozen=True, slots=True, eq=False)
class _Reduced:
    columns: dict[str, Any]
    few: NDArray[np.int8]  # p99_few_samples: 1 true, 0 false, -1 None
    replies: NDArray[np.int64]  # per record: its received probes


def _per_record(flags: NDArray[np.bool_], row_start: NDArray[np.int64]) -> NDArray[np.int64]:
    """How many of each record's rows ``flags`` holds (records cover the rows, in order)."""
    where = np.searchsorted(np.flatnonzero(flags), np.r_[row_start, len(flags)])
    out: NDArray[np.int64] = np.diff(where).astype(np.int64)
    return out


def _in_seq_order(
    seq: NDArray[np.int32], has_seq: NDArray[np.bool_], row_start: NDArray[np.int64]
) -> bool:
    """Whether every record's probes come in ``seq`` order (a train as ping prints it)."""
    p_seq = seq[has_seq]
    n_probes = _per_record(has_seq, row_start)
    same = np.ones(max(len(p_seq) - 1, 0), np.bool_)
    firsts = (np.cumsum(n_probes) - n_probes)[n_probes > 0]
    same[firsts[firsts > 0] - 1] = False  # a record's first probe follows another record's
    return not (np.diff(p_seq) < 0)[same].any()


def _reduce(head: pa.Table, pings: PingRows) -> _Reduced:
    """The statistics of each record of ``head`` from its rows in ``pings``."""
    n_rec = head.num_rows
    seq, has_seq, rtt, has_rtt = pings.seq, pings.has_seq, pings.rtt_ms, pings.has_rtt
    length = pings.lengths()
    row_start = np.cumsum(length) - length
    sent, trained = _values(head["sent"], 0)
    received, _ = _values(head["received"], 0)
    duplicates, _ = _values(head["duplicates"], 0)
    sent, received = sent.astype(np.int64), received.astype(np.int64)
    summary = {c: _values(head[c], np.nan) for c in _SUMMARY}
    has_summary = summary["sum_min_ms"][1] & summary["sum_avg_ms"][1] & summary["sum_max_ms"][1]
    use_summary = has_summary & (duplicates == 0)

    got = has_seq & has_rtt
    n_got = _per_record(got, row_start)
    if _in_seq_order(seq, has_seq, row_start):
        values = rtt[got]
    else:  # some train is not in seq order: each record's replies sorted by seq
        record = np.repeat(np.arange(n_rec, dtype=np.int32), length)
        probe = np.flatnonzero(has_seq)
        ordered = probe[np.lexsort((seq[probe], record[probe]))]
        values = rtt[ordered[has_rtt[ordered]]]
    start = np.cumsum(n_got) - n_got
    bad_rtt = _per_record(got & ~np.isfinite(rtt), row_start) > 0

    fig = {c: np.full(n_rec, np.nan) for c in _FIGURES + _BOUNDS}
    few = np.full(n_rec, -1, np.int8)
    s_min, s_avg, s_max, s_mdev = (summary[c][0] for c in _SUMMARY)
    finite = np.isfinite(np.where(use_summary, s_min + s_avg + s_max, 0.0))
    finite &= np.isfinite(np.where(summary["sum_mdev_ms"][1] & use_summary, s_mdev, 0.0))
    python = trained & (
        (sent < 1) | (received < 0) | (received > sent) | ~finite | bad_rtt
        | (use_summary & (s_min > s_max))
    )  # fmt: skip
    vector = trained & ~python
    with np.errstate(invalid="ignore", divide="ignore"):
        fig["loss_pct"] = np.where(vector, 100.0 * (sent - received) / sent, np.nan)
    _loss_bounds(fig, vector, sent, received)
    answered = vector & (received > 0)
    blind = answered & (n_got == 0) & use_summary  # counted replies, none readable
    for col, src in zip(("rtt_min_ms", "rtt_mean_ms", "rtt_max_ms"), _SUMMARY, strict=False):
        fig[col][blind] = summary[src][0][blind]
    mdev_known = summary["sum_mdev_ms"][1]
    fig["rtt_mdev_ms"][blind & mdev_known] = s_mdev[blind & mdev_known]
    for n in np.unique(n_got[answered & (n_got > 0)]).tolist():
        bucket = np.flatnonzero(answered & (n_got == n))
        for at in range(0, len(bucket), _CHUNK_VALUES // n):  # the arithmetic's temporaries
            rows = bucket[at : at + _CHUNK_VALUES // n]
            x = values[start[rows][:, None] + np.arange(n)]
            python[rows[~_bucket(fig, few, rows, x, use_summary[rows], summary)]] = True
    for i in np.flatnonzero(python).tolist():
        part = slice(int(row_start[i]), int(row_start[i] + length[i]))
        probes = tuple(
            (int(s), float(r) if ok else None)
            for s, r, ok, is_probe in zip(
                seq[part], rtt[part], has_rtt[part], has_seq[part], strict=True
            )
            if is_probe
        )
        train = PingTrain(
            int(sent[i]), int(received[i]), int(duplicates[i]), probes, _summary(summary, i)
        )
        _python(fig, few, i, train)
    columns: dict[str, Any] = {
        "trained": trained,
        "sent": np.where(trained, sent, 0),
        "received": np.where(trained, received, 0),
        **{c: fig[c] for c in _FIGURES},
        **{c: fig[c] for c in _BOUNDS},
    }
    return _Reduced(columns, few, n_got)


def _loss_bounds(
    fig: dict[str, NDArray[np.float64]],
    rows: NDArray[np.bool_],
    sent: NDArray[np.int64],
    received: NDArray[np.int64],
) -> None:
    """Wilson bounds of the loss, once per distinct (lost, sent)."""
    where = np.flatnonzero(rows)
    lost, trials = sent[where] - received[where], sent[where]
    # one integer per (lost, sent): 0 ≤ lost ≤ sent on these rows (the others go through Python)
    span = int(trials.max()) + 1 if len(where) else 1
    keys, inverse = np.unique(lost * span + trials, return_inverse=True)
    low, high = np.empty(len(keys)), np.empty(len(keys))
    for k, key in enumerate(keys.tolist()):
        low[k], high[k] = wilson(key // span, key % span)
    fig["loss_lo_pct"][where] = 100.0 * low[inverse]
    fig["loss_hi_pct"][where] = 100.0 * high[inverse]


def _bucket(
    fig: dict[str, NDArray[np.float64]],
    few: NDArray[np.int8],
    rows: NDArray[np.int64],
    x: NDArray[np.float64],
    use_summary: NDArray[np.bool_],
    summary: dict[str, tuple[NDArray[Any], NDArray[np.bool_]]],
) -> NDArray[np.bool_]:
    """The figures of trains with the same number n of readable replies ``x`` (rows in seq
    order); returns which rows the arithmetic certified (the others go through Python)."""
    n = x.shape[1]
    ranked = np.sort(x, axis=1)
    certain = np.ones(len(rows), np.bool_)

    def summary_of(col: str) -> NDArray[Any]:
        return summary[col][0][rows]

    low = np.where(use_summary, summary_of("sum_min_ms"), ranked[:, 0])
    high = np.where(use_summary, summary_of("sum_max_ms"), ranked[:, -1])
    mean = summary_of("sum_avg_ms").copy()
    own = ~use_summary
    if own.any():
        mean[own], sure = mean_rows(x[own])
        certain[own] &= sure
    mdev = summary_of("sum_mdev_ms").copy()
    pstdev = ~(use_summary & summary["sum_mdev_ms"][1][rows])
    if pstdev.any():
        mdev[pstdev], sure = pstdev_rows(x[pstdev])
        certain[pstdev] &= sure
    estimates = {}
    for col, q in _PERCENTILES:
        position = (n - 1) * q / 100.0
        at = int(np.floor(position))
        above = min(at + 1, n - 1)
        below_v, above_v = ranked[:, at], ranked[:, above]
        value = below_v + (above_v - below_v) * (position - at)
        value = np.minimum(np.maximum(value, below_v), above_v)
        estimates[col] = np.minimum(np.maximum(value, low), high)
    ipdv = np.full(len(rows), np.nan)
    if n >= 2:
        total, sure = fsum_rows(np.abs(np.diff(x, axis=1)))
        certain &= sure
        ipdv = np.minimum(total / (n - 1), ranked[:, -1] - ranked[:, 0])
    for col, value in (
        ("rtt_min_ms", low), ("rtt_mean_ms", mean), ("rtt_max_ms", high), ("rtt_mdev_ms", mdev),
        ("ipdv_ms", ipdv), ("pdv_p99_ms", estimates["rtt_p99_ms"] - low), *estimates.items(),
    ):  # fmt: skip
        fig[col][rows] = value
    for q, col in ((50, "rtt_p50"), (99, "rtt_p99")):
        lo_rank, hi_rank = quantile_ranks(n, q / 100.0)
        estimate = estimates[f"{col}_ms"]
        if lo_rank is not None:
            bound = np.minimum(np.maximum(ranked[:, lo_rank - 1], low), high)
            fig[f"{col}_lo_ms"][rows] = np.minimum(bound, estimate)
        if hi_rank is not None:
            bound = np.maximum(np.minimum(ranked[:, hi_rank - 1], high), low)
            fig[f"{col}_hi_ms"][rows] = np.maximum(bound, estimate)
    few[rows] = int(n < P99_MIN_SAMPLES)
    return certain


def _summary(
    summary: dict[str, tuple[NDArray[Any], NDArray[np.bool_]]], i: int
) -> PingSummary | None:
    if not all(summary[c][1][i] for c in _SUMMARY[:3]):
        return None
    mdev = float(summary["sum_mdev_ms"][0][i]) if summary["sum_mdev_ms"][1][i] else None
    low, mean, high = (float(summary[c][0][i]) for c in _SUMMARY[:3])
    return PingSummary(low, mean, high, mdev)


def _python(
    fig: dict[str, NDArray[np.float64]], few: NDArray[np.int8], i: int, train: PingTrain
) -> None:
    """Record i through ``train_stats`` and ``rtt_confidence`` themselves."""
    stats = train_stats(train)
    confidence = rtt_confidence(stats, [r for _, r in train.probes if r is not None])
    for name, value in (*_items(stats, _FIGURES), *_items(confidence, _BOUNDS)):
        fig[name][i] = np.nan if value is None else value
    few[i] = -1 if confidence.p99_few_samples is None else int(confidence.p99_few_samples)


def _items(value: RttStats | RttConfidence, names: Sequence[str]) -> list[tuple[str, Any]]:
    return [(name, getattr(value, name)) for name in names]
