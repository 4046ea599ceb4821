"""The lab's state files as typed records, with one writer and one reader for all of them.

    state.json           LabState        what ``lab up`` made (``lab down`` reads the prefix)
    truth.json           LabTruth        what a perfect measurement of each pair would report
    emulator.json        EmulatorConfig  the emulator's hosts, timing and file paths
    pairs.json           PairTable       the link model per directed pair (``lab link`` + SIGHUP)
    emulator-stats.json  EmulatorStats   the emulator's counters (on SIGUSR1 and at exit)
    supervise.json       SuperviseSpec   the supervisor's children
    children.json        ChildPids       their PIDs, rewritten on every (re)start

:func:`save` replaces a file atomically (the emulator may re-read the pair table at any moment);
:func:`load` checks it whole and turns any damage into one line of ``LabError`` naming the file
and the key. The emulator and the supervisor run as processes of their own and import this
module, so it stays small: the lab's records, ``probe.jsonfields`` and the topology's types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol, Self, TypeVar, get_args

from probe.errors import LabError
from probe.jsonfields import JsonObject, read_object
from probe.lab.topology import (
    MESH,
    EmulatorSettings,
    JitterDist,
    LinkParams,
    Network,
    RateImpl,
)
from probe.lab.truth import PairStatus, PairTruth, TruthStatus
from probe.textio import write_atomic

TRUTH_SCHEMA = "probe.lab-truth/1"
TRUTH_NOTE = (
    "rtt/std/ipdv/loss: round trip seen from src; rates: one-way (fwd = src->dst); one entry "
    "per ordered pair and network; 'statuses': the pairs probe must report with that status"
)


class LabFile(Protocol):
    """A record stored as one JSON file of the lab's state directory."""

    def to_json(self) -> object: ...

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self: ...


F = TypeVar("F", bound=LabFile)
C = TypeVar("C", bound=str)


def save(path: Path, record: LabFile) -> None:
    """Replace ``path`` with ``record`` in one step (a reader sees the old file or the new)."""
    write_atomic(path, json.dumps(record.to_json(), indent=1) + "\n")


def load(path: Path, kind: type[F]) -> F:
    """The record of type ``kind`` in ``path``; missing or damaged: ``LabError`` naming it."""
    return kind.from_json(read_object(path, LabError))


def _pair_key(src: str, dst: str) -> str:
    return f"{src}>{dst}"


def _pair(obj: JsonObject, key: str) -> tuple[str, str]:
    src, sep, dst = key.partition(">")
    if not (src and sep and dst) or ">" in dst:
        obj.fail(f"{obj.name(key)} must name a directed pair as SRC>DST")
    return src, dst


def _choice(obj: JsonObject, key: str, allowed: tuple[C, ...], default: C) -> C:
    """One of a closed set of strings (a ``Literal``'s values)."""
    value = obj.opt(key, str, default)
    for choice in allowed:
        if choice == value:
            return choice
    obj.wrong(key, value, " or ".join(repr(a) for a in allowed))


@dataclass(frozen=True, slots=True)
class LabState:
    """``state.json``: written before each object exists, so ``down`` can find them all."""

    name: str
    prefix: str
    topology: str  # the topology file, absolute
    hosts: tuple[str, ...]
    jump: str
    created_run_sshd: bool = False  # /run/sshd was made by this lab: the last lab down removes it
    supervisor_pid: int | None = None
    created_users: tuple[str, ...] = ()  # login accounts this lab added: ``down`` deletes them
    allowed_cc: tuple[str, ...] = ()  # congestion controls it added to the machine's allowed list

    def to_json(self) -> object:
        out = asdict(self)
        if self.supervisor_pid is None:
            del out["supervisor_pid"]
        for key in ("created_users", "allowed_cc"):
            if not out[key]:
                del out[key]
        return out

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(
            name=obj.req("name", str),
            prefix=obj.req("prefix", str),
            topology=obj.req("topology", str),
            hosts=obj.listing("hosts", str),
            jump=obj.req("jump", str),
            created_run_sshd=obj.opt("created_run_sshd", bool, False),
            supervisor_pid=obj.opt("supervisor_pid", int, None),
            created_users=obj.listing("created_users", str) if "created_users" in obj else (),
            allowed_cc=obj.listing("allowed_cc", str) if "allowed_cc" in obj else (),
        )


@dataclass(frozen=True, slots=True)
class TruthHost:
    name: str
    region: str
    address: str  # the first of ``addresses``; behind NAT, its LAN address
    addresses: Mapping[str, str] = field(default_factory=dict)  # network → what peers dial
    nat: str | None = None  # its NAT gateway
    cc: str | None = None  # the TCP congestion control the topology set; None: the kernel's


@dataclass(frozen=True, slots=True)
class LabTruth:
    """``truth.json``: the topology's expectations, for tests and benchmarks to compare with.
    Files written before networks existed read as one network, ``mesh``, with no statuses."""

    lab: str
    topology: str
    hosts: tuple[TruthHost, ...]
    pairs: tuple[PairTruth, ...]
    statuses: tuple[PairStatus, ...] = ()

    def to_json(self) -> object:
        return {
            "schema": TRUTH_SCHEMA,
            "lab": self.lab,
            "topology": self.topology,
            "note": TRUTH_NOTE,
            "hosts": [_host_json(h) for h in self.hosts],
            "pairs": [
                {**asdict(t), "tcp_max_fwd_bps": t.tcp_max_fwd_bps,
                 "tcp_max_rev_bps": t.tcp_max_rev_bps}
                for t in self.pairs
            ],  # the TCP maxima are derived: written for readers, not read back
            "statuses": [asdict(s) for s in self.statuses],
        }  # fmt: skip

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        schema = obj.req("schema", str)
        if schema != TRUTH_SCHEMA:
            obj.fail(f"schema {schema!r} is not {TRUTH_SCHEMA}")
        hosts = tuple(_truth_host(h) for h in obj.objects("hosts"))
        pairs = tuple(_truth(p) for p in obj.objects("pairs"))
        statuses = tuple(
            PairStatus(
                s.req("src", str), s.req("dst", str), s.req("network", str),
                _choice(s, "status", ("not-measurable",), "not-measurable"), s.req("reason", str),
            )
            for s in (obj.objects("statuses") if "statuses" in obj else ())
        )  # fmt: skip
        return cls(obj.req("lab", str), obj.req("topology", str), hosts, pairs, statuses)


def _host_json(h: TruthHost) -> dict[str, object]:
    out: dict[str, object] = {"name": h.name, "region": h.region, "address": h.address}
    out["addresses"] = dict(h.addresses)
    if h.nat is not None:
        out["nat"] = h.nat
    if h.cc is not None:
        out["cc"] = h.cc
    return out


def _truth_host(h: JsonObject) -> TruthHost:
    address = h.req("address", str)
    addresses = h.section("addresses").entries(str) if "addresses" in h else {MESH: address}
    return TruthHost(
        h.req("name", str), h.req("region", str), address, addresses, h.opt("nat", str, None),
        h.opt("cc", str, None),
    )  # fmt: skip


_TRUTH_STATUSES = get_args(TruthStatus)


def _truth(p: JsonObject) -> PairTruth:
    return PairTruth(
        src=p.req("src", str),
        dst=p.req("dst", str),
        rtt_ms=p.req("rtt_ms", float),
        rtt_std_ms=p.req("rtt_std_ms", float),
        ipdv_ms=p.req("ipdv_ms", float),
        loss_pct=p.req("loss_pct", float),
        rate_fwd_bps=p.req("rate_fwd_bps", float),
        rate_rev_bps=p.req("rate_rev_bps", float),
        network=p.opt("network", str, MESH),
        address=p.opt("address", str, ""),
        status=_choice(p, "status", _TRUTH_STATUSES, "ok"),
        reason=p.opt("reason", str, ""),
        bw_status=p.opt("bw_status", str, None),
    )


@dataclass(frozen=True, slots=True)
class PairTable:
    """``pairs.json``: the link of each directed pair; ``comp_us`` overrides the emulator's."""

    pairs: Mapping[tuple[str, str], LinkParams]
    comp_us: float | None = None

    def to_json(self) -> object:
        out: dict[str, object] = {} if self.comp_us is None else {"comp_us": self.comp_us}
        out["pairs"] = {_pair_key(*k): asdict(p) for k, p in self.pairs.items()}
        return out

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        table = obj.obj("pairs")
        pairs = {_pair(table, key): _link(table.obj(key)) for key in table.names()}
        return cls(pairs, obj.opt("comp_us", float, None))


_JITTER_DISTS = get_args(JitterDist)
_NO_LINK = LinkParams()


def _link(obj: JsonObject) -> LinkParams:
    """A link; a field left out takes the topology's default (a hand-edited table may). Kept
    cheap: the emulator reads every pair on each ``lab link`` while it forwards packets."""
    d = _NO_LINK
    return LinkParams(
        delay_ms=obj.opt("delay_ms", float, d.delay_ms),
        jitter_ms=obj.opt("jitter_ms", float, d.jitter_ms),
        jitter_dist=_choice(obj, "jitter_dist", _JITTER_DISTS, d.jitter_dist),
        loss_pct=obj.opt("loss_pct", float, d.loss_pct),
        rate_bps=obj.opt("rate_bps", float, d.rate_bps),
        queue_ms=obj.opt("queue_ms", float, d.queue_ms),
        reorder=obj.opt("reorder", bool, d.reorder),
    )


@dataclass(frozen=True, slots=True)
class EmulatedHost:
    name: str
    netns: str
    addresses: Mapping[str, str]  # network → this host's address on it (on its tun0)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """``emulator.json``: everything the emulator process needs, given on its command line."""

    hosts: tuple[EmulatedHost, ...]
    networks: tuple[Network, ...]  # each host routes a network's subnet through its tun0
    settings: EmulatorSettings
    pairs_path: str
    stats_path: str
    ready_path: str  # written with the emulator's PID once every TUN is up
    seed: int | None = None  # loss and jitter draws; None: a fresh seed

    def shared_networks(self, src: str, dst: str) -> list[Network]:
        """The networks both hosts have an address on, in preference order."""
        on = {h.name: h.addresses for h in self.hosts}
        return [n for n in self.networks if n.name in on[src] and n.name in on[dst]]

    def to_json(self) -> object:
        s = self.settings
        out: dict[str, object] = {
            "hosts": [asdict(h) for h in self.hosts],
            "networks": [asdict(n) for n in self.networks],
            "gso": s.gso,
            "rate_impl": s.rate_impl,
            "timing": {"guard_us": s.guard_us, "spin_us": s.spin_us,
                       "sched_fifo": s.sched_fifo, "comp_us": s.comp_us},
            "pairs_path": self.pairs_path,
            "stats_path": self.stats_path,
            "ready_path": self.ready_path,
        }  # fmt: skip
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        d, timing = EmulatorSettings(), obj.section("timing")
        settings = EmulatorSettings(
            gso=obj.opt("gso", bool, d.gso),
            rate_impl=_choice(obj, "rate_impl", get_args(RateImpl), d.rate_impl),
            guard_us=timing.opt("guard_us", int, d.guard_us),
            spin_us=timing.opt("spin_us", int, d.spin_us),
            sched_fifo=timing.opt("sched_fifo", int, d.sched_fifo),
            comp_us=timing.opt("comp_us", float, d.comp_us),
        )
        hosts = tuple(
            EmulatedHost(h.req("name", str), h.req("netns", str), h.obj("addresses").entries(str))
            for h in obj.objects("hosts")
        )
        networks = tuple(
            Network(n.req("name", str), n.req("subnet", str), _extra(n.opt_obj("extra")))
            for n in obj.objects("networks")
        )
        return cls(
            hosts=hosts,
            networks=networks,
            settings=settings,
            pairs_path=obj.req("pairs_path", str),
            stats_path=obj.req("stats_path", str),
            ready_path=obj.req("ready_path", str),
            seed=obj.opt("seed", int, None),
        )


def _extra(obj: JsonObject | None) -> LinkParams | None:
    return None if obj is None else _link(obj)


@dataclass(frozen=True, slots=True)
class LinkCounters:
    """One directed pair's counters: delivered packets and bytes, drops, delivery lateness."""

    packets: float = 0.0
    bytes: float = 0.0
    drop_loss: float = 0.0
    drop_queue: float = 0.0
    late_max_us: float = 0.0
    late_sum_us: float = 0.0


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    """``emulator-stats.json``: the emulator's counters at one moment."""

    time_monotonic_s: float
    cpu_s: float
    dropped_unroutable: int  # to an address no host has
    comp_us: float
    pairs: Mapping[tuple[str, str], LinkCounters] = field(default_factory=dict)  # all networks
    dropped_cross_network: int = 0  # to a host, from an address not on the destination's network

    def to_json(self) -> object:
        return {
            "time_monotonic_s": self.time_monotonic_s,
            "cpu_s": self.cpu_s,
            "dropped_unroutable": self.dropped_unroutable,
            "dropped_cross_network": self.dropped_cross_network,
            "comp_us": self.comp_us,
            "pairs": {_pair_key(*k): asdict(c) for k, c in self.pairs.items()},
        }

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        table = obj.obj("pairs")
        pairs = {_pair(table, key): _counters(table.obj(key)) for key in table.names()}
        return cls(
            time_monotonic_s=obj.req("time_monotonic_s", float),
            cpu_s=obj.req("cpu_s", float),
            dropped_unroutable=obj.req("dropped_unroutable", int),
            comp_us=obj.req("comp_us", float),
            pairs=pairs,
            dropped_cross_network=obj.opt("dropped_cross_network", int, 0),
        )


def _counters(obj: JsonObject) -> LinkCounters:
    return LinkCounters(**{f.name: obj.opt(f.name, float, 0.0) for f in fields(LinkCounters)})


@dataclass(frozen=True, slots=True)
class ChildSpec:
    argv: tuple[str, ...]
    log: str  # stdout and stderr, appended


@dataclass(frozen=True, slots=True)
class SuperviseSpec:
    """``supervise.json``: the children to start; the lab stops when a critical one exits."""

    children: Mapping[str, ChildSpec]
    critical: tuple[str, ...] = ()

    def to_json(self) -> object:
        children = {name: asdict(c) for name, c in self.children.items()}
        return {"children": children, "critical": list(self.critical)}

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        children = {
            name: ChildSpec(c.listing("argv", str), c.req("log", str))
            for name, c in obj.obj("children").members()
        }
        critical = obj.listing("critical", str) if "critical" in obj else ()
        for name in critical:
            if name not in children:
                obj.fail(f"critical child {name!r} is not one of 'children'")
        return cls(children, critical)


@dataclass(frozen=True, slots=True)
class ChildPids:
    """``children.json``: the PID of each child of the supervisor, by name."""

    pids: Mapping[str, int]

    def to_json(self) -> object:
        return dict(self.pids)

    @classmethod
    def from_json(cls, obj: JsonObject) -> Self:
        return cls(obj.entries(int))
