"""ping: argv builder, parser of iputils / busybox / BSD output, and the meaning of its exit status.

Why a parser of our own and not jc's (evaluated on the 72 captures in tests/fixtures/ping/jc):
jc 1.26 reads counts, summaries and reply times right on all of them, but lists a lost seq only
when ping printed a line for it (9 captures miss some), drops iputils' "From … Destination Host
Unreachable" lines, returns ``dict[str, Any]``, and raises IndexError on truncated output (e.g.
"PING x"). Statistics need one entry per probe sent and a parser that fails only with
ParseError, so this one rebuilds the seq range from the transmitted count.

Facts the parser leans on (iputils ``ping_common.c``, busybox ``ping.c``, FreeBSD ``ping.c``):
- iputils numbers seqs from 1, busybox and BSD from 0; seqs are 16 bits and wrap.
- iputils s20100418 and s20101006 (Ubuntu 10.10–12.10, Debian 7) name the seq of a reply line
  ``icmp_req=`` (``pr_echo_reply``); their "From … icmp_seq=N …" error lines and every other
  release say ``icmp_seq=``. Such output is flavour "iputils-old" (when it has a reply line).
- iputils prints per-packet times ≥ 99.95 ms rounded to integers and ≥ 9.995 ms to one decimal;
  the summary line is exact to the microsecond. busybox and BSD print 3 decimals everywhere.
- Every flavour folds duplicate replies into its summary min/avg/max/mdev, so a summary is exact
  for the probes only when there were no duplicates (``probe.stats.report_stats`` checks).
- BSD's "stddev" and iputils' "mdev" are the same population standard deviation; busybox has none.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from probe.errors import InputError, ParseError
from probe.model import CellStatus, CommandResult

Flavor = Literal["iputils", "iputils-old", "busybox", "bsd", "fping"]  # fping: probe.tools.fping

_A = re.ASCII  # \d must not accept other scripts' digits: int("٣") is 3
_NUM = r"\d{1,9}(?:\.\d{1,6})?"  # bounded: int() refuses > 4300 digits, float() overflows
_STATS = re.compile(
    r"^(?P<sent>\d{1,9}) packets transmitted, (?P<received>\d{1,9}) (?P<pkts>packets )?received"
    r"(?P<rest>.*)$",
    _A,
)
_DUPS = re.compile(r"\+?(\d{1,9}) duplicates", _A)
_LOSS = re.compile(rf"({_NUM})% packet loss", _A)
_SUMMARY = re.compile(
    rf"^(?:rtt|round-trip) min/avg/max(?:/mdev|/stddev|/std-dev)? = "
    rf"(?P<min>{_NUM})/(?P<avg>{_NUM})/(?P<max>{_NUM})(?:/(?P<mdev>{_NUM}))? ms",
    _A,
)
_TITLE = re.compile(r"^--- (?P<dest>.*?) ping6? statistics ---$", _A)
_HEADER = re.compile(r"^PING6?\b(?:.*?\((?P<addr>[^()\s]*)\))?", _A)
_BSD6_HEADER = re.compile(r"^PING6\(.*--> (?P<addr>\S+)", _A)
_REPLY = re.compile(
    rf"\bbytes from .*?[:,] (?:icmp_seq|icmp_req|seq)=(?P<seq>\d{{1,9}})\b"
    rf"(?:.*?\btime[=<](?P<time>{_NUM}) ?ms)?(?P<tail>.*)$",
    _A,
)
_OLD_IPUTILS_REPLY = re.compile(r"\bbytes from .*?: icmp_req=\d", _A)
_ICMP_ERROR = re.compile(r"^From \S+(?: \(\S+\))?:? (?P<msg>icmp_seq=\d{1,9} .+)$", _A)
_BSD_ERROR = re.compile(r"^\d+ bytes from .*?: (?P<msg>[A-Z][^=]*)$", _A)
_TIMESTAMP = re.compile(r"^\[\d+(?:\.\d+)?\] ", _A)
_IGNORED = re.compile(  # said by ping, known, and carrying nothing the report keeps
    r"^(?:$|PATTERN: |WARNING: |no answer yet for icmp_seq=|Request timeout for icmp_seq"
    r"|--- .* statistics ---$|pipe \d+$|Vr HL TOS|\d+\s+\d+\s+[0-9a-f]{2}\s)",
    _A,
)
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$", _A)
_NOT_FOUND = re.compile(r"command not found|\bping: not found")
#: What a ping or fping says when this account may not open an ICMP socket: iputils ≥ 20190709
#: ("socket: Operation not permitted", then "=> missing cap_net_raw+p capability or setuid?";
#: "socket: Permission denied" where ping_group_range refuses it), older iputils ("icmp open
#: socket: Operation not permitted"), busybox ("permission denied (are you root?)"), fping ("can't
#: create [raw ]socket (must run as root?)"). Not "sendmsg: Operation not permitted": that is a
#: firewall refusing the packet, not the account refused the socket.
_ICMP_DENIED = re.compile(
    r"socket: (?:Operation not permitted|Permission denied)|are you root\?|must run as root"
    r"|missing cap_net_raw",
    re.IGNORECASE,
)
_IPUTILS_VERSION = re.compile(r"\biputils-?s*(?P<date>\d{6,8})\b|\bping from iputils\b", _A)

_SEQ_MODULO = 1 << 16
_MIN_TIMED_PAYLOAD_BYTES = 16  # below sizeof(struct timeval) ping prints no time at all
_MAX_PAYLOAD_BYTES = 65507
#: The shortest interval iputils allows a user who is not root: 2 ms since iputils 20210202
#: (Debian 11, Ubuntu 22.04, RHEL 9); before it, 200 ms (Ubuntu 20.04, RHEL 8, CentOS 7).
MIN_INTERVAL_S = 0.002
OLD_IPUTILS_MIN_INTERVAL_S = 0.2


@dataclass(frozen=True, slots=True)
class PingProbe:
    """One echo request. ``rtt_ms`` is None when no reply came back (lost)."""

    seq: int
    rtt_ms: float | None


@dataclass(frozen=True, slots=True)
class PingSummary:
    """ping's own summary line: exact to the µs even where per-packet lines are rounded."""

    rtt_min_ms: float
    rtt_avg_ms: float
    rtt_max_ms: float
    rtt_mdev_ms: float | None  # busybox prints none


@dataclass(frozen=True, slots=True)
class PingReport:
    """Everything one ping run said (or fping about one target: flavor "fping", no summary).

    ``probes`` has one entry per seq sent, lost ones included. ``sent``, ``received`` and
    ``duplicates`` are ping's own counts; ``errors`` holds ICMP errors ping reported and lines this
    parser did not recognise, as ``"line N: text"``.
    """

    flavor: Flavor
    destination: str
    sent: int
    received: int
    duplicates: int
    probes: tuple[PingProbe, ...]
    summary: PingSummary | None
    errors: tuple[str, ...]


def validate_address(address: str) -> str:
    """Return ``address`` if it is an IP literal or an RFC 1123 host name, else raise InputError.

    It ends up as an argv element on a remote shell: refusing a leading '-' keeps it from ever
    being read as an option.
    """
    if not address or address.startswith("-"):
        raise InputError(f"not a host address: {address!r}")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        name = address.removesuffix(".")
        labels = name.split(".")
        if len(name) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
            raise InputError(f"not an IP address or host name: {address!r}") from None
    return address


def ping_argv(
    address: str,
    *,
    count: int,
    interval_s: float,
    deadline_s: float | None = None,
    packet_size: int | None = None,
    reply_timeout_s: int | None = None,
) -> list[str]:
    """Linux iputils argv: ``-n`` (no reverse DNS, so names never delay replies), ``-c``, ``-i``.

    ``interval_s`` below 0.2 s needs root on old iputils (CentOS 7, Ubuntu 18.04); iputils since
    2021 lets users go down to 2 ms. ping refuses with exit 2, which ``ping_outcome`` reports as an
    error with ping's own message. Run it under ``LC_ALL=C``: some iputils read ``-i`` with the
    locale's decimal comma. ``deadline_s`` (``-w``) bounds the whole run and is rounded up to whole
    seconds, as iputils refuses "1.5". ``packet_size`` must leave room for the timestamp (≥ 16
    bytes) or ping prints no times.
    """
    validate_address(address)
    if count < 1:
        raise InputError(f"ping count must be ≥ 1, not {count}")
    if not math.isfinite(interval_s) or interval_s < MIN_INTERVAL_S:
        raise InputError(f"ping interval must be ≥ {MIN_INTERVAL_S} s, not {interval_s}")
    argv = ["ping", "-n", "-c", str(count), "-i", f"{interval_s:g}"]
    if reply_timeout_s is not None:  # -W: how long to linger when nothing came back (default 10 s)
        if reply_timeout_s < 1:
            raise InputError(f"ping reply timeout must be ≥ 1 s, not {reply_timeout_s}")
        argv += ["-W", str(reply_timeout_s)]
    if deadline_s is not None:
        if not math.isfinite(deadline_s) or deadline_s <= 0:
            raise InputError(f"ping deadline must be > 0 s, not {deadline_s}")
        argv += ["-w", str(math.ceil(deadline_s))]
    if packet_size is not None:
        if not _MIN_TIMED_PAYLOAD_BYTES <= packet_size <= _MAX_PAYLOAD_BYTES:
            raise InputError(
                f"ping packet size must be {_MIN_TIMED_PAYLOAD_BYTES}..{_MAX_PAYLOAD_BYTES} "
                f"bytes, not {packet_size}"
            )
        argv += ["-s", str(packet_size)]
    return [*argv, address]


def parse_ping(text: str) -> PingReport:
    """Read one ping run's stdout (any flavour). Raises ParseError when it has no statistics."""
    lines = [_TIMESTAMP.sub("", line.strip()) for line in text.splitlines()]
    stats_at, stats = next(
        ((i, m) for i, line in enumerate(lines) if (m := _STATS.match(line))), (0, None)
    )
    if stats is None:
        raise ParseError("no 'packets transmitted' statistics line")
    sent, received = int(stats["sent"]), int(stats["received"])
    if received > sent:
        raise ParseError(f"{received} received out of {sent} transmitted")
    dups = _DUPS.search(stats["rest"])
    summary = _summary(lines[stats_at + 1 :])
    flavor = _flavor(text, iputils=stats["pkts"] is None, summary=summary)
    base = 1 if flavor.startswith("iputils") else 0

    first_rtt: dict[int, float] = {}
    errors: list[str] = []
    destination = ""
    for number, line in enumerate(lines[:stats_at], start=1):
        if reply := _REPLY.search(line):
            seq = int(reply["seq"]) % _SEQ_MODULO
            if reply["time"] is None:
                errors.append(f"line {number}: reply without a time: {line}")
            elif "BAD CHECKSUM" not in reply["tail"]:
                first_rtt.setdefault(seq, float(reply["time"]))  # later ones are duplicates
        elif header := _BSD6_HEADER.match(line) or _HEADER.match(line):
            destination = header["addr"] or destination
        elif error := _ICMP_ERROR.match(line) or _BSD_ERROR.match(line):
            errors.append(f"line {number}: {error['msg']}")
        elif not _IGNORED.match(line):
            errors.append(f"line {number}: unrecognised: {line}")
    title = next((m for line in lines if (m := _TITLE.match(line))), None)
    if title is not None and title["dest"].strip():
        destination = title["dest"].strip()

    probes = tuple(
        PingProbe(seq=base + i, rtt_ms=first_rtt.pop((base + i) % _SEQ_MODULO, None))
        for i in range(sent)
    )
    errors += [f"reply to icmp_seq={seq}, which was never sent" for seq in sorted(first_rtt)]
    return PingReport(
        flavor=flavor,
        destination=destination,
        sent=sent,
        received=received,
        duplicates=int(dups[1]) if dups else 0,
        probes=probes,
        summary=summary,
        errors=tuple(errors),
    )


def icmp_denied(stderr: str) -> str | None:
    """The line in which ping or fping says this account may not open an ICMP socket, or None.

    Such a source has no RTT cells at all, whatever its peers do: root, a setuid or
    ``cap_net_raw`` binary, or ``net.ipv4.ping_group_range`` covering one of its groups fixes it.
    """
    return next((s.strip() for s in stderr.splitlines() if _ICMP_DENIED.search(s)), None)


def denied_reason(tool: str, line: str) -> str:
    """A cell's reason when ``tool`` was refused its ICMP socket (``line``: what it said)."""
    return (
        f"{tool} may not send ICMP as this account ({line}): it needs root, a setuid or "
        "cap_net_raw binary, or net.ipv4.ping_group_range covering one of its groups"
    )


def ping_tool_flavor(version: str | None) -> Flavor | None:
    """Which ping a host has, from the first line of ``ping -V`` (preflight): "busybox"
    ("BusyBox v1.35.0 …" after busybox's complaint about ``-V``), "iputils-old" (snapshots
    s20100418 and s20101006: "ping utility, iputils-sss20101006"), "iputils", or None (another
    ping, or none). Their argv is the same (busybox accepts ``-n``); their output differs."""
    if version is None:
        return None
    if "BusyBox" in version:
        return "busybox"
    if m := _IPUTILS_VERSION.search(version):
        date = m["date"] or ""
        date = f"20{date}" if len(date) == 6 else date  # "iputils-ss100418" style: yymmdd
        return "iputils-old" if "20100418" <= date < "20121221" else "iputils"
    return None


def ping_outcome(result: CommandResult) -> PingReport | tuple[CellStatus, str]:
    """What a finished ping command means: a report (exit 0, or 1 = some or all lost) or why not."""
    stderr_line = next((s.strip() for s in result.stderr.splitlines() if s.strip()), "")
    if result.exit_status is None:
        return CellStatus.TIMEOUT, f"ping did not finish within {result.elapsed_s:.1f} s"
    if result.exit_status == 127 or _NOT_FOUND.search(result.stderr):
        return CellStatus.TOOL_MISSING, stderr_line or "ping not found"
    if (denied := icmp_denied(result.stderr)) is not None:  # busybox exits 1, iputils 2
        return CellStatus.ERROR, denied_reason("ping", denied)
    if result.exit_status not in (0, 1):
        reason = stderr_line or f"ping exited with status {result.exit_status}"
        return CellStatus.ERROR, reason
    try:
        report = parse_ping(result.stdout)
    except ParseError as exc:
        detail = f" ({stderr_line})" if stderr_line else ""
        return CellStatus.ERROR, f"unparseable ping output: {exc}{detail}"
    if report.sent == 0:
        return CellStatus.ERROR, stderr_line or "ping sent no probe"
    return report


def _summary(lines: list[str]) -> PingSummary | None:
    for line in lines:
        if m := _SUMMARY.match(line):
            low, avg, high = float(m["min"]), float(m["avg"]), float(m["max"])
            if not low <= avg <= high:
                raise ParseError(f"rtt summary is not min ≤ avg ≤ max: {line!r}")
            mdev = float(m["mdev"]) if m["mdev"] is not None else None
            return PingSummary(rtt_min_ms=low, rtt_avg_ms=avg, rtt_max_ms=high, rtt_mdev_ms=mdev)
    return None


def _flavor(text: str, *, iputils: bool, summary: PingSummary | None) -> Flavor:
    """iputils says "N received"; busybox and BSD say "N packets received" and differ after."""
    if iputils:
        return "iputils-old" if _OLD_IPUTILS_REPLY.search(text) else "iputils"
    if summary is not None and summary.rtt_mdev_ms is not None:
        return "bsd"  # busybox has no fourth (stddev) value
    if "PING6(" in text or "Request timeout" in text or "icmp_seq=" in text:
        return "bsd"
    if " seq=" in text or "round-trip min/avg/max =" in text:
        return "busybox"
    loss = _LOSS.search(text)  # BSD prints "0.0%", busybox "0%"
    return "bsd" if loss is not None and "." in loss[1] else "busybox"


# --- one source, many targets, one SSH channel -------------------------------------------------

#: The most pings the fan-out script runs at once. Starting hundreds together cost a source GiBs
#: of RSS, and at ≥ 500 targets some pings lost their *first* probe on a loopback that loses
#: nothing. In batches of this size the fan-out takes ⌈targets / 32⌉ trains
#: (``ping_fanout_seconds``); fping (``probe.tools.fping``) takes one.
PING_FANOUT_MAX = 32

#: Runs one ping per target on the source host, at most ``$4`` at a time, and prints each
#: output framed, so a host with N targets needs one SSH session, not N (sshd MaxSessions is 10).
#: Its ping flags are those of ``ping_argv`` (a test holds the two together). The pings start in
#: batches, each batch waited for before the next starts: POSIX sh has no ``wait -n`` (dash,
#: busybox ash), and the pings of a batch take the same train time. The temp directory and every
#: ping die with the script: the EXIT trap kills the pings not yet waited for (by PID: dash's
#: ``$(jobs -p)`` is empty inside a trap), and the remote ``timeout`` TERMs the script.
FANOUT_SCRIPT = r"""
d=$(mktemp -d "${TMPDIR:-/tmp}/probe-ping.XXXXXX") || exit 125
pids=""
trap 'k=0; for p in $pids; do k=$((k+1)); [ -e "$d/$k.rc" ] || kill "$p" 2>/dev/null; done
rm -rf "$d"' EXIT
trap 'exit 143' HUP INT TERM
c=$1; i=$2; w=$3; m=$4; shift 4
batch=""; first=1
reap() {
  r=$first
  for p in $batch; do
    wait "$p"
    echo $? >"$d/$r.rc"
    r=$((r+1))
  done
  batch=""; first=$r
}
k=0
for a in "$@"; do
  k=$((k+1))
  ping -n -c "$c" -i "$i" -W "$w" "$a" >"$d/$k.out" 2>"$d/$k.err" &
  pids="$pids $!"; batch="$batch $!"
  [ $((k - first + 1)) -lt "$m" ] || reap
done
reap
k=0
for a in "$@"; do
  k=$((k+1))
  printf '@@probe-ping %s %s\n' "$k" "$(cat "$d/$k.rc" 2>/dev/null || echo none)"
  cat "$d/$k.out"
  printf '@@probe-ping-stderr %s\n' "$k"
  cat "$d/$k.err"
done
"""
_FRAME = re.compile(r"^@@probe-ping (\d+) (\d+|none)$")
_FRAME_ERR = re.compile(r"^@@probe-ping-stderr (\d+)$")


def ping_fanout_argv(
    addresses: Sequence[str],
    *,
    count: int,
    interval_s: float,
    reply_timeout_s: int = 2,
    max_concurrent: int = PING_FANOUT_MAX,
) -> list[str]:
    """argv of the fan-out script: ping every address from one host, ``max_concurrent`` at once."""
    for address in addresses:
        ping_argv(address, count=count, interval_s=interval_s, reply_timeout_s=reply_timeout_s)
    if max_concurrent < 1:
        raise InputError(f"the fan-out needs at least one ping at a time, not {max_concurrent}")
    return ["sh", "-c", FANOUT_SCRIPT, "sh", str(count), f"{interval_s:g}", str(reply_timeout_s),
            str(max_concurrent), *addresses]  # fmt: skip


def fanout_target_argv(fanout_argv: Sequence[str], address: str) -> tuple[str, ...]:
    """The ping the fan-out script runs for ``address``: its line ``ping -n -c "$c" -i "$i" -W
    "$w" "$a"`` with the script's own arguments (those of ``ping_fanout_argv``)."""
    count, interval, reply_timeout = fanout_argv[4:7]
    return ("ping", "-n", "-c", count, "-i", interval, "-W", reply_timeout, address)


_FANOUT_TARGETS = 8  # sh -c SCRIPT sh COUNT INTERVAL TIMEOUT MAX_CONCURRENT, then the addresses


def ping_fanout_seconds(
    count: int,
    interval_s: float,
    reply_timeout_s: int = 2,
    *,
    targets: int = 1,
    max_concurrent: int = PING_FANOUT_MAX,
) -> float:
    """Upper bound of the fan-out's wall time: per batch of ``max_concurrent`` pings the train,
    the final linger and half a second to start the batch; one second more for the script."""
    batches = max(1, math.ceil(targets / max_concurrent))
    return batches * (count * interval_s + reply_timeout_s + 0.5) + 1.0


def split_fanout(fanout_argv: Sequence[str], result: CommandResult) -> dict[str, CommandResult]:
    """One CommandResult per target address out of the framed output of ``fanout_argv``, each
    with the argv of the ping that ran for it.

    An address whose frame is missing (the script was killed) gets ``exit_status=None`` and the
    script's own stderr, which ``ping_outcome`` turns into a timeout.
    """
    out: dict[int, list[str]] = {}
    err: dict[int, list[str]] = {}
    rcs: dict[int, int | None] = {}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if m := _FRAME.match(line):
            k = int(m.group(1))
            rcs[k] = None if m.group(2) == "none" else int(m.group(2))
            current = out.setdefault(k, [])
        elif m := _FRAME_ERR.match(line):
            current = err.setdefault(int(m.group(1)), [])
        elif current is not None:
            current.append(line)
    results = {}
    for k, address in enumerate(fanout_argv[_FANOUT_TARGETS:], 1):
        argv = fanout_target_argv(fanout_argv, address)
        if k in rcs:
            results[address] = CommandResult(
                argv=argv,
                exit_status=rcs[k],
                stdout="\n".join(out.get(k, [])) + "\n",
                stderr="\n".join(err.get(k, [])),
                elapsed_s=result.elapsed_s,
            )
        else:
            results[address] = CommandResult(
                argv=argv, exit_status=None if result.exit_status != 127 else 127,
                stdout="", stderr=result.stderr, elapsed_s=result.elapsed_s,
            )  # fmt: skip
    return results
