"""The ``probe check`` use case: can every host be reached, and does it have ping and iperf3?

It also says what each host's account lacks and what that costs the run (``account_findings``):
preflight tries ping and fping on the host's own loopback as that account, so a refusal is found
however the host grants ICMP (root, setuid, cap_net_raw, ``ping_group_range``), and the range and
the account's groups (``id -G``) only explain it.

It runs the connect phase of ``probe run`` (connect, then one preflight command per host) and
nothing else, so it answers what a run would see without measuring or writing anything. The
relays (``measure: false`` jump hosts) get a row too: they are never measured, but every host
behind a relay that cannot be reached is unreachable, and the table should say where it broke.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from probe.measure.connect import Connector
from probe.measure.context import HostState, RunOptions
from probe.measure.measurement import Measurement
from probe.measure.ssh import HostConnection, SshPool
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, Host, Inventory
from probe.tools.iperf3auth import cannot_authenticate
from probe.tools.ping import Flavor, ping_tool_flavor


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
    fping: str | None = None  # optional: the ping mesh uses it where it works
    ping_flavor: Flavor | None = None  # which ping: iputils, iputils-old, busybox; None unknown
    icmp_denied: Mapping[str, str] = field(default_factory=dict)  # ping/fping → what it said
    groups: str | None = None  # the account's group ids (``id -G``)
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
            fping=state.tools.get("fping"),
            ping_flavor=ping_tool_flavor(state.tools.get("ping")),
            icmp_denied=dict(state.icmp_denied),
            groups=state.tools.get("groups"),
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
        tools = self.ping is not None and self.iperf3 is not None
        return self.usable and tools and self.can_ping

    @property
    def can_ping(self) -> bool:
        """This account may send ICMP with the tool ``--pinger auto`` picks here."""
        fping = self.fping is not None and "fping" not in self.icmp_denied
        return "ping" not in self.icmp_denied or fping


def account_findings(c: HostCheck) -> tuple[str, ...]:
    """What ``c``'s account lacks and what it costs the run, one line each."""
    found = []
    if "ping" in c.icmp_denied:
        cost = (
            "the ping mesh uses fping here"
            if c.can_ping
            else "no RTT cells from this host (bandwidth tests still run)"
        )
        found.append(
            f'no ICMP for this account: ping says "{c.icmp_denied["ping"]}"; '
            f"{_range_says(c.ping_group_range, c.groups)} → {cost}"
        )
    if "fping" in c.icmp_denied:
        found.append(
            f'fping may not open its ICMP socket ("{c.icmp_denied["fping"]}"; not setuid, no '
            "cap_net_raw) → "
            + ("falls back to ping" if "ping" not in c.icmp_denied else "no fping either")
        )
    return tuple(found)


def _range_says(ping_group_range: str | None, groups: str | None) -> str:
    """Whether net.ipv4.ping_group_range lets one of ``groups`` open ping sockets."""
    try:
        low, high = (int(v) for v in (ping_group_range or "").split())
        gids = [int(g) for g in (groups or "").split()]
    except ValueError:
        return f"ping_group_range {ping_group_range!r}, groups {groups!r}"
    inside = [g for g in gids if low <= g <= high]
    if inside:
        return (
            f"ping_group_range {low} {high} includes gid {inside[0]}, so this ping does not "
            "use ping sockets (iputils before 20150815, busybox) and needs setuid or cap_net_raw"
        )
    return (
        f"ping_group_range {low} {high} excludes gids {' '.join(map(str, gids)) or '?'} and "
        "ping has neither setuid nor cap_net_raw"
    )


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
