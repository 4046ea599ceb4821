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

**Spread.** A median of pairs hides a region whose pairs split into clusters (eu with one
residential host: half the eu→eu pairs near 0.5 ms, half near 16 ms, and a p50 of 8 ms that no
pair has). ``spread`` gives the range of the pairs' own figures and flags such a split
(``multimodal``); ``median_interval`` says how far the median of the pairs could move without any
pair changing beyond its noise, which ``probe diff`` uses to judge region rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from probe.errors import InputError
from probe.matrix.anchors import Bandwidth, PairAnchor, RegionAnchor, RegionRtt
from probe.stats import quantile_interval


def roll_up(
    pairs: Iterable[PairAnchor], sizes: Mapping[tuple[str, str], int] | None = None
) -> tuple[RegionAnchor, ...]:
    """One row per region pair that has pairs, sorted by (source region, destination region).

    ``sizes``: each region pair's ordered pairs of measured hosts (``matrix.implied``), when
    ``pairs`` leaves out the implied ones of a sampled plan: a row's ``pairs`` counts them, and
    a region pair all of whose pairs are implied still has its row."""
    groups: dict[tuple[str, str], list[PairAnchor]] = {key: [] for key in sizes or {}}
    for p in pairs:
        groups.setdefault((p.src_region, p.dst_region), []).append(p)
    return tuple(
        region_row(src, dst, group, None if sizes is None else sizes.get((src, dst)))
        for (src, dst), group in sorted(groups.items())
    )


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def region_row(
    src_region: str, dst_region: str, pairs: Sequence[PairAnchor], size: int | None = None
) -> RegionAnchor:
    """The row of the ordered ``pairs`` from ``src_region`` to ``dst_region`` (``size`` of
    them, when implied ones are left out)."""
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
        pairs=len(pairs) if size is None else size,
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


# --------------------------------------------------------------------------- spread

#: A split between two clusters of pair figures must be at least this wide, and this share of the
#: upper cluster's lowest figure, to be a second mode: LAN pairs 0.4 vs 1.2 ms are one mode.
MODE_GAP_MS = 1.0
MODE_GAP_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Spread:
    """The range of one figure over a region pair's ok pairs (each pair's own figure, e.g. its
    p50), and whether those pairs split into two clusters the median sits between."""

    low_ms: float
    high_ms: float
    pairs: int
    multimodal: bool


def spread(values: Sequence[float]) -> Spread | None:
    """The spread of the pairs' ``values``; None without any.

    Multi-modal: sorted, the values' widest gap between neighbours is at least ``MODE_GAP_MS``
    and ``MODE_GAP_SHARE`` of the value above it, and more than twice as wide as either side's
    own range: two tight clusters far apart, not one wide one.
    """
    if not values:
        return None
    ranked = sorted(values)
    split = False
    if len(ranked) >= 2:
        i = max(range(len(ranked) - 1), key=lambda k: ranked[k + 1] - ranked[k])
        gap = ranked[i + 1] - ranked[i]
        widths = (ranked[i] - ranked[0], ranked[-1] - ranked[i + 1])
        split = (
            gap >= MODE_GAP_MS and gap >= MODE_GAP_SHARE * ranked[i + 1] and gap > 2 * max(widths)
        )
    return Spread(ranked[0], ranked[-1], len(ranked), split)


def p50_spreads(pairs: Iterable[PairAnchor]) -> dict[tuple[str, str], Spread]:
    """The spread of the ok pairs' RTT p50 per (source region, destination region)."""
    values: dict[tuple[str, str], list[float]] = {}
    for p in pairs:
        if p.rtt is not None and p.ok:
            values.setdefault((p.src_region, p.dst_region), []).append(p.rtt.p50_ms)
    return {key: s for key, v in values.items() if (s := spread(v)) is not None}


#: Fewer pairs than this have no distribution-free 95 % interval for their median (½⁵ > 2.5 %).
MEDIAN_INTERVAL_PAIRS = 6


def median_interval(
    values: Sequence[float], bounds: Sequence[tuple[float | None, float | None]]
) -> tuple[float | None, float | None]:
    """A 95 % interval of the median of the pairs' ``values`` (None: unbounded on that side).

    From ``MEDIAN_INTERVAL_PAIRS`` pairs: the order-statistic interval of a median over the
    pairs' values (``probe.stats.quantile_ranks``), as wide as the clusters of a multi-modal
    region. With fewer pairs, where that does not exist: the envelope of the pairs' own
    intervals ``bounds`` (lowest lower bound, highest upper bound), as the median lies between
    its pairs.
    """
    if not values:
        return None, None
    if len(values) >= MEDIAN_INTERVAL_PAIRS:
        return quantile_interval(sorted(values), 50)
    lows = [lo for lo, _ in bounds]
    highs = [hi for _, hi in bounds]
    return (
        None if not lows or None in lows else min(lo for lo in lows if lo is not None),
        None if not highs or None in highs else max(hi for hi in highs if hi is not None),
    )
