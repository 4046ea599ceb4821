"""Inventory keys of inbound-restricted hosts: ``inbound``, ``nat`` and ``iperf3_ports``.

(Their one-line errors are files in ``fixtures/inventory/bad``: ``nat-*``, ``inbound-*``,
``iperf3-ports-*``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import InputError
from probe.inventory import parse_inventory
from probe.model import INBOUND_ALL, INBOUND_NONE, Inbound, Inventory, PortRange


def parse(text: str) -> Inventory:
    return parse_inventory(text, source="inv.yaml", base_dir=Path("/base"))


def one(entry: str, defaults: str = "") -> Inventory:
    return parse(f"{defaults}hosts:\n  - {{name: a, address: 10.0.0.1, {entry}}}\n")


@pytest.mark.parametrize(
    ("written", "inbound"),
    [
        ("", INBOUND_ALL),
        ("inbound: all", INBOUND_ALL),
        ("inbound: none", INBOUND_NONE),
        ("inbound: icmp", Inbound(icmp=True, tcp=())),
        ("inbound: tcp", Inbound(icmp=False, tcp=(PortRange(1, 65535),))),
        ("inbound: 'tcp:5201'", Inbound(icmp=False, tcp=(PortRange(5201, 5201),))),
        (
            "inbound: [icmp, 'tcp:22', 'tcp:5201-5299']",
            Inbound(icmp=True, tcp=(PortRange(22, 22), PortRange(5201, 5299))),
        ),
        ("inbound: [icmp, tcp]", INBOUND_ALL),  # the same as all
        ("nat: true", INBOUND_NONE),
        ("nat: true, inbound: none", INBOUND_NONE),  # agreeing is fine
        ("nat: false, inbound: icmp", Inbound(icmp=True, tcp=())),
    ],
)
def test_inbound_is_read_as_written(written: str, inbound: Inbound) -> None:
    assert one(written).host("a").inbound == inbound


def test_inbound_words_read_back_equal() -> None:
    for words in (("all",), ("none",), ("icmp",), ("tcp",), ("icmp", "tcp:22", "tcp:5201-5299")):
        assert Inbound.parse(words).words == words
        assert Inbound.parse(Inbound.parse(words).words) == Inbound.parse(words)


def test_iperf3_ports_per_host_override_the_defaults() -> None:
    inv = parse(
        "defaults: {iperf3_ports: 6000-6099}\n"
        "hosts:\n"
        "  - {name: a, address: 10.0.0.1}\n"
        "  - {name: b, address: 10.0.0.2, iperf3_ports: 5201}\n"
        "  - {name: c, address: 10.0.0.3, iperf3_ports: null}\n"
    )
    assert inv.host("a").iperf3_ports == PortRange(6000, 6099)
    assert inv.host("b").iperf3_ports == PortRange(5201, 5201)
    assert inv.host("c").iperf3_ports is None  # null hides the default: the run's ports
    assert one("").host("a").iperf3_ports is None


def test_nat_hosts_behind_one_gateway_share_its_public_address() -> None:
    inv = parse(
        "hosts:\n"
        "  - {name: gw, address: 203.0.113.1}\n"
        "  - {name: home1, address: 203.0.113.1, nat: true}\n"
        "  - {name: home2, address: 203.0.113.1, inbound: none}\n"
    )
    assert [h.name for h in inv.measured] == ["gw", "home1", "home2"]
    with pytest.raises(InputError, match=r"address 203\.0\.113\.1 is also host 'gw'"):
        parse(
            "hosts:\n"
            "  - {name: gw, address: 203.0.113.1}\n"
            "  - {name: other, address: 203.0.113.1, inbound: icmp}\n"
        )


def test_a_contradiction_names_both_lines() -> None:
    with pytest.raises(InputError) as info:
        parse("hosts:\n  - name: a\n    address: 10.0.0.1\n    inbound: tcp\n    nat: true\n")
    assert info.value.where == "inv.yaml:5"
    assert str(info.value) == (
        "inv.yaml:5: 'nat: true' means inbound none, but 'inbound' (inv.yaml:4) says tcp"
    )
