"""The ping phase: every source pings every other host at once, through one fan-out session.

Each source's fan-out is recorded once (``ping_fanout``: the whole command, every target in its
argv); each of its targets gets a ``ping`` record naming it, with the target's own ping argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence

from probe.errors import HostError
from probe.measure.bandwidth import Process
from probe.measure.context import HostState, RunContext
from probe.model import CellStatus, CommandResult
from probe.store.records import PingFanoutRecord, PingRecord, PingTrain
from probe.tools.ping import (
    PingReport,
    fanout_target_argv,
    ping_fanout_argv,
    ping_fanout_seconds,
    ping_outcome,
    split_fanout,
)

#: How long a ping fan-out armed during ``connect`` may wait for the phase to start; past it the
#: remote deadline ends it and the phase opens a fresh session instead.
PING_ARM_HOLD_S = 120.0


class PingMesh:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._armed: dict[str, tuple[tuple[str, ...], Process]] = {}  # source → (argv, process)

    def _targets(self, src: HostState) -> list[HostState]:
        return [
            t
            for t in self.ctx.hosts.values()
            if t.host.name != src.host.name
            and ("ping", src.host.name, t.host.name) not in self.ctx.done.cells
        ]

    def pairs_left(self) -> int:
        """Ordered pairs still to ping (all of them unless the run is resumed)."""
        return sum(len(self._targets(src)) for src in self.ctx.hosts.values())

    def _fanout_argv(self, targets: Sequence[HostState]) -> tuple[str, ...]:
        options = self.ctx.options
        return tuple(
            ping_fanout_argv(
                [t.host.address for t in targets],
                count=options.count,
                interval_s=options.interval_s,
                reply_timeout_s=options.reply_timeout_s,
            )
        )

    def _train_s(self) -> float:
        o = self.ctx.options
        return ping_fanout_seconds(o.count, o.interval_s, o.reply_timeout_s)

    async def arm(self, state: HostState) -> None:
        """Open the source's fan-out session now, gated, so the phase itself only says "go".

        Opening a session costs two round trips to the host (0.5 s behind a 240 ms bastion
        path) plus its login shell; here that overlaps the preflight instead of the train.
        """
        targets = self._targets(state)
        if not targets:
            return
        argv = self._fanout_argv(targets)
        # on failure the phase opens its own session, and reports what goes wrong then
        with contextlib.suppress(HostError):
            process = await self.ctx.pool.spawn(
                state.host.name,
                argv,
                max_lifetime_s=PING_ARM_HOLD_S + self._train_s() + 10,
                gated=True,
            )
            self._armed[state.host.name] = (argv, process)

    async def run(self) -> None:
        train = self._train_s()
        sources = list(self.ctx.hosts.values())
        self.ctx.say(f"ping: {len(sources)} sources × {len(sources) - 1} targets, ~{train:.0f}s")
        async with asyncio.TaskGroup() as tg:
            for src in sources:
                tg.create_task(self._ping_from(src, train))

    async def _ping_from(self, src: HostState, train_s: float) -> None:
        targets = self._targets(src)
        armed = self._armed.pop(src.host.name, None)
        if not targets:
            return
        if (why := src.cannot_run("ping", "source")) is not None:
            if armed is not None:
                await armed[1].stop()
            for t in targets:
                self._emit(src, t, *why)
            return
        argv = armed[0] if armed is not None else self._fanout_argv(targets)
        fanout = uuid.uuid4().hex[:12]
        try:
            res = await self._run_fanout(src, argv, armed, train_s + 10)
        except HostError as exc:
            self._emit_fanout(fanout, src, argv, None)
            for t in targets:
                self._emit(
                    src, t, CellStatus(exc.status), f"ping from {exc}",
                    argv=fanout_target_argv(argv, t.host.address), fanout=fanout,
                )  # fmt: skip
            return
        self._emit_fanout(fanout, src, argv, res)
        per_target = split_fanout(argv, res)
        for t in targets:
            self._result(src, t, per_target[t.host.address], fanout)
        self.ctx.say(f"ping: {src.host.name} → {len(targets)} targets done")

    async def _run_fanout(
        self,
        src: HostState,
        argv: tuple[str, ...],
        armed: tuple[tuple[str, ...], Process] | None,
        timeout_s: float,
    ) -> CommandResult:
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

    def _result(self, src: HostState, dst: HostState, res: CommandResult, fanout: str) -> None:
        outcome = ping_outcome(res)
        if not isinstance(outcome, PingReport):
            status, reason = outcome
            self._emit(src, dst, status, f"ping {src.host.name} → {dst.host.name}: {reason}",
                       argv=res.argv, exit_status=res.exit_status, fanout=fanout)  # fmt: skip
            return
        self._emit(
            src, dst,
            CellStatus.OK if outcome.received else CellStatus.ALL_LOST,
            None if outcome.received
            else f"ping {src.host.name} → {dst.host.name}: all {outcome.sent} probes lost",
            argv=res.argv, exit_status=res.exit_status, fanout=fanout,
            train=PingTrain.from_report(outcome),
        )  # fmt: skip

    def _emit_fanout(
        self, fanout: str, src: HostState, argv: tuple[str, ...], res: CommandResult | None
    ) -> None:
        self.ctx.emit(
            PingFanoutRecord(
                id=fanout,
                src=src.host.name,
                argv=argv,
                t=time.time(),
                exit_status=None if res is None else res.exit_status,
                elapsed_s=None if res is None else round(res.elapsed_s, 3),
            )
        )

    def _emit(
        self,
        src: HostState,
        dst: HostState,
        status: CellStatus,
        reason: str | None,
        *,
        argv: tuple[str, ...] = (),
        exit_status: int | None = None,
        fanout: str | None = None,
        train: PingTrain | None = None,
    ) -> None:
        self.ctx.emit(
            PingRecord(
                src=src.host.name,
                dst=dst.host.name,
                status=status,
                reason=reason,
                t=time.time(),
                argv=argv,
                exit_status=exit_status,
                fanout=fanout,
                train=train,
            )
        )
