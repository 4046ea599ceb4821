"""Lab topology: regions, hosts with explicit addresses, and the link model of every directed pair.

The topology file is the lab's ground truth: tests compare what probe measures with what the lab
was told to emulate (``truth``). Addresses are explicit (never derived from dict order, which
moved IPs between runs in the prototype) and must sit in 198.18.0.0/15, the benchmarking range,
so that a typo can never address a real network.

Link resolution, later layers overriding earlier ones *field by field*:

    links.default < links.intra (same region) < links["ra-rb"] < links["ra>rb"]
                  < pairs["a-b"] < pairs["a>b"]

then a host's ``access`` (a last mile such as a residential uplink) is put in series: delays add,
jitter variances add, losses compound, the lower rate wins.

SSH reaches a host through a chain of jump hosts that starts at the top-level ``jump`` (the only
host the controller reaches): a host's ``via``, else its region's, else ``jump`` itself.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from probe.errors import InputError
from probe.textio import read_text
from probe.units import parse_duration_ms, parse_percent, parse_rate_bps
from probe.yamlsrc import MapNode, Node, closest, parse_yaml_mapping

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
_LAB_RANGE_V4 = ipaddress.IPv4Network("198.18.0.0/15")
MSS_EFFICIENCY = 1448 / 1500  # TCP payload per 1500-byte IP packet with timestamps
_NAME = re.compile(r"[a-z][a-z0-9-]{0,11}")  # ends up in netns and interface names
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,4}-")
_LINK_KEYS = {"delay", "jitter", "jitter_dist", "loss", "rate", "queue", "reorder"}
_FLEET_KEYS = {"firewall", "user", "unprivileged_icmp", "tools", "cc"}  # hosts unlike the others
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # what useradd accepts, without a trailing '$'
_PORTS = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")

JitterDist = Literal["normal", "uniform"]
RateImpl = Literal["htb", "userspace"]  # htb: kernel back-pressure; userspace: tail drop
Tools = Literal["system", "busybox"]  # busybox: ping and timeout are busybox applets
CongestionControl = Literal["cubic", "bbr"]
PortRange = tuple[int, int]  # inclusive


@dataclass(frozen=True, slots=True)
class LinkParams:
    """One direction of a link. ``rate_bps`` 0 means unlimited."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: JitterDist = "normal"
    loss_pct: float = 0.0
    rate_bps: float = 0.0
    queue_ms: float = 50.0
    reorder: bool = False

    @property
    def jitter_std_ms(self) -> float:
        """Standard deviation of the added delay (uniform ±j has std j/√3)."""
        return self.jitter_ms / math.sqrt(3) if self.jitter_dist == "uniform" else self.jitter_ms


@dataclass(frozen=True, slots=True)
class LabHost:
    name: str
    region: str
    address: str
    zone: str | None = None
    measure: bool = True
    access_up: LinkParams | None = None  # last mile, added in series to every path leaving
    access_down: LinkParams | None = None  # ... and entering this host (residential, DSL)
    via: str | None = None  # the jump host SSH reaches this host through; None: the top-level jump
    drop_tcp: tuple[PortRange, ...] = ()  # firewall: inbound TCP to these ports is dropped
    user: str | None = None  # the SSH login, a non-root account; None: root
    unprivileged_icmp: bool = True  # False: the login account cannot ping (no ICMP socket)
    tools: Tools = "system"
    cc: CongestionControl | None = None  # TCP congestion control; None: the kernel's default


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    gso: bool = True
    rate_impl: RateImpl = "htb"
    guard_us: int = 1000
    spin_us: int = 50
    sched_fifo: int = 10
    comp_us: float = 90.0


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    prefix: str
    jump: str
    hosts: tuple[LabHost, ...]
    links: Mapping[tuple[str, str], LinkParams]  # every ordered pair of distinct hosts
    emulator: EmulatorSettings
    ssh_port: int = 22
    controller_link: str = "198.19.255.0/30"
    mesh: str = "198.18.0.0/15"
    source: str = "<memory>"

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def netns(self, host: str) -> str:
        return f"{self.prefix}{host}"

    def chain(self, host: str) -> tuple[str, ...]:
        """The jump hosts SSH goes through to ``host``, outermost (the top-level jump) first."""
        hops: list[str] = []
        via = self.host(host).via
        while via is not None:
            hops.append(via)
            via = self.host(via).via
        return tuple(reversed(hops))

    @property
    def controller_addresses(self) -> tuple[str, str]:
        """(controller side, jump-host side) of the only link out of the lab."""
        net = ipaddress.ip_network(self.controller_link)
        first, second = list(net.hosts())[:2]
        return str(first), str(second)


@dataclass(frozen=True, slots=True)
class PairTruth:
    """What a perfect measurement of src→dst would report (round trip seen from src)."""

    src: str
    dst: str
    rtt_ms: float
    rtt_std_ms: float
    ipdv_ms: float
    loss_pct: float
    rate_fwd_bps: float
    rate_rev_bps: float
    #: the status a bandwidth test of src→dst must carry (dst serving iperf3, as probe's default
    #: plan has it); None: it is measured. "blocked": dst's firewall drops the iperf3 ports
    bw_status: str | None = None

    @property
    def tcp_max_fwd_bps(self) -> float:
        return self.rate_fwd_bps * MSS_EFFICIENCY

    @property
    def tcp_max_rev_bps(self) -> float:
        return self.rate_rev_bps * MSS_EFFICIENCY


def pair_truth(topo: Topology, src: str, dst: str) -> PairTruth:
    """Expected figures of one ordered pair; IPDV of a normal jitter is 2σ/√π (E|X−Y|)."""
    fwd, rev = topo.links[src, dst], topo.links[dst, src]
    std = math.hypot(fwd.jitter_std_ms, rev.jitter_std_ms)
    loss = 100.0 * (1.0 - (1.0 - fwd.loss_pct / 100.0) * (1.0 - rev.loss_pct / 100.0))
    return PairTruth(
        src=src,
        dst=dst,
        rtt_ms=fwd.delay_ms + rev.delay_ms,
        rtt_std_ms=std,
        ipdv_ms=2.0 * std / math.sqrt(math.pi),
        loss_pct=loss,
        rate_fwd_bps=fwd.rate_bps,
        rate_rev_bps=rev.rate_bps,
        bw_status="blocked" if topo.host(dst).drop_tcp else None,
    )


def truth_table(topo: Topology) -> list[PairTruth]:
    names = [h.name for h in topo.hosts]
    return [pair_truth(topo, a, b) for a in names for b in names if a != b]


# --- parsing -------------------------------------------------------------------------------


def parse_topology(text: str, *, source: str) -> Topology:
    """Validate topology text; every error names ``source:line`` and the key path."""
    top = parse_yaml_mapping(text, source=source)
    top.check_keys(
        {"name", "prefix", "jump", "ssh", "addressing", "emulator", "regions", "links", "pairs"}
    )
    name = "lab" if (name_node := top.get("name")) is None else _name(name_node, "name")
    prefix = top.get_str("prefix", "pl-")
    if not _PREFIX.fullmatch(prefix):
        message = f"prefix {prefix!r} must be 1-5 lowercase letters/digits and '-'"
        raise top.require("prefix").error(message)
    ssh = top.section("ssh")
    ssh.check_keys({"port"})
    ssh_port = ssh.get_int("port", 22, min=1, max=65535)
    addressing = top.section("addressing")
    addressing.check_keys({"mesh", "controller_link"})
    mesh = _subnet(addressing.get("mesh"), "198.18.0.0/15")
    ctl = _subnet(addressing.get("controller_link"), "198.19.255.0/30")
    if ctl.prefixlen != 30:
        raise addressing.require("controller_link").error(
            "'addressing.controller_link' must be a /30"
        )
    hosts, host_vias, region_vias = _parse_hosts(top.section("regions"), mesh, ctl, ssh_port)
    jump = top.get_str("jump", "")
    if jump not in {h.name for h in hosts}:
        where = top.key_where("jump") if "jump" in top else top.where
        raise InputError(f"jump host {jump!r} is not a host of any region", where=where)
    hosts = _resolve_jumps(hosts, host_vias, region_vias, jump)
    return Topology(
        name=name,
        prefix=prefix,
        jump=jump,
        hosts=hosts,
        links=_resolve_links(hosts, top.section("links"), top.section("pairs")),
        emulator=_parse_emulator(top.section("emulator")),
        ssh_port=ssh_port,
        controller_link=str(ctl),
        mesh=str(mesh),
        source=source,
    )


def _parse_hosts(
    regions: MapNode, mesh: ipaddress.IPv4Network, ctl: ipaddress.IPv4Network, ssh_port: int
) -> tuple[tuple[LabHost, ...], dict[str, Node], dict[str, Node]]:
    """The hosts, and the ``via`` nodes that name jump hosts, by host and by region."""
    if not regions.keys():
        raise regions.error("regions: at least one region with hosts is needed")
    hosts: dict[str, LabHost] = {}
    host_vias: dict[str, Node] = {}
    region_vias: dict[str, Node] = {}
    owner: dict[str, str] = {}  # address → host name
    for region, body in regions.items():
        _check_name(region, "region name", regions.key_where(region))
        body_map = body.as_mapping()
        body_map.check_keys({"hosts", "via"})
        if (region_via := body_map.get("via")) is not None:
            region_vias[region] = region_via
        members = body_map.section("hosts")
        for name, spec in members.items():
            _check_name(name, "host name", members.key_where(name))
            if name in hosts:
                message = f"duplicate host name {name!r} (also in region {hosts[name].region})"
                raise InputError(message, where=members.key_where(name))
            host, address_node, via = _read_host(region, name, spec, ssh_port)
            if host.address in owner:
                message = f"address {host.address} already used by {owner[host.address]}"
                raise address_node.error(message)
            address = ipaddress.ip_address(host.address)
            if address not in mesh or address in ctl:
                raise address_node.error(
                    f"host {name}: address {address} is outside the mesh {mesh}"
                )
            owner[host.address], hosts[name] = name, host
            if via is not None:
                host_vias[name] = via
    if len(hosts) < 2:
        raise regions.error("a lab needs at least two hosts")
    return tuple(hosts.values()), host_vias, region_vias


def _read_host(
    region: str, name: str, spec: Node, ssh_port: int
) -> tuple[LabHost, Node, Node | None]:
    """``name: ADDRESS`` or ``name: {address, zone, measure, access, via, ...}``: the host, its
    address node and its ``via`` node."""
    if spec.is_scalar:
        return LabHost(name=name, region=region, address=str(_ip(spec))), spec, None
    fields = spec.as_mapping()
    fields.check_keys({"address", "zone", "measure", "access", "via", *_FLEET_KEYS})
    address = fields.require("address")
    access = fields.section("access")
    access.check_keys({"up", "down"})
    up, down = (
        None if (node := access.get(k)) is None else LinkParams(**_link_fields(node))
        for k in ("up", "down")
    )
    zone = fields.get("zone")
    user = None if (user_node := fields.get("user")) is None else _user(user_node)
    unprivileged_icmp = fields.get_bool("unprivileged_icmp", True)
    if not unprivileged_icmp and user is None:
        raise fields.require("unprivileged_icmp").error(
            f"host {name}: unprivileged_icmp: false needs a user: root has ICMP"
        )
    host = LabHost(
        name=name,
        region=region,
        address=str(_ip(address)),
        zone=None if zone is None else _name(zone, "zone"),
        measure=fields.get_bool("measure", True),
        access_up=up,
        access_down=down,
        drop_tcp=_firewall(fields.section("firewall"), ssh_port),
        user=user,
        unprivileged_icmp=unprivileged_icmp,
        tools=fields.get_choice("tools", get_args(Tools), "system"),
        cc=fields.get_choice("cc", get_args(CongestionControl), None),
    )
    return host, address, fields.get("via")


def _user(node: Node) -> str:
    value = node.as_str()
    if not _USER.fullmatch(value):
        raise node.error(f"{node.name}: {value!r} must match {_USER.pattern}")
    if value == "root":
        raise node.error(f"{node.name}: root is every lab host's login already; leave user out")
    return value


def _firewall(spec: MapNode, ssh_port: int) -> tuple[PortRange, ...]:
    """``firewall: {drop_tcp: "5201-5299"}`` (ports and ranges, comma-separated); the SSH port
    must stay open: the lab could not reach the host."""
    spec.check_keys({"drop_tcp"})
    node = spec.get("drop_tcp")
    if node is None:
        return ()
    ranges: list[PortRange] = []
    for part in node.as_str().split(","):
        match = _PORTS.fullmatch(part.strip())
        low, high = (
            (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (0, 0)
        )
        if not 1 <= low <= high <= 65535:
            raise node.error(f"{node.name}: {part.strip()!r} is not a port or a range LOW-HIGH")
        if low <= ssh_port <= high:
            raise node.error(f"{node.name}: {part.strip()} covers the SSH port {ssh_port}")
        ranges.append((low, high))
    return tuple(ranges)


def _resolve_jumps(
    hosts: tuple[LabHost, ...],
    host_vias: Mapping[str, Node],
    region_vias: Mapping[str, Node],
    jump: str,
) -> tuple[LabHost, ...]:
    """Each host's jump host: the one its own ``via`` names, else its region's (but for the host
    that names and the top-level jump), else the top-level ``jump``. Every chain must end at
    ``jump``, the only host the controller reaches."""
    names = [h.name for h in hosts]
    via: dict[str, str] = {}
    named: dict[str, Node] = {}  # the node behind each via the file names
    for host in hosts:
        node = host_vias.get(host.name)
        if host.name == jump:
            if node is not None:
                raise node.error(
                    f"{host.name} is the top-level jump host, which the controller reaches "
                    "directly: it takes no via"
                )
            continue
        region = region_vias.get(host.region)
        if node is None and region is not None and region.as_str() != host.name:
            node = region
        if node is None:
            via[host.name] = jump
            continue
        target = node.as_str()
        if target not in names:
            raise node.error(f"via: {target!r} is not a host of any region{closest(target, names)}")
        if target == host.name:
            raise node.error(f"host {host.name} cannot be its own jump host")
        via[host.name], named[host.name] = target, node
    for start in via:
        path = [start]
        while path[-1] != jump:
            step = via[path[-1]]
            if step in path:
                cycle = " → ".join([*path[path.index(step) :], step])
                message = f"jump cycle {cycle}: every chain must end at the jump host {jump!r}"
                raise named[step].error(message)
            path.append(step)
    return tuple(replace(h, via=via.get(h.name)) for h in hosts)


def _resolve_links(
    hosts: tuple[LabHost, ...], links: MapNode, pairs: MapNode
) -> dict[tuple[str, str], LinkParams]:
    regions = {h.region for h in hosts}
    names = {h.name for h in hosts}
    for key in links:
        _check_selector(links, key, regions | {"default", "intra"}, "region")
    for key in pairs:
        _check_selector(pairs, key, names, "host")
    parsed_links = {k: _link_fields(v) for k, v in links.items()}
    parsed_pairs = {k: _link_fields(v) for k, v in pairs.items()}
    out: dict[tuple[str, str], LinkParams] = {}
    for a in hosts:
        for b in hosts:
            if a.name == b.name:
                continue
            layers = [parsed_links.get("default")]
            if a.region == b.region:
                layers.append(parsed_links.get("intra"))
            layers += [
                parsed_links.get(f"{a.region}-{b.region}")
                or parsed_links.get(f"{b.region}-{a.region}"),
                parsed_links.get(f"{a.region}>{b.region}"),
                parsed_pairs.get(f"{a.name}-{b.name}") or parsed_pairs.get(f"{b.name}-{a.name}"),
                parsed_pairs.get(f"{a.name}>{b.name}"),
            ]
            params = LinkParams()
            for layer in layers:
                if layer:
                    params = replace(params, **layer)
            for access in (a.access_up, b.access_down):
                if access is not None:
                    params = in_series(params, access)
            out[a.name, b.name] = params
    return out


def in_series(path: LinkParams, access: LinkParams) -> LinkParams:
    """Two links in a row seen as one (jitter becomes normal with the summed variance)."""
    rates = [r for r in (path.rate_bps, access.rate_bps) if r > 0]
    std = math.hypot(path.jitter_std_ms, access.jitter_std_ms)
    both_uniform = access.jitter_ms == 0 and path.jitter_dist == "uniform"
    return LinkParams(
        delay_ms=path.delay_ms + access.delay_ms,
        jitter_ms=path.jitter_ms if both_uniform else std,
        jitter_dist="uniform" if both_uniform else "normal",
        loss_pct=100.0 * (1 - (1 - path.loss_pct / 100) * (1 - access.loss_pct / 100)),
        rate_bps=min(rates) if rates else 0.0,
        queue_ms=access.queue_ms
        if access.rate_bps and access.rate_bps == min(rates)
        else path.queue_ms,
        reorder=path.reorder or access.reorder,
    )


def ports_text(ranges: tuple[PortRange, ...]) -> str:
    """``5201-5299,8080``: the ranges as nft and the topology file write them."""
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _check_selector(section: MapNode, key: str, known: set[str], what: str) -> None:
    parts = re.split(r"[->]", key)
    if key in ("default", "intra") and section.path == "links":
        return
    if len(parts) != 2 or not all(p in known and p not in ("default", "intra") for p in parts):
        raise InputError(
            f"unknown key '{section.path}.{key}': expected '{what}-{what}' or '{what}>{what}' "
            f"with known {what}s ({', '.join(sorted(known - {'default', 'intra'}))})",
            where=section.key_where(key),
        )


_QUANTITIES = (
    ("delay", "delay_ms", parse_duration_ms),
    ("jitter", "jitter_ms", parse_duration_ms),
    ("queue", "queue_ms", parse_duration_ms),
    ("loss", "loss_pct", parse_percent),
    ("rate", "rate_bps", parse_rate_bps),
)


def _link_fields(node: Node) -> dict[str, Any]:
    """The fields one layer sets, by :class:`LinkParams` name (layers override field by field)."""
    spec = node.as_mapping()
    spec.check_keys(_LINK_KEYS)
    out: dict[str, Any] = {
        field: spec.require(key).as_quantity(parse)
        for key, field, parse in _QUANTITIES
        if spec.get(key) is not None
    }
    if (dist := spec.get("jitter_dist")) is not None:
        out["jitter_dist"] = dist.as_choice(("normal", "uniform"))
    if (reorder := spec.get("reorder")) is not None:
        out["reorder"] = reorder.as_bool()
    return out


def _parse_emulator(spec: MapNode) -> EmulatorSettings:
    spec.check_keys({"gso", "timing", "rate_impl"})
    timing = spec.section("timing")
    timing.check_keys({"guard_us", "spin_us", "sched_fifo", "comp_us"})
    d = EmulatorSettings()
    return EmulatorSettings(
        gso=spec.get_bool("gso", d.gso),
        rate_impl=spec.get_choice("rate_impl", ("htb", "userspace"), d.rate_impl),
        guard_us=timing.get_int("guard_us", d.guard_us, min=0, max=100_000),
        spin_us=timing.get_int("spin_us", d.spin_us, min=0, max=10_000),
        sched_fifo=timing.get_int("sched_fifo", d.sched_fifo, min=0, max=99),
        comp_us=timing.get_float("comp_us", d.comp_us, min=0, max=10_000),
    )


# --- names and addresses ---------------------------------------------------------------------


def _check_name(value: str, what: str, where: str) -> str:
    if not _NAME.fullmatch(value):
        raise InputError(f"{what} {value!r} must match {_NAME.pattern}", where=where)
    return value


def _name(node: Node, what: str) -> str:
    return _check_name(node.as_str(), what, node.where)


def _ip(node: Node) -> ipaddress.IPv4Address:
    value = node.as_str()
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise node.error(f"{node.name}: {value!r} is not an IP address") from None
    if not isinstance(addr, ipaddress.IPv4Address) or addr not in LAB_RANGE:
        raise node.error(f"{node.name}: {value} is outside {LAB_RANGE} (the lab's only range)")
    return addr


def _subnet(node: Node | None, default: str) -> ipaddress.IPv4Network:
    value, where = (default, None) if node is None else (node.as_str(), node.where)
    try:
        net = ipaddress.ip_network(value)
    except ValueError:
        raise InputError(f"{value!r} is not a network", where=where) from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(_LAB_RANGE_V4):
        raise InputError(f"{value} is outside {LAB_RANGE}", where=where)
    return net


def load_topology(path: str) -> Topology:
    """Read and validate a topology file."""
    text, _ = read_text(path)
    return parse_topology(text, source=path)
