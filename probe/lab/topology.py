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

Networks: a host's ``addresses: {NETWORK: ADDR}`` put it on named networks (``address: X`` is
network ``mesh``); a packet is carried only between two addresses of one network, so a private
network is never routed across. Each network has its own subnet, and may add a link *in series*
on every path over it (an overlay's encapsulation and relays). It never replaces the pair's link:
to make a private network faster than the public path, give the pair links (``links``) the
private figures and the public network the extra hop. Preference order: the order of
``networks:`` (list private networks first), an undeclared ``mesh`` last.

NAT: a host with ``nat: GATEWAY`` has no address of its own on any network: its ``address`` is
on a /30 LAN to the gateway (the other address of that /30 is the gateway's side), it reaches
peers through the gateway's masquerade with the gateway's addresses and links, SSH reaches it
through the gateway, and nothing reaches it from outside.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from probe.errors import InputError
from probe.model import PortRange
from probe.textio import read_text
from probe.units import parse_duration_ms, parse_percent, parse_rate_bps
from probe.yamlsrc import MapNode, Node, closest, parse_yaml_mapping

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
_LAB_RANGE_V4 = ipaddress.IPv4Network("198.18.0.0/15")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,11}")  # ends up in netns and interface names
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,4}-")
_LINK_KEYS = {"delay", "jitter", "jitter_dist", "loss", "rate", "queue", "reorder"}
_FLEET_KEYS = {"firewall", "user", "unprivileged_icmp", "tools", "cc"}  # hosts unlike the others
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # what useradd accepts, without a trailing '$'
MESH = "mesh"  # the network of ``address:`` (every host of a one-network lab)

JitterDist = Literal["normal", "uniform"]
RateImpl = Literal["htb", "userspace"]  # htb: kernel back-pressure; userspace: tail drop
Tools = Literal["system", "busybox"]  # busybox: ping and timeout are busybox applets
CongestionControl = Literal["cubic", "bbr"]


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
class Network:
    """A named network: its subnet and the link put in series on every path over it."""

    name: str
    subnet: str
    extra: LinkParams | None = None

    def over(self, link: LinkParams) -> LinkParams:
        """A pair's link as a packet over this network sees it."""
        return link if self.extra is None else in_series(link, self.extra)


@dataclass(frozen=True, slots=True)
class LabHost:
    name: str
    region: str
    address: str  # the first of ``addresses``; behind NAT, the host's own LAN address
    zone: str | None = None
    measure: bool = True
    access_up: LinkParams | None = None  # last mile, added in series to every path leaving
    access_down: LinkParams | None = None  # ... and entering this host (residential, DSL)
    via: str | None = None  # the jump host SSH reaches this host through; None: the top-level jump
    addresses: tuple[tuple[str, str], ...] = ()  # (network, address) on its tun0; () behind NAT
    nat: str | None = None  # the lab host whose masquerade this host sits behind
    drop_tcp: tuple[PortRange, ...] = ()  # firewall: inbound TCP to these ports is dropped
    user: str | None = None  # the SSH login, a non-root account; None: root
    unprivileged_icmp: bool = True  # False: the login account cannot ping (no ICMP socket)
    tools: Tools = "system"
    cc: CongestionControl | None = None  # TCP congestion control; None: the kernel's default

    @property
    def lan(self) -> tuple[str, str]:
        """(this host's, its gateway's) address on the /30 LAN of a host behind NAT."""
        first, second = (
            str(a) for a in ipaddress.IPv4Network(f"{self.address}/30", strict=False).hosts()
        )
        return (first, second) if first == self.address else (second, first)


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
    networks: tuple[Network, ...] = (Network(MESH, "198.18.0.0/15"),)  # in preference order
    source: str = "<memory>"

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def emulated(self) -> tuple[LabHost, ...]:
        """The hosts with a ``tun0`` on the emulator: all but those behind NAT."""
        return tuple(h for h in self.hosts if h.nat is None)

    def gateway(self, host: str) -> str:
        """The host whose addresses and links ``host`` uses: its NAT gateway, or itself."""
        return self.host(host).nat or host

    def peer_addresses(self, host: str) -> dict[str, str]:
        """Network → the address peers see ``host`` at (its NAT gateway's, behind NAT)."""
        return dict(self.host(self.gateway(host)).addresses)

    def common_networks(self, a: str, b: str) -> list[str]:
        """The networks both hosts are on, in preference order."""
        on_a, on_b = self.peer_addresses(a), self.peer_addresses(b)
        return [n.name for n in self.networks if n.name in on_a and n.name in on_b]

    def ssh_address(self, host: str) -> str:
        """The address the host before ``host`` in its jump chain dials: the LAN address
        behind NAT, else its address on the first network it shares with its jump host."""
        h = self.host(host)
        if h.nat is not None or h.via is None:
            return h.address
        common = self.common_networks(host, h.via)
        return self.peer_addresses(host)[common[0]] if common else h.address

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


# --- parsing -------------------------------------------------------------------------------


def parse_topology(text: str, *, source: str) -> Topology:
    """Validate topology text; every error names ``source:line`` and the key path."""
    top = parse_yaml_mapping(text, source=source)
    top.check_keys(
        {"name", "prefix", "jump", "ssh", "addressing", "emulator", "networks", "regions",
         "links", "pairs"}
    )  # fmt: skip
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
    declared = _parse_networks(top.section("networks"), mesh)
    parsed = _parse_hosts(top.section("regions"), declared, ctl, ssh_port)
    jump = top.get_str("jump", "")
    if jump not in parsed.hosts:
        where = top.key_where("jump") if "jump" in top else top.where
        raise InputError(f"jump host {jump!r} is not a host of any region", where=where)
    if parsed.hosts[jump].nat is not None:
        raise top.require("jump").error(f"jump host {jump} is behind NAT: nothing reaches it")
    hosts = _resolve_jumps(parsed, jump)
    topo = Topology(
        name=name,
        prefix=prefix,
        jump=jump,
        hosts=hosts,
        links=_resolve_links(
            tuple(h for h in hosts if h.nat is None), top.section("links"), top.section("pairs")
        ),
        emulator=_parse_emulator(top.section("emulator")),
        ssh_port=ssh_port,
        controller_link=str(ctl),
        networks=_used_networks(declared, hosts),
        source=source,
    )
    _check_lans(topo, parsed.lan_nodes)
    for h in topo.hosts:
        if h.via is not None and h.nat is None and not topo.common_networks(h.name, h.via):
            message = f"host {h.name} shares no network with its jump host {h.via}"
            raise InputError(message, where=parsed.where[h.name])
    return topo


@dataclass(frozen=True, slots=True)
class _Declared:
    """A network as ``networks:`` declares it (``where`` None: the implicit ``mesh``)."""

    network: Network
    where: str | None


def _parse_networks(section: MapNode, mesh: ipaddress.IPv4Network) -> dict[str, _Declared]:
    """``networks: {NAME: {subnet, delay, ...}}`` in preference order; ``mesh`` takes
    ``addressing.mesh`` as its subnet unless it names its own. Subnets may not overlap: a host
    on two networks routes each through its own address."""
    out: dict[str, _Declared] = {}
    for name in section:
        where = section.key_where(name)
        _check_name(name, "network name", where)
        spec = section.section(name)
        if name != MESH:
            spec.require("subnet")
        subnet = _subnet(spec.get("subnet"), str(mesh))
        layer = _link_fields(spec, also=frozenset({"subnet"}))
        network = Network(name, str(subnet), LinkParams(**layer) if layer else None)
        for other in out.values():
            if subnet.overlaps(ipaddress.IPv4Network(other.network.subnet)):
                message = f"network {name}: subnet {subnet} overlaps {other.network.name}'s"
                raise InputError(message, where=where)
        out[name] = _Declared(network, where)
    if MESH not in out:
        out[MESH] = _Declared(Network(MESH, str(mesh)), None)
    return out


def _used_networks(
    declared: Mapping[str, _Declared], hosts: tuple[LabHost, ...]
) -> tuple[Network, ...]:
    """The declared networks in preference order, then ``mesh`` if hosts use it undeclared
    (its subnet, ``addressing.mesh``, may then overlap no other); a declared network no host is
    on is a typo somewhere."""
    used = {net for h in hosts for net, _ in h.addresses}
    mesh = declared[MESH]
    for d in declared.values():
        if d.where is None:
            continue
        if d.network.name not in used:
            message = f"network {d.network.name}: no host has an address on it"
            raise InputError(message, where=d.where)
        subnet = ipaddress.IPv4Network(d.network.subnet)
        if (
            mesh.where is None
            and MESH in used
            and subnet.overlaps(ipaddress.IPv4Network(mesh.network.subnet))
        ):
            raise InputError(
                f"network {d.network.name}: subnet {subnet} overlaps addressing.mesh "
                f"{mesh.network.subnet} (the network of `address:`): give mesh a range of its own",
                where=d.where,
            )
    return tuple(d.network for d in declared.values() if d.network.name in used)


@dataclass(frozen=True, slots=True)
class _Hosts:
    """The hosts as written, with the nodes later checks name: by host, its key's ``where``,
    its ``via`` and ``nat`` nodes; by region, its ``via`` node."""

    hosts: dict[str, LabHost]
    where: dict[str, str]
    vias: dict[str, Node]
    nats: dict[str, Node]
    region_vias: dict[str, Node]
    lan_nodes: dict[str, Node]


def _parse_hosts(
    regions: MapNode,
    networks: Mapping[str, _Declared],
    ctl: ipaddress.IPv4Network,
    ssh_port: int,
) -> _Hosts:
    if not regions.keys():
        raise regions.error("regions: at least one region with hosts is needed")
    out = _Hosts({}, {}, {}, {}, {}, {})
    owner: dict[str, str] = {}  # address → host name
    for region, body in regions.items():
        _check_name(region, "region name", regions.key_where(region))
        body_map = body.as_mapping()
        body_map.check_keys({"hosts", "via"})
        if (region_via := body_map.get("via")) is not None:
            out.region_vias[region] = region_via
        members = body_map.section("hosts")
        for name, spec in members.items():
            _check_name(name, "host name", members.key_where(name))
            if name in out.hosts:
                message = f"duplicate host name {name!r} (also in region {out.hosts[name].region})"
                raise InputError(message, where=members.key_where(name))
            host, nodes = _read_host(region, name, spec, ssh_port)
            for network, node in nodes.addresses:
                address = ipaddress.IPv4Address(node.as_str())
                subnet = _address_subnet(host, network, node, networks)
                if str(address) in owner:
                    raise node.error(f"address {address} already used by {owner[str(address)]}")
                if address not in subnet or address in ctl:
                    raise node.error(
                        f"host {name}: address {address} is outside {network} {subnet}"
                    )
                owner[str(address)] = name
            if host.nat is not None:
                lan_node = nodes.addresses[0][1]
                if host.lan[1] in owner or host.address in _ends(host.address):
                    message = f"host {name}: the /30 of {host.address} must hold 2 free addresses"
                    raise lan_node.error(message)
                owner[host.lan[1]] = f"{name}'s NAT gateway"
                out.lan_nodes[name] = lan_node
            out.hosts[name], out.where[name] = host, members.key_where(name)
            if nodes.via is not None:
                out.vias[name] = nodes.via
            if nodes.nat is not None:
                out.nats[name] = nodes.nat
    if len(out.hosts) < 2:
        raise regions.error("a lab needs at least two hosts")
    for name, node in out.nats.items():
        gateway = node.as_str()
        if gateway not in out.hosts:
            message = f"nat: {gateway!r} is not a host of any region{closest(gateway, out.hosts)}"
            raise node.error(message)
        if gateway == name or out.hosts[gateway].nat is not None:
            raise node.error(f"nat: the gateway {gateway} must be a host with addresses of its own")
    return out


def _address_subnet(
    host: LabHost, network: str, node: Node, networks: Mapping[str, _Declared]
) -> ipaddress.IPv4Network:
    """The subnet an address of ``host`` must sit in: its network's, or its NAT LAN's /30."""
    if host.nat is not None:
        return ipaddress.IPv4Network(f"{host.address}/30", strict=False)
    if network not in networks:
        known = [n for n in networks if networks[n].where is not None]
        message = f"network {network!r} is not declared under networks:{closest(network, known)}"
        raise node.error(message)
    return ipaddress.IPv4Network(networks[network].network.subnet)


def _ends(address: str) -> tuple[str, str]:
    """The network and broadcast addresses of the /30 around ``address``."""
    lan = ipaddress.IPv4Network(f"{address}/30", strict=False)
    return str(lan.network_address), str(lan.broadcast_address)


def _check_lans(topo: Topology, lan_nodes: Mapping[str, Node]) -> None:
    """A NAT LAN lies apart from every network and the controller link: no peer has a route
    into it (and the gateway's own routes stay unambiguous)."""
    others = [n.subnet for n in topo.networks] + [topo.controller_link]
    for host, node in lan_nodes.items():
        lan = ipaddress.IPv4Network(f"{node.as_str()}/30", strict=False)
        for clash in others:
            if lan.overlaps(ipaddress.IPv4Network(clash)):
                raise node.error(f"host {host}: its NAT LAN {lan} overlaps {clash}")


@dataclass(frozen=True, slots=True)
class _HostNodes:
    addresses: list[tuple[str, Node]]  # (network, address node); behind NAT: ("", LAN address)
    via: Node | None
    nat: Node | None


def _read_host(region: str, name: str, spec: Node, ssh_port: int) -> tuple[LabHost, _HostNodes]:
    """``name: ADDRESS`` or ``name: {address | addresses, zone, measure, access, via, nat}``."""
    if spec.is_scalar:
        address = str(_ip(spec))
        host = LabHost(name=name, region=region, address=address, addresses=((MESH, address),))
        return host, _HostNodes([(MESH, spec)], None, None)
    fields = spec.as_mapping()
    fields.check_keys(
        {"address", "addresses", "zone", "measure", "access", "via", "nat", *_FLEET_KEYS}
    )
    nat = fields.get("nat")
    if "addresses" in fields:
        if "address" in fields or nat is not None:
            message = "give either 'address' (network mesh; behind NAT, the LAN) or 'addresses'"
            raise fields.require("addresses").error(message)
        by_network = fields.section("addresses")
        nodes = list(by_network.items())
        if not nodes:
            raise by_network.error(f"host {name}: 'addresses' names no network")
        for net, _ in nodes:
            _check_name(net, "network name", by_network.key_where(net))
    else:
        nodes = [("" if nat is not None else MESH, fields.require("address"))]
    pairs = tuple((net, str(_ip(node))) for net, node in nodes)
    access = fields.section("access")
    access.check_keys({"up", "down"})
    if nat is not None and access.keys():
        message = f"host {name} is behind NAT: its paths are its gateway's, give it the access"
        raise access.error(message)
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
        address=pairs[0][1],
        zone=None if zone is None else _name(zone, "zone"),
        measure=fields.get_bool("measure", True),
        access_up=up,
        access_down=down,
        addresses=() if nat is not None else pairs,
        nat=None if nat is None else nat.as_str(),
        drop_tcp=_firewall(fields.section("firewall"), ssh_port),
        user=user,
        unprivileged_icmp=unprivileged_icmp,
        tools=fields.get_choice("tools", get_args(Tools), "system"),
        cc=fields.get_choice("cc", get_args(CongestionControl), None),
    )
    return host, _HostNodes(nodes, fields.get("via"), nat)


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
        try:
            ports = PortRange.parse(part)
        except ValueError as exc:
            raise node.error(f"{node.name}: {exc}") from None
        if ports.lo <= ssh_port <= ports.hi:
            raise node.error(f"{node.name}: {ports} covers the SSH port {ssh_port}")
        ranges.append(ports)
    return tuple(ranges)


def _resolve_jumps(parsed: _Hosts, jump: str) -> tuple[LabHost, ...]:
    """Each host's jump host: behind NAT, its gateway; else the one its own ``via`` names,
    else its region's (but for the host that names and the top-level jump), else the top-level
    ``jump``. Every chain must end at ``jump``, the only host the controller reaches, and no
    chain passes through a host behind NAT (nothing connects to it)."""
    hosts = parsed.hosts
    via: dict[str, str] = {}
    named: dict[str, Node] = {}  # the node behind each via the file names
    for host in hosts.values():
        node = parsed.vias.get(host.name)
        if host.name == jump:
            if node is not None:
                raise node.error(
                    f"{host.name} is the top-level jump host, which the controller reaches "
                    "directly: it takes no via"
                )
            continue
        if host.nat is not None:
            if node is not None and node.as_str() != host.nat:
                message = f"{host.name} is behind NAT: SSH reaches it through {host.nat} only"
                raise node.error(message)
            via[host.name], named[host.name] = host.nat, parsed.nats[host.name]
            continue
        region = parsed.region_vias.get(host.region)
        if node is None and region is not None and region.as_str() != host.name:
            node = region
        if node is None:
            via[host.name] = jump
            continue
        target = node.as_str()
        if target not in hosts:
            raise node.error(f"via: {target!r} is not a host of any region{closest(target, hosts)}")
        if target == host.name:
            raise node.error(f"host {host.name} cannot be its own jump host")
        if hosts[target].nat is not None:
            raise node.error(f"via: {target} is behind NAT: nothing connects to it")
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
    return tuple(replace(h, via=via.get(h.name)) for h in hosts.values())


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
    return ",".join(map(str, ranges))


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


def _link_fields(node: Node, *, also: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields one layer sets, by :class:`LinkParams` name (layers override field by field);
    ``also``: the other keys the mapping may hold."""
    spec = node.as_mapping()
    spec.check_keys(_LINK_KEYS | also)
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
