"""Pipeline fitness without a policy: which hosts can serve a pipeline stage, and the best
stage orders for 2, 4 and 8 stages among those that can.

Per host, from what the run measured (RTT is a round trip, so each peer's figure is the worse
of the two directions, ``groups.rtt_of``):

- *residential-like*: its own last mile adds to every path. Compared peer by peer with the
  other hosts of its region (the same peer from a sibling), the median excess is at least
  ``RESIDENTIAL_EXCESS_MS``; a ratio would flag cross-zone cloud hosts (0.5 vs 2 ms), an
  absolute excess does not. A host with no measured sibling cannot be judged and is not flagged;
- *lossy*: the probes of its ok cells, pooled, lose more than ``LOSSY_PCT`` with 95 % confidence
  (the Wilson interval's low end): one lossy path among many is the path's, not the host's, and
  an all-lost cell is a path failure (the hints name it);
- *asymmetric*: the median over peers of goodput sent / goodput received is below
  ``1 / ASYMMETRY`` or above ``ASYMMETRY`` (ingress shaping, a half-duplex last mile);
- *inbound-restricted*: some cell toward it could be measured only from its end
  (``from_reverse``), not at all (``not-measurable``) or had its iperf3 port blocked (NAT or
  a firewall: another stage cannot dial it).

Fitness: *unfit* when residential-like, lossy or without any RTT measured (down); *caution*
when asymmetric or inbound-restricted (usable, with the stage order or connection direction
chosen for it); *fit* otherwise. Missing goodput is no flag: figures over it are lower bounds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from probe.decide.options import PipelineOptions
from probe.decide.scenarios import Links, PipelineResult, Workload, decode, place, prefill
from probe.errors import ProbeError
from probe.matrix.anchors import Anchors
from probe.matrix.pairs import Codes
from probe.model import CellStatus
from probe.stats import wilson

RESIDENTIAL_EXCESS_MS = 5.0  # a home last mile adds 5–40 ms; cloud cross-zone hops add < 3
LOSSY_PCT = 1.0
ASYMMETRY = 2.0
STAGE_COUNTS = (2, 4, 8)
#: Cell statuses toward a host saying another host cannot reach it.
_REFUSED = frozenset({CellStatus.NOT_MEASURABLE.value, CellStatus.BLOCKED.value})


class Fitness(StrEnum):
    FIT = "fit"
    CAUTION = "caution"
    UNFIT = "unfit"


class Flag(StrEnum):
    RESIDENTIAL = "residential-like"
    LOSSY = "lossy"
    ASYMMETRIC = "asymmetric"
    INBOUND = "inbound-restricted"
    UNMEASURED = "no RTT"


_UNFIT = frozenset({Flag.RESIDENTIAL, Flag.LOSSY, Flag.UNMEASURED})


@dataclass(frozen=True, slots=True)
class HostFitness:
    """One host's egress/ingress figures (medians over its peers), flags and verdict."""

    host: str
    region: str
    rtt_region_p50_ms: float | None  # to the other hosts of its region
    rtt_other_p50_ms: float | None  # to the hosts of other regions
    excess_ms: float | None  # over its region's other hosts to the same peers (None: no sibling)
    loss_out_pct: float | None  # pooled over the probes it sent (its ok cells)
    loss_in_pct: float | None  # pooled over the probes sent to it
    bw_out_mbps: float | None
    bw_in_mbps: float | None
    out_in_ratio: float | None  # median over peers of goodput sent / received
    flags: tuple[Flag, ...]
    fitness: Fitness
    reason: str  # why, one clause per flag; what to know otherwise ("goodput not measured")


@dataclass(frozen=True, slots=True)
class StageChoice:
    """The best ``stages``-host order among fit hosts, or why there is none (``note``)."""

    stages: int
    path: tuple[str, ...]  # empty: no choice
    decode: PipelineResult | None
    prefill: PipelineResult | None
    note: str = ""  # "not enough fit hosts (3 of 8)", "placed on RTT alone: lower bounds"

    @property
    def lower_bound(self) -> bool:
        return self.decode is not None and self.decode.per_step.lower_bound


@dataclass(frozen=True, slots=True)
class PipelineFitness:
    hosts: tuple[HostFitness, ...]
    best: tuple[StageChoice, ...]
    model: str
    dtype: str


def _median(values: NDArray[np.float64]) -> float | None:
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else None


def _excesses(rtt: NDArray[np.float64], regions: Sequence[str]) -> list[float | None]:
    """Per host: the median over peers of its RTT minus its siblings' (the other hosts of its
    region) median RTT to that peer; None without a sibling. The siblings' medians of a whole
    region come from one sort of its rows (``_leave_one_out_medians``), not one per host."""
    out: list[float | None] = [None] * len(regions)
    for region in dict.fromkeys(regions):
        rows = np.flatnonzero(np.asarray(regions) == region)
        if len(rows) < 2:
            continue
        others = _leave_one_out_medians(rtt[rows])  # the peer itself is NaN (diagonal)
        for k, i in enumerate(rows.tolist()):
            diff = rtt[i] - others[k]
            diff[i] = np.nan
            out[i] = _median(diff)
    return out


def _leave_one_out_medians(block: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row k: ``np.nanmedian`` over the other rows of ``block``, column by column (NaN where
    they have no number), the same floats: the middle one, or the mean of the two middle ones.
    Each column is sorted once; leaving row k out shifts the ranks above its own by one."""
    k_rows = block.shape[0]
    order = np.argsort(block, axis=0, kind="stable")  # NaN last
    ranked = np.take_along_axis(block, order, axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k_rows)[:, None], axis=0)
    present = ~np.isnan(block)
    n = present.sum(axis=0)[None, :] - present  # numbers left once row k is out
    own = np.where(present, rank, k_rows)  # a NaN row leaves every rank where it was

    def at(position: NDArray[np.int64]) -> NDArray[np.float64]:
        shifted = position + (position >= own)  # past row k's own rank: one further
        picked: NDArray[np.float64] = np.take_along_axis(
            ranked, np.clip(shifted, 0, k_rows - 1), axis=0
        )
        return picked

    with np.errstate(invalid="ignore"):
        middle = (at((n - 1) // 2) + at(n // 2)) / 2
    return np.where(n > 0, middle, np.nan)


@dataclass(frozen=True, slots=True, eq=False)
class _Cells:
    """What each host's cells add up to, by host code of the pairs (``PairTable.names``):
    probes sent and lost over the ok cells from it (``out``) and toward it (``in``); the cells
    toward it, and those refused or measured only from its end. One pass over the columns."""

    codes: dict[str, int]
    sent_out: NDArray[np.float64]
    lost_out: NDArray[np.float64]
    sent_in: NDArray[np.float64]
    lost_in: NDArray[np.float64]
    refused: NDArray[np.float64]
    toward: NDArray[np.float64]
    toward_all: int | None  # a sampled plan: every other measured host, implied pairs too

    @classmethod
    def of(cls, anchors: Anchors) -> _Cells:
        t = anchors.pairs
        n = len(t.names)
        ok = t.ok
        sent, lost = t.sent.astype(np.float64), (t.sent - t.received).astype(np.float64)
        refused = t.from_reverse | t.status_in(CellStatus(v) for v in _REFUSED)
        refused |= np.isin(t.strings["bw_status"].codes, _codes_of(t.strings["bw_status"]))

        def add(host: NDArray[np.int32], weights: NDArray[np.float64]) -> NDArray[np.float64]:
            sums: NDArray[np.float64] = np.bincount(host, weights, minlength=n).astype(np.float64)
            return sums

        return cls(
            {name: i for i, name in enumerate(t.names)},
            add(t.src[ok], sent[ok]), add(t.src[ok], lost[ok]),
            add(t.dst[ok], sent[ok]), add(t.dst[ok], lost[ok]),
            add(t.dst, refused.astype(np.float64)), add(t.dst, np.ones(len(t))),
            None if anchors.implied is None else len(anchors.measured_hosts) - 1,
        )  # fmt: skip

    def loss(self, host: str, outgoing: bool) -> tuple[float | None, float]:
        """(pooled loss %, Wilson low end %) over the ok cells from (or to) ``host``."""
        i = self.codes.get(host)
        sums = (self.sent_out, self.lost_out) if outgoing else (self.sent_in, self.lost_in)
        sent, lost = (0, 0) if i is None else (int(sums[0][i]), int(sums[1][i]))
        if sent < 1:
            return None, 0.0
        return 100.0 * lost / sent, 100.0 * wilson(max(lost, 0), sent)[0]

    def inbound(self, host: str) -> tuple[int, int]:
        """(cells toward ``host`` refused or measured only from its end, cells toward it: those
        of a sampled plan without an entry too, from every other measured host)."""
        i = self.codes.get(host)
        refused, toward = (0, 0) if i is None else (int(self.refused[i]), int(self.toward[i]))
        return refused, toward if self.toward_all is None else self.toward_all


def _codes_of(column: Codes) -> list[int]:
    """The codes of ``column`` that are a refused status."""
    return [i for i, v in enumerate(column.values) if v in _REFUSED]


def _judge(
    anchors: Anchors,
    links: Links,
    cells: _Cells,
    rtt: NDArray[np.float64],
    name: str,
    region: str,
    regions: NDArray[np.str_],
    excess: float | None,
) -> HostFitness:
    """``regions``: each host's of ``links``, in its order; ``excess``: ``_excesses``'."""
    i = links.index[name]
    peers = regions == region
    peers[i] = False
    loss_out, low_out = cells.loss(name, True)
    loss_in, low_in = cells.loss(name, False)
    out, into = links.bw_bps[i], links.bw_bps[:, i]
    with np.errstate(all="ignore"):
        ratio = _median(out / into)
    refused, toward = cells.inbound(name)
    flags: list[Flag] = []
    why: list[str] = []
    if np.isnan(rtt[i]).all():
        flags.append(Flag.UNMEASURED)
        why.append("no RTT measured to any peer")
    if excess is not None and excess >= RESIDENTIAL_EXCESS_MS:
        flags.append(Flag.RESIDENTIAL)
        why.append(f"residential-like: +{excess:.3g} ms over its region's hosts to the same peers")
    worst = max(((low_out, loss_out), (low_in, loss_in)), key=lambda t: t[0])
    if worst[0] > LOSSY_PCT and worst[1] is not None:
        flags.append(Flag.LOSSY)
        why.append(f"lossy: {worst[1]:.2g} % of its probes lost (at least {worst[0]:.2g} %)")
    if ratio is not None and not 1 / ASYMMETRY <= ratio <= ASYMMETRY:
        flags.append(Flag.ASYMMETRIC)
        why.append(f"asymmetric: sends {ratio:.2g}× the goodput it receives")
    if refused:
        flags.append(Flag.INBOUND)
        why.append(
            f"inbound-restricted: {refused} of {toward} cells toward it measurable only from "
            "its end, blocked or not at all (NAT or a firewall)"
        )
    fitness = (
        Fitness.UNFIT if _UNFIT.intersection(flags) else Fitness.CAUTION if flags else Fitness.FIT
    )
    if np.isnan(out).all() and np.isnan(into).all() and Flag.UNMEASURED not in flags:
        why.append("goodput not measured: figures over it are lower bounds")
    regional = np.where(peers, rtt[i], np.nan)
    other = regions != region
    return HostFitness(
        host=name,
        region=region,
        rtt_region_p50_ms=_median(regional),
        rtt_other_p50_ms=_median(np.where(other, rtt[i], np.nan)),
        excess_ms=excess,
        loss_out_pct=loss_out,
        loss_in_pct=loss_in,
        bw_out_mbps=None if (b := _median(out)) is None else b / 1e6,
        bw_in_mbps=None if (b := _median(into)) is None else b / 1e6,
        out_in_ratio=ratio,
        flags=tuple(flags),
        fitness=fitness,
        reason="; ".join(why),
    )


def assess(anchors: Anchors) -> tuple[HostFitness, ...]:
    """Every host of the run, in the run's order; a host never measured (down) is unfit."""
    links = Links.from_anchors(anchors)
    rtt = np.fmax(links.hop_p50_ms, links.hop_p50_ms.T)  # a round trip: the worse direction
    cells = _Cells.of(anchors)
    regions = np.asarray([anchors.host(h).region for h in links.hosts], dtype=np.str_)
    excess = _excesses(rtt, regions.tolist())
    out = []
    for h in anchors.hosts:
        if h.name in links.index:
            i = links.index[h.name]
            out.append(_judge(anchors, links, cells, rtt, h.name, h.region, regions, excess[i]))
        else:
            out.append(
                HostFitness(h.name, h.region, None, None, None, None, None, None, None, None,
                            (Flag.UNMEASURED,), Fitness.UNFIT, "not measured (down)")
            )  # fmt: skip
    return tuple(out)


def among(anchors: Anchors, hosts: Collection[str]) -> Anchors:
    """``anchors`` with only ``hosts`` and the cells between them (the region rows stay those
    of the whole run): placement that may use no other host."""
    keep = set(hosts)
    t = anchors.pairs
    src, dst = t.src, t.dst
    codes = [i for i, name in enumerate(t.names) if name in keep]
    return replace(
        anchors,
        hosts=tuple(h for h in anchors.hosts if h.name in keep),
        pairs=anchors.pairs.take(np.flatnonzero(np.isin(src, codes) & np.isin(dst, codes))),
    )


def best_stages(
    anchors: Anchors, fit: Collection[str], pipeline: PipelineOptions, stages: int
) -> StageChoice:
    """The cheapest ``stages``-host decode order among ``fit`` hosts (``scenarios.place``) with
    its decode and prefill figures; a note instead when there are too few or no path joins them."""
    if len(fit) < stages:
        return StageChoice(stages, (), None, None, f"not enough fit hosts ({len(fit)} of {stages})")
    w = Workload.of(pipeline)
    links = Links.from_anchors(among(anchors, fit))
    try:
        placed = place(links, stages, w.activation_bytes(1, 1), w.ring)
        hops = links.hops(placed.path, w.ring)
    except ProbeError as exc:
        return StageChoice(stages, (), None, None, str(exc))
    dec, pre = decode(hops, w, trials=0), prefill(hops, w, trials=0)
    note = (
        "placed on RTT alone: goodput unmeasured, figures are lower bounds"
        if placed.rtt_only
        else "some goodput unmeasured: figures are lower bounds"
        if dec.total.lower_bound
        else ""
    )
    return StageChoice(stages, placed.path, dec, pre, note)


def pipeline_fitness(
    anchors: Anchors,
    pipeline: PipelineOptions | None = None,
    counts: Sequence[int] = STAGE_COUNTS,
) -> PipelineFitness:
    """Each host's fitness and the best stage order for each of ``counts`` among fit hosts."""
    p = pipeline or PipelineOptions()
    hosts = assess(anchors)
    fit = [h.host for h in hosts if h.fitness is Fitness.FIT]
    best = tuple(best_stages(anchors, fit, p, k) for k in counts)
    return PipelineFitness(hosts, best, p.model, p.dtype)
