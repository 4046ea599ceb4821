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
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from probe.errors import InputError
from probe.units import parse_duration_ms, parse_percent, parse_rate_bps

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
_LAB_RANGE_V4 = ipaddress.IPv4Network("198.18.0.0/15")
MSS_EFFICIENCY = 1448 / 1500  # TCP payload per 1500-byte IP packet with timestamps
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,11}$")  # ends up in netns and interface names
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,4}-$")
_LINK_KEYS = {"delay", "jitter", "jitter_dist", "loss", "rate", "queue", "reorder"}

JitterDist = Literal["normal", "uniform"]
RateImpl = Literal["htb", "userspace"]  # htb: kernel back-pressure; userspace: tail drop


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
    )


def truth_table(topo: Topology) -> list[PairTruth]:
    names = [h.name for h in topo.hosts]
    return [pair_truth(topo, a, b) for a in names for b in names if a != b]


# --- parsing -------------------------------------------------------------------------------


def parse_topology(doc: object, *, source: str) -> Topology:
    """Validate a loaded YAML document; errors name the file and the key path."""
    top = _mapping(doc, source, "top level")
    _check_keys(
        top,
        {"name", "prefix", "jump", "ssh", "addressing", "emulator", "regions", "links", "pairs"},
        source,
        "top level",
    )
    name = _str(top, "name", source, "lab")
    if not _NAME.match(name):
        raise InputError(f"name {name!r} must match {_NAME.pattern}", where=source)
    prefix = _str(top, "prefix", source, "pl-")
    if not _PREFIX.match(prefix):
        raise InputError(
            f"prefix {prefix!r} must be 1-5 lowercase letters/digits and '-'", where=source
        )
    hosts = _parse_hosts(top.get("regions"), source)
    names = [h.name for h in hosts]
    jump = _str(top, "jump", source, "")
    if jump not in names:
        raise InputError(f"jump host {jump!r} is not a host of any region", where=source)
    ssh = _mapping(top.get("ssh", {}), source, "ssh")
    _check_keys(ssh, {"port"}, source, "ssh")
    addressing = _mapping(top.get("addressing", {}), source, "addressing")
    _check_keys(addressing, {"mesh", "controller_link"}, source, "addressing")
    mesh = _subnet(addressing.get("mesh", "198.18.0.0/15"), source, "addressing.mesh")
    ctl = _subnet(
        addressing.get("controller_link", "198.19.255.0/30"), source, "addressing.controller_link"
    )
    if ctl.prefixlen != 30:
        raise InputError("addressing.controller_link must be a /30", where=source)
    for h in hosts:
        if ipaddress.ip_address(h.address) not in mesh or ipaddress.ip_address(h.address) in ctl:
            raise InputError(
                f"host {h.name}: address {h.address} is outside the mesh {mesh}", where=source
            )
    return Topology(
        name=name,
        prefix=prefix,
        jump=jump,
        hosts=hosts,
        links=_resolve_links(hosts, top.get("links", {}), top.get("pairs", {}), source),
        emulator=_parse_emulator(top.get("emulator", {}), source),
        ssh_port=_int(ssh.get("port", 22), source, "ssh.port", 1, 65535),
        controller_link=str(ctl),
        mesh=str(mesh),
        source=source,
    )


def _parse_hosts(regions: object, source: str) -> tuple[LabHost, ...]:
    regions_map = _mapping(regions, source, "regions")
    if not regions_map:
        raise InputError("regions: at least one region with hosts is needed", where=source)
    hosts: list[LabHost] = []
    seen_addr: dict[str, str] = {}
    for region, body in regions_map.items():
        _name(region, source, "region")
        body_map = _mapping(body, source, f"regions.{region}")
        _check_keys(body_map, {"hosts"}, source, f"regions.{region}")
        for hname, spec in _mapping(
            body_map.get("hosts"), source, f"regions.{region}.hosts"
        ).items():
            _name(hname, source, "host")
            where = f"regions.{region}.hosts.{hname}"
            spec_map = {"address": spec} if isinstance(spec, str) else _mapping(spec, source, where)
            _check_keys(spec_map, {"address", "zone", "measure", "access"}, source, where)
            access = _mapping(spec_map.get("access", {}), source, f"{where}.access")
            _check_keys(access, {"up", "down"}, source, f"{where}.access")
            up, down = (
                LinkParams(**_link_fields(access[k], source, f"{where}.access.{k}"))
                if k in access
                else None
                for k in ("up", "down")
            )
            address = str(_ip(spec_map.get("address"), source, f"{where}.address"))
            if address in seen_addr:
                raise InputError(
                    f"{where}: address {address} already used by {seen_addr[address]}", where=source
                )
            if any(h.name == hname for h in hosts):
                raise InputError(f"{where}: duplicate host name {hname!r}", where=source)
            seen_addr[address] = hname
            zone = spec_map.get("zone")
            hosts.append(
                LabHost(
                    name=hname,
                    region=region,
                    address=address,
                    zone=None if zone is None else _name(zone, source, f"{where}.zone"),
                    measure=bool(spec_map.get("measure", True)),
                    access_up=up,
                    access_down=down,
                )
            )
    if len(hosts) < 2:
        raise InputError("a lab needs at least two hosts", where=source)
    return tuple(hosts)


def _resolve_links(
    hosts: tuple[LabHost, ...], links: object, pairs: object, source: str
) -> dict[tuple[str, str], LinkParams]:
    links_map = {str(k): v for k, v in _mapping(links, source, "links").items()}
    pairs_map = {str(k): v for k, v in _mapping(pairs, source, "pairs").items()}
    regions = {h.region for h in hosts}
    names = {h.name for h in hosts}
    for key in links_map:
        _check_selector(key, regions | {"default", "intra"}, source, "links", "region")
    for key in pairs_map:
        _check_selector(key, names, source, "pairs", "host")
    parsed_links = {k: _link_fields(v, source, f"links.{k}") for k, v in links_map.items()}
    parsed_pairs = {k: _link_fields(v, source, f"pairs.{k}") for k, v in pairs_map.items()}
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


def _check_selector(key: str, known: set[str], source: str, section: str, what: str) -> None:
    parts = re.split(r"[->]", key)
    if key in ("default", "intra") and section == "links":
        return
    if len(parts) != 2 or not all(p in known and p not in ("default", "intra") for p in parts):
        raise InputError(
            f"{section}.{key}: expected '{what}-{what}' or '{what}>{what}' with known {what}s "
            f"({', '.join(sorted(known - {'default', 'intra'}))})",
            where=source,
        )


def _link_fields(body: object, source: str, where: str) -> dict[str, Any]:
    spec = _mapping(body, source, where)
    _check_keys(spec, _LINK_KEYS, source, where)
    out: dict[str, Any] = {}
    try:
        if "delay" in spec:
            out["delay_ms"] = parse_duration_ms(spec["delay"])
        if "jitter" in spec:
            out["jitter_ms"] = parse_duration_ms(spec["jitter"])
        if "queue" in spec:
            out["queue_ms"] = parse_duration_ms(spec["queue"])
        if "loss" in spec:
            out["loss_pct"] = parse_percent(spec["loss"])
        if "rate" in spec:
            out["rate_bps"] = parse_rate_bps(spec["rate"])
    except InputError as exc:
        raise InputError(f"{where}: {exc}", where=source) from exc
    if "jitter_dist" in spec:
        if spec["jitter_dist"] not in ("normal", "uniform"):
            raise InputError(f"{where}.jitter_dist must be 'normal' or 'uniform'", where=source)
        out["jitter_dist"] = spec["jitter_dist"]
    if "reorder" in spec:
        out["reorder"] = bool(spec["reorder"])
    return out


def _parse_emulator(body: object, source: str) -> EmulatorSettings:
    spec = _mapping(body, source, "emulator")
    _check_keys(spec, {"gso", "timing", "rate_impl"}, source, "emulator")
    rate_impl = spec.get("rate_impl", "htb")
    if rate_impl not in ("htb", "userspace"):
        raise InputError("emulator.rate_impl must be 'htb' or 'userspace'", where=source)
    timing = _mapping(spec.get("timing", {}), source, "emulator.timing")
    _check_keys(timing, {"guard_us", "spin_us", "sched_fifo", "comp_us"}, source, "emulator.timing")
    d = EmulatorSettings()
    return EmulatorSettings(
        gso=bool(spec.get("gso", d.gso)),
        rate_impl=rate_impl,
        guard_us=_int(
            timing.get("guard_us", d.guard_us), source, "emulator.timing.guard_us", 0, 100_000
        ),
        spin_us=_int(
            timing.get("spin_us", d.spin_us), source, "emulator.timing.spin_us", 0, 10_000
        ),
        sched_fifo=_int(
            timing.get("sched_fifo", d.sched_fifo), source, "emulator.timing.sched_fifo", 0, 99
        ),
        comp_us=float(
            _int(timing.get("comp_us", d.comp_us), source, "emulator.timing.comp_us", 0, 10_000)
        ),
    )


# --- small typed accessors -------------------------------------------------------------------


def _mapping(value: object, source: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{where} must be a mapping, not {type(value).__name__}", where=source)
    return {str(k): v for k, v in value.items()}


def _check_keys(spec: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    import difflib

    for key in spec:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{where}: unknown key {key!r}{hint}", where=source)


def _str(spec: Mapping[str, Any], key: str, source: str, default: str) -> str:
    value = spec.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"{key} must be a string", where=source)
    return value


def _name(value: object, source: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InputError(f"{what} name {value!r} must match {_NAME.pattern}", where=source)
    return value


def _int(value: object, source: str, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InputError(f"{where} must be a number in {low}..{high}, not {value!r}", where=source)
    return int(value)


def _ip(value: object, source: str, where: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise InputError(f"{where}: {value!r} is not an IP address", where=source) from exc
    if not isinstance(addr, ipaddress.IPv4Address) or addr not in LAB_RANGE:
        raise InputError(
            f"{where}: {value} is outside {LAB_RANGE} (the lab's only range)", where=source
        )
    return addr


def _subnet(value: object, source: str, where: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(str(value))
    except ValueError as exc:
        raise InputError(f"{where}: {value!r} is not a network", where=source) from exc
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(_LAB_RANGE_V4):
        raise InputError(f"{where}: {value} is outside {LAB_RANGE}", where=source)
    return net


def load_topology(path: str) -> Topology:
    """Read and validate a topology file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:  # noqa: PTH123
            doc = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise InputError("topology file not found", where=path) from exc
    except OSError as exc:
        raise InputError(f"cannot read topology: {exc.strerror or exc}", where=path) from exc
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", where=path) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = exc.problem or exc.context or "malformed"
        raise InputError(f"not valid YAML: {problem}", where=where) from exc
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character; its text has 2 lines
        raise InputError(f"not valid YAML: {exc}".replace("\n", " "), where=path) from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per nesting level
        raise InputError("not valid YAML: nested too deeply", where=path) from exc
    return parse_topology(doc, source=path)
