"""Network-local groups on synthetic matrices with known regions."""

from __future__ import annotations

from probe.decide.groups import Group, find_groups, good_pairs
from probe.decide.options import Limits
from probe.decide.scenarios import Links, Workload
from probe.decide.shapes import preset
from probe.matrix.anchors import Anchors
from probe.model import CellStatus
from tests.decide.fleet import make_anchors, pair

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
