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

A figure that rests on no pair is None, never 0. Pure: no pandas, no files; numpy over the pairs'
columns (``PairTable``), the same floats as ``statistics.median`` over the pairs one by one.

**Spread.** A median of pairs hides a region whose pairs split into clusters (eu with one
residential host: half the eu→eu pairs near 0.5 ms, half near 16 ms, and a p50 of 8 ms that no
pair has). ``spread`` gives the range of the pairs' own figures and flags such a split
(``multimodal``); ``median_interval`` says how far the median of the pairs could move without any
pair changing beyond its noise, which ``probe diff`` uses to judge region rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from probe.errors import InputError
from probe.matrix.anchors import RegionAnchor, RegionRtt
from probe.matrix.pairs import RTT_FIELDS, Bandwidth, PairAnchor, PairTable
from probe.stats import quantile_interval


def roll_up(
    pairs: PairTable | Iterable[PairAnchor], sizes: Mapping[tuple[str, str], int] | None = None
) -> tuple[RegionAnchor, ...]:
    """One row per region pair that has pairs, sorted by (source region, destination region).

    ``sizes``: each region pair's ordered pairs of measured hosts (``matrix.implied``), when
    ``pairs`` leaves out the implied ones of a sampled plan: a row's ``pairs`` counts them, and
    a region pair all of whose pairs are implied still has its row."""
    t = pairs if isinstance(pairs, PairTable) else PairTable.of(pairs)
    ok, ipdv = t.ok, t.floats["ipdv_ms"]
    fwd, rev = t.floats["bw_fwd_mbps"], t.floats["bw_rev_mbps"]
    rtt = {name: t.rtt_ms[:, RTT_FIELDS.index(name)] for name in ("p50", "p90", "p99", "mean")}
    groups = dict(_groups(t))
    none = np.empty(0, np.intp)
    rows = []
    for src, dst in sorted(groups.keys() | (sizes or {}).keys()):
        at = groups.get((src, dst), none)
        on = ok[at]
        sent, received = int(t.sent[at].sum()), int(t.received[at].sum())
        ipdv_at = at[on & ~np.isnan(ipdv[at])]
        forward = fwd[at][~np.isnan(fwd[at])]
        reverse = rev[at][~np.isnan(rev[at])]
        medians = {k: _median(v[at[on]]) for k, v in rtt.items()}
        rows.append(
            RegionAnchor(
                src_region=src,
                dst_region=dst,
                pairs=len(at) if sizes is None else sizes.get((src, dst), len(at)),
                pairs_ok=int(on.sum()),
                rtt=RegionRtt(**{f"{k}_ms": v for k, v in medians.items() if v is not None})
                if on.any()
                else None,
                ipdv_ms=_median(ipdv[ipdv_at]),
                loss_pct=100.0 * (sent - received) / sent if sent else None,
                bw=Bandwidth(forward_mbps=_median(forward), reverse_mbps=_median(reverse)),
                pairs_probed=int((t.sent[at] != 0).sum()),
                pairs_ipdv=len(ipdv_at),
                pairs_bw_forward=len(forward),
                pairs_bw_reverse=len(reverse),
                sent=sent,
                received=received,
            )
        )
    return tuple(rows)


def _groups(t: PairTable) -> list[tuple[tuple[str, str], NDArray[np.intp]]]:
    """The rows of each (source region, destination region), sorted; rows in table order."""
    key, names = t.region_keys()
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(len(names) + 1)).tolist()
    return [(name, order[bounds[k] : bounds[k + 1]]) for k, name in enumerate(names)]


def _median(values: NDArray[np.float64]) -> float | None:
    """``statistics.median`` of ``values``, the same float: the middle one, or the mean of the
    two middle ones as Python computes it."""
    n = len(values)
    if not n:
        return None
    ranked = np.sort(values)
    if n % 2:
        return float(ranked[n // 2])
    return (float(ranked[n // 2 - 1]) + float(ranked[n // 2])) / 2


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


def spread(values: Sequence[float] | NDArray[np.float64]) -> Spread | None:
    """The spread of the pairs' ``values``; None without any.

    Multi-modal: sorted, the values' widest gap between neighbours (the first, if several) is
    at least ``MODE_GAP_MS`` and ``MODE_GAP_SHARE`` of the value above it, and more than twice
    as wide as either side's own range: two tight clusters far apart, not one wide one.
    """
    if not len(values):
        return None
    ranked = np.sort(np.asarray(values, np.float64)).tolist()
    split = False
    if len(ranked) >= 2:
        i = int(np.argmax(np.diff(ranked)))
        gap = ranked[i + 1] - ranked[i]
        widths = (ranked[i] - ranked[0], ranked[-1] - ranked[i + 1])
        split = (
            gap >= MODE_GAP_MS and gap >= MODE_GAP_SHARE * ranked[i + 1] and gap > 2 * max(widths)
        )
    return Spread(ranked[0], ranked[-1], len(ranked), split)


def p50_spreads(pairs: PairTable | Iterable[PairAnchor]) -> dict[tuple[str, str], Spread]:
    """The spread of the ok pairs' RTT p50 per (source region, destination region) that has
    one, in the order of their first ok pair."""
    t = pairs if isinstance(pairs, PairTable) else PairTable.of(pairs)
    ok, p50 = t.ok, t.rtt_ms[:, RTT_FIELDS.index("p50")]
    found = []
    for key, at in _groups(t):
        on = at[ok[at]]
        if len(on) and (s := spread(p50[on])) is not None:
            found.append((int(on[0]), key, s))
    return {key: s for _, key, s in sorted(found, key=lambda x: x[0])}


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
