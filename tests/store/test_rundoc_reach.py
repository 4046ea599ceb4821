"""run.json keeps what the matrix needs to redraw who could aim at whom: each host's
``inbound`` and ``iperf3_ports``, and the run's ``options.iperf3_ports``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import StoreError
from probe.model import INBOUND_ALL, INBOUND_NONE, Host, Inbound, PortRange, SshTarget
from probe.store.rundoc import RunHost, decode_run, encode_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "store"
OLD = (FIXTURES / "run-complete.json").read_text()

PORTS = st.builds(PortRange, st.integers(1, 65535), st.integers(1, 65535)).filter(lambda r: r.valid)
INBOUND = st.builds(Inbound, st.booleans(), st.lists(PORTS, max_size=3).map(tuple))


def test_a_file_written_before_them_reads_as_open_hosts_and_the_old_ports() -> None:
    run = decode_run(OLD, "run.json")
    assert all(h.inbound == INBOUND_ALL and h.iperf3_ports is None for h in run.hosts)
    assert run.options.iperf3_ports == "5201-5264"
    assert encode_run(run) == OLD + "\n"  # nothing added where nothing is restricted


@settings(max_examples=200, deadline=None)
@given(INBOUND, st.none() | PORTS, PORTS)
def test_they_round_trip(inbound: Inbound, ports: PortRange | None, run_ports: PortRange) -> None:
    run = decode_run(OLD, "run.json")
    host = replace(run.hosts[0], inbound=inbound, iperf3_ports=ports)
    doc = replace(
        run,
        hosts=(host, *run.hosts[1:]),
        options=replace(run.options, iperf3_ports=str(run_ports)),
    )
    again = decode_run(encode_run(doc), "run.json")
    assert Inbound.parse(again.hosts[0].inbound.words) == Inbound.parse(inbound.words)
    assert again.hosts[0].iperf3_ports == ports
    assert again.options.iperf3_ports == str(run_ports)


def test_the_inventory_entry_is_kept() -> None:
    host = Host(
        "home", "203.0.113.1", SshTarget("home"), inbound=INBOUND_NONE,
        iperf3_ports=PortRange(6000, 6009),
    )  # fmt: skip
    run_host = RunHost.of(host)
    assert (run_host.inbound, run_host.iperf3_ports) == (INBOUND_NONE, PortRange(6000, 6009))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("inbound", ["icmp", "udp"], "'hosts[0].inbound': 'udp': expected all, none, icmp, tcp"),
        ("inbound", "none", "'hosts[0].inbound' must be a list"),
        ("iperf3_ports", "0-10", "'hosts[0].iperf3_ports': '0-10': ports are 1…65535"),
    ],
)
def test_a_damaged_value_is_one_line_naming_the_key(key: str, value: object, message: str) -> None:
    doc = json.loads(OLD)
    doc["hosts"][0][key] = value
    with pytest.raises(StoreError) as info:
        decode_run(json.dumps(doc), "run.json")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_damaged_run_ports_are_one_line_naming_the_key() -> None:
    doc = json.loads(OLD)
    doc["options"]["iperf3_ports"] = "many"
    with pytest.raises(StoreError) as info:
        decode_run(json.dumps(doc), "run.json")
    assert "'options.iperf3_ports': 'many': expected PORT or LO-HI" in str(info.value)
