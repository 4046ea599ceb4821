"""``probe run``: connect → preflight → ping mesh → bandwidth rounds, every result to the store.

Every ordered pair ends with a record: a measurement or the reason there is none. A host that
fails is data (its cells carry its status); only bugs propagate. Results are appended to
``samples.jsonl`` the moment they exist, so an interrupted run keeps what it measured and
``--resume`` measures only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from probe.errors import HostError
from probe.measure import plan
from probe.measure.bandwidth import (
    ArmedTest,
    BandwidthOptions,
    CommandRunner,
    Process,
    TestOutcome,
    turn_bound_s,
)
from probe.model import CellStatus, CommandResult, Host, Inventory
from probe.store.rundoc import RunOptionsDoc
from probe.tools.ping import (
    PingReport,
    ping_argv,
    ping_fanout_argv,
    ping_fanout_seconds,
    ping_outcome,
    split_fanout,
)

#: One command per host: which tools exist and their versions (``timeout`` wraps every command).
PREFLIGHT_SCRIPT = r"""
for t in ping iperf3 timeout; do
  p=$(command -v "$t" 2>/dev/null) && [ -x "$p" ] && echo "have $t" || echo "missing $t"
done
echo "version ping $(ping -V 2>&1 | head -n 1)"
echo "version iperf3 $(iperf3 --version 2>&1 | head -n 1)"
echo "ping_group_range $(cat /proc/sys/net/ipv4/ping_group_range 2>/dev/null)"
"""
DONE = (CellStatus.OK, CellStatus.ALL_LOST)
LOAD_PING_LEAD_S = 1.5
LOAD_PING_INTERVAL_S = 0.2
#: How long a ping fan-out armed during ``connect`` may wait for the phase to start; past it the
#: remote deadline ends it and the phase opens a fresh session instead.
PING_ARM_HOLD_S = 120.0


class Connector(CommandRunner, Protocol):
    async def connect(
        self,
        names: Sequence[str] | None = None,
        *,
        on_connected: Callable[[Any], None] | None = None,
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class RunOptions:
    count: int = 20
    interval_s: float = 0.2
    reply_timeout_s: int = 2
    bandwidth: bool = True
    pairs: str = "all"
    exclusive_by: str | None = None
    under_load: bool = False  # ping the pair while its bandwidth test runs (bufferbloat)
    compare_streams: int = 0  # > 1: after each single-stream test, the same with -P N
    bw: BandwidthOptions = field(default_factory=BandwidthOptions)

    def as_doc(self) -> RunOptionsDoc:
        """What ``run.json`` records of these options."""
        return RunOptionsDoc(
            count=self.count,
            interval_s=self.interval_s,
            reply_timeout_s=self.reply_timeout_s,
            bandwidth=self.bandwidth,
            pairs=self.pairs,
            exclusive_by=self.exclusive_by,
            duration_s=self.bw.duration_s,
            omit_s=self.bw.omit_s,
            streams=self.bw.streams,
            under_load=self.under_load,
            compare_streams=self.compare_streams,
        )


@dataclass(slots=True)
class HostState:
    host: Host
    status: CellStatus = CellStatus.UNREACHABLE
    reason: str = "not connected"
    connect_s: float | None = None
    command_s: float | None = None  # one no-op-sized command: session start + login shell
    tools: dict[str, str | None] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.status is CellStatus.OK

    def has(self, tool: str) -> bool:
        return self.usable and self.tools.get(tool) is not None

    def record(self) -> dict[str, Any]:
        return {
            "kind": "host",
            "host": self.host.name,
            "status": str(self.status),
            "reason": self.reason if not self.usable else None,
            "connect_s": self.connect_s,
            "command_s": self.command_s,
            "tools": self.tools,
        }


@dataclass(frozen=True, slots=True)
class Done:
    """Cells already measured (``--resume``): ``(kind, src, dst)``."""

    cells: frozenset[tuple[str, str, str]] = frozenset()

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Done:
        latest: dict[tuple[str, str, str], str] = {}
        for rec in records:
            if rec.get("kind") in ("ping", "iperf3", "ping_load", "iperf3_multi"):
                latest[rec["kind"], rec["src"], rec["dst"]] = str(rec.get("status"))
        return cls(frozenset(k for k, status in latest.items() if status in DONE))


@dataclass(slots=True)
class _Turn:
    """A bandwidth test's place in its hosts' queues: it arms once the tests before it on the
    same hosts (sites) have fired, and fires once they have finished."""

    after_fired: list[asyncio.Event]
    after_finished: list[asyncio.Event]
    fired: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


Emit = Callable[[dict[str, Any]], None]
Say = Callable[[str], None]


def parse_preflight(text: str) -> dict[str, str | None]:
    have = set(re.findall(r"^have (\S+)$", text, re.MULTILINE))
    tools: dict[str, str | None] = {}
    for tool in ("ping", "iperf3", "timeout"):
        tools[tool] = "present" if tool in have else None
    for tool, version in re.findall(r"^version (ping|iperf3) (.*)$", text, re.MULTILINE):
        if tools.get(tool) is not None and version.strip():
            tools[tool] = version.strip()
    if m := re.search(r"^ping_group_range (.*)$", text, re.MULTILINE):
        tools["ping_group_range"] = m.group(1).strip() or None
    return tools


class Measurement:
    """One run's phases over an inventory, through a connector (``SshPool`` or a fake)."""

    def __init__(
        self,
        inventory: Inventory,
        pool: Connector,
        options: RunOptions,
        emit: Emit,
        say: Say,
        done: Done | None = None,
    ) -> None:
        self.inventory = inventory
        self.pool = pool
        self.options = options
        self.emit = emit
        self.say = say
        self.done = done or Done()
        self.hosts = {h.name: HostState(h) for h in inventory.measured}
        self.phases: dict[str, float] = {}
        self._armed_pings: dict[str, Process] = {}

    async def connect(self, *, arm_ping: bool = True) -> None:
        """Connect and preflight every host; ``arm_ping`` also opens each ping session, gated."""
        started = time.monotonic()
        names = list(self.hosts)
        connected = 0

        def progress(conn: Any) -> None:
            nonlocal connected
            if conn.host in self.hosts:
                connected += 1
                self.say(f"connect: {connected}/{len(names)} hosts ({conn.host}: {conn.status})")

        results = await self.pool.connect(names, on_connected=progress)
        async with asyncio.TaskGroup() as tg:
            for name, state in self.hosts.items():
                conn = results.get(name)
                if conn is not None:
                    state.status, state.reason, state.connect_s = (
                        conn.status,
                        conn.reason,
                        conn.connect_s,
                    )
                if state.usable:
                    tg.create_task(self._preflight(state))
                    if arm_ping:
                        tg.create_task(self._arm_ping(state))
        for state in self.hosts.values():
            self.emit(state.record())
        self.phases["connect_s"] = time.monotonic() - started

    async def _preflight(self, state: HostState) -> None:
        try:
            res = await self.pool.run(state.host.name, ["sh", "-c", PREFLIGHT_SCRIPT], timeout_s=20)
        except HostError as exc:
            state.status, state.reason = CellStatus(exc.status), str(exc)
            return
        if res.exit_status == 127:
            state.status, state.reason = CellStatus.TOOL_MISSING, "coreutils `timeout` missing"
            return
        state.tools = parse_preflight(res.stdout)
        state.command_s = res.elapsed_s

    # --- ping --------------------------------------------------------------------------------

    def _ping_targets(self, src: HostState) -> list[HostState]:
        return [
            t
            for t in self.hosts.values()
            if t.host.name != src.host.name
            and ("ping", src.host.name, t.host.name) not in self.done.cells
        ]

    def _fanout_argv(self, targets: Sequence[HostState]) -> list[str]:
        return ping_fanout_argv(
            [t.host.address for t in targets],
            count=self.options.count,
            interval_s=self.options.interval_s,
            reply_timeout_s=self.options.reply_timeout_s,
        )

    async def _arm_ping(self, state: HostState) -> None:
        """Open the source's fan-out session now, gated, so the phase itself only says "go".

        Opening a session costs two round trips to the host (0.5 s behind a 240 ms bastion
        path) plus its login shell; here that overlaps the preflight instead of the train.
        """
        targets = self._ping_targets(state)
        if not targets:
            return
        train = ping_fanout_seconds(
            self.options.count, self.options.interval_s, self.options.reply_timeout_s
        )
        # on failure the phase opens its own session, and reports what goes wrong then
        with contextlib.suppress(HostError):
            self._armed_pings[state.host.name] = await self.pool.spawn(
                state.host.name,
                self._fanout_argv(targets),
                max_lifetime_s=PING_ARM_HOLD_S + train + 10,
                gated=True,
            )

    async def ping_mesh(self) -> None:
        started = time.monotonic()
        train = ping_fanout_seconds(
            self.options.count, self.options.interval_s, self.options.reply_timeout_s
        )
        sources = [s for s in self.hosts.values()]
        self.say(f"ping: {len(sources)} sources × {len(sources) - 1} targets, ~{train:.0f}s")
        finished = 0
        async with asyncio.TaskGroup() as tg:
            for src in sources:
                tg.create_task(self._ping_from(src, train))
        del finished
        self.phases["ping_s"] = time.monotonic() - started

    async def _ping_from(self, src: HostState, train_s: float) -> None:
        targets = self._ping_targets(src)
        armed = self._armed_pings.pop(src.host.name, None)
        if not targets:
            return
        if not src.usable or not src.has("ping"):
            if armed is not None:
                await armed.stop()
            status = src.status if not src.usable else CellStatus.TOOL_MISSING
            reason = src.reason if not src.usable else f"ping missing on {src.host.name}"
            for t in targets:
                self._ping_record(src, t, status, f"source {src.host.name}: {reason}")
            return
        argv = self._fanout_argv(targets)
        try:
            res = await self._run_fanout(src, argv, armed, train_s + 10)
        except HostError as exc:
            for t in targets:
                self._ping_record(src, t, CellStatus(exc.status), f"source {exc}")
            return
        addresses = [t.host.address for t in targets]
        per_target = split_fanout(addresses, res)
        for t in targets:
            self._ping_result(src, t, per_target[t.host.address])
        self.say(f"ping: {src.host.name} → {len(targets)} targets done")

    async def _run_fanout(
        self, src: HostState, argv: list[str], armed: Process | None, timeout_s: float
    ) -> CommandResult:
        if armed is not None and not armed.ended:
            armed.release()
            res = await armed.wait(timeout_s)
            if res.exit_status is None and armed.connection_lost:
                raise HostError(src.host.name, CellStatus.UNREACHABLE, "connection lost")
            return CommandResult(
                tuple(argv), res.exit_status, res.stdout, res.stderr, res.elapsed_s
            )
        if armed is not None:
            await armed.stop()
        return await self.pool.run(src.host.name, argv, timeout_s=timeout_s)

    def _ping_result(self, src: HostState, dst: HostState, res: CommandResult) -> None:
        outcome = ping_outcome(res)
        if not isinstance(outcome, PingReport):
            self._ping_record(
                src, dst, outcome[0], outcome[1], argv=res.argv, exit_status=res.exit_status
            )
            return
        status = CellStatus.OK if outcome.received > 0 else CellStatus.ALL_LOST
        reason = None if outcome.received else f"all {outcome.sent} probes lost"
        s = outcome.summary
        summary = None if s is None else {
            "rtt_min_ms": s.rtt_min_ms, "rtt_avg_ms": s.rtt_avg_ms,
            "rtt_max_ms": s.rtt_max_ms, "rtt_mdev_ms": s.rtt_mdev_ms,
        }  # fmt: skip
        self._ping_record(
            src, dst, status, reason, argv=res.argv, exit_status=res.exit_status,
            flavor=outcome.flavor, sent=outcome.sent, received=outcome.received,
            duplicates=outcome.duplicates, probes=[[p.seq, p.rtt_ms] for p in outcome.probes],
            summary=summary, errors=list(outcome.errors),
        )  # fmt: skip

    def _ping_record(
        self,
        src: HostState,
        dst: HostState,
        status: CellStatus,
        reason: str | None,
        argv: Sequence[str] = (),
        exit_status: int | None = None,
        **measured: Any,
    ) -> None:
        """One ping record of samples.jsonl (see store.py); ``measured`` when ping ran."""
        self.emit(
            {
                "kind": "ping",
                "src": src.host.name,
                "dst": dst.host.name,
                "t": time.time(),
                "status": str(status),
                "reason": reason,
                "argv": list(argv),
                "exit_status": exit_status,
                **measured,
            }
        )

    # --- bandwidth ----------------------------------------------------------------------------

    def bandwidth_plan(self) -> plan.BandwidthPlan:
        hosts = [s.host for s in self.hosts.values()]
        pairs = plan.select_pairs(hosts, plan.parse_pair_mode(self.options.pairs))
        exclusive = self.options.exclusive_by in ("region", "zone")
        return plan.schedule_rounds(pairs, site_of=self._site_of() if exclusive else None)

    async def bandwidth(self) -> None:
        """Run the plan's tests in round order, each as soon as its hosts (or sites) are free.

        A test waits for the previous test of each host it uses, in plan order, so no host (no
        site with ``--exclusive-by``) ever takes part in two tests at once; unlike a barrier per
        round, a short test (a 0.5 ms intra-region pair) does not wait for the round's slowest
        (a 240 ms intercontinental one), so the phase costs the longest chain, not Σ round maxima.
        A test is *armed* (server listening, client session open and gated) as soon as those
        previous tests have started, so starting it costs one line on stdin, not two sessions.
        """
        started = time.monotonic()
        bw_plan = self.bandwidth_plan()
        per_test = plan.per_test_wall_s(self.options.bw.duration_s, self.options.bw.omit_s)
        self.say(bw_plan.summary(per_test))
        site_of = self._site_of()
        todo = [t for round_ in bw_plan.rounds for t in round_ if not self._bandwidth_done(t)]
        progress = {"done": 0, "total": len(todo)}
        # ports: the n-th test a host serves uses port_base + n, so its armed next server never
        # takes the port of the one still running
        served: Counter[str] = Counter()
        fired: dict[str, asyncio.Event] = {}
        finished: dict[str, asyncio.Event] = {}
        async with asyncio.TaskGroup() as tg:
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
        self.phases["bandwidth_s"] = time.monotonic() - started

    def _bandwidth_done(self, test: plan.BandwidthTest) -> bool:
        """Measured already (``--resume``), with every extra this run asks for.

        An extra (loaded RTT, N streams) needs the test itself again, so a direction whose
        extras are missing is measured whole; the newest record of each kind wins.
        """
        kinds = ["iperf3"]
        if self.options.under_load:
            kinds.append("ping_load")
        if self.options.compare_streams > 1:
            kinds.append("iperf3_multi")
        return all((kind, *test.direction) in self.done.cells for kind in kinds)

    def _site_of(self) -> Callable[[str], str]:
        if self.options.exclusive_by in ("region", "zone"):
            hosts = [s.host for s in self.hosts.values()]
            return plan.site_of_hosts(hosts, self.options.exclusive_by)  # type: ignore[arg-type]
        return lambda name: name

    async def _take_turn(
        self,
        test: plan.BandwidthTest,
        port_index: int,
        turn: _Turn,
        progress: dict[str, int],
        started: float,
    ) -> None:
        try:
            await self._bandwidth_test(test, port_index, turn)
        finally:
            turn.fired.set()
            turn.finished.set()
        progress["done"] += 1
        done, total = progress["done"], progress["total"]
        left = (time.monotonic() - started) / done * (total - done)
        self.say(
            f"bandwidth: {done}/{total} tests ({test.client}→{test.server}), ~{left:.0f}s left"
        )

    def _unmeasurable(self, test: plan.BandwidthTest) -> tuple[CellStatus, str] | None:
        for role, name in (("client", test.client), ("server", test.server)):
            state = self.hosts[name]
            if not state.usable:
                return state.status, f"{role} {name}: {state.reason}"
            if not state.has("iperf3"):
                return CellStatus.TOOL_MISSING, f"iperf3 missing on {name}"
        return None

    async def _bandwidth_test(self, test: plan.BandwidthTest, port_index: int, turn: _Turn) -> None:
        src, dst = test.direction
        client, server = self.hosts[test.client], self.hosts[test.server]
        if (why := self._unmeasurable(test)) is not None:
            self.emit(
                {"kind": "iperf3", "src": src, "dst": dst, "client": test.client,
                 "server": test.server, "reverse": test.reverse, "result": None, "argv": [],
                 "status": str(why[0]), "reason": why[1]}
            )  # fmt: skip
            return
        for event in turn.after_fired:
            await event.wait()
        multi = self.options.compare_streams > 1
        hold = turn_bound_s(self.options.bw) * (2 if multi else 1)
        async with ArmedTest(
            self.pool, client=test.client, server=test.server,
            server_address=server.host.address, reverse=test.reverse,
            options=self.options.bw, port_index=port_index, hold_s=hold,
        ) as armed:  # fmt: skip
            failed = await armed.arm()
            for event in turn.after_finished:
                await event.wait()
            turn.fired.set()
            outcome = failed or await self._fire(armed, client, server, src, dst)
        self.emit(
            {**outcome.record(src, dst, test.client, test.server, test.reverse), "t": time.time()}
        )
        if multi and outcome.status is CellStatus.OK:
            # N streams share the path fairly with each other; the gap to one stream shows how
            # much a single connection leaves on the table (window- or loss-limited paths).
            async with ArmedTest(
                self.pool, client=test.client, server=test.server,
                server_address=server.host.address, reverse=test.reverse,
                options=replace(self.options.bw, streams=self.options.compare_streams),
                port_index=port_index,
            ) as again:  # fmt: skip
                outcome = await again.fire()
            record = outcome.record(src, dst, test.client, test.server, test.reverse)
            self.emit({**record, "kind": "iperf3_multi", "t": time.time()})

    async def _fire(
        self, armed: ArmedTest, client: HostState, server: HostState, src: str, dst: str
    ) -> TestOutcome:
        if not (self.options.under_load and client.has("ping")):
            return await armed.fire()
        async with asyncio.TaskGroup() as tg:
            bw = tg.create_task(armed.fire())
            tg.create_task(self._ping_under_load(client, server, src, dst))
        return bw.result()

    async def _ping_under_load(
        self, client: HostState, server: HostState, src: str, dst: str
    ) -> None:
        """RTT while src→dst is saturated: what a pipeline's tokens see behind a prefill.

        The train starts after set-up and warm-up (server start ≈ 1 s, iperf3's own handshake
        a few RTTs, ``omit``) and ends before the test does, so it samples the loaded path.
        """
        bw = self.options.bw
        await asyncio.sleep(bw.omit_s + LOAD_PING_LEAD_S)
        count = max(1, int((bw.duration_s - LOAD_PING_LEAD_S) / LOAD_PING_INTERVAL_S))
        argv = ping_argv(
            server.host.address, count=count, interval_s=LOAD_PING_INTERVAL_S, reply_timeout_s=2
        )
        try:
            res = await self.pool.run(client.host.name, argv, timeout_s=bw.duration_s + 15)
        except HostError as exc:
            self.emit({"kind": "ping_load", "src": src, "dst": dst, "t": time.time(),
                       "status": str(exc.status), "reason": str(exc)})  # fmt: skip
            return
        outcome = ping_outcome(res)
        if not isinstance(outcome, PingReport):
            self.emit({"kind": "ping_load", "src": src, "dst": dst, "t": time.time(),
                       "status": str(outcome[0]), "reason": outcome[1]})  # fmt: skip
            return
        self.emit({
            "kind": "ping_load", "src": src, "dst": dst, "t": time.time(),
            "pinger": client.host.name,
            "status": str(CellStatus.OK if outcome.received else CellStatus.ALL_LOST),
            "reason": None if outcome.received else "all probes lost under load",
            "sent": outcome.sent, "received": outcome.received, "duplicates": outcome.duplicates,
            "probes": [[p.seq, p.rtt_ms] for p in outcome.probes],
        })  # fmt: skip
