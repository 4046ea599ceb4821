"""The ``probe check`` use case: can every host be reached, and does it have ping and iperf3?

It runs the connect phase of ``probe run`` (connect, then one preflight command per host) and
nothing else, so it answers what a run would see without measuring or writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.measure.connect import Connector
from probe.measure.context import HostState, RunOptions
from probe.measure.measurement import Measurement
from probe.measure.ssh import SshPool
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, Inventory


@dataclass(frozen=True, slots=True)
class HostCheck:
    """One host after connect and preflight; a tool is its version line, None when missing
    or hung (then it is in ``hung``)."""

    host: str
    region: str
    status: CellStatus
    reason: str | None  # why the host is not usable; None when it is
    connect_s: float | None
    command_s: float | None  # one small command: session start + login shell
    ping: str | None
    iperf3: str | None
    ping_group_range: str | None  # who may open ICMP sockets without root
    hung: tuple[str, ...] = ()  # tools that did not answer their version probe in time

    @classmethod
    def of(cls, state: HostState) -> HostCheck:
        return cls(
            host=state.host.name,
            region=state.host.region,
            status=state.status,
            reason=None if state.usable else state.reason,
            connect_s=state.connect_s,
            command_s=state.command_s,
            ping=state.tools.get("ping"),
            iperf3=state.tools.get("iperf3"),
            ping_group_range=state.tools.get("ping_group_range"),
            hung=tuple(state.hung),
        )

    @property
    def usable(self) -> bool:
        return self.status is CellStatus.OK

    @property
    def ready(self) -> bool:
        """Usable with both tools: ``probe run`` can measure every cell of this host."""
        return self.usable and self.ping is not None and self.iperf3 is not None


async def check_hosts(inventory: Inventory, connector: Connector) -> tuple[HostCheck, ...]:
    """Connect and preflight every measured host through ``connector``, in inventory order."""
    m = Measurement(inventory, connector, RunOptions(), lambda _r: None, lambda _s: None)
    await m.connect(arm_ping=False)
    return tuple(HostCheck.of(state) for state in m.hosts.values())


async def check(inventory: Inventory, ssh: SshOptions) -> tuple[HostCheck, ...]:
    """``check_hosts`` over SSH."""
    pool = SshPool(inventory, ssh)
    async with pool:
        return await check_hosts(inventory, pool)
