"""The rule choosing the address a source uses for a destination (probe.networks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from probe.networks import (
    DEFAULT_NETWORK,
    NetworkChoice,
    NetworkOrder,
    NoRoute,
    Route,
    host_networks,
    ranked,
    route,
    routes,
    shared_networks,
)


@dataclass(frozen=True)
class H:
    name: str
    region: str = "r1"
    address: str = "192.0.2.1"
    addresses: Mapping[str, str] = field(default_factory=dict)


A = H("a", "us", addresses={"vpc-us": "10.0.1.5", "public": "203.0.113.7", "mesh": "100.64.0.3"})
B = H("b", "us", addresses={"vpc-us": "10.0.1.6", "public": "203.0.113.8", "mesh": "100.64.0.4"})
C = H("c", "eu", addresses={"vpc-eu": "10.1.1.5", "public": "198.51.100.9", "mesh": "100.64.0.5"})
ORDER = NetworkOrder(networks=("vpc-us", "vpc-eu", "mesh", "public"))


def test_a_host_written_with_address_only_is_on_network_default() -> None:
    assert host_networks(H("x", address="192.0.2.9")) == {DEFAULT_NETWORK: "192.0.2.9"}


def test_the_first_shared_network_in_the_order_wins() -> None:
    assert route(A, B, ORDER) == Route("vpc-us", "10.0.1.6")  # same VPC: private
    assert route(A, C, ORDER) == Route("mesh", "100.64.0.5")  # across regions: the overlay


def test_a_region_pair_override_applies_both_ways_and_a_one_way_entry_wins() -> None:
    both = {("us", "eu"): ("public", "mesh"), ("eu", "us"): ("public", "mesh")}
    order = NetworkOrder(ORDER.networks, {**both, ("eu", "us"): ("mesh",)})
    assert route(A, C, order) == Route("public", "198.51.100.9")
    assert route(C, A, order) == Route("mesh", "100.64.0.3")
    assert route(A, B, order) == Route("vpc-us", "10.0.1.6")  # us→us: the top-level order


def test_unlisted_networks_come_after_the_listed_default_first_then_by_name() -> None:
    assert ranked(["zeta", "alpha", "default", "listed"], ["listed"]) == [
        "listed", "default", "alpha", "zeta",
    ]  # fmt: skip
    assert ranked(["b", "a"], []) == ["a", "b"]


def test_no_shared_network_is_not_measurable_with_a_reason() -> None:
    lonely = H("d", addresses={"lab": "172.16.0.1"})
    found = route(A, lonely, ORDER)
    assert isinstance(found, NoRoute)
    assert found.reason == "no network in common: a on mesh, public, vpc-us, d on lab"


def test_network_choice_only_and_every() -> None:
    assert routes(A, C, ORDER, NetworkChoice(only="public")) == (Route("public", "198.51.100.9"),)
    off = routes(A, C, ORDER, NetworkChoice(only="vpc-us"))
    assert off == NoRoute("c not on network vpc-us (--network)")
    every = routes(A, B, ORDER, NetworkChoice(every=True))
    assert every == (
        Route("vpc-us", "10.0.1.6"), Route("mesh", "100.64.0.4"), Route("public", "203.0.113.8"),
    )  # fmt: skip


NETWORKS = st.sampled_from(["default", "vpc", "public", "mesh", "lab", "x"])
HOSTS = st.dictionaries(NETWORKS, st.just("192.0.2.1"), max_size=5)


@given(HOSTS, HOSTS, st.lists(NETWORKS, unique=True), st.booleans())
def test_the_chosen_network_is_shared_and_first_in_the_order(
    mine: dict[str, str], theirs: dict[str, str], listed: list[str], every: bool
) -> None:
    src, dst = H("s", addresses=mine), H("d", addresses=theirs)
    order = NetworkOrder(tuple(listed))
    shared = set(host_networks(src)) & set(host_networks(dst))
    found = routes(src, dst, order, NetworkChoice(every=every))
    if not shared:
        assert isinstance(found, NoRoute)
        return
    assert not isinstance(found, NoRoute)
    assert {r.network for r in found} <= shared
    assert len(found) == (len(shared) if every else 1)
    first = found[0].network
    rank = ranked(shared, listed)
    assert first == rank[0] == shared_networks(src, dst, order)[0]
    if any(n in listed for n in shared):  # a listed shared network beats every unlisted one
        assert first == min((n for n in shared if n in listed), key=listed.index)
    assert all(r.address == host_networks(dst)[r.network] for r in found)
