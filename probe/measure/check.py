"""The ``probe check`` use case: can every host be reached, and does it have ping and iperf3?

It runs the connect phase of ``probe run`` (connect, then one preflight command per host) and
nothing else, so it answers what a run would see without measuring or writing anything. The
relays (``measure: false`` jump hosts) get a row too: they are never measured, but every host
behind a relay that cannot be reached is unreachable, and the table should say where it broke.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.measure.connect import Connector
from probe.measure.context import HostState, RunOptions
from probe.measure.measurement import Measurement
from probe.measure.ssh import HostConnection, SshPool
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, Host, Inventory
from probe.tools.iperf3auth import cannot_authenticate


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
    relay: bool = False  # a jump host that is not measured: SSH only, its tools are not asked
    hung: tuple[str, ...] = ()  # tools that did not answer their version probe in time
    # "yes", or why iperf3 tests with this host cannot be authenticated; "" without iperf3
    iperf3_auth: str = ""

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
            iperf3_auth=_auth(state),
        )

    @classmethod
    def of_relay(cls, host: Host, conn: HostConnection) -> HostCheck:
        """A relay as connecting to it went (``conn``: the connector's outcome for it)."""
        return cls(
            host=host.name,
            region=host.region,
            status=conn.status,
            reason=None if conn.status is CellStatus.OK else conn.reason,
            connect_s=conn.connect_s,
            command_s=None,
            ping=None,
            iperf3=None,
            ping_group_range=None,
            relay=True,
        )

    @property
    def usable(self) -> bool:
        return self.status is CellStatus.OK

    @property
    def ready(self) -> bool:
        """Usable with both tools: ``probe run`` can measure every cell of this host (a relay:
        it carries the SSH connections of the hosts behind it)."""
        if self.relay:
            return self.usable
        return self.usable and self.ping is not None and self.iperf3 is not None


async def check_hosts(inventory: Inventory, connector: Connector) -> tuple[HostCheck, ...]:
    """Connect and preflight every measured host through ``connector``; one row per measured
    host and per relay, in inventory order."""
    m = Measurement(inventory, connector, RunOptions(), lambda _r: None, lambda _s: None)
    await m.connect(arm_ping=False)
    relays = _relays(inventory)
    # the measured hosts' connections opened their relays: this reads how that went
    relayed = await connector.connect([h.name for h in relays]) if relays else {}
    rows = {name: HostCheck.of(state) for name, state in m.hosts.items()}
    rows.update({h.name: HostCheck.of_relay(h, relayed[h.name]) for h in relays})
    return tuple(rows[h.name] for h in inventory.hosts if h.name in rows)


def _auth(state: HostState) -> str:
    """Whether the host's iperf3 can take part in an authenticated test (``--auth``)."""
    version = state.tools.get("iperf3")
    if version is None:
        return ""
    return cannot_authenticate(version, state.tools.get("iperf3_features")) or "yes"


def _relays(inventory: Inventory) -> list[Host]:
    """The ``measure: false`` hosts some measured host is reached through."""
    used = {hop for h in inventory.measured for hop in h.ssh.via}
    return [h for h in inventory.hosts if not h.measure and h.name in used]


async def check(inventory: Inventory, ssh: SshOptions) -> tuple[HostCheck, ...]:
    """``check_hosts`` over SSH."""
    pool = SshPool(inventory, ssh)
    async with pool:
        return await check_hosts(inventory, pool)
