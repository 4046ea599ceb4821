"""Region spread: the range of a region pair's pair figures, multi-modal regions, and the
interval of a median over pairs (``matrix.regions``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.matrix.anchors import PairAnchor, RttAnchor
from probe.matrix.regions import Spread, median_interval, p50_spreads, spread
from probe.model import CellStatus


def test_a_region_with_a_residential_host_is_multi_modal() -> None:
    # eu→eu with one residential host of four: 6 pairs near 0.5 ms, 6 near 16 ms, median 8
    values = [0.45, 0.5, 0.52, 0.55, 0.6, 0.62, 15.5, 15.8, 16.0, 16.1, 16.3, 16.5]
    assert spread(values) == Spread(0.45, 16.5, 12, True)


@pytest.mark.parametrize(
    "values",
    [
        [0.4, 0.45, 0.5, 1.2],  # a busy LAN host: 0.7 ms is no second mode
        [75.0, 76.5, 78.0, 79.0, 80.5, 82.0],  # one WAN path, evenly spread
        [70.0, 71.0, 72.0, 85.0, 100.0],  # a gap, but the upper side is as wide as it
        [5.0],
    ],
)
def test_one_mode(values: list[float]) -> None:
    found = spread(values)
    assert found is not None and not found.multimodal
    assert (found.low_ms, found.high_ms) == (min(values), max(values))


def test_two_datacentres_behind_one_label_are_multi_modal() -> None:
    found = spread([69.5, 70.0, 70.4, 89.8, 90.0, 90.6])
    assert found is not None and found.multimodal


def test_no_pairs_no_spread() -> None:
    assert spread([]) is None


def _pair(src: str, dst: str, p50: float, status: CellStatus = CellStatus.OK) -> PairAnchor:
    rtt = RttAnchor(p50, p50, p50, p50, p50, p50) if status is CellStatus.OK else None
    return PairAnchor(src, dst, src[:2], dst[:2], status, rtt=rtt)


def test_p50_spreads_read_the_ok_pairs_of_each_region_pair() -> None:
    pairs = [
        _pair("eu1", "eu2", 0.5),
        _pair("eu2", "eu1", 0.6),
        _pair("eu1", "us1", 80.0),
        _pair("eu2", "us1", 0.0, CellStatus.TIMEOUT),
    ]
    found = p50_spreads(pairs)
    assert found == {
        ("eu", "eu"): Spread(0.5, 0.6, 2, False),
        ("eu", "us"): Spread(80.0, 80.0, 1, False),
    }


def test_median_interval_over_six_pairs_or_more_is_the_order_statistic_one() -> None:
    values = [0.5] * 6 + [16.0] * 6  # Binomial(12, ½): ranks 3 and 10
    assert median_interval(values, []) == (0.5, 16.0)
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], []) == (2.0, 8.0)


def test_median_interval_of_few_pairs_is_the_envelope_of_theirs() -> None:
    bounds: list[tuple[float | None, float | None]] = [(9.0, 11.0), (19.0, 22.0)]
    assert median_interval([10.0, 20.0], bounds) == (9.0, 22.0)
    assert median_interval([10.0, 20.0], [(9.0, None), (19.0, 22.0)]) == (9.0, None)
    assert median_interval([], []) == (None, None)


@given(st.lists(st.floats(min_value=0.01, max_value=1e3), min_size=1, max_size=60))
def test_the_median_lies_in_its_interval(values: list[float]) -> None:
    import statistics

    bounds: list[tuple[float | None, float | None]] = [(v * 0.9, v * 1.1) for v in values]
    low, high = median_interval(values, bounds)
    median = statistics.median(values)
    assert low is not None and high is not None and low <= median <= high
    found = spread(values)
    assert found is not None and found.low_ms <= median <= found.high_ms
