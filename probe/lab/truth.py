"""What a perfect measurement of each ordered pair over each network would report, or which
status it must carry instead: the lab's ground truth (``truth.json``), derived from the topology.

    both hosts on network N, neither behind NAT   the pair's link over N: figures
    dst behind NAT (src not)                      figures, status ``from_reverse`` (dst accepts
                                                  nothing: its RTT comes from its own pings)
    both behind NAT                               ``not-measurable``: neither accepts inbound
    no network in common                          ``not-measurable`` (network "")

A host behind NAT uses its gateway's addresses and links; between a host and its own gateway
the path is the LAN, with no delay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from probe.lab.topology import MESH, LinkParams, Topology

MSS_EFFICIENCY = 1448 / 1500  # TCP payload per 1500-byte IP packet with timestamps


TruthStatus = Literal["ok", "from_reverse"]


@dataclass(frozen=True, slots=True)
class PairTruth:
    """What a perfect measurement of src→dst over ``network`` would report (round trip seen
    from src). ``from_reverse``: dst accepts nothing (NAT), so its RTT figures come from dst's
    own pings to src — the same round trip."""

    src: str
    dst: str
    rtt_ms: float
    rtt_std_ms: float
    ipdv_ms: float
    loss_pct: float
    rate_fwd_bps: float
    rate_rev_bps: float
    network: str = MESH
    address: str = ""  # dst's address on that network (its NAT gateway's, behind NAT)
    status: TruthStatus = "ok"
    reason: str = ""
    #: the status a bandwidth test of src→dst must carry; None: it is measured. "blocked": the
    #: firewall of the host serving iperf3 in probe's plan (dst; src when dst is behind NAT)
    #: drops the iperf3 ports
    bw_status: str | None = None

    @property
    def tcp_max_fwd_bps(self) -> float:
        return self.rate_fwd_bps * MSS_EFFICIENCY

    @property
    def tcp_max_rev_bps(self) -> float:
        return self.rate_rev_bps * MSS_EFFICIENCY


@dataclass(frozen=True, slots=True)
class PairStatus:
    """A directed pair and network that cannot be measured: the status probe must report
    instead of figures, and why (``network`` is empty when the hosts share none)."""

    src: str
    dst: str
    network: str
    status: Literal["not-measurable"]
    reason: str


def path_link(topo: Topology, src: str, dst: str, network: str) -> LinkParams:
    """The link a packet src→dst over ``network`` crosses: the pair's link between their NAT
    gateways (or themselves) with the network's extra in series; none on a NAT LAN."""
    a, b = topo.gateway(src), topo.gateway(dst)
    if a == b:
        return LinkParams()  # a host and its own NAT gateway: the LAN veth
    return topo.network(network).over(topo.links[a, b])


def pair_truth(topo: Topology, src: str, dst: str, network: str | None = None) -> PairTruth:
    """Expected figures of one ordered pair over ``network`` (default: the first network
    both are on); IPDV of a normal jitter is 2σ/√π (E|X−Y|)."""
    net = network if network is not None else topo.common_networks(src, dst)[0]
    fwd, rev = path_link(topo, src, dst, net), path_link(topo, dst, src, net)
    std = math.hypot(fwd.jitter_std_ms, rev.jitter_std_ms)
    loss = 100.0 * (1.0 - (1.0 - fwd.loss_pct / 100.0) * (1.0 - rev.loss_pct / 100.0))
    behind = topo.host(dst).nat
    return PairTruth(
        src=src,
        dst=dst,
        rtt_ms=fwd.delay_ms + rev.delay_ms,
        rtt_std_ms=std,
        ipdv_ms=2.0 * std / math.sqrt(math.pi),
        loss_pct=loss,
        rate_fwd_bps=fwd.rate_bps,
        rate_rev_bps=rev.rate_bps,
        network=net,
        address=topo.peer_addresses(dst)[net],
        status="ok" if behind is None else "from_reverse",
        reason=""
        if behind is None
        else f"{dst} is behind NAT ({behind}): RTT from its own pings to {src}",
        bw_status="blocked" if topo.host(_server(topo, src, dst)).drop_tcp else None,
    )


def _server(topo: Topology, src: str, dst: str) -> str:
    """Who serves iperf3 for the data src→dst in probe's plan: dst, unless dst accepts nothing
    (behind NAT): then src serves and dst is the ``-R`` client."""
    return src if topo.host(dst).nat is not None else dst


def expectations(topo: Topology, src: str, dst: str) -> list[PairTruth | PairStatus]:
    """One entry per network both hosts are on: figures, or why there can be none."""
    nets = topo.common_networks(src, dst)
    if not nets:
        return [PairStatus(src, dst, "", "not-measurable", "no network in common")]
    gateways = [topo.host(h).nat for h in (src, dst)]
    if None not in gateways:
        behind = ", ".join(sorted({str(g) for g in gateways}))
        reason = f"both behind NAT ({behind}): neither accepts inbound"
        return [PairStatus(src, dst, n, "not-measurable", reason) for n in nets]
    return [pair_truth(topo, src, dst, n) for n in nets]


def truth_table(topo: Topology) -> tuple[tuple[PairTruth, ...], tuple[PairStatus, ...]]:
    """Every ordered pair's expectations: (figures, statuses)."""
    names = [h.name for h in topo.hosts]
    entries = [e for a in names for b in names if a != b for e in expectations(topo, a, b)]
    figures = tuple(e for e in entries if isinstance(e, PairTruth))
    return figures, tuple(e for e in entries if isinstance(e, PairStatus))
