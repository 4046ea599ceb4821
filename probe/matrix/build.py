"""Samples → the latency/bandwidth matrix (pandas): long form, wide grids, region roll-ups, anchors.

Long form is the one source every view derives from: one row per ordered pair of measured hosts
and network it was measured over (``network``, and ``address``: the destination's on it), with
``status`` and ``reason`` saying why a row has no numbers. Nothing here is 0 for "unknown": an
empty cell is NaN plus a status. Every pair with a measurement or a reason of its own has its
rows; a pair a sampled ping plan left out that has no bandwidth cell either is *implied*
``not-planned`` and has none (``probe.matrix.implied``): ``with_implied`` puts its rows back.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from probe.errors import InputError, StoreError
from probe.matrix import anchors as A
from probe.matrix.csvtext import csv_blocks
from probe.matrix.engine import STATS_SCHEMA, PingCells, ProbeReader, ping_cells
from probe.matrix.engine import train_stats as train_stats  # re-exported: callers import it here
from probe.matrix.implied import STATUS as IMPLIED_STATUS
from probe.matrix.implied import (
    Implied,
    bw_unplanned_reason,
    implied_of,
    ping_mode,
    region_sizes,
)
from probe.matrix.pairs import PairTable
from probe.matrix.regions import RegionFigure, figures, roll_up
from probe.matrix.samples import ProbeColumns, Probes
from probe.model import CellStatus, PortRange
from probe.networks import ALL_NETWORKS, DEFAULT_NETWORK, NetworkChoice, NoRoute, Route, routes
from probe.plan import parse_pair_mode, select_pairs, select_ping_pairs
from probe.reach import BandwidthRoles, PingWay, bandwidth_roles, ping_reach
from probe.stats import RttStats, short_for_rtt
from probe.store.bandwidth import bandwidth_rows
from probe.store.probes import PartProbes, PingRows, StoredRun, ping_rows, read_store
from probe.store.records import (
    HostRecord,
    ImportedRecord,
    IperfTestRecord,
    PingFanoutRecord,
    PingRecord,
    PingTrain,
    SampleRecord,
)
from probe.store.rundir import read_run, torn_warning
from probe.store.rundoc import RunDoc, RunHost
from probe.textio import save

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
#: The columns of a row that are figures: empty in a row that reads as an implied one.
_FIGURES = [
    c for c in COLUMNS
    if c not in (*CELL_KEY, "address", *LABELS, "status", "reason", "bw_status", "bw_reason",
                 "from_reverse")
]  # fmt: skip
METRICS = [
    *PING_COLUMNS,
    "bw_fwd_mbps",
    "bw_rev_mbps",
    "bw_mbps",
    *LOAD_COLUMNS,
    "bw_fwd_multi_mbps",
]


def build_matrix(run: RunDoc, records: Iterable[SampleRecord]) -> pd.DataFrame:
    """The long-form matrix from run.json and the sample records (the latest record per cell wins,
    so a ``--resume`` that re-measures a cell replaces the failed attempt)."""
    builder = MatrixBuilder(run)
    builder.add_all(records)
    return builder.frame()


#: A row's key: source, destination, network.
_Cell = tuple[str, str, str]

#: Ping records converted to rows at a time while records stream by (``add``).
_BATCH = 20_000


class MatrixBuilder:
    """Reduces sample records to each cell's figures; ``frame`` assembles the long form.

    Ping records become probe-store rows (``probe.store.probes``) and are reduced at the end by
    the vectorised engine (``probe.matrix.engine``): ``add_store`` takes a run's stored rows as
    they are, ``add`` converts records in batches (a rebuild holds rows, not records). The first
    ``frame`` or ``samples`` reduces them once and lets the rows go (~0.3 GiB at 1,000 hosts):
    every ping record is added before (a later one raises ``ValueError``). The other
    records are few and reduced as they stream by. Host failures apply at the end: a host record
    may follow its cells in the file. A pair the run's ping plan left out (run.json
    ``options.ping_pairs``; the plan is drawn again, seeded, from run.json's hosts) and that has
    no ping record is ``not-planned``; so is a bandwidth cell outside ``--pairs`` (or every one
    under ``--no-bandwidth``); a pair both are true of is implied and gets no row (only the
    pairs some plan or record speaks of are assembled: no work per pair left out). A planned
    cell the run could not aim at (``probe.reach``, from run.json's ``inbound``) is
    ``not-measurable`` or, toward a host refusing ICMP, a copy of the reverse direction marked
    ``from_reverse``.
    """

    def __init__(self, run: RunDoc) -> None:
        self.hosts = run.measured_hosts
        self._run = run
        self._names = {h.name for h in self.hosts}
        self._route = _router(run)
        self._unplanned = _unplanned(run)
        self._implied = implied_of(run)
        roles = _bandwidth_roles(run)  # drawn once: ~0.5 s at 1,000 hosts
        self._bw_planned = bandwidth_cells(run, roles)
        self._bw_refused = bandwidth_not_measurable(run, roles)
        self._imported = run.imported
        self._bw_unplanned_reason = bw_unplanned_reason(run)
        self._host_fail: dict[str, tuple[str, str]] = {}
        self._tables: list[PingRows] = []
        self._summarized: list[pa.Table] = []  # records reduced already (statistics parts)
        self._readers: list[PartProbes] = []  # their probes
        self._batch: list[tuple[int, PingRecord]] = []
        self._seen = 0  # records added: the order of ``add``'s records
        self._imported_cells: dict[_Cell, tuple[int, str, str, RttStats]] = {}
        self._imported_bw: dict[_Cell, tuple[int, float, str]] = {}  # when, Mbit/s, reason
        self._tests: list[pa.Table] = []  # iperf3 records as rows (``probe.store.bandwidth``)
        self._test_batch: list[tuple[int, IperfTestRecord]] = []
        self._loaded: dict[_Cell, tuple[float | None, float | None] | None] = {}
        self._cells: PingCells | None = None

    def add_all(self, records: Iterable[SampleRecord]) -> None:
        for rec in records:
            self.add(rec)

    def add_store(self, stored: StoredRun) -> None:
        """A run's records as the probe store gives them (its pings and tests are rows already;
        the other records are ordered by their lines' offsets, as the rows are)."""
        self._unreduced()
        self._tables.append(stored.pings)
        if stored.summarized is not None and stored.summarized.num_rows:
            self._summarized.append(stored.summarized)
        if stored.summarized_probes is not None:
            self._readers.append(stored.summarized_probes)
        self._tests.append(stored.tests)
        for offset, rec in zip(stored.others_at, stored.others, strict=True):
            self._add(offset, rec)

    def add(self, rec: SampleRecord) -> None:
        self._seen += 1
        self._add(self._seen, rec)

    def _add(self, seen: int, rec: SampleRecord) -> None:
        """One record; ``seen`` orders it among the others (a later one replaces a cell's)."""
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
            self._add_imported(seen, cell, rec)
        elif isinstance(rec, PingRecord):
            self._unreduced()
            self._batch.append((seen, rec))
            if len(self._batch) >= _BATCH:
                self._tables.append(PingRows.of(ping_rows(self._batch)))
                self._batch = []
        elif isinstance(rec, IperfTestRecord):
            self._test_batch.append((seen, rec))
            if len(self._test_batch) >= _BATCH:
                self._tests.append(bandwidth_rows(self._test_batch))
                self._test_batch = []
        else:
            stats = train_stats(rec.train) if ok and rec.train is not None else None
            self._loaded[cell] = None if stats is None else (stats.rtt_p50_ms, stats.rtt_p99_ms)

    def _add_imported(self, seen: int, cell: _Cell, rec: ImportedRecord) -> None:
        """One figure per metric: every RTT statistic is that figure, resting on no probe
        (``sent`` 0: nothing counts it as a sample, a loss figure stays the source's). It
        replaces a ping record of the cell added before it (rows of a store: any)."""
        reason = f"imported from {rec.source}:{rec.line}"
        rtt = rec.rtt_ms
        loss = rec.loss_pct if rec.loss_pct is not None else math.nan
        stats = RttStats(0, 0, loss, rtt, rtt, rtt, rtt, rtt, rtt, None, None, None)
        self._imported_cells[cell] = (seen, str(rec.status), reason, stats)
        if rec.bw_mbps is not None:
            self._imported_bw[cell] = (seen, rec.bw_mbps, reason)

    def _unreduced(self) -> None:
        if self._cells is not None:
            raise ValueError("a ping record added after the matrix was reduced")

    def _ping_cells(self) -> PingCells:
        if self._cells is None:
            if self._batch:
                self._tables.append(PingRows.of(ping_rows(self._batch)))
                self._batch = []
            rows, self._tables = PingRows.concat(self._tables), []
            summarized = pa.concat_tables(self._summarized) if self._summarized else None
            self._summarized = []  # the cells hold what they need of them
            self._cells = ping_cells(rows, summarized, _read_all(self._readers))
        return self._cells

    def _all_tests(self) -> pa.Table:
        if self._test_batch:
            self._tests.append(bandwidth_rows(self._test_batch))
            self._test_batch = []
        return pa.concat_tables([bandwidth_rows([]), *self._tests])

    def spoken_of(self) -> list[tuple[Iterable[object], Iterable[object]]]:
        """(sources, destinations) of every cell a plan or record speaks of: the ping plan's
        pairs, the bandwidth plan's and its unmeasurable ones, every record's cell."""
        cells = self._ping_cells().columns
        tests = self._all_tests()
        plan = self._unplanned[0] if self._unplanned is not None else frozenset()
        named = [plan, self._bw_planned, self._bw_refused, self._imported_cells,
                 self._imported_bw, self._loaded]  # fmt: skip
        out: list[tuple[Iterable[object], Iterable[object]]] = [
            (cells["src"], cells["dst"]),
            (tests["src"].to_pylist(), tests["dst"].to_pylist()),
        ]
        for keys in named:
            out.append(([k[0] for k in keys], [k[1] for k in keys]))
        return out

    def latest_tests(self, kind: str) -> dict[str, NDArray[Any]]:
        """Each cell's latest record of ``kind`` (``iperf3``, ``iperf3_multi``: the greatest
        offset), ``probe.store.bandwidth.SCHEMA``'s columns as numpy (strings and a null
        ``cpu_bound`` as objects, None for null; the other nulls NaN)."""
        tests = self._all_tests()
        tests = tests.filter(pc.equal(tests["kind"].cast(pa.string()), kind))
        key = pd.DataFrame({"offset": tests["offset"].to_numpy()})
        for name in CELL_KEY:
            key[name] = tests[name].cast(pa.string()).to_numpy()
        latest = key.sort_values("offset", kind="stable").drop_duplicates(CELL_KEY, keep="last")
        tests = tests.take(pa.array(latest.index.to_numpy(np.int64)))
        out: dict[str, NDArray[Any]] = {}
        for name in tests.column_names:
            column = tests[name]
            if pa.types.is_dictionary(column.type):
                column = column.cast(pa.string())
            if column.type in (pa.string(), pa.bool_()):
                out[name] = column.to_numpy().astype(object)  # a null: None
            else:
                out[name] = column.to_numpy()  # a null: NaN (integers become floats)
        return out

    def samples(self) -> ProbeColumns:
        """Received probes per ordered pair whose latest ping record over its preferred network
        is OK (anchors' Monte-Carlo), straight from the engine's arrays (no record decoded)."""
        cells = self._ping_cells()
        frame = cells.columns
        names = [h.name for h in self.hosts]
        where = pd.Index(names, dtype=object)
        src = _coded(where, *cells.codes["src"])
        dst = _coded(where, *cells.codes["dst"])
        chosen = (cells.count > 0) & (src >= 0) & (dst >= 0) & (src != dst)
        if self._imported_cells or not _one_network(self._run):  # else every cell qualifies
            networks, offsets = list(frame["network"]), frame["offset"].tolist()
            for i in np.flatnonzero(chosen).tolist():
                a, b, network = names[src[i]], names[dst[i]], networks[i]
                replaced = self._imported_cells.get((a, b, network))
                found = self._route(a, b)
                chosen[i] = (replaced is None or replaced[0] <= offsets[i]) and (
                    not isinstance(found, NoRoute) and found[0].network == network
                )  # an imported figure after it: no samples; another network: not preferred
        rows = np.flatnonzero(chosen)
        return ProbeColumns(
            names, src[rows].astype(np.int32), dst[rows].astype(np.int32),
            cells.start[rows], cells.count[rows], cells.rtt_ms, cells.seq,
        )  # fmt: skip

    def frame(self) -> pd.DataFrame:
        return _LongForm(self, self._ping_cells()).frame()


class _LongForm:
    """The long form assembled a column at a time over every row (numpy): no per-pair Python
    for a run over one network without inbound restrictions."""

    def __init__(self, builder: MatrixBuilder, cells: PingCells) -> None:
        self.b = builder
        hosts = builder.hosts
        self.n = len(hosts)
        self.index = {h.name: i for i, h in enumerate(hosts)}
        self.host_index = pd.Index([h.name for h in hosts], dtype=object)
        keep = None if builder._implied is None else self._spoken_of()
        self.src, self.dst, network, self.address, self.no_route = _skeleton(builder, keep)
        codes, names = pd.factorize(network)  # first-seen order; None: -1
        self.networks: list[str] = [str(n) for n in names]
        self.net = np.where(codes < 0, len(self.networks), codes).astype(np.int64)
        self.network = network
        self.rows = pd.Index(self._key(self.src, self.dst, self.net))
        self.net_index = pd.Index(self.networks, dtype=object)
        self.cells = cells
        self.size = len(self.src)

    def _spoken_of(self) -> NDArray[np.int64]:
        """The pairs (src × n + dst, sorted: host order) some plan or record speaks of, and
        their reverses (a row reads its reverse's goodput, and RTT when ``from_reverse``)."""
        n, found = self.n, []
        for src, dst in self.b.spoken_of():
            a = self.host_index.get_indexer(pd.Index(list(src), dtype=object))
            b = self.host_index.get_indexer(pd.Index(list(dst), dtype=object))
            known = (a >= 0) & (b >= 0) & (a != b)
            found += [a[known] * n + b[known], b[known] * n + a[known]]
        codes: NDArray[np.int64] = np.unique(np.concatenate([np.zeros(0, np.int64), *found]))
        return codes

    def _key(
        self, src: NDArray[np.int64], dst: NDArray[np.int64], net: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        key: NDArray[np.int64] = (src * self.n + dst) * (len(self.networks) + 1) + net
        return key

    def locate(self, cells: Iterable[_Cell]) -> tuple[NDArray[np.int64], list[int]]:
        """Rows of the cells (keyed by name), and which of the cells have one."""
        columns = list(zip(*cells, strict=True)) or [(), (), ()]
        at, which = self.locate_columns(*columns)
        return at, which.tolist()

    def locate_columns(
        self, src: Iterable[object], dst: Iterable[object], network: Iterable[object]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``locate`` over cells given as columns (a hash lookup each, no Python per cell)."""
        a = self.host_index.get_indexer(pd.Index(src, dtype=object))
        b = self.host_index.get_indexer(pd.Index(dst, dtype=object))
        net = self.net_index.get_indexer(pd.Index(network, dtype=object))
        known = np.flatnonzero((a >= 0) & (b >= 0) & (net >= 0))
        keys = self._key(a[known], b[known], net[known])
        at = self.rows.get_indexer(pd.Index(keys))
        return at[at >= 0].astype(np.int64), known[at >= 0].astype(np.int64)

    def _locate_coded(
        self, codes: Mapping[str, tuple[NDArray[np.int64], list[str]]]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``locate_columns`` over cells given as codes into their distinct values (a hash
        lookup per distinct value)."""
        a = _coded(self.host_index, *codes["src"])
        b = _coded(self.host_index, *codes["dst"])
        net = _coded(self.net_index, *codes["network"])
        known = np.flatnonzero((a >= 0) & (b >= 0) & (net >= 0))
        keys = self._key(a[known], b[known], net[known])
        at = self.rows.get_indexer(pd.Index(keys))
        return at[at >= 0].astype(np.int64), known[at >= 0].astype(np.int64)

    def pairs(self, pairs: Iterable[tuple[str, str]]) -> NDArray[np.bool_]:
        """Which rows are of one of ``pairs`` (any network)."""
        codes = [
            self.index[a] * self.n + self.index[b]
            for a, b in pairs
            if a in self.index and b in self.index
        ]
        return np.isin(self.src * self.n + self.dst, np.array(codes, np.int64))

    def frame(self) -> pd.DataFrame:
        b, size = self.b, self.size
        hosts = b.hosts
        col: dict[str, Any] = {}
        col["src"] = _labels([h.name for h in hosts], self.src)
        col["dst"] = _labels([h.name for h in hosts], self.dst)
        col["network"] = _labels([*self.networks, None], self.net)
        one = _one_network(b._run)  # then the address is the destination's
        col["address"] = _labels([h.address for h in hosts], self.dst) if one else self.address
        for side, idx in (("src", self.src), ("dst", self.dst)):
            col[f"{side}_region"] = _labels([h.region for h in hosts], idx)
            col[f"{side}_zone"] = _labels([h.zone for h in hosts], idx)
        status = np.full(size, str(CellStatus.SKIPPED), dtype=object)
        reason = np.full(size, NOT_MEASURED, dtype=object)
        figures = {c: np.full(size, math.nan) for c in [*PING_COLUMNS, *RTT_CONFIDENCE_COLUMNS]}
        stats_at = np.zeros(size, np.bool_)  # rows whose sent/received/few hold a value
        few = np.full(size, -1, np.int8)
        measurable = self.no_route == None  # noqa: E711 (elementwise)
        unreachable = str(CellStatus.NOT_MEASURABLE)
        status[~measurable], reason[~measurable] = unreachable, self.no_route[~measurable]

        # the latest ping record of each cell (the engine), or an imported figure after it
        c = self.cells.columns
        has_ping = np.zeros(size, np.bool_)
        at, w = self._locate_coded(self.cells.codes)
        has_ping[at] = True
        status[at] = c["status"][w]
        reason[at] = c["reason"][w]
        trained = c["trained"][w]
        figured = at[trained]
        stats_at[figured] = True
        for name in [*PING_COLUMNS, *RTT_CONFIDENCE_COLUMNS]:
            figures[name][figured] = c[name][w[trained]].astype(np.float64)
        few[figured] = c["p99_few_samples"][w[trained]]
        offsets = np.full(size, -1, np.int64)
        offsets[at] = c["offset"][w]
        imported = list(b._imported_cells.items())
        at, which = self.locate(cell for cell, _ in imported)
        for row, i in zip(at.tolist(), which, strict=True):
            seen, state, why, stats = imported[i][1]
            if seen < offsets[row]:
                continue
            has_ping[row] = stats_at[row] = True
            status[row], reason[row] = state, why
            for name in PING_COLUMNS:
                value = getattr(stats, name)
                figures[name][row] = math.nan if value is None else value
        # the cells without one
        none = measurable & ~has_ping
        if b._imported is not None:
            status[none] = str(CellStatus.NOT_PLANNED)
            reason[none] = f"no figure for this pair in the imported {b._imported.source}"
            none[:] = False
        unplanned = b._unplanned
        if unplanned is not None:
            left_out = none & ~self.pairs(unplanned[0])
            status[left_out], reason[left_out] = str(CellStatus.NOT_PLANNED), unplanned[1]
            none &= ~left_out
        icmp = np.array([h.inbound.icmp for h in hosts], np.bool_)
        from_reverse = np.zeros(size, np.bool_)
        why_reverse: dict[int, str] = {}
        for row in np.flatnonzero(none & ~icmp[self.dst]).tolist():
            reach = ping_reach(hosts[self.src[row]], hosts[self.dst[row]])
            if reach.way is PingWay.NOT_MEASURABLE:
                status[row], reason[row] = unreachable, reach.reason
            else:
                from_reverse[row], why_reverse[row] = True, reach.reason or ""
            none[row] = False
        _host_failures(status, reason, none, self.src, self.dst, hosts, b._host_fail)

        # bandwidth
        bw = self._bandwidth(col, measurable, has_ping)
        # RTT toward a host refusing ICMP: the reverse direction's
        reverse = self.rows.get_indexer(pd.Index(self._key(self.dst, self.src, self.net)))
        for row in np.flatnonzero(from_reverse).tolist():
            back = int(reverse[row])
            if back < 0:
                continue
            why = why_reverse[row]
            status[row] = status[back]
            reason[row] = (
                NOT_MEASURED if reason[back] == NOT_MEASURED
                else why if reason[back] is None else f"{why}; {reason[back]}"
            )  # fmt: skip
            for name in figures:
                figures[name][row] = figures[name][back]
            stats_at[row], few[row] = stats_at[back], few[back]
        col["status"], col["reason"] = status, reason
        col.update(figures)
        col["from_reverse"] = from_reverse
        for name in ("sent", "received"):
            values = np.nan_to_num(figures[name]).astype(np.int64)
            col[name] = pd.arrays.IntegerArray(values, ~stats_at)
        col["p99_few_samples"] = pd.arrays.BooleanArray(few == 1, few < 0)
        has_rev = reverse >= 0
        col["bw_rev_mbps"] = np.where(has_rev, bw[reverse], math.nan)
        self._short_tests(col)
        frame = pd.DataFrame(col, columns=COLUMNS, copy=False)  # one block per column: no copy
        return frame if b._implied is None else self._without_implied(frame, b._implied)

    def _without_implied(self, frame: pd.DataFrame, implied: Implied) -> pd.DataFrame:
        """``frame`` without the pairs every row of which reads as an implied one (a record
        with nothing in it, the reverse of a pair spoken of): the long form is the same
        whatever was assembled."""
        pure = (
            (frame["status"].to_numpy(object) == str(IMPLIED_STATUS))
            & (frame["reason"].to_numpy(object) == implied.reason)
            & (frame["bw_status"].to_numpy(object) == str(IMPLIED_STATUS))
            & (frame["bw_reason"].to_numpy(object) == implied.bw_reason)
            & ~frame["from_reverse"].to_numpy(np.bool_)
        )
        rows = np.flatnonzero(pure)
        if not len(rows):
            return frame
        part = frame.iloc[rows]
        empty = np.ones(len(rows), np.bool_)
        for name in _FIGURES:
            empty &= part[name].isna().to_numpy()
        pure[rows] = empty
        pair = self.src * self.n + self.dst
        drop = pure & ~np.isin(pair, pair[~pure])
        return frame[~drop].reset_index(drop=True) if drop.any() else frame

    def _bandwidth(
        self, col: dict[str, Any], measurable: NDArray[np.bool_], has_ping: NDArray[np.bool_]
    ) -> NDArray[np.float64]:
        b, size = self.b, self.size
        bw_status = np.full(size, str(CellStatus.SKIPPED), dtype=object)
        bw_reason = np.full(size, NOT_MEASURED, dtype=object)
        bw_status[~measurable] = str(CellStatus.NOT_MEASURABLE)
        bw_reason[~measurable] = self.no_route[~measurable]
        mbps = np.full(size, math.nan)
        tcp_rtt = np.full(size, math.nan)
        retransmits = np.full(size, math.nan)
        cpu = np.full(size, None, dtype=object)
        sender = np.full(size, None, dtype=object)
        receiver = np.full(size, None, dtype=object)
        seconds = np.full(size, math.nan)
        # each cell's latest iperf3 record: its outcome; its figures when ok with a result
        fwd = b.latest_tests("iperf3")
        at, w = self.locate_columns(fwd["src"], fwd["dst"], fwd["network"])
        tested_at = np.full(size, -1, np.int64)
        tested_at[at] = fwd["offset"][w]
        good = (fwd["status"][w] == str(CellStatus.OK)) & ~np.isnan(fwd["receiver_bps"][w])
        seconds[at[good]] = fwd["duration_s"][w[good]]
        kept = measurable[at]
        rows, w, good = at[kept], w[kept], good[kept]
        bw_status[rows], bw_reason[rows] = fwd["status"][w], fwd["reason"][w]
        rows, w = rows[good], w[good]
        mbps[rows] = fwd["receiver_bps"][w] / 1e6
        tcp_rtt[rows] = fwd["mean_rtt_ms"][w]
        retransmits[rows] = fwd["retransmits"][w]
        cpu[rows] = fwd["cpu_bound"][w]
        sender[rows], receiver[rows] = fwd["sender_cc"][w], fwd["receiver_cc"][w]
        has_bw = np.zeros(size, np.bool_)
        has_bw[at[kept]] = True
        # an imported figure after the cell's latest test replaces its outcome
        imported = list(b._imported_bw.values())
        at, which = self.locate(b._imported_bw)
        for row, i in zip(at.tolist(), which, strict=True):
            seen, rate, why = imported[i]
            if measurable[row] and seen > tested_at[row]:
                bw_status[row], bw_reason[row], mbps[row] = str(CellStatus.OK), why, rate
                tcp_rtt[row] = retransmits[row] = math.nan
                cpu[row] = None
                has_bw[row] = True
        none = measurable & ~has_bw
        refused = b._bw_refused
        if refused:
            rows = np.flatnonzero(none & self.pairs(refused))
            bw_status[rows] = str(CellStatus.NOT_MEASURABLE)
            bw_reason[rows] = [
                refused[self.b.hosts[s].name, self.b.hosts[d].name]
                for s, d in zip(self.src[rows].tolist(), self.dst[rows].tolist(), strict=True)
            ]
            none[rows] = False
        left_out = none & ~self.pairs(b._bw_planned)
        bw_status[left_out] = str(CellStatus.NOT_PLANNED)
        bw_reason[left_out] = b._bw_unplanned_reason
        none &= ~left_out
        _host_failures(bw_status, bw_reason, none, self.src, self.dst, b.hosts, b._host_fail)
        col["bw_status"], col["bw_reason"], col["bw_fwd_mbps"] = bw_status, bw_reason, mbps
        counted = ~np.isnan(retransmits)
        col["bw_fwd_retransmits"] = pd.arrays.IntegerArray(
            np.where(counted, retransmits, 0).astype(np.int64), ~counted
        )
        col["bw_fwd_tcp_rtt_ms"] = tcp_rtt
        col["bw_fwd_cpu_bound"] = pd.arrays.BooleanArray(cpu == True, cpu == None)  # noqa: E711, E712
        loaded = np.full((size, 2), math.nan)
        items = [(cell, v) for cell, v in b._loaded.items() if v is not None]
        at, which = self.locate(cell for cell, _ in items)
        for row, i in zip(at.tolist(), which, strict=True):
            if measurable[row]:
                loaded[row] = [_nan(items[i][1][0]), _nan(items[i][1][1])]
        col["rtt_loaded_p50_ms"], col["rtt_loaded_p99_ms"] = loaded[:, 0], loaded[:, 1]
        # each cell's latest -P N record, when ok with a result
        many = b.latest_tests("iperf3_multi")
        at, w = self.locate_columns(many["src"], many["dst"], many["network"])
        good = measurable[at] & (many["status"][w] == str(CellStatus.OK))
        good &= ~np.isnan(many["receiver_bps"][w])
        rows, w = at[good], w[good]
        multi = np.full(size, math.nan)
        streams = np.zeros(size, np.int64)
        has_streams = np.zeros(size, np.bool_)
        multi[rows] = many["receiver_bps"][w] / 1e6
        streams[rows], has_streams[rows] = many["streams"][w], True
        col["bw_fwd_multi_mbps"] = multi
        col["bw_multi_streams"] = pd.arrays.IntegerArray(streams, ~has_streams)
        col["sender_cc"], col["receiver_cc"] = sender, receiver
        self._seconds = np.where(measurable, seconds, math.nan)
        return mbps

    def _short_tests(self, col: dict[str, Any]) -> None:
        """``bw_duration_s`` and ``bw_short_for_rtt`` of each measured goodput, judged against
        the path's ping RTT p50 (iperf3's own TCP RTT when ping has none: it includes
        queueing)."""
        seconds = self._seconds
        timed = np.isfinite(seconds) & ~np.isnan(col["bw_fwd_mbps"])
        col["bw_duration_s"] = np.where(timed, seconds, math.nan)
        rtt = np.where(np.isnan(col["rtt_p50_ms"]), col["bw_fwd_tcp_rtt_ms"], col["rtt_p50_ms"])
        short = np.full(self.size, -1, np.int8)
        for row in np.flatnonzero(timed & ~np.isnan(rtt)).tolist():
            short[row] = int(short_for_rtt(float(seconds[row]), float(rtt[row])))
        col["bw_short_for_rtt"] = pd.arrays.BooleanArray(short == 1, short < 0)


def _skeleton(
    builder: MatrixBuilder, keep: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Every row: source and destination (host indices), network, address and, for a pair with
    no network to measure over, why (None otherwise): pairs in host order, a pair's networks in
    ``probe.networks``' order. ``keep``: only those pairs (src × n + dst, sorted), and the pairs
    with no network (not-measurable: a reason of their own)."""
    hosts, n = builder.hosts, len(builder.hosts)
    if _one_network(builder._run):
        if keep is None:
            src, dst = (a.astype(np.int64) for a in np.nonzero(~np.eye(n, dtype=np.bool_)))
        else:
            src, dst = keep // n, keep % n
        network = np.full(len(src), DEFAULT_NETWORK, dtype=object)
        address = _pick([h.address for h in hosts], dst)
        return src, dst, network, address, np.full(len(src), None, dtype=object)
    rows: list[tuple[int, int, str | None, str | None, str | None]] = []
    wanted = None if keep is None else set(keep.tolist())
    for i, a in enumerate(hosts):
        for j, b in enumerate(hosts):
            if i == j:
                continue
            found = builder._route(a.name, b.name)
            if wanted is not None and i * n + j not in wanted and not isinstance(found, NoRoute):
                continue
            if isinstance(found, NoRoute):
                rows.append((i, j, None, None, found.reason))
            else:
                rows.extend((i, j, r.network, r.address, None) for r in found)
    src_l, dst_l, net_l, addr_l, why_l = zip(*rows, strict=True) if rows else ((),) * 5
    return (
        np.array(src_l, np.int64),
        np.array(dst_l, np.int64),
        np.array(net_l, dtype=object),
        np.array(addr_l, dtype=object),
        np.array(why_l, dtype=object),
    )


def _coded(index: pd.Index, codes: NDArray[np.int64], values: list[str]) -> NDArray[np.int64]:
    """Each coded value's position in ``index`` (-1: not in it)."""
    found = index.get_indexer(pd.Index(values, dtype=object))
    out: NDArray[np.int64] = np.r_[found, -1][codes] if len(codes) else np.zeros(0, np.int64)
    return out


def _objects(values: Sequence[Any]) -> NDArray[Any]:
    """An object array of ``values`` as they are (numpy would make a tuple a dimension)."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _labels(values: Sequence[str | None], index: NDArray[np.int64]) -> Any:
    """``values[index]`` as the column pandas infers from those objects (``str`` when one is
    a string, and every value a string or None), built through Arrow from the codes: pandas
    converts a million objects one by one (~50 ms a column at 1,000 hosts, ~8× this)."""
    present = np.array([v is not None for v in values], np.bool_)
    if not all(v is None or isinstance(v, str) for v in values) or not present[index].any():
        return _pick(values, index)
    names = pa.array(list(values), pa.string())
    coded = pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), names)
    return pd.array(coded.cast(pa.string()), dtype="str")


def _pick(values: Sequence[Any], index: NDArray[np.int64]) -> NDArray[Any]:
    picked: NDArray[Any] = _objects(values)[index]
    return picked


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _host_failures(
    status: NDArray[Any],
    reason: NDArray[Any],
    rows: NDArray[np.bool_],
    src: NDArray[np.int64],
    dst: NDArray[np.int64],
    hosts: Sequence[RunHost],
    host_fail: Mapping[str, tuple[str, str]],
) -> None:
    """Rows without a record of a failed host: that failure (the source's first)."""
    failed = np.array([h.name in host_fail for h in hosts], np.bool_)
    if not failed.any():
        return
    for row in np.flatnonzero(rows & (failed[src] | failed[dst])).tolist():
        for i, role in ((src[row], "source"), (dst[row], "destination")):
            name = hosts[i].name
            if name in host_fail:
                state, why = host_fail[name]
                status[row], reason[row] = state, f"{role} {name}: {why}"
                break


def bandwidth_cells(run: RunDoc, roles: BandwidthRoles | None = None) -> frozenset[tuple[str, str]]:
    """The (src, dst) cells ``probe run`` planned bandwidth tests for: both directions of the
    pairs ``--pairs`` selects among the measured hosts, in run.json's order, that some end of
    can serve (``probe.reach``; ``roles``: the run's, when drawn already)."""
    pairs = (roles or _bandwidth_roles(run)).pairs
    return frozenset([*pairs, *((b, a) for a, b in pairs)])


def bandwidth_not_measurable(
    run: RunDoc, roles: BandwidthRoles | None = None
) -> dict[tuple[str, str], str]:
    """Both cells of each selected pair neither end of which can be an iperf3 server, and why."""
    refused = (roles or _bandwidth_roles(run)).not_measurable
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
    mode = ping_mode(run)
    if mode.kind == "all":
        return None
    plan = select_ping_pairs(run.measured_hosts, mode)
    return frozenset(plan.pairs), plan.reason


def _choice(run: RunDoc) -> NetworkChoice:
    return NetworkChoice(run.options.network, run.options.networks == ALL_NETWORKS)


def _one_network(run: RunDoc) -> bool:
    """Every host on the one network ``default``: the rule has nothing to choose (fast path)."""
    return _choice(run).only is None and not any(h.addresses for h in run.measured_hosts)


def _router(run: RunDoc) -> Callable[[str, str], tuple[Route, ...] | NoRoute]:
    """What the run measured from one host to another (``probe.networks``), drawn again from
    run.json: its hosts' addresses, its network order and its ``--network(s)`` options."""
    hosts = {h.name: h for h in run.measured_hosts}
    choice = _choice(run)
    if _one_network(run):
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


def implied_pairs(frame: pd.DataFrame, run: RunDoc) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(sources, destinations) as indices into ``run.measured_hosts``, in host order, of the
    pairs ``frame`` (a long form of ``run``) has no row for: implied ``not-planned``. None for a
    full-mesh run."""
    hosts = run.measured_hosts
    n = len(hosts)
    if implied_of(run) is None or not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = pd.Index([h.name for h in hosts], dtype=object)
    a = index.get_indexer(pd.Index(frame["src"].to_numpy(object), dtype=object))
    b = index.get_indexer(pd.Index(frame["dst"].to_numpy(object), dtype=object))
    known = (a >= 0) & (b >= 0)
    have = np.zeros(n * n, np.bool_)
    have[a[known] * n + b[known]] = True
    have[np.arange(n) * (n + 1)] = True  # a host and itself: no pair
    missing = np.flatnonzero(~have).astype(np.int64)
    return missing // n, missing % n


def implied_rows(frame: pd.DataFrame, run: RunDoc) -> int:
    """How many rows ``with_implied`` adds: one per implied pair, one per network it would
    have been measured over under ``--networks all``."""
    if _one_network(run):
        return len(implied_pairs(frame, run)[0])
    return len(with_implied(frame[KEY], run)) - len(frame)


def implied_by_region(frame: pd.DataFrame, run: RunDoc) -> Counter[tuple[str, str]]:
    """Implied pairs per (source region, destination region)."""
    src, dst = implied_pairs(frame, run)
    regions = np.array([h.region for h in run.measured_hosts], dtype=object)
    return Counter(zip(regions[src].tolist(), regions[dst].tolist(), strict=True))


def with_implied(frame: pd.DataFrame, run: RunDoc) -> pd.DataFrame:
    """``frame`` (a long form of ``run``, any of its columns with ``src`` and ``dst``) with the
    rows of its implied pairs back, as they read (``matrix.implied``), in the long form's order:
    what the views of every cell and the exports with ``--with-unplanned`` show. ``frame``
    itself when it has none."""
    implied = implied_of(run)
    src, dst = implied_pairs(frame, run)
    if implied is None or not len(src):
        return frame
    hosts = run.measured_hosts
    if not _one_network(run):  # a row per network the pair would have been measured over
        route = _router(run)
        found = [route(hosts[i].name, hosts[j].name) for i, j in zip(src, dst, strict=True)]
        ways = [() if isinstance(r, NoRoute) else r for r in found]
        repeat = np.array([len(r) for r in ways], np.int64)
        src, dst = np.repeat(src, repeat), np.repeat(dst, repeat)
        network = _objects([r.network for rs in ways for r in rs])
        address = _objects([r.address for rs in ways for r in rs])
    else:
        network = np.full(len(src), DEFAULT_NETWORK, dtype=object)
        address = _pick([h.address for h in hosts], dst)
    known: dict[str, NDArray[Any]] = {
        "src": _pick([h.name for h in hosts], src),
        "dst": _pick([h.name for h in hosts], dst),
        "network": network,
        "address": address,
        "status": np.full(len(src), str(IMPLIED_STATUS), dtype=object),
        "reason": np.full(len(src), implied.reason, dtype=object),
        "bw_status": np.full(len(src), str(IMPLIED_STATUS), dtype=object),
        "bw_reason": np.full(len(src), implied.bw_reason, dtype=object),
        "from_reverse": np.zeros(len(src), np.bool_),
    }
    for side, idx in (("src", src), ("dst", dst)):
        known[f"{side}_region"] = _pick([h.region for h in hosts], idx)
        known[f"{side}_zone"] = _pick([h.zone for h in hosts], idx)
    index = pd.Index([h.name for h in hosts], dtype=object)
    names = np.concatenate([frame["src"].to_numpy(object), known["src"]])
    pair = index.get_indexer(pd.Index(names, dtype=object)) * len(hosts)
    names = np.concatenate([frame["dst"].to_numpy(object), known["dst"]])
    order = np.argsort(pair + index.get_indexer(pd.Index(names, dtype=object)), kind="stable")
    col = {c: _joined(frame[c], known.get(c), len(src))[order] for c in frame.columns}
    return pd.DataFrame(col, columns=frame.columns, copy=False)  # dtypes inferred as built


def _joined(column: pd.Series, extra: NDArray[Any] | None, size: int) -> Any:
    """``column``'s values then ``extra`` (None: ``size`` missing values: NaN, NA, None), as the
    build's arrays are (text as objects with None)."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) or dtype == np.dtype(object):
        values = column.to_numpy(object, copy=True)
        values[pd.isna(values)] = None
        return np.concatenate([values, np.full(size, None, object) if extra is None else extra])
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):  # Int64, boolean: NA
        tail = pd.Series([None] * size if extra is None else extra, dtype=dtype)
        return pd.concat([column, tail], ignore_index=True).array
    more = np.full(size, math.nan) if extra is None else extra
    return np.concatenate([column.to_numpy(), more.astype(dtype)])


def networks_of(frame: pd.DataFrame) -> list[str]:
    """The networks a matrix has rows for, in first-seen order."""
    return [n for n in dict.fromkeys(frame["network"]) if isinstance(n, str)]


def _read_all(readers: Sequence[PartProbes]) -> ProbeReader | None:
    """One reader over the probes of every store added (a builder reads one run's)."""
    if len(readers) > 1:
        raise ValueError("one store per builder")
    return readers[0] if readers else None


def prepared(run: RunDoc, read: Callable[[], StoredRun]) -> tuple[MatrixBuilder, StoredRun]:
    """A builder for ``run`` and its records (``read``), side by side: the builder draws the
    run's plans in Python while the reading spends its time in Parquet and numpy, which leave
    the GIL (~0.5 s of a 1,000-host rebuild hidden)."""
    with ThreadPoolExecutor(1) as pool:
        builder = pool.submit(MatrixBuilder, run)
        stored = read()
        return builder.result(), stored


def stored_run(
    run_dir: Path,
    torn: list[int],
    *,
    warn: Callable[[str], None] | None = None,
    summaries: bool = True,
) -> StoredRun:
    """The run's records through its stores, each part's statistics part read instead of its
    probes where it has one (``summaries``; off: every record reduced from its probes)."""
    schema = STATS_SCHEMA if summaries else None
    return read_store(run_dir, torn, warn=warn, summaries=schema)


def load_matrix(
    run_dir: Path,
    *,
    warn: Callable[[str], None] | None = None,
    run: RunDoc | None = None,
    torn: list[int] | None = None,
    summaries: bool = True,
) -> pd.DataFrame:
    """The long-form matrix of a run, rebuilt from its samples (the source of truth).

    ``warn`` hears about torn lines of samples.jsonl, which are skipped (see store.py), and
    ``torn`` gets their numbers; ``run`` is its run.json when the caller has read it already;
    ``summaries``: as ``stored_run``."""
    run = run if run is not None else read_run(run_dir)
    torn = [] if torn is None else torn
    builder, stored = prepared(
        run, lambda: stored_run(run_dir, torn, warn=warn, summaries=summaries)
    )
    builder.add_store(stored)
    del stored  # its records go when the builder is done with them
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
    save(run_dir / "matrix.csv", csv_blocks(frame))  # frame.to_csv's text, vectorised
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
    frame: pd.DataFrame,
    order: Sequence[str] | None = None,
    *,
    bandwidth: bool = False,
    run: RunDoc | None = None,
) -> pd.DataFrame:
    """src × dst grid of the status (``bw_status``); ``run``: the frame's, whose implied pairs
    read ``not-planned`` (``order`` should then be its hosts)."""
    grid = _grid(frame, "bw_status" if bandwidth else "status", order)
    return grid if run is None or implied_of(run) is None else fill_implied(grid)


def fill_implied(grid: pd.DataFrame) -> pd.DataFrame:
    """A status grid of a sampled run with its implied cells: every cell off the diagonal
    without a row reads ``not-planned`` (as its row would, ``with_implied``)."""
    missing = grid.isna().to_numpy() & ~np.eye(*grid.shape, dtype=np.bool_)
    if not missing.any():
        return grid
    return grid.astype(object).mask(missing, str(IMPLIED_STATUS))


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


def by_region(
    frame: pd.DataFrame, metric: str, run: RunDoc | None = None
) -> tuple[RegionFigure, ...]:
    """Region × region: one figure of the region roll-up (``matrix.regions`` defines it).
    ``run``: the frame's, whose hosts count each region pair's pairs (implied ones too)."""
    return figures(roll_up(pair_table(frame), _sizes(run)), metric)


def _sizes(run: RunDoc | None) -> dict[tuple[str, str], int] | None:
    return None if run is None else region_sizes(h.region for h in run.measured_hosts)


def left_out_by_region(
    frame: pd.DataFrame, metric: str, run: RunDoc | None = None
) -> dict[str, dict[tuple[str, str], int]]:
    """Per region pair, the pairs left out of ``metric``'s figure on purpose, by why: "not
    planned" (a sampled ping plan, implied pairs of ``run`` included; none for a goodput, whose
    plan is another) and "not measurable" (neither end can be aimed at). Each pair's preferred
    row, as the figure reads. The one count text and ``--json`` both print."""
    cells = preferred(frame)
    bw = metric.startswith("bw")
    wanted = {"not planned": ("status", CellStatus.NOT_PLANNED)} if not bw else {}
    wanted["not measurable"] = ("bw_status" if bw else "status", CellStatus.NOT_MEASURABLE)
    out: dict[str, dict[tuple[str, str], int]] = {}
    for why, (column, status) in wanted.items():
        hit = cells[cells[column] == status.value]
        pairs = zip(hit["src_region"], hit["dst_region"], strict=True)
        out[why] = dict(Counter((str(s), str(d)) for s, d in pairs))
    if run is not None and not bw:
        out["not planned"] = dict(Counter(out["not planned"]) + implied_by_region(frame, run))
    return out


def host_order(run: RunDoc) -> list[str]:
    """Hosts grouped by region (regions in first-seen order), as inventories are usually written."""
    hosts = run.measured_hosts
    regions = dict.fromkeys(h.region for h in hosts)
    return [h.name for r in regions for h in hosts if h.region == r]


# --- anchors -------------------------------------------------------------------------------


def to_anchors(
    run: RunDoc, frame: pd.DataFrame, samples: Mapping[tuple[str, str], Probes] | None = None
) -> A.Anchors:
    """The anchors the calculator consumes; ``samples`` (raw RTTs per pair probed) feed its
    Monte-Carlo."""
    return anchors_from(run, pair_table(frame), samples)


def anchors_from(
    run: RunDoc, pairs: PairTable, samples: Mapping[tuple[str, str], Probes] | None = None
) -> A.Anchors:
    """The anchors of ``run`` whose pairs are ``pairs`` (``to_anchors``; ``stored.anchors_of``
    reads them from the stored matrix's columns)."""
    hosts = tuple(A.HostInfo(h.name, h.region, h.zone, h.provider, h.measure) for h in run.hosts)
    return A.Anchors(
        run_id=run.run_id,
        created_utc=run.ended_utc or run.started_utc,
        probe_version=run.probe_version,
        hosts=hosts,
        pairs=pairs,
        regions=roll_up(pairs, _sizes(run)),
        implied=implied_of(run),
        samples={} if samples is None else samples,  # a lazy Mapping: `or` would read it all
    )


def pair_table(frame: pd.DataFrame) -> PairTable:
    """The rows of ``frame`` as pairs (what the region roll-up and anchors.json read): each
    pair's preferred network's row, a column at a time (a million pairs at 1,000 hosts)."""
    return PairTable.from_frame(preferred(frame))


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
