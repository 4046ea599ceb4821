"""The bandwidth phase: the plan's iperf3 tests, each as soon as its hosts (or sites) are free,
with the loaded-RTT train (``--under-load``) and the ``-P N`` repeat (``--compare-streams``).

A test runs over a network (``probe.networks``): the client dials the server's address on it. A
pair with no network to test over has no test (the matrix marks it ``not-measurable``).

Who serves is ``probe.reach``'s: a host that accepts no TCP on its iperf3 ports is the client
both ways (``-R`` for its download); a pair neither end of which can serve gets no test (the
matrix marks it ``not-measurable``). A server listens on its own host's iperf3 ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from probe.errors import HostError
from probe.measure.bandwidth import ArmedTest, PairAuth, TestOutcome, turn_bound_s
from probe.measure.context import RunContext
from probe.measure.credentials import HostCredentials
from probe.model import CellStatus
from probe.networks import NoRoute, host_networks
from probe.plan import (
    BandwidthPlan,
    BandwidthTest,
    parse_pair_mode,
    per_test_wall_s,
    schedule_rounds,
    select_pairs,
    site_of_hosts,
)
from probe.reach import bandwidth_roles, server_ports
from probe.store.records import Iperf3Record, PingLoadRecord, PingTrain
from probe.tools.iperf3 import connect_failure
from probe.tools.iperf3auth import RunCredential, cannot_authenticate
from probe.tools.ping import PingReport, ping_argv, ping_outcome

LOAD_PING_LEAD_S = 1.5
LOAD_PING_INTERVAL_S = 0.2


@dataclass(slots=True)
class _Turn:
    """A bandwidth test's place in its hosts' queues: it arms once the tests before it on the
    same hosts (sites) have fired, and fires once they have finished."""

    after_fired: list[asyncio.Event]
    after_finished: list[asyncio.Event]
    fired: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class BandwidthPhase:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.credentials: HostCredentials | None = None  # during run(), unless --auth off
        self._unbound: set[str] = set()  # servers said to listen on every address

    def plan(self) -> BandwidthPlan:
        hosts = {name: s.host for name, s in self.ctx.hosts.items()}
        pairs = select_pairs(list(hosts.values()), parse_pair_mode(self.ctx.options.pairs))
        roles = bandwidth_roles(pairs, hosts, self.ctx.options.bw.iperf3_ports)
        exclusive = self.ctx.options.exclusive_by in ("region", "zone")
        return schedule_rounds(
            [(a, b) for a, b in roles.pairs if not isinstance(self.ctx.routes(a, b), NoRoute)],
            site_of=self._site_of() if exclusive else None,
            networks=self._networks,
            reverse_for=roles.reverse_for,
        )

    def _networks(self, src: str, dst: str) -> list[str]:
        found = self.ctx.routes(src, dst)
        return [] if isinstance(found, NoRoute) else [r.network for r in found]

    async def run(self) -> None:
        """Run the plan's tests in round order, each as soon as its hosts (or sites) are free.

        A test waits for the previous test of each host it uses, in plan order, so no host (no
        site with ``--exclusive-by``) ever takes part in two tests at once; unlike a barrier per
        round, a short test (a 0.5 ms intra-region pair) does not wait for the round's slowest
        (a 240 ms intercontinental one), so the phase costs the longest chain, not Σ round maxima.
        A test is *armed* (server listening, client session open and gated) as soon as those
        previous tests have started, so starting it costs one line on stdin, not two sessions.
        """
        started = time.monotonic()
        bw_plan = self.plan()
        bw = self.ctx.options.bw
        todo = self.todo(bw_plan)
        summary = bw_plan.only(todo).summary(per_test_wall_s(bw.duration_s, bw.omit_s))
        left = f" ({len(todo)} of the plan's {bw_plan.tests} tests left)"
        self.ctx.say(summary + (left if len(todo) < bw_plan.tests else ""))
        site_of = self._site_of()
        progress = {"done": 0, "total": len(todo)}
        # ports: the n-th test a host serves uses the n-th of its iperf3 ports, so its armed
        # next server never takes the port of the one still running
        served: Counter[str] = Counter()
        fired: dict[str, asyncio.Event] = {}
        finished: dict[str, asyncio.Event] = {}
        if bw.auth != "off" and todo:
            # every holder outlives the whole phase at worst; stopped (files removed) at its end
            lifetime = len(todo) * turn_bound_s(bw) * (2 if self.ctx.options.compare_streams else 1)
            self.credentials = HostCredentials(
                self.ctx.pool, RunCredential.generate(), lifetime_s=lifetime + 60
            )
        async with self.credentials or contextlib.nullcontext(), asyncio.TaskGroup() as tg:
            for test in todo:
                keys = {site_of(test.client), site_of(test.server)}
                turn = _Turn(
                    after_fired=[fired[k] for k in keys if k in fired],
                    after_finished=[finished[k] for k in keys if k in finished],
                )
                fired.update(dict.fromkeys(keys, turn.fired))
                finished.update(dict.fromkeys(keys, turn.finished))
                port_index = served[test.server]
                served[test.server] += 1
                tg.create_task(self._take_turn(test, port_index, turn, progress, started))

    def todo(self, bw_plan: BandwidthPlan) -> list[BandwidthTest]:
        """The plan's tests still to measure, in plan order (all of them unless resumed)."""
        return [t for round_ in bw_plan.rounds for t in round_ if not self._done(t)]

    def _done(self, test: BandwidthTest) -> bool:
        """Measured already (``--resume``), with every extra this run asks for.

        An extra (loaded RTT, N streams) needs the test itself again, so a direction whose
        extras are missing is measured whole; the newest record of each kind wins.
        """
        kinds = ["iperf3"]
        if self.ctx.options.under_load:
            kinds.append("ping_load")
        if self.ctx.options.compare_streams > 1:
            kinds.append("iperf3_multi")
        cells = self.ctx.done.cells
        return all((kind, *test.direction, test.network) in cells for kind in kinds)

    def _site_of(self) -> Callable[[str], str]:
        exclusive_by = self.ctx.options.exclusive_by
        if exclusive_by in ("region", "zone"):
            hosts = [s.host for s in self.ctx.hosts.values()]
            return site_of_hosts(hosts, exclusive_by)  # type: ignore[arg-type]
        return lambda name: name

    async def _take_turn(
        self,
        test: BandwidthTest,
        port_index: int,
        turn: _Turn,
        progress: dict[str, int],
        started: float,
    ) -> None:
        try:
            await self._test(test, port_index, turn)
        finally:
            turn.fired.set()
            turn.finished.set()
        progress["done"] += 1
        done, total = progress["done"], progress["total"]
        left = (time.monotonic() - started) / done * (total - done)
        self.ctx.say(
            f"bandwidth: {done}/{total} tests ({test.client}→{test.server}), ~{left:.0f}s left"
        )

    def _unmeasurable(self, test: BandwidthTest) -> tuple[CellStatus, str] | None:
        for role, name in (("client", test.client), ("server", test.server)):
            if (why := self.ctx.hosts[name].cannot_run("iperf3", role)) is not None:
                return why
        if self.ctx.options.bw.auth == "required" and (why_not := self._cannot_authenticate(test)):
            return CellStatus.TOOL_MISSING, f"--auth required: {why_not}"
        return None

    def _cannot_authenticate(self, test: BandwidthTest) -> str | None:
        """Why the test's two iperf3 cannot authenticate (naming the host); None if they can."""
        for name in (test.client, test.server):
            tools = self.ctx.hosts[name].tools
            if why := cannot_authenticate(tools.get("iperf3"), tools.get("iperf3_features")):
                return f"{why} on {name}"
        return None

    async def _auth(self, test: BandwidthTest) -> PairAuth | None:
        """The test's credential files (uploaded at first need), or None: it runs without."""
        if self.credentials is None or self._cannot_authenticate(test) is not None:
            return None
        versions = {n: self.ctx.hosts[n].tools.get("iperf3") for n in (test.client, test.server)}
        return await self.credentials.pair(
            test.client, versions[test.client], test.server, versions[test.server]
        )

    async def _test(self, test: BandwidthTest, port_index: int, turn: _Turn) -> None:
        src, dst = test.direction
        server = self.ctx.hosts[test.server]
        address = host_networks(server.host)[test.network]
        options = self.ctx.options
        why = self._unmeasurable(test)
        auth = None
        if why is None:
            for event in turn.after_fired:
                await event.wait()
            try:  # only now: a host restarted meanwhile has its files uploaded again
                auth = await self._auth(test)
            except HostError as exc:
                why = CellStatus(exc.status), f"iperf3 credential on {exc}"
        if why is not None:
            self.ctx.emit(
                Iperf3Record(
                    src=src,
                    dst=dst,
                    client=test.client,
                    server=test.server,
                    reverse=test.reverse,
                    status=why[0],
                    reason=why[1],
                    t=time.time(),
                    network=test.network,
                    address=address,
                )
            )
            return
        multi = options.compare_streams > 1
        hold = turn_bound_s(options.bw) * (2 if multi else 1)
        ports = server_ports(server.host, options.bw.iperf3_ports)
        assert ports is not None, test  # the plan chose a server that accepts its ports
        bw = replace(options.bw, iperf3_ports=ports)
        async with ArmedTest(
            self.ctx.pool, client=test.client, server=test.server,
            server_address=address, reverse=test.reverse,
            options=bw, port_index=port_index, hold_s=hold,
            bind=address, auth=auth,
        ) as armed:  # fmt: skip
            failed = await armed.arm()
            for event in turn.after_finished:
                await event.wait()
            turn.fired.set()
            outcome = failed or await self._fire(armed, test, address)
            outcome = self._blocked(outcome, armed, address)
            outcome = self._cut(outcome, test, auth)
        self.ctx.emit(outcome.record(test, time.time(), address))
        if outcome.bound is False and test.server not in self._unbound:
            self._unbound.add(test.server)
            self.ctx.say(
                f"note: {address} is not an address of {test.server} itself (1:1 NAT?): its"
                " iperf3 servers listen on every address (the records say server_bound false)"
            )
        if multi and outcome.status is CellStatus.OK:
            # N streams share the path fairly with each other; the gap to one stream shows how
            # much a single connection leaves on the table (window- or loss-limited paths).
            async with ArmedTest(
                self.ctx.pool, client=test.client, server=test.server,
                server_address=address, reverse=test.reverse,
                options=replace(bw, streams=options.compare_streams),
                port_index=port_index, bind=address, auth=auth,
            ) as again:  # fmt: skip
                outcome = await again.fire()
            self.ctx.emit(outcome.record(test, time.time(), address, multi=True))

    def _cut(self, outcome: TestOutcome, test: BandwidthTest, auth: PairAuth | None) -> TestOutcome:
        """A test that failed while the connection holding its credential files went away (a
        host restart between taking the files and starting iperf3) was cut by that loss, not
        failed by the path: ``unreachable`` as every test a dropped connection cuts."""
        if outcome.status is not CellStatus.ERROR or auth is None or self.credentials is None:
            return outcome
        gone = self.credentials.lost(test.client, test.server)
        if gone is None:
            return outcome
        reason = f"connection lost: {gone}'s iperf3 credential went with its old connection"
        return replace(outcome, status=CellStatus.UNREACHABLE, reason=reason)

    def _blocked(self, outcome: TestOutcome, armed: ArmedTest, address: str) -> TestOutcome:
        """A control connection that timed out or was refused although the pair answers ping
        met a firewall: ``blocked``, naming the port (without that evidence it stays ``error``:
        the path itself may be down)."""
        failure = connect_failure(outcome.reason or "")
        if outcome.status is not CellStatus.ERROR or failure is None or armed.port is None:
            return outcome
        if frozenset((armed.client, armed.server)) not in self.ctx.answered:
            return outcome
        return replace(
            outcome,
            status=CellStatus.BLOCKED,
            reason=f"iperf3 client on {armed.client} → {address}:{armed.port} on {armed.server}: "
            f"{failure} while ping between them works (a firewall drops or rejects the port)",
        )

    async def _fire(self, armed: ArmedTest, test: BandwidthTest, address: str) -> TestOutcome:
        client, server = self.ctx.hosts[test.client], self.ctx.hosts[test.server]
        # the loaded train pings the server: never one that refuses ICMP (probe.reach)
        if not (self.ctx.options.under_load and client.has("ping") and server.host.inbound.icmp):
            return await armed.fire()
        async with asyncio.TaskGroup() as tg:
            bw = tg.create_task(armed.fire())
            tg.create_task(self._ping_under_load(test, address))
        return bw.result()

    async def _ping_under_load(self, test: BandwidthTest, address: str) -> None:
        """RTT while src→dst is saturated: what a pipeline's tokens see behind a prefill.

        The train starts after set-up and warm-up (server start ≈ 1 s, iperf3's own handshake
        a few RTTs, ``omit``) and ends before the test does, so it samples the loaded path.
        """
        bw = self.ctx.options.bw
        client, server = self.ctx.hosts[test.client], self.ctx.hosts[test.server]
        src, dst = test.direction
        await asyncio.sleep(bw.omit_s + LOAD_PING_LEAD_S)
        count = max(1, int((bw.duration_s - LOAD_PING_LEAD_S) / LOAD_PING_INTERVAL_S))
        argv = tuple(
            ping_argv(
                address,
                count=count,
                interval_s=LOAD_PING_INTERVAL_S,
                reply_timeout_s=2,
            )
        )
        pinger = client.host.name
        try:
            res = await self.ctx.pool.run(pinger, argv, timeout_s=bw.duration_s + 15)
        except HostError as exc:
            self.ctx.emit(
                PingLoadRecord(
                    src=src,
                    dst=dst,
                    status=CellStatus(exc.status),
                    reason=f"ping under load from {exc}",
                    t=time.time(),
                    pinger=pinger,
                    argv=argv,
                    network=test.network,
                    address=address,
                )
            )
            return
        outcome = ping_outcome(res)
        if not isinstance(outcome, PingReport):
            self.ctx.emit(
                PingLoadRecord(
                    src=src,
                    dst=dst,
                    status=outcome[0],
                    reason=f"ping under load {pinger} → {server.host.name}: {outcome[1]}",
                    t=time.time(),
                    pinger=pinger,
                    argv=argv,
                    exit_status=res.exit_status,
                    network=test.network,
                    address=address,
                )
            )
            return
        self.ctx.emit(
            PingLoadRecord(
                src=src,
                dst=dst,
                status=CellStatus.OK if outcome.received else CellStatus.ALL_LOST,
                reason=None
                if outcome.received
                else f"ping under load {pinger} → {server.host.name}: all probes lost",
                t=time.time(),
                pinger=pinger,
                argv=argv,
                exit_status=res.exit_status,
                train=PingTrain.from_report(outcome),
                network=test.network,
                address=address,
            )
        )
