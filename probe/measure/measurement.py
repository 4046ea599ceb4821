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

from probe.measure import plan
from probe.measure.bandwidth_phase import BandwidthPhase
from probe.measure.connect import Connector, ConnectPhase
from probe.measure.context import Done, Emit, HostState, RunContext, RunOptions, Say
from probe.measure.ping_mesh import PingMesh
from probe.model import Inventory


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
        self.hosts = {h.name: HostState(h) for h in inventory.measured}
        self.phases: dict[str, float] = {}
        ctx = RunContext(pool, options, self.hosts, emit, say, done or Done())
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

    async def _timed(self, name: str, phase: Awaitable[None]) -> None:
        started = time.monotonic()
        await phase
        self.phases[name] = time.monotonic() - started
