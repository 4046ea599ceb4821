"""Measuring over named networks with a fake connector: which address each pair is pinged and
tested at, per --network / --networks all, and what a pair without a shared network gets."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.errors import InputError
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.context import RunOptions
from probe.measure.measurement import Measurement
from probe.measure.resume import check_inventory, check_network
from probe.model import Host, Inventory, SshTarget
from probe.networks import NetworkOrder
from probe.store.records import PingFanoutRecord, SampleRecord
from probe.store.rundoc import InventoryRef, RunDoc, RunHost
from tests.measure.test_measurement import FakePool, cells

ADDRESSES = {
    "a": {"lan": "10.0.0.1", "wan": "203.0.113.1"},
    "b": {"lan": "10.0.0.2", "wan": "203.0.113.2"},
    "c": {"wan": "203.0.113.3"},
    "d": {"vpn": "172.16.0.4"},  # shares no network with anyone
}


def inventory() -> Inventory:
    hosts = tuple(
        Host(name, next(iter(on.values())), SshTarget(f"192.0.2.{i}"), addresses=on)
        for i, (name, on) in enumerate(ADDRESSES.items(), 1)
    )
    return Inventory("fake.yaml", "0", hosts, networks=NetworkOrder(("lan", "wan")))


def measure(**opts: Any) -> tuple[list[SampleRecord], FakePool]:
    inv = inventory()
    pool = FakePool(inv.hosts)
    pool.host_of = {a: h.name for h in inv.hosts for a in h.addresses.values()}
    records: list[SampleRecord] = []
    options = RunOptions(**{"count": 3, "bw": BandwidthOptions(duration_s=1, omit_s=0), **opts})

    async def go() -> None:
        m = Measurement(inv, pool, options, records.append, lambda _s: None)
        await m.connect()
        await m.ping_mesh()
        await m.bandwidth()

    asyncio.run(go())
    return records, pool


def pinged(records: list[SampleRecord]) -> set[tuple[str, str, str, str | None]]:
    return {(r.src, r.dst, r.network, r.address) for r in cells(records, "ping")}


def test_each_pair_is_pinged_and_tested_at_the_rules_address() -> None:
    records, _ = measure()
    # d shares no network: no record (the matrix says not-measurable)
    assert pinged(records) == {
        ("a", "b", "lan", "10.0.0.2"), ("b", "a", "lan", "10.0.0.1"),
        ("a", "c", "wan", "203.0.113.3"), ("c", "a", "wan", "203.0.113.1"),
        ("b", "c", "wan", "203.0.113.3"), ("c", "b", "wan", "203.0.113.2"),
    }  # fmt: skip
    tests = {(r.src, r.dst, r.network, r.address) for r in cells(records, "iperf3")}
    assert ("a", "b", "lan", "10.0.0.2") in tests and ("c", "a", "wan", "203.0.113.1") in tests
    assert all(r.status == "ok" for r in cells(records, "iperf3")) and len(tests) == 6


def test_networks_all_pings_a_destination_once_per_network_in_one_command() -> None:
    records, pool = measure(networks="all")
    assert ("a", "b", "lan", "10.0.0.2") in pinged(records)
    assert ("a", "b", "wan", "203.0.113.2") in pinged(records)
    assert len(pinged(records)) == 8  # a↔b twice, a↔c and b↔c once
    fanouts = Counter(r.src for r in records if isinstance(r, PingFanoutRecord))
    assert fanouts == {"a": 1, "b": 1, "c": 1}  # one command per source still
    a_command = next(r.argv for r in records if isinstance(r, PingFanoutRecord) and r.src == "a")
    assert {"10.0.0.2", "203.0.113.2", "203.0.113.3"} <= set(a_command)
    tests = Counter((r.src, r.dst, r.network) for r in cells(records, "iperf3"))
    assert tests[("a", "b", "lan")] == tests[("a", "b", "wan")] == tests[("b", "a", "wan")] == 1
    assert len(tests) == 8
    dialled = {c[c.index("-c") + 1] for c in pool.commands if c[0] == "iperf3" and "-c" in c}
    assert {"10.0.0.2", "203.0.113.2"} <= dialled


def test_network_only_measures_the_pairs_both_on_it() -> None:
    records, _ = measure(network="wan")
    assert pinged(records) == {
        (s, d, "wan", ADDRESSES[d]["wan"]) for s in "abc" for d in "abc" if s != d
    }


def test_an_unknown_network_is_refused_before_anything_connects() -> None:
    with pytest.raises(InputError, match="--network wlan: no measured host is on it"):
        check_network(inventory(), "wlan")
    check_network(inventory(), "vpn")
    check_network(inventory(), None)


def test_network_and_networks_all_exclude_each_other() -> None:
    with pytest.raises(InputError, match="network"):
        RunOptions(network="lan", networks="all")
    with pytest.raises(InputError, match="networks"):
        RunOptions(networks="some")


def test_a_resume_refuses_other_addresses_or_another_network_order() -> None:
    inv = inventory()
    run = RunDoc("r", "0", InventoryRef("fake.yaml", "0"), "2026-11-23T00:00:00Z",
                 tuple(RunHost.of(h) for h in inv.hosts), networks=inv.networks)  # fmt: skip
    assert check_inventory(run, inv, Path("run")) is None
    reordered = replace(inv, networks=NetworkOrder(("wan", "lan")))
    with pytest.raises(InputError, match="networks or network_order differ"):
        check_inventory(run, reordered, Path("run"))
    moved = replace(inv.hosts[0], addresses={"lan": "10.0.0.99", "wan": "203.0.113.1"})
    with pytest.raises(InputError, match="a addresses"):
        check_inventory(run, replace(inv, hosts=(moved, *inv.hosts[1:])), Path("run"))
