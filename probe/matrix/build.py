"""Samples → the latency/bandwidth matrix (pandas): long form, wide grids, region roll-ups, anchors.

Long form is the one source every view derives from: one row per ordered pair of measured hosts
and network it was measured over (``network``, and ``address``: the destination's on it),
*always* present, with ``status`` and ``reason`` saying why a row has no numbers. Nothing here is
0 for "unknown": an empty cell is NaN plus a status.

**Networks.** A pair's rows come in ``probe.networks``' order, the rule's network first (the one
production traffic would use): only ``--networks all`` gives a pair more than one. Every
single-figure view — the wide grids, region roll-ups, anchors and so calc, groups and gate —
reads that first row of each pair (:func:`preferred`); the others are extra rows of the long form
and its exports. A pair with no network to measure over has one row, ``not-measurable``, without
a network.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.errors import InputError, StoreError
from probe.matrix import anchors as A
from probe.matrix.regions import RegionFigure, figures, roll_up
from probe.matrix.samples import Probes
from probe.model import CellStatus, PortRange
from probe.networks import ALL_NETWORKS, DEFAULT_NETWORK, NetworkChoice, NoRoute, Route, routes
from probe.plan import parse_pair_mode, parse_ping_pairs, select_pairs, select_ping_pairs
from probe.reach import BandwidthRoles, PingWay, bandwidth_roles, ping_reach
from probe.stats import RttConfidence, RttStats, rtt_confidence, rtt_stats, short_for_rtt
from probe.store.records import (
    HostRecord,
    ImportedRecord,
    Iperf3Record,
    PingFanoutRecord,
    PingLoadRecord,
    PingRecord,
    PingTrain,
    SampleRecord,
)
from probe.store.rundir import read_run, scan_samples, torn_warning
from probe.store.rundoc import RunDoc, RunHost
from probe.textio import save
from probe.tools.ping import PingProbe

KEY = ["src", "dst"]
#: What a row is keyed by: the pair and the network (``--networks all`` gives a pair several).
CELL_KEY = [*KEY, "network"]
LABELS = ["src_region", "dst_region", "src_zone", "dst_zone"]
PING_COLUMNS = [
    "sent",
    "received",
    "loss_pct",
    "rtt_min_ms",
    "rtt_mean_ms",
    "rtt_p50_ms",
    "rtt_p90_ms",
    "rtt_p99_ms",
    "rtt_max_ms",
    "rtt_mdev_ms",
    "ipdv_ms",
    "pdv_p99_ms",
]
BW_COLUMNS = [
    "bw_status",
    "bw_reason",
    "bw_fwd_mbps",
    "bw_rev_mbps",
    "bw_fwd_retransmits",
    "bw_fwd_tcp_rtt_ms",
    "bw_fwd_cpu_bound",
    # TCP congestion control of src→dst's sender (src) and receiver (dst), as iperf3 reported
    "sender_cc",
    "receiver_cc",
]
#: RTT while src→dst carries a bandwidth test (``probe run --under-load``): bufferbloat.
LOAD_COLUMNS = ["rtt_loaded_p50_ms", "rtt_loaded_p99_ms"]
#: ``--compare-streams N``: src→dst goodput of N parallel streams, beside the single stream.
MULTI_COLUMNS = ["bw_fwd_multi_mbps", "bw_multi_streams"]
#: How far the RTT figures can be trusted (``probe.stats.RttConfidence``): 95 % bounds (NaN:
#: unbounded, the sample is too small) and ``p99_few_samples``.
RTT_CONFIDENCE_COLUMNS = [
    "loss_lo_pct",
    "loss_hi_pct",
    "rtt_p50_lo_ms",
    "rtt_p50_hi_ms",
    "rtt_p99_lo_ms",
    "rtt_p99_hi_ms",
    "p99_few_samples",
]
#: The confidence columns of each metric that has them (``show --json`` puts them by the figure).
METRIC_CONFIDENCE: dict[str, tuple[str, ...]] = {
    "loss_pct": ("loss_lo_pct", "loss_hi_pct"),
    "rtt_p50_ms": ("rtt_p50_lo_ms", "rtt_p50_hi_ms"),
    "rtt_p99_ms": ("rtt_p99_lo_ms", "rtt_p99_hi_ms", "p99_few_samples"),
}
#: The src→dst test's measured seconds (after the omitted ramp) and whether that is too short
#: for the path's RTT (``probe.stats.short_for_rtt``: slow start dominates the figure).
BW_CONFIDENCE_COLUMNS = ["bw_duration_s", "bw_short_for_rtt"]
COLUMNS = [
    *CELL_KEY,
    "address",
    *LABELS,
    "status",
    "reason",
    *PING_COLUMNS,
    "from_reverse",  # RTT figures copied from dst→src: dst accepts no inbound ICMP
    *BW_COLUMNS,
    *LOAD_COLUMNS,
    *MULTI_COLUMNS,
    *RTT_CONFIDENCE_COLUMNS,
    *BW_CONFIDENCE_COLUMNS,
]
#: The reason of a cell no record speaks of: the run never reached it (``--resume`` will).
NOT_MEASURED = "not measured"
METRICS = [
    *PING_COLUMNS,
    "bw_fwd_mbps",
    "bw_rev_mbps",
    "bw_mbps",
    *LOAD_COLUMNS,
    "bw_fwd_multi_mbps",
]


def train_stats(train: PingTrain) -> RttStats:
    """Statistics of one ping train of samples.jsonl; ping's summary unless duplicates
    polluted it (see ``probe.stats.report_stats``)."""
    return rtt_stats(
        [PingProbe(seq, rtt) for seq, rtt in train.probes],
        sent=train.sent,
        received=train.received,
        summary=train.summary if not train.duplicates else None,
    )


def build_matrix(run: RunDoc, records: Iterable[SampleRecord]) -> pd.DataFrame:
    """The long-form matrix from run.json and the sample records (the latest record per cell wins,
    so a ``--resume`` that re-measures a cell replaces the failed attempt)."""
    builder = MatrixBuilder(run)
    builder.add_all(records)
    return builder.frame()


#: A row's key: source, destination, network.
_Cell = tuple[str, str, str]
#: A cell's ping outcome: status, reason, statistics (measured cells only).
_Ping = tuple[str, str | None, RttStats | None]
#: A cell's bandwidth outcome: status, reason, goodput Mbit/s, retransmits, TCP RTT, CPU-bound.
_Bw = tuple[str, str | None, float, int | None, float, bool | None]


class MatrixBuilder:
    """Reduces sample records to each cell's figures as they stream by.

    A rebuild holds figures, not records: a ping record (argv, a list per probe) is ~5× the
    size of its statistics plus its RTTs, and at 300 hosts whole records were 80 % of the peak.
    Host failures still apply at the end: a host record may follow its cells in the file.
    A pair the run's ping plan left out (run.json ``options.ping_pairs``; the plan is drawn again,
    seeded, from run.json's hosts) and that has no ping record is ``not-planned``; so is a
    bandwidth cell outside ``--pairs`` (or every one under ``--no-bandwidth``). A planned cell
    the run could not aim at (``probe.reach``, from run.json's ``inbound``) is ``not-measurable``
    or, toward a host refusing ICMP, a copy of the reverse direction marked ``from_reverse``.
    """

    def __init__(self, run: RunDoc) -> None:
        self.hosts = run.measured_hosts
        self._names = {h.name for h in self.hosts}
        self._route = _router(run)
        self._unplanned = _unplanned(run)
        self._bw_planned = bandwidth_cells(run)
        self._bw_refused = bandwidth_not_measurable(run)
        self._imported = run.imported
        self._bw_unplanned_reason = (
            f"no bandwidth figure for this pair in the imported {run.imported.source}"
            if run.imported is not None
            else f"not in the --pairs {run.options.pairs} plan"
            if run.options.bandwidth
            else "no bandwidth tests in this run (--no-bandwidth)"
        )
        self._host_fail: dict[str, tuple[str, str]] = {}
        self._ping: dict[_Cell, _Ping] = {}
        self._rtts: dict[_Cell, tuple[array[int], array[float]]] = {}
        self._confidence: dict[_Cell, RttConfidence] = {}
        self._bw_seconds: dict[_Cell, float] = {}
        self._bw: dict[_Cell, _Bw] = {}
        self._loaded: dict[_Cell, tuple[float | None, float | None] | None] = {}
        self._multi: dict[_Cell, tuple[float, int] | None] = {}
        self._cc: dict[_Cell, tuple[str | None, str | None]] = {}

    def add_all(self, records: Iterable[SampleRecord]) -> None:
        for rec in records:
            self.add(rec)

    def add(self, rec: SampleRecord) -> None:
        if isinstance(rec, HostRecord):
            if rec.status is not CellStatus.OK:
                self._host_fail[rec.host] = (str(rec.status), rec.reason or "")
            else:
                self._host_fail.pop(rec.host, None)
            return
        if isinstance(rec, PingFanoutRecord):
            return  # its cells come in their own records
        cell = (rec.src, rec.dst, rec.network)
        if cell[0] == cell[1] or cell[0] not in self._names or cell[1] not in self._names:
            return
        ok = rec.status is CellStatus.OK
        if isinstance(rec, ImportedRecord):
            self._add_imported(cell, rec)
        elif isinstance(rec, PingRecord):
            stats = None if rec.train is None else train_stats(rec.train)
            self._ping[cell] = (str(rec.status), rec.reason, stats)
            self._rtts.pop(cell, None)
            self._confidence.pop(cell, None)
            if stats is not None and rec.train is not None:
                got = [r for _, r in rec.train.probes if r is not None]
                self._confidence[cell] = rtt_confidence(stats, got)
            if ok and rec.train is not None:
                self._rtts[cell] = _received(rec.train)
        elif isinstance(rec, Iperf3Record):
            result = rec.result if ok else None
            self._cc.pop(cell, None)
            self._bw_seconds.pop(cell, None)
            if result is not None:
                self._cc[cell] = (result.sender_cc, result.receiver_cc)
                self._bw_seconds[cell] = result.duration_s
            self._bw[cell] = (
                (str(rec.status), rec.reason, math.nan, None, math.nan, None)
                if result is None
                else (
                    str(rec.status),
                    rec.reason,
                    result.receiver_bps / 1e6,
                    result.retransmits,
                    math.nan if result.mean_rtt_ms is None else result.mean_rtt_ms,
                    result.cpu_bound,
                )
            )
        elif isinstance(rec, PingLoadRecord):
            stats = train_stats(rec.train) if ok and rec.train is not None else None
            self._loaded[cell] = None if stats is None else (stats.rtt_p50_ms, stats.rtt_p99_ms)
        else:
            many = rec.result if ok else None
            self._multi[cell] = None if many is None else (many.receiver_bps / 1e6, many.streams)

    def _add_imported(self, cell: _Cell, rec: ImportedRecord) -> None:
        """One figure per metric: every RTT statistic is that figure, resting on no probe
        (``sent`` 0: nothing counts it as a sample, a loss figure stays the source's)."""
        reason = f"imported from {rec.source}:{rec.line}"
        rtt = rec.rtt_ms
        loss = rec.loss_pct if rec.loss_pct is not None else math.nan
        stats = RttStats(0, 0, loss, rtt, rtt, rtt, rtt, rtt, rtt, None, None, None)
        self._ping[cell] = (str(rec.status), reason, stats)
        self._rtts.pop(cell, None)
        if rec.bw_mbps is not None:
            self._bw[cell] = (str(CellStatus.OK), reason, rec.bw_mbps, None, math.nan, None)

    def samples(self) -> dict[tuple[str, str], Probes]:
        """Received probes per ordered pair whose latest ping record over its preferred network
        is OK (anchors' Monte-Carlo)."""
        out = {}
        for (src, dst, network), (seq, rtts) in self._rtts.items():
            found = self._route(src, dst)
            if not isinstance(found, NoRoute) and found[0].network == network:
                out[src, dst] = _probes(seq, rtts)
        return out

    def frame(self) -> pd.DataFrame:
        rows: dict[_Cell, dict[str, Any]] = {}
        for a in self.hosts:
            for b in self.hosts:
                if a.name == b.name:
                    continue
                found = self._route(a.name, b.name)
                if isinstance(found, NoRoute):
                    rows[a.name, b.name, ""] = _unmeasurable_row(a, b, found.reason)
                for r in () if isinstance(found, NoRoute) else found:
                    rows[a.name, b.name, r.network] = _empty_row(a, b, r)
        by_name = {h.name: h for h in self.hosts}
        from_reverse: dict[_Cell, str] = {}
        for key, row in rows.items():
            if row["status"] == CellStatus.NOT_MEASURABLE:
                continue
            pair = key[:2]
            ping = self._ping.get(key)
            reach = ping_reach(by_name[key[0]], by_name[key[1]])
            if ping is None and self._imported is not None:
                row["status"] = str(CellStatus.NOT_PLANNED)
                row["reason"] = f"no figure for this pair in the imported {self._imported.source}"
            elif ping is None and self._unplanned is not None and pair not in self._unplanned[0]:
                row["status"], row["reason"] = str(CellStatus.NOT_PLANNED), self._unplanned[1]
            elif ping is None and reach.way is PingWay.NOT_MEASURABLE:
                row["status"], row["reason"] = str(CellStatus.NOT_MEASURABLE), reach.reason
            elif ping is None and reach.way is PingWay.FROM_REVERSE:
                from_reverse[key] = reach.reason or ""
            else:
                _fill_ping(row, ping, self._host_fail)
            if (confidence := self._confidence.get(key)) is not None:
                row.update(asdict(confidence))
            bw = self._bw.get(key)
            if bw is None and pair in self._bw_refused:
                row["bw_status"] = str(CellStatus.NOT_MEASURABLE)
                row["bw_reason"] = self._bw_refused[pair]
            elif bw is None and pair not in self._bw_planned:
                row["bw_status"] = str(CellStatus.NOT_PLANNED)
                row["bw_reason"] = self._bw_unplanned_reason
            else:
                _fill_bw(row, bw, self._host_fail)
            if (load := self._loaded.get(key)) is not None:
                row["rtt_loaded_p50_ms"], row["rtt_loaded_p99_ms"] = load
            if (many := self._multi.get(key)) is not None:
                row["bw_fwd_multi_mbps"], row["bw_multi_streams"] = many
            row["sender_cc"], row["receiver_cc"] = self._cc.get(key, (None, None))
        for (src, dst, network), why in from_reverse.items():
            if (back := rows.get((dst, src, network))) is not None:
                _copy_reverse(rows[src, dst, network], back, why)
        for (src, dst, network), row in rows.items():
            if (back := rows.get((dst, src, network))) is not None:
                row["bw_rev_mbps"] = back["bw_fwd_mbps"]
            _flag_short_test(row, self._bw_seconds.get((src, dst, network)))
        frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
        return frame.astype(
            {
                "from_reverse": "bool",
                "bw_fwd_cpu_bound": "boolean",
                "sent": "Int64",
                "received": "Int64",
                "bw_fwd_retransmits": "Int64",
                "bw_multi_streams": "Int64",
                "p99_few_samples": "boolean",
                "bw_short_for_rtt": "boolean",
            }
        )


def bandwidth_cells(run: RunDoc) -> frozenset[tuple[str, str]]:
    """The (src, dst) cells ``probe run`` planned bandwidth tests for: both directions of the
    pairs ``--pairs`` selects among the measured hosts, in run.json's order, that some end of
    can serve (``probe.reach``)."""
    pairs = _bandwidth_roles(run).pairs
    return frozenset([*pairs, *((b, a) for a, b in pairs)])


def bandwidth_not_measurable(run: RunDoc) -> dict[tuple[str, str], str]:
    """Both cells of each selected pair neither end of which can be an iperf3 server, and why."""
    refused = _bandwidth_roles(run).not_measurable
    return {cell: why for (a, b), why in refused.items() for cell in ((a, b), (b, a))}


def _bandwidth_roles(run: RunDoc) -> BandwidthRoles:
    if not run.options.bandwidth:
        return BandwidthRoles((), frozenset(), {})
    try:
        mode = parse_pair_mode(run.options.pairs)
    except InputError as exc:
        raise StoreError(f"run.json: 'options.pairs': {exc}") from None
    pairs = select_pairs(run.measured_hosts, mode)
    hosts = {h.name: h for h in run.measured_hosts}
    return bandwidth_roles(pairs, hosts, PortRange.parse(run.options.iperf3_ports))


def _unplanned(run: RunDoc) -> tuple[frozenset[tuple[str, str]], str] | None:
    """The pairs the run's ping plan holds and why the others have no measurement; None for
    the full mesh."""
    try:
        mode = parse_ping_pairs(run.options.ping_pairs)
    except InputError as exc:
        raise StoreError(f"run.json: 'options.ping_pairs': {exc}") from None
    if mode.kind == "all":
        return None
    plan = select_ping_pairs(run.measured_hosts, mode)
    return frozenset(plan.pairs), plan.reason


def _router(run: RunDoc) -> Callable[[str, str], tuple[Route, ...] | NoRoute]:
    """What the run measured from one host to another (``probe.networks``), drawn again from
    run.json: its hosts' addresses, its network order and its ``--network(s)`` options."""
    hosts = {h.name: h for h in run.measured_hosts}
    choice = NetworkChoice(run.options.network, run.options.networks == ALL_NETWORKS)
    if choice.only is None and not any(h.addresses for h in hosts.values()):
        # every host on the one network `default`: the rule has nothing to choose (fast path)
        return lambda src, dst: (Route(DEFAULT_NETWORK, hosts[dst].address),)
    cache: dict[tuple[str, str], tuple[Route, ...] | NoRoute] = {}

    def route(src: str, dst: str) -> tuple[Route, ...] | NoRoute:
        if (src, dst) not in cache:
            cache[src, dst] = routes(hosts[src], hosts[dst], run.networks, choice)
        return cache[src, dst]

    return route


def preferred(frame: pd.DataFrame) -> pd.DataFrame:
    """Each pair's first row: its preferred network's (what single-figure views read)."""
    duplicated = frame.duplicated(KEY)
    return frame[~duplicated] if duplicated.any() else frame


def networks_of(frame: pd.DataFrame) -> list[str]:
    """The networks a matrix has rows for, in first-seen order."""
    return [n for n in dict.fromkeys(frame["network"]) if isinstance(n, str)]


def _unmeasurable_row(a: RunHost, b: RunHost, reason: str) -> dict[str, Any]:
    row = _empty_row(a, b, None)
    status = str(CellStatus.NOT_MEASURABLE)
    row.update(status=status, reason=reason, bw_status=status, bw_reason=reason)
    return row


def _empty_row(a: RunHost, b: RunHost, route: Route | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        src=a.name,
        dst=b.name,
        network=None if route is None else route.network,
        address=None if route is None else route.address,
        src_region=a.region,
        dst_region=b.region,
        src_zone=a.zone,
        dst_zone=b.zone,
        status=str(CellStatus.SKIPPED),
        reason=NOT_MEASURED,
        bw_status=str(CellStatus.SKIPPED),
        bw_reason=NOT_MEASURED,
        from_reverse=False,
    )
    for col in [
        *PING_COLUMNS[2:],
        "bw_fwd_mbps",
        "bw_rev_mbps",
        "bw_fwd_tcp_rtt_ms",
        *LOAD_COLUMNS,
        "bw_fwd_multi_mbps",
        *RTT_CONFIDENCE_COLUMNS[:-1],  # p99_few_samples stays None: NA, not NaN
        "bw_duration_s",
    ]:
        row[col] = math.nan
    return row


def _copy_reverse(row: dict[str, Any], reverse: dict[str, Any], why: str) -> None:
    """The RTT cell toward a host that refuses ICMP: the reverse direction's, said so (a cell
    the reverse has no record for yet stays "not measured": ``--resume`` measures it)."""
    row["from_reverse"] = True
    row["status"] = reverse["status"]
    if reverse["reason"] == NOT_MEASURED:
        row["reason"] = NOT_MEASURED
    else:
        row["reason"] = why if reverse["reason"] is None else f"{why}; {reverse['reason']}"
    for col in [*PING_COLUMNS, *RTT_CONFIDENCE_COLUMNS]:
        row[col] = reverse[col]


def _flag_short_test(row: dict[str, Any], seconds: float | None) -> None:
    """``bw_duration_s`` and ``bw_short_for_rtt`` of a measured goodput, judged against the
    path's ping RTT p50 (iperf3's own TCP RTT when ping has none: it includes queueing)."""
    if seconds is None or math.isnan(row["bw_fwd_mbps"]):
        return
    row["bw_duration_s"] = seconds
    rtt = row["rtt_p50_ms"]
    rtt = row["bw_fwd_tcp_rtt_ms"] if rtt is None or math.isnan(rtt) else rtt
    if rtt is not None and not math.isnan(rtt):
        row["bw_short_for_rtt"] = short_for_rtt(seconds, rtt)


def _host_reason(
    src: str, dst: str, host_fail: Mapping[str, tuple[str, str]]
) -> tuple[str, str] | None:
    for host, role in ((src, "source"), (dst, "destination")):
        if host in host_fail:
            status, reason = host_fail[host]
            return status, f"{role} {host}: {reason}"
    return None


def _fill_ping(
    row: dict[str, Any], cell: _Ping | None, host_fail: Mapping[str, tuple[str, str]]
) -> None:
    if cell is None:
        failed = _host_reason(row["src"], row["dst"], host_fail)
        if failed:
            row["status"], row["reason"] = failed
        return
    row["status"], row["reason"], stats = cell
    if stats is None:
        return
    for col in PING_COLUMNS:
        value = getattr(stats, col)
        row[col] = math.nan if value is None else value


def _fill_bw(
    row: dict[str, Any], cell: _Bw | None, host_fail: Mapping[str, tuple[str, str]]
) -> None:
    if cell is None:
        failed = _host_reason(row["src"], row["dst"], host_fail)
        if failed:
            row["bw_status"], row["bw_reason"] = failed
        return
    status, reason, mbps, retransmits, tcp_rtt, cpu_bound = cell
    row["bw_status"], row["bw_reason"] = status, reason
    if not math.isnan(mbps):  # a goodput (an imported one knows no CPU or retransmits)
        row["bw_fwd_mbps"], row["bw_fwd_retransmits"] = mbps, retransmits
        row["bw_fwd_tcp_rtt_ms"], row["bw_fwd_cpu_bound"] = tcp_rtt, cpu_bound


def load_matrix(
    run_dir: Path,
    *,
    warn: Callable[[str], None] | None = None,
    run: RunDoc | None = None,
    torn: list[int] | None = None,
) -> pd.DataFrame:
    """The long-form matrix of a run, rebuilt from its samples (the source of truth).

    ``warn`` hears about torn lines of samples.jsonl, which are skipped (see store.py), and
    ``torn`` gets their numbers; ``run`` is its run.json when the caller has read it already."""
    run = run if run is not None else read_run(run_dir)
    torn = [] if torn is None else torn
    builder = MatrixBuilder(run)
    builder.add_all(scan_samples(run_dir, torn))
    message = torn_warning(run_dir, torn)
    if message is not None and warn is not None:
        warn(message)
    return builder.frame()


def write_matrix(
    run_dir: Path, frame: pd.DataFrame, metadata: Mapping[str, str] | None = None
) -> None:
    """matrix.csv and matrix.parquet, each replaced whole (a full disk leaves the old file or
    none, never a truncated or empty one; the error names the file); ``metadata`` goes into the
    Parquet file's key-value metadata (``matrix.stored``'s stamp)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **(metadata or {})})
    parquet = pa.BufferOutputStream()
    pq.write_table(table, parquet)
    save(run_dir / "matrix.csv", frame.to_csv(index=False))
    save(run_dir / "matrix.parquet", parquet.getvalue().to_pybytes())


# --- views ---------------------------------------------------------------------------------


def _metric(frame: pd.DataFrame, metric: str) -> pd.Series:
    if metric == "bw_mbps":
        return frame["bw_fwd_mbps"]
    if metric not in frame.columns or metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return frame[metric]


def wide(frame: pd.DataFrame, metric: str, order: Sequence[str] | None = None) -> pd.DataFrame:
    """src × dst grid of one metric over each pair's preferred network (NaN where the cell has
    no measurement)."""
    frame = preferred(frame)
    values = frame.assign(_v=_metric(frame, metric).astype("float64"))
    grid = values.pivot(index="src", columns="dst", values="_v")
    names = list(order) if order else sorted(set(frame["src"]) | set(frame["dst"]))
    return grid.reindex(index=names, columns=names)


def status_grid(
    frame: pd.DataFrame, order: Sequence[str] | None = None, *, bandwidth: bool = False
) -> pd.DataFrame:
    return _grid(frame, "bw_status" if bandwidth else "status", order)


def confidence_grids(
    frame: pd.DataFrame, metric: str, order: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """``metric``'s confidence columns the matrix has (``METRIC_CONFIDENCE``; none in a matrix
    written before them), each as a src × dst grid of its values as stored."""
    cols = [c for c in METRIC_CONFIDENCE.get(metric, ()) if c in frame.columns]
    return {c: _grid(frame, c, order) for c in cols}


def _grid(frame: pd.DataFrame, col: str, order: Sequence[str] | None) -> pd.DataFrame:
    frame = preferred(frame)
    grid = frame.pivot(index="src", columns="dst", values=col)
    names = list(order) if order else sorted(set(frame["src"]) | set(frame["dst"]))
    return grid.reindex(index=names, columns=names)


def by_region(frame: pd.DataFrame, metric: str) -> tuple[RegionFigure, ...]:
    """Region × region: one figure of the region roll-up (``matrix.regions`` defines it)."""
    return figures(roll_up(pair_anchors(frame)), metric)


def unplanned_by_region(frame: pd.DataFrame, metric: str) -> dict[tuple[str, str], int]:
    """Per region pair, the pairs a sampled ping plan left out of a ping figure (none for a
    goodput figure: the bandwidth plan is another)."""
    if metric.startswith("bw"):
        return {}
    left_out = frame[frame["status"] == CellStatus.NOT_PLANNED.value]
    pairs = zip(left_out["src_region"], left_out["dst_region"], strict=True)
    return dict(Counter((str(s), str(d)) for s, d in pairs))


def host_order(run: RunDoc) -> list[str]:
    """Hosts grouped by region (regions in first-seen order), as inventories are usually written."""
    hosts = run.measured_hosts
    regions = dict.fromkeys(h.region for h in hosts)
    return [h.name for r in regions for h in hosts if h.region == r]


# --- anchors -------------------------------------------------------------------------------


def _num(value: object) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return float(value)  # type: ignore[arg-type]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The rows as dicts with the values ``to_dict("records")`` gives (NA → None), read a column
    at a time: ``to_dict`` boxes cell by cell and took 60 % of ``to_anchors`` at 300 hosts."""
    columns = []
    for name in frame.columns:
        series = frame[name]
        if series.dtype.name in ("Int64", "boolean"):  # masked: tolist() would give pd.NA
            series = series.astype(object).where(series.notna(), None)
        columns.append(series.tolist())
    names = list(frame.columns)
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def to_anchors(
    run: RunDoc, frame: pd.DataFrame, samples: Mapping[tuple[str, str], Probes] | None = None
) -> A.Anchors:
    """The anchors the calculator consumes; ``samples`` (raw RTTs per pair probed) feed its
    Monte-Carlo."""
    hosts = tuple(A.HostInfo(h.name, h.region, h.zone, h.provider, h.measure) for h in run.hosts)
    pairs = pair_anchors(frame)
    return A.Anchors(
        run_id=run.run_id,
        created_utc=run.ended_utc or run.started_utc,
        probe_version=run.probe_version,
        hosts=hosts,
        pairs=pairs,
        regions=roll_up(pairs),
        samples=samples or {},
    )


def pair_anchors(frame: pd.DataFrame) -> tuple[A.PairAnchor, ...]:
    """The rows of ``frame`` as typed pairs (what the region roll-up and anchors.json read): each
    pair's preferred network's row."""
    pairs = []
    for rec in _records(preferred(frame)):
        ok = rec["status"] == CellStatus.OK
        rtt = (
            A.RttAnchor(
                min_ms=rec["rtt_min_ms"],
                mean_ms=rec["rtt_mean_ms"],
                p50_ms=rec["rtt_p50_ms"],
                p90_ms=rec["rtt_p90_ms"],
                p99_ms=rec["rtt_p99_ms"],
                max_ms=rec["rtt_max_ms"],
            )
            if ok
            else None
        )
        pairs.append(
            A.PairAnchor(
                src=rec["src"],
                dst=rec["dst"],
                src_region=str(rec["src_region"]),
                dst_region=str(rec["dst_region"]),
                status=CellStatus(rec["status"]),
                reason=_text(rec["reason"]),
                rtt=rtt,
                rtt_mdev_ms=_num(rec["rtt_mdev_ms"]),
                ipdv_ms=_num(rec["ipdv_ms"]),
                pdv_p99_ms=_num(rec["pdv_p99_ms"]),
                loss_pct=_num(rec["loss_pct"]),
                sent=int(rec["sent"]) if _num(rec["sent"]) is not None else 0,
                received=int(rec["received"]) if _num(rec["received"]) is not None else 0,
                bw=A.Bandwidth(_num(rec["bw_fwd_mbps"]), _num(rec["bw_rev_mbps"])),
                bw_status=CellStatus(rec["bw_status"]) if rec["bw_status"] else None,
                bw_reason=_text(rec["bw_reason"]),
                network=_text(rec["network"]),
                address=_text(rec["address"]),
                from_reverse=bool(rec["from_reverse"]),
            )
        )
    return tuple(pairs)


def rtt_samples(records: Iterable[SampleRecord]) -> dict[tuple[str, str], Probes]:
    """Received probes per ordered pair (latest ping record per pair)."""
    out: dict[tuple[str, str], Probes] = {}
    for rec in records:
        if isinstance(rec, PingRecord) and rec.status is CellStatus.OK and rec.train is not None:
            out[rec.src, rec.dst] = _probes(*_received(rec.train))
    return out


def _received(train: PingTrain) -> tuple[array[int], array[float]]:
    """The sequence numbers and RTTs of the probes answered, in arrival order."""
    got = [(seq, rtt) for seq, rtt in train.probes if rtt is not None]
    return array("i", (s for s, _ in got)), array("d", (r for _, r in got))


def _probes(seq: array[int], rtt: array[float]) -> Probes:
    """Probes viewing the arrays (no copy: 20 million RTTs at 1,000 hosts)."""
    return Probes(np.frombuffer(rtt, np.float64), np.frombuffer(seq, np.int32))


def stats_dict(stats: RttStats) -> dict[str, Any]:
    return asdict(stats)
