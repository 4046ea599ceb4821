"""The measurement's logic with a fake connector (pure: no SSH, no lab): failure mapping,
preflight, and the bandwidth schedule's exclusivity under concurrency."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from probe.errors import HostError
from probe.matrix.build import train_stats
from probe.measure import bandwidth_phase
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.connect import parse_preflight
from probe.measure.context import Done, RunOptions
from probe.measure.measurement import Measurement
from probe.measure.ping_mesh import PING_SLACK_S
from probe.measure.remote import Secret
from probe.model import CellStatus, CommandResult, Host, Inventory, SshTarget
from probe.plan import parse_ping_pairs, select_ping_pairs
from probe.stats import RttStats
from probe.store.records import (
    CellRecord,
    HostRecord,
    Iperf3Record,
    PingFanoutRecord,
    PingLoadRecord,
    PingRecord,
    SampleRecord,
)
from probe.tools.fping import fping_argv, fping_seconds
from probe.tools.ping import PING_FANOUT_MAX, ping_argv, ping_fanout_seconds

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IPERF_JSON = (FIXTURES / "iperf3" / "loopback" / "iperf3.12_tcp_forward_t2_O1.json").read_text()


#: What iperf3 -J prints when its control connection times out (3.16's words).
REFUSED_JSON = json.dumps({"start": {}, "intervals": [], "end": {}, "error": (
    "unable to connect to server - server may have stopped running or use a different port, "
    "firewall issue, etc.: Connection timed out")})  # fmt: skip


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
        if callable(ready) and self.argv[:2] == ["sh", "-c"] and "probe-iperf3" in self.argv[2]:
            return bool(ready(f"dir /tmp/probe-iperf3.{self.host}\n"))  # credential holder
        if callable(ready) and self.argv[:2] == ["iperf3", "-s"]:
            self.pool.drained.append(self.host)  # waited for the one-off server's end
        return isinstance(ready, str)  # "Server listening" at once; then the end of stream

    def release(self) -> None:
        assert self.gated and not self.released
        self.released = True

    async def wait(self, timeout_s: float) -> CommandResult:
        assert self.released, "a gated command waited for without release"
        if self.argv[0] == "iperf3":  # the client: both ends are in a test until it ends
            server = self.pool.host_of[self.argv[self.argv.index("-c") + 1]]
            if self.pool.broken.get(server) == "drops-iperf3":  # a firewall on the server
                self.ended = True
                return CommandResult(tuple(self.argv), 1, REFUSED_JSON, "", 5.0)
            self.pool.enter(self.host, server)
            await asyncio.sleep(0.01)
            self.pool.leave(self.host, server)
            out = IPERF_JSON
        else:
            self.ended = True
            return self.pool.pinger(self.host, self.argv)
        self.ended = True
        return CommandResult(tuple(self.argv), 0, out, "", 0.01)

    async def stop(self, grace_s: float = 2.0) -> CommandResult:
        self.ended = True
        return CommandResult(tuple(self.argv), 0, "", "", 0.0)


class FakePool:
    """Hosts answer like Linux hosts; ``broken`` maps a host to the failure it shows.

    ``most`` is the most tests one host (``most_site``: one region) took part in at once.
    """

    def __init__(
        self,
        hosts: Sequence[Host],
        broken: dict[str, str] | None = None,
        fping: Collection[str] = (),
        auth: Collection[str] = (),
    ) -> None:
        self.fping = set(fping)  # hosts with fping installed
        self.auth = set(auth)  # hosts whose iperf3 can authenticate
        self.secrets: list[tuple[str, tuple[str, ...]]] = []  # (host, env names) per spawn
        self.timeouts: dict[tuple[str, ...], float | None] = {}  # argv run → its timeout
        self.hosts = [h.name for h in hosts]
        self.host_of = {h.address: h.name for h in hosts}
        self.region_of = {h.name: h.region for h in hosts}
        self.broken = broken or {}
        self.busy: Counter[str] = Counter()
        self.most = 0
        self.most_site = 0
        self.gated = 0
        self.commands: list[tuple[str, ...]] = []  # every argv run or spawned, in order
        self.drained: list[str] = []  # servers whose end of stream a test waited for

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
        addresses = argv[8:]
        return "".join(f"@@probe-ping {k} 0\n{ping_output(a)}@@probe-ping-stderr {k}\n"
                       for k, a in enumerate(addresses, 1))  # fmt: skip

    def pinger(self, host: str, argv: Sequence[str]) -> CommandResult:
        """What the source's ping command says: the fan-out's frames, or fping's -C lines
        (the same RTTs as ``ping_output``; exit 4 where ``broken`` says "fping-fails")."""
        if argv[0] == "sh":
            return CommandResult(tuple(argv), 0, self.fanout_output(argv), "", 0.6)
        assert argv[0] == "fping" and host in self.fping, (host, argv)
        if self.broken.get(host) == "fping-fails":
            return CommandResult(tuple(argv), 4, "", "fping: can't create socket\n", 0.1)
        count = int(argv[argv.index("-C") + 1])
        addresses = argv[argv.index("-t") + 2 :]
        width = max(map(len, addresses))
        rtts = " ".join(f"1.{i}" for i in range(1, count + 1))
        return CommandResult(
            tuple(argv), 0, "", "".join(f"{a:<{width}} : {rtts}\n" for a in addresses), 0.6
        )

    async def run(
        self, host: str, argv: Sequence[str], *, timeout_s: float | None = None
    ) -> CommandResult:
        self.commands.append(tuple(argv))
        self.timeouts[tuple(argv)] = timeout_s
        if argv[0] == "sh" and "have" in argv[2]:  # preflight
            tools = "have ping\nhave timeout\n" + (
                "" if self.broken.get(host) == "no-iperf3" else "have iperf3\n"
            )
            if host in self.fping:
                tools += "have fping\nversion fping fping: Version 5.1\n"
            if host in self.auth:
                tools += "features iperf3 TCP congestion algorithm setting, authentication\n"
            return CommandResult(tuple(argv), 0, tools + "version iperf3 iperf 3.12\n", "", 0.1)
        if argv[0] in ("sh", "fping"):  # the ping command when no armed session is left
            return self.pinger(host, argv)
        if argv[0] == "ping":  # the train under load
            return CommandResult(tuple(argv), 0, ping_output(argv[-1]), "", 1.0)
        raise HostError(host, "error", f"unexpected command {argv}")

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
        self.secrets.append((host, tuple(s.env for s in secrets)))
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
    fping: Collection[str] = (),
    auth: Collection[str] = (),
    **opts: Any,
) -> tuple[list[SampleRecord], FakePool]:
    inv = inventory(n)
    pool = FakePool(inv.hosts, broken, fping, auth)
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
    assert ("ping", "h0", "h1", "default") in done.cells
    missing = {("iperf3", r.src, r.dst, r.network) for r in cells(first[-5:], "iperf3")}
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


def _fanouts(records: list[SampleRecord]) -> dict[str, PingFanoutRecord]:
    return {r.src: r for r in records if isinstance(r, PingFanoutRecord)}


def _pings(records: list[SampleRecord]) -> dict[tuple[str, str], PingRecord]:
    return {(r.src, r.dst): r for r in records if isinstance(r, PingRecord)}


@pytest.mark.parametrize("arm_ping", [True, False])
def test_auto_pings_with_one_fping_per_source_where_the_source_has_it(arm_ping: bool) -> None:
    records, pool = measure(4, fping={"h0", "h2"}, arm_ping=arm_ping, bandwidth=False)
    fanouts, pings = _fanouts(records), _pings(records)
    for src in ("h0", "h2"):
        targets = [f"10.0.0.{i + 1}" for i in range(4) if f"h{i}" != src]
        fping = tuple(fping_argv(targets, count=3, interval_s=0.2, reply_timeout_s=2))
        assert fanouts[src].argv == fping and pool.commands.count(fping) == 1  # one process
        assert fanouts[src].exit_status == 0
    assert fanouts["h1"].argv[0] == fanouts["h3"].argv[0] == "sh"  # no fping there: ping
    assert len(pings) == 12 and {r.status for r in pings.values()} == {CellStatus.OK}
    for (src, _dst), rec in pings.items():
        assert rec.train is not None and rec.fanout == fanouts[src].id
        if src in ("h0", "h2"):  # fping measured it: the fanout record holds the one command
            assert rec.train.flavor == "fping" and rec.argv == () and rec.exit_status == 0
            assert rec.train.probes == ((0, 1.1), (1, 1.2), (2, 1.3))
        else:
            assert rec.train.flavor == "iputils" and rec.argv[0] == "ping"


def test_the_same_replies_give_the_same_statistics_from_fping_and_ping() -> None:
    pings = _pings(measure(2, fping={"h0"}, bandwidth=False)[0])
    by_fping, by_ping = pings["h0", "h1"].train, pings["h1", "h0"].train
    assert by_fping is not None and by_fping.flavor == "fping"
    assert by_ping is not None and by_ping.flavor == "iputils"
    fping_stats, ping_stats = train_stats(by_fping), train_stats(by_ping)
    for f in fields(RttStats):
        assert getattr(fping_stats, f.name) == pytest.approx(getattr(ping_stats, f.name), abs=1e-3)


def test_pinger_ping_never_runs_fping_and_pinger_fping_needs_it() -> None:
    records, pool = measure(3, fping={"h0"}, pinger="ping", bandwidth=False)
    assert all(c[0] != "fping" for c in pool.commands)
    assert {r.train.flavor for r in _pings(records).values() if r.train} == {"iputils"}
    pings = _pings(measure(3, fping={"h0"}, pinger="fping", bandwidth=False)[0])
    assert pings["h0", "h1"].status == "ok"
    assert pings["h1", "h0"].status == "tool-missing"
    assert pings["h1", "h0"].reason == "fping missing on h1"


def test_auto_pings_with_ping_when_fping_cannot_send_the_train() -> None:
    """fping's -p is whole milliseconds: a 2.5 ms interval is ping's to send."""
    records, pool = measure(2, fping={"h0", "h1"}, interval_s=0.0025, bandwidth=False)
    assert all(c[0] != "fping" for c in pool.commands)
    assert {r.status for r in _pings(records).values()} == {CellStatus.OK}


def test_a_failed_fping_fails_its_sources_cells_with_its_words() -> None:
    pings = _pings(measure(3, {"h0": "fping-fails"}, fping={"h0"}, bandwidth=False)[0])
    for dst in ("h1", "h2"):
        assert pings["h0", dst].status == "error" and pings["h0", dst].exit_status == 4
        assert pings["h0", dst].reason == f"fping h0 → {dst}: fping: can't create socket"
    assert pings["h1", "h0"].status == "ok"


def test_the_deadline_scales_with_the_target_count() -> None:
    """40 hosts: fping's bound counts its targets; the fan-out runs 39 pings in two batches."""
    _, pool = measure(40, fping={"h0"}, arm_ping=False, bandwidth=False)
    fping = next(argv for argv in pool.commands if argv[0] == "fping")
    fanout = next(argv for argv in pool.timeouts if argv[0] == "sh" and "-c" in argv[1:2]
                  and argv[4:8] == ("3", "0.2", "2", str(PING_FANOUT_MAX)))  # fmt: skip
    assert len(fping) - 10 == len(fanout) - 8 == 39
    assert pool.timeouts[fping] == fping_seconds(39, count=3, interval_s=0.2) + PING_SLACK_S
    one_batch = ping_fanout_seconds(3, 0.2, 2, targets=PING_FANOUT_MAX)
    assert pool.timeouts[fanout] == ping_fanout_seconds(3, 0.2, 2, targets=39) + PING_SLACK_S
    assert ping_fanout_seconds(3, 0.2, 2, targets=39) > one_batch


def test_a_sampled_ping_plan_pings_only_its_pairs() -> None:
    """Two regions of three hosts, sample:1: the two full meshes inside (12 pairs) and one
    representative each way across (2): 14 of the 30 ordered pairs, and records for no other."""
    records, _ = measure(6, ping_pairs="sample:1", bandwidth=False)
    plan = select_ping_pairs(inventory(6).hosts, parse_ping_pairs("sample:1"))
    pings = _pings(records)
    assert sorted(pings) == sorted(plan.pairs) and len(pings) == 14
    assert {r.status for r in pings.values()} == {CellStatus.OK}
    address = {f"h{i}": f"10.0.0.{i + 1}" for i in range(6)}
    for src, fanout in _fanouts(records).items():
        assert list(fanout.argv[8:]) == [address[d] for s, d in plan.pairs if s == src]


def test_preflight_finds_fping_and_its_version() -> None:
    found = parse_preflight(
        "have ping\nhave iperf3\nhave timeout\nhave fping\nversion fping fping: Version 5.1\n"
    )
    assert found.tools["fping"] == "fping: Version 5.1"
    assert parse_preflight("have ping\nmissing fping\n").tools["fping"] is None


def test_tests_authenticate_where_both_ends_can_and_say_so() -> None:
    records, pool = measure(3, auth={"h0", "h1"})
    tests = {(r.src, r.dst): r for r in records if isinstance(r, Iperf3Record)}
    assert len(tests) == 6 and all(t.status == "ok" for t in tests.values())
    authenticated = {k for k, t in tests.items() if t.authenticated}
    assert authenticated == {("h0", "h1"), ("h1", "h0")}
    assert all(t.authenticated is False for k, t in tests.items() if k not in authenticated)
    servers = [argv for argv in pool.commands if "--rsa-private-key-path" in argv]
    assert len(servers) == 2 and all("--username" not in a for a in servers)
    assert servers[0][servers[0].index("--rsa-private-key-path") + 1].startswith(
        "/tmp/probe-iperf3."
    )
    clients = [argv for argv in pool.commands if "--username" in argv]
    assert len(clients) == 2 and all(not any("IPERF3" in a for a in c) for c in clients)
    holders = [(h, envs) for h, envs in pool.secrets if "PROBE_RSA_KEY" in envs or
               "PROBE_RSA_PUB" in envs]  # fmt: skip
    assert sorted(holders) == [
        ("h0", ("PROBE_RSA_KEY", "PROBE_USERS")), ("h0", ("PROBE_RSA_PUB",)),
        ("h1", ("PROBE_RSA_KEY", "PROBE_USERS")), ("h1", ("PROBE_RSA_PUB",)),
    ]  # fmt: skip
    # once per host and role, whatever the number of tests
    assert sum(envs == ("IPERF3_PASSWORD",) for _, envs in pool.secrets) == 2  # the clients


def test_auth_required_leaves_a_pair_that_cannot_unmeasured_with_the_reason() -> None:
    bw = BandwidthOptions(duration_s=1, omit_s=0, auth="required")
    records, _ = measure(3, auth={"h0", "h1"}, bw=bw)
    tests = {(r.src, r.dst): r for r in cells(records, "iperf3")}
    assert tests["h0", "h1"].status == "ok"
    why = "--auth required: iperf3 3.12 was built without authentication (OpenSSL) on h2"
    assert (tests["h0", "h2"].status, tests["h0", "h2"].reason) == ("tool-missing", why)
    assert (tests["h2", "h1"].status, tests["h2", "h1"].reason) == ("tool-missing", why)


def test_congestion_is_passed_to_every_client() -> None:
    bw = BandwidthOptions(duration_s=1, omit_s=0, congestion="bbr")
    _, pool = measure(3, bw=bw)
    clients = [argv for argv in pool.commands if argv[:2] == ("iperf3", "-c")]
    assert len(clients) == 6 and all(a[a.index("-C") + 1] == "bbr" for a in clients)


def test_a_server_no_client_reached_is_stopped_without_waiting_for_its_end() -> None:
    """A firewall dropping the iperf3 port leaves the one-off server listening: waiting
    ``SERVER_EXIT_WAIT_S`` for it to end (3 s a test, 12 tests on a lab host behind one) waits
    for nothing; it is stopped at once. A test that ran still waits for its server's end."""
    records, pool = measure(3, broken={"h2": "drops-iperf3"})
    tests = [r for r in records if isinstance(r, Iperf3Record)]
    blocked = [r for r in tests if r.status is not CellStatus.OK]
    assert {(r.client, r.server) for r in blocked} == {("h0", "h2"), ("h1", "h2")}
    assert all("Connection timed out" in (r.reason or "") for r in blocked)
    ok = [r for r in tests if r.status is CellStatus.OK]
    assert len(ok) == len(tests) - 2 and ok
    assert "h2" not in pool.drained and len(pool.drained) == len(ok)
