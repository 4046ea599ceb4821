"""``probe run``'s phases in order: connect → preflight → ping mesh → bandwidth rounds.

Every ordered pair ends with a record: a measurement or the reason there is none. A host that
fails is data (its cells carry its status); only bugs propagate. Results are emitted the moment
they exist, so an interrupted run keeps what it measured and ``--resume`` measures only what is
missing. Each phase is its own class (``connect``, ``ping_mesh``, ``bandwidth_phase``); this one
shares the hosts' states between them and times them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass

from probe import plan
from probe.measure.bandwidth_phase import BandwidthPhase
from probe.measure.connect import Connector, ConnectPhase
from probe.measure.context import Done, Emit, EmitMany, HostState, RunContext, RunOptions, Say
from probe.measure.ping_mesh import PingMesh
from probe.model import Inventory


@dataclass(frozen=True, slots=True)
class Remaining:
    """How many of the run's cells are still to measure (``--resume`` skips the others)."""

    rtt_cells: int
    rtt_left: int
    bw_cells: int  # directed bandwidth tests in the plan; 0 without bandwidth
    bw_left: int

    @property
    def nothing(self) -> bool:
        return self.rtt_left == 0 and self.bw_left == 0

    def __str__(self) -> str:
        """``40/42 RTT cells, 12/42 bandwidth cells already measured``."""
        parts = [f"{self.rtt_cells - self.rtt_left}/{self.rtt_cells} RTT cells"]
        if self.bw_cells:
            parts.append(f"{self.bw_cells - self.bw_left}/{self.bw_cells} bandwidth cells")
        return ", ".join(parts) + " already measured"


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
        *,
        emit_many: EmitMany | None = None,
    ) -> None:
        self.hosts = {h.name: HostState(h) for h in inventory.measured}
        self.phases: dict[str, float] = {}
        self._options = options
        ctx = RunContext(
            pool, options, self.hosts, emit, say, done or Done(), inventory.networks,
            emit_many=emit_many,
        )  # fmt: skip
        self._connect = ConnectPhase(pool, self.hosts, emit, say)
        self._ping = PingMesh(ctx)
        self._bandwidth = BandwidthPhase(ctx)

    async def connect(self, *, arm_ping: bool = True) -> None:
        """Connect and preflight every host; ``arm_ping`` also opens each ping session, gated."""
        await self._timed("connect_s", self._connect.run(self._ping.arm if arm_ping else None))

    async def ping_mesh(self) -> None:
        await self._timed("ping_s", self._ping.run())

    async def bandwidth(self) -> None:
        await self._timed("bandwidth_s", self._bandwidth.run())

    def bandwidth_plan(self) -> plan.BandwidthPlan:
        return self._bandwidth.plan()

    def remaining(self) -> Remaining:
        """What is left to measure, known before connecting: a resumed run with nothing left
        need not connect at all."""
        bw_plan = self.bandwidth_plan() if self._options.bandwidth else plan.BandwidthPlan(())
        todo = self._bandwidth.todo(bw_plan)
        rtt_cells = len(self._ping.pings)  # the pings planned: other cells are none to measure
        return Remaining(rtt_cells, self._ping.pairs_left(), bw_plan.tests, len(todo))

    async def _timed(self, name: str, phase: Awaitable[None]) -> None:
        started = time.monotonic()
        await phase
        self.phases[name] = time.monotonic() - started
