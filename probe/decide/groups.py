"""Network-local groups: hosts that can share one model because every link between them is good.

A pair {a, b} is *good* when both ordered cells ``a → b`` and ``b → a`` are ok, the RTT of each is
within ``max_rtt_ms`` and the goodput each way is at least ``min_bw_bps`` (when a floor is set).
An unmeasured, failed or ``not-measurable`` cell is never good; a ``from_reverse`` one is ok (the
same round trip, measured from the other end). Groups are cliques of the good graph.

Algorithm (maximum cliques are NP-hard; this is polynomial, O(N²) numpy work per pass):

1. **Region-seeded growth.** For each region (largest first), among its unassigned hosts take
   the one with the most good links as seed; grow a clique by repeatedly adding the candidate
   (adjacent to every member) whose worst RTT to the members is smallest; emit it; repeat
   until the region is used up.
2. **Merging.** While two groups are joined by good links between *all* their hosts, merge the
   pair with the lowest mean RTT between them (so regions close enough for the limits unite).
3. **Verification.** Every group is checked to be a clique; a failure is a bug and raises.

Guarantees: every group satisfies the limits in both directions for every pair; the groups
partition the measured hosts; a region whose hosts are all pairwise good is never split; no two
groups could be merged into a larger valid group. Not guaranteed: the largest possible clique.
A single slow link inside a region therefore splits it: one of its two ends leaves the group.

Inside each group the stage order for K stages comes from ``calc.scenarios.best_order`` (exact for
K ≤ 8 over groups of ≤ 12 hosts, greedy selection with an exact re-order otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from probe.decide.options import Limits, PipelineOptions
from probe.decide.scenarios import (
    Links,
    PipelineResult,
    Workload,
    best_order,
    decode,
    prefill,
)
from probe.matrix.anchors import Anchors

Mask = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Group:
    hosts: tuple[str, ...]
    regions: tuple[str, ...]
    max_rtt_ms: float  # worst RTT between two members (0 for a single host)
    min_bw_bps: float | None  # lowest goodput between two members, None if unknown or single
    order: tuple[str, ...]  # best stage order, empty when the group is smaller than K
    decode: PipelineResult | None
    prefill: PipelineResult | None


def good_pairs(links: Links, limits: Limits) -> Mask:
    """``[i, j]`` true when the pair satisfies the limits in both directions."""
    own = links.cell_p50_ms
    rtt = links.hop_p99_ms if limits.rtt_stat == "p99" else links.hop_p50_ms
    with np.errstate(invalid="ignore"):
        both_rtt = np.fmax(rtt, rtt.T)  # NaN only when both are NaN; the own-cell test covers it
        good: Mask = ~np.isnan(own) & ~np.isnan(own.T) & (both_rtt <= limits.max_rtt_ms)
        if limits.min_bw_bps is not None:
            both_bw = np.fmin(links.bw_bps, links.bw_bps.T)
            good &= ~np.isnan(links.bw_bps) & ~np.isnan(links.bw_bps.T)
            good &= both_bw >= limits.min_bw_bps
    np.fill_diagonal(good, False)
    return good


def _grow(good: Mask, rtt: NDArray[np.float64], pool: NDArray[np.intp]) -> list[int]:
    """One greedy clique inside ``pool``: seed of highest degree, then the closest candidate."""
    sub = good[np.ix_(pool, pool)]
    seed = int(np.argmax(sub.sum(axis=1)))
    members = [seed]
    candidates = sub[seed].copy()
    worst = rtt[pool[seed], pool].copy()
    while candidates.any():
        j = int(np.argmin(np.where(candidates, worst, np.inf)))
        members.append(j)
        candidates &= sub[j]
        worst = np.fmax(worst, rtt[pool[j], pool])
    return [int(pool[m]) for m in members]


def partition(links: Links, good: Mask) -> list[list[int]]:
    """Steps 1–3 of the module docstring; host indices, largest group first."""
    n = len(links.hosts)
    rtt = np.fmax(links.hop_p50_ms, links.hop_p50_ms.T)
    region_of = [links.anchors.host(h).region for h in links.hosts]
    by_region: dict[str, list[int]] = {}
    for i, r in enumerate(region_of):
        by_region.setdefault(r, []).append(i)
    groups: list[list[int]] = []
    for _, members in sorted(by_region.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        pool = np.asarray(members, dtype=np.intp)
        while pool.size:
            grown = _grow(good, rtt, pool)
            groups.append(grown)
            pool = pool[~np.isin(pool, grown)]
    groups = _merge(groups, good, rtt, n)
    for g in groups:
        gi = np.asarray(g, dtype=np.intp)
        sub = good[np.ix_(gi, gi)]
        if not (sub | np.eye(len(g), dtype=bool)).all():
            raise AssertionError("group is not a clique of good pairs")  # a bug, not input
    return sorted(groups, key=lambda g: (-len(g), min(links.hosts[i] for i in g)))


def _merge(
    groups: list[list[int]], good: Mask, rtt: NDArray[np.float64], n: int
) -> list[list[int]]:
    label = np.empty(n, dtype=np.intp)
    while True:
        for k, g in enumerate(groups):
            label[g] = k
        best: tuple[float, int, int] | None = None
        sizes = np.bincount(label, minlength=len(groups))
        for a, g in enumerate(groups):
            links_to = np.bincount(label, weights=good[g].sum(axis=0), minlength=len(groups))
            full = np.flatnonzero(links_to == sizes * len(g))
            for b in full[full > a]:
                others = np.flatnonzero(label == b)
                mean = float(np.nanmean(rtt[np.ix_(np.asarray(g, dtype=np.intp), others)]))
                if best is None or mean < best[0]:
                    best = (mean, a, int(b))
        if best is None:
            return groups
        _, a, b = best
        groups[a] = groups[a] + groups[b]
        del groups[b]


def _figures(
    links: Links, members: list[int], stages: int, w: Workload
) -> tuple[tuple[str, ...], PipelineResult | None, PipelineResult | None]:
    if len(members) < stages or stages < 2:
        return (), None, None
    cost = links.cost_ms(w.activation_bytes(1, 1), rows=members)
    order, total = best_order(cost, stages, w.ring)
    if not order or math.isinf(total):
        return (), None, None
    path = tuple(links.hosts[members[i]] for i in order)
    hops = links.hops(path, w.ring)
    return path, decode(hops, w, trials=0), prefill(hops, w, trials=0)


def find_groups(links: Links, limits: Limits, stages: int, w: Workload) -> list[Group]:
    """Network-local groups with their best K-stage order and decode / prefill figures."""
    good = good_pairs(links, limits)
    out = []
    for members in partition(links, good):
        idx = np.asarray(members)
        rtt = np.fmax(links.hop_p50_ms, links.hop_p50_ms.T)[np.ix_(idx, idx)]
        bw = links.bw_bps[np.ix_(idx, idx)]
        off = ~np.eye(len(members), dtype=bool)
        bw_off = bw[off]
        order, dec, pre = _figures(links, members, stages, w)
        out.append(
            Group(
                hosts=tuple(links.hosts[i] for i in members),
                regions=tuple(sorted({links.anchors.host(links.hosts[i]).region for i in members})),
                max_rtt_ms=float(rtt[off].max()) if len(members) > 1 else 0.0,
                min_bw_bps=None
                if bw_off.size == 0 or np.isnan(bw_off).any()
                else float(bw_off.min()),
                order=order,
                decode=dec,
                prefill=pre,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Grouping:
    """The ``probe groups`` use case's answer: the workload judged, and the groups found."""

    workload: Workload
    groups: tuple[Group, ...]


def group_run(anchors: Anchors, limits: Limits, pipeline: PipelineOptions) -> Grouping:
    """Network-local groups of one run, each with its best order for the pipeline's stages."""
    w = Workload.of(pipeline)
    found = find_groups(Links.from_anchors(anchors), limits, pipeline.stages, w)
    return Grouping(w, tuple(found))
