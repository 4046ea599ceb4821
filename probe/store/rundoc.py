"""``run.json`` as typed records: what was run, on which hosts, how it went.

:class:`RunDoc` is immutable: ``probe run`` makes a new one with ``dataclasses.replace`` at each
step (start, after connect, after ping, at the end) and writes it whole. :func:`encode_run` is
the one writer and :func:`decode_run` the one reader; a file is checked once, when it is read,
and everything after trusts the types. Schema ``probe.run/1``: fields are only ever added within
the major, never renamed, so a file an older probe wrote lacks some: a missing option reads as
the default probe used before it existed, a missing table as empty, anything else as absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TypeVar

from probe.errors import StoreError
from probe.jsonfields import JsonObject, parse_object
from probe.model import INBOUND_ALL, CellStatus, Host, Inbound, PortRange
from probe.networks import NetworkOrder
from probe.stats import RttStats

RUN_SCHEMA = "probe.run/1"
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class InventoryRef:
    """The inventory file a run measured, and its content hash (which fleet that was)."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class SshRoute:
    """How the controller reached a host (its key files are not recorded)."""

    host: str
    port: int = 22
    user: str | None = None
    via: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectOutcome:
    """What connecting to a host found: the status its cells inherit and its tool versions."""

    status: CellStatus
    reason: str | None = None  # None when the host is usable
    connect_s: float | None = None
    tools: Mapping[str, str | None] = field(default_factory=dict)  # None: not installed


@dataclass(frozen=True, slots=True)
class RunHost:
    """One inventory host as the run saw it; ``connection`` is None until it was tried."""

    name: str
    address: str
    region: str = "default"
    zone: str | None = None
    provider: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    measure: bool = True
    ssh: SshRoute | None = None  # None in files written before it was recorded
    connection: ConnectOutcome | None = None
    addresses: Mapping[str, str] = field(default_factory=dict)  # {}: network default = address
    inbound: Inbound = INBOUND_ALL  # the matrix redraws who could aim at whom (probe.reach)
    iperf3_ports: PortRange | None = None

    @classmethod
    def of(cls, host: Host) -> RunHost:
        """The inventory entry, before connecting."""
        s = host.ssh
        return cls(
            name=host.name,
            address=host.address,
            region=host.region,
            zone=host.zone,
            provider=host.provider,
            tags=dict(host.tags),
            measure=host.measure,
            ssh=SshRoute(s.host, s.port, s.user, s.via),
            addresses=dict(host.addresses),
            inbound=host.inbound,
            iperf3_ports=host.iperf3_ports,
        )


@dataclass(frozen=True, slots=True)
class RunOptionsDoc:
    """The options of ``probe run`` as recorded (defaults: what probe did before each existed)."""

    count: int = 20
    interval_s: float = 0.2
    reply_timeout_s: int = 2
    pinger: str = "ping"  # auto | fping | ping
    ping_pairs: str = "all"  # every ordered pair, or a sampled plan (the rest: not-planned)
    bandwidth: bool = True
    pairs: str = "all"
    exclusive_by: str | None = None
    duration_s: int = 10
    omit_s: int = 2
    streams: int = 1
    under_load: bool = False
    compare_streams: int = 0
    congestion: str | None = None  # iperf3 -C; None: each host's default
    auth: str = "off"  # auto | off | required: iperf3 authentication
    network: str | None = None  # --network NAME
    networks: str | None = None  # --networks all
    iperf3_ports: str = "5201-5264"  # which hosts can serve (probe.reach): which cells there are


@dataclass(frozen=True, slots=True)
class ControllerVantage:
    """RTT from the controller itself to the hosts it reaches directly (icmplib)."""

    icmp_mode: str
    rtt: Mapping[str, RttStats | str] = field(default_factory=dict)  # host → stats or reason
    error: str | None = None  # the whole measurement failed


@dataclass(frozen=True, slots=True)
class RunPhases:
    """Wall time of each phase of the last attempt; None for a phase that did not run."""

    connect_s: float | None = None
    ping_s: float | None = None
    bandwidth_s: float | None = None

    def items(self) -> Iterator[tuple[str, float]]:
        """(name, seconds) of the phases that ran, in run order."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                yield f.name, value


@dataclass(frozen=True, slots=True)
class RunAttempt:
    """One ``probe run`` of the run: the first, then each ``--resume``. An attempt without
    ``ended_utc`` never finished (the controller was killed)."""

    started_utc: str
    probe_version: str
    inventory: InventoryRef
    ended_utc: str | None = None
    interrupted: bool = False
    phases: RunPhases | None = None


@dataclass(frozen=True, slots=True)
class CellCounts:
    """What the finished run directory holds, counted from its samples. ``rtt_not_planned``
    pairs were left out by a sampled ping plan, ``rtt_not_measurable`` ones cannot be measured
    (``probe.reach``: neither host accepts ICMP, or they share no network): the run is complete
    without them."""

    pairs: int
    rtt_measured: int
    bw_measured: int
    bw_planned: int
    torn_sample_lines: tuple[int, ...] = ()
    rtt_not_planned: int = 0
    rtt_not_measurable: int = 0


@dataclass(frozen=True, slots=True)
class Imported:
    """Where an imported run's figures came from (``probe import``): not probe's measurements.
    ``format`` is ``square-csv``, ``long-csv``, ``long-json`` or ``captures``."""

    source: str
    format: str


@dataclass(frozen=True, slots=True)
class RunDoc:
    """Everything ``run.json`` says. ``probe_version`` and ``inventory`` are those the run
    started with; ``phases``, ``ended_utc``, ``interrupted`` and ``resumed_utc`` (the start of
    the latest ``--resume``) repeat the latest of ``attempts`` for readers that predate them."""

    run_id: str
    probe_version: str
    inventory: InventoryRef
    started_utc: str
    hosts: tuple[RunHost, ...]
    options: RunOptionsDoc = RunOptionsDoc()
    complete: bool = False
    interrupted: bool = False
    controller: ControllerVantage | None = None
    phases: RunPhases | None = None
    ended_utc: str | None = None
    resumed_utc: str | None = None
    cells: CellCounts | None = None
    attempts: tuple[RunAttempt, ...] = ()  # () in files written before attempts were kept
    networks: NetworkOrder = field(default_factory=NetworkOrder)  # the inventory's order
    imported: Imported | None = None  # None: probe measured it

    @property
    def measured_hosts(self) -> tuple[RunHost, ...]:
        return tuple(h for h in self.hosts if h.measure)

    @property
    def history(self) -> tuple[RunAttempt, ...]:
        """Every attempt, oldest first; a file that kept none reads as the one attempt its
        top-level fields describe (the latest)."""
        if self.attempts:
            return self.attempts
        started = self.resumed_utc or self.started_utc
        return (
            RunAttempt(
                started, self.probe_version, self.inventory, self.ended_utc,
                self.interrupted, self.phases,
            ),
        )  # fmt: skip

    def with_attempts(self, attempts: tuple[RunAttempt, ...]) -> RunDoc:
        """This run with ``attempts``, the latest repeated in the top-level fields."""
        latest = attempts[-1]
        return replace(
            self,
            attempts=attempts,
            phases=latest.phases,
            ended_utc=latest.ended_utc,
            interrupted=latest.interrupted,
            resumed_utc=latest.started_utc if len(attempts) > 1 else None,
        )


# --- the writer ------------------------------------------------------------------------------


def encode_run(doc: RunDoc) -> str:
    """The JSON text of ``run.json``; :func:`decode_run` reads it back equal."""
    out: dict[str, object] = {
        "schema": RUN_SCHEMA,
        "run_id": doc.run_id,
        "probe_version": doc.probe_version,
        "inventory": asdict(doc.inventory),
        "options": _added_only_if_set(doc.options, RunOptionsDoc(), _LATER_OPTIONS),
        "started_utc": doc.started_utc,
        "hosts": [_host_json(h) for h in doc.hosts],
        "complete": doc.complete,
        "interrupted": doc.interrupted,
    }
    if doc.resumed_utc is not None:
        out["resumed_utc"] = doc.resumed_utc
    if doc.controller is not None:
        out["controller"] = _controller_json(doc.controller)
    if doc.phases is not None:
        out["phases"] = dict(doc.phases.items())
    if doc.ended_utc is not None:
        out["ended_utc"] = doc.ended_utc
    if doc.cells is not None:
        later = ("rtt_not_planned", "rtt_not_measurable")
        out["cells"] = _added_only_if_set(doc.cells, _NO_CELLS, later)
    if doc.attempts:
        out["attempts"] = [_attempt_json(a) for a in doc.attempts]
    if not doc.networks.empty:
        out["networks"] = {
            "order": list(doc.networks.networks),
            "pairs": {f"{a}>{b}": list(v) for (a, b), v in doc.networks.pairs.items()},
        }
    if doc.imported is not None:
        out["imported"] = asdict(doc.imported)
    return json.dumps(out, indent=1) + "\n"


#: Keys added after probe 0.1.0 whose default is what probe did before them: written only when
#: they say something else, so a file an older probe wrote is written back unchanged.
_LATER_OPTIONS = (
    "pinger", "ping_pairs", "congestion", "auth", "network", "networks", "iperf3_ports",
)  # fmt: skip
_NO_CELLS = CellCounts(0, 0, 0, 0)


def _added_only_if_set(
    value: RunOptionsDoc | CellCounts, default: RunOptionsDoc | CellCounts, later: tuple[str, ...]
) -> dict[str, object]:
    out = asdict(value)
    for name in later:
        if out[name] == getattr(default, name):
            del out[name]
    return out


def _attempt_json(a: RunAttempt) -> dict[str, object]:
    out: dict[str, object] = {
        "started_utc": a.started_utc,
        "probe_version": a.probe_version,
        "inventory": asdict(a.inventory),
        "interrupted": a.interrupted,
    }
    if a.ended_utc is not None:
        out["ended_utc"] = a.ended_utc
    if a.phases is not None:
        out["phases"] = dict(a.phases.items())
    return out


def _host_json(h: RunHost) -> dict[str, object]:
    out: dict[str, object] = {
        "name": h.name,
        "address": h.address,
        "region": h.region,
        "zone": h.zone,
        "provider": h.provider,
        "tags": dict(h.tags),
        "measure": h.measure,
    }
    if h.addresses:
        out["addresses"] = dict(h.addresses)
    if h.ssh is not None:
        out["ssh"] = asdict(h.ssh)
    if h.inbound != INBOUND_ALL:  # written only when restricted: older files read back equal
        out["inbound"] = list(h.inbound.words)
    if h.iperf3_ports is not None:
        out["iperf3_ports"] = str(h.iperf3_ports)
    if (c := h.connection) is not None:
        out.update(status=str(c.status), reason=c.reason, connect_s=c.connect_s)
        out["tools"] = dict(c.tools)
    return out


def _controller_json(c: ControllerVantage) -> dict[str, object]:
    out: dict[str, object] = {"icmp_mode": c.icmp_mode}
    if c.error is not None:
        out["error"] = c.error
    out["rtt"] = {k: v if isinstance(v, str) else asdict(v) for k, v in c.rtt.items()}
    return out


# --- the reader ------------------------------------------------------------------------------


def decode_run(text: str, path: Path | str) -> RunDoc:
    """``run.json`` checked whole; damage is one line of ``StoreError`` naming the file."""
    top = parse_object(text, str(path), StoreError)
    schema = str(top.raw("schema") or "")
    if not schema.startswith("probe.run/"):
        top.fail(f"not a probe run file (schema {schema!r})")
    if schema.split("/", 1)[1].split(".")[0] != RUN_SCHEMA.split("/")[1]:
        top.fail(f"schema {schema} is newer than this probe ({RUN_SCHEMA})")
    hosts = top.raw("hosts")
    if not isinstance(hosts, list):
        top.fail("'hosts' must be a list")
    names: set[str] = set()
    for i, h in enumerate(hosts):
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            top.fail(f"hosts[{i}] must be an object with a string 'name'")
        if h["name"] in names:
            top.fail(f"hosts[{i}]: host {h['name']!r} is listed twice")
        names.add(h["name"])
    phases = top.opt_obj("phases")
    controller = top.opt_obj("controller")
    cells = top.opt_obj("cells")
    imported = top.opt_obj("imported")
    return RunDoc(
        run_id=top.req("run_id", str),
        probe_version=top.req("probe_version", str),
        inventory=_read_inventory(top.obj("inventory")),
        started_utc=top.req("started_utc", str),
        hosts=tuple(_read_host(h) for h in top.objects("hosts")),
        options=_read_options(top.section("options")),
        complete=top.req("complete", bool),
        interrupted=top.req("interrupted", bool),
        controller=None if controller is None else _read_controller(controller),
        phases=None if phases is None else _read_phases(phases),
        ended_utc=top.opt("ended_utc", str, None),
        resumed_utc=top.opt("resumed_utc", str, None),
        cells=None if cells is None else _read_cells(cells),
        attempts=tuple(_read_attempt(a) for a in top.objects("attempts"))
        if "attempts" in top
        else (),
        networks=_read_networks(top.section("networks")),
        imported=None if imported is None else _read_imported(imported),
    )


def _read_imported(i: JsonObject) -> Imported:
    return Imported(i.req("source", str), i.req("format", str))


def _read_host(h: JsonObject) -> RunHost:
    ssh = h.opt_obj("ssh")
    return RunHost(
        name=h.req("name", str),
        address=h.req("address", str),
        region=h.req("region", str),
        zone=h.opt("zone", str, None),
        provider=h.opt("provider", str, None),
        tags=h.section("tags").entries(str),
        measure=h.req("measure", bool),
        ssh=None
        if ssh is None
        else SshRoute(
            ssh.req("host", str),
            ssh.req("port", int),
            ssh.opt("user", str, None),
            ssh.listing("via", str),
        ),
        connection=_read_connection(h) if "status" in h else None,
        addresses=h.section("addresses").entries(str),
        inbound=_parsed(h, "inbound", Inbound.parse, h.listing("inbound", str))
        if "inbound" in h
        else INBOUND_ALL,
        iperf3_ports=_parsed(h, "iperf3_ports", PortRange.parse, h.req("iperf3_ports", str))
        if "iperf3_ports" in h
        else None,
    )


def _parsed(h: JsonObject, key: str, parse: Callable[[_T], _R], value: _T) -> _R:
    try:
        return parse(value)
    except ValueError as exc:
        h.fail(f"{h.name(key)}: {exc}")


def _read_networks(n: JsonObject) -> NetworkOrder:
    """The network preference order (``probe.networks``); directed pairs as ``"ra>rb"``."""
    pairs = {}
    table = n.section("pairs")
    for key in table.names():
        src, sep, dst = key.partition(">")
        if not sep:
            table.wrong(key, key, "a region pair written 'ra>rb'")
        pairs[src, dst] = table.listing(key, str)
    return NetworkOrder(n.listing("order", str) if "order" in n else (), pairs)


def _read_connection(h: JsonObject) -> ConnectOutcome:
    status = h.req("status", str)
    if status not in _STATUSES:
        h.wrong("status", status, "a cell status")
    return ConnectOutcome(
        status=CellStatus(status),
        reason=h.opt("reason", str, None),
        connect_s=h.opt("connect_s", float, None),
        tools=h.section("tools").nullable_entries(str),
    )


_STATUSES = frozenset(s.value for s in CellStatus)


def _read_options(o: JsonObject) -> RunOptionsDoc:
    d = RunOptionsDoc()
    return RunOptionsDoc(
        count=o.opt("count", int, d.count),
        interval_s=o.opt("interval_s", float, d.interval_s),
        reply_timeout_s=o.opt("reply_timeout_s", int, d.reply_timeout_s),
        pinger=o.opt("pinger", str, d.pinger),
        ping_pairs=o.opt("ping_pairs", str, d.ping_pairs),
        bandwidth=o.opt("bandwidth", bool, d.bandwidth),
        pairs=o.opt("pairs", str, d.pairs),
        exclusive_by=o.opt("exclusive_by", str, d.exclusive_by),
        duration_s=o.opt("duration_s", int, d.duration_s),
        omit_s=o.opt("omit_s", int, d.omit_s),
        streams=o.opt("streams", int, d.streams),
        under_load=o.opt("under_load", bool, d.under_load),
        compare_streams=o.opt("compare_streams", int, d.compare_streams),
        congestion=o.opt("congestion", str, d.congestion),
        auth=o.opt("auth", str, d.auth),
        network=o.opt("network", str, d.network),
        networks=o.opt("networks", str, d.networks),
        iperf3_ports=str(
            _parsed(o, "iperf3_ports", PortRange.parse, o.opt("iperf3_ports", str, d.iperf3_ports))
        ),
    )


def _read_controller(c: JsonObject) -> ControllerVantage:
    rtt: dict[str, RttStats | str] = {}
    table = c.section("rtt")
    for host in table.names():
        value = table.raw(host)
        rtt[host] = value if isinstance(value, str) else _read_rtt_stats(table.obj(host))
    return ControllerVantage(c.req("icmp_mode", str), rtt, c.opt("error", str, None))


def _read_rtt_stats(s: JsonObject) -> RttStats:
    ms = [f.name for f in fields(RttStats) if f.name.endswith("_ms")]  # the optional figures
    figures = {name: s.opt(name, float, None) for name in ms}
    return RttStats(s.req("sent", int), s.req("received", int), s.req("loss_pct", float), **figures)


def _read_inventory(i: JsonObject) -> InventoryRef:
    return InventoryRef(i.req("path", str), i.req("sha256", str))


def _read_attempt(a: JsonObject) -> RunAttempt:
    phases = a.opt_obj("phases")
    return RunAttempt(
        started_utc=a.req("started_utc", str),
        probe_version=a.req("probe_version", str),
        inventory=_read_inventory(a.obj("inventory")),
        ended_utc=a.opt("ended_utc", str, None),
        interrupted=a.req("interrupted", bool),
        phases=None if phases is None else _read_phases(phases),
    )


def _read_phases(p: JsonObject) -> RunPhases:
    return RunPhases(**{f.name: p.opt(f.name, float, None) for f in fields(RunPhases)})


def _read_cells(c: JsonObject) -> CellCounts:
    return CellCounts(
        pairs=c.req("pairs", int),
        rtt_measured=c.req("rtt_measured", int),
        bw_measured=c.req("bw_measured", int),
        bw_planned=c.req("bw_planned", int),
        torn_sample_lines=c.listing("torn_sample_lines", int) if "torn_sample_lines" in c else (),
        rtt_not_planned=c.opt("rtt_not_planned", int, 0),
        rtt_not_measurable=c.opt("rtt_not_measurable", int, 0),
    )
