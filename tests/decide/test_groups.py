"""Network-local groups on synthetic matrices with known regions."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from probe.decide.groups import Group, find_groups, good_pairs, group_run, one_way_pairs
from probe.decide.options import Limits, PipelineOptions
from probe.decide.scenarios import Links, Workload
from probe.decide.shapes import preset
from probe.matrix.anchors import Anchors
from probe.model import CellStatus
from tests.decide.fleet import from_rtt_matrix, make_anchors, pair

W = Workload(preset("llama-3-8b"))
REGIONS = {"us-east": 6, "us-west": 5, "eu-west": 4, "ap-ne": 3}
CROSS = {
    frozenset(("us-east", "us-west")): 64.0,
    frozenset(("us-east", "eu-west")): 66.0,
    frozenset(("us-east", "ap-ne")): 150.0,
    frozenset(("us-west", "eu-west")): 126.0,
    frozenset(("us-west", "ap-ne")): 100.0,
    frozenset(("eu-west", "ap-ne")): 200.0,
}


def _regions(groups: list[Group]) -> list[set[str]]:
    return [set(g.members) for g in groups]


def _expected(anchors: Anchors) -> list[set[str]]:
    return [{h.name for h in anchors.hosts_in(r)} for r in REGIONS]


def test_groups_are_exactly_the_regions() -> None:
    a = make_anchors(REGIONS, CROSS)
    groups = find_groups(Links.from_anchors(a), Limits(5.0, 1e9), 3, W)
    assert _regions(groups) == _expected(a)
    g = groups[0]
    assert g.regions == ("us-east",) and g.max_rtt_ms == 0.5 and g.min_bw_bps == 10_000e6
    assert len(g.order) == 3 and g.decode is not None and g.prefill is not None
    # 2 hops × (0.25 + 8192·8/1e10·1e3 = 0.0065536) ms
    assert g.decode.per_step.network_p50_ms == 2 * (0.25 + 0.0065536)


def test_a_slow_link_inside_a_region_splits_it() -> None:
    base = make_anchors(REGIONS, CROSS)
    a0, a1 = base.host("us-east-0"), base.host("us-east-1")
    slow = {("us-east-0", "us-east-1"): pair(a0, a1, 0.5, 100.0)}  # 100 Mbit/s < 1 Gbit/s floor
    a = make_anchors(REGIONS, CROSS, overrides=slow)
    groups = find_groups(Links.from_anchors(a), Limits(5.0, 1e9), 3, W)
    us_east = [set(g.members) for g in groups if g.regions == ("us-east",)]
    assert sorted(len(g) for g in us_east) == [1, 5]
    assert not any({"us-east-0", "us-east-1"} <= g for g in us_east)
    assert {h.name for h in a.hosts_in("ap-ne")} in _regions(groups)


def test_an_unmeasured_cell_is_never_good() -> None:
    base = make_anchors({"r": 3})
    dead = pair(base.host("r-2"), base.host("r-0"), 0.5, status=CellStatus.TIMEOUT)
    a = make_anchors({"r": 3}, overrides={("r-2", "r-0"): dead})
    links = Links.from_anchors(a)
    good = good_pairs(links, Limits(5.0))
    i0, i2 = links.index["r-0"], links.index["r-2"]
    assert not good[i0, i2] and not good[i2, i0]
    assert sorted(len(g.members) for g in find_groups(links, Limits(5.0), 2, W)) == [1, 2]


def test_missing_goodput_fails_a_bandwidth_floor_but_not_a_latency_only_limit() -> None:
    a = make_anchors({"r": 3}, bw_mbps=None)
    links = Links.from_anchors(a)
    assert [len(g.members) for g in find_groups(links, Limits(5.0, 1e9), 2, W)] == [1, 1, 1]
    assert [len(g.members) for g in find_groups(links, Limits(5.0), 2, W)] == [3]


def test_close_regions_merge_when_the_limits_allow() -> None:
    a = make_anchors(REGIONS, CROSS)
    groups = find_groups(Links.from_anchors(a), Limits(70.0, 1e9), 2, W)
    # us-east↔us-west 64 and us-east↔eu-west 66 are within 70 ms, but us-west↔eu-west is 126:
    # only one of the two can join us-east; the closer (us-west, 64 ms) wins
    assert [g.regions for g in groups] == [("us-east", "us-west"), ("eu-west",), ("ap-ne",)]
    assert groups[0].max_rtt_ms == 64.0
    # the best 2-stage order stays inside one region
    assert len({a.host(h).region for h in groups[0].order}) == 1


def test_p99_limit_is_stricter() -> None:
    a = make_anchors({"r": 3})  # p50 0.5 ms, p99 0.75 ms
    links = Links.from_anchors(a)
    assert len(find_groups(links, Limits(0.6), 2, W)) == 1
    assert len(find_groups(links, Limits(0.6, rtt_stat="p99"), 2, W)) == 3


def test_region_labels_are_a_hint_not_a_wall() -> None:
    # five cloud regions, one label each, all within 30 ms of one another; a sixth far away
    rtt = np.full((6, 6), 80.0)
    rtt[:5, :5] = [
        [0, 12, 25, 28, 29],
        [12, 0, 18, 22, 27],
        [25, 18, 0, 9, 14],
        [28, 22, 9, 0, 11],
        [29, 27, 14, 11, 0],
    ]
    regions = ["eu-west", "eu-central", "us-east", "us-east-2", "ca-central", "ap-south"]
    groups = find_groups(Links.from_anchors(from_rtt_matrix(rtt, regions)), Limits(30.0), 2, W)
    assert [g.members for g in groups] == [("h0", "h1", "h2", "h3", "h4"), ("h5",)]
    assert groups[0].exact and groups[0].size_bound == 5 and groups[0].max_rtt_ms == 29.0
    assert groups[0].regions == tuple(sorted(regions[:5]))


def test_among_equally_large_groups_the_fewest_regions_win() -> None:
    # h0..h2 all within 10 ms; h1 and h2 share a label with h3, which is close to both but not h0
    rtt = np.array([[0, 5, 5, 50], [5, 0, 5, 5], [5, 5, 0, 5], [50, 5, 5, 0]], dtype=np.float64)
    groups = find_groups(
        Links.from_anchors(from_rtt_matrix(rtt, ["a", "b", "b", "b"])), Limits(10.0), 2, W
    )
    assert [g.members for g in groups] == [("h1", "h2", "h3"), ("h0",)]


def test_a_matrix_measured_one_way_uses_the_reverse_cell_with_a_warning() -> None:
    a = from_rtt_matrix(np.full((4, 4), 2.0), ["r"] * 4, bw_mbps=10_000.0, one_way=True)
    res = group_run(a, Limits(5.0, 1e9), PipelineOptions(stages=2))
    assert [g.members for g in res.groups] == [("h0", "h1", "h2", "h3")]
    assert not res.groups[0].latency_only and res.groups[0].min_bw_bps == 10_000e6
    assert any("6 host pair(s) measured in one direction only" in n for n in res.notes)


def test_a_direction_measured_and_failed_is_not_replaced_by_the_reverse() -> None:
    rtt = np.full((3, 3), 2.0)
    rtt[1, 0] = np.nan  # h1 → h0 timed out; h0 → h1 is ok
    a = from_rtt_matrix(rtt, ["r"] * 3)
    assert one_way_pairs(Links.from_anchors(a)) == 0
    assert [len(g.members) for g in find_groups(Links.from_anchors(a), Limits(5.0), 2, W)] == [
        2,
        1,
    ]


def test_without_bandwidth_groups_form_on_rtt_and_figures_are_lower_bounds() -> None:
    a = make_anchors({"r": 4}, bw_mbps=None)
    res = group_run(a, Limits(5.0, 10e9), PipelineOptions(stages=4))
    assert res.limits.min_bw_bps is None
    assert any("goodput floor (10000 Mbit/s) is not applied" in n for n in res.notes)
    assert any("figures (≥) are lower bounds" in n for n in res.notes)
    (g,) = res.groups
    assert g.members == ("r-0", "r-1", "r-2", "r-3") and g.latency_only and g.min_bw_bps is None
    assert len(g.order) == 4 and g.decode is not None and g.decode.per_step.lower_bound
    assert g.max_rtt_ms == 0.5


def test_a_floor_on_a_run_with_bandwidth_still_holds() -> None:
    res = group_run(make_anchors({"r": 3}, bw_mbps=100.0), Limits(5.0, 1e9), PipelineOptions())
    assert [len(g.members) for g in res.groups] == [1, 1, 1] and res.notes == ()


def test_the_max_rtt_figure_is_of_the_limits_statistic() -> None:
    a = make_anchors({"r": 3})  # p50 0.5 ms, p99 0.75 ms
    links = Links.from_anchors(a)
    assert find_groups(links, Limits(1.0), 2, W)[0].max_rtt_ms == 0.5
    assert find_groups(links, Limits(1.0, rtt_stat="p99"), 2, W)[0].max_rtt_ms == 0.75


@st.composite
def _matrices(draw: st.DrawFn) -> tuple[NDArray[np.float64], list[str], bool]:
    n = draw(st.integers(2, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rtt = rng.uniform(1.0, 60.0, (n, n))
    rtt[rng.random((n, n)) < draw(st.floats(0.0, 0.3))] = np.nan
    regions = [f"r{int(x)}" for x in rng.integers(0, draw(st.integers(1, 4)), n)]
    return rtt, regions, draw(st.booleans())


def _cell_rtt(a: Anchors, src: str, dst: str, stat: str) -> float:
    """The RTT standing for ``src → dst`` read straight from the cells (reverse if not tried)."""
    p = a.pair(src, dst) or a.pair(dst, src)
    assert p is not None and p.rtt is not None
    return p.rtt.p99_ms if stat == "p99" else p.rtt.p50_ms


def _within(a: Anchors, src: str, dst: str, stat: str, max_rtt: float) -> bool:
    own, back = a.pair(src, dst), a.pair(dst, src)
    p = own if own is not None else back
    return p is not None and p.rtt is not None and _cell_rtt(a, src, dst, stat) <= max_rtt


@settings(max_examples=80, deadline=None)
@given(_matrices(), st.floats(5.0, 60.0), st.sampled_from(["p50", "p99"]))
def test_every_group_keeps_the_limits_pairwise_both_ways(
    m: tuple[NDArray[np.float64], list[str], bool], max_rtt: float, stat: str
) -> None:
    rtt, regions, one_way = m
    a = from_rtt_matrix(rtt, regions, one_way=one_way)
    limits = Limits(max_rtt, rtt_stat="p99" if stat == "p99" else "p50")
    groups = find_groups(Links.from_anchors(a), limits, 2, W)
    assert sorted(h for g in groups for h in g.members) == sorted(h.name for h in a.hosts)
    for g in groups:
        for x, y in itertools.permutations(g.members, 2):
            assert _within(a, x, y, stat, max_rtt)
    names = [h.name for h in a.hosts]
    largest = max(
        k
        for k in range(1, len(names) + 1)
        for c in itertools.combinations(names, k)
        if all(_within(a, x, y, stat, max_rtt) for x, y in itertools.permutations(c, 2))
    )
    assert len(groups[0].members) == largest  # brute force over every subset
    # exact on a handful of hosts: no larger group among the hosts left exists
    assert all(g.exact and g.size_bound == len(g.members) for g in groups)


def test_a_direction_the_plan_could_not_measure_uses_the_reverse_cell() -> None:
    base = make_anchors({"r": 2})
    a0, a1 = base.host("r-0"), base.host("r-1")
    a = make_anchors(
        {"r": 2}, overrides={("r-1", "r-0"): pair(a1, a0, 0.0, status=CellStatus.NOT_MEASURABLE)}
    )
    links = Links.from_anchors(a)
    assert one_way_pairs(links) == 1
    assert [g.members for g in find_groups(links, Limits(5.0), 2, W)] == [("r-0", "r-1")]
