"""Domain values shared by every layer: hosts, cell statuses, command results.

Tool-specific results live beside their parser (``tools/ping.py``, ``tools/iperf3.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from probe.networks import NetworkOrder


class CellStatus(StrEnum):
    """Why a matrix cell holds what it holds. Only ``OK`` carries a measurement.

    ``NOT_PLANNED`` is never a failure: a sampled ping plan chose not to measure the pair.
    """

    OK = "ok"
    ALL_LOST = "all-lost"  # ping ran, every probe lost: a measurement (loss 100 %), no RTT
    UNREACHABLE = "unreachable"  # SSH could not reach the source (or destination) host
    AUTH_FAILED = "auth-failed"
    HOST_KEY = "host-key-rejected"  # unknown or changed host key under strict checking
    TOOL_MISSING = "tool-missing"  # ping / iperf3 not installed on a host of the pair
    # ping / iperf3 installed on a host of the pair but hanging: its version probe did not answer
    # within preflight's deadline, so the host's tests with it are skipped rather than each left
    # to run into its own (much longer) timeout.
    TOOL_HUNG = "tool-hung"
    TIMEOUT = "timeout"  # the remote command did not finish in time
    BUSY = "busy"  # iperf3 server busy after every retry
    ERROR = "error"  # the tool ran and reported an error (text in the reason)
    # iperf3 ran to the end but moved no bytes, or moved none for part of its duration (the
    # reason says how long and when): its rate is not a measurement of the path's capacity.
    STALLED = "stalled"
    SKIPPED = "skipped"  # not selected by the plan, or interrupted before it ran
    NOT_PLANNED = "not-planned"  # left out by a sampled ping plan (plan.select_ping_pairs)
    NOT_MEASURABLE = "not-measurable"  # the plan knows the pair cannot be measured: reason says why


@dataclass(frozen=True, slots=True)
class SshTarget:
    """How the controller reaches a host. ``via`` is the jump chain, outermost first."""

    host: str
    port: int = 22
    user: str | None = None
    identity: tuple[str, ...] = ()
    via: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Host:
    """One inventory entry. ``address`` is what *peers* use to reach it (often private);
    ``addresses`` (network → address, ``probe.networks``) when it is on several networks, its
    preferred one then being ``address``."""

    name: str
    address: str
    ssh: SshTarget
    region: str = "default"
    zone: str | None = None
    provider: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    measure: bool = True
    addresses: Mapping[str, str] = field(default_factory=dict)  # {}: network default = address


@dataclass(frozen=True, slots=True)
class Inventory:
    """A validated inventory. ``source`` is the file it came from, ``sha256`` its content hash."""

    source: str
    sha256: str
    hosts: tuple[Host, ...]
    known_hosts: str | None = None
    networks: NetworkOrder = field(default_factory=NetworkOrder)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def measured(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.measure)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted({h.region for h in self.measured}))


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a remote command left: the tool module decides what its exit status means."""

    argv: tuple[str, ...]
    exit_status: int | None  # None: killed by a signal or timed out
    stdout: str
    stderr: str
    elapsed_s: float
