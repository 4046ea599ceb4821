"""RTT statistics: hand-computed cases, numpy as the percentile oracle, invariants by hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.stats import RttStats, percentile, rtt_stats
from probe.tools.ping import PingProbe, PingSummary


def probes(*rtts: float | None) -> list[PingProbe]:
    return [PingProbe(seq=i + 1, rtt_ms=r) for i, r in enumerate(rtts)]


# --- percentile ------------------------------------------------------------------------------


def test_percentile_hand_computed() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0  # position 3 · 0.5 = 1.5: 20 + 0.5 · 10
    assert percentile(values, 90) == pytest.approx(37.0)  # position 2.7: 30 + 0.7 · 10
    assert percentile(values, 99) == pytest.approx(39.7)  # position 2.97: 30 + 0.97 · 10
    assert percentile([7.5], 99) == 7.5


@pytest.mark.parametrize("q", [-0.1, 100.1, math.nan])
def test_percentile_refuses_q_outside_0_100(q: float) -> None:
    with pytest.raises(ValueError, match="percentile q"):
        percentile([1.0], q)


def test_percentile_of_nothing() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


finite_ms = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(st.lists(finite_ms, min_size=1, max_size=200), st.floats(min_value=0, max_value=100))
def test_percentile_is_numpys_linear(values: list[float], q: float) -> None:
    ranked = sorted(values)
    expected = float(np.percentile(ranked, q, method="linear"))
    assert percentile(ranked, q) == pytest.approx(expected, rel=1e-12, abs=1e-9)


# --- rtt_stats, by hand ----------------------------------------------------------------------


def test_rtt_stats_hand_computed() -> None:
    stats = rtt_stats(probes(10.0, None, 14.0, 11.0, 13.0))
    # received 10, 14, 11, 13 (seq order); sorted 10, 11, 13, 14
    assert (stats.sent, stats.received) == (5, 4)
    assert stats.loss_pct == 20.0  # 1 of 5
    assert (stats.rtt_min_ms, stats.rtt_max_ms) == (10.0, 14.0)
    assert stats.rtt_mean_ms == 12.0  # 48 / 4
    assert stats.rtt_p50_ms == 12.0  # position 1.5: 11 + 0.5 · 2
    assert stats.rtt_p90_ms == pytest.approx(13.7)  # position 2.7: 13 + 0.7 · 1
    assert stats.rtt_p99_ms == pytest.approx(13.97)  # position 2.97
    # deviations −2, +2, −1, +1: squares 4 + 4 + 1 + 1 = 10, / 4 = 2.5, √2.5 = 1.5811…
    assert stats.rtt_mdev_ms == pytest.approx(math.sqrt(2.5))
    # consecutive replies across the loss: |14 − 10| + |11 − 14| + |13 − 11| = 9, / 3 = 3
    assert stats.ipdv_ms == 3.0
    assert stats.pdv_p99_ms == pytest.approx(3.97)  # 13.97 − 10


def test_ipdv_follows_seq_order_not_arrival_order() -> None:
    shuffled = [PingProbe(3, 30.0), PingProbe(1, 10.0), PingProbe(2, 20.0)]
    assert rtt_stats(shuffled).ipdv_ms == 10.0  # 10 → 20 → 30, not 30 → 10 → 20


def test_summary_wins_for_min_mean_max_mdev() -> None:
    # iputils printed 240, 242, 245 for 239.604 … 244.501
    summary = PingSummary(rtt_min_ms=239.604, rtt_avg_ms=241.9, rtt_max_ms=244.501, rtt_mdev_ms=2.0)
    stats = rtt_stats(probes(240.0, 242.0, 245.0), summary=summary)
    assert (stats.rtt_min_ms, stats.rtt_mean_ms, stats.rtt_max_ms, stats.rtt_mdev_ms) == (
        239.604,
        241.9,
        244.501,
        2.0,
    )
    assert stats.rtt_p50_ms == 242.0
    assert stats.rtt_p99_ms == 244.501  # 242 + 0.98 · 3 = 244.94, clamped to the exact max


def test_summary_without_mdev_computes_it() -> None:
    summary = PingSummary(rtt_min_ms=1.0, rtt_avg_ms=2.0, rtt_max_ms=3.0, rtt_mdev_ms=None)
    stats = rtt_stats(probes(1.0, 3.0), summary=summary)
    assert stats.rtt_mdev_ms == 1.0  # deviations ±1


def test_counts_given_by_ping_win() -> None:
    stats = rtt_stats(probes(1.0, None, 3.0), sent=4, received=3)
    assert stats.loss_pct == 25.0
    assert stats.rtt_mean_ms == 2.0


def test_nothing_received() -> None:
    stats = rtt_stats(probes(None, None))
    assert stats == RttStats(2, 0, 100.0, *([None] * 9))


def test_one_reply_has_no_ipdv() -> None:
    stats = rtt_stats(probes(None, 5.0))
    assert stats.ipdv_ms is None
    assert (stats.rtt_p50_ms, stats.rtt_mdev_ms, stats.pdv_p99_ms) == (5.0, 0.0, 0.0)


def test_counted_replies_without_readable_lines() -> None:
    stats = rtt_stats(probes(None), received=1)
    assert (stats.loss_pct, stats.rtt_mean_ms) == (0.0, None)


@pytest.mark.parametrize(
    ("sent", "received", "message"),
    [
        (0, None, "no probe"),
        (1, 2, "received 2 out of 1"),
        (None, -1, "received -1"),
    ],
)
def test_inconsistent_counts_are_bugs(sent: int | None, received: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rtt_stats(probes(1.0), sent=sent, received=received)


# --- invariants ------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    st.lists(st.one_of(st.none(), finite_ms), min_size=1, max_size=100),
    st.integers(min_value=0, max_value=5),
    st.booleans(),
)
def test_rtt_stats_invariants(
    rtts: list[float | None], extra_lost: int, with_summary: bool
) -> None:
    got = [r for r in rtts if r is not None]
    summary = None
    if with_summary and got:
        # what ping would print: exact bounds, while the per-packet values may be rounded
        summary = PingSummary(min(got) - 0.4, sum(got) / len(got), max(got) + 0.4, None)
    stats = rtt_stats(probes(*rtts), sent=len(rtts) + extra_lost, summary=summary)
    assert 0.0 <= stats.loss_pct <= 100.0
    assert stats.received == len(got)
    if not got:
        assert stats.rtt_min_ms is stats.rtt_p50_ms is stats.rtt_mdev_ms is None
        return
    figures = (
        stats.rtt_min_ms,
        stats.rtt_p50_ms,
        stats.rtt_p90_ms,
        stats.rtt_p99_ms,
        stats.rtt_max_ms,
    )
    chain = [v for v in figures if v is not None]
    assert len(chain) == len(figures)  # none is None
    assert chain == sorted(chain)
    assert stats.rtt_mean_ms is not None and chain[0] <= stats.rtt_mean_ms <= chain[-1]
    assert stats.rtt_mdev_ms is not None and stats.rtt_mdev_ms >= 0
    assert stats.pdv_p99_ms is not None and stats.pdv_p99_ms >= 0
    assert (stats.ipdv_ms is None) == (len(got) < 2)
    if stats.ipdv_ms is not None:
        assert 0 <= stats.ipdv_ms <= max(got) - min(got)
