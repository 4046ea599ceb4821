"""Network-local groups: hosts that can share one model because every link between them is good.

A pair {a, b} is *good* when an RTT figure stands for each direction, the RTT (of the limits'
statistic) each way is within ``max_rtt_ms`` and the goodput each way is at least ``min_bw_bps``
(when a floor is set). A direction's figure is its own ok cell or, when that direction was never
attempted (no cell, not planned, not measurable, skipped), the reverse ok cell: a round trip is
one whichever end starts it (a ``from_reverse`` cell is ok for the same reason). A direction
measured and failed is never good. Groups are cliques of
the good graph.

Region labels are a hint, never a wall: groups are found across them. The hosts are split into
groups largest first (``probe.decide.cliques``): each group is a largest clique of the good graph
among the hosts not yet in a group, exact on components of up to ``EXACT_HOSTS`` hosts, greedy
beyond with the colouring bound saying how far from the best it may be. Among equally large
cliques the one spanning the fewest regions wins, then the lowest worst RTT. Every group is
verified to be a clique; a failure is a bug and raises.

Inside each group the stage order for K stages comes from ``scenarios.best_order``. When goodput
is missing on a link between members the group is *latency-only*: its order minimises RTT alone
and its figures are lower bounds (the transfer term is missing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from probe.decide.cliques import Clique, bitsets, components, largest_clique, nodes_of
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
from probe.model import CellStatus

Mask = NDArray[np.bool_]
Matrix = NDArray[np.float64]
#: Statuses of a direction nobody tried to measure: the reverse cell may stand for it.
NOT_ATTEMPTED = frozenset({CellStatus.NOT_PLANNED, CellStatus.NOT_MEASURABLE, CellStatus.SKIPPED})


@dataclass(frozen=True, slots=True)
class Group:
    members: tuple[str, ...]
    regions: tuple[str, ...]
    max_rtt_ms: float  # worst RTT (the limits' statistic) between two members, 0 alone
    min_bw_bps: float | None  # lowest goodput between two members; None alone or if unmeasured
    latency_only: bool  # goodput missing on a member link: order by RTT, figures lower bounds
    exact: bool  # proven a largest group among the hosts not in an earlier group
    size_bound: int  # no group among those hosts can be larger (== len(members) when exact)
    order: tuple[str, ...]  # best stage order, empty when the group is smaller than K
    decode: PipelineResult | None
    prefill: PipelineResult | None


def _directions(links: Links) -> tuple[Mask, Mask]:
    """Which directions have an RTT figure (own or reverse), and which only the reverse one."""
    own = ~np.isnan(links.cell_p50_ms)
    borrowed = ~own & own.T
    for i, j in np.argwhere(borrowed):  # few: only cells that are not ok while their reverse is
        cell = links.anchors.pair(links.hosts[i], links.hosts[j])
        borrowed[i, j] = cell is None or cell.status in NOT_ATTEMPTED
    return own | borrowed, borrowed


def one_way_pairs(links: Links) -> int:
    """Host pairs measured in one direction only, whose reverse cell stands for the other."""
    _, borrowed = _directions(links)
    return int(np.count_nonzero(borrowed))


def rtt_of(links: Links, limits: Limits) -> Matrix:
    """The limits' RTT statistic, worst of both directions, per pair (NaN when unknown)."""
    rtt = links.hop_p99_ms if limits.rtt_stat == "p99" else links.hop_p50_ms
    both: Matrix = np.fmax(rtt, rtt.T)
    return both


def good_pairs(links: Links, limits: Limits) -> Mask:
    """``[i, j]`` true when the pair satisfies the limits in both directions."""
    known, _ = _directions(links)
    with np.errstate(invalid="ignore"):
        good: Mask = known & known.T & (rtt_of(links, limits) <= limits.max_rtt_ms)
        if limits.min_bw_bps is not None:
            both_bw = np.fmin(links.bw_bps, links.bw_bps.T)
            good &= ~np.isnan(links.bw_bps) & ~np.isnan(links.bw_bps.T)
            good &= both_bw >= limits.min_bw_bps
    np.fill_diagonal(good, False)
    return good


def _worst(rtt: Matrix, members: Sequence[int]) -> float:
    if len(members) < 2:
        return 0.0
    idx = np.asarray(members, dtype=np.intp)
    return float(np.nanmax(rtt[np.ix_(idx, idx)]))


def partition(links: Links, good: Mask, rtt: Matrix) -> list[Clique]:
    """The groups of the module docstring as host indices, largest first."""
    n = len(links.hosts)
    rows = bitsets(good)
    region = [links.anchors.host(h).region for h in links.hosts]

    def prefer(c: Sequence[int]) -> tuple[object, ...]:
        return len({region[i] for i in c}), _worst(rtt, c), sorted(links.hosts[i] for i in c)

    out: list[Clique] = []
    work = [(1 << n) - 1] if n else []
    while work:
        for comp in components(rows, work.pop()):
            nodes = list(nodes_of(comp))
            if len(nodes) == 1:
                out.append(Clique((nodes[0],), True, 1))
                continue
            degree = good[np.ix_(nodes, nodes)].sum(axis=1)
            top: dict[str, int] = {}  # seeds: the best-connected host overall and per region
            for k in np.argsort(-degree, kind="stable"):
                top.setdefault(region[nodes[k]], nodes[k])
            seeds = list(dict.fromkeys([nodes[int(np.argmax(degree))], *top.values()]))
            found = largest_clique(good, rows, comp, seeds, rtt, prefer)
            out.append(found)
            rest = comp & ~sum(1 << i for i in found.nodes)
            if rest:
                work.append(rest)
    for c in out:
        gi = np.asarray(c.nodes, dtype=np.intp)
        if not (good[np.ix_(gi, gi)] | np.eye(len(gi), dtype=bool)).all():
            raise AssertionError("group is not a clique of good pairs")  # a bug, not input
    return sorted(out, key=lambda c: (-len(c.nodes), min(links.hosts[i] for i in c.nodes)))


def _cost_ms(links: Links, members: list[int], payload_bytes: float, rtt_only: bool) -> Matrix:
    if not rtt_only:
        return links.cost_ms(payload_bytes, rows=members)
    idx = np.asarray(members, dtype=np.intp)
    cost: Matrix = links.hop_p50_ms[np.ix_(idx, idx)] / 2.0
    cost[np.isnan(cost)] = np.inf
    np.fill_diagonal(cost, np.inf)
    return cost


def _figures(
    links: Links, members: list[int], stages: int, w: Workload, rtt_only: bool
) -> tuple[tuple[str, ...], PipelineResult | None, PipelineResult | None]:
    if len(members) < stages or stages < 2:
        return (), None, None
    cost = _cost_ms(links, members, w.activation_bytes(1, 1), rtt_only)
    order, total = best_order(cost, stages, w.ring)
    if not order or math.isinf(total):
        return (), None, None
    path = tuple(links.hosts[members[i]] for i in order)
    hops = links.hops(path, w.ring)
    return path, decode(hops, w, trials=0), prefill(hops, w, trials=0)


def find_groups(links: Links, limits: Limits, stages: int, w: Workload) -> list[Group]:
    """Network-local groups with their best K-stage order and decode / prefill figures."""
    good = good_pairs(links, limits)
    rtt = rtt_of(links, limits)
    out = []
    for found in partition(links, good, rtt):
        members = list(found.nodes)
        idx = np.asarray(members, dtype=np.intp)
        bw = links.bw_bps[np.ix_(idx, idx)][~np.eye(len(members), dtype=bool)]
        latency_only = bool(np.isnan(bw).any())
        order, dec, pre = _figures(links, members, stages, w, latency_only)
        out.append(
            Group(
                members=tuple(links.hosts[i] for i in members),
                regions=tuple(sorted({links.anchors.host(links.hosts[i]).region for i in members})),
                max_rtt_ms=_worst(rtt, members),
                min_bw_bps=None if bw.size == 0 or latency_only else float(bw.min()),
                latency_only=latency_only,
                exact=found.exact,
                size_bound=found.bound,
                order=order,
                decode=dec,
                prefill=pre,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Grouping:
    """The ``probe groups`` use case's answer: the workload judged, the limits applied (the
    goodput floor is dropped when the run measured no goodput), the groups and what to know."""

    workload: Workload
    limits: Limits
    groups: tuple[Group, ...]
    notes: tuple[str, ...]


def group_run(anchors: Anchors, limits: Limits, pipeline: PipelineOptions) -> Grouping:
    """Network-local groups of one run, each with its best order for the pipeline's stages."""
    w = Workload.of(pipeline)
    links = Links.from_anchors(anchors)
    notes = []
    if limits.min_bw_bps is not None and np.isnan(links.bw_bps).all():
        notes.append(
            f"bandwidth was not measured in run {anchors.run_id}: the goodput floor "
            f"({limits.min_bw_bps / 1e6:g} Mbit/s) is not applied, groups are formed on RTT alone"
        )
        limits = Limits(limits.max_rtt_ms, None, limits.rtt_stat)
    one_way = one_way_pairs(links)
    if one_way:
        notes.append(
            f"{one_way} host pair(s) measured in one direction only: the reverse cell stands "
            "for the missing direction"
        )
    found = find_groups(links, limits, pipeline.stages, w)
    blind = sum(1 for g in found if g.latency_only)
    if blind:
        notes.append(
            f"bandwidth was not measured between the members of {blind} group(s): their stage "
            "order is by RTT alone and their figures (≥) are lower bounds"
        )
    return Grouping(w, limits, tuple(found), tuple(notes))
