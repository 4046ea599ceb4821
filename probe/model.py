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
    SKIPPED = "skipped"  # planned but no record: interrupted or killed before it ran (--resume)
    # left out by the run's plan: a sampled --ping-pairs, --pairs, or --no-bandwidth
    NOT_PLANNED = "not-planned"
    # the plan knows the pair cannot be measured: the hosts share no network, or neither accepts
    # the inbound traffic it needs (ICMP for RTT, TCP on its iperf3 ports for bandwidth); the
    # reason says which
    NOT_MEASURABLE = "not-measurable"
    # iperf3's control connection timed out or was refused while ping between the pair worked:
    # a firewall on the path drops or rejects the iperf3 port (the reason names address:port)
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True, repr=False)
class PortRange:
    """TCP ports ``lo``…``hi``, both included; ``valid`` when 1 ≤ lo ≤ hi ≤ 65535."""

    lo: int
    hi: int

    @classmethod
    def parse(cls, text: str, *, check: bool = True) -> PortRange:
        """``PORT`` or ``LO-HI`` in decimal digits; ``ValueError`` says what is wrong (with
        ``check=False`` only the syntax: an option class checks the range, naming itself)."""
        parts = text.strip().split("-")
        if len(parts) > 2 or not all(p.isascii() and p.isdigit() and len(p) < 9 for p in parts):
            raise ValueError(f"{text!r}: expected PORT or LO-HI, e.g. 5201-5299")
        ports = cls(int(parts[0]), int(parts[-1]))
        if check and not ports.valid:
            raise ValueError(f"{text!r}: ports are 1…65535, the low one first")
        return ports

    def __repr__(self) -> str:  # as written: messages quote it
        return repr(str(self))

    @property
    def valid(self) -> bool:
        return 1 <= self.lo <= self.hi <= 65535

    def __len__(self) -> int:
        return self.hi - self.lo + 1

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"

    def overlap(self, other: PortRange) -> PortRange | None:
        """The ports in both ranges, or None."""
        lo, hi = max(self.lo, other.lo), min(self.hi, other.hi)
        return PortRange(lo, hi) if lo <= hi else None


ALL_PORTS = PortRange(1, 65535)


@dataclass(frozen=True, slots=True)
class Inbound:
    """What a host accepts from its peers (inventory ``inbound:``): the plan never aims at more.

    A host behind NAT accepts nothing (``nat: true``); a security group may let ICMP through and
    no TCP, or TCP on some ports only. ``tcp`` lists the accepted TCP port ranges.
    """

    icmp: bool = True
    tcp: tuple[PortRange, ...] = (ALL_PORTS,)

    @classmethod
    def parse(cls, words: tuple[str, ...]) -> Inbound:
        """``all`` | ``none`` | ``icmp`` | ``tcp`` | ``tcp:PORTS``, or several of the last three;
        ``ValueError`` says what is wrong."""
        if not words:
            raise ValueError("expected all, none, icmp, tcp or tcp:PORTS")
        alone = sorted({"all", "none"} & set(words))
        if alone and len(words) > 1:
            raise ValueError(f"{alone[0]!r} cannot be combined with other entries")
        if alone:
            return INBOUND_ALL if alone[0] == "all" else INBOUND_NONE
        icmp, tcp = False, []
        for word in words:
            if word == "icmp":
                icmp = True
            elif word == "tcp":
                tcp.append(ALL_PORTS)
            elif word.startswith("tcp:"):
                tcp.append(PortRange.parse(word.removeprefix("tcp:")))
            else:
                raise ValueError(f"{word!r}: expected all, none, icmp, tcp or tcp:PORTS")
        return cls(icmp, tuple(tcp))

    @property
    def words(self) -> tuple[str, ...]:
        """What :meth:`parse` reads back equal (run.json, messages)."""
        if self in (INBOUND_ALL, INBOUND_NONE):
            return ("all",) if self.icmp else ("none",)
        tcp = ["tcp" if r == ALL_PORTS else f"tcp:{r}" for r in self.tcp]
        return (*(["icmp"] if self.icmp else []), *tcp)

    def __str__(self) -> str:
        return ", ".join(self.words)

    def tcp_within(self, ports: PortRange) -> PortRange | None:
        """The first accepted stretch of ``ports`` (where an iperf3 server may listen)."""
        return next((r for t in self.tcp if (r := t.overlap(ports)) is not None), None)


INBOUND_ALL = Inbound()
INBOUND_NONE = Inbound(icmp=False, tcp=())


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
    inbound: Inbound = INBOUND_ALL
    iperf3_ports: PortRange | None = None  # None: the run's (``--iperf3-ports``)


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
