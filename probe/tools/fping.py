"""fping: argv builder, parser of its ``-C`` output, and the meaning of its exit status.

One fping per source host pings every target at once, where the ping path needs one ping per
target: with thousands of hosts that is one process and one SSH channel instead of thousands.

Facts the code leans on (fping ``src/fping.c`` 3.x–5.5, its man page and changelog):
- ``-C N -q`` prints nothing until the end, then one line per target on **stderr**:
  ``"%-*s :"`` (the name as given, padded to the longest) and, per probe sent, ``" "`` plus the
  RTT in ms or ``"-"`` (lost). Entry ``i`` is probe ``[i]``, so seqs are 0-based. A probe whose
  reply came later than ``-t`` is lost (fping ≥ 4.0 discards it). Interrupted by SIGINT, fping
  prints only the probes finished so far; killed by any other signal, nothing at all.
- RTTs have 3 significant digits since 5.0 ("0.534", "49.8", "103"); earlier versions print
  two decimals ("10.65").
- With ``-q`` fping says nothing about a target it cannot resolve (exit 2, no line), nor about ICMP
  errors; up to 5.4 it still reports duplicate replies on stderr
  (``"HOST : duplicate for [SEQ], N bytes, T ms"``). The parser reads the ``-q``-less lines too
  (unresolvable names, ICMP errors, per-probe lines of a merged stdout).
- Exit status: 0 all targets replied, 1 some did not (or a usage error), 2 a name was not found,
  3 invalid arguments, 4 a system call failed. Fatal messages print under ``-q`` only since 5.2.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from probe.errors import InputError
from probe.model import CellStatus, CommandResult
from probe.tools.ping import PingProbe, PingReport, denied_reason, icmp_denied, validate_address

#: ``-i`` floor: fping < 4.0 and builds configured ``--enable-safe-limits`` refuse ``-i`` < 1 ms
#: from non-root users ("these options are too risky for mere mortals"), and fping < 4.2 reads
#: whole milliseconds only; every value used here is a whole millisecond. It also keeps fping
#: under its 65,535 sequence numbers per 10 s (more: "not enough sequence numbers", exit 4).
MIN_GAP_MS = 1
#: ``-i`` ceiling: fping ≥ 4.0's own default. A wider gap spreads nothing useful.
MAX_GAP_MS = 10
#: ``-p`` floor, for the same users and versions as ``MIN_GAP_MS``.
MIN_PERIOD_MS = 10

_A = re.ASCII  # \d must not accept other scripts' digits
_NUM = r"\d{1,9}(?:\.\d{1,6})?(?:e[+-]?\d{2})?"  # "%.3e" past 10⁶ ms; bounded: float() is finite
_VCOUNT = re.compile(rf"^(?P<target>\S+) +:(?P<rtts>(?: (?:-|{_NUM}))*)$", _A)
_DUPLICATE = re.compile(
    rf"^(?P<target>\S+) +: duplicate for \[\d{{1,9}}\], \d{{1,9}} bytes, {_NUM} ms"
    r"(?: \[<- \S+\])?$",
    _A,
)
_ICMP_ERROR = re.compile(r"^.+ from \S+ for ICMP Echo sent to (?P<target>\S+)$", _A)
_PER_PROBE = re.compile(r"^(?:\[\d+\.\d+\] )?\S+ +: \[\d{1,9}\], ", _A)  # stdout without -q
_PROGRAM = re.compile(r"^(?:(?:\S*/)?fping6?|Usage): ", _A)  # fping on itself, not a target
_TARGET_MESSAGE = re.compile(r"^(?P<target>\S+): (?P<msg>.+)$", _A)  # "x: Name or service …"
_NOT_FOUND = re.compile(r"command not found|\bfping: not found")
_EXIT_MEANING = {3: "invalid arguments", 4: "a system call failed, e.g. no ICMP socket"}


@dataclass(frozen=True, slots=True)
class FpingRun:
    """What one ``fping -C`` run said on stderr.

    ``reports`` has one ``PingReport`` (flavor "fping", no summary line) per target fping printed
    a result line for, keyed by the target as given on the command line. ``target_errors`` holds
    what fping said about targets without a result line; ``errors`` its messages about itself and
    lines this parser did not recognise. Every message is ``"line N: text"``.
    """

    reports: Mapping[str, PingReport]
    target_errors: Mapping[str, tuple[str, ...]]
    errors: tuple[str, ...]


def fping_gap_ms(targets: int, period_ms: int) -> int:
    """``-i`` for ``targets`` targets probed every ``period_ms``.

    fping leaves at least ``-i`` between any two packets it sends, so a round of ``targets``
    probes takes ``targets × -i``; above ``period_ms`` every target's probes drift apart (the
    default 10 ms stretches a 200 ms period 25× for 500 targets). So ``-i`` is the period shared
    out among the targets, between ``MIN_GAP_MS`` and ``MAX_GAP_MS``: past ``period_ms`` targets
    the period stretches to ``targets`` ms (``fping_seconds`` counts it).
    """
    if targets < 1:
        raise InputError("fping needs at least one target")
    return max(MIN_GAP_MS, min(MAX_GAP_MS, period_ms // targets))


def fping_argv(
    addresses: Sequence[str],
    *,
    count: int,
    interval_s: float,
    reply_timeout_s: float = 2.0,
    gap_ms: int | None = None,
) -> list[str]:
    """``fping -C COUNT -p PERIOD_MS -i GAP_MS -q -t TIMEOUT_MS ADDRESS...``.

    ``interval_s`` is the time between two probes to one target (ping's ``-i``, fping's ``-p``),
    in whole milliseconds ≥ ``MIN_PERIOD_MS``. ``gap_ms`` (fping's ``-i``) defaults to
    ``fping_gap_ms``. ``reply_timeout_s`` becomes ``-t``: a later reply counts as lost, so it is
    the ping path's linger (2 s) rather than fping's default (the period, too short on a WAN).
    Names are printed as given, never reverse-resolved, so results map back to ``addresses``.
    """
    period_ms, timeout_ms = _train_ms(count, interval_s, reply_timeout_s)
    for address in addresses:
        validate_address(address)
    if len(set(addresses)) != len(addresses):
        raise InputError("fping would print one result line per copy of a repeated target")
    gap = fping_gap_ms(len(addresses), period_ms) if gap_ms is None else gap_ms
    if gap < MIN_GAP_MS:
        raise InputError(f"fping gap (-i) must be ≥ {MIN_GAP_MS} ms, not {gap}")
    return ["fping", "-C", str(count), "-p", str(period_ms), "-i", str(gap), "-q",
            "-t", str(timeout_ms), *addresses]  # fmt: skip


def fping_refuses(*, count: int, interval_s: float, reply_timeout_s: float) -> str | None:
    """Why fping cannot send this train (its ``-p`` and ``-t`` are whole milliseconds, ``-p`` ≥
    ``MIN_PERIOD_MS``), or None: where it cannot, the ping path can (``--pinger auto``)."""
    try:
        _train_ms(count, interval_s, reply_timeout_s)
    except InputError as exc:
        return str(exc)
    return None


def _train_ms(count: int, interval_s: float, reply_timeout_s: float) -> tuple[int, int]:
    """``-p`` and ``-t`` in milliseconds, checked with ``count``."""
    period_ms = _whole_ms(interval_s, "interval", MIN_PERIOD_MS)
    timeout_ms = _whole_ms(reply_timeout_s, "reply timeout", 1)
    if count < 1:
        raise InputError(f"fping count must be ≥ 1, not {count}")
    return period_ms, timeout_ms


def fping_seconds(
    targets: int,
    *,
    count: int,
    interval_s: float,
    reply_timeout_s: float = 2.0,
    gap_ms: int | None = None,
) -> float:
    """Upper bound of one ``fping_argv`` run's wall time: the (stretched) train plus ``-t``."""
    period_ms = _whole_ms(interval_s, "interval", MIN_PERIOD_MS)
    gap = fping_gap_ms(targets, period_ms) if gap_ms is None else gap_ms
    round_ms = max(period_ms, targets * gap)
    return (count * round_ms + _whole_ms(reply_timeout_s, "reply timeout", 1)) / 1000.0 + 1.0


def _whole_ms(seconds: float, what: str, minimum_ms: int) -> int:
    """``seconds`` as whole milliseconds ≥ ``minimum_ms`` (0.07 s is 70.00000000000001 ms)."""
    ms = seconds * 1000.0 if math.isfinite(seconds) else math.nan
    if not ms >= minimum_ms - 1e-6 or abs(ms - round(ms)) > 1e-6:
        raise InputError(
            f"fping {what} must be whole milliseconds ≥ {minimum_ms} ms, not {seconds} s"
        )
    return round(ms)


def parse_fping(stderr: str) -> FpingRun:
    """Read the stderr of ``fping -C N -q`` (any version). Never raises: see ``FpingRun``."""
    results: dict[str, list[float | None]] = {}
    duplicates: dict[str, int] = defaultdict(int)
    said: dict[str, list[str]] = defaultdict(list)  # per target, in order
    errors: list[str] = []
    for number, line in enumerate(stderr.splitlines(), start=1):
        line = line.rstrip()
        if m := _VCOUNT.match(line):
            rtts = [None if v == "-" else float(v) for v in m["rtts"].split()]
            if m["target"] in results:
                said[m["target"]].append(f"line {number}: second result line, ignored: {line}")
            else:
                results[m["target"]] = rtts
        elif m := _DUPLICATE.match(line):
            duplicates[m["target"]] += 1
        elif m := _ICMP_ERROR.match(line):
            said[m["target"]].append(f"line {number}: {line}")
        elif not line or _PER_PROBE.match(line):
            continue
        elif _PROGRAM.match(line):
            errors.append(f"line {number}: {line}")
        elif m := _TARGET_MESSAGE.match(line):
            said[m["target"]].append(f"line {number}: {m['msg']}")
        else:
            errors.append(f"line {number}: unrecognised: {line}")
    for target, count in duplicates.items():
        if target not in results:
            said[target].append(f"duplicate replies ({count}) but no result line")
    reports = {
        target: PingReport(
            flavor="fping",
            destination=target,
            sent=len(rtts),
            received=sum(rtt is not None for rtt in rtts),
            duplicates=duplicates.get(target, 0),
            probes=tuple(PingProbe(seq, rtt) for seq, rtt in enumerate(rtts)),
            summary=None,
            errors=tuple(said.pop(target, ())),
        )
        for target, rtts in results.items()
    }
    return FpingRun(reports, {t: tuple(lines) for t, lines in said.items()}, tuple(errors))


def fping_outcome(
    result: CommandResult, addresses: Sequence[str]
) -> dict[str, PingReport | tuple[CellStatus, str]]:
    """What a finished ``fping_argv`` command means for each of its targets.

    A target gets its report (exit 0, 1 = some lost or all, 2 = another target unresolvable), or
    the cell status and reason why there is none.
    """
    stderr_line = next((s.strip() for s in result.stderr.splitlines() if s.strip()), "")
    if result.exit_status is None:
        return _all(addresses, CellStatus.TIMEOUT,
                    f"fping did not finish within {result.elapsed_s:.1f} s")  # fmt: skip
    if result.exit_status == 127 or _NOT_FOUND.search(result.stderr):
        return _all(addresses, CellStatus.TOOL_MISSING, stderr_line or "fping not found")
    if (denied := icmp_denied(result.stderr)) is not None:  # says so under -q only since 5.2
        return _all(addresses, CellStatus.ERROR, denied_reason("fping", denied))
    if result.exit_status not in (0, 1, 2):
        meaning = _EXIT_MEANING.get(result.exit_status)
        reason = f"fping exited with status {result.exit_status}" + (
            f" ({meaning})" if meaning else ""
        )
        return _all(addresses, CellStatus.ERROR, stderr_line or reason)
    run = parse_fping(result.stderr)
    outcome: dict[str, PingReport | tuple[CellStatus, str]] = {}
    for address in addresses:
        report = run.reports.get(address)
        if report is None:
            outcome[address] = CellStatus.ERROR, _why_no_result(address, run, result.exit_status)
        elif report.sent == 0:
            outcome[address] = CellStatus.ERROR, "fping sent no probe"
        else:
            outcome[address] = report
    return outcome


def _all(
    addresses: Sequence[str], status: CellStatus, reason: str
) -> dict[str, PingReport | tuple[CellStatus, str]]:
    return dict.fromkeys(addresses, (status, reason))


def _why_no_result(address: str, run: FpingRun, exit_status: int) -> str:
    if said := run.target_errors.get(address):
        return f"no fping result ({said[0]})"
    if exit_status == 2:
        return "no fping result: fping found no address for it (exit status 2)"
    if run.errors:
        return f"no fping result ({run.errors[0]})"
    return "no fping result for this target"
