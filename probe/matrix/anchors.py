"""The anchors file: what one run measured, reduced to what the calculator, groups and gate need.

``anchors.json`` is versioned (``"schema": "probe.anchors/1"``). Within a major version fields are
only ever added, so a reader ignores keys it does not know; a different major is refused. Every
pair is *ordered*: ``rtt_ms`` is the round trip measured from ``src``; ``bw_mbps.forward`` is the
receiver goodput ``src → dst`` in Mbit/s (10⁶ bit/s), ``reverse`` is ``dst → src``. A pair whose
``status`` is not ``ok`` carries no RTT (``all-lost`` keeps its loss of 100 %) and must never be
read as a good link.

Region rows roll up the pairs from ``src_region`` to ``dst_region``; ``probe.matrix.regions``
computes them and defines each figure (RTT and IPDV: medians over ok pairs; loss: pooled over every
probe sent; goodput: medians over the pairs measured), with the number of pairs each rests on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import InputError, ParseError
from probe.model import CellStatus

SCHEMA = "probe.anchors/1"
_SCHEMA_RE = re.compile(r"^probe\.anchors/(\d+)(?:\.\d+)?$")


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
class RegionRtt:
    """Median over the ok pairs of a region pair of each pair statistic, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Receiver goodput in Mbit/s (10⁶ bit/s); ``None`` when not measured."""

    forward_mbps: float | None = None
    reverse_mbps: float | None = None


@dataclass(frozen=True, slots=True)
class HostInfo:
    name: str
    region: str
    zone: str | None = None
    provider: str | None = None
    measured: bool = True


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
    rtt_samples_ms: tuple[float, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.status is CellStatus.OK and self.rtt is not None


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
class Anchors:
    """A whole anchors file. Lookups are indexed once at construction."""

    run_id: str
    created_utc: str
    probe_version: str
    hosts: tuple[HostInfo, ...]
    pairs: tuple[PairAnchor, ...]
    regions: tuple[RegionAnchor, ...]
    _pairs_by_key: dict[tuple[str, str], PairAnchor] = field(init=False, repr=False, compare=False)
    _hosts_by_name: dict[str, HostInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pairs_by_key", {(p.src, p.dst): p for p in self.pairs})
        object.__setattr__(self, "_hosts_by_name", {h.name: h for h in self.hosts})

    def pair(self, src: str, dst: str) -> PairAnchor | None:
        """The ordered pair ``src → dst``, or ``None`` if the run has no row for it."""
        return self._pairs_by_key.get((src, dst))

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
        seen = {p.src for p in self.pairs if p.ok} | {p.dst for p in self.pairs if p.ok}
        return tuple(sorted({h.region for h in self.hosts if h.name in seen}))


# --------------------------------------------------------------------------- dump


def _rtt_dict(r: RttAnchor | None) -> dict[str, float] | None:
    if r is None:
        return None
    return {"min": r.min_ms, "mean": r.mean_ms, "p50": r.p50_ms, "p90": r.p90_ms,
            "p99": r.p99_ms, "max": r.max_ms}  # fmt: skip


def _bw_dict(b: Bandwidth) -> dict[str, float | None]:
    return {"forward": b.forward_mbps, "reverse": b.reverse_mbps}


def _pair_dict(p: PairAnchor) -> dict[str, object]:
    return {
        "src": p.src, "dst": p.dst, "src_region": p.src_region, "dst_region": p.dst_region,
        "status": p.status.value, "reason": p.reason, "rtt_ms": _rtt_dict(p.rtt),
        "rtt_mdev_ms": p.rtt_mdev_ms, "ipdv_ms": p.ipdv_ms, "pdv_p99_ms": p.pdv_p99_ms,
        "loss_pct": p.loss_pct, "sent": p.sent, "received": p.received,
        "bw_mbps": _bw_dict(p.bw), "bw_status": p.bw_status, "bw_reason": p.bw_reason,
        "rtt_samples_ms": list(p.rtt_samples_ms) if p.rtt_samples_ms is not None else None,
    }  # fmt: skip


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


def dump_anchors(anchors: Anchors) -> str:
    """The JSON text of ``anchors`` (schema ``probe.anchors/1``); ``load_anchors`` reads it back."""
    doc = {
        "schema": SCHEMA,
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
        "pairs": [_pair_dict(p) for p in anchors.pairs],
        "regions": [_region_dict(r) for r in anchors.regions],
    }
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- load


class _Reader:
    """Typed access to decoded JSON; every error names the file and the JSON path."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, message: str) -> InputError:
        return InputError(f"{path}: {message}", where=self.file)

    def mapping(self, value: object, path: str) -> Mapping[str, object]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def array(self, value: object, path: str) -> list[object]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {type(value).__name__}")
        return value

    def items(self, top: Mapping[str, object], key: str) -> list[tuple[str, object]]:
        """``($.key[i], value)`` for each element of the top-level list ``key``."""
        values = self.array(self.key(top, key, "$"), f"$.{key}")
        return [(f"$.{key}[{i}]", v) for i, v in enumerate(values)]

    def key(self, obj: Mapping[str, object], key: str, path: str) -> object:
        if key not in obj:
            raise self.fail(f"{path}.{key}", "missing key")
        return obj[key]

    def text(self, obj: Mapping[str, object], key: str, path: str) -> str:
        v = self.key(obj, key, path)
        if not isinstance(v, str):
            raise self.fail(f"{path}.{key}", f"expected a string, got {v!r}")
        return v

    def opt_text(self, obj: Mapping[str, object], key: str, path: str) -> str | None:
        v = self.key(obj, key, path)
        return None if v is None else self.text(obj, key, path)

    def number(self, obj: Mapping[str, object], key: str, path: str) -> float:
        v = self.key(obj, key, path)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(f"{path}.{key}", f"expected a number, got {v!r}")
        return float(v)

    def opt_number(self, obj: Mapping[str, object], key: str, path: str) -> float | None:
        v = self.key(obj, key, path)
        return None if v is None else self.number(obj, key, path)

    def integer(self, obj: Mapping[str, object], key: str, path: str) -> int:
        v = self.key(obj, key, path)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(f"{path}.{key}", f"expected an integer, got {v!r}")
        return v

    def flag(self, obj: Mapping[str, object], key: str, path: str) -> bool:
        v = self.key(obj, key, path)
        if not isinstance(v, bool):
            raise self.fail(f"{path}.{key}", f"expected true or false, got {v!r}")
        return v

    def bw(self, obj: Mapping[str, object], path: str) -> Bandwidth:
        b = self.mapping(self.key(obj, "bw_mbps", path), f"{path}.bw_mbps")
        return Bandwidth(
            forward_mbps=self.opt_number(b, "forward", f"{path}.bw_mbps"),
            reverse_mbps=self.opt_number(b, "reverse", f"{path}.bw_mbps"),
        )


def _read_host(r: _Reader, value: object, path: str) -> HostInfo:
    o = r.mapping(value, path)
    return HostInfo(
        name=r.text(o, "name", path),
        region=r.text(o, "region", path),
        zone=r.opt_text(o, "zone", path),
        provider=r.opt_text(o, "provider", path),
        measured=r.flag(o, "measured", path),
    )


def _read_pair(r: _Reader, value: object, path: str) -> PairAnchor:
    o = r.mapping(value, path)
    raw_status = r.text(o, "status", path)
    try:
        status = CellStatus(raw_status)
    except ValueError:
        known = ", ".join(s.value for s in CellStatus)
        raise r.fail(f"{path}.status", f"unknown status {raw_status!r} (one of {known})") from None
    rtt_raw = r.key(o, "rtt_ms", path)
    rtt = None
    if rtt_raw is not None:
        ro, rp = r.mapping(rtt_raw, f"{path}.rtt_ms"), f"{path}.rtt_ms"
        rtt = RttAnchor(*(r.number(ro, k, rp) for k in ("min", "mean", "p50", "p90", "p99", "max")))
    if status is CellStatus.OK and rtt is None:
        raise r.fail(f"{path}.rtt_ms", "status is ok but rtt_ms is null")
    samples_raw = r.key(o, "rtt_samples_ms", path)
    samples = None
    if samples_raw is not None:
        items = r.array(samples_raw, f"{path}.rtt_samples_ms")
        sp = f"{path}.rtt_samples_ms"
        samples = tuple(r.number({"x": v}, "x", f"{sp}[{i}]") for i, v in enumerate(items))
    return PairAnchor(
        src=r.text(o, "src", path),
        dst=r.text(o, "dst", path),
        src_region=r.text(o, "src_region", path),
        dst_region=r.text(o, "dst_region", path),
        status=status,
        reason=r.opt_text(o, "reason", path),
        rtt=rtt,
        rtt_mdev_ms=r.opt_number(o, "rtt_mdev_ms", path),
        ipdv_ms=r.opt_number(o, "ipdv_ms", path),
        pdv_p99_ms=r.opt_number(o, "pdv_p99_ms", path),
        loss_pct=r.opt_number(o, "loss_pct", path),
        sent=r.integer(o, "sent", path),
        received=r.integer(o, "received", path),
        bw=r.bw(o, path),
        bw_status=r.opt_text(o, "bw_status", path),
        bw_reason=r.opt_text(o, "bw_reason", path),
        rtt_samples_ms=samples,
    )


def _count(r: _Reader, obj: Mapping[str, object], key: str, path: str) -> int | None:
    """A region count added within schema 1: older files lack it (None), a present one is read."""
    return None if obj.get(key) is None else r.integer(obj, key, path)


def _read_region(r: _Reader, value: object, path: str) -> RegionAnchor:
    o = r.mapping(value, path)
    rtt_raw = r.key(o, "rtt_ms", path)
    rtt = None
    if rtt_raw is not None:
        ro, rp = r.mapping(rtt_raw, f"{path}.rtt_ms"), f"{path}.rtt_ms"
        rtt = RegionRtt(*(r.number(ro, k, rp) for k in ("p50", "p90", "p99", "mean")))
    bp = f"{path}.pairs_bw"
    bw_pairs = {} if o.get("pairs_bw") is None else r.mapping(o["pairs_bw"], bp)
    return RegionAnchor(
        src_region=r.text(o, "src_region", path),
        dst_region=r.text(o, "dst_region", path),
        pairs=r.integer(o, "pairs", path),
        pairs_ok=r.integer(o, "pairs_ok", path),
        rtt=rtt,
        ipdv_ms=r.opt_number(o, "ipdv_ms", path),
        loss_pct=r.opt_number(o, "loss_pct", path),
        bw=r.bw(o, path),
        pairs_probed=_count(r, o, "pairs_probed", path),
        pairs_ipdv=_count(r, o, "pairs_ipdv", path),
        pairs_bw_forward=_count(r, bw_pairs, "forward", bp),
        pairs_bw_reverse=_count(r, bw_pairs, "reverse", bp),
        sent=_count(r, o, "sent", path),
        received=_count(r, o, "received", path),
    )


def parse_anchors(text: str, *, file: str = "anchors.json") -> Anchors:
    """Anchors from JSON text; ``file`` only names the source in error messages."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc.msg}", where=f"{file}:{exc.lineno}") from exc
    except RecursionError as exc:
        raise ParseError("not JSON: nested too deeply", where=file) from exc
    r = _Reader(file)
    top = r.mapping(doc, "$")
    schema = r.text(top, "schema", "$")
    m = _SCHEMA_RE.match(schema)
    if m is None or m.group(1) != "1":
        raise InputError(f"anchors schema {schema!r} is not supported (this probe reads {SCHEMA})",
                         where=file)  # fmt: skip
    hosts = tuple(_read_host(r, v, p) for p, v in r.items(top, "hosts"))
    pairs = tuple(_read_pair(r, v, p) for p, v in r.items(top, "pairs"))
    regions = tuple(_read_region(r, v, p) for p, v in r.items(top, "regions"))
    names = {h.name for h in hosts}
    for i, p in enumerate(pairs):
        for end in (p.src, p.dst):
            if end not in names:
                raise r.fail(f"$.pairs[{i}]", f"host {end!r} is not listed in $.hosts")
    return Anchors(
        run_id=r.text(top, "run_id", "$"),
        created_utc=r.text(top, "created_utc", "$"),
        probe_version=r.text(top, "probe_version", "$"),
        hosts=hosts,
        pairs=pairs,
        regions=regions,
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
