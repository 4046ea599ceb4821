"""RTT statistics of one ordered pair, from every probe (lost ones included).

Pure and stdlib-only: this runs once per cell and must not drag pandas into the core.
There is deliberately no bare "jitter": ``rtt_mdev_ms``, ``ipdv_ms`` and ``pdv_p99_ms`` are three
different things that all get called jitter somewhere.
"""

from __future__ import annotations

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
