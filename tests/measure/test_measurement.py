"""The measurement's logic with a fake connector (pure: no SSH, no lab): failure mapping,
preflight, and the bandwidth schedule's exclusivity under concurrency."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.errors import HostError
from probe.measure import bandwidth_phase
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.connect import parse_preflight
from probe.measure.context import Done, RunOptions
from probe.measure.measurement import Measurement
from probe.model import CellStatus, CommandResult, Host, Inventory, SshTarget
from probe.store.records import (
    CellRecord,
    HostRecord,
    Iperf3Record,
    PingFanoutRecord,
    PingLoadRecord,
    PingRecord,
    SampleRecord,
)
from probe.tools.ping import ping_argv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IPERF_JSON = (FIXTURES / "iperf3" / "loopback" / "iperf3.12_tcp_forward_t2_O1.json").read_text()


def ping_output(address: str) -> str:
    lines = [f"PING {address} ({address}) 56(84) bytes of data."]
    lines += [f"64 bytes from {address}: icmp_seq={i} ttl=64 time=1.{i} ms" for i in (1, 2, 3)]
    lines += [
        "", f"--- {address} ping statistics ---",
        "3 packets transmitted, 3 received, 0% packet loss, time 2003ms",
        "rtt min/avg/max/mdev = 1.100/1.200/1.300/0.082 ms",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


class FakeProcess:
    """A spawned process: an iperf3 server (idle until a client comes) or a gated command,
    which does its work only between ``release`` and ``wait``, like the real gate."""

    def __init__(self, pool: FakePool, host: str, argv: Sequence[str], gated: bool) -> None:
        self.pool, self.host, self.argv, self.gated = pool, host, list(argv), gated
        self.released = False
        self.ended = False
        self.connection_lost = False

    async def __aenter__(self) -> FakeProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def read_until(self, ready: object, timeout_s: float) -> bool:
        return isinstance(ready, str)  # "Server listening" at once; then the end of stream

    def release(self) -> None:
        assert self.gated and not self.released
        self.released = True

    async def wait(self, timeout_s: float) -> CommandResult:
        assert self.released, "a gated command waited for without release"
        if self.argv[0] == "iperf3":  # the client: both ends are in a test until it ends
            server = self.pool.host_of[self.argv[self.argv.index("-c") + 1]]
            self.pool.enter(self.host, server)
            await asyncio.sleep(0.01)
            self.pool.leave(self.host, server)
            out = IPERF_JSON
        else:
            out = self.pool.fanout_output(self.argv)
        self.ended = True
        return CommandResult(tuple(self.argv), 0, out, "", 0.01)

    async def stop(self, grace_s: float = 2.0) -> CommandResult:
        self.ended = True
        return CommandResult(tuple(self.argv), 0, "", "", 0.0)


class FakePool:
    """Hosts answer like Linux hosts; ``broken`` maps a host to the failure it shows.

    ``most`` is the most tests one host (``most_site``: one region) took part in at once.
    """

    def __init__(self, hosts: Sequence[Host], broken: dict[str, str] | None = None) -> None:
        self.hosts = [h.name for h in hosts]
        self.host_of = {h.address: h.name for h in hosts}
        self.region_of = {h.name: h.region for h in hosts}
        self.broken = broken or {}
        self.busy: Counter[str] = Counter()
        self.most = 0
        self.most_site = 0
        self.gated = 0
        self.commands: list[tuple[str, ...]] = []  # every argv run or spawned, in order

    def sites(self, hosts: Sequence[str]) -> set[str]:
        return {f"site:{self.region_of[h]}" for h in hosts}  # an intra-site test uses it once

    def enter(self, *hosts: str) -> None:
        self.busy.update(hosts)
        self.busy.update(self.sites(hosts))
        self.most = max(self.most, *(self.busy[h] for h in hosts))
        self.most_site = max(self.most_site, *(self.busy[s] for s in self.sites(hosts)))

    def leave(self, *hosts: str) -> None:
        self.busy.subtract(hosts)
        self.busy.subtract(self.sites(hosts))

    async def connect(
        self,
        names: Sequence[str] | None = None,
        *,
        on_connected: Callable[[Any], None] | None = None,
    ) -> dict[str, Any]:
        out = {}
        for name in names or self.hosts:
            failed = self.broken.get(name) == "unreachable"
            conn = type("C", (), {"host": name, "ok": not failed, "connect_s": 0.1,
                                  "status": CellStatus.UNREACHABLE if failed else CellStatus.OK,
                                  "reason": "connection refused" if failed else ""})()  # fmt: skip
            out[name] = conn
            if on_connected:
                on_connected(conn)
        return out

    @staticmethod
    def fanout_output(argv: Sequence[str]) -> str:
        addresses = argv[7:]
        return "".join(f"@@probe-ping {k} 0\n{ping_output(a)}@@probe-ping-stderr {k}\n"
                       for k, a in enumerate(addresses, 1))  # fmt: skip

    async def run(
        self, host: str, argv: Sequence[str], *, timeout_s: float | None = None
    ) -> CommandResult:
        self.commands.append(tuple(argv))
        if argv[0] == "sh" and "have" in argv[2]:  # preflight
            tools = "have ping\nhave timeout\n" + (
                "" if self.broken.get(host) == "no-iperf3" else "have iperf3\n"
            )
            return CommandResult(tuple(argv), 0, tools + "version iperf3 iperf 3.12\n", "", 0.1)
        if argv[0] == "sh":  # the ping fan-out when no armed session is left
            return CommandResult(tuple(argv), 0, self.fanout_output(argv), "", 0.6)
        if argv[0] == "ping":  # the train under load
            return CommandResult(tuple(argv), 0, ping_output(argv[-1]), "", 1.0)
        raise HostError(host, "error", f"unexpected command {argv}")

    async def spawn(
        self, host: str, argv: Sequence[str], *, max_lifetime_s: float, gated: bool = False
    ) -> FakeProcess:
        self.commands.append(tuple(argv))
        self.gated += gated
        return FakeProcess(self, host, argv, gated)


def inventory(n: int) -> Inventory:
    hosts = tuple(
        Host(name=f"h{i}", address=f"10.0.0.{i + 1}", ssh=SshTarget(host=f"10.0.0.{i + 1}"),
             region="r1" if i < n // 2 else "r2")
        for i in range(n)
    )  # fmt: skip
    return Inventory(source="fake.yaml", sha256="0", hosts=hosts)


def measure(
    n: int,
    broken: dict[str, str] | None = None,
    done: Done | None = None,
    arm_ping: bool = True,
    **opts: Any,
) -> tuple[list[SampleRecord], FakePool]:
    inv = inventory(n)
    pool = FakePool(inv.hosts, broken)
    records: list[SampleRecord] = []
    options = RunOptions(**{"count": 3, "bw": BandwidthOptions(duration_s=1, omit_s=0), **opts})

    async def go() -> None:
        m = Measurement(inv, pool, options, records.append, lambda _s: None, done)
        await m.connect(arm_ping=arm_ping)
        await m.ping_mesh()
        await m.bandwidth()

    asyncio.run(go())
    return records, pool


def cells(records: list[SampleRecord], kind: str) -> list[CellRecord]:
    return [r for r in records if isinstance(r, CellRecord) and r.kind == kind]


def test_every_cell_gets_exactly_one_record_and_no_host_runs_two_tests() -> None:
    records, pool = measure(7)
    pings = Counter((r.src, r.dst) for r in cells(records, "ping"))
    tests = Counter((r.src, r.dst) for r in cells(records, "iperf3"))
    assert len(pings) == 42 and set(pings.values()) == {1}
    assert len(tests) == 42 and set(tests.values()) == {1}
    assert all(r.status == "ok" for r in records if not isinstance(r, PingFanoutRecord))
    assert sum(isinstance(r, PingFanoutRecord) for r in records) == 7  # one per source
    assert pool.most == 1  # a server and a client never overlap on one host
    assert pool.gated == 42 + 7  # every test and every ping source was armed ahead


def test_a_failed_host_and_a_missing_tool_become_reasons() -> None:
    records, _ = measure(4, {"h1": "unreachable", "h2": "no-iperf3"})
    by_cell = {(r.kind, r.src, r.dst): r for r in records if isinstance(r, CellRecord)}
    assert by_cell["ping", "h1", "h0"].status == "unreachable"
    assert "connection refused" in str(by_cell["ping", "h1", "h0"].reason)
    assert by_cell["ping", "h0", "h1"].status == "ok"  # pinging towards it still works
    assert by_cell["iperf3", "h0", "h2"].status == "tool-missing"
    assert by_cell["iperf3", "h0", "h3"].status == "ok"


def test_resume_skips_cells_already_measured() -> None:
    first, _ = measure(4)
    done = Done.from_records(first[:-5])  # as if killed before the last results
    assert ("ping", "h0", "h1") in done.cells
    missing = {("iperf3", r.src, r.dst) for r in cells(first[-5:], "iperf3")}
    assert missing and not missing & done.cells


def test_resume_measures_again_a_test_whose_extras_are_missing() -> None:
    first, _ = measure(4)  # no --under-load, no --compare-streams
    done = Done.from_records(first)
    again, _ = measure(4, done=done, compare_streams=3)
    assert not cells(again, "ping")  # every RTT cell was measured
    multi = {(r.src, r.dst) for r in cells(again, "iperf3_multi")}
    assert len(multi) == 12 and {r.kind for r in again} == {"host", "iperf3", "iperf3_multi"}
    done = Done.from_records(first + again)
    hosts_only = [replace(r, t=None) for r in measure(4, done=done)[0] if isinstance(r, HostRecord)]
    assert [replace(r, t=None) for r in measure(4, done=done, compare_streams=3)[0]] == hosts_only
    # nothing left to measure, with or without the extra


def test_exclusive_by_region_runs_one_test_per_site() -> None:
    records, pool = measure(6, exclusive_by="region")
    assert pool.most_site == 1 and len(cells(records, "iperf3")) == 30


@pytest.mark.parametrize("arm_ping", [True, False])
def test_a_ping_record_carries_the_ping_that_ran_and_its_fanout(arm_ping: bool) -> None:
    """Each target's ping as the fan-out script ran it (the run's count, interval and reply
    timeout), and the whole fan-out command exactly as the SSH runner got it."""
    records, pool = measure(3, arm_ping=arm_ping, count=7, interval_s=0.3, bandwidth=False)
    fanouts = {r.id: r for r in records if isinstance(r, PingFanoutRecord)}
    assert sorted(f.src for f in fanouts.values()) == ["h0", "h1", "h2"]
    for fanout in fanouts.values():
        assert fanout.argv in pool.commands and fanout.argv[4:7] == ("7", "0.3", "2")
        assert fanout.exit_status == 0
    pings = [r for r in records if isinstance(r, PingRecord)]
    assert len(pings) == 6
    for rec in pings:
        address = f"10.0.0.{int(rec.dst[1:]) + 1}"
        assert rec.argv == ("ping", "-n", "-c", "7", "-i", "0.3", "-W", "2", address)
        assert rec.argv == tuple(ping_argv(address, count=7, interval_s=0.3, reply_timeout_s=2))
        assert rec.fanout is not None and fanouts[rec.fanout].src == rec.src
        assert address in fanouts[rec.fanout].argv[7:]


def test_the_loaded_train_records_its_command_and_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bandwidth_phase, "LOAD_PING_LEAD_S", 0.0)
    records, pool = measure(2, under_load=True)
    loaded = [r for r in records if isinstance(r, PingLoadRecord)]
    tests = {(r.src, r.dst): r for r in records if isinstance(r, Iperf3Record)}
    assert len(loaded) == 2
    for rec in loaded:
        test = tests[rec.src, rec.dst]
        assert rec.status == "ok" and rec.pinger == test.client and rec.argv in pool.commands
        address = f"10.0.0.{int(test.server[1:]) + 1}"
        assert rec.argv == tuple(ping_argv(address, count=5, interval_s=0.2, reply_timeout_s=2))
        assert rec.train is not None and rec.train.summary is not None


def test_parse_preflight() -> None:
    tools = parse_preflight(
        "have ping\nmissing iperf3\nhave timeout\n"
        "version ping ping from iputils 20221126\n"
        "version iperf3 sh: iperf3: not found\nping_group_range 1\t0\n"
    ).tools
    assert tools["ping"] == "ping from iputils 20221126" and tools["iperf3"] is None
    assert tools["ping_group_range"] == "1\t0"
