"""The anchors file: what one run measured, reduced to what the calculator, groups and gate need.

``anchors.json`` is versioned (``"schema": "probe.anchors/2"``, or ``/3`` below). Within a major
version fields are only ever added, so a reader ignores keys it does not know; a different major
is refused. Every
pair is *ordered*: ``rtt_ms`` is the round trip measured from ``src``; ``bw_mbps.forward`` is the
receiver goodput ``src → dst`` in Mbit/s (10⁶ bit/s), ``reverse`` is ``dst → src``. A pair whose
``status`` is not ``ok`` carries no RTT (``all-lost`` keeps its loss of 100 %) and must never be
read as a good link. ``network`` and ``address`` say which network a pair was measured over and
the destination's address on it (``probe.networks``: its preferred one; absent from files written
before named networks, and for a pair without one). ``from_reverse: true`` marks a pair whose RTT
(figures and samples) was measured from ``dst`` (it accepts no inbound ICMP): the same round trip;
the key is written only then.

A sampled ping plan's pairs that have neither a measurement nor a reason of their own (outside
the ping plan, no bandwidth cell: ``probe.matrix.implied``) are no entry of ``pairs``; the file's
``implied`` key says what they read, ``Anchors.pair`` gives one of them as a ``not-planned`` pair
and a region row's ``pairs`` counts them. Such a file is ``probe.anchors/3``: a /2 reader would
take a missing pair for one the run never had. Every other file is still /2, so readers of /2
keep reading full-mesh runs.

Raw RTT samples (calc's Monte-Carlo) live in a Parquet sidecar beside the file
(``probe.matrix.samples``), named by its ``samples`` key; ``probe.anchors/1`` files carried them
inline, per pair, as ``rtt_samples_ms`` and stay readable. Either way ``Anchors.rtt_samples``
gives an ok pair's samples: those of the direction probed (``dst → src`` for ``from_reverse``).

``pairs`` with ``implied`` answers any pair's status and reason from the file alone. In memory
the pairs are columns (``probe.matrix.pairs``), written here a column at a time with the text
``json.dumps`` gives each pair's object.

Region rows roll up the pairs from ``src_region`` to ``dst_region``; ``probe.matrix.regions``
computes them and defines each figure (RTT and IPDV: medians over ok pairs; loss: pooled over every
probe sent; goodput: medians over the pairs measured), with the number of pairs each rests on.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from probe.errors import InputError, ParseError
from probe.matrix.csvtext import float_texts
from probe.matrix.pairs import STATUSES, Codes, PairTable
from probe.matrix.pairs import Bandwidth as Bandwidth
from probe.matrix.pairs import PairAnchor as PairAnchor
from probe.matrix.pairs import RttAnchor as RttAnchor
from probe.matrix.samples import SIDECAR, ProbeColumns, Probes, SidecarSamples, encode_samples
from probe.model import CellStatus
from probe.textio import save

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA = "probe.anchors/2"
SCHEMA_IMPLIED = "probe.anchors/3"  # a sampled plan's implied pairs are no entry of ``pairs``
_READS = ("1", "2", "3")  # /1: samples inline; /2: in the sidecar; /3: with implied pairs
_SCHEMA_RE = re.compile(r"^probe\.anchors/(\d+)(?:\.\d+)?$")


@dataclass(frozen=True, slots=True)
class RegionRtt:
    """Median over the ok pairs of a region pair of each pair statistic, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


@dataclass(frozen=True, slots=True)
class HostInfo:
    name: str
    region: str
    zone: str | None = None
    provider: str | None = None
    measured: bool = True


@dataclass(frozen=True, slots=True)
class RegionAnchor:
    """One region pair (``matrix.regions.roll_up`` defines each figure).

    ``rtt`` rests on ``pairs_ok`` pairs, ``ipdv_ms`` on ``pairs_ipdv``, ``loss_pct`` on ``sent``
    probes of ``pairs_probed`` pairs, ``bw`` on ``pairs_bw_forward`` / ``pairs_bw_reverse``. The
    counts after ``bw`` are None in files written before probe recorded them.
    """

    src_region: str
    dst_region: str
    pairs: int
    pairs_ok: int
    rtt: RegionRtt | None
    ipdv_ms: float | None
    loss_pct: float | None
    bw: Bandwidth
    pairs_probed: int | None
    pairs_ipdv: int | None
    pairs_bw_forward: int | None
    pairs_bw_reverse: int | None
    sent: int | None
    received: int | None


@dataclass(frozen=True, slots=True)
class Implied:
    """What a pair of a sampled plan without a row reads: ``not-planned`` with ``reason`` (the
    ping plan's), bandwidth ``not-planned`` with ``bw_reason``, every figure empty."""

    reason: str
    bw_reason: str


@dataclass(frozen=True, slots=True)
class Anchors:
    """A whole anchors file. Host lookups are indexed once at construction, pairs on first use.

    ``pairs`` is columnar (``PairTable``: a ``PairAnchor`` is built when one is asked for).
    ``samples`` holds raw RTTs by the direction probed: in memory after a build or a
    ``probe.anchors/1`` file, read lazily from the sidecar of a ``probe.anchors/2`` one.
    """

    run_id: str
    created_utc: str
    probe_version: str
    hosts: tuple[HostInfo, ...]
    pairs: PairTable
    regions: tuple[RegionAnchor, ...]
    samples: Mapping[tuple[str, str], Probes] = field(default_factory=dict, compare=False)
    implied: Implied | None = None  # a sampled plan: what the pairs without an entry read
    _hosts_by_name: dict[str, HostInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hosts_by_name", {h.name: h for h in self.hosts})

    def pair(self, src: str, dst: str) -> PairAnchor | None:
        """The ordered pair ``src → dst`` (a pair of measured hosts a sampled plan left out:
        ``not-planned``, ``implied``), or ``None`` if the run has no row for it."""
        found = self.pairs.pair(src, dst)
        if found is not None or self.implied is None or src == dst:
            return found
        a, b = self._hosts_by_name.get(src), self._hosts_by_name.get(dst)
        if a is None or b is None or not (a.measured and b.measured):
            return None
        state = CellStatus.NOT_PLANNED
        return PairAnchor(src, dst, a.region, b.region, state, self.implied.reason,
                          bw_status=state.value, bw_reason=self.implied.bw_reason)  # fmt: skip

    def rtt_samples(self, pair: PairAnchor) -> Probes | None:
        """The raw RTTs behind an ok pair's figures (None: not ok, or none kept)."""
        return self.samples.get(pair.probed) if pair.ok else None

    def host(self, name: str) -> HostInfo:
        try:
            return self._hosts_by_name[name]
        except KeyError:
            raise InputError(f"host {name!r} is not in run {self.run_id}") from None

    def hosts_in(self, region: str) -> tuple[HostInfo, ...]:
        return tuple(h for h in self.hosts if h.region == region)

    def region(self, src_region: str, dst_region: str) -> RegionAnchor | None:
        for r in self.regions:
            if r.src_region == src_region and r.dst_region == dst_region:
                return r
        return None

    @property
    def measured_hosts(self) -> tuple[HostInfo, ...]:
        return tuple(h for h in self.hosts if h.measured)

    @property
    def measured_regions(self) -> tuple[str, ...]:
        """Regions with at least one host that is the source or destination of an ok pair."""
        seen = self.pairs.hosts_of(self.pairs.ok)
        return tuple(sorted({h.region for h in self.hosts if h.name in seen}))


# --------------------------------------------------------------------------- dump


def _region_dict(r: RegionAnchor) -> dict[str, object]:
    rtt = r.rtt
    return {
        "src_region": r.src_region, "dst_region": r.dst_region, "pairs": r.pairs,
        "pairs_ok": r.pairs_ok,
        "rtt_ms": None if rtt is None else {"p50": rtt.p50_ms, "p90": rtt.p90_ms,
                                            "p99": rtt.p99_ms, "mean": rtt.mean_ms},
        "ipdv_ms": r.ipdv_ms, "loss_pct": r.loss_pct, "bw_mbps": _bw_dict(r.bw),
        "pairs_probed": r.pairs_probed, "pairs_ipdv": r.pairs_ipdv,
        "pairs_bw": {"forward": r.pairs_bw_forward, "reverse": r.pairs_bw_reverse},
        "sent": r.sent, "received": r.received,
    }  # fmt: skip


def _bw_dict(b: Bandwidth) -> dict[str, float | None]:
    return {"forward": b.forward_mbps, "reverse": b.reverse_mbps}


@dataclass(frozen=True, slots=True, eq=False)
class Sidecar:
    """What the sidecar holds: the probes of ``pairs`` (indexes into ``probes``), each measured
    over its ``network``."""

    probes: ProbeColumns
    pairs: NDArray[np.intp]
    network: list[str | None]

    @property
    def rows(self) -> int:
        return int(self.probes.count[self.pairs].sum())


def sidecar_rows(anchors: Anchors) -> Sidecar:
    """The samples of each direction probed behind an ok pair, once (with the network of the
    first such pair)."""
    t = anchors.pairs
    ok = np.flatnonzero(t.ok)
    back = t.from_reverse[ok]
    a, b = np.where(back, t.dst[ok], t.src[ok]), np.where(back, t.src[ok], t.dst[ok])
    _, first = np.unique(a.astype(np.int64) * len(t.names) + b, return_index=True)
    first.sort()
    rows, a, b = ok[first], a[first], b[first]
    samples = anchors.samples
    if not isinstance(samples, ProbeColumns):  # a dict, a sidecar read back: pair by pair
        wanted = ((t.names[x], t.names[y]) for x, y in zip(a.tolist(), b.tolist(), strict=True))
        samples = ProbeColumns.of({k: samples[k] for k in wanted if k in samples})
    at = samples.rows(t.names, a, b)
    kept = at >= 0
    networks = t.strings["network"]
    lookup: list[str | None] = [*networks.values, None]
    network = [lookup[c] for c in networks.codes[rows[kept]].tolist()]
    return Sidecar(samples, at[kept], network)


@dataclass(frozen=True, slots=True)
class _Items:
    """``count`` list items already in JSON, joined one per line (``_json``'s layout)."""

    utf8: memoryview  # the items' text, UTF-8: written as it is, never a 0.5 GB str
    count: int


def anchors_doc(anchors: Anchors, sidecar: Sidecar) -> dict[str, object]:
    """The JSON document of ``anchors`` whose samples are in ``sidecar`` (its pairs as JSON
    text already: ``pairs_text``)."""
    return {
        "schema": SCHEMA if anchors.implied is None else SCHEMA_IMPLIED,
        "run_id": anchors.run_id,
        "created_utc": anchors.created_utc,
        "probe_version": anchors.probe_version,
        "hosts": [
            {
                "name": h.name,
                "region": h.region,
                "zone": h.zone,
                "provider": h.provider,
                "measured": h.measured,
            }
            for h in anchors.hosts
        ],
        "pairs": _Items(pairs_utf8(anchors.pairs), len(anchors.pairs)),
        "regions": [_region_dict(r) for r in anchors.regions],
        **(
            {}
            if (i := anchors.implied) is None
            else {
                "implied": {
                    "status": CellStatus.NOT_PLANNED.value,
                    "reason": i.reason,
                    "bw_reason": i.bw_reason,
                }
            }
        ),
        "samples": {
            "file": SIDECAR,
            "format": "parquet",
            "pairs": len(sidecar.pairs),
            "rows": sidecar.rows,
        },
    }


#: Between two list items of anchors.json: one item per line.
_ITEM_SEP = ",\n  "


def _texts(codes: NDArray[np.integer[Any]], values: list[str] | pa.Array) -> pa.Array:
    """The text column whose row k is ``values[codes[k]]`` (Arrow: no Python string per row)."""
    import pyarrow as pa

    dictionary = values if isinstance(values, pa.Array) else pa.array(values, pa.large_string())
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32()), dictionary
    ).dictionary_decode()


def _strings(column: Codes) -> pa.Array:
    """Each row's value as ``json.dumps`` writes it (null: None), each distinct one once."""
    codes = np.where(column.codes < 0, len(column.values), column.codes)
    return _texts(codes, [*(json.dumps(v) for v in column.values), "null"])


def _numbers(columns: list[NDArray[np.float64]] | list[NDArray[np.int64]]) -> list[pa.Array]:
    """Each number of ``columns`` (one dtype) as ``json.dumps`` writes it (``repr``; NaN: None,
    so null), rendered by Arrow (``csvtext.float_texts``); infinity is refused as
    ``json.dumps`` refuses it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    whole = np.concatenate(columns)
    if whole.dtype.kind == "f":
        if np.isinf(whole).any():
            raise ValueError("Out of range float values are not JSON compliant")
        text = float_texts(whole.astype(np.float64, copy=False))
    else:
        text = pc.cast(pa.array(whole), pa.string())
    text = pc.fill_null(text, "null").cast(pa.large_string())
    starts = np.cumsum([0, *(len(c) for c in columns)])
    return [text.slice(int(a), len(c)) for a, c in zip(starts, columns, strict=False)]


_PAIR = (
    '{"src": ', ', "dst": ', ', "src_region": ', ', "dst_region": ', ', "status": ',
    ', "reason": ', ', "rtt_ms": ', ', "rtt_mdev_ms": ', ', "ipdv_ms": ', ', "pdv_p99_ms": ',
    ', "loss_pct": ', ', "sent": ', ', "received": ', ', "bw_mbps": {"forward": ',
    ', "reverse": ', '}, "bw_status": ', ', "bw_reason": ', ', "network": ', ', "address": ',
)  # fmt: skip
_RTT = ('{"min": ', ', "mean": ', ', "p50": ', ', "p90": ', ', "p99": ', ', "max": ')


def _join(keys: tuple[str, ...], values: list[pa.Array], end: str | pa.Array) -> pa.Array:
    """Row by row: ``keys[0] + values[0] + keys[1] + … + end`` (Arrow, in C++)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pieces = [
        x for k, v in zip(keys, values, strict=True) for x in (pa.scalar(k, pa.large_string()), v)
    ]
    tail = end if isinstance(end, pa.Array) else pa.scalar(end, pa.large_string())
    return pc.binary_join_element_wise(*pieces, tail, pa.scalar("", pa.large_string()))


def pairs_utf8(t: PairTable) -> memoryview:
    """The pairs as anchors.json lists them (UTF-8): each as ``json.dumps`` writes its dict, one per
    line, built a column at a time (each distinct value formatted once, the lines joined by
    Arrow): the same text, without a million dicts. Keys written only when set
    (``from_reverse``, the cc names) trail."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(t):
        return memoryview(b"")
    null = pa.scalar("null", pa.large_string())
    figures = t.rtt_ms[t.has_rtt]
    if np.isnan(figures).any():
        raise ValueError("Out of range float values are not JSON compliant")
    rtt = np.zeros((len(t), 6))
    rtt[t.has_rtt] = figures
    floats = [
        *(rtt[:, k].copy() for k in range(6)),
        *(t.floats[k] for k in ("rtt_mdev_ms", "ipdv_ms", "pdv_p99_ms", "loss_pct")),
        t.floats["bw_fwd_mbps"], t.floats["bw_rev_mbps"],
    ]  # fmt: skip
    figure = _numbers(floats)
    sent, received = _numbers([t.sent, t.received])
    rtt_text = pc.if_else(pa.array(t.has_rtt), _join(_RTT, figure[:6], "}"), null)
    empty = pa.scalar("", pa.large_string())
    marked = pa.scalar(', "from_reverse": true', pa.large_string())
    extra = pc.if_else(pa.array(t.from_reverse), marked, empty)
    for name in ("sender_cc", "receiver_cc"):
        column = t.strings[name]
        if (column.codes >= 0).any():
            key = pa.scalar(f', "{name}": ', pa.large_string())
            named = pc.binary_join_element_wise(key, _strings(column), empty)
            extra = pc.binary_join_element_wise(
                extra, pc.if_else(pa.array(column.codes >= 0), named, empty), empty
            )
    s = t.strings
    hosts = [json.dumps(v) for v in t.names]
    columns = [
        _texts(t.src, hosts), _texts(t.dst, hosts), _strings(t.src_region),
        _strings(t.dst_region),
        _texts(t.status, [json.dumps(v.value) for v in STATUSES]), _strings(s["reason"]), rtt_text,
        *figure[6:10], sent, received, *figure[10:],
        *(_strings(s[k]) for k in ("bw_status", "bw_reason", "network", "address")),
    ]  # fmt: skip
    # each line closed by the separator, the last one's cut off: the lines' own buffer is then
    # the text (a new array's values are contiguous, in order), with no copy of 0.5 GB
    close = pa.scalar("}" + _ITEM_SEP, pa.large_string())
    lines = _join(_PAIR, columns, pc.binary_join_element_wise(extra, close, empty))
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, np.int64)[lines.offset : lines.offset + len(lines) + 1]
    first, last = int(bounds[0]), int(bounds[-1])
    return memoryview(data.slice(first, last - first - len(_ITEM_SEP)))


def pairs_text(t: PairTable) -> str:
    """``pairs_utf8`` as text."""
    return str(pairs_utf8(t), "utf-8")


def _json(doc: dict[str, object]) -> list[bytes | memoryview]:
    """One top-level key per line and one list item (host, pair, region) per line: still
    diffable, and json's C encoder (``indent`` falls back to pure Python, 2.6× slower). The
    text as UTF-8 blocks, written one after the other: the pairs alone are ~0.5 GB at 1,000
    hosts, never joined or copied."""

    def dumps(value: object) -> str:
        return json.dumps(value, allow_nan=False)

    parts: list[str | memoryview] = ["{\n"]
    for i, (key, value) in enumerate(doc.items()):
        parts.append(",\n" if i else "")
        if isinstance(value, _Items) and value.count:
            parts += [f" {dumps(key)}: [\n  ", value.utf8, "\n ]"]
        elif isinstance(value, _Items):
            parts.append(f" {dumps(key)}: []")
        elif isinstance(value, list) and value:
            parts += [f" {dumps(key)}: [\n  ", _ITEM_SEP.join(map(dumps, value)), "\n ]"]
        else:
            parts.append(f" {dumps(key)}: {dumps(value)}")
    parts.append("\n}\n")
    return [p.encode("utf-8") if isinstance(p, str) else p for p in parts]


def dump_anchors(anchors: Anchors) -> str:
    """The JSON text of ``anchors`` (schema ``probe.anchors/2``); its samples go to the sidecar
    ``write_anchors`` writes beside it."""
    return b"".join(_json(anchors_doc(anchors, sidecar_rows(anchors)))).decode("utf-8")


def write_anchors(path: Path, anchors: Anchors) -> None:
    """anchors.json at ``path`` and its samples sidecar beside it, the sidecar first: the JSON
    never points at a sidecar that is not there yet."""
    from concurrent.futures import ThreadPoolExecutor

    sidecar = sidecar_rows(anchors)
    with ThreadPoolExecutor(1) as pool:  # Parquet's writer leaves the GIL to the JSON's text
        encoded = pool.submit(encode_samples, sidecar.probes, sidecar.pairs, sidecar.network)
        blocks = _json(anchors_doc(anchors, sidecar))
        save(path.parent / SIDECAR, encoded.result())
    save(path, blocks)


# --------------------------------------------------------------------------- load


class _Json:
    """A decoded JSON value at a JSON path, read with the accessors of :mod:`probe.yamlsrc`.

    JSON has no lines once decoded, so errors are located at ``FILE: $.path``.
    """

    __slots__ = ("file", "path", "value")

    def __init__(self, value: object, file: str, path: str = "$") -> None:
        self.value, self.file, self.path = value, file, path

    def error(self, message: str) -> InputError:
        return InputError(message, where=f"{self.file}: {self.path}")

    def _wrong(self, expected: str) -> InputError:
        return self.error(f"expected {expected}, got {self.value!r}")

    def as_str(self) -> str:
        if not isinstance(self.value, str):
            raise self._wrong("a string")
        return self.value

    def as_int(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self._wrong("an integer")
        return self.value

    def as_float(self) -> float:
        """A finite number (an integer is one): ``1e999`` decodes to infinity."""
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self._wrong("a number")
        return float(v)

    def as_bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self._wrong("true or false")
        return self.value

    def as_list(self) -> list[_Json]:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {type(self.value).__name__}")
        return [_Json(v, self.file, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def as_mapping(self) -> _JsonMap:
        if not isinstance(self.value, dict):
            raise self.error(f"expected an object, got {type(self.value).__name__}")
        return _JsonMap(self.value, self.file, self.path)


class _JsonMap(_Json):
    """A JSON object. probe writes every key (``null`` when empty): a missing one is an error."""

    __slots__ = ()

    def require(self, key: str) -> _Json:
        path = f"{self.path}.{key}"
        if not isinstance(self.value, dict) or key not in self.value:
            raise _Json(None, self.file, path).error("missing key")
        return _Json(self.value[key], self.file, path)

    def get(self, key: str) -> _Json | None:
        """The value at ``key``, ``None`` when it is null."""
        node = self.require(key)
        return None if node.value is None else node

    def added(self, key: str) -> _Json | None:
        """A key added within the schema major: absent from older files, so absent is null."""
        if isinstance(self.value, dict) and key not in self.value:
            return None
        return self.get(key)

    def get_str(self, key: str) -> str | None:
        node = self.get(key)
        return None if node is None else node.as_str()

    def get_float(self, key: str) -> float | None:
        node = self.get(key)
        return None if node is None else node.as_float()

    def bw(self) -> Bandwidth:
        b = self.require("bw_mbps").as_mapping()
        return Bandwidth(forward_mbps=b.get_float("forward"), reverse_mbps=b.get_float("reverse"))


def _read_host(node: _Json) -> HostInfo:
    o = node.as_mapping()
    return HostInfo(
        name=o.require("name").as_str(),
        region=o.require("region").as_str(),
        zone=o.get_str("zone"),
        provider=o.get_str("provider"),
        measured=o.require("measured").as_bool(),
    )


def _rtt(o: _JsonMap, keys: tuple[str, ...]) -> tuple[float, ...] | None:
    rtt = o.get("rtt_ms")
    return None if rtt is None else tuple(rtt.as_mapping().require(k).as_float() for k in keys)


def _read_pair(node: _Json) -> PairAnchor:
    o = node.as_mapping()
    status_node = o.require("status")
    try:
        status = CellStatus(status_node.as_str())
    except ValueError:
        known = ", ".join(s.value for s in CellStatus)
        raise status_node.error(f"unknown status {status_node.value!r} (one of {known})") from None
    rtt = _rtt(o, ("min", "mean", "p50", "p90", "p99", "max"))
    if status is CellStatus.OK and rtt is None:
        raise o.require("rtt_ms").error("status is ok but rtt_ms is null")
    return PairAnchor(
        src=o.require("src").as_str(),
        dst=o.require("dst").as_str(),
        src_region=o.require("src_region").as_str(),
        dst_region=o.require("dst_region").as_str(),
        status=status,
        reason=o.get_str("reason"),
        rtt=None if rtt is None else RttAnchor(*rtt),
        rtt_mdev_ms=o.get_float("rtt_mdev_ms"),
        ipdv_ms=o.get_float("ipdv_ms"),
        pdv_p99_ms=o.get_float("pdv_p99_ms"),
        loss_pct=o.get_float("loss_pct"),
        sent=o.require("sent").as_int(),
        received=o.require("received").as_int(),
        bw=o.bw(),
        bw_status=o.get_str("bw_status"),
        bw_reason=o.get_str("bw_reason"),
        network=_added_str(o, "network"),
        address=_added_str(o, "address"),
        from_reverse=_added_flag(o, "from_reverse"),
        sender_cc=_added_str(o, "sender_cc"),
        receiver_cc=_added_str(o, "receiver_cc"),
    )


def _inline_samples(
    nodes: list[_Json], pairs: tuple[PairAnchor, ...]
) -> dict[tuple[str, str], Probes]:
    """A ``probe.anchors/1`` file's samples, per pair's ``rtt_samples_ms`` (required, may be
    null), by the direction probed."""
    out = {}
    for node, p in zip(nodes, pairs, strict=True):
        samples = node.as_mapping().get("rtt_samples_ms")
        if samples is not None:
            rtts = np.fromiter((v.as_float() for v in samples.as_list()), np.float64)
            if p.ok:
                out[p.probed] = Probes(rtts)
    return out


def _sidecar(top: _JsonMap, file: str) -> SidecarSamples:
    """The sidecar a ``probe.anchors/2`` file names: a plain file name, beside it."""
    o = top.require("samples").as_mapping()
    name_node = o.require("file")
    name = name_node.as_str()
    if not name or Path(name).name != name or name in (".", ".."):
        raise name_node.error(f"expected a file name beside the anchors file, got {name!r}")
    rows = o.require("rows")
    if rows.as_int() < 0:
        raise rows.error(f"expected a count, got {rows.value!r}")
    return SidecarSamples(Path(file).parent / name, rows.as_int())


def _added_str(o: _JsonMap, key: str) -> str | None:
    node = o.added(key)
    return None if node is None else node.as_str()


def _added_flag(o: _JsonMap, key: str) -> bool:
    """A flag written only when true: absent (older files, or false) is false."""
    node = o.added(key)
    return node is not None and node.as_bool()


def _count(o: _JsonMap, key: str) -> int | None:
    """A region count added within schema 1: older files lack it (None), a present one is read."""
    node = o.added(key)
    return None if node is None else node.as_int()


def _read_region(node: _Json) -> RegionAnchor:
    o = node.as_mapping()
    rtt = _rtt(o, ("p50", "p90", "p99", "mean"))
    bw_pairs = o.added("pairs_bw")
    bw_counts = bw_pairs.as_mapping() if bw_pairs is not None else None
    return RegionAnchor(
        src_region=o.require("src_region").as_str(),
        dst_region=o.require("dst_region").as_str(),
        pairs=o.require("pairs").as_int(),
        pairs_ok=o.require("pairs_ok").as_int(),
        rtt=None if rtt is None else RegionRtt(*rtt),
        ipdv_ms=o.get_float("ipdv_ms"),
        loss_pct=o.get_float("loss_pct"),
        bw=o.bw(),
        pairs_probed=_count(o, "pairs_probed"),
        pairs_ipdv=_count(o, "pairs_ipdv"),
        pairs_bw_forward=None if bw_counts is None else _count(bw_counts, "forward"),
        pairs_bw_reverse=None if bw_counts is None else _count(bw_counts, "reverse"),
        sent=_count(o, "sent"),
        received=_count(o, "received"),
    )


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object hook for ``json.loads``: a repeated key is an error, as in every probe input."""
    doc = dict(pairs)
    if len(doc) < len(pairs):
        repeated = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise ParseError(f"duplicate key {repeated!r} in one object")
    return doc


def parse_anchors(text: str, *, file: str = "anchors.json") -> Anchors:
    """Anchors from JSON text; ``file`` names the source in error messages, and a
    ``probe.anchors/2`` sidecar is read beside it (lazily: a missing one fails on first use)."""
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc.msg}", where=f"{file}:{exc.lineno}") from exc
    except ParseError as exc:  # a duplicate key
        raise ParseError(str(exc), where=file) from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ParseError(f"not JSON probe reads: {exc}", where=file) from None
    except RecursionError as exc:
        raise ParseError("not JSON: nested too deeply", where=file) from exc
    top = _Json(doc, file).as_mapping()
    schema = top.require("schema").as_str()
    m = _SCHEMA_RE.match(schema)
    if m is None or m.group(1) not in _READS:
        reads = " and ".join(f"probe.anchors/{v}" for v in _READS)
        raise InputError(f"anchors schema {schema!r} is not supported (this probe reads {reads})",
                         where=file)  # fmt: skip
    hosts = tuple(_read_host(v) for v in top.require("hosts").as_list())
    nodes = top.require("pairs").as_list()
    pairs = tuple(_read_pair(v) for v in nodes)
    regions = tuple(_read_region(v) for v in top.require("regions").as_list())
    names = {h.name for h in hosts}
    for i, p in enumerate(pairs):
        for end in (p.src, p.dst):
            if end not in names:
                where = f"{file}: $.pairs[{i}]"
                raise InputError(f"host {end!r} is not listed in $.hosts", where=where)
    samples = _inline_samples(nodes, pairs) if m.group(1) == "1" else _sidecar(top, file)
    implied = top.added("implied")
    left_out = None if implied is None else implied.as_mapping()
    return Anchors(
        run_id=top.require("run_id").as_str(),
        created_utc=top.require("created_utc").as_str(),
        probe_version=top.require("probe_version").as_str(),
        hosts=hosts,
        pairs=PairTable.of(pairs),
        regions=regions,
        samples=samples,
        implied=None
        if left_out is None
        else Implied(left_out.require("reason").as_str(), left_out.require("bw_reason").as_str()),
    )


def load_anchors(path: str | Path) -> Anchors:
    """Read ``anchors.json`` strictly: a wrong schema major or a missing key is an InputError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read anchors: {exc.strerror}", where=str(p)) from exc
    except UnicodeDecodeError as exc:
        raise ParseError("not UTF-8 text", where=str(p)) from exc
    return parse_anchors(text, file=str(p))
