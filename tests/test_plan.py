"""Pair selection and bandwidth rounds: exhaustive for full meshes, property-based elsewhere."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import InputError
from probe.model import Host, SshTarget
from probe.plan import (
    BandwidthPlan,
    BandwidthTest,
    PairMode,
    parse_pair_mode,
    parse_ping_pairs,
    per_test_wall_s,
    ping_mesh_pairs,
    schedule_rounds,
    select_pairs,
    select_ping_pairs,
    site_of_hosts,
)

Pair = tuple[str, str]


def fleet(regions: Sequence[str], zones: Sequence[str | None] | None = None) -> list[Host]:
    zones = zones or [None] * len(regions)
    return [
        Host(f"h{i}", f"198.18.0.{i}", SshTarget(f"h{i}"), region=r, zone=z)
        for i, (r, z) in enumerate(zip(regions, zones, strict=True))
    ]


def full_mesh(n: int) -> list[Pair]:
    return [(f"h{i}", f"h{j}") for i, j in combinations(range(n), 2)]


def assert_valid(plan: BandwidthPlan, pairs: Sequence[Pair], *, both: bool = True) -> None:
    """Every selected direction exactly once, and no host twice in a round."""
    wanted = Counter([*pairs, *((b, a) for a, b in pairs)] if both else pairs)
    assert Counter(t.direction for t in plan.all_tests) == wanted
    for tests in plan.rounds:
        hosts = [h for t in tests for h in (t.client, t.server)]
        assert len(hosts) == len(set(hosts)) and tests
    assert plan.tests == len(plan.all_tests) == sum(wanted.values())


def max_degree(pairs: Sequence[Pair], key: Callable[[str], str] = str) -> int:
    load: Counter[str] = Counter()
    for a, b in pairs:
        load.update({key(a), key(b)})
    return max(load.values())


@pytest.mark.parametrize("n", range(2, 41))
def test_full_mesh_is_optimal(n: int) -> None:
    pairs = full_mesh(n)
    plan = schedule_rounds(pairs)
    assert_valid(plan, pairs)
    per_direction = n - 1 if n % 2 == 0 else n
    assert len(plan.rounds) == 2 * per_direction
    assert len(schedule_rounds(pairs, directions="forward").rounds) == per_direction


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 40), st.randoms(use_true_random=False), st.booleans())
def test_any_subset_within_vizing_bound(n: int, rng: object, reverse_flag: bool) -> None:
    import random

    assert isinstance(rng, random.Random)
    density = rng.random()
    pairs = [p for p in full_mesh(n) if rng.random() < density] or [("h0", "h1")]
    rng.shuffle(pairs)
    plan = schedule_rounds(pairs, reverse_flag=reverse_flag)
    assert_valid(plan, pairs)
    assert len(plan.rounds) <= 2 * (max_degree(pairs) + 1)  # Misra–Gries: Δ+1 per direction
    flags = [(t.reverse, reverse_flag and i % 2 == 1) for i, r in enumerate(plan.rounds) for t in r]
    assert all(got is want for got, want in flags)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=40))
def test_site_exclusivity(site_index: list[int]) -> None:
    hosts = fleet([f"r{s}" for s in site_index])
    site_of = site_of_hosts(hosts, "region")
    pairs = select_pairs(hosts, PairMode("all"))
    plan = schedule_rounds(pairs, site_of=site_of, directions="forward")
    assert_valid(plan, pairs, both=False)
    for tests in plan.rounds:
        sites = [s for t in tests for s in {site_of(t.client), site_of(t.server)}]
        assert len(sites) == len(set(sites))
    load = max_degree(pairs, site_of)
    assert load <= len(plan.rounds) <= 2 * load - 1


def test_one_site_per_host_is_the_full_mesh() -> None:
    plan = schedule_rounds(full_mesh(6), site_of=lambda h: f"site-{h}")
    assert len(plan.rounds) == 10


def test_reverse_follows_forward_in_the_next_round() -> None:
    plan = schedule_rounds(full_mesh(5))
    for forward, backward in zip(plan.rounds[::2], plan.rounds[1::2], strict=True):
        assert [(t.server, t.client) for t in forward] == [t.direction for t in backward]
        assert not any(t.reverse for t in backward)  # swapped roles by default


def test_reverse_flag_keeps_client_and_server() -> None:
    plan = schedule_rounds([("a", "b")], reverse_flag=True)
    assert plan.all_tests == (BandwidthTest("a", "b"), BandwidthTest("a", "b", reverse=True))
    assert plan.all_tests[1].direction == ("b", "a")


@pytest.mark.parametrize("pairs", [[("a", "a")], [("a", "b"), ("b", "a")], [("a", "b")] * 2])
def test_schedule_refuses_self_and_duplicate_pairs(pairs: list[Pair]) -> None:
    with pytest.raises(InputError):
        schedule_rounds(pairs)


def test_empty_plan_and_estimates() -> None:
    assert schedule_rounds([]) == BandwidthPlan(())
    plan = schedule_rounds(full_mesh(4))
    per_test = per_test_wall_s(10, 2)
    assert per_test == 15.0
    assert plan.estimated_duration_s(per_test) == 6 * 15.0
    summary = "bandwidth plan: 6 rounds, 12 tests, ~1 min 30 s at 15 s per round"
    assert plan.summary(per_test) == summary


@pytest.mark.parametrize(
    ("text", "mode"),
    [("all", PairMode("all")), (" cross-region ", PairMode("cross-region")),
     ("intra-region", PairMode("intra-region")), ("sample:3", PairMode("sample", 3))],
)  # fmt: skip
def test_parse_pair_mode(text: str, mode: PairMode) -> None:
    assert parse_pair_mode(text) == mode
    assert parse_pair_mode(str(mode)) == mode


@pytest.mark.parametrize("text", ["", "ALL", "sample", "sample:0", "sample:-1", "sample:x", "mesh"])
def test_parse_pair_mode_refuses(text: str) -> None:
    with pytest.raises(InputError, match="--pairs"):
        parse_pair_mode(text)


regions_strategy = st.lists(st.sampled_from(["eu", "us", "ap", "sa"]), min_size=2, max_size=40)


@settings(max_examples=150, deadline=None)
@given(regions_strategy)
def test_all_is_cross_plus_intra(regions: list[str]) -> None:
    hosts = fleet(regions)
    everything = select_pairs(hosts, PairMode("all"))
    assert everything == full_mesh(len(hosts))
    cross = select_pairs(hosts, PairMode("cross-region"))
    intra = select_pairs(hosts, PairMode("intra-region"))
    assert sorted(cross + intra) == sorted(everything)
    region = {h.name: h.region for h in hosts}
    assert all(region[a] != region[b] for a, b in cross)


@settings(max_examples=150, deadline=None)
@given(regions_strategy, st.integers(1, 5), st.integers(0, 2**32))
def test_sample_k(regions: list[str], k: int, seed: int) -> None:
    hosts = fleet(regions)
    region = {h.name: h.region for h in hosts}
    pairs = select_pairs(hosts, PairMode("sample", k), seed=seed)
    assert pairs == select_pairs(hosts, PairMode("sample", k), seed=seed)  # deterministic
    order = {h.name: i for i, h in enumerate(hosts)}
    assert all(order[a] < order[b] for a, b in pairs)
    intra = select_pairs(hosts, PairMode("intra-region"))
    assert set(intra) <= set(pairs)  # full mesh inside every region
    cross = [p for p in pairs if region[p[0]] != region[p[1]]]
    reps = {h for p in cross for h in p}
    sizes = Counter(region[h.name] for h in hosts)
    if len(sizes) > 1:  # K representatives per region (all of a small region)…
        assert Counter(region[h] for h in reps) == {r: min(k, n) for r, n in sizes.items()}
    # …and every pair of representatives across regions
    mesh = full_mesh(len(hosts))
    assert cross == [(a, b) for a, b in mesh if {a, b} <= reps and region[a] != region[b]]


def test_unmeasured_hosts_and_duplicate_names() -> None:
    hosts = fleet(["eu", "eu", "us"])
    hosts[1] = Host("h1", "x", SshTarget("h1"), measure=False)
    assert select_pairs(hosts, PairMode("all")) == [("h0", "h2")]
    assert ping_mesh_pairs(hosts) == [("h0", "h2"), ("h2", "h0")]
    with pytest.raises(InputError, match="h0"):
        select_pairs([hosts[0], hosts[0]], PairMode("all"))


@given(st.integers(2, 40))
def test_ping_mesh_is_every_ordered_pair(n: int) -> None:
    pairs = ping_mesh_pairs(fleet(["r"] * n))
    assert len(pairs) == len(set(pairs)) == n * (n - 1)
    assert all(a != b for a, b in pairs)


def test_site_of_by_zone() -> None:
    hosts = fleet(["eu", "eu", "eu", "us"], ["a", "b", None, None])
    by_zone = site_of_hosts(hosts, "zone")
    assert [by_zone(h.name) for h in hosts] == ["eu/a", "eu/b", "eu/?", "us/?"]
    assert site_of_hosts(hosts, "region")("h1") == "eu"


# --- sampled ping plans -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [("all", PairMode("all")), ("intra-region", PairMode("intra-region")),
     (" intra-zone", PairMode("intra-zone")), ("sample:2", PairMode("sample", 2))],
)  # fmt: skip
def test_parse_ping_pairs(text: str, mode: PairMode) -> None:
    assert parse_ping_pairs(text) == mode
    assert parse_ping_pairs(str(mode)) == mode


@pytest.mark.parametrize("text", ["", "cross-region", "sample:0", "zone", "All"])
def test_parse_ping_pairs_refuses(text: str) -> None:
    with pytest.raises(InputError, match="expected all, intra-region, intra-zone or sample:K"):
        parse_ping_pairs(text)


zoned_fleet = st.lists(
    st.tuples(st.sampled_from(["eu", "us", "ap"]), st.sampled_from(["a", "b", None])),
    min_size=1,
    max_size=30,
).map(lambda hz: fleet([r for r, _ in hz], [z for _, z in hz]))
ping_modes = st.one_of(
    st.sampled_from([PairMode(kind) for kind in ("all", "intra-region", "intra-zone")]),
    st.just(PairMode("cross-region")),  # not offered for ping, but a PairMode all the same
    st.integers(1, 4).map(lambda k: PairMode("sample", k)),
)


def planned_size(hosts: Sequence[Host], mode: PairMode) -> int:
    """The sizes PingPlan's docstring promises."""
    n = len(hosts)
    if mode.kind == "all":
        return n * (n - 1)
    key = (lambda h: (h.region, h.zone)) if mode.kind == "intra-zone" else (lambda h: h.region)
    sizes = Counter(key(h) for h in hosts)
    intra = sum(m * (m - 1) for m in sizes.values())
    if mode.kind == "cross-region":
        return n * (n - 1) - intra
    if mode.kind != "sample":
        return intra
    reps = [min(mode.sample_k or 1, m) for m in sizes.values()]
    return intra + sum(reps) ** 2 - sum(r * r for r in reps)


@settings(max_examples=200, deadline=None)
@given(zoned_fleet, ping_modes, st.integers(0, 2**32))
def test_ping_plan_properties(hosts: list[Host], mode: PairMode, seed: int) -> None:
    plan = select_ping_pairs(hosts, mode, seed=seed)
    assert plan == select_ping_pairs(hosts, mode, seed=seed)  # deterministic
    pairs = list(plan.pairs)
    assert all(a != b for a, b in pairs) and len(set(pairs)) == len(pairs)
    assert len(pairs) == planned_size(hosts, mode)
    everything = select_ping_pairs(hosts, PairMode("all")).pairs
    assert set(pairs) <= set(everything)
    assert sorted([*pairs, *plan.not_planned()]) == sorted(everything)  # disjoint, and all
    order = {h.name: i for i, h in enumerate(hosts)}
    assert pairs == sorted(pairs, key=lambda p: (order[p[0]], order[p[1]]))  # by source
    region = {h.name: h.region for h in hosts}
    zone = {h.name: (h.region, h.zone) for h in hosts}
    if mode.kind == "intra-region":
        assert all(region[a] == region[b] for a, b in pairs)
    if mode.kind == "intra-zone":
        assert all(zone[a] == zone[b] for a, b in pairs)
    if mode.kind == "cross-region":
        assert all(region[a] != region[b] for a, b in pairs)
    if mode.kind == "sample":
        assert set(select_ping_pairs(hosts, PairMode("intra-region")).pairs) <= set(pairs)
        cross = {(a, b) for a, b in pairs if region[a] != region[b]}
        assert {(b, a) for a, b in cross} == cross  # both directions between representatives
        sizes = Counter(region.values())
        k = mode.sample_k or 1
        for r in sizes:
            for s in sizes:
                if r != s:
                    sources = {a for a, b in cross if region[a] == r and region[b] == s}
                    assert len(sources) >= min(k, sizes[r])
        # the same representatives as the bandwidth plan's
        bandwidth = select_pairs(hosts, mode, seed=seed)
        assert {tuple(sorted(p)) for p in cross} == {
            tuple(sorted(p)) for p in bandwidth if region[p[0]] != region[p[1]]
        }


def test_every_host_is_a_representative_as_often() -> None:
    hosts = fleet(["eu"] * 4 + ["us"])
    chosen: Counter[str] = Counter()
    for seed in range(400):
        plan = select_ping_pairs(hosts, PairMode("sample", 1), seed=seed)
        chosen.update(a for a, b in plan.pairs if b == "h4")
    assert sum(chosen.values()) == 400
    assert all(70 <= chosen[f"h{i}"] <= 130 for i in range(4)), chosen


def test_ping_plan_small_example() -> None:
    hosts = fleet(["eu", "eu", "eu", "us"], ["a", "a", "b", None])
    plan = select_ping_pairs(hosts, PairMode("intra-zone"))
    assert plan.pairs == (("h0", "h1"), ("h1", "h0"))
    assert plan.hosts == ("h0", "h1", "h2", "h3")
    assert len(list(plan.not_planned())) == 12 - 2
    sampled = select_ping_pairs(hosts, PairMode("sample", 1), seed=7)
    eu_rep = next(a for a, b in sampled.pairs if b == "h3")
    assert (("h3", eu_rep) in sampled.pairs) and len(sampled.pairs) == 6 + 2
    # bandwidth's selection never crosses zones with intra-zone either
    assert select_pairs(hosts, PairMode("intra-zone")) == [("h0", "h1")]


def test_a_pair_over_two_networks_takes_a_round_pair_per_network() -> None:
    pairs = [("a", "b"), ("c", "d"), ("a", "c")]
    both = {frozenset("ab"): ("lan", "wan")}

    def networks(src: str, dst: str) -> tuple[str, ...]:
        return both.get(frozenset((src, dst)), ("wan",))

    plan = schedule_rounds(pairs, networks=networks)
    tests = plan.all_tests
    ab = {(t.client, t.server, t.network) for t in tests if {t.client, t.server} == {"a", "b"}}
    assert ab == {("a", "b", "lan"), ("b", "a", "lan"), ("a", "b", "wan"), ("b", "a", "wan")}
    assert len(tests) == 2 * (len(pairs) + 1)
    for round_ in plan.rounds:  # still no host twice in a round
        hosts = [h for t in round_ for h in (t.client, t.server)]
        assert len(hosts) == len(set(hosts))
    plain = schedule_rounds(pairs)
    assert {t.network for t in plain.all_tests} == {"default"}
