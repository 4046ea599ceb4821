"""iperf3: argv of the one-off server and of the client, the ``-J`` parser, what an exit means.

Facts from captures (``tests/fixtures/iperf3/``) that shape this module:

- iperf 3.12 exits **0** when ``-J`` reports an error (busy server, connection refused): the exit
  status cannot be trusted, the ``"error"`` key can.
- With ``-R`` the sender is the server and 3.12 reports its ``max_snd_cwnd``/``mean_rtt`` as 0:
  those are read as unknown (``None``), never as a measured zero.
- ``-t``/``-O`` are whole seconds (``-t 1.5`` silently runs 1 s), so fractions are refused here.
- ``-J`` output is only printed at the end, so a server started with ``-J`` never says it is
  ready; the server therefore runs in text mode with ``--forceflush`` and prints
  ``Server listening on PORT`` at once (see :func:`server_ready`).
- A stall does not make iperf3 fail: with the server stopped for 3 s of a 6 s test, 3.12 exits 0
  with a complete report whose intervals read ~0; stopped through the whole test it reports
  0 bytes received (``loopback/iperf3.12_stall_*``). :func:`stall_reason` reads the intervals.

The PyPI ``iperf3`` package's ``TestResult`` is not the parser: it ``json.loads`` the whole text
(no leading junk, trailing error line or ``-nan``), raises ``KeyError`` on partial documents and
lacks cwnd and RTT. The tests use it as an independent oracle for the rates it does read.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from probe.errors import InputError, ParseError
from probe.model import CellStatus, CommandResult

DEFAULT_DURATION_S = 10.0  # WAN: long enough for cubic/bbr to leave slow start on a ~100 ms path
DEFAULT_OMIT_S = 2.0  # the slow-start ramp is not the capacity we want to report
CPU_BOUND_PCT = 90.0  # per iperf3 thread; see IperfResult.cpu_bound
MAX_STREAMS = 128  # iperf3's own limit for -P
BUSY_RETRIES = 4
# A stall (see stall_reason): a run of intervals lasting ≥ STALL_MIN_S in which each interval moved
# less than STALL_SHARE of the test's peak interval rate, or less than STALL_FLOOR_BPS.
STALL_MIN_S = 1.0  # iperf3's default interval: one whole report of (almost) nothing
STALL_SHARE = 0.01
STALL_FLOOR_BPS = 10 * 1460 * 8.0  # one initial TCP window (RFC 6928, 10 segments) per second
STALL_BYTES_RATIO = 2.0  # bytes received vs bytes the intervals count: further apart, inconsistent
#: ...and further apart than socket buffers hold: a forward test's intervals count what the sender
#: wrote, which runs ahead of the receiver by its send buffer (Linux autotunes it up to
#: ``tcp_wmem`` max, 4 MiB by default) plus what is in flight. Seen on the lab: a 1 s test on a
#: 20 Mbit/s, 240 ms path counts 0.6 MB written for 0.2 MB received.
STALL_SLACK_BYTES = 16 * 2**20
_INTERVAL_SLACK = 0.95  # iperf3's 1 s intervals last 0.998…1.003 s
#: A TCP congestion control name as Linux spells them (``TCP_CA_NAME_MAX`` 16 with its NUL).
CONGESTION_NAME = re.compile(r"[a-z0-9_]{1,15}")

_BUSY = "the server is busy running a test"
_CONNECT_FAILED = re.compile(
    r"unable to connect to server\b.*?: (Connection timed out|Connection refused|No route to host)"
)
_PLAIN_ERROR = re.compile(r"^iperf3: error - (.+)$", re.MULTILINE)
_ERROR_KEY = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')
_NONFINITE = re.compile(r"(:\s*)(-?)(nan|inf(?:inity)?)\b", re.IGNORECASE)
_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*\.?$"
)


@dataclass(frozen=True, slots=True)
class IperfInterval:
    """One periodic report (``intervals[].sum``), summed over streams.

    The client's view: bytes *sent* in a forward test, bytes *received* with ``-R``.
    """

    start_s: float  # iperf3's clock, from the end of the omitted ramp
    seconds: float
    bytes: int

    @property
    def bps(self) -> float:
        return self.bytes * 8.0 / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class IperfResult:
    """One TCP test as seen by the client. Rates are bit/s; CPU is % of one core per thread.

    ``cpu_bound`` is set when either end's total CPU reached ``CPU_BOUND_PCT`` of the cores iperf3
    could use (one before 3.16; one thread per stream from 3.16): the rate is then a floor set by
    the host, not a property of the path.
    """

    receiver_bps: float  # goodput: end.sum_received
    sender_bps: float
    retransmits: int | None
    max_snd_cwnd_bytes: int | None
    mean_rtt_ms: float | None  # TCP's smoothed RTT, mean over streams
    cpu_local_pct: float | None  # the client host
    cpu_remote_pct: float | None  # the server host
    cpu_bound: bool
    version: str | None  # "3.12"
    reverse: bool
    streams: int
    duration_s: float
    omit_s: float
    bytes_received: int
    intervals: tuple[IperfInterval, ...] = ()  # the measured ones (omitted ramp left out)
    # TCP congestion control of the data's sender and receiver (``end.*_tcp_congestion``): with
    # ``-R`` the sender is the server. None: not reported (before 3.3, or not Linux).
    sender_cc: str | None = None
    receiver_cc: str | None = None


class IperfReportedError(ParseError):
    """iperf3 itself reported a failure (``"error"`` key or ``iperf3: error - …`` line)."""

    def __init__(self, message: str) -> None:
        self.message = message.removeprefix("error - ").strip()
        super().__init__(f"iperf3: {self.message}")


@dataclass(frozen=True, slots=True)
class ServerAuth:
    """Files an authenticating server reads (``probe.tools.iperf3auth`` makes their content).

    ``pkcs1``: the peer's iperf3 is from before 3.17, whose RSA padding 3.17+ no longer uses by
    default (``--use-pkcs1-padding``, only known to 3.17+).
    """

    private_key_path: str
    users_path: str
    pkcs1: bool = False


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """What an authenticating client names; its password is ``IPERF3_PASSWORD`` in its
    environment, never an argument."""

    username: str
    public_key_path: str
    pkcs1: bool = False


def iperf3_server_argv(
    port: int, *, idle_timeout_s: int, bind: str | None = None, auth: ServerAuth | None = None
) -> list[str]:
    """One-off server; it exits after one test or ``idle_timeout_s`` without one (3.12 verified).

    Text mode + ``--forceflush`` so ``Server listening on PORT`` reaches us at once: readiness.
    ``bind``: listen on the test's address only (``-B``), not on every address of the host.
    With ``auth`` a client without the run's credential gets "test authorization failed" and
    the one-off server goes on waiting for the right one (3.12 verified).
    """
    _check_port(port)
    if idle_timeout_s < 1:
        raise InputError(f"iperf3 idle timeout must be ≥ 1 s, got {idle_timeout_s}")
    argv = ["iperf3", "-s", "-1", "-p", str(port), "--idle-timeout", str(idle_timeout_s)]
    if bind is not None:
        _check_address(bind)
        argv += ["-B", bind]
    if auth is not None:
        argv += ["--rsa-private-key-path", auth.private_key_path]
        argv += ["--authorized-users-path", auth.users_path]
        argv += ["--use-pkcs1-padding"] if auth.pkcs1 else []
    return [*argv, "--forceflush"]


def iperf3_client_argv(
    address: str,
    port: int,
    *,
    duration_s: float,
    omit_s: float,
    reverse: bool = False,
    streams: int = 1,
    connect_timeout_ms: int = 5000,
    congestion: str | None = None,
    auth: ClientAuth | None = None,
) -> list[str]:
    """TCP client, JSON out. Never ``--bidir``: both directions at once share the path.

    ``congestion`` (``-C``): the client sends it to the server too, so the data's sender uses
    it in either direction.
    """
    _check_address(address)
    _check_port(port)
    if not 1 <= streams <= MAX_STREAMS:
        raise InputError(f"iperf3 streams must be 1…{MAX_STREAMS}, got {streams}")
    if connect_timeout_ms < 1:
        raise InputError(f"connect timeout must be ≥ 1 ms, got {connect_timeout_ms}")
    argv = ["iperf3", "-c", address, "-p", str(port), "-J"]
    argv += ["-t", _whole_seconds(duration_s, "duration", minimum=1)]
    argv += ["-O", _whole_seconds(omit_s, "omit", minimum=0)]
    argv += ["--connect-timeout", str(connect_timeout_ms)]
    if streams > 1:
        argv += ["-P", str(streams)]
    if reverse:
        argv.append("-R")
    if congestion is not None:
        argv += ["-C", check_congestion(congestion)]
    if auth is not None:
        argv += ["--username", auth.username, "--rsa-public-key-path", auth.public_key_path]
        argv += ["--use-pkcs1-padding"] if auth.pkcs1 else []
    return argv


def check_congestion(name: str) -> str:
    """A congestion control name iperf3 may pass to the kernel (``-C``), else InputError."""
    if not CONGESTION_NAME.fullmatch(name):
        raise InputError(f"not a TCP congestion control name ([a-z0-9_], ≤ 15): {name!r}")
    return name


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise InputError(f"port must be 1…65535, got {port}")


def _check_address(address: str) -> None:
    """An IP literal or a host name; a leading '-' would be read by iperf3 as an option."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not _HOSTNAME.match(address):
            raise InputError(f"not an IP address or host name: {address!r}") from None


def _whole_seconds(value: float, what: str, *, minimum: int) -> str:
    if not math.isfinite(value) or value != int(value) or value < minimum:
        raise InputError(f"iperf3 {what} must be whole seconds ≥ {minimum}, got {value}")
    return str(int(value))


def server_ready(text: str) -> bool:
    """The server's stdout says it listens (needs ``--forceflush`` when stdout is a pipe)."""
    return "Server listening on" in text


def is_port_in_use(text: str) -> bool:
    """The server could not bind: pick another port (no backoff needed)."""
    return "Address already in use" in text


def is_server_busy(text: str) -> bool:
    """Someone else's client holds our one-off server: retry on another port after a backoff."""
    return _BUSY in text


def busy_backoff_s(attempt: int, *, base_s: float = 0.5, cap_s: float = 8.0) -> float:
    """Delay before retry ``attempt`` (0-based): 0.5, 1, 2, 4 … capped."""
    return min(cap_s, base_s * 2.0 ** max(attempt, 0))


def iperf3_outcome(result: CommandResult) -> IperfResult | tuple[CellStatus, str]:
    """What a finished client command means for the matrix cell."""
    if result.exit_status is None:
        return CellStatus.TIMEOUT, f"no result within {result.elapsed_s:.0f} s"
    if result.exit_status in (126, 127) or "command not found" in result.stderr:
        return CellStatus.TOOL_MISSING, "iperf3 not found on the client host"
    try:
        return parse_iperf3(result.stdout)
    except IperfReportedError as exc:
        return _failure(exc.message)
    except ParseError as exc:
        unreadable = f"unreadable iperf3 output (exit {result.exit_status}): {exc}"
    try:  # iperf3 without -J, or a wrapper, puts its error on stderr
        parse_iperf3(result.stderr)
    except IperfReportedError as exc:
        return _failure(exc.message)
    except ParseError:
        pass
    return CellStatus.ERROR, unreadable


def stall_reason(result: IperfResult) -> str | None:
    """Why a finished test is still not a measurement of the path's capacity; ``None`` if it is.

    The measurement records such a test as ``CellStatus.STALLED`` with this reason. In order:

    - no bytes received at all;
    - a stall: consecutive intervals lasting ≥ ``STALL_MIN_S`` that each moved < ``STALL_SHARE``
      of the peak interval rate, or < ``STALL_FLOOR_BPS``. A moving TCP connection never spends a
      whole second that low: a loss costs cubic 30 % and Reno 50 % of the window, and the floor is
      one initial window per second, less than any path with an RTT under 1 s delivers. Only an
      outage (retransmission time-outs backing off) or a stopped end does.
      The peak, not the median, is the reference: a stall over half the test drags the median
      down to the stall itself. The leading intervals while the rate still rises are slow start,
      judged by the floor only (10 Gbit/s at 240 ms RTT spends seconds ramping).
    - bytes received and bytes the intervals count more than ``STALL_BYTES_RATIO`` and more than
      ``STALL_SLACK_BYTES`` apart. Forward,
      the intervals count bytes handed to the sender's socket, ahead of the receiver by its
      buffers and the bytes in flight (a few RTTs' worth under Linux autotuning), far less than
      half a test; with ``-R`` they count the received bytes themselves.

    Intervals are iperf3's (1 s by default), so a stall's length and start are rounded to them.
    """
    test = f"{result.duration_s:g} s"
    if result.bytes_received == 0:
        return f"no bytes received in {test}"
    spells = _stalls(result.intervals)
    if spells and _receiver_kept_up(result, spells):
        spells = []
    if spells:
        total = sum(length for _, length in spells)
        more = f", {len(spells)} spells" if len(spells) > 1 else ""
        return f"stalled for {total:.1f} s of {test} (from {spells[0][0]:.1f} s{more})"
    counted = sum(i.bytes for i in result.intervals)
    ratio = result.bytes_received / counted if counted else math.inf
    apart = abs(result.bytes_received - counted) > STALL_SLACK_BYTES
    if result.intervals and apart and not 1 / STALL_BYTES_RATIO <= ratio <= STALL_BYTES_RATIO:
        return (
            f"inconsistent: {result.bytes_received / 1e6:,.1f} MB received, "
            f"the intervals count {counted / 1e6:,.1f} MB"
        )
    return None


def _receiver_kept_up(result: IperfResult, spells: list[tuple[float, float]]) -> bool:
    """Whether the receiver's own total shows no stall after all. Forward, the intervals count
    what the sender's application wrote: with its socket buffer full (a 10 Mbit/s uplink with a
    deep queue on a 240 ms path) a write blocks for a whole second while the receiver goes on
    receiving at full rate — seen on the lab, 10.5, 10.5, 0.0, 10.5 Mbit/s intervals and
    9.6 Mbit/s received. A real stall of ``s`` seconds of ``d`` takes ~s/d off the receiver's mean;
    a spell is believed when at least half of that is missing."""
    whole = max(i.seconds for i in result.intervals) / 2
    in_spell = [
        any(start <= i.start_s < start + length for start, length in spells)
        for i in result.intervals
    ]
    moving = sorted(
        i.bps
        for i, low in zip(result.intervals, in_spell, strict=True)
        if not low and i.seconds >= whole
    )
    if not moving or result.duration_s <= 0:
        return False  # nothing moved at all: a stall whatever the receiver's count says
    typical = moving[len(moving) // 2]
    share = min(1.0, sum(length for _, length in spells) / result.duration_s)
    return result.receiver_bps >= typical * (1 - share / 2)


def _stalls(intervals: tuple[IperfInterval, ...]) -> list[tuple[float, float]]:
    """``(start_s, length_s)`` of every stall, in order (see :func:`stall_reason`)."""
    if not intervals:
        return []
    whole = max(i.seconds for i in intervals) / 2  # the last interval can be a sliver
    peak = max((i.bps for i in intervals if i.seconds >= whole), default=0.0)
    ramp = 0
    while (
        ramp < len(intervals)
        and intervals[ramp].bps >= STALL_FLOOR_BPS
        and (ramp == 0 or intervals[ramp].bps > intervals[ramp - 1].bps)
    ):
        ramp += 1
    low = [
        i.bps < STALL_FLOOR_BPS or (n >= ramp and i.bps < STALL_SHARE * peak)
        for n, i in enumerate(intervals)
    ]
    spells = []
    for is_low, group in itertools.groupby(zip(low, intervals, strict=True), key=lambda x: x[0]):
        run = [i for _, i in group]
        length = sum(i.seconds for i in run)
        if is_low and length >= STALL_MIN_S * _INTERVAL_SLACK:
            spells.append((run[0].start_s, length))
    return spells


def connect_failure(message: str) -> str | None:
    """Why iperf3's control connection failed (``Connection timed out``, ``Connection
    refused``, ``No route to host``: what a firewall that drops or rejects the port causes),
    or None for any other failure. 3.12 says ``unable to connect to server: Connection timed
    out``; later versions put a hint between (``unable to connect to server - server may have
    stopped running or use a different port, firewall issue, etc.: …``)."""
    m = _CONNECT_FAILED.search(message)
    return m.group(1) if m else None


def _failure(message: str) -> tuple[CellStatus, str]:
    message = message.removeprefix("error - ").strip()
    return (CellStatus.BUSY if is_server_busy(message) else CellStatus.ERROR), message


def parse_iperf3(text: str) -> IperfResult:
    """Parse ``-J`` (or ``--json-stream``) client output of a TCP test.

    Tolerates CR/CRLF, leading junk (``^C``), text after the document and ``nan``/``-nan``.
    Raises :class:`IperfReportedError` when iperf3 reported an error, :class:`ParseError` for
    anything else unusable (truncated, UDP, ``--bidir``).
    """
    text = _NONFINITE.sub(_json_nonfinite, text.replace("\r\n", "\n").replace("\r", "\n"))
    docs = _decode_objects(text)
    doc = _from_stream(docs) if docs and "event" in docs[0] else _first_report(docs)
    if doc is None:
        if m := _ERROR_KEY.search(text):
            raise IperfReportedError(_unescape(m.group(1)))
        if m := _PLAIN_ERROR.search(text):
            raise IperfReportedError(m.group(1))
        raise ParseError("no iperf3 JSON document in the output")
    return _result_from(doc)


def _unescape(json_string_body: str) -> str:
    try:
        return str(json.loads(f'"{json_string_body}"'))
    except ValueError:
        return json_string_body


def _json_nonfinite(m: re.Match[str]) -> str:
    word = "NaN" if m.group(3).lower() == "nan" else "Infinity"
    return f"{m.group(1)}{'-' if m.group(2) and word != 'NaN' else ''}{word}"


def _decode_objects(text: str, *, max_failures: int = 64) -> list[dict[str, object]]:
    """Every top-level JSON object in ``text``, skipping junk between them.

    Failed starts are capped so a truncated megabyte document cannot cost O(n²).
    """
    decoder = json.JSONDecoder()
    found: list[dict[str, object]] = []
    pos, failures = text.find("{"), 0
    while pos != -1 and failures < max_failures:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            failures += 1
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        pos = text.find("{", end)
    return found


def _first_report(docs: list[dict[str, object]]) -> dict[str, object] | None:
    """The first object shaped like a ``-J`` report (nested fragments of a cut one are not)."""
    for doc in docs:
        if "error" in doc or isinstance(doc.get("end"), dict):
            return doc
    return None


def _from_stream(events: list[dict[str, object]]) -> dict[str, object] | None:
    """``--json-stream`` (3.17+): an ``error`` event wins; else the ``start`` and ``end`` data."""
    data = {e["event"]: e.get("data") for e in events if isinstance(e.get("event"), str)}
    if "error" in data:
        raise IperfReportedError(str(data["error"]))
    if isinstance(data.get("end"), dict) and data["end"]:
        intervals = [e.get("data") for e in events if e.get("event") == "interval"]
        return {"start": data.get("start"), "end": data["end"], "intervals": intervals}
    return None


def _result_from(doc: Mapping[str, object]) -> IperfResult:
    if "error" in doc:
        raise IperfReportedError(str(doc["error"]))
    start, end = _obj(doc, "start"), _obj(doc, "end")
    setup = _obj(start, "test_start")
    if setup.get("protocol") != "TCP":
        raise ParseError(f"expected a TCP test, got protocol {setup.get('protocol')!r}")
    if setup.get("bidir"):
        raise ParseError("--bidir test: each direction must be its own test")
    received, sent = _obj(end, "sum_received"), _obj(end, "sum_sent")
    cpu = end.get("cpu_utilization_percent")
    cpu = cpu if isinstance(cpu, dict) else {}
    streams = int(_required(setup, "num_streams"))
    version = _version(start.get("version"))
    local, remote = _num(cpu, "host_total"), _num(cpu, "remote_total")
    cwnds, rtts = _sender_tcp_info(end)
    retransmits = _num(sent, "retransmits")
    return IperfResult(
        receiver_bps=_required(received, "bits_per_second"),
        sender_bps=_required(sent, "bits_per_second"),
        retransmits=None if retransmits is None else int(retransmits),
        max_snd_cwnd_bytes=int(max(cwnds)) if cwnds else None,
        mean_rtt_ms=sum(rtts) / len(rtts) / 1000.0 if rtts else None,  # iperf3 reports µs
        cpu_local_pct=local,
        cpu_remote_pct=remote,
        cpu_bound=_cpu_bound(local, remote, streams=streams, version=version),
        version=version,
        reverse=bool(setup.get("reverse")),
        streams=streams,
        duration_s=_required(setup, "duration"),
        omit_s=_num(setup, "omit") or 0.0,
        bytes_received=int(_required(received, "bytes")),
        intervals=_intervals(doc.get("intervals")),
        sender_cc=_cc(end.get("sender_tcp_congestion")),
        receiver_cc=_cc(end.get("receiver_tcp_congestion")),
    )


def _cc(value: object) -> str | None:
    return value if isinstance(value, str) and CONGESTION_NAME.fullmatch(value) else None


def _intervals(raw: object) -> tuple[IperfInterval, ...]:
    """The measured intervals; none when iperf3 reported none (``-i 0``)."""
    out = []
    for n, interval in enumerate(raw if isinstance(raw, list) else []):
        total = interval.get("sum") if isinstance(interval, dict) else None
        if not isinstance(total, dict):
            raise ParseError(f"iperf3 JSON: interval {n} has no 'sum'")
        if total.get("omitted") is True:
            continue
        out.append(
            IperfInterval(
                start_s=_required(total, "start"),
                seconds=_required(total, "seconds"),
                bytes=int(_required(total, "bytes")),
            )
        )
    return tuple(out)


def _sender_tcp_info(end: Mapping[str, object]) -> tuple[list[float], list[float]]:
    """Per-stream sender cwnd and mean RTT; zeros mean "not reported" (the ``-R`` case)."""
    cwnds: list[float] = []
    rtts: list[float] = []
    streams = end.get("streams")
    for stream in streams if isinstance(streams, list) else []:
        sender = stream.get("sender") if isinstance(stream, dict) else None
        if isinstance(sender, dict):
            cwnds += [v for v in [_num(sender, "max_snd_cwnd")] if v]
            rtts += [v for v in [_num(sender, "mean_rtt")] if v]
    return cwnds, rtts


def _cpu_bound(
    local: float | None, remote: float | None, *, streams: int, version: str | None
) -> bool:
    threads = streams if _version_tuple(version) >= (3, 16) else 1
    return any(p is not None and p >= CPU_BOUND_PCT * threads for p in (local, remote))


def _version(value: object) -> str | None:
    m = _VERSION.search(value) if isinstance(value, str) else None
    return m.group(1) if m else None


def version_tuple(line: str | None) -> tuple[int, ...]:
    """``(3, 12)`` from ``iperf 3.12 (cJSON 1.7.15)`` or ``3.12``; ``(0,)`` when unknown."""
    return _version_tuple(_version(line))


def _version_tuple(version: str | None) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")) if version else (0,)


def _obj(parent: Mapping[str, object], key: str) -> dict[str, object]:
    value = parent.get(key)
    if not isinstance(value, dict) or not value:
        raise ParseError(f"iperf3 JSON: {key!r} is missing or empty")
    return value


def _num(parent: Mapping[str, object], key: str) -> float | None:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _required(parent: Mapping[str, object], key: str) -> float:
    value = _num(parent, key)
    if value is None or value < 0:
        raise ParseError(f"iperf3 JSON: {key!r} is missing or not a finite number ≥ 0")
    return value
