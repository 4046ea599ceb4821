"""What the phases of one run share: its options, the hosts' states, the cells a resumed run may
skip, and where results and progress go."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from probe.errors import InputError, require
from probe.measure.bandwidth import BandwidthOptions, CommandRunner
from probe.model import CellStatus, Host, PortRange
from probe.networks import ALL_NETWORKS, NetworkChoice, NetworkOrder, NoRoute, Route, routes
from probe.plan import parse_pair_mode, parse_ping_pairs, select_ping_pairs
from probe.store.records import (
    HostRecord,
    Iperf3MultiRecord,
    Iperf3Record,
    PingLoadRecord,
    PingRecord,
    SampleRecord,
)
from probe.store.rundoc import RunOptionsDoc
from probe.tools.fping import MIN_GAP_MS, fping_refuses
from probe.tools.iperf3 import MAX_STREAMS
from probe.tools.ping import MIN_INTERVAL_S, OLD_IPUTILS_MIN_INTERVAL_S, denied_reason

#: A cell is measured (not measured again on ``--resume``) when its latest record says so.
DONE = (CellStatus.OK, CellStatus.ALL_LOST)

Emit = Callable[[SampleRecord], None]
#: Several records saved at once (one source's ping results: one fsync, one probe-store part).
EmitMany = Callable[[Sequence[SampleRecord]], None]
Say = Callable[[str], None]
#: Which program pings: ``auto`` is fping on the sources that have it, ping elsewhere.
Pinger = Literal["auto", "fping", "ping"]
PINGERS: tuple[Pinger, ...] = ("auto", "fping", "ping")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run measures. Checked when built (``OptionError``), so a value no tool would take
    fails before anything connects or a run directory exists — not after every host was
    reached. The CLI's options are these fields (``probe.cli.options``)."""

    count: int = 20
    interval_s: float = 0.2
    reply_timeout_s: int = 2
    pinger: Pinger = "auto"
    ping_pairs: str = "all"  # plan.parse_ping_pairs: all | intra-region | intra-zone | sample:K
    bandwidth: bool = True
    pairs: str = "all"
    exclusive_by: str | None = None
    under_load: bool = False  # ping the pair while its bandwidth test runs (bufferbloat)
    compare_streams: int = 0  # > 1: after each single-stream test, the same with -P N
    network: str | None = None  # measure over this network only (probe.networks)
    networks: str | None = None  # "all": every pair over every network both hosts are on
    bw: BandwidthOptions = field(default_factory=BandwidthOptions)

    def __post_init__(self) -> None:
        require(self, "count", self.count >= 1, "≥ 1")
        interval_ok = math.isfinite(self.interval_s) and self.interval_s >= MIN_INTERVAL_S
        require(self, "interval_s", interval_ok, f"≥ {MIN_INTERVAL_S} s (iputils' floor)")
        require(self, "reply_timeout_s", self.reply_timeout_s >= 1, "≥ 1 s")
        require(self, "pinger", self.pinger in PINGERS, "auto, fping or ping")
        refused = fping_refuses(
            count=self.count, interval_s=self.interval_s, reply_timeout_s=self.reply_timeout_s
        )
        fping_ok = self.pinger != "fping" or refused is None
        require(self, "pinger", fping_ok, f"auto or ping for this train ({refused})")
        ping_modes = "all, intra-region, intra-zone or sample:K (K ≥ 1)"
        require(self, "ping_pairs", _parses(parse_ping_pairs, self.ping_pairs), ping_modes)
        modes = "all, cross-region, intra-region or sample:K (K ≥ 1)"
        require(self, "pairs", _parses(parse_pair_mode, self.pairs), modes)
        site_ok = self.exclusive_by in (None, "region", "zone")
        require(self, "exclusive_by", site_ok, "region or zone")
        streams_ok = self.compare_streams == 0 or 2 <= self.compare_streams <= MAX_STREAMS
        require(self, "compare_streams", streams_ok, f"0 (off) or 2…{MAX_STREAMS}")
        require(self, "networks", self.networks in (None, ALL_NETWORKS), f"'{ALL_NETWORKS}'")
        alone = self.network is None or self.networks is None
        require(self, "network", alone, "unset with --networks all (one or every network)")

    @property
    def choice(self) -> NetworkChoice:
        """Which networks a pair is measured over."""
        return NetworkChoice(self.network, self.networks == ALL_NETWORKS)

    def warnings(self, hosts: Sequence[Host], local_user: str) -> tuple[str, ...]:
        """What the run will not do as asked, said before it starts (it still runs)."""
        return tuple(
            w
            for w in (self._old_iputils(hosts, local_user), self._fping_stretch(hosts))
            if w is not None
        )

    def _old_iputils(self, hosts: Sequence[Host], local_user: str) -> str | None:
        """An interval below 0.2 s where a host logs in as a user other than root
        (``local_user`` when the inventory names none): its iputils version is known only once
        connected."""
        if self.interval_s >= OLD_IPUTILS_MIN_INTERVAL_S:
            return None
        users = sorted(h.name for h in hosts if (h.ssh.user or local_user) != "root")
        if not users:
            return None
        named = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
        return (
            f"ping interval {self.interval_s:g} s: {named} log in as a user other than root, "
            f"and iputils before 20210202 (Ubuntu 20.04, RHEL 8) refuses such users intervals "
            f"below {OLD_IPUTILS_MIN_INTERVAL_S:g} s; a host that does has ping's message in its "
            "cells"
        )

    def _fping_stretch(self, hosts: Sequence[Host]) -> str | None:
        """fping sends at most one probe per ``MIN_GAP_MS``: a source with more targets than
        the period holds milliseconds spaces each target's probes wider than ``--interval``.
        RTT and loss stand; jitter (IPDV) is then measured over the wider spacing."""
        if self.pinger == "ping" or fping_refuses(
            count=self.count, interval_s=self.interval_s, reply_timeout_s=self.reply_timeout_s
        ):
            return None
        period_ms = round(self.interval_s * 1000)
        if (len(hosts) - 1) * MIN_GAP_MS <= period_ms:  # no source has more targets: no plan
            return None
        plan = select_ping_pairs(hosts, parse_ping_pairs(self.ping_pairs))
        per_source = Counter(src for src, _ in plan.pairs)
        if not per_source:
            return None
        src, targets = per_source.most_common(1)[0]
        spacing_ms = targets * MIN_GAP_MS
        if spacing_ms <= period_ms:
            return None
        return (
            f"fping sends at most one probe per {MIN_GAP_MS} ms: {src} pings {targets} targets, "
            f"so each target's probes go ~{spacing_ms} ms apart, not {period_ms} ms, and the "
            f"train of {self.count} takes ~{self.count * spacing_ms / 1000:g} s; RTT and loss "
            f"stand, jitter is measured over the wider spacing (--interval "
            f"{spacing_ms / 1000:g} or a sampled --ping-pairs keeps the spacing planned)"
        )

    def as_doc(self) -> RunOptionsDoc:
        """What ``run.json`` records of these options."""
        return RunOptionsDoc(
            **{name: getattr(self, name) for name in _RECORDED},
            **{name: getattr(self.bw, name) for name in _RECORDED_BW},
            iperf3_ports=str(self.bw.iperf3_ports),
        )

    def following(self, doc: RunOptionsDoc) -> RunOptions:
        """These options with every recorded one taken from ``doc`` (what a resume uses; its
        values are checked like any others, in ``__post_init__``)."""
        bw = replace(
            self.bw,
            **{name: getattr(doc, name) for name in _RECORDED_BW},
            iperf3_ports=PortRange.parse(doc.iperf3_ports, check=False),
        )
        return replace(self, **{name: getattr(doc, name) for name in _RECORDED}, bw=bw)


#: The fields of ``RunOptions`` and of its ``BandwidthOptions`` that ``run.json`` records under
#: the same name (``RunOptionsDoc``: the ports besides, as text). One list for both directions.
_RECORDED = (
    "count", "interval_s", "reply_timeout_s", "pinger", "ping_pairs", "bandwidth", "pairs",
    "exclusive_by", "under_load", "compare_streams", "network", "networks",
)  # fmt: skip
_RECORDED_BW = ("duration_s", "omit_s", "streams", "congestion", "auth")


def _parses(parse: Callable[[str], object], text: str) -> bool:
    try:
        parse(text)
    except InputError:
        return False
    return True


@dataclass(slots=True)
class HostState:
    """One host as the run knows it: reached or why not, and its tools (from preflight)."""

    host: Host
    status: CellStatus = CellStatus.UNREACHABLE
    reason: str = "not connected"
    connect_s: float | None = None
    command_s: float | None = None  # one no-op-sized command: session start + login shell
    tools: dict[str, str | None] = field(default_factory=dict)  # None: missing, or hung
    hung: dict[str, str] = field(default_factory=dict)  # tool → what it did not do in time
    already_running: dict[str, int] = field(default_factory=dict)  # iperf3 → processes
    icmp_denied: dict[str, str] = field(default_factory=dict)  # ping/fping → what it said

    @property
    def usable(self) -> bool:
        return self.status is CellStatus.OK

    def has(self, tool: str) -> bool:
        return self.usable and self.tools.get(tool) is not None

    def cannot_run(self, tool: str, role: str) -> tuple[CellStatus, str] | None:
        """Why this host, as ``role`` of a cell ("source", "client" …), cannot run ``tool``: the
        cell's status and a reason naming the host (and the tool, when it is the tool's fault)."""
        name = self.host.name
        if not self.usable:
            return self.status, f"{role} {name}: {self.reason}"
        if tool in self.hung:
            return CellStatus.TOOL_HUNG, f"{tool} hangs on {name} ({self.hung[tool]})"
        if self.tools.get(tool) is None:
            return CellStatus.TOOL_MISSING, f"{tool} missing on {name}"
        if tool in self.icmp_denied:
            return CellStatus.ERROR, f"{role} {name}: {denied_reason(tool, self.icmp_denied[tool])}"
        return None

    def record(self) -> HostRecord:
        return HostRecord(
            host=self.host.name,
            status=self.status,
            reason=self.reason if not self.usable else None,
            t=time.time(),
            connect_s=self.connect_s,
            command_s=self.command_s,
            tools=dict(self.tools),
            hung=dict(self.hung),
            already_running=dict(self.already_running),
        )


_CELL_RECORDS = (PingRecord, PingLoadRecord, Iperf3Record, Iperf3MultiRecord)


@dataclass(frozen=True, slots=True)
class Done:
    """Cells already measured (``--resume``): ``(kind, src, dst, network)``; ``answered``: the
    pairs (either direction) whose ping got replies."""

    cells: frozenset[tuple[str, str, str, str]] = frozenset()
    answered: frozenset[frozenset[str]] = frozenset()

    @classmethod
    def from_records(cls, records: Iterable[SampleRecord]) -> Done:
        latest: dict[tuple[str, str, str, str], CellStatus] = {}
        for rec in records:
            if isinstance(rec, _CELL_RECORDS):
                latest[rec.kind, rec.src, rec.dst, rec.network] = rec.status
        return cls(
            frozenset(k for k, status in latest.items() if status in DONE),
            frozenset(
                frozenset((src, dst))
                for (kind, src, dst, _), status in latest.items()
                if kind == "ping" and status is CellStatus.OK
            ),
        )


@dataclass(frozen=True, slots=True)
class RunContext:
    """Handed to each phase: the connector, the options and the shared host states.

    ``answered`` grows as pings get replies (from ``done`` on): an iperf3 connection that fails
    between hosts that answer each other's ping met a firewall (``blocked``)."""

    pool: CommandRunner
    options: RunOptions
    hosts: Mapping[str, HostState]
    emit: Emit
    say: Say
    done: Done
    networks: NetworkOrder = field(default_factory=NetworkOrder)
    answered: set[frozenset[str]] = field(default_factory=set)
    emit_many: EmitMany | None = None  # None: ``emit`` one record at a time

    def __post_init__(self) -> None:
        self.answered.update(self.done.answered)

    def emit_all(self, records: Sequence[SampleRecord]) -> None:
        """Save records that arrived together as one batch where the store takes batches."""
        if self.emit_many is not None:
            self.emit_many(records)
            return
        for record in records:
            self.emit(record)

    def routes(self, src: str, dst: str) -> tuple[Route, ...] | NoRoute:
        """What the run measures from ``src`` to ``dst`` (``probe.networks``: the rule's
        network first), or why it cannot."""
        a, b = self.hosts[src].host, self.hosts[dst].host
        return routes(a, b, self.networks, self.options.choice)
