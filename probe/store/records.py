"""The records of ``samples.jsonl``: one frozen dataclass per kind, one writer, one reader.

Each line is one JSON object with a ``kind``; ``t`` is the controller's clock (Unix seconds)
when the record was made. Units are in the key names, as everywhere in probe.

- ``host``: ``host``, ``status``, ``reason``, ``connect_s``, ``command_s``, ``tools`` (tool →
  version, or null when missing or hung), ``hung`` (tool → what it did not do within preflight's
  deadline, e.g. ``"no answer to --version within 5 s"``) and ``already_running`` (iperf3 → how
  many of its processes ran on the host at preflight: another measurement beside this run) —
  what connect and preflight found.
- ``ping``: one ordered pair of the ping mesh over one network: ``src``, ``dst``, ``network``,
  ``address`` (dst's, on that network), ``status``, ``reason``, ``argv``, ``exit_status``,
  ``fanout``; when ping ran (``ok``, ``all-lost``) also ``flavor``, ``sent``,
  ``received``, ``duplicates``, ``probes`` (``[seq, rtt_ms or null]`` per probe sent, lost ones
  included), ``summary`` (ping's own ``rtt_min_ms/avg/max/mdev``, or null) and ``errors``.
- ``ping_fanout``: one source's ping command in the ping mesh (fping, or the fan-out script):
  ``id``, ``src``, ``argv``, ``exit_status``, ``elapsed_s``.
- ``ping_load``: the same figures as ``ping`` for a train sent while src→dst carries a bandwidth
  test (``--under-load``), with the ``pinger`` host, ``argv`` and ``exit_status``; ``network`` and
  ``address`` are the test's.
- ``iperf3`` and ``iperf3_multi`` (the same test with ``-P N``, ``--compare-streams``): ``src``,
  ``dst``, ``network``, ``address`` (the server's, dialled by the client), ``client``,
  ``server``, ``reverse``, ``status``, ``reason``, ``argv``, ``attempts``, ``test_s``,
  ``authenticated`` (the test ran with the run's iperf3 credential; null in files from before
  the key) and ``result`` (every figure of ``probe.tools.iperf3.IperfResult``, rates in bit/s,
  with ``sender_cc`` / ``receiver_cc``: the TCP congestion control of the data's sender and
  receiver as iperf3 reported them — with ``reverse`` the sender is the server).
- ``imported``: one ordered pair's figures from another tool's matrix (``probe import matrix``),
  never a measurement of probe's: ``src``, ``dst``, ``network``, ``address``, ``status`` (``ok``,
  or ``all-lost`` for a loss of 100 %), ``source`` and ``line`` (the file and line it came
  from), ``rtt_ms`` (the one RTT figure the source gave), ``loss_pct`` and ``bw_mbps`` (src→dst
  goodput), each null when the source had none. Imported captures (``probe import captures``) are
  ``ping`` and ``iperf3`` records like probe's own, their ``reason`` naming the file.
- ``torn``: ``line`` — not a result but the file's own repair note. Lines are written whole, so
  only a kill mid-write cuts one short, and then it is the file's last line. A ``--resume``
  appending after such a line first ends it with a newline and then writes this record, naming
  it: the torn line is then directly above its ``torn`` record. A torn line anywhere else — not
  last, no ``torn`` record below it — was cut by something else: damage.

**What ran.** ``argv`` is always the command exactly as the host ran it (before the
``env LC_ALL=C timeout …`` prefix every remote command gets). The ping mesh runs one command per
source, and a ``ping`` record's ``fanout`` names its ``ping_fanout`` record (same ``src``,
``id`` = ``fanout``), whose ``argv`` is that whole command as given to the SSH runner. With fping
(``flavor`` "fping") that command pinged every target and a ``ping`` record's own ``argv`` is
empty: no process pinged its target alone. With the fan-out script, which starts one ping per
target, a ``ping`` record's ``argv`` is that target's ping as the script ran it (``ping -n -c
COUNT -i INTERVAL -W TIMEOUT ADDRESS``). The command is recorded once per source, not per
target: it lists every target, so a copy per record would grow the file with N³. Pairs a sampled
ping plan left out get no record (run.json's ``options.ping_pairs`` says which they are).

**Versions.** ``SAMPLES_SCHEMA`` is the format's version. Within a major, kinds and keys are only
ever added: a reader skips kinds it does not know and takes a key missing from an older file
as null (or empty), so files written by every probe of the major stay readable. A cell record
without ``network`` is from before named networks: network ``default``, at the address run.json
gives the destination.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, NoReturn, get_args

from probe.errors import StoreError
from probe.model import CellStatus
from probe.networks import DEFAULT_NETWORK
from probe.tools.iperf3 import IperfInterval, IperfResult
from probe.tools.ping import Flavor, PingReport, PingSummary

SAMPLES_SCHEMA = "probe.samples/1"

#: One probe of a train: (seq, rtt_ms), rtt_ms None when no reply came back.
Probe = tuple[int, float | None]

_MEASURED = (CellStatus.OK, CellStatus.ALL_LOST)


@dataclass(frozen=True, slots=True)
class PingTrain:
    """What one ping run reported (flat keys of its record). ``probes`` has every seq sent."""

    sent: int
    received: int
    duplicates: int
    probes: tuple[Probe, ...]
    summary: PingSummary | None = None
    flavor: Flavor | None = None  # None in files from before the key
    errors: tuple[str, ...] = ()

    @classmethod
    def from_report(cls, report: PingReport) -> PingTrain:
        return cls(
            sent=report.sent,
            received=report.received,
            duplicates=report.duplicates,
            probes=tuple((p.seq, p.rtt_ms) for p in report.probes),
            summary=report.summary,
            flavor=report.flavor,
            errors=report.errors,
        )


@dataclass(frozen=True, slots=True)
class HostRecord:
    kind: ClassVar[str] = "host"
    host: str
    status: CellStatus
    reason: str | None = None
    t: float | None = None
    connect_s: float | None = None
    command_s: float | None = None  # one no-op-sized command: session start + login shell
    tools: Mapping[str, str | None] = field(default_factory=dict)  # None: missing, or hung
    hung: Mapping[str, str] = field(default_factory=dict)  # tool → what it did not do in time
    already_running: Mapping[str, int] = field(default_factory=dict)  # iperf3 → processes


@dataclass(frozen=True, slots=True)
class PingRecord:
    kind: ClassVar[str] = "ping"
    src: str
    dst: str
    status: CellStatus
    reason: str | None = None
    t: float | None = None
    argv: tuple[str, ...] = ()  # this target's own ping, as it ran; () for fping, or none ran
    exit_status: int | None = None
    fanout: str | None = None  # the ``id`` of the ping_fanout record that ran it
    train: PingTrain | None = None  # when ping ran: status ok or all-lost
    network: str = DEFAULT_NETWORK  # the network pinged over (probe.networks)
    address: str | None = None  # dst's address pinged; None in files from before the key


@dataclass(frozen=True, slots=True)
class PingFanoutRecord:
    """One source's ping command (fping, or the fan-out script), every target's address in its
    ``argv``."""

    kind: ClassVar[str] = "ping_fanout"
    id: str
    src: str
    argv: tuple[str, ...]
    t: float | None = None
    exit_status: int | None = None  # None: killed, timed out, or never started
    elapsed_s: float | None = None


@dataclass(frozen=True, slots=True)
class PingLoadRecord:
    kind: ClassVar[str] = "ping_load"
    src: str
    dst: str
    status: CellStatus
    reason: str | None = None
    t: float | None = None
    pinger: str | None = None  # the host that sent the train (the test's client)
    argv: tuple[str, ...] = ()
    exit_status: int | None = None
    train: PingTrain | None = None
    network: str = DEFAULT_NETWORK
    address: str | None = None  # the server's address pinged


@dataclass(frozen=True, slots=True)
class IperfTestRecord:
    """One directed iperf3 test; its two kinds are the subclasses below."""

    kind: ClassVar[str]
    src: str
    dst: str
    client: str
    server: str
    reverse: bool
    status: CellStatus
    reason: str | None = None
    t: float | None = None
    argv: tuple[str, ...] = ()  # the client's
    attempts: int | None = None  # busy servers retried on other ports
    test_s: float | None = None  # the client's wall time, "go" to exit
    result: IperfResult | None = None  # status ok, or stalled (its figures, never a goodput)
    authenticated: bool | None = None  # None: a record from before the key
    network: str = DEFAULT_NETWORK  # the network tested over (probe.networks)
    address: str | None = None  # the server's address the client dialled
    # the server listened on that address only (-B); False: the host refused it as not its own
    # (1:1 NAT) and it listened on every address; None: not asked, or a record from before
    server_bound: bool | None = None


@dataclass(frozen=True, slots=True)
class Iperf3Record(IperfTestRecord):
    kind: ClassVar[str] = "iperf3"


@dataclass(frozen=True, slots=True)
class Iperf3MultiRecord(IperfTestRecord):
    """The test again with ``-P N`` (``--compare-streams N``)."""

    kind: ClassVar[str] = "iperf3_multi"


@dataclass(frozen=True, slots=True)
class ImportedRecord:
    """One pair of an imported matrix: a single figure per metric, no probes behind it."""

    kind: ClassVar[str] = "imported"
    src: str
    dst: str
    status: CellStatus  # OK, or ALL_LOST (loss 100 %, no RTT)
    source: str  # the file the figures came from
    line: int
    rtt_ms: float | None = None
    loss_pct: float | None = None
    bw_mbps: float | None = None  # src→dst goodput, Mbit/s
    t: float | None = None
    network: str = DEFAULT_NETWORK
    address: str | None = None

    @property
    def reason(self) -> str:
        """Where the figures came from: every cell record says why it holds what it holds."""
        return f"imported from {self.source}:{self.line}"

    @property
    def argv(self) -> tuple[str, ...]:
        return ()  # no command of probe's measured it


@dataclass(frozen=True, slots=True)
class TornMark:
    """Line ``line``, just above, is a kill-torn tail a resumed run found and wrote after."""

    kind: ClassVar[str] = "torn"
    line: int
    t: float | None = None


@dataclass(frozen=True, slots=True)
class UnknownRecord:
    """A record of a kind this probe does not know (a later minor version's): readers skip it."""

    kind: str


CellRecord = PingRecord | PingLoadRecord | Iperf3Record | Iperf3MultiRecord | ImportedRecord
SampleRecord = HostRecord | PingFanoutRecord | CellRecord


# --- the one writer ------------------------------------------------------------------------


def line_start(kind: str) -> bytes:
    """How every line of a record of ``kind`` starts (``kind`` is written first, without
    spaces): a reader that has the record elsewhere (the probe and bandwidth stores) can pass
    over the line without parsing it."""
    return b'{"kind":"' + kind.encode() + b'",'


PING_LINE = line_start("ping")


def encode_record(rec: SampleRecord | TornMark) -> str:
    """One line of samples.jsonl (without its newline)."""
    return json.dumps(_document(rec), separators=(",", ":"))


def _document(rec: SampleRecord | TornMark) -> dict[str, Any]:
    if isinstance(rec, TornMark):
        return {"kind": rec.kind, "line": rec.line, "t": rec.t}
    if isinstance(rec, HostRecord):
        return {
            "kind": rec.kind, "host": rec.host, "t": rec.t, "status": rec.status,
            "reason": rec.reason, "connect_s": rec.connect_s, "command_s": rec.command_s,
            "tools": dict(rec.tools), "hung": dict(rec.hung),
            "already_running": dict(rec.already_running),
        }  # fmt: skip
    if isinstance(rec, PingFanoutRecord):
        return {
            "kind": rec.kind, "id": rec.id, "src": rec.src, "t": rec.t, "argv": list(rec.argv),
            "exit_status": rec.exit_status, "elapsed_s": rec.elapsed_s,
        }  # fmt: skip
    if isinstance(rec, ImportedRecord):
        return {
            "kind": rec.kind, "src": rec.src, "dst": rec.dst, "t": rec.t, "status": rec.status,
            "network": rec.network, "address": rec.address, "source": rec.source,
            "line": rec.line, "rtt_ms": rec.rtt_ms, "loss_pct": rec.loss_pct,
            "bw_mbps": rec.bw_mbps,
        }  # fmt: skip
    doc: dict[str, Any] = {
        "kind": rec.kind, "src": rec.src, "dst": rec.dst, "t": rec.t, "status": rec.status,
        "reason": rec.reason, "network": rec.network, "address": rec.address,
    }  # fmt: skip
    if isinstance(rec, IperfTestRecord):
        doc.update(
            client=rec.client, server=rec.server, reverse=rec.reverse, argv=list(rec.argv),
            attempts=rec.attempts, test_s=rec.test_s, authenticated=rec.authenticated,
            server_bound=rec.server_bound,
            result=None if rec.result is None else asdict(rec.result),
        )  # fmt: skip
        return doc
    if isinstance(rec, PingLoadRecord):
        doc["pinger"] = rec.pinger
    doc.update(argv=list(rec.argv), exit_status=rec.exit_status)
    if isinstance(rec, PingRecord):
        doc["fanout"] = rec.fanout
    if rec.train is not None:
        doc.update(_train_document(rec.train))
    return doc


def _train_document(train: PingTrain) -> dict[str, Any]:
    return {
        "flavor": train.flavor, "sent": train.sent, "received": train.received,
        "duplicates": train.duplicates, "probes": [list(p) for p in train.probes],
        "summary": None if train.summary is None else asdict(train.summary),
        "errors": list(train.errors),
    }  # fmt: skip


# --- the one reader ------------------------------------------------------------------------


def is_torn(line: str) -> bool:
    """The start of an object cut short (what a kill mid-write leaves): ``{`` but not JSON."""
    if not line.lstrip().startswith("{"):
        return False
    try:
        json.loads(line)
    except ValueError:
        return True
    except RecursionError:
        return False  # too deeply nested to read: damage (decode_record names it)
    return False


def decode_record(line: str, where: str) -> SampleRecord | TornMark | UnknownRecord | None:
    """The record on one line, checked once; None for a torn line (:func:`is_torn`; whether
    it may be torn *there* is the file's rule, ``probe.store.rundir.iter_samples``). Anything
    else that is not a record of the known shape raises StoreError naming ``where``
    (``samples.jsonl:LINE``)."""
    try:
        doc = json.loads(line)
    except ValueError:
        if is_torn(line):
            return None
        raise StoreError(f"{where}: not a JSON record") from None
    except RecursionError:
        raise StoreError(f"{where}: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise StoreError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    obj = _Object(doc, where)
    kind = obj.text("kind")
    if kind == HostRecord.kind:
        return _host(obj)
    if kind == PingFanoutRecord.kind:
        return _fanout(obj)
    if kind in (PingRecord.kind, PingLoadRecord.kind):
        return _ping(obj, kind)
    if kind in (Iperf3Record.kind, Iperf3MultiRecord.kind):
        return _iperf(obj, kind)
    if kind == ImportedRecord.kind:
        return _imported(obj)
    if kind == TornMark.kind:
        line_number = obj.integer("line")
        if line_number < 1:
            obj.fail(f"'line' must be a line number ≥ 1, not {line_number}")
        return TornMark(line_number, obj.opt_number("t"))
    return UnknownRecord(kind)  # a later minor version's kind


_STATUSES = {s.value: s for s in CellStatus}
_FLAVORS: dict[str, Flavor] = {f: f for f in get_args(Flavor)}


def _status(obj: _Object) -> CellStatus:
    status = obj.text("status")
    if status not in _STATUSES:
        obj.fail(f"unknown status {status!r}")
    return _STATUSES[status]


def _host(obj: _Object) -> HostRecord:
    tools = obj.opt_object("tools")
    versions: dict[str, str | None] = {}
    for tool, version in (tools.doc if tools else {}).items():
        if version is not None and not isinstance(version, str):
            obj.fail("'tools' must map each tool to its version (a string) or null")
        versions[tool] = version
    hung = obj.opt_object("hung")
    if hung and not all(isinstance(v, str) for v in hung.doc.values()):
        obj.fail("'hung' must map each tool to what it did not do (a string)")
    running = obj.opt_object("already_running")
    if running and not all(type(n) is int and n >= 0 for n in running.doc.values()):
        obj.fail("'already_running' must map each tool to a count (an integer ≥ 0)")
    return HostRecord(
        host=obj.text("host"), status=_status(obj), reason=obj.opt_text("reason"),
        t=obj.opt_number("t"), connect_s=obj.opt_number("connect_s"),
        command_s=obj.opt_number("command_s"), tools=versions,
        hung=dict(hung.doc) if hung else {},
        already_running=dict(running.doc) if running else {},
    )  # fmt: skip


def _fanout(obj: _Object) -> PingFanoutRecord:
    return PingFanoutRecord(
        id=obj.text("id"), src=obj.text("src"), argv=obj.argv(required=True),
        t=obj.opt_number("t"), exit_status=obj.opt_integer("exit_status"),
        elapsed_s=obj.opt_number("elapsed_s"),
    )  # fmt: skip


def _ping(obj: _Object, kind: str) -> PingRecord | PingLoadRecord:
    src, dst, status = obj.text("src"), obj.text("dst"), _status(obj)
    reason, t = obj.opt_text("reason"), obj.opt_number("t")
    argv, exit_status = obj.argv(), obj.opt_integer("exit_status")
    train = _train(obj) if status in _MEASURED else None
    network, address = obj.opt_text("network") or DEFAULT_NETWORK, obj.opt_text("address")
    if kind == PingRecord.kind:
        return PingRecord(
            src=src, dst=dst, status=status, reason=reason, t=t, argv=argv,
            exit_status=exit_status, fanout=obj.opt_text("fanout"), train=train,
            network=network, address=address,
        )  # fmt: skip
    return PingLoadRecord(
        src=src, dst=dst, status=status, reason=reason, t=t, pinger=obj.opt_text("pinger"),
        argv=argv, exit_status=exit_status, train=train, network=network, address=address,
    )  # fmt: skip


def _imported(obj: _Object) -> ImportedRecord:
    status = _status(obj)
    if status not in _MEASURED:
        obj.fail(f"an imported pair is ok or all-lost, not {status}")
    rtt_ms, loss_pct = obj.opt_number("rtt_ms"), obj.opt_number("loss_pct")
    if status is CellStatus.OK and rtt_ms is None:
        obj.fail("an ok imported pair without 'rtt_ms'")
    return ImportedRecord(
        src=obj.text("src"), dst=obj.text("dst"), status=status, source=obj.text("source"),
        line=obj.integer("line"), rtt_ms=rtt_ms, loss_pct=loss_pct,
        bw_mbps=obj.opt_number("bw_mbps"), t=obj.opt_number("t"),
        network=obj.opt_text("network") or DEFAULT_NETWORK, address=obj.opt_text("address"),
    )  # fmt: skip


def _iperf(obj: _Object, kind: str) -> Iperf3Record | Iperf3MultiRecord:
    src, dst, status = obj.text("src"), obj.text("dst"), _status(obj)
    reason = obj.opt_text("reason")
    # a stalled test keeps its result too (its figures are inspectable, never a goodput)
    ran = obj.doc.get("result") is not None
    cls = Iperf3Record if kind == Iperf3Record.kind else Iperf3MultiRecord
    return cls(
        src=src, dst=dst, client=obj.text("client"), server=obj.text("server"),
        reverse=obj.flag("reverse"), status=status, reason=reason, t=obj.opt_number("t"),
        argv=obj.argv(), attempts=obj.opt_integer("attempts"), test_s=obj.opt_number("test_s"),
        result=_iperf_result(obj.object("result")) if ran else None,
        authenticated=obj.opt_flag("authenticated"),
        network=obj.opt_text("network") or DEFAULT_NETWORK, address=obj.opt_text("address"),
        server_bound=obj.opt_flag("server_bound"),
    )  # fmt: skip


_SEQ_MAX = 2**31 - 1


def _train(obj: _Object) -> PingTrain:
    sent, received = obj.integer("sent"), obj.integer("received")
    if sent < 1 or not 0 <= received <= sent:
        obj.fail(f"received {received} of {sent} sent")
    raw = obj.items("probes")
    for probe in raw:  # the hot loop of a rebuild: 20 probes a record, 90k records at 300 hosts
        if type(probe) is not list or len(probe) != 2 or type(probe[0]) is not int:
            obj.fail("'probes' must hold [seq, rtt_ms or null] pairs")
        if not 0 <= probe[0] <= _SEQ_MAX:  # the RTT samples sidecar stores seq as int32
            obj.fail(f"probe seq {probe[0]} is outside 0..{_SEQ_MAX}")
        if probe[1] is not None and type(probe[1]) is not float and type(probe[1]) is not int:
            obj.fail("'probes' must hold [seq, rtt_ms or null] pairs")
    probes = tuple((seq, None if rtt is None else float(rtt)) for seq, rtt in raw)
    flavor = obj.opt_text("flavor")
    if flavor is not None and flavor not in _FLAVORS:
        obj.fail(f"unknown ping flavor {flavor!r}")
    errors = obj.opt_items("errors") or []
    if not all(isinstance(e, str) for e in errors):
        obj.fail("'errors' must hold strings")
    return PingTrain(
        sent=sent, received=received, duplicates=obj.opt_integer("duplicates") or 0,
        probes=probes, summary=_summary(obj),
        flavor=None if flavor is None else _FLAVORS[flavor], errors=tuple(errors),
    )  # fmt: skip


def _summary(obj: _Object) -> PingSummary | None:
    summary = obj.opt_object("summary")
    if summary is None:
        return None
    low, avg, high = (summary.number(k) for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms"))
    if low > high:
        obj.fail("summary rtt_min_ms > rtt_max_ms")
    return PingSummary(low, avg, high, summary.opt_number("rtt_mdev_ms"))


def _iperf_result(r: _Object) -> IperfResult:
    receiver_bps = r.number("receiver_bps")
    if not math.isfinite(receiver_bps) or receiver_bps < 0:
        r.fail(f"'result.receiver_bps' must be a rate ≥ 0 bit/s, not {receiver_bps}")
    return IperfResult(
        receiver_bps=receiver_bps,
        sender_bps=r.number("sender_bps"),
        retransmits=r.opt_integer("retransmits"),
        max_snd_cwnd_bytes=r.opt_integer("max_snd_cwnd_bytes"),
        mean_rtt_ms=r.opt_number("mean_rtt_ms"),
        cpu_local_pct=r.opt_number("cpu_local_pct"),
        cpu_remote_pct=r.opt_number("cpu_remote_pct"),
        cpu_bound=r.flag("cpu_bound"),
        version=r.opt_text("version"),
        reverse=r.flag("reverse"),
        streams=r.integer("streams"),
        duration_s=r.number("duration_s"),
        omit_s=r.number("omit_s"),
        bytes_received=round(r.number("bytes_received")),  # some old files wrote a fraction
        intervals=tuple(_interval(i, r) for i in r.opt_items("intervals") or ()),
        sender_cc=r.opt_text("sender_cc"),
        receiver_cc=r.opt_text("receiver_cc"),
    )


def _interval(value: object, r: _Object) -> IperfInterval:
    """One periodic report (``{start_s, seconds, bytes}``): what stall detection reads."""
    if not isinstance(value, dict):
        r.fail("'result.intervals' must hold objects")
    i = _Object(value, r.where, f"{r.prefix}intervals[].")
    return IperfInterval(i.number("start_s"), i.number("seconds"), i.integer("bytes"))


class _Object:
    """One JSON object of a line, read key by key: what is wrong raises StoreError at its line."""

    __slots__ = ("doc", "prefix", "where")

    def __init__(self, doc: dict[str, Any], where: str, prefix: str = "") -> None:
        self.doc, self.where, self.prefix = doc, where, prefix

    def fail(self, message: str) -> NoReturn:
        raise StoreError(f"{self.where}: {message}")

    def _get(self, key: str, kind: type, *, required: bool) -> Any:
        value = self.doc.get(key)
        if value is None:
            if required:
                self.fail(f"record without '{self.prefix}{key}'")
            return None
        if not _is(value, kind):
            self.fail(f"'{self.prefix}{key}' is not {_TYPE_NAMES[kind]}: {value!r:.40}")
        return value

    def text(self, key: str) -> str:
        value: str = self._get(key, str, required=True)
        return value

    def opt_text(self, key: str) -> str | None:
        value: str | None = self._get(key, str, required=False)
        return value

    def integer(self, key: str) -> int:
        value: int = self._get(key, int, required=True)
        return value

    def opt_integer(self, key: str) -> int | None:
        value: int | None = self._get(key, int, required=False)
        return value

    def number(self, key: str) -> float:
        return float(self._get(key, float, required=True))

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, float, required=False)
        return None if value is None else float(value)

    def flag(self, key: str) -> bool:
        value: bool = self._get(key, bool, required=True)
        return value

    def opt_flag(self, key: str) -> bool | None:
        value: bool | None = self._get(key, bool, required=False)
        return value

    def items(self, key: str) -> list[Any]:
        value: list[Any] = self._get(key, list, required=True)
        return value

    def opt_items(self, key: str) -> list[Any] | None:
        value: list[Any] | None = self._get(key, list, required=False)
        return value

    def object(self, key: str) -> _Object:
        return _Object(self._get(key, dict, required=True), self.where, f"{self.prefix}{key}.")

    def opt_object(self, key: str) -> _Object | None:
        value = self._get(key, dict, required=False)
        return None if value is None else _Object(value, self.where, f"{self.prefix}{key}.")

    def argv(self, *, required: bool = False) -> tuple[str, ...]:
        argv = self._get("argv", list, required=required) or []
        if not set(map(type, argv)) <= {str}:  # no Python per item: fping's argv names 1,000s
            self.fail("'argv' must hold strings")
        return tuple(argv)


def _is(value: object, kind: type) -> bool:
    """JSON typing (values as ``json.loads`` makes them): a bool is not a number; an int is a
    float."""
    if kind is float:
        return type(value) is float or type(value) is int
    return type(value) is kind


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "an object"}  # fmt: skip
