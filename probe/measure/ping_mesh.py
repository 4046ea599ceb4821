"""The ping phase: every source pings its planned targets at once, with one command.

The command is ``fping -C`` where the source has fping (``--pinger auto``, or ``fping``), else
the fan-out script that runs one ping per target, a bounded number at a time (``ping``). Each
source's command is recorded once (``ping_fanout``: the whole command, every target in its argv);
each of its targets gets a ``ping`` record naming it: with the fan-out, that target's own ping
argv; with fping, no argv of its own (one fping measured every target: the ``ping_fanout``
record's argv). A source's records are saved together when its command ends (one fsync, one
part of the probe store: ``probe.store.probes``). Which targets a source pings is the run's
ping plan (``--ping-pairs``) less the targets that accept no ICMP (``probe.reach``); the pairs
it leaves out get no record: the matrix marks them ``not-planned``, ``not-measurable`` or fills
them from the reverse direction.

A target is a destination *on a network* (``probe.networks``): the rule's, the one ``--network``
names, or with ``--networks all`` each network both hosts are on — one source then pings the
same destination once per network, at each network's address, still in its one command. A pair
with no network to measure over gets no record either: the matrix, drawing the same rule from
run.json, marks it ``not-measurable``. Targets sharing an address (two networks reusing one
private range) share its one line of the command's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from probe.errors import HostError
from probe.measure.bandwidth import Process
from probe.measure.context import HostState, RunContext
from probe.model import CellStatus, CommandResult
from probe.networks import NoRoute, Route
from probe.plan import parse_ping_pairs, select_ping_pairs
from probe.reach import pings
from probe.store.records import PingFanoutRecord, PingRecord, PingTrain, SampleRecord
from probe.tools.fping import fping_argv, fping_outcome, fping_refuses, fping_seconds
from probe.tools.ping import (
    PingReport,
    fanout_target_argv,
    ping_fanout_argv,
    ping_fanout_seconds,
    ping_outcome,
    split_fanout,
)

#: How long a ping command armed during ``connect`` may wait for the phase to start; past it the
#: remote deadline ends it and the phase opens a fresh session instead.
PING_ARM_HOLD_S = 120.0
#: What a command may take beyond its own wall-time bound before the runner gives up on it.
PING_SLACK_S = 10.0

Tool = Literal["fping", "ping"]


@dataclass(frozen=True, slots=True)
class Target:
    """A destination and the route (network, address) the source pings it over."""

    state: HostState
    route: Route

    @property
    def name(self) -> str:
        return self.state.host.name


@dataclass(frozen=True, slots=True)
class PingCommand:
    """One source's ping command: which tool, its argv, the addresses it pings (each once) and
    a bound of its wall time."""

    tool: Tool
    argv: tuple[str, ...]
    addresses: tuple[str, ...]
    seconds: float


class PingMesh:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        o = ctx.options
        self.plan = select_ping_pairs(
            [s.host for s in ctx.hosts.values()], parse_ping_pairs(o.ping_pairs)
        )
        hosts = {name: state.host for name, state in ctx.hosts.items()}
        self.pings = pings(self.plan.pairs, hosts)
        self._planned: dict[str, list[tuple[str, Route]]] = defaultdict(list)  # source → targets
        for src, dst in self.pings:
            if not isinstance(found := ctx.routes(src, dst), NoRoute):
                self._planned[src].extend((dst, r) for r in found)
        self._fping_refused = fping_refuses(
            count=o.count, interval_s=o.interval_s, reply_timeout_s=o.reply_timeout_s
        )
        self._armed: dict[str, tuple[PingCommand, Process]] = {}  # source → what runs there

    def _targets(self, src: HostState) -> list[Target]:
        return [
            Target(self.ctx.hosts[dst], route)
            for dst, route in self._planned.get(src.host.name, ())
            if ("ping", src.host.name, dst, route.network) not in self.ctx.done.cells
        ]

    def pairs_left(self) -> int:
        """Ordered pairs still to ping (all of them unless the run is resumed)."""
        return sum(len(self._targets(src)) for src in self.ctx.hosts.values())

    def _tool(self, src: HostState) -> Tool:
        """``--pinger``: ``auto`` is fping where the source has it (preflight found it, it did
        not hang and may open its ICMP socket) and fping can send the run's train (whole
        milliseconds), ping elsewhere."""
        pinger = self.ctx.options.pinger
        if pinger != "auto":
            return pinger
        usable = src.has("fping") and "fping" not in src.icmp_denied
        return "fping" if usable and self._fping_refused is None else "ping"

    def _command(self, src: HostState, targets: Sequence[Target]) -> PingCommand:
        o = self.ctx.options
        tool = self._tool(src)
        # one line (fping) or one ping (fan-out) per address: targets sharing one share it
        addresses = list(dict.fromkeys(t.route.address for t in targets))
        if tool == "fping":
            argv = fping_argv(addresses, count=o.count, interval_s=o.interval_s,
                              reply_timeout_s=o.reply_timeout_s)  # fmt: skip
        else:
            argv = ping_fanout_argv(addresses, count=o.count, interval_s=o.interval_s,
                                    reply_timeout_s=o.reply_timeout_s)  # fmt: skip
        seconds = self._bound_s(tool, len(addresses))
        return PingCommand(tool, tuple(argv), tuple(addresses), seconds)

    def _bound_s(self, tool: Tool, targets: int) -> float:
        """How long the tool may take to ping ``targets`` targets: it grows with their count."""
        o = self.ctx.options
        if tool == "fping":
            return fping_seconds(targets, count=o.count, interval_s=o.interval_s,
                                 reply_timeout_s=o.reply_timeout_s)  # fmt: skip
        return ping_fanout_seconds(o.count, o.interval_s, o.reply_timeout_s, targets=targets)

    async def arm(self, state: HostState) -> None:
        """Start the source's ping command now, gated, so the phase itself only says "go".

        Opening a session costs two round trips to the host (0.5 s behind a 240 ms bastion
        path) plus its login shell; here that overlaps the other hosts' connect and preflight
        instead of the train. It runs after the host's preflight: which tool depends on it.
        """
        targets = self._targets(state)
        if not targets or state.cannot_run(self._tool(state), "source") is not None:
            return
        command = self._command(state, targets)
        # on failure the phase opens its own session, and reports what goes wrong then
        with contextlib.suppress(HostError):
            process = await self.ctx.pool.spawn(
                state.host.name,
                command.argv,
                max_lifetime_s=PING_ARM_HOLD_S + command.seconds + PING_SLACK_S,
                gated=True,
            )
            self._armed[state.host.name] = (command, process)

    async def run(self) -> None:
        sources = list(self.ctx.hosts.values())
        work = [(self._tool(s), len(t)) for s in sources if s.usable and (t := self._targets(s))]
        tools = Counter(tool for tool, _ in work)
        parts = [f"ping: {len(self.pings)} ordered pairs planned ({self.plan.mode})"]
        parts += [f"{tool} on {n} sources" for tool, n in sorted(tools.items())]
        parts += [f"~{max((self._bound_s(*w) for w in work), default=0):.0f}s"]
        self.ctx.say(", ".join(parts))
        async with asyncio.TaskGroup() as tg:
            for src in sources:
                tg.create_task(self._ping_from(src))

    async def _ping_from(self, src: HostState) -> None:
        """Ping the source's targets; its records are saved together, as one batch."""
        targets = self._targets(src)
        armed = self._armed.pop(src.host.name, None)
        if not targets:
            return
        tool = self._tool(src)
        if (why := src.cannot_run(tool, "source")) is not None:
            if armed is not None:
                await armed[1].stop()
            self.ctx.emit_all([self._record(src, t, *why) for t in targets])
            return
        command = armed[0] if armed is not None else self._command(src, targets)
        fanout = uuid.uuid4().hex[:12]
        try:
            res = await self._run_command(src, command, armed)
        except HostError as exc:
            batch: list[SampleRecord] = [self._fanout_record(fanout, src, command.argv, None)]
            for t in targets:
                batch.append(self._record(
                    src, t, CellStatus(exc.status), f"{command.tool} from {exc}",
                    argv=self._target_argv(command, t), fanout=fanout,
                ))  # fmt: skip
            self.ctx.emit_all(batch)
            return
        batch = [self._fanout_record(fanout, src, command.argv, res)]
        if command.tool == "fping":
            outcomes = fping_outcome(res, command.addresses)
            for t in targets:
                batch.append(self._result(src, t, "fping", outcomes[t.route.address], (),
                                          res.exit_status, fanout))  # fmt: skip
        else:
            per_target = split_fanout(command.argv, res)
            for t in targets:
                ran = per_target[t.route.address]
                batch.append(self._result(src, t, "ping", ping_outcome(ran), ran.argv,
                                          ran.exit_status, fanout))  # fmt: skip
        self.ctx.emit_all(batch)
        self.ctx.say(f"ping: {src.host.name} → {len(targets)} targets done ({command.tool})")

    @staticmethod
    def _target_argv(command: PingCommand, dst: Target) -> tuple[str, ...]:
        """The process that pinged ``dst`` alone: none with fping (its one command pinged every
        target, and the source's ``ping_fanout`` record holds it)."""
        if command.tool == "fping":
            return ()
        return fanout_target_argv(command.argv, dst.route.address)

    async def _run_command(
        self,
        src: HostState,
        command: PingCommand,
        armed: tuple[PingCommand, Process] | None,
    ) -> CommandResult:
        argv, timeout_s = command.argv, command.seconds + PING_SLACK_S
        process = None if armed is None else armed[1]
        if process is not None and not process.ended:
            process.release()
            res = await process.wait(timeout_s)
            if res.exit_status is None and process.connection_lost:
                raise HostError(src.host.name, CellStatus.UNREACHABLE, "connection lost")
            return CommandResult(argv, res.exit_status, res.stdout, res.stderr, res.elapsed_s)
        if process is not None:
            await process.stop()
        return await self.ctx.pool.run(src.host.name, argv, timeout_s=timeout_s)

    def _result(
        self,
        src: HostState,
        dst: Target,
        tool: Tool,
        outcome: PingReport | tuple[CellStatus, str],
        argv: tuple[str, ...],
        exit_status: int | None,
        fanout: str,
    ) -> PingRecord:
        if not isinstance(outcome, PingReport):
            status, reason = outcome
            return self._record(src, dst, status, f"{tool} {src.host.name} → {dst.name}: {reason}",
                                argv=argv, exit_status=exit_status, fanout=fanout)  # fmt: skip
        return self._record(
            src, dst,
            CellStatus.OK if outcome.received else CellStatus.ALL_LOST,
            None if outcome.received
            else f"{tool} {src.host.name} → {dst.name}: all {outcome.sent} probes lost",
            argv=argv, exit_status=exit_status, fanout=fanout,
            train=PingTrain.from_report(outcome),
        )  # fmt: skip

    @staticmethod
    def _fanout_record(
        fanout: str, src: HostState, argv: tuple[str, ...], res: CommandResult | None
    ) -> PingFanoutRecord:
        return PingFanoutRecord(
            id=fanout,
            src=src.host.name,
            argv=argv,
            t=time.time(),
            exit_status=None if res is None else res.exit_status,
            elapsed_s=None if res is None else round(res.elapsed_s, 3),
        )

    def _record(
        self,
        src: HostState,
        dst: Target,
        status: CellStatus,
        reason: str | None,
        *,
        argv: tuple[str, ...] = (),
        exit_status: int | None = None,
        fanout: str | None = None,
        train: PingTrain | None = None,
    ) -> PingRecord:
        if status is CellStatus.OK:
            self.ctx.answered.add(frozenset((src.host.name, dst.name)))
        return PingRecord(
            src=src.host.name,
            dst=dst.name,
            status=status,
            reason=reason,
            t=time.time(),
            argv=argv,
            exit_status=exit_status,
            fanout=fanout,
            train=train,
            network=dst.route.network,
            address=dst.route.address,
        )
