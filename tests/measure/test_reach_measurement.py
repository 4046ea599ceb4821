"""Inbound-restricted hosts and firewalls in a run, with the fake connector of
``test_measurement``: nothing aims at what refuses it, a NAT'd host is the iperf3 client both
ways, and an iperf3 port a firewall drops is ``blocked`` — read from iperf3's real words."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.measure import bandwidth_phase
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.context import Done, RunOptions
from probe.measure.measurement import Measurement
from probe.measure.remote import Secret
from probe.model import (
    INBOUND_NONE,
    CellStatus,
    CommandResult,
    Host,
    Inbound,
    Inventory,
    PortRange,
)
from probe.plan import BandwidthTest
from probe.store.records import Iperf3Record, PingLoadRecord, PingRecord, SampleRecord
from probe.tools.iperf3 import connect_failure
from tests.measure.test_measurement import FakePool, FakeProcess, inventory, ping_output

LOOPBACK = Path(__file__).resolve().parents[1] / "fixtures" / "iperf3" / "loopback"
#: iperf 3.12, ``--connect-timeout 1000`` to a port whose SYNs are dropped (see SOURCE.md)
CONNECT_TIMEOUT = (LOOPBACK / "iperf3.12_error_connect_timeout.json").read_text()
REFUSED = (LOOPBACK / "iperf3.12_error_connection_refused.json").read_text()


class FirewalledProcess(FakeProcess):
    """A client whose server's iperf3 port a firewall drops (or rejects) answers as iperf3 does."""

    async def wait(self, timeout_s: float) -> CommandResult:
        assert isinstance(self.pool, FirewalledPool)
        if self.argv[0] == "iperf3":
            server = self.pool.host_of[self.argv[self.argv.index("-c") + 1]]
            if server in self.pool.firewalled:
                self.released = self.ended = True
                out = self.pool.firewalled[server]
                return CommandResult(tuple(self.argv), 0, out, "", 1.0)
        return await super().wait(timeout_s)


class FirewalledPool(FakePool):
    """``firewalled``: host → what a client connecting to its iperf3 port prints; ``silent``:
    hosts whose pings are all lost."""

    def __init__(
        self, hosts: Sequence[Host], firewalled: dict[str, str], silent: Collection[str] = ()
    ) -> None:
        super().__init__(hosts)
        self.firewalled = firewalled
        self.silent = {h.address for h in hosts if h.name in silent}

    def fanout_output(self, argv: Sequence[str]) -> str:  # type: ignore[override]
        frames = []
        for k, address in enumerate(argv[8:], 1):
            status, text = 0, ping_output(address)
            if address in self.silent:
                status, text = (
                    1,
                    (
                        f"PING {address} ({address}) 56(84) bytes of data.\n\n"
                        f"--- {address} ping statistics ---\n"
                        "3 packets transmitted, 0 received, 100% packet loss, time 2003ms\n\n"
                    ),
                )
            frames.append(f"@@probe-ping {k} {status}\n{text}@@probe-ping-stderr {k}\n")
        return "".join(frames)

    async def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        max_lifetime_s: float,
        gated: bool = False,
        secrets: Sequence[Secret] = (),
    ) -> FakeProcess:
        self.commands.append(tuple(argv))
        self.gated += gated
        return FirewalledProcess(self, host, argv, gated)


def run(
    inv: Inventory,
    firewalled: dict[str, str] | None = None,
    silent: Collection[str] = (),
    **opts: Any,
) -> tuple[list[SampleRecord], FirewalledPool]:
    pool = FirewalledPool(inv.hosts, firewalled or {}, silent)
    records: list[SampleRecord] = []
    options = RunOptions(count=3, bw=BandwidthOptions(duration_s=1, omit_s=0), **opts)

    async def go() -> None:
        m = Measurement(inv, pool, options, records.append, lambda _s: None)
        await m.connect()
        await m.ping_mesh()
        await m.bandwidth()

    asyncio.run(go())
    return records, pool


def with_hosts(inv: Inventory, **changes: dict[str, object]) -> Inventory:
    hosts = tuple(replace(h, **changes.get(h.name, {})) for h in inv.hosts)  # type: ignore[arg-type]
    return replace(inv, hosts=hosts)


def test_a_nat_host_is_never_aimed_at_and_is_the_iperf3_client_both_ways() -> None:
    inv = with_hosts(inventory(3), h2={"inbound": INBOUND_NONE})
    nat = inv.host("h2").address
    records, pool = run(inv)
    pings = {(r.src, r.dst) for r in records if isinstance(r, PingRecord)}
    assert pings == {("h0", "h1"), ("h1", "h0"), ("h2", "h0"), ("h2", "h1")}
    assert not [argv for argv in pool.commands if argv[0] == "iperf3" and nat in argv]
    servers = [argv for argv in pool.commands if argv[:2] == ("iperf3", "-s")]
    assert len(servers) == 6  # one per test, never on h2
    tests = {(r.client, r.server, r.reverse): r for r in records if isinstance(r, Iperf3Record)}
    assert set(tests) == {
        ("h0", "h1", False), ("h1", "h0", False),
        ("h2", "h0", False), ("h2", "h0", True), ("h2", "h1", False), ("h2", "h1", True),
    }  # fmt: skip
    download = tests["h2", "h0", True]
    assert (download.src, download.dst, download.status) == ("h0", "h2", CellStatus.OK)
    assert "-R" in download.argv and download.reason == BandwidthTest.REVERSE_NOTE
    assert tests["h2", "h0", False].reason is None  # h2's upload: the sender is the client


def test_a_server_listens_on_its_hosts_own_iperf3_ports() -> None:
    inv = with_hosts(inventory(3), h1={"iperf3_ports": PortRange(6000, 6001)})
    records, pool = run(inv)
    assert all(r.status is CellStatus.OK for r in records if isinstance(r, Iperf3Record))
    ports = {
        argv[argv.index("-c") + 1]: int(argv[argv.index("-p") + 1])
        for argv in pool.commands
        if argv[:2] == ("iperf3", "-c")
    }
    assert ports[inv.host("h1").address] in (6000, 6001)
    assert 5201 <= ports[inv.host("h0").address] <= 5264


def test_a_dropped_iperf3_port_is_blocked_naming_it_and_the_other_direction_runs() -> None:
    """h1's firewall drops its iperf3 ports, undeclared: as a server it is blocked; as a
    client (its upload, the other direction) it measures."""
    inv = inventory(2)
    records, _ = run(inv, firewalled={"h1": CONNECT_TIMEOUT})
    tests = {(r.src, r.dst): r for r in records if isinstance(r, Iperf3Record)}
    blocked, other = tests["h0", "h1"], tests["h1", "h0"]
    assert blocked.status is CellStatus.BLOCKED
    address = inv.host("h1").address
    assert blocked.reason == (
        f"iperf3 client on h0 → {address}:5201 on h1: Connection timed out while ping between "
        "them works (a firewall drops or rejects the port)"
    )
    assert other.status is CellStatus.OK


def test_a_refused_port_is_blocked_too() -> None:
    records, _ = run(inventory(2), firewalled={"h1": REFUSED})
    (blocked,) = [r for r in records if isinstance(r, Iperf3Record) and r.server == "h1"]
    assert blocked.status is CellStatus.BLOCKED and "Connection refused" in str(blocked.reason)


def test_without_a_ping_answer_a_connect_failure_stays_an_error() -> None:
    """Ping lost both ways: the path itself may be down, not a firewall on the port."""
    records, _ = run(inventory(2), firewalled={"h1": CONNECT_TIMEOUT}, silent={"h0", "h1"})
    (failed,) = [r for r in records if isinstance(r, Iperf3Record) and r.server == "h1"]
    assert failed.status is CellStatus.ERROR
    assert str(failed.reason).endswith("unable to connect to server: Connection timed out")


def test_connect_failures_are_read_from_the_words_of_each_iperf3_version() -> None:
    assert connect_failure("unable to connect to server: Connection timed out") == (
        "Connection timed out"
    )
    assert connect_failure("unable to connect to server: No route to host") == "No route to host"
    later = (  # iperf 3.16+ puts a hint between
        "unable to connect to server - server may have stopped running or use a different port, "
        "firewall issue, etc.: Connection refused"
    )
    assert connect_failure(later) == "Connection refused"
    assert connect_failure("the server is busy running a test. try again later") is None
    assert connect_failure("unable to send control message: Broken pipe") is None


def test_the_loaded_train_never_pings_a_server_that_refuses_icmp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bandwidth_phase, "LOAD_PING_LEAD_S", 0.0)
    tcp_only = Inbound(icmp=False, tcp=(PortRange(1, 65535),))
    inv = with_hosts(inventory(2), h1={"inbound": tcp_only})
    records, pool = run(inv, under_load=True)
    loaded = [r for r in records if isinstance(r, PingLoadRecord)]
    assert [(r.src, r.dst) for r in loaded] == [("h1", "h0")]  # h1 →(client) h0: h0 answers
    assert not [argv for argv in pool.commands if argv[0] == "ping"
                and inv.host("h1").address in argv]  # fmt: skip


def test_a_resume_knows_which_pairs_answered_ping_before() -> None:
    """A resumed run's bandwidth phase has no ping phase of its own to go by."""
    records, _ = run(inventory(3), silent={"h2"})
    done = Done.from_records(records)
    assert done.answered == {frozenset(("h0", "h1")), frozenset(("h2", "h0")),
                             frozenset(("h2", "h1"))}  # fmt: skip
    lost = Done.from_records([r for r in records if not (isinstance(r, PingRecord)
                                                         and r.src == "h2")])  # fmt: skip
    assert lost.answered == {frozenset(("h0", "h1"))}  # pings toward h2 were all lost
