"""RTT statistics of one ordered pair, from every probe (lost ones included).

Pure and stdlib-only: this runs once per cell and must not drag pandas into the core.
There is deliberately no bare "jitter": ``rtt_mdev_ms``, ``ipdv_ms`` and ``pdv_p99_ms`` are three
different things that all get called jitter somewhere.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from probe.tools.ping import PingProbe, PingReport, PingSummary


@dataclass(frozen=True, slots=True)
class RttStats:
    """Per-pair figures. Every RTT figure is None when nothing came back (received == 0).

    - ``loss_pct``: (sent − received) / sent × 100, from ping's counts; duplicates never count.
    - ``rtt_mdev_ms``: population standard deviation of the RTTs, iputils' "mdev" (= BSD stddev).
    - ``ipdv_ms``: mean |RTT_i − RTT_j| over consecutive replies in seq order (RFC 3393 IPDV,
      summarised as in RFC 5481 §4.1); lost probes are skipped, so a pair straddles a loss.
      None with fewer than two replies.
    - ``pdv_p99_ms``: p99 − min, the RFC 5481 PDV (delay above the fastest probe) at the 99th
      percentile: how much buffer a latency budget needs.
    """

    sent: int
    received: int
    loss_pct: float
    rtt_min_ms: float | None
    rtt_mean_ms: float | None
    rtt_p50_ms: float | None
    rtt_p90_ms: float | None
    rtt_p99_ms: float | None
    rtt_max_ms: float | None
    rtt_mdev_ms: float | None
    ipdv_ms: float | None
    pdv_p99_ms: float | None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 ≤ q ≤ 100) of ascending values, linearly interpolated.

    Hyndman & Fan type 7, numpy's default ``'linear'``: position (n − 1)·q/100 between ranks.
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], not {q}")
    position = (n - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, n - 1)
    below, above = sorted_values[low], sorted_values[high]
    value = below + (above - below) * (position - low)
    return min(max(value, below), above)  # float rounding must not leave the bracket


def rtt_stats(
    probes: Sequence[PingProbe],
    *,
    sent: int | None = None,
    received: int | None = None,
    summary: PingSummary | None = None,
) -> RttStats:
    """Statistics of one pair's probes.

    ``sent`` / ``received`` default to what ``probes`` shows; pass ping's own counts when a reply
    line may have been unreadable. ``summary`` (ping's exact min/avg/max/mdev line) replaces the
    figures recomputed from per-packet times, which iputils rounds to 1 ms above 100 ms; the
    percentiles then stay clamped inside the exact [min, max]. Pass it only when it covers the
    same replies as ``probes``, i.e. when there were no duplicates (``report_stats`` does that).
    """
    ordered = sorted(probes, key=lambda p: p.seq)
    rtts = [p.rtt_ms for p in ordered if p.rtt_ms is not None]
    sent = len(ordered) if sent is None else sent
    received = len(rtts) if received is None else received
    if sent < 1:
        raise ValueError("no probe was sent: there is nothing to summarise")
    if not 0 <= received <= sent:
        raise ValueError(f"received {received} out of {sent} sent")
    loss_pct = 100.0 * (sent - received) / sent
    if received == 0:
        return RttStats(sent, received, loss_pct, *([None] * 9))

    if summary is not None:
        if summary.rtt_min_ms > summary.rtt_max_ms:
            raise ValueError(f"summary min > max: {summary}")
        low, mean, high = summary.rtt_min_ms, summary.rtt_avg_ms, summary.rtt_max_ms
        mdev = summary.rtt_mdev_ms
    elif rtts:
        low, mean, high = min(rtts), statistics.mean(rtts), max(rtts)  # exact: fmean may drift
        mdev = None
    else:  # ping counted replies, but none of their lines was readable
        return RttStats(sent, received, loss_pct, *([None] * 9))
    if mdev is None and rtts:
        mdev = statistics.pstdev(rtts)

    p50 = p90 = p99 = ipdv = None
    if rtts:
        ranked = sorted(rtts)
        p50, p90, p99 = (min(max(percentile(ranked, q), low), high) for q in (50, 90, 99))
    if len(rtts) >= 2:
        # a mean of |Δ| cannot exceed the range; fmean's last-ulp rounding sometimes did
        ipdv = min(statistics.fmean(abs(b - a) for a, b in pairwise(rtts)), max(rtts) - min(rtts))
    return RttStats(
        sent=sent,
        received=received,
        loss_pct=loss_pct,
        rtt_min_ms=low,
        rtt_mean_ms=mean,
        rtt_p50_ms=p50,
        rtt_p90_ms=p90,
        rtt_p99_ms=p99,
        rtt_max_ms=high,
        rtt_mdev_ms=mdev,
        ipdv_ms=ipdv,
        pdv_p99_ms=None if p99 is None else p99 - low,
    )


def report_stats(report: PingReport) -> RttStats:
    """Statistics of a parsed ping run, using its summary line unless duplicates polluted it.

    Every ping flavour folds duplicate replies into its summary min/avg/max/mdev (iputils divides
    by received + duplicates), so with duplicates the figures are recomputed from the first reply
    of each seq instead.
    """
    return rtt_stats(
        report.probes,
        sent=report.sent,
        received=report.received,
        summary=report.summary if report.duplicates == 0 else None,
    )


# --------------------------------------------------------------------------- confidence

#: Two-sided 95 %: the standard normal quantile z₀.₉₇₅ (Wilson) and each tail's share (ranks).
Z_95 = 1.959963984540054
TAIL_95 = 0.025
#: A p99 from fewer samples is mostly the largest one or two: it is flagged, not hidden.
P99_MIN_SAMPLES = 100
#: A bandwidth test should last this many round trips after its omitted ramp: TCP slow start
#: doubles the window once per RTT, so a shorter test mostly measures the ramp. On a path with
#: RTT > 100 ms this asks for more than 2 s; on a 220 ms path 4.4 s.
MIN_RTTS_PER_TEST = 20


@dataclass(frozen=True, slots=True)
class RttConfidence:
    """How far the figures of ``RttStats`` can be trusted: 95 % intervals and a warning.

    - ``loss_lo_pct`` / ``loss_hi_pct``: Wilson score interval of the loss (``wilson``);
      None only when nothing was sent.
    - ``rtt_p50_*`` / ``rtt_p99_*``: distribution-free order-statistic intervals
      (``quantile_ranks``) over the received RTTs; a bound is None when the sample is too small
      for it to exist (unbounded): p50's bounds need 6 replies, p99's upper bound 368.
    - ``p99_few_samples``: the p99 rests on fewer than ``P99_MIN_SAMPLES`` replies; None when
      there is no p99.
    """

    loss_lo_pct: float | None
    loss_hi_pct: float | None
    rtt_p50_lo_ms: float | None
    rtt_p50_hi_ms: float | None
    rtt_p99_lo_ms: float | None
    rtt_p99_hi_ms: float | None
    p99_few_samples: bool | None


def wilson(events: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``events / trials``, as fractions.

    The set of p for which the observed p̂ = events / trials passes the score test
    |p̂ − p| ≤ z·√(p(1 − p)/n): the roots of that quadratic,

        (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n).

    Unlike p̂ ± z·√(p̂(1 − p̂)/n) it never collapses to a point at 0 or 100 % loss: 0 lost of
    20 gives [0, 16.1 %], 2 of 20 [2.8 %, 30.1 %], both holding a 5.9 % link.
    """
    if trials < 1 or not 0 <= events <= trials:
        raise ValueError(f"a proportion of {events} in {trials} trials")
    n = trials
    p = events / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if events == 0 else max(0.0, centre - half)  # exact at the edges, not 1e-17
    high = 1.0 if events == n else min(1.0, centre + half)
    return low, high


def binomial_cdf(n: int, q: float) -> tuple[float, ...]:
    """P(B ≤ k) for k = 0 … n, B ~ Binomial(n, q), 0 < q < 1: log-space terms (no underflow
    of qⁿ at large n), summed from k = 0."""
    log_q, log_r = math.log(q), math.log1p(-q)
    total, out = 0.0, []
    for k in range(n + 1):
        log_pmf = (
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * log_q + (n - k) * log_r
        )  # fmt: skip
        total += math.exp(log_pmf)
        out.append(min(total, 1.0))
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def quantile_ranks(n: int, q: float, tail: float = TAIL_95) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics X₍ₗ₎ ≤ ξ_q ≤ X₍ᵤ₎ bounding the q-quantile
    (0 < q < 1) of any continuous distribution from n samples, with ≥ 1 − 2·tail coverage.

    Distribution-free: B = #{Xᵢ ≤ ξ_q} ~ Binomial(n, q), X₍ₗ₎ ≤ ξ_q ⇔ B ≥ l and ξ_q < X₍ᵤ₎ ⇔
    B ≤ u − 1, so coverage = P(l ≤ B ≤ u − 1) = F(u − 1) − F(l − 1). l is the largest rank with
    F(l − 1) ≤ tail, u the smallest with F(u − 1) ≥ 1 − tail: each side misses at most ``tail``.
    A side with no such rank in 1 … n is None (unbounded): the sample is too small, e.g. the
    upper bound of p99 needs 0.99ⁿ ≤ 0.025, n ≥ 368.
    """
    if n < 1 or not 0.0 < q < 1.0:
        raise ValueError(f"quantile ranks of q={q} from {n} samples")
    cdf = binomial_cdf(n, q)
    lows = [k for k in range(1, n + 1) if cdf[k - 1] <= tail]
    highs = [k for k in range(1, n + 1) if cdf[k - 1] >= 1.0 - tail]
    return (lows[-1] if lows else None), (highs[0] if highs else None)


def quantile_interval(
    sorted_values: Sequence[float], q: float, tail: float = TAIL_95
) -> tuple[float | None, float | None]:
    """The values of ``quantile_ranks`` for ``q`` in percent (0 < q < 100); None: unbounded."""
    low, high = quantile_ranks(len(sorted_values), q / 100.0, tail)
    return (
        None if low is None else sorted_values[low - 1],
        None if high is None else sorted_values[high - 1],
    )


def rtt_confidence(stats: RttStats, rtts: Sequence[float]) -> RttConfidence:
    """The confidence of ``stats``, computed from the same received ``rtts`` (any order).

    Bounds are clamped like the percentiles (inside the exact [min, max] ping printed) and
    widened to hold the estimate itself: interpolated p50 / p99 may sit a rank past a bound.
    """
    loss_lo = loss_hi = None
    if stats.sent >= 1:
        low, high = wilson(stats.sent - stats.received, stats.sent)
        loss_lo, loss_hi = 100.0 * low, 100.0 * high
    ranked = sorted(rtts)
    p50 = _bounds(ranked, 50, stats.rtt_p50_ms, stats)
    p99 = _bounds(ranked, 99, stats.rtt_p99_ms, stats)
    few = None if stats.rtt_p99_ms is None else len(ranked) < P99_MIN_SAMPLES
    return RttConfidence(loss_lo, loss_hi, *p50, *p99, few)


def _bounds(
    ranked: Sequence[float], q: float, estimate: float | None, stats: RttStats
) -> tuple[float | None, float | None]:
    fence_lo, fence_hi = stats.rtt_min_ms, stats.rtt_max_ms
    if estimate is None or not ranked or fence_lo is None or fence_hi is None:
        return None, None
    lo, hi = quantile_interval(ranked, q)
    return (
        None if lo is None else min(max(lo, fence_lo), fence_hi, estimate),
        None if hi is None else max(min(hi, fence_hi), fence_lo, estimate),
    )


def short_for_rtt(duration_s: float, rtt_ms: float) -> bool:
    """A bandwidth test of ``duration_s`` (measured, after the omitted ramp) lasts fewer than
    ``MIN_RTTS_PER_TEST`` round trips of the path: its goodput is mostly slow start."""
    return duration_s * 1000.0 < MIN_RTTS_PER_TEST * rtt_ms
