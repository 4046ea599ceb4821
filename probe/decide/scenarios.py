"""Scenarios over measured links: decode, prefill, tensor parallel, speculative decoding, pooling.

``Links`` is the dense view of an ``Anchors`` (host × host arrays); a ``Hop`` is one directed
link as the formulas see it. Each scenario returns its figures four ways (``Estimate``: RTT at
p50 or p99, network only or with compute) and, where the hops carry raw RTT samples, a seeded
Monte-Carlo distribution of the end-to-end time.

Hop rules (never assume an unmeasured link is good):
- the RTT of ``a → b`` is the ok cell ``a → b``; failing that the ok cell ``b → a`` (the same
  round trip measured from the other end); an ``all-lost`` cell in either direction kills the hop;
  a ``from_reverse`` cell (toward a host refusing ICMP) is such a round trip, used as measured
  with its samples; a ``not-measurable`` cell is no link: never placed on, a reason when asked for;
- the goodput of ``a → b`` is the lower of ``(a, b).forward`` and ``(b, a).reverse`` present; when
  neither is, the transfer term is unknown and the figure is flagged as a latency-only lower bound;
- a stalled bandwidth test (``(a, b).bw_status`` is ``stalled``: the status of the test that
  measured ``a → b``, whose rate both figures hold) or a goodput of 0 is no goodput at all: the
  figure is a lower bound and its ``caveats`` name the hop. A zero never reaches the formulas.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from probe.decide import formulas as f
from probe.decide.options import (
    UNCORRECTED,
    AllReduce,
    Draws,
    PipelineOptions,
    SpecCalibration,
    Transport,
)
from probe.decide.shapes import ModelShape
from probe.errors import InputError
from probe.matrix.anchors import Anchors, PairAnchor
from probe.matrix.pairs import Codes
from probe.model import CellStatus

Matrix = NDArray[np.float64]
EXACT_ORDER_MAX_STAGES = 8  # exact DP over subsets up to here, greedy beyond
EXACT_POOL = 12  # hosts searched exhaustively when choosing and ordering stages
_PIPELINE, _DRAWS = PipelineOptions(), Draws()  # the defaults, defined once in options.py
_ALLREDUCE = AllReduce()


class UnmeasuredHop(InputError):
    """A figure needs a link the run did not measure (or measured as dead)."""


@dataclass(frozen=True, slots=True)
class Hop:
    src: str
    dst: str
    rtt_p50_ms: float
    rtt_p99_ms: float
    bw_bps: float | None  # None: goodput not measured (or not usable, see bw_caveat)
    samples_ms: tuple[float, ...] | None = None
    bw_caveat: str | None = None  # what every figure over this hop must say, e.g. a stall
    sender_cc: str | None = None  # src's TCP congestion control (iperf3's report); None: unknown

    def __post_init__(self) -> None:
        if self.bw_bps is not None and not self.bw_bps > 0:  # 0 would read as "instant"
            raise InputError(f"hop {self.src}→{self.dst}: goodput {self.bw_bps} is not > 0")


@dataclass(frozen=True, slots=True)
class Links:
    """Host × host arrays (NaN = not measured); ``[i, j]`` is the directed hop ``i → j``."""

    anchors: Anchors
    hosts: tuple[str, ...]
    index: Mapping[str, int]
    cell_p50_ms: Matrix  # the ok cell i → j itself (as measured from i)
    hop_p50_ms: Matrix  # with the fallback to the cell j → i
    hop_p99_ms: Matrix
    bw_bps: Matrix
    loss_pct: Matrix
    bw_stalled: NDArray[np.bool_]  # the test of i → j stalled (or read 0): bw_bps[i, j] is NaN
    host_cc: Mapping[str, str] = field(default_factory=dict)  # as the hosts' iperf3 tests said

    @classmethod
    def from_anchors(cls, anchors: Anchors) -> Links:
        hosts = tuple(h.name for h in anchors.measured_hosts)
        index = {h: i for i, h in enumerate(hosts)}
        n = len(hosts)
        t = anchors.pairs  # columns: no Python per pair, so 10⁶ pairs stay cheap
        ii, jj = t.host_rows(index)
        keep = (ii >= 0) & (jj >= 0)
        ii, jj = ii[keep], jj[keep]

        def dense(values: NDArray[Any], scale: float = 1.0) -> Matrix:
            out = np.full((n, n), np.nan)
            out[ii, jj] = values[keep] * scale
            return out

        def marked(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
            return ~np.isnan(dense(np.where(mask, 1.0, np.nan)))

        p50 = dense(t.rtt("p50"))
        p99 = dense(t.rtt("p99"))
        loss = dense(t.floats["loss_pct"])
        fwd = dense(t.floats["bw_fwd_mbps"], 1e6)
        rev = dense(t.floats["bw_rev_mbps"], 1e6)
        stalled = marked(t.strings["bw_status"].equals(CellStatus.STALLED.value))
        stalled |= (fwd <= 0) | (rev.T <= 0)
        bw = np.fmin(fwd, rev.T)
        bw[stalled] = np.nan
        lost = marked(t.status_in((CellStatus.ALL_LOST,)))
        dead = lost | lost.T
        hop50 = np.where(np.isnan(p50), p50.T, p50)
        hop99 = np.where(np.isnan(p99), p99.T, p99)
        hop50[dead] = np.nan
        hop99[dead] = np.nan
        cc = dict(_named(hosts, jj, t.strings["receiver_cc"], keep))
        cc.update(_named(hosts, ii, t.strings["sender_cc"], keep))
        return cls(anchors, hosts, index, p50, hop50, hop99, bw, loss, stalled, cc)

    def position(self, host: str) -> int:
        try:
            return self.index[host]
        except KeyError:
            raise InputError(
                f"host {host!r} was not measured in run {self.anchors.run_id}"
            ) from None

    def hop(self, src: str, dst: str) -> Hop:
        i, j = self.position(src), self.position(dst)
        if math.isnan(self.hop_p50_ms[i, j]):
            cells = [c for c in (self.anchors.pair(src, dst), self.anchors.pair(dst, src)) if c]
            why = "; ".join(f"{c.src}→{c.dst} {c.status.value}: {c.reason or '-'}" for c in cells)
            raise UnmeasuredHop(f"no RTT for hop {src}→{dst} ({why or 'no cell in the run'})")
        bw = float(self.bw_bps[i, j])
        # raw samples come from the cell the RTT came from
        own = not math.isnan(self.cell_p50_ms[i, j])
        cell = self.anchors.pair(src, dst) if own else self.anchors.pair(dst, src)
        return Hop(
            src=src,
            dst=dst,
            rtt_p50_ms=float(self.hop_p50_ms[i, j]),
            rtt_p99_ms=float(self.hop_p99_ms[i, j]),
            bw_bps=None if math.isnan(bw) else bw,
            samples_ms=_samples(self.anchors, cell),
            bw_caveat=self._stall_caveat(src, dst) if self.bw_stalled[i, j] else None,
            sender_cc=self.host_cc.get(src),
        )

    def _stall_caveat(self, src: str, dst: str) -> str:
        cell = self.anchors.pair(src, dst)
        why = cell.bw_reason if cell is not None and _bw_stalled(cell) else None
        return f"bandwidth stalled ({why or 'goodput 0 bit/s'})"

    def hops(self, path: Sequence[str], ring: bool) -> tuple[Hop, ...]:
        ends = [*path, path[0]] if ring and len(path) > 1 else list(path)
        return tuple(self.hop(a, b) for a, b in itertools.pairwise(ends))

    def cost_ms(
        self, payload_bytes: float, rows: Sequence[int] | None = None, *, rtt_only: bool = False
    ) -> Matrix:
        """Transfer time at p50 for every hop (inf when RTT or goodput is missing). ``rtt_only``:
        a missing goodput costs nothing, as in the lower bound the figures then show."""
        idx = np.arange(len(self.hosts)) if rows is None else np.asarray(rows)
        rtt = self.hop_p50_ms[np.ix_(idx, idx)]
        bw = self.bw_bps[np.ix_(idx, idx)]
        if rtt_only:
            bw = np.where(np.isnan(bw), np.inf, bw)
        cost: Matrix = rtt / 2.0 + payload_bytes * 8.0 / bw * 1e3
        cost[np.isnan(cost)] = np.inf
        np.fill_diagonal(cost, np.inf)
        return cost

    def with_rtt(self, rtt_ms: float) -> Links:
        """Every measured hop at ``rtt_ms`` (p50 and p99): one point of an RTT sweep."""
        hop = np.where(np.isnan(self.hop_p50_ms), np.nan, rtt_ms)
        return replace(self, hop_p50_ms=hop, hop_p99_ms=hop.copy())

    def with_bw(self, bw_bps: float) -> Links:
        """Every hop with an RTT at goodput ``bw_bps``: one point of a goodput sweep (a stalled
        or missing test no longer matters, the sweep says what the goodput is)."""
        bw = np.where(np.isnan(self.hop_p50_ms), np.nan, bw_bps)
        return replace(self, bw_bps=bw, bw_stalled=np.zeros_like(self.bw_stalled))


def _named(
    hosts: Sequence[str], host: NDArray[np.intp], names: Codes, keep: NDArray[np.bool_]
) -> list[tuple[str, str]]:
    """(host, name) of the kept rows with a non-empty name, each host once with its last row's
    name, hosts in the order of their first row: what a dict filled row by row holds."""
    named = np.asarray([bool(v) for v in names.values] + [False], np.bool_)[names.codes[keep]]
    rows, at = np.flatnonzero(named), host[named]
    found, first = np.unique(at, return_index=True)
    _, from_end = np.unique(at[::-1], return_index=True)
    last = rows[len(at) - 1 - from_end]
    codes = names.codes[keep]
    return [(hosts[found[k]], names.values[codes[last[k]]]) for k in np.argsort(first).tolist()]


def _samples(anchors: Anchors, cell: PairAnchor | None) -> tuple[float, ...] | None:
    probes = None if cell is None else anchors.rtt_samples(cell)
    return None if probes is None else tuple(probes.rtt_ms.tolist())


def _bw_stalled(p: PairAnchor) -> bool:
    return p.bw_status == CellStatus.STALLED


def region_hop(anchors: Anchors, src_region: str, dst_region: str) -> Hop:
    """A hop between two regions from the region rows (medians over ok pairs, no samples).

    A region goodput of 0 is no goodput; stalled bandwidth tests between the two regions are
    named in the hop's caveat either way (the region median may hold their rates).
    """
    row = anchors.region(src_region, dst_region)
    if row is None or row.rtt is None:
        seen = "no pairs" if row is None else f"0 of {row.pairs} pairs ok"
        raise UnmeasuredHop(f"no RTT for regions {src_region}→{dst_region} ({seen})")
    back = anchors.region(dst_region, src_region)
    bws = [row.bw.forward_mbps, back.bw.reverse_mbps if back else None]
    known = [b * 1e6 for b in bws if b is not None]
    t = anchors.pairs
    stalled = t.region_counts(t.strings["bw_status"].equals(CellStatus.STALLED.value)).get(
        (src_region, dst_region), 0
    )
    zero = any(b <= 0 for b in known)
    caveats = [f"bandwidth stalled on {stalled} of {row.pairs} pairs"] if stalled else []
    caveats += ["region goodput 0 bit/s"] if zero else []
    return Hop(
        f"[{src_region}]",
        f"[{dst_region}]",
        row.rtt.p50_ms,
        row.rtt.p99_ms,
        None if zero else min(known, default=None),
        bw_caveat="; ".join(caveats) or None,
    )


# --------------------------------------------------------------------------- stage order


def best_order(cost: Matrix, k: int, ring: bool) -> tuple[list[int], float]:
    """Choose ``k`` of the ``n`` nodes of ``cost`` and order them to minimise the path (or ring).

    Exact when ``k ≤ 8`` and ``n ≤ 12`` (dynamic programming over subsets, Held-Karp); otherwise
    greedy nearest-neighbour paths from every start, then an exact re-ordering of the chosen
    nodes when ``k ≤ 8``. Returns ``([], inf)`` when no finite path exists.
    """
    n = cost.shape[0]
    k = min(k, n)
    if k <= 1:
        return ([0], 0.0) if n else ([], math.inf)
    if k <= EXACT_ORDER_MAX_STAGES and n <= EXACT_POOL:
        return _held_karp(cost, k, ring)
    order, total = _greedy(cost, k, ring)
    if order and k <= EXACT_ORDER_MAX_STAGES:
        sub, total = _held_karp(cost[np.ix_(order, order)], k, ring)
        order = [order[i] for i in sub]
    return order, total


def _held_karp(cost: Matrix, k: int, ring: bool) -> tuple[list[int], float]:
    n = cost.shape[0]
    c = cost.tolist()
    layer: dict[tuple[int, int], tuple[float, int]] = {(1 << v, v): (0.0, -1) for v in range(n)}
    layers = [layer]
    for _ in range(k - 1):
        nxt: dict[tuple[int, int], tuple[float, int]] = {}
        for (mask, end), (acc, _prev) in layer.items():
            low = (mask & -mask).bit_length() - 1  # a ring is counted once, from its lowest node
            for v in range(low + 1 if ring else 0, n):
                if mask >> v & 1:
                    continue
                total = acc + c[end][v]
                key = (mask | 1 << v, v)
                if total < nxt.get(key, (math.inf, -1))[0]:
                    nxt[key] = (total, end)
        layer = nxt
        layers.append(layer)
    best, best_key = math.inf, None
    for (mask, end), (acc, _) in layer.items():
        low = (mask & -mask).bit_length() - 1
        total = acc + (c[end][low] if ring else 0.0)
        if total < best:
            best, best_key = total, (mask, end)
    if best_key is None or math.isinf(best):
        return [], math.inf
    order, (mask, end) = [], best_key
    for lay in reversed(layers):
        order.append(end)
        prev = lay[(mask, end)][1]
        mask, end = mask & ~(1 << end), prev
    return order[::-1], best


def _greedy(cost: Matrix, k: int, ring: bool) -> tuple[list[int], float]:
    """Nearest-neighbour paths from every start at once (vectorised over starts)."""
    n = cost.shape[0]
    starts = np.arange(n)
    paths = [starts]
    visited = np.zeros((n, n), dtype=bool)
    visited[starts, starts] = True
    total = np.zeros(n)
    current = starts
    for _ in range(k - 1):
        step = np.where(visited, np.inf, cost[current])
        nxt = np.argmin(step, axis=1)
        total += step[starts, nxt]
        visited[starts, nxt] = True
        paths.append(nxt)
        current = nxt
    if ring:
        total += cost[current, starts]
    best = int(np.argmin(total))
    if math.isinf(total[best]):
        return [], math.inf
    return [int(p[best]) for p in paths], float(total[best])


@dataclass(frozen=True, slots=True)
class Placed:
    """Stage hosts in order; ``rtt_only``: no such path has goodput on every hop, so they were
    placed on RTT alone and every figure over them is a lower bound (transfer time unknown)."""

    path: tuple[str, ...]
    rtt_only: bool = False


def place(links: Links, stages: int, payload_bytes: float, ring: bool) -> Placed:
    """The ``stages`` hosts and their order with the cheapest decode path at p50; on RTT alone
    when no ``stages`` hosts are joined by hops with both RTT and goodput."""
    for rtt_only in (False, True):
        order, total = best_order(links.cost_ms(payload_bytes, rtt_only=rtt_only), stages, ring)
        if len(order) == stages and not math.isinf(total):
            return Placed(tuple(links.hosts[i] for i in order), rtt_only)
    raise InputError(
        f"no {stages} hosts are joined by measured hops (not even by RTT alone; "
        f"{len(links.hosts)} hosts measured)"
    )


def pool_hosts(links: Links, requests: int) -> tuple[str, ...]:
    """Pool members when none are named: the host with an RTT to the most others (then the
    lowest sum) dispatches to itself and the nearest others, one host per request at most."""
    if not links.hosts:
        raise InputError(f"run {links.anchors.run_id} measured no hosts")
    rtt = np.where(np.isnan(links.hop_p50_ms), np.inf, links.hop_p50_ms)
    np.fill_diagonal(rtt, 0.0)
    finite = np.isfinite(rtt)
    reach = finite.sum(axis=1)
    total = np.where(finite, rtt, 0.0).sum(axis=1)
    d = min(range(len(links.hosts)), key=lambda i: (-reach[i], total[i], i))
    near = sorted((j for j in range(len(links.hosts)) if finite[d, j]), key=lambda j: rtt[d, j])
    return tuple(links.hosts[j] for j in near[:requests])


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Estimate:
    """One figure with RTT at p50 or p99, network only or with compute, in milliseconds."""

    network_p50_ms: float
    network_p99_ms: float
    full_p50_ms: float
    full_p99_ms: float
    lower_bound: bool = False  # some goodput was unmeasured: the transfer term is missing
    caveats: tuple[str, ...] = ()  # "a→b: bandwidth stalled (…)": show them with the figure

    def scaled(self, factor: float) -> Estimate:
        return replace(
            self,
            network_p50_ms=self.network_p50_ms * factor,
            network_p99_ms=self.network_p99_ms * factor,
            full_p50_ms=self.full_p50_ms * factor,
            full_p99_ms=self.full_p99_ms * factor,
        )


@dataclass(frozen=True, slots=True)
class Tail:
    """Monte-Carlo end-to-end time (compute included) from raw RTT samples."""

    trials: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class Workload:
    model: ModelShape
    dtype: f.Dtype = _PIPELINE.dtype
    tokens: int = _PIPELINE.tokens
    batch: int = _PIPELINE.batch
    seq: int = _PIPELINE.seq
    ring: bool = _PIPELINE.ring
    decode_compute_ms_per_stage: float = 0.0
    prefill_compute_ms_per_stage: float = 0.0
    tp_compute_ms_per_token: float = 0.0
    transport: Transport = UNCORRECTED

    @classmethod
    def of(cls, pipeline: PipelineOptions) -> Workload:
        """The pipeline's workload, its model shape loaded; no compute (network only)."""
        p = pipeline
        return cls(p.shape(), p.dtype, p.tokens, p.batch, p.seq, p.ring)

    def activation_bytes(self, batch: int, seq: int) -> float:
        d = f.BYTES_PER_ELEMENT[self.dtype]
        return f.activation_bytes(batch, seq, self.model.hidden_size, d)


def _rtt_ms(hop: Hop, at: Literal["p50", "p99"]) -> float:
    return hop.rtt_p50_ms if at == "p50" else hop.rtt_p99_ms


def _hop_ms(hop: Hop, payload_bytes: float, at: Literal["p50", "p99"]) -> float:
    return f.transfer_ms(_rtt_ms(hop, at), payload_bytes, hop.bw_bps if hop.bw_bps else math.inf)


def caveats(hops: Iterable[Hop]) -> tuple[str, ...]:
    """The caveat of every hop that has one, named by the hop, in order and once."""
    return tuple(dict.fromkeys(f"{h.src}→{h.dst}: {h.bw_caveat}" for h in hops if h.bw_caveat))


@dataclass(frozen=True, slots=True)
class Correction:
    """What one of ``formulas``' corrections adds to a pipeline figure, at RTT p50 and p99."""

    name: str  # "slow start after idle", "BBR pacing of sparse messages", "per-message overhead"
    p50_ms: float
    p99_ms: float


def corrections(
    hops: Sequence[Hop], payload_bytes: float, transport: Transport, *, follows_gap: bool
) -> tuple[Correction, ...]:
    """The corrections ``transport`` asks for, summed over ``hops`` (one message each); those
    adding nothing are left out. Slow start applies to a transfer that ``follows_gap`` (prefill)
    over a hop with a known goodput: without one the figure stays a latency-only lower bound."""

    def stalls(at: Literal["p50", "p99"]) -> float:
        return sum(
            f.slow_start_stall_ms(_rtt_ms(h, at), payload_bytes, h.bw_bps)
            for h in hops
            if h.bw_bps and f.restarts_after_idle(h.sender_cc)
        )

    def pacing(at: Literal["p50", "p99"]) -> float:
        return sum(
            f.bbr_sparse_extra_ms(_rtt_ms(h, at), payload_bytes, h.bw_bps or math.inf)
            for h in hops
            if not f.restarts_after_idle(h.sender_cc)
        )

    overhead = transport.per_message_ms * len(hops)
    found = [Correction("per-message overhead", overhead, overhead)]
    if follows_gap and transport.after_idle:
        found.insert(0, Correction("slow start after idle", stalls("p50"), stalls("p99")))
    if not follows_gap and transport.sparse_pacing:
        found.insert(0, Correction("BBR pacing of sparse messages", pacing("p50"), pacing("p99")))
    return tuple(c for c in found if c.p50_ms or c.p99_ms)


def pipeline_estimate(
    hops: Sequence[Hop],
    payload_bytes: float,
    compute_ms: float,
    added: Sequence[Correction] = (),
) -> Estimate:
    """One pass through the pipeline; ``compute_ms`` is the compute of all stages together,
    ``added`` the corrections on top of ``RTT/2 + bytes·8/bw`` per hop."""
    net50 = sum(_hop_ms(h, payload_bytes, "p50") for h in hops) + sum(c.p50_ms for c in added)
    net99 = sum(_hop_ms(h, payload_bytes, "p99") for h in hops) + sum(c.p99_ms for c in added)
    missing = any(h.bw_bps is None for h in hops)
    return Estimate(net50, net99, net50 + compute_ms, net99 + compute_ms, missing, caveats(hops))


def monte_carlo(
    hops: Sequence[Hop],
    payload_bytes: float,
    steps: int,
    compute_ms: float,
    *,
    trials: int = _DRAWS.trials,
    seed: int = _DRAWS.seed,
) -> Tail | None:
    """``steps`` passes over ``hops``, each hop time drawn from that hop's raw RTT samples;
    ``compute_ms`` is the fixed time per pass (compute, and any corrections at RTT p50).

    Draws are independent (jitter and stragglers add up along the pipeline). ``None`` when a hop
    has no samples: a tail built from a guess would look more certain than it is.
    """
    if trials <= 0 or not hops or any(not h.samples_ms for h in hops):
        return None
    rng = np.random.default_rng(seed)
    total = np.full(trials, compute_ms * steps, dtype=np.float64)
    chunk = max(1, 2_000_000 // trials)  # bounds the draw matrix to ~16 MB
    for h in hops:
        arr = np.asarray(h.samples_ms, dtype=np.float64)
        fixed = f.serialisation_ms(payload_bytes, h.bw_bps) if h.bw_bps else 0.0
        total += fixed * steps
        for done in range(0, steps, chunk):
            draws = arr[rng.integers(0, arr.size, size=(trials, min(chunk, steps - done)))]
            total += draws.sum(axis=1) / 2.0
    q = np.percentile(total, [50, 90, 99])
    return Tail(trials, float(q[0]), float(q[1]), float(q[2]), float(total.max()))


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """Decode (per token, and for ``tokens``) or prefill (per request) along ``path``."""

    path: tuple[str, ...]
    hops: tuple[Hop, ...]
    payload_bytes: float
    per_step: Estimate
    total: Estimate
    tail: Tail | None
    corrections: tuple[Correction, ...] = ()  # included in decode's per_step, prefill's total


def decode(
    hops: Sequence[Hop], w: Workload, *, trials: int = _DRAWS.trials, seed: int = _DRAWS.seed
) -> PipelineResult:
    """Interactive decode: B = 1, S = 1 per token through K stages, ``tokens`` times. Tokens
    follow one another without a gap: no slow start, only the per-message overhead."""
    stages = len(hops) if w.ring else len(hops) + 1
    payload = w.activation_bytes(1, 1)
    compute = stages * w.decode_compute_ms_per_stage
    added = corrections(hops, payload, w.transport, follows_gap=False)  # tokens follow no gap
    per_token = pipeline_estimate(hops, payload, compute, added)
    fixed = compute + sum(c.p50_ms for c in added)
    tail = monte_carlo(hops, payload, w.tokens, fixed, trials=trials, seed=seed)
    path = tuple(h.src for h in hops) + (() if w.ring else (hops[-1].dst,) if hops else ())
    total = per_token.scaled(w.tokens)
    return PipelineResult(path, tuple(hops), payload, per_token, total, tail, added)


def prefill(
    hops: Sequence[Hop], w: Workload, *, trials: int = _DRAWS.trials, seed: int = _DRAWS.seed
) -> PipelineResult:
    """Batch prefill: B × S activations over each hop; per step = per hop, total = per request.
    With ``w.transport.after_idle`` each hop's transfer starts in slow start."""
    open_hops = hops[: len(hops) - 1] if w.ring else hops  # the prompt does not return to stage 1
    stages = len(open_hops) + 1
    payload = w.activation_bytes(w.batch, w.seq)
    compute = stages * w.prefill_compute_ms_per_stage
    added = corrections(open_hops, payload, w.transport, follows_gap=True)
    total = pipeline_estimate(open_hops, payload, compute, added)
    per_hop = total.scaled(1.0 / max(len(open_hops), 1))
    fixed = compute + sum(c.p50_ms for c in added)
    tail = monte_carlo(open_hops, payload, 1, fixed, trials=trials, seed=seed)
    path = tuple(h.src for h in open_hops) + ((open_hops[-1].dst,) if open_hops else ())
    return PipelineResult(path, tuple(open_hops), payload, per_hop, total, tail, added)


@dataclass(frozen=True, slots=True)
class TpResult:
    hosts: tuple[str, ...]  # ring order
    worst_hop: Hop  # highest RTT, lowest goodput of the ring
    decode_payload_bytes: float
    prefill_payload_bytes: float
    decode_token: Estimate
    decode_total: Estimate
    prefill_request: Estimate | None  # None: a measured all-reduce time (decode payload only)
    allreduce: AllReduce = _ALLREDUCE


def tensor_parallel(
    ring_hops: Sequence[Hop], w: Workload, allreduce: AllReduce = _ALLREDUCE
) -> TpResult:
    """Tensor parallel over the hosts of ``ring_hops`` (a closed ring): 2 all-reduces per layer.

    A measured all-reduce time is the decode payload's: prefill's larger one is not estimated.
    """
    n, layers = len(ring_hops), w.model.num_hidden_layers
    bws = [h.bw_bps for h in ring_hops]
    worst = Hop(
        "ring",
        "ring",
        max(h.rtt_p50_ms for h in ring_hops),
        max(h.rtt_p99_ms for h in ring_hops),
        None if None in bws else min(b for b in bws if b is not None),
    )
    bw = worst.bw_bps or math.inf
    notes = caveats(ring_hops)

    measured, algorithm = allreduce.measured_ms, allreduce.algorithm

    def estimate(payload: float, compute: float) -> Estimate:
        if measured is not None:
            net = 2 * layers * measured
            return Estimate(net, net, net + compute, net + compute)
        algo: Literal["ring", "tree"] = "tree" if algorithm == "tree" else "ring"
        n50 = f.tp_token_ms(layers, n, worst.rtt_p50_ms, payload, bw, algo)
        n99 = f.tp_token_ms(layers, n, worst.rtt_p99_ms, payload, bw, algo)
        return Estimate(n50, n99, n50 + compute, n99 + compute, worst.bw_bps is None, notes)

    dec_payload, pre_payload = w.activation_bytes(1, 1), w.activation_bytes(w.batch, w.seq)
    token = estimate(dec_payload, w.tp_compute_ms_per_token)
    return TpResult(
        tuple(h.src for h in ring_hops),
        worst,
        dec_payload,
        pre_payload,
        token,
        token.scaled(w.tokens),
        None if measured is not None else estimate(pre_payload, 0.0),
        allreduce,
    )


@dataclass(frozen=True, slots=True)
class SpecRow:
    proposer: str
    verifier: str
    rtt_p50_ms: float
    rtt_p99_ms: float
    tokens_per_s_p50: float
    tokens_per_s_p99: float
    speedup_p50: float
    speedup_p99: float


@dataclass(frozen=True, slots=True)
class Calibrated:
    """E and the block time solved from measured rates (``formulas.spec_calibrate``): with them
    the model gives back the co-located rate at RTT 0 and the remote rate at its RTT exactly."""

    rates: SpecCalibration
    remote_rtt_ms: float  # as given, or the run's RTT p50 of ``remote_pair``
    remote_pair: tuple[str, str] | None  # where that RTT was measured (None: given)
    accepted_per_block: float
    block_ms: float

    @property
    def notes(self) -> tuple[str, ...]:
        """What makes the fit suspect, or speculation pointless, said with the figures."""
        r, e = self.rates, self.accepted_per_block
        low_e = f"E = {e:.3g} is below 1 accepted token per block: check the rates"
        slow = (
            f"co-located speculation ({r.local_tokens_per_s:g} tokens/s) is no faster than "
            f"autoregressive decoding ({r.ar_tokens_per_s:g}): it pays at no RTT"
        )
        return (
            *([low_e] if e < 1 else []),
            *([slow] if r.local_tokens_per_s <= r.ar_tokens_per_s else []),
        )


def calibrate(
    rates: SpecCalibration, remote_rtt_ms: float, remote_pair: tuple[str, str] | None = None
) -> Calibrated:
    """Solve E and the block time from ``rates`` with the remote point at ``remote_rtt_ms``."""
    SpecCalibration.check_rtt(remote_rtt_ms)
    e, block = f.spec_calibrate(rates.local_tokens_per_s, rates.remote_tokens_per_s, remote_rtt_ms)
    return Calibrated(rates, remote_rtt_ms, remote_pair, e, block)


@dataclass(frozen=True, slots=True)
class SpecResult:
    accepted_per_block: float
    block_ms: float
    ar_tokens_per_s: float
    breakeven_rtt_ms: float
    rows: tuple[SpecRow, ...]
    calibration: Calibrated | None = None  # E and the block time came from measured rates


def speculative(
    hops: Sequence[Hop],
    accepted_per_block: float,
    block_ms: float,
    ar_tokens_per_s: float,
    calibration: Calibrated | None = None,
) -> SpecResult:
    """Tokens/s and speed-up for each proposer → verifier hop; rows sorted by p50 RTT."""
    e, t, ar = accepted_per_block, block_ms, ar_tokens_per_s
    rows = tuple(
        SpecRow(
            h.src,
            h.dst,
            h.rtt_p50_ms,
            h.rtt_p99_ms,
            f.spec_tokens_per_s(e, t, h.rtt_p50_ms),
            f.spec_tokens_per_s(e, t, h.rtt_p99_ms),
            f.spec_speedup(e, t, h.rtt_p50_ms, ar),
            f.spec_speedup(e, t, h.rtt_p99_ms, ar),
        )
        for h in sorted(hops, key=lambda h: (h.rtt_p50_ms, h.src, h.dst))
    )
    return SpecResult(e, t, ar, f.spec_breakeven_rtt_ms(e, t, ar), rows, calibration)


@dataclass(frozen=True, slots=True)
class PoolHost:
    host: str
    rtt_p50_ms: float  # from the dispatcher; 0 for the dispatcher itself
    rtt_p99_ms: float
    bw_bps: float | None
    service_ms: float


@dataclass(frozen=True, slots=True)
class PoolResult:
    hosts: tuple[PoolHost, ...]
    requests: int
    payload_bytes: float
    even_counts: tuple[int, ...]
    aware_counts: tuple[int, ...]  # capability-aware (computed at p50)
    alone: Estimate  # the fastest host alone (network-only = its network share)
    even: Estimate
    aware: Estimate

    def overhead(self, split: Literal["even", "aware"], at: Literal["p50", "p99"]) -> float:
        """Pooled makespan / fastest host alone (< 1: pooling pays)."""
        est = self.even if split == "even" else self.aware
        pooled, alone = (
            (est.full_p50_ms, self.alone.full_p50_ms)
            if at == "p50"
            else (est.full_p99_ms, self.alone.full_p99_ms)
        )
        return pooled / alone


def pool(
    dispatcher: str,
    links: Links,
    hosts: Sequence[str],
    requests: int,
    service_ms: Sequence[float],
    payload_bytes: float,
) -> PoolResult:
    """Whole requests spread over ``hosts`` from ``dispatcher``, served serially per host."""
    members, hops = [], []
    for host, svc in zip(hosts, service_ms, strict=True):
        hop = None if host == dispatcher else links.hop(dispatcher, host)
        if hop is None:
            members.append(PoolHost(host, 0.0, 0.0, math.inf, svc))
        else:
            hops.append(hop)
            members.append(PoolHost(host, hop.rtt_p50_ms, hop.rtt_p99_ms, hop.bw_bps, svc))

    def costs(at: Literal["p50", "p99"], with_service: bool) -> list[float]:
        return [
            f.request_cost_ms(
                m.service_ms if with_service else 0.0,
                m.rtt_p50_ms if at == "p50" else m.rtt_p99_ms,
                payload_bytes,
                m.bw_bps or math.inf,
            )
            for m in members
        ]

    full50 = costs("p50", True)
    fastest = min(range(len(members)), key=lambda i: (full50[i], i))
    even = f.even_split(requests, len(members))
    aware = f.capability_split(requests, full50)
    missing = any(m.bw_bps is None for m in members)

    def estimate(counts: Sequence[int]) -> Estimate:
        net = [f.makespan_ms(counts, costs(a, False)) for a in ("p50", "p99")]
        full = [f.makespan_ms(counts, costs(a, True)) for a in ("p50", "p99")]
        return Estimate(net[0], net[1], full[0], full[1], missing, caveats(hops))

    alone_counts = [requests if i == fastest else 0 for i in range(len(members))]
    return PoolResult(
        tuple(members),
        requests,
        payload_bytes,
        tuple(even),
        tuple(aware),
        estimate(alone_counts),
        estimate(even),
        estimate(aware),
    )
