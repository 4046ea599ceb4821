"""Who may aim at whom (probe.reach): the rules, the plan's roles with -R, and properties."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.model import INBOUND_ALL, INBOUND_NONE, Host, Inbound, PortRange, SshTarget
from probe.plan import BandwidthTest, PairMode, schedule_rounds, select_pairs, select_ping_pairs
from probe.reach import PingWay, bandwidth_roles, ping_reach, pings, server_ports

RUN_PORTS = PortRange(5201, 5264)
ICMP_ONLY = Inbound(icmp=True, tcp=())
TCP_ONLY = Inbound(icmp=False, tcp=(PortRange(1, 65535),))


def host(name: str, inbound: Inbound = INBOUND_ALL, ports: PortRange | None = None) -> Host:
    return Host(name, f"{name}.example", SshTarget(name), inbound=inbound, iperf3_ports=ports)


def by_name(*hosts: Host) -> dict[str, Host]:
    return {h.name: h for h in hosts}


def test_rtt_toward_a_host_refusing_icmp_comes_from_its_own_ping() -> None:
    nat, open_ = host("nat", INBOUND_NONE), host("open")
    assert ping_reach(open_, nat).way is PingWay.FROM_REVERSE
    assert ping_reach(open_, nat).reason == (
        "from the reverse direction: nat accepts no inbound ICMP"
    )
    assert ping_reach(nat, open_).way is PingWay.DIRECT and ping_reach(nat, open_).reason is None
    hosts = by_name(nat, open_)
    assert pings([("open", "nat"), ("nat", "open")], hosts) == [("nat", "open")]


def test_two_hosts_refusing_icmp_are_not_measurable_naming_both() -> None:
    reach = ping_reach(host("a", TCP_ONLY), host("b", INBOUND_NONE))
    assert reach.way is PingWay.NOT_MEASURABLE
    assert reach.reason == "neither a nor b accepts inbound ICMP: neither can ping the other"


def test_a_server_listens_only_on_iperf3_ports_its_host_accepts() -> None:
    assert server_ports(host("a"), RUN_PORTS) == RUN_PORTS
    assert server_ports(host("a", ports=PortRange(6000, 6009)), RUN_PORTS) == PortRange(6000, 6009)
    one = Inbound(icmp=True, tcp=(PortRange(22, 22), PortRange(5210, 5300)))
    assert server_ports(host("a", one), RUN_PORTS) == PortRange(5210, 5264)
    assert server_ports(host("a", ICMP_ONLY), RUN_PORTS) is None
    ssh_only = Inbound(icmp=True, tcp=(PortRange(22, 22),))
    assert server_ports(host("a", ssh_only), RUN_PORTS) is None


def test_a_restricted_host_is_the_client_both_ways_its_download_with_minus_r() -> None:
    hosts = by_name(host("nat", INBOUND_NONE), host("srv"), host("fw", ICMP_ONLY))
    roles = bandwidth_roles([("srv", "nat"), ("fw", "srv")], hosts, RUN_PORTS)
    assert roles.pairs == (("nat", "srv"), ("fw", "srv"))
    assert roles.reverse_for == {("nat", "srv"), ("fw", "srv")}
    plan = schedule_rounds(roles.pairs, reverse_for=roles.reverse_for)
    assert set(plan.all_tests) == {
        BandwidthTest("nat", "srv"),  # nat's upload
        BandwidthTest("nat", "srv", reverse=True),  # nat's download: srv sends, nat connects
        BandwidthTest("fw", "srv"),
        BandwidthTest("fw", "srv", reverse=True),
    }
    assert {t.direction for t in plan.all_tests} == {
        ("nat", "srv"), ("srv", "nat"), ("fw", "srv"), ("srv", "fw"),
    }  # fmt: skip
    assert "cwnd and TCP RTT not available" in BandwidthTest.REVERSE_NOTE


def test_hosts_that_both_accept_keep_swapped_roles_without_minus_r() -> None:
    hosts = by_name(host("a"), host("b"))
    roles = bandwidth_roles([("a", "b")], hosts, RUN_PORTS)
    assert roles.pairs == (("a", "b"),) and not roles.reverse_for and not roles.not_measurable
    tests = schedule_rounds(roles.pairs, reverse_for=roles.reverse_for).all_tests
    assert tests == (BandwidthTest("a", "b"), BandwidthTest("b", "a"))


def test_a_pair_neither_end_of_which_can_serve_is_not_measurable_saying_why() -> None:
    ssh_only = Inbound(icmp=True, tcp=(PortRange(22, 22),))
    hosts = by_name(host("nat", INBOUND_NONE), host("sg", ssh_only))
    roles = bandwidth_roles([("nat", "sg")], hosts, RUN_PORTS)
    assert roles.pairs == () and not roles.reverse_for
    assert roles.not_measurable == {
        ("nat", "sg"): "neither nat nor sg can be the iperf3 server: nat accepts no inbound "
        "TCP; sg accepts inbound TCP on 22, not on its iperf3 ports 5201-5264"
    }


_INBOUNDS = st.sampled_from(
    [
        INBOUND_ALL,
        INBOUND_NONE,
        ICMP_ONLY,
        TCP_ONLY,
        Inbound(icmp=True, tcp=(PortRange(5201, 5201),)),
        Inbound(icmp=False, tcp=(PortRange(22, 22),)),
        Inbound(icmp=True, tcp=(PortRange(7000, 7100),)),
    ]
)
_PORTS = st.sampled_from([None, PortRange(7000, 7010), PortRange(5201, 5201)])


@st.composite
def fleets(draw: st.DrawFn) -> list[Host]:
    n = draw(st.integers(2, 9))
    return [
        Host(
            f"h{i}", f"10.0.0.{i}", SshTarget(f"h{i}"),
            region=draw(st.sampled_from(["r1", "r2", "r3"])),
            inbound=draw(_INBOUNDS), iperf3_ports=draw(_PORTS),
        )
        for i in range(n)
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(fleets(), st.sampled_from(["all", "intra-region", "sample"]))
def test_nothing_planned_ever_targets_a_host_that_refuses_it(hosts: list[Host], kind: str) -> None:
    """No ping toward a host refusing ICMP, no iperf3 server on a host refusing TCP on its
    iperf3 ports; every planned RTT cell is exactly one of measured directly, from the reverse
    direction (whose ping is planned) or not measurable, and so is every bandwidth pair."""
    named = by_name(*hosts)
    mode = PairMode(kind, 1 if kind == "sample" else None)  # type: ignore[arg-type]
    plan = select_ping_pairs(hosts, mode)
    pinged = pings(plan.pairs, named)
    assert all(named[dst].inbound.icmp for _, dst in pinged)
    ways: Counter[PingWay] = Counter()
    for src, dst in plan.pairs:
        way = ping_reach(named[src], named[dst]).way
        ways[way] += 1
        assert ((src, dst) in pinged) is (way is PingWay.DIRECT)
        if way is PingWay.FROM_REVERSE:
            assert (dst, src) in pinged
    assert sum(ways.values()) == len(plan.pairs)

    pairs = select_pairs(hosts, PairMode("all" if kind == "sample" else kind))  # type: ignore[arg-type]
    roles = bandwidth_roles(pairs, named, RUN_PORTS)
    tests = schedule_rounds(roles.pairs, reverse_for=roles.reverse_for).all_tests
    for test in tests:
        assert server_ports(named[test.server], RUN_PORTS) is not None
    directions = Counter(t.direction for t in tests)
    assert set(directions.values()) <= {1}
    for a, b in pairs:
        measured = (a, b) in directions and (b, a) in directions
        refused = (a, b) in roles.not_measurable
        assert measured != refused  # exactly one of the two
        assert not ((a, b) in directions) ^ ((b, a) in directions)


@pytest.mark.parametrize(("a", "b"), list(permutations([INBOUND_ALL, INBOUND_NONE, ICMP_ONLY], 2)))
def test_the_two_cells_of_a_pair_are_never_both_from_reverse(a: Inbound, b: Inbound) -> None:
    """A copy needs an original: at most one direction of a pair is copied."""
    ways = {ping_reach(host("x", a), host("y", b)).way, ping_reach(host("y", b), host("x", a)).way}
    assert ways != {PingWay.FROM_REVERSE}
