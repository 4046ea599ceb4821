"""The region roll-up: a run's ordered pairs → one row per region pair, one definition per figure.

Every view of a region pair reads these rows (``probe show --by region``, the region rows of
anchors.json and so the calculator's and the gate's region hops, the report, ``probe diff``), so
they cannot disagree. Over the ordered pairs from ``src_region`` to ``dst_region``:

- RTT p50 / p90 / p99 / mean: the median over the ``pairs_ok`` ok pairs of each pair's own
  figure. A median of pairs is robust to one bad pair, and a pooled p99 would be mostly the tail
  of whichever pair sent the most probes.
- IPDV (jitter): the median over the ``pairs_ipdv`` ok pairs that have one (two replies or more).
- loss: pooled, (``sent`` − ``received``) / ``sent`` over every pair. A pair weighs by the probes
  it sent (the ``pairs_probed`` pairs), one that sent none weighs nothing, and an all-lost pair
  counts in full: a median of per-pair loss would read 0 % with a dead pair among good ones.
- goodput forward / reverse: the median over the ``pairs_bw_forward`` / ``pairs_bw_reverse``
  pairs with a measured goodput in that direction.

A figure that rests on no pair is None, never 0. Pure: no pandas, no files.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from probe.errors import InputError
from probe.matrix.anchors import Bandwidth, PairAnchor, RegionAnchor, RegionRtt


def roll_up(pairs: Iterable[PairAnchor]) -> tuple[RegionAnchor, ...]:
    """One row per region pair that has pairs, sorted by (source region, destination region)."""
    groups: dict[tuple[str, str], list[PairAnchor]] = {}
    for p in pairs:
        groups.setdefault((p.src_region, p.dst_region), []).append(p)
    return tuple(region_row(src, dst, group) for (src, dst), group in sorted(groups.items()))


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def region_row(src_region: str, dst_region: str, pairs: Sequence[PairAnchor]) -> RegionAnchor:
    """The row of the ordered ``pairs`` from ``src_region`` to ``dst_region``."""
    ok = [p.rtt for p in pairs if p.rtt is not None and p.ok]
    ipdv = [p.ipdv_ms for p in pairs if p.ipdv_ms is not None and p.ok]
    forward = [p.bw.forward_mbps for p in pairs if p.bw.forward_mbps is not None]
    reverse = [p.bw.reverse_mbps for p in pairs if p.bw.reverse_mbps is not None]
    sent = sum(p.sent for p in pairs)
    received = sum(p.received for p in pairs)
    rtt = (
        RegionRtt(
            p50_ms=statistics.median(r.p50_ms for r in ok),
            p90_ms=statistics.median(r.p90_ms for r in ok),
            p99_ms=statistics.median(r.p99_ms for r in ok),
            mean_ms=statistics.median(r.mean_ms for r in ok),
        )
        if ok
        else None
    )
    return RegionAnchor(
        src_region=src_region,
        dst_region=dst_region,
        pairs=len(pairs),
        pairs_ok=len(ok),
        rtt=rtt,
        ipdv_ms=_median(ipdv),
        loss_pct=100.0 * (sent - received) / sent if sent else None,
        bw=Bandwidth(forward_mbps=_median(forward), reverse_mbps=_median(reverse)),
        pairs_probed=sum(1 for p in pairs if p.sent),
        pairs_ipdv=len(ipdv),
        pairs_bw_forward=len(forward),
        pairs_bw_reverse=len(reverse),
        sent=sent,
        received=received,
    )


# --------------------------------------------------------------------------- one figure


@dataclass(frozen=True, slots=True)
class Figure:
    """How one figure of a row is read: its value, the pairs it rests on, its definition.

    ``pairs`` is None only for a row read from an anchors file written before probe recorded it.
    """

    definition: str
    value: Callable[[RegionAnchor], float | None]
    pairs: Callable[[RegionAnchor], int | None]


def _rtt(stat: Callable[[RegionRtt], float]) -> Figure:
    return Figure(
        "median over ok pairs",
        lambda row: None if row.rtt is None else stat(row.rtt),
        lambda row: row.pairs_ok,
    )


_FORWARD = Figure(
    "median over pairs with a goodput",
    lambda row: row.bw.forward_mbps,
    lambda row: row.pairs_bw_forward,
)

#: The figures of a row by matrix column name (``bw_mbps`` is the forward goodput, as in grids).
FIGURES: Mapping[str, Figure] = {
    "rtt_p50_ms": _rtt(lambda rtt: rtt.p50_ms),
    "rtt_p90_ms": _rtt(lambda rtt: rtt.p90_ms),
    "rtt_p99_ms": _rtt(lambda rtt: rtt.p99_ms),
    "rtt_mean_ms": _rtt(lambda rtt: rtt.mean_ms),
    "ipdv_ms": Figure("median over ok pairs", lambda row: row.ipdv_ms, lambda row: row.pairs_ipdv),
    "loss_pct": Figure(
        "pooled: probes lost / probes sent", lambda row: row.loss_pct, lambda row: row.pairs_probed
    ),
    "bw_mbps": _FORWARD,
    "bw_fwd_mbps": _FORWARD,
    "bw_rev_mbps": Figure(
        "median over pairs with a goodput",
        lambda row: row.bw.reverse_mbps,
        lambda row: row.pairs_bw_reverse,
    ),
}


def figure(metric: str) -> Figure:
    """The figure named ``metric``; any other name is an InputError listing the choices."""
    try:
        return FIGURES[metric]
    except KeyError:
        raise InputError(
            f"no region roll-up of {metric!r}; choose one of {', '.join(FIGURES)}"
        ) from None


@dataclass(frozen=True, slots=True)
class RegionFigure:
    """One figure of one region pair: ``value`` rests on ``measured`` of its ``pairs`` pairs."""

    src_region: str
    dst_region: str
    value: float | None
    measured: int | None
    pairs: int


def figures(rows: Iterable[RegionAnchor], metric: str) -> tuple[RegionFigure, ...]:
    """The figure ``metric`` of each row (``show --by region``)."""
    f = figure(metric)
    return tuple(
        RegionFigure(r.src_region, r.dst_region, f.value(r), f.pairs(r), r.pairs) for r in rows
    )
