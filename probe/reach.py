"""Who may aim at whom: the plan never pings or connects to a host that refuses it.

Pure, beside ``plan.py``: it reads each host's ``inbound`` (inventory ``inbound:``/``nat:``) and
iperf3 ports, and says per cell how it is measured.

- **RTT** src→dst is a ping from src, so dst must accept ICMP. When it does not, the cell comes
  from dst's own ping of src (a round trip is one whatever end starts it): ``from_reverse``.
  When neither end accepts ICMP the pair is ``not-measurable``.
- **Bandwidth** needs an iperf3 server accepting TCP on its iperf3 ports. When only one end
  does, the other is the client both ways: its upload a normal test, its download ``-R``
  (whose sender-side figures iperf3 does not report). When neither does: ``not-measurable``.

The measurement and the matrix (redrawing the plan from run.json) both ask here, so a cell the
run never aimed at is never counted missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from probe.model import Inbound, PortRange
from probe.plan import Pair


class ReachHost(Protocol):
    """What reach reads of a host: an inventory ``Host`` or run.json's ``RunHost``."""

    @property
    def name(self) -> str: ...
    @property
    def inbound(self) -> Inbound: ...
    @property
    def iperf3_ports(self) -> PortRange | None: ...


class PingWay(StrEnum):
    """How an RTT cell src→dst is measured."""

    DIRECT = "direct"  # src pings dst
    FROM_REVERSE = "from-reverse"  # dst refuses ICMP: dst's ping of src fills the cell
    NOT_MEASURABLE = "not-measurable"  # neither accepts ICMP


@dataclass(frozen=True, slots=True)
class PingReach:
    way: PingWay
    reason: str | None = None


_DIRECT = PingReach(PingWay.DIRECT)


def ping_reach(src: ReachHost, dst: ReachHost) -> PingReach:
    """How the RTT cell src→dst is measured, and why when not directly."""
    if dst.inbound.icmp:
        return _DIRECT
    if src.inbound.icmp:
        why = f"from the reverse direction: {dst.name} accepts no inbound ICMP"
        return PingReach(PingWay.FROM_REVERSE, why)
    why = f"neither {src.name} nor {dst.name} accepts inbound ICMP: neither can ping the other"
    return PingReach(PingWay.NOT_MEASURABLE, why)


def pings(pairs: Iterable[Pair], hosts: Mapping[str, ReachHost]) -> list[Pair]:
    """The planned ordered pairs a source really pings (its destination accepts ICMP)."""
    return [(a, b) for a, b in pairs if hosts[b].inbound.icmp]


def server_ports(host: ReachHost, run_ports: PortRange) -> PortRange | None:
    """Where an iperf3 server on ``host`` may listen: its iperf3 ports (its own, else the run's)
    that it accepts TCP on; None when it accepts none of them."""
    return host.inbound.tcp_within(host.iperf3_ports or run_ports)


@dataclass(frozen=True, slots=True)
class BandwidthRoles:
    """The selected pairs as tests: ``pairs`` oriented client first (a restricted host is the
    client), ``reverse_for`` the pairs whose backward test is ``-R`` on that same client, and
    the pairs no end of which can serve, with why (unordered, as selected)."""

    pairs: tuple[Pair, ...]
    reverse_for: frozenset[Pair]
    not_measurable: Mapping[Pair, str]


def bandwidth_roles(
    pairs: Iterable[Pair], hosts: Mapping[str, ReachHost], run_ports: PortRange
) -> BandwidthRoles:
    oriented: list[Pair] = []
    reverse_for: set[Pair] = set()
    refused: dict[Pair, str] = {}
    for a, b in pairs:
        serves_a = server_ports(hosts[a], run_ports) is not None
        serves_b = server_ports(hosts[b], run_ports) is not None
        if serves_a and serves_b:
            oriented.append((a, b))
        elif serves_a or serves_b:
            pair = (b, a) if serves_a else (a, b)  # the one that cannot serve is the client
            oriented.append(pair)
            reverse_for.add(pair)
        else:
            why = "; ".join(_no_server(hosts[h], run_ports) for h in (a, b))
            refused[a, b] = f"neither {a} nor {b} can be the iperf3 server: {why}"
    return BandwidthRoles(tuple(oriented), frozenset(reverse_for), refused)


def _no_server(host: ReachHost, run_ports: PortRange) -> str:
    ports = host.iperf3_ports or run_ports
    if not host.inbound.tcp:
        return f"{host.name} accepts no inbound TCP"
    accepted = ", ".join(str(r) for r in host.inbound.tcp)
    return f"{host.name} accepts inbound TCP on {accepted}, not on its iperf3 ports {ports}"
