"""Topology parsing and link resolution (pure: no lab needed)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from probe.errors import InputError
from probe.lab.topology import (
    LinkParams,
    Topology,
    in_series,
    load_topology,
    parse_topology,
    ports_text,
)
from probe.lab.truth import pair_truth, truth_table
from probe.model import PortRange
from tests.conftest import DEFAULT_TOPOLOGY, ROOT, RUN_TAG, unique_topology

CHAIN_TOPOLOGY = ROOT / "inventory" / "lab-chain.yaml"

BASE = """
name: t1
prefix: pt-
jump: j
regions:
  eu: {hosts: {j: 198.18.1.1, a: 198.18.1.2}}
  us: {hosts: {b: 198.18.2.1}}
links:
  default: {delay: 1ms}
  intra: {delay: 0.5ms}
  eu-us: {delay: 20ms, jitter: 2ms, rate: 100mbit}
  us>eu: {rate: 50mbit}
pairs:
  a>b: {loss: 1%}
"""


def topo(text: str = BASE) -> Topology:
    return parse_topology(text, source="t.yaml")


def test_resolution_layers_override_field_by_field() -> None:
    t = topo()
    assert t.links["j", "a"].delay_ms == 0.5  # intra beats default
    ab, ba = t.links["a", "b"], t.links["b", "a"]
    assert (ab.delay_ms, ab.rate_bps, ab.loss_pct) == (20.0, 100e6, 1.0)  # pair a>b adds loss only
    assert (ba.delay_ms, ba.rate_bps, ba.loss_pct) == (20.0, 50e6, 0.0)  # us>eu overrides rate only


def test_truth_combines_both_directions() -> None:
    t = topo()
    tr = pair_truth(t, "a", "b")
    assert tr.rtt_ms == 40.0
    assert tr.rtt_std_ms == pytest.approx(math.hypot(2, 2))
    assert tr.ipdv_ms == pytest.approx(2 * math.hypot(2, 2) / math.sqrt(math.pi))
    assert tr.loss_pct == pytest.approx(1.0)  # 1 - (1-0.01)(1-0)
    assert (tr.rate_fwd_bps, tr.rate_rev_bps) == (100e6, 50e6)
    assert tr.tcp_max_fwd_bps == pytest.approx(100e6 * 1448 / 1500)


def test_access_link_in_series() -> None:
    combined = in_series(
        LinkParams(delay_ms=20, jitter_ms=2, rate_bps=100e6, loss_pct=1),
        LinkParams(delay_ms=6, jitter_ms=1, rate_bps=10e6, loss_pct=1, queue_ms=100),
    )
    assert combined.delay_ms == 26
    assert combined.jitter_ms == pytest.approx(math.sqrt(5))
    assert combined.rate_bps == 10e6 and combined.queue_ms == 100
    assert combined.loss_pct == pytest.approx(100 * (1 - 0.99 * 0.99))


def test_default_topology_has_the_promised_shape() -> None:
    t = load_topology(str(DEFAULT_TOPOLOGY))
    assert len(t.hosts) == 8 and len({h.region for h in t.hosts}) == 3
    eu1, us1, ap1, home = "eu1", "us1", "ap1", "home1"
    assert pair_truth(t, eu1, "eu2").rtt_ms == pytest.approx(0.5)
    assert pair_truth(t, eu1, us1).rtt_ms == pytest.approx(40)
    assert pair_truth(t, eu1, ap1).rtt_ms == pytest.approx(240)
    assert pair_truth(t, eu1, ap1).rate_fwd_bps == 20e6
    up, down = pair_truth(t, home, eu1).rate_fwd_bps, pair_truth(t, home, eu1).rate_rev_bps
    assert up < down  # residential: asymmetric


@pytest.mark.parametrize(
    ("patch", "line", "message"),
    [
        (("198.18.2.1", "10.0.0.1"), 7, "outside 198.18.0.0/15"),
        (("jump: j", "jump: nope"), 4, "jump host 'nope'"),
        (("delay: 1ms", "delay: 1"), 9, "needs a unit"),
        (("eu-us:", "eu-mars:"), 11, "links.eu-mars"),
        (("a>b:", "a>zz:"), 14, "pairs.a>zz"),
        (("name: t1", "name: t1\nnmae: x"), 3, "did you mean 'name'"),
        (("b: 198.18.2.1", "b: 198.18.1.2"), 7, "already used by a"),
        (("prefix: pt-", "prefix: 'pt; rm'"), 3, "prefix"),
        (("{loss: 1%}", "{loss: 140%}"), 14, "above 100%"),
    ],
)
def test_bad_topologies_name_file_line_and_key(
    patch: tuple[str, str], line: int, message: str
) -> None:
    with pytest.raises(InputError, match=r"t\.yaml") as err:
        topo(BASE.replace(*patch))
    assert message in str(err.value)
    assert err.value.where == f"t.yaml:{line}"


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_topology("/nonexistent/topo.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match=r"bad.yaml:\d+"):
        load_topology(str(bad))


def test_each_test_run_gets_its_own_lab_identity(tmp_path: Path) -> None:
    """Two test runs on one machine must not share a lab name, prefix or controller link."""
    base = load_topology(str(DEFAULT_TOPOLOGY))
    mine = load_topology(str(unique_topology(DEFAULT_TOPOLOGY, tmp_path)))
    others = [
        load_topology(str(unique_topology(DEFAULT_TOPOLOGY, tmp_path, slot=slot)))
        for slot in (1, 2, 3)
    ]
    labs = [base, mine, *others]
    assert RUN_TAG in mine.name and RUN_TAG in mine.prefix
    assert len({base.name, mine.name}) == 2 and len({t.prefix for t in labs}) == 5
    assert len({t.controller_addresses for t in labs}) == 5
    assert [h.name for h in mine.hosts] == [h.name for h in base.hosts]


CHAIN = """
name: t2
prefix: pt-
jump: j
regions:
  eu: {via: a, hosts: {j: 198.18.1.1, a: 198.18.1.2}}
  us:
    via: i
    hosts:
      i: 198.18.2.1
      b: 198.18.2.2
  ap: {hosts: {c: {address: 198.18.3.1, via: i}, d: 198.18.3.2}}
"""


def test_jump_chains_from_a_hosts_via_its_regions_or_the_top_level_jump() -> None:
    t = parse_topology(CHAIN, source="t.yaml")
    vias = {h.name: h.via for h in t.hosts}
    # a region's via skips the host it names and the top-level jump; d has neither: jump j
    assert vias == {"j": None, "a": "j", "i": "j", "b": "i", "c": "i", "d": "j"}
    assert t.chain("b") == t.chain("c") == ("j", "i")
    assert t.chain("i") == t.chain("d") == ("j",) and t.chain("j") == ()


@pytest.mark.parametrize(
    ("patch", "line", "message"),
    [
        (("via: i\n", "via: x\n"), 8, "via: 'x' is not a host of any region"),
        (("via: i}", "via: ii}"), 12, "(did you mean 'i'?)"),
        (("via: i}", "via: c}"), 12, "host c cannot be its own jump host"),
        (("i: 198.18.2.1", "i: {address: 198.18.2.1, via: b}"), 10, "jump cycle i → b → i"),
        (("j: 198.18.1.1", "j: {address: 198.18.1.1, via: a}"), 6, "j is the top-level jump"),
        (("ap: {hosts", "ap: {bogus: 1, hosts"), 12, "unknown key 'regions.ap.bogus'"),
    ],
)
def test_bad_chains_name_file_line_and_why(patch: tuple[str, str], line: int, message: str) -> None:
    """Every chain must end at the top-level jump host, the only one the controller reaches."""
    with pytest.raises(InputError) as err:
        parse_topology(CHAIN.replace(*patch), source="t.yaml")
    assert message in str(err.value)
    assert err.value.where == f"t.yaml:{line}"


def test_the_chain_lab_has_two_hops_behind_an_inner_jump_in_another_region() -> None:
    t = load_topology(str(CHAIN_TOPOLOGY))
    inner = t.host("inner")
    assert inner.region != t.host(t.jump).region and not inner.measure
    behind = [h.name for h in t.hosts if t.chain(h.name) == (t.jump, "inner")]
    assert 2 <= len(behind) <= 3 and all(t.host(h).measure for h in behind)


# --- hosts unlike the others (issue 13: real fleets) -----------------------------------------

FLEET = """
name: t3
jump: j
regions:
  eu:
    hosts:
      j: 198.18.1.1
      a: {address: 198.18.1.2, firewall: {drop_tcp: "5201-5299,8080"}, cc: cubic}
      b: {address: 198.18.1.3, user: probe-u, unprivileged_icmp: false, tools: busybox}
"""


def test_a_host_may_drop_tcp_ports_log_in_as_a_user_and_have_its_own_tools_and_cc() -> None:
    t = parse_topology(FLEET, source="t.yaml")
    a, b, j = t.host("a"), t.host("b"), t.host("j")
    drops = (PortRange(5201, 5299), PortRange(8080, 8080))
    assert (a.drop_tcp, a.cc, a.user, a.tools) == (drops, "cubic", None, "system")
    assert (b.user, b.unprivileged_icmp, b.tools, b.cc) == ("probe-u", False, "busybox", None)
    assert (j.drop_tcp, j.user, j.unprivileged_icmp, j.cc) == ((), None, True, None)
    assert ports_text(a.drop_tcp) == "5201-5299,8080"
    # probe's default plan serves src→dst from dst: every test into a is blocked, none out of it
    assert [(p.src, p.dst) for p in truth_table(t)[0] if p.bw_status == "blocked"] == [
        ("j", "a"), ("b", "a")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("patch", "line", "message"),
    [
        (('"5201-5299,8080"', '"20-30"'), 8, "drop_tcp': 20-30 covers the SSH port 22"),
        (('"5201-5299,8080"', '"5299-5201"'), 8, "'5299-5201': ports are 1…65535, the low"),
        (('"5201-5299,8080"', '"70000"'), 8, "'70000': ports are 1…65535"),
        (('"5201-5299,8080"', "iperf"), 8, "'iperf': expected PORT or LO-HI"),
        (("{drop_tcp:", "{drop_udp:"), 8, "unknown key 'regions.eu.hosts.a.firewall.drop_udp'"),
        (("cc: cubic", "cc: vegas"), 8, "one of cubic, bbr, got 'vegas'"),
        (("cc: cubic", "cc: cubic, natt: j"), 8, "unknown key 'regions.eu.hosts.a.natt'"),
        (("user: probe-u", "user: root"), 9, "root is every lab host's login already"),
        (("user: probe-u", "user: Probe"), 9, "'Probe' must match"),
        (("user: probe-u, ", ""), 9, "unprivileged_icmp: false needs a user: root has ICMP"),
        (("tools: busybox", "tools: toybox"), 9, "one of system, busybox"),
    ],
)
def test_bad_host_properties_name_file_line_and_why(
    patch: tuple[str, str], line: int, message: str
) -> None:
    with pytest.raises(InputError) as err:
        parse_topology(FLEET.replace(*patch), source="t.yaml")
    assert message in str(err.value)
    assert err.value.where == f"t.yaml:{line}"


def test_the_ssh_port_decides_which_ports_a_firewall_may_drop() -> None:
    moved = FLEET.replace("name: t3", "name: t3\nssh: {port: 2222}")
    assert parse_topology(moved.replace("5201-5299,8080", "20-30"), source="t.yaml")
    with pytest.raises(InputError, match="covers the SSH port 2222"):
        parse_topology(moved.replace("5201-5299,8080", "2200-2299"), source="t.yaml")
