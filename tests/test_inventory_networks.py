"""Inventory keys of named networks: ``addresses:``, ``networks:``, ``network_order:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import InputError
from probe.inventory import parse_inventory
from probe.model import Inventory
from probe.networks import NetworkOrder

FLEET = """\
networks: [vpc-us, vpc-eu, mesh, public]
network_order:
  us-east-eu-west: [public, mesh]
  eu-west>us-east: [mesh]
hosts:
  - name: us1
    region: us-east
    addresses: {vpc-us: 10.0.1.5, public: 203.0.113.7, mesh: 100.64.0.3}
  - name: us2
    region: us-east
    addresses: {public: 203.0.113.8, vpc-us: 10.0.1.6}
  - name: eu1
    region: eu-west
    addresses: {vpc-eu: 10.1.1.5, mesh: 100.64.0.5}
  - name: old
    region: eu-west
    address: 192.0.2.4
"""


def parse(text: str) -> Inventory:
    return parse_inventory(text, source="inv.yaml", base_dir=Path("/base"))


def error(text: str) -> str:
    with pytest.raises(InputError) as info:
        parse(text)
    return str(info.value)


def test_addresses_networks_and_the_region_pair_order_are_read() -> None:
    inv = parse(FLEET)
    us1 = inv.host("us1")
    assert us1.addresses == {"vpc-us": "10.0.1.5", "public": "203.0.113.7", "mesh": "100.64.0.3"}
    # the host's own address (and SSH's default) is its first network in `networks:`
    assert us1.address == us1.ssh.host == "10.0.1.5"
    assert inv.host("us2").address == "10.0.1.6"
    old = inv.host("old")
    assert (old.address, old.addresses) == ("192.0.2.4", {})  # `address:` = network default
    assert inv.networks == NetworkOrder(
        ("vpc-us", "vpc-eu", "mesh", "public"),
        {("us-east", "eu-west"): ("public", "mesh"), ("eu-west", "us-east"): ("mesh",)},
    )


def test_the_same_address_on_two_networks_is_fine_twice_on_one_is_not() -> None:
    two = """\
hosts:
  - {name: a, addresses: {vpc-a: 10.0.0.5}}
  - {name: b, addresses: {vpc-b: 10.0.0.5}}
"""
    assert len(parse(two).hosts) == 2
    clash = two.replace("vpc-b", "vpc-a")
    assert error(clash) == (
        "inv.yaml:3: address 10.0.0.5 on network vpc-a is also host 'a' (inv.yaml:2)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "hosts:\n  - {name: a, address: 10.0.0.1, addresses: {x: 10.0.0.2}}\n",
            "inv.yaml:2: host has both 'address' (inv.yaml:2) and 'addresses': use one",
        ),
        (
            "hosts:\n  - name: a\n    addresses: {}\n",
            "inv.yaml:3: 'addresses' is empty: give at least one NETWORK: ADDRESS",
        ),
        (
            "hosts:\n  - name: a\n    addresses: {'x;y': 10.0.0.1}\n",
            "inv.yaml:3: bad network name 'x;y'",
        ),
        (
            "hosts:\n  - name: a\n    addresses: {lan: '10.0.0.1;rm'}\n",
            "inv.yaml:3: bad address on lan '10.0.0.1;rm': not an IP address or DNS name",
        ),
        (
            "networks: [lan, publik]\nhosts:\n  - {name: a, addresses: {lan: 1.2.3.4, public: "
            "5.6.7.8}}\n",
            "inv.yaml:1: unknown network 'publik': no host has an address on it "
            "(did you mean 'public'?)",
        ),
        (
            "networks: [lan, lan]\nhosts:\n  - {name: a, addresses: {lan: 1.2.3.4}}\n",
            "inv.yaml:1: network 'lan' is listed twice",
        ),
        (
            "network_order:\n  r1-r2:\n    - wan\nhosts:\n  - {name: a, region: r1, addresses: "
            "{lan: 1.2.3.4}}\n  - {name: b, region: r2, addresses: {lan: 1.2.3.5}}\n",
            "inv.yaml:3: unknown network 'wan': no host has an address on it",
        ),
        (
            "network_order: {eu-us: [lan]}\nhosts:\n  - {name: a, region: r1, address: 1.2.3.4}\n",
            "inv.yaml:1: network_order 'eu-us' names no pair of this inventory's regions (r1): "
            "write 'ra-rb' (both ways) or 'ra>rb'",
        ),
        (
            "network_order: {a-b-c: [default]}\nhosts:\n  - {name: h1, region: a, address: "
            "1.2.3.4}\n  - {name: h2, region: b-c, address: 1.2.3.5}\n  - {name: h3, region: "
            "a-b, address: 1.2.3.6}\n  - {name: h4, region: c, address: 1.2.3.7}\n",
            "inv.yaml:1: network_order 'a-b-c' is ambiguous (a>b-c or a-b>c): use 'ra>rb' entries",
        ),
        (
            "defaults: {addresses: {lan: 1.2.3.4}}\nhosts:\n  - {name: a, address: 1.2.3.4}\n",
            "inv.yaml:1: 'addresses' cannot be a default: it belongs to one host",
        ),
    ],
)
def test_every_mistake_is_one_line_naming_file_and_line(text: str, message: str) -> None:
    assert error(text).startswith(message)
