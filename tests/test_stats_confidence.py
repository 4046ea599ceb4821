"""Confidence of the RTT statistics: Wilson intervals and order-statistic ranks, checked against
exact binomial sums in pure Python (fractions, no scipy) and by hypothesis."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.stats import (
    P99_MIN_SAMPLES,
    Z_95,
    quantile_interval,
    quantile_ranks,
    rtt_confidence,
    rtt_stats,
    short_for_rtt,
    wilson,
)
from probe.tools.ping import PingProbe

QS = {50: Fraction(1, 2), 99: Fraction(99, 100), 90: Fraction(9, 10)}


def exact_cdf(n: int, q: Fraction) -> list[Fraction]:
    """P(B ≤ k) for k = 0 … n, B ~ Binomial(n, q), as exact fractions (integer sums over qⁿ's
    common denominator)."""
    a, b = q.numerator, q.denominator - q.numerator  # q = a/d, 1 − q = b/d
    total, out = 0, []
    for i in range(n + 1):
        total += math.comb(n, i) * a**i * b ** (n - i)
        out.append(Fraction(total, q.denominator**n))
    return out


def reference_ranks(cdf: list[Fraction]) -> tuple[int | None, int | None]:
    n, tail = len(cdf) - 1, Fraction(1, 40)
    lows = [k for k in range(1, n + 1) if cdf[k - 1] <= tail]
    highs = [k for k in range(1, n + 1) if cdf[k - 1] >= 1 - tail]
    return (lows[-1] if lows else None), (highs[0] if highs else None)


# --- Wilson ----------------------------------------------------------------------------------


def test_wilson_on_the_issues_link() -> None:
    # 20 probes on a 5.9 % link read 0 % and 10 %: both intervals hold the true loss
    for lost in (0, 2):
        low, high = wilson(lost, 20)
        assert low <= 0.059 <= high
    assert wilson(0, 20)[0] == 0.0
    assert wilson(0, 20)[1] == pytest.approx(0.16113, abs=1e-5)
    assert wilson(2, 20)[0] == pytest.approx(0.02787, abs=1e-5)
    assert wilson(2, 20)[1] == pytest.approx(0.30103, abs=1e-5)
    assert wilson(20, 20)[1] == 1.0


@pytest.mark.parametrize(("events", "trials"), [(0, 0), (3, 2), (-1, 5)])
def test_wilson_refuses_impossible_counts(events: int, trials: int) -> None:
    with pytest.raises(ValueError, match="proportion"):
        wilson(events, trials)


def _score(p: float, events: int, n: int) -> float:
    """The score statistic's excess: ≤ 0 exactly for the p inside the Wilson interval."""
    return (events / n - p) ** 2 - Z_95**2 * p * (1 - p) / n


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=5000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))))  # fmt: skip
def test_wilson_is_the_score_test_region(counts: tuple[int, int]) -> None:
    events, n = counts
    low, high = wilson(events, n)
    assert 0.0 <= low <= events / n <= high <= 1.0
    # the bounds are the roots of the score quadratic (or the edge of [0, 1])
    assert low == 0.0 or abs(_score(low, events, n)) < 1e-9
    assert high == 1.0 or abs(_score(high, events, n)) < 1e-9
    # just inside passes the test, just outside fails it
    for inside in (low + (high - low) * 0.001, high - (high - low) * 0.001):
        assert _score(inside, events, n) <= 1e-12
    if low > 1e-6:
        assert _score(low - 1e-6, events, n) > 0


# --- order statistics ------------------------------------------------------------------------


def test_ranks_hand_checked() -> None:
    # Binomial(20, ½): F(5) = 21700/2²⁰ = 0.0207 ≤ 0.025 < F(6); F(14) = 0.9793 ≥ 0.975
    assert quantile_ranks(20, 0.5) == (6, 15)
    assert quantile_ranks(5, 0.5) == (None, None)  # ½⁵ = 0.031 > 0.025: no bound at all
    assert quantile_ranks(6, 0.5) == (1, 6)
    # p99 of 20: 0.99²⁰ = 0.818 of samples sets all below ξ: no upper bound
    assert quantile_ranks(20, 0.99) == (19, None)
    assert quantile_ranks(367, 0.99)[1] is None  # 0.99³⁶⁷ = 0.0250…
    assert quantile_ranks(368, 0.99)[1] == 368  # 0.99³⁶⁸ = 0.0248 ≤ 0.025


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.sampled_from(sorted(QS)))
def test_ranks_are_the_exact_binomial_ones(n: int, percent: int) -> None:
    cdf = exact_cdf(n, QS[percent])
    low, high = quantile_ranks(n, percent / 100)
    assert (low, high) == reference_ranks(cdf)
    # coverage ≥ 95 % by construction: each missing side is open, each present one misses ≤ 2.5 %
    below = Fraction(0) if low is None else cdf[low - 1]
    above = Fraction(0) if high is None else 1 - cdf[high - 1]
    assert 1 - below - above >= Fraction(95, 100)
    if low is not None and high is not None:
        assert low < high


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.01, max_value=1e4, allow_nan=False), min_size=1, max_size=500),
    st.integers(min_value=0, max_value=30),
)
def test_confidence_brackets_every_estimate(rtts: list[float], lost: int) -> None:
    probes = [PingProbe(i + 1, r) for i, r in enumerate(rtts)]
    stats = rtt_stats(probes, sent=len(rtts) + lost)
    conf = rtt_confidence(stats, rtts)
    assert conf.loss_lo_pct is not None and conf.loss_hi_pct is not None
    assert 0.0 <= conf.loss_lo_pct <= stats.loss_pct <= conf.loss_hi_pct <= 100.0
    for lo, estimate, hi in (
        (conf.rtt_p50_lo_ms, stats.rtt_p50_ms, conf.rtt_p50_hi_ms),
        (conf.rtt_p99_lo_ms, stats.rtt_p99_ms, conf.rtt_p99_hi_ms),
    ):
        assert estimate is not None
        assert lo is None or min(rtts) <= lo <= estimate
        assert hi is None or estimate <= hi <= max(rtts)
    assert conf.p99_few_samples is (len(rtts) < P99_MIN_SAMPLES)
    ranked = sorted(rtts)
    assert (conf.rtt_p99_hi_ms is None) == (quantile_interval(ranked, 99)[1] is None)


def test_confidence_of_nothing_received() -> None:
    stats = rtt_stats([PingProbe(1, None), PingProbe(2, None)])
    conf = rtt_confidence(stats, [])
    assert conf.loss_hi_pct == 100.0 and conf.loss_lo_pct is not None and conf.loss_lo_pct > 0
    assert conf.rtt_p50_lo_ms is conf.rtt_p99_hi_ms is conf.p99_few_samples is None


def test_p99_of_twenty_is_flagged_and_unbounded() -> None:
    rtts = [10.0 + i for i in range(20)]
    stats = rtt_stats([PingProbe(i + 1, r) for i, r in enumerate(rtts)])
    conf = rtt_confidence(stats, rtts)
    assert conf.p99_few_samples is True
    assert conf.rtt_p99_hi_ms is None and conf.rtt_p99_lo_ms == 28.0  # the 19th of 20
    assert (conf.rtt_p50_lo_ms, conf.rtt_p50_hi_ms) == (15.0, 24.0)  # ranks 6 and 15


@pytest.mark.parametrize(
    ("duration_s", "rtt_ms", "short"),
    [(2.0, 220.0, True), (4.0, 220.0, True), (5.0, 220.0, False), (1.0, 10.0, False),
     (1.9, 100.0, True), (10.0, 100.0, False)],
)  # fmt: skip
def test_bandwidth_test_too_short_for_rtt(duration_s: float, rtt_ms: float, short: bool) -> None:
    assert short_for_rtt(duration_s, rtt_ms) is short
