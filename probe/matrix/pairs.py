"""Anchors' ordered pairs: one pair as a value (``PairAnchor``), all of a run's as columns.

Why columns: at 1,000 hosts a run has a million ordered pairs. As a million frozen objects they
took ~12 s to build from the matrix and seconds more for each consumer's pass over them, before
calc, groups or gate did any work. ``PairTable`` holds each field as a numpy column (strings as
codes into their distinct values), so the matrix's columns become the table's without a Python
step per pair, and the consumers that read every pair (``Links``, the region roll-up, gate's
coverage, anchors.json) read columns. A ``PairAnchor`` is built only when one pair is asked for
(``pair``, indexing, iteration: small fleets and tests read pairs one by one as before).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from numpy.typing import NDArray

from probe.model import CellStatus

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True, slots=True)
class RttAnchor:
    """Round-trip statistics of one ordered pair, in milliseconds."""

    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Receiver goodput in Mbit/s (10⁶ bit/s); ``None`` when not measured."""

    forward_mbps: float | None = None
    reverse_mbps: float | None = None


@dataclass(frozen=True, slots=True)
class PairAnchor:
    """One ordered pair ``src → dst``. Only ``status == ok`` carries ``rtt``."""

    src: str
    dst: str
    src_region: str
    dst_region: str
    status: CellStatus
    reason: str | None = None
    rtt: RttAnchor | None = None
    rtt_mdev_ms: float | None = None
    ipdv_ms: float | None = None
    pdv_p99_ms: float | None = None
    loss_pct: float | None = None
    sent: int = 0
    received: int = 0
    bw: Bandwidth = Bandwidth()
    bw_status: str | None = None
    bw_reason: str | None = None
    network: str | None = None  # the network measured over (the pair's preferred one)
    address: str | None = None  # dst's address on it
    from_reverse: bool = False  # the RTT was measured dst → src: dst accepts no inbound ICMP
    sender_cc: str | None = None  # src's TCP congestion control, as its iperf3 test reported it
    receiver_cc: str | None = None  # dst's

    @property
    def ok(self) -> bool:
        return self.status is CellStatus.OK and self.rtt is not None

    @property
    def probed(self) -> tuple[str, str]:
        """The direction whose probes gave the RTT: ``dst → src`` for a ``from_reverse`` pair."""
        return (self.dst, self.src) if self.from_reverse else (self.src, self.dst)


#: Status codes of ``PairTable.status``: positions in this tuple.
STATUSES: tuple[CellStatus, ...] = tuple(CellStatus)
_STATUS_CODE = {s.value: i for i, s in enumerate(STATUSES)}
#: ``RttAnchor``'s fields: the columns of ``PairTable.rtt_ms``, in order.
RTT_FIELDS = ("min", "mean", "p50", "p90", "p99", "max")
#: The float columns of a pair besides its RTT (NaN: None), by ``PairAnchor`` field.
FLOATS = ("rtt_mdev_ms", "ipdv_ms", "pdv_p99_ms", "loss_pct", "bw_fwd_mbps", "bw_rev_mbps")
#: The string columns (codes), by ``PairAnchor`` field.
STRINGS = ("reason", "bw_status", "bw_reason", "network", "address", "sender_cc", "receiver_cc")


def status_code(status: CellStatus) -> int:
    return _STATUS_CODE[status.value]


@dataclass(frozen=True, slots=True, eq=False)
class Codes:
    """A string column as codes into its distinct ``values`` (-1: null)."""

    codes: NDArray[np.int32]
    values: tuple[str, ...]

    @classmethod
    def of(cls, values: Iterable[str | None]) -> Codes:
        seen: dict[str, int] = {}
        codes = [-1 if v is None else seen.setdefault(v, len(seen)) for v in values]
        return cls(np.asarray(codes, np.int32), tuple(seen))

    @classmethod
    def from_arrow(cls, column: pa.ChunkedArray | pa.Array) -> Codes:
        """A string (or dictionary) column; anything else that is not text reads as null."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not pa.types.is_dictionary(column.type):
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                column = pa.nulls(len(column), pa.string())
            column = pc.dictionary_encode(column)
        codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        values = tuple(str(v) for v in column.dictionary.to_pylist())
        return cls(codes, values)

    def at(self, i: int) -> str | None:
        c = int(self.codes[i])
        return None if c < 0 else self.values[c]

    def equals(self, value: str) -> NDArray[np.bool_]:
        """Which rows hold ``value``."""
        code = self.values.index(value) if value in self.values else -2
        found: NDArray[np.bool_] = self.codes == code
        return found

    def take(self, rows: NDArray[np.intp]) -> Codes:
        return Codes(self.codes[rows], self.values)

    def decoded(self) -> list[str | None]:
        """Every row's value (small tables; tests)."""
        lookup: list[str | None] = [*self.values, None]
        return [lookup[c] for c in self.codes.tolist()]


@dataclass(frozen=True, slots=True, eq=False)
class PairTable(Sequence[PairAnchor]):
    """A run's ordered pairs as columns, one row per pair in the order read.

    ``src`` / ``dst`` are codes into ``names``; ``status`` codes into ``STATUSES``; ``rtt_ms``
    is (pairs × 6) in ``RTT_FIELDS`` order, meaningful where ``has_rtt``; the other floats are
    NaN for None; ``strings`` holds each of ``STRINGS`` as ``Codes``. Equal tables hold equal
    pairs in the same order (codes may differ).
    """

    names: tuple[str, ...]
    src: NDArray[np.int32]
    dst: NDArray[np.int32]
    src_region: Codes
    dst_region: Codes
    status: NDArray[np.int8]
    has_rtt: NDArray[np.bool_]
    rtt_ms: NDArray[np.float64]
    floats: Mapping[str, NDArray[np.float64]]
    sent: NDArray[np.int64]
    received: NDArray[np.int64]
    strings: Mapping[str, Codes]
    from_reverse: NDArray[np.bool_]
    _index: dict[str, Any] = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------------------- building

    @classmethod
    def of(cls, pairs: Iterable[PairAnchor]) -> PairTable:
        """The table of ``pairs`` (one by one: small fleets, tests, ``probe.anchors`` files)."""
        ps = list(pairs)
        hosts = Codes.of([*(p.src for p in ps), *(p.dst for p in ps)])
        n = len(ps)
        rtt = np.full((n, 6), np.nan)
        for i, p in enumerate(ps):
            if p.rtt is not None:
                r = p.rtt
                rtt[i] = (r.min_ms, r.mean_ms, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms)

        def num(values: Iterable[float | None]) -> NDArray[np.float64]:
            return np.fromiter((np.nan if v is None else v for v in values), np.float64, n)

        return cls(
            names=hosts.values,
            src=hosts.codes[:n],
            dst=hosts.codes[n:],
            src_region=Codes.of(p.src_region for p in ps),
            dst_region=Codes.of(p.dst_region for p in ps),
            status=np.fromiter((status_code(p.status) for p in ps), np.int8, n),
            has_rtt=np.fromiter((p.rtt is not None for p in ps), np.bool_, n),
            rtt_ms=rtt,
            floats={
                "rtt_mdev_ms": num(p.rtt_mdev_ms for p in ps),
                "ipdv_ms": num(p.ipdv_ms for p in ps),
                "pdv_p99_ms": num(p.pdv_p99_ms for p in ps),
                "loss_pct": num(p.loss_pct for p in ps),
                "bw_fwd_mbps": num(p.bw.forward_mbps for p in ps),
                "bw_rev_mbps": num(p.bw.reverse_mbps for p in ps),
            },
            sent=np.fromiter((p.sent for p in ps), np.int64, n),
            received=np.fromiter((p.received for p in ps), np.int64, n),
            strings={k: Codes.of(getattr(p, k) for p in ps) for k in STRINGS},
            from_reverse=np.fromiter((p.from_reverse for p in ps), np.bool_, n),
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> PairTable:
        """The matrix rows of ``frame`` (one per pair: ``build.preferred``'s) as a table."""
        import pyarrow as pa

        wanted = [c for c in FRAME_COLUMNS if c in frame.columns]
        return cls.from_arrow(pa.Table.from_pandas(frame[wanted], preserve_index=False))

    @classmethod
    def from_arrow(cls, table: pa.Table) -> PairTable:
        """The matrix rows of ``table`` (one per pair, the matrix's column names) as a table;
        a missing string column (``sender_cc``, ``receiver_cc``: not asked for) is all null."""
        import pyarrow as pa

        n = table.num_rows

        def codes(name: str) -> Codes:
            if name not in table.column_names:
                return Codes(np.full(n, -1, np.int32), ())
            return Codes.from_arrow(table[name])

        def floats(name: str) -> NDArray[np.float64]:
            col = table[name].cast(pa.float64())
            values: NDArray[np.float64] = col.to_numpy().astype(np.float64, copy=False)
            return values  # nulls: NaN

        def ints(name: str) -> NDArray[np.int64]:
            col = table[name].cast(pa.float64()).fill_null(0)  # pandas' Int64 or float
            values: NDArray[np.int64] = col.to_numpy().astype(np.int64)
            return values

        src, dst = codes("src"), codes("dst")
        names = tuple(dict.fromkeys([*src.values, *dst.values]))
        where = {name: i for i, name in enumerate(names)}
        dst_map = np.asarray([where[v] for v in dst.values], np.int32)
        status = codes("status")
        status_map = np.asarray([_STATUS_CODE[CellStatus(v).value] for v in status.values], np.int8)
        if (status.codes < 0).any():
            raise ValueError("a matrix row without a status")
        ok = status.codes == (status.values.index("ok") if "ok" in status.values else -2)
        rtt = np.column_stack([floats(f"rtt_{k}_ms") for k in RTT_FIELDS]).reshape(n, 6)
        reverse = table["from_reverse"].fill_null(False).to_numpy(zero_copy_only=False)
        return cls(
            names=names,
            src=src.codes,
            dst=dst_map[dst.codes] if n else dst.codes,
            src_region=codes("src_region"),
            dst_region=codes("dst_region"),
            status=status_map[status.codes] if n else np.zeros(0, np.int8),
            has_rtt=ok,
            rtt_ms=rtt,
            floats={k: floats(k) for k in FLOATS},
            sent=ints("sent"),
            received=ints("received"),
            strings={k: codes(k) for k in STRINGS},
            from_reverse=np.asarray(reverse, np.bool_),
        )

    def take(self, rows: NDArray[np.intp]) -> PairTable:
        """The pairs at ``rows``, in that order."""
        return PairTable(
            self.names,
            self.src[rows],
            self.dst[rows],
            self.src_region.take(rows),
            self.dst_region.take(rows),
            self.status[rows],
            self.has_rtt[rows],
            self.rtt_ms[rows],
            {k: v[rows] for k, v in self.floats.items()},
            self.sent[rows],
            self.received[rows],
            {k: v.take(rows) for k, v in self.strings.items()},
            self.from_reverse[rows],
        )

    # ----------------------------------------------------------------------------- one pair

    def __len__(self) -> int:
        return len(self.src)

    @overload
    def __getitem__(self, i: int) -> PairAnchor: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[PairAnchor]: ...
    def __getitem__(self, i: int | slice) -> PairAnchor | Sequence[PairAnchor]:
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        s = self.strings
        r = self.rtt_ms[i].tolist()
        f = {k: v[i] for k, v in self.floats.items()}

        def opt(name: str) -> float | None:
            value = float(f[name])
            return None if value != value else value

        return PairAnchor(
            src=self.names[self.src[i]],
            dst=self.names[self.dst[i]],
            src_region=self.src_region.at(i) or "",
            dst_region=self.dst_region.at(i) or "",
            status=STATUSES[self.status[i]],
            reason=s["reason"].at(i),
            rtt=RttAnchor(*r) if self.has_rtt[i] else None,
            rtt_mdev_ms=opt("rtt_mdev_ms"),
            ipdv_ms=opt("ipdv_ms"),
            pdv_p99_ms=opt("pdv_p99_ms"),
            loss_pct=opt("loss_pct"),
            sent=int(self.sent[i]),
            received=int(self.received[i]),
            bw=Bandwidth(opt("bw_fwd_mbps"), opt("bw_rev_mbps")),
            bw_status=s["bw_status"].at(i),
            bw_reason=s["bw_reason"].at(i),
            network=s["network"].at(i),
            address=s["address"].at(i),
            from_reverse=bool(self.from_reverse[i]),
            sender_cc=s["sender_cc"].at(i),
            receiver_cc=s["receiver_cc"].at(i),
        )

    def __iter__(self) -> Iterator[PairAnchor]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PairTable):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def host_code(self, name: str) -> int:
        """``name``'s code in ``names`` (-1: no pair of the table has it)."""
        codes: dict[str, int] | None = self._index.get("names")
        if codes is None:
            codes = self._index["names"] = {n: i for i, n in enumerate(self.names)}
        return codes.get(name, -1)

    def row(self, src: str, dst: str) -> int | None:
        """The row of the ordered pair ``src → dst`` (the last, should it repeat), or None."""
        a, b = self.host_code(src), self.host_code(dst)
        if a < 0 or b < 0:
            return None
        if "order" not in self._index:
            key = self.src.astype(np.int64) * len(self.names) + self.dst
            order = np.argsort(key, kind="stable")
            self._index["order"], self._index["key"] = order, key[order]
        keys: NDArray[np.int64] = self._index["key"]
        at = int(np.searchsorted(keys, a * len(self.names) + b, side="right")) - 1
        if at < 0 or keys[at] != a * len(self.names) + b:
            return None
        return int(self._index["order"][at])

    def pair(self, src: str, dst: str) -> PairAnchor | None:
        row = self.row(src, dst)
        return None if row is None else self[row]

    # ----------------------------------------------------------------------------- columns

    @property
    def ok(self) -> NDArray[np.bool_]:
        """``PairAnchor.ok`` of every row."""
        ok: NDArray[np.bool_] = (self.status == status_code(CellStatus.OK)) & self.has_rtt
        return ok

    def status_in(self, statuses: Iterable[CellStatus]) -> NDArray[np.bool_]:
        return np.isin(self.status, [status_code(s) for s in statuses])

    def rtt(self, name: str) -> NDArray[np.float64]:
        """One ``RTT_FIELDS`` column, NaN where the pair is not ok (what calc and groups read)."""
        col: NDArray[np.float64] = np.where(self.ok, self.rtt_ms[:, RTT_FIELDS.index(name)], np.nan)
        return col

    def same_region(self) -> NDArray[np.bool_]:
        """Which rows are of two hosts of one region."""
        src = {v: i for i, v in enumerate(self.src_region.values)}
        as_src = np.asarray([src.get(v, -2) for v in self.dst_region.values] + [-3], np.int64)
        same: NDArray[np.bool_] = as_src[self.dst_region.codes] == self.src_region.codes
        return same

    def region_keys(self) -> tuple[NDArray[np.int64], list[tuple[str, str]]]:
        """Each row's (source region, destination region) as a code into the sorted list of
        the region pairs the table has (worked out once)."""
        if "regions" not in self._index:
            self._index["regions"] = self._region_keys()
        found: tuple[NDArray[np.int64], list[tuple[str, str]]] = self._index["regions"]
        return found

    def _region_keys(self) -> tuple[NDArray[np.int64], list[tuple[str, str]]]:
        sr, dr = self.src_region, self.dst_region
        width = len(dr.values) + 1
        raw = (sr.codes.astype(np.int64) + 1) * width + (dr.codes.astype(np.int64) + 1)
        present, inverse = np.unique(raw, return_inverse=True)
        lookup_s, lookup_d = ["", *sr.values], ["", *dr.values]
        keys = [(lookup_s[k // width], lookup_d[k % width]) for k in present.tolist()]
        order = sorted(range(len(keys)), key=lambda k: keys[k])
        rank = np.empty(len(keys), np.int64)
        rank[order] = np.arange(len(keys))
        return rank[inverse.reshape(-1)], [keys[k] for k in order]

    def region_counts(self, mask: NDArray[np.bool_]) -> dict[tuple[str, str], int]:
        """How many rows of ``mask`` each (source region, destination region) has (0s left out)."""
        key, names = self.region_keys()
        counts = np.bincount(key[mask], minlength=len(names)).tolist()
        return {names[k]: c for k, c in enumerate(counts) if c}

    def hosts_of(self, mask: NDArray[np.bool_]) -> set[str]:
        """The hosts that are the source or the destination of a row of ``mask``."""
        codes = np.unique(np.concatenate([self.src[mask], self.dst[mask]]))
        return {self.names[c] for c in codes.tolist()}

    def host_rows(self, index: Mapping[str, int]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Each row's source and destination as positions in ``index`` (-1: not in it)."""
        where = np.asarray([index.get(name, -1) for name in self.names], np.intp)
        if not len(where):
            return np.zeros(len(self), np.intp), np.zeros(len(self), np.intp)
        return where[self.src], where[self.dst]


#: The matrix columns a table reads (what ``stored.anchors_of`` loads).
FRAME_COLUMNS = (
    "src", "dst", "network", "address", "src_region", "dst_region", "status", "reason",
    *(f"rtt_{k}_ms" for k in RTT_FIELDS), "rtt_mdev_ms", "ipdv_ms", "pdv_p99_ms", "loss_pct",
    "sent", "received", "from_reverse", "bw_status", "bw_reason", "bw_fwd_mbps", "bw_rev_mbps",
    "sender_cc", "receiver_cc",
)  # fmt: skip
#: Those of them that are not text.
NUMERIC_COLUMNS = (
    *(f"rtt_{k}_ms" for k in RTT_FIELDS), *FLOATS, "sent", "received", "from_reverse",
)  # fmt: skip
