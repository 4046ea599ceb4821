"""What the phases of one run share: its options, the hosts' states, the cells a resumed run may
skip, and where results and progress go."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from probe.errors import InputError
from probe.measure.bandwidth import BandwidthOptions, CommandRunner
from probe.measure.plan import parse_ping_pairs
from probe.model import CellStatus, Host
from probe.store.records import (
    HostRecord,
    Iperf3MultiRecord,
    Iperf3Record,
    PingLoadRecord,
    PingRecord,
    SampleRecord,
)
from probe.store.rundoc import RunOptionsDoc
from probe.tools.fping import fping_refuses

#: A cell is measured (not measured again on ``--resume``) when its latest record says so.
DONE = (CellStatus.OK, CellStatus.ALL_LOST)

Emit = Callable[[SampleRecord], None]
Say = Callable[[str], None]
#: Which program pings: ``auto`` is fping on the sources that have it, ping elsewhere.
Pinger = Literal["auto", "fping", "ping"]
PINGERS: tuple[Pinger, ...] = ("auto", "fping", "ping")


@dataclass(frozen=True, slots=True)
class RunOptions:
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
    bw: BandwidthOptions = field(default_factory=BandwidthOptions)

    def __post_init__(self) -> None:
        """A ping plan or pinger probe cannot run is refused before anything connects."""
        parse_ping_pairs(self.ping_pairs)
        refused = fping_refuses(
            count=self.count, interval_s=self.interval_s, reply_timeout_s=self.reply_timeout_s
        )
        if self.pinger == "fping" and refused is not None:
            raise InputError(f"--pinger fping: {refused}")

    def as_doc(self) -> RunOptionsDoc:
        """What ``run.json`` records of these options."""
        return RunOptionsDoc(
            count=self.count,
            interval_s=self.interval_s,
            reply_timeout_s=self.reply_timeout_s,
            pinger=self.pinger,
            ping_pairs=self.ping_pairs,
            bandwidth=self.bandwidth,
            pairs=self.pairs,
            exclusive_by=self.exclusive_by,
            duration_s=self.bw.duration_s,
            omit_s=self.bw.omit_s,
            streams=self.bw.streams,
            under_load=self.under_load,
            compare_streams=self.compare_streams,
        )


@dataclass(slots=True)
class HostState:
    """One host as the run knows it: reached or why not, and its tools (from preflight)."""

    host: Host
    status: CellStatus = CellStatus.UNREACHABLE
    reason: str = "not connected"
    connect_s: float | None = None
    command_s: float | None = None  # one no-op-sized command: session start + login shell
    tools: dict[str, str | None] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.status is CellStatus.OK

    def has(self, tool: str) -> bool:
        return self.usable and self.tools.get(tool) is not None

    def record(self) -> HostRecord:
        return HostRecord(
            host=self.host.name,
            status=self.status,
            reason=self.reason if not self.usable else None,
            t=time.time(),
            connect_s=self.connect_s,
            command_s=self.command_s,
            tools=dict(self.tools),
        )


_CELL_RECORDS = (PingRecord, PingLoadRecord, Iperf3Record, Iperf3MultiRecord)


@dataclass(frozen=True, slots=True)
class Done:
    """Cells already measured (``--resume``): ``(kind, src, dst)``."""

    cells: frozenset[tuple[str, str, str]] = frozenset()

    @classmethod
    def from_records(cls, records: Iterable[SampleRecord]) -> Done:
        latest: dict[tuple[str, str, str], CellStatus] = {}
        for rec in records:
            if isinstance(rec, _CELL_RECORDS):
                latest[rec.kind, rec.src, rec.dst] = rec.status
        return cls(frozenset(k for k, status in latest.items() if status in DONE))


@dataclass(frozen=True, slots=True)
class RunContext:
    """Handed to each phase: the connector, the options and the shared host states."""

    pool: CommandRunner
    options: RunOptions
    hosts: Mapping[str, HostState]
    emit: Emit
    say: Say
    done: Done
