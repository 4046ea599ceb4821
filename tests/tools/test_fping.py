"""fping argv, parser and exit-status meaning, tested on real captures (tests/fixtures/fping)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import InputError
from probe.model import CellStatus, CommandResult
from probe.stats import report_stats
from probe.tools.fping import (
    FpingRun,
    fping_argv,
    fping_gap_ms,
    fping_outcome,
    fping_refuses,
    fping_seconds,
    parse_fping,
)
from probe.tools.ping import PingProbe, PingReport, parse_ping
from tests.tools.test_ping import iputils_output

FIXTURES = Path(__file__).parent.parent / "fixtures" / "fping"
UPSTREAM = sorted((FIXTURES / "upstream").glob("*.txt"))
LOCAL = sorted((FIXTURES / "local").glob("*.json"))

SMOKEPING = ["bahnhof.cloud", "8.8.4.4", "cixp.web.cern.ch", "192.168.31.1", "youtube.com",
             "1.1.1.1", "9.9.9.9"]  # fmt: skip
ISSUE_325 = ["osuosl.org", "9.9.9.9", "4.2.2.1", "1.0.0.1", "cixp.web.cern.ch", "www.indiana.edu",
             "1.1.1.1"]  # fmt: skip

# upstream file → ({target: (sent, received)} in fping's order, run-level errors)
EXPECTED_UPSTREAM: dict[str, tuple[dict[str, tuple[int, int]], int]] = {
    # -C: what probe runs
    "fping4.1_C3_vcount_summary.issue184.stderr.txt": ({"192.168.2.1": (3, 3)}, 0),
    "fping_C3_A_q.issue128.stderr.txt": ({"8.8.8.8": (3, 3)}, 0),
    "fping_C5_q_with_loss_manpage.stderr.txt": ({"somehost": (5, 4)}, 0),
    "fping_C10_q_smokeping_lines.smokeping-issue423.partial.stderr.txt": (
        dict.fromkeys(SMOKEPING, (10, 10)),
        0,
    ),
    "fping_C20_q_multi_host_padded.issue325.partial.stderr.txt": (
        dict.fromkeys(ISSUE_325, (20, 20)),
        0,
    ),
    # per-probe lines (stdout without -q): known, and nothing to read
    "fping4.1_C3_per_ping_84bytes.issue184.stdout.txt": ({}, 0),
    "fping_loop_mode_anonymised.smokeping-issue109.stdout.txt": ({}, 0),
    # -c / -Q summaries: never taken for -C results (one error per summary or time line)
    "fping3.1rc1_c1_q_zero_sent_bug.issue15.stderr.txt": ({}, 1),
    "fping5.0_c2_alive_and_timeout.issue212.txt": ({}, 2),
    "fping5.1_c1_q_padded_names.issue274.stderr.txt": ({}, 2),
    "fping5.1_c3_q_two_hosts_summary.issue295.stderr.txt": ({}, 2),
    "fping5.1_c3_two_hosts_one_dead.issue295.txt": ({}, 2),
    "fping5_D_c2_one_alive_one_timeout.stdout+stderr.txt": ({}, 2),
    "fping_Q1_interval_summaries.issue243.stderr.txt": ({}, 5),
    "fping_c8_q_netem_delay_loss.issue120.stderr.txt": ({}, 6),
}

# local capture → what fping_outcome gives each target: (sent, received) or (status, reason part)
Outcome = tuple[int, int] | tuple[CellStatus, str]
EXPECTED_LOCAL: dict[str, dict[str, Outcome]] = {
    "fping5.1__C5_p100_two_targets.json": {"127.0.0.1": (5, 5), "127.0.0.2": (5, 5)},
    "fping5.1__probe_argv_three_targets.json": {f"127.0.0.{i}": (10, 10) for i in (1, 2, 3)},
    "fping5.1__probe_argv_254_targets_stretched.json": {
        f"127.0.0.{i}": (5, 5) for i in range(1, 255)
    },
    "fping5.1__padded_names_ipv4_ipv6.json": dict.fromkeys(
        ["localhost", "127.0.0.1", "127.0.0.100", "::1"], (3, 3)
    ),
    "fping5.1__all_lost_t0.001.json": {"127.0.0.1": (4, 0), "127.0.0.2": (4, 0)},
    "fping5.1__some_lost_t0.03.json": {"127.0.0.1": (8, 2), "127.0.0.2": (8, 8)},
    "fping5.1__unresolvable_6_q.json": {
        "::1": (3, 3),
        "127.0.0.1": (CellStatus.ERROR, "fping found no address for it (exit status 2)"),
    },
    "fping5.1__unresolvable_6_not_quiet.json": {
        "::1": (3, 3),
        "127.0.0.1": (CellStatus.ERROR, "line 1: Address family for hostname not supported"),
    },
    "fping5.1__sigint_after_0.35s.json": {"127.0.0.1": (4, 4), "127.0.0.2": (4, 4)},
    "fping5.1__repeated_target.json": {"127.0.0.1": (2, 2)},
    "fping5.1__usage_error_negative_period.json": {
        "127.0.0.1": (CellStatus.ERROR, "(line 1: Usage: fping [options] [targets...])")
    },
}


def load(name: str) -> dict[str, object]:
    record: dict[str, object] = json.loads((FIXTURES / "local" / name).read_text())
    return record


def targets_of(argv: list[str]) -> list[str]:
    """The trailing targets of a captured argv (every option before them takes one value)."""
    rest, targets = argv[1:], []
    while rest:
        word, *rest = rest
        if word in ("-C", "-p", "-i", "-t"):
            rest = rest[1:]
        elif not word.startswith("-"):
            targets.append(word)
    return targets


def as_result(record: dict[str, object]) -> CommandResult:
    argv, status = record["argv"], record["exit_status"]
    stdout, stderr = record["stdout"], record["stderr"]
    assert isinstance(argv, list) and isinstance(status, int)
    assert isinstance(stdout, str) and isinstance(stderr, str)
    return CommandResult(tuple(argv), status, stdout, stderr, elapsed_s=1.0)


def test_every_capture_is_listed() -> None:
    assert sorted(p.name for p in UPSTREAM) == sorted(EXPECTED_UPSTREAM)
    assert sorted(p.name for p in LOCAL) == sorted(EXPECTED_LOCAL)


def check_report(report: PingReport, target: str) -> None:
    assert (report.flavor, report.destination, report.summary) == ("fping", target, None)
    assert [p.seq for p in report.probes] == list(range(report.sent))  # fping's [0], [1], …
    assert report.received == sum(p.rtt_ms is not None for p in report.probes)


@pytest.mark.parametrize("path", UPSTREAM, ids=lambda p: p.name)
def test_upstream_captures(path: Path) -> None:
    counts, errors = EXPECTED_UPSTREAM[path.name]
    run = parse_fping(path.read_text())
    assert {t: (r.sent, r.received) for t, r in run.reports.items()} == counts
    assert list(run.reports) == list(counts)  # fping's order
    assert len(run.errors) == errors and not run.target_errors
    for target, report in run.reports.items():
        check_report(report, target)


@pytest.mark.parametrize("name", sorted(EXPECTED_LOCAL))
def test_local_captures(name: str) -> None:
    record = load(name)
    result = as_result(record)
    outcome = fping_outcome(result, targets_of(list(result.argv)))
    got: dict[str, Outcome] = {}
    for target, value in outcome.items():
        if isinstance(value, PingReport):
            check_report(value, target)
            got[target] = (value.sent, value.received)
        else:
            got[target] = value
    expected = EXPECTED_LOCAL[name]
    assert got.keys() == expected.keys()
    for target, want in expected.items():
        if isinstance(want[0], CellStatus):
            status, reason = got[target]
            assert status == want[0] and isinstance(reason, str) and str(want[1]) in reason
        else:
            assert got[target] == want


def test_lost_probes_keep_their_place() -> None:
    manpage = (FIXTURES / "upstream" / "fping_C5_q_with_loss_manpage.stderr.txt").read_text()
    report = parse_fping(manpage).reports["somehost"]
    assert report.probes == (
        PingProbe(0, 91.7), PingProbe(1, 37.0), PingProbe(2, 29.2), PingProbe(3, None),
        PingProbe(4, 36.8),
    )  # fmt: skip
    record = load("fping5.1__some_lost_t0.03.json")
    stderr = record["stderr"]
    assert isinstance(stderr, str)
    got = parse_fping(stderr).reports["127.0.0.1"]
    assert [p.rtt_ms for p in got.probes] == [0.017, None, None, None, None, 0.027, None, None]


def test_both_number_formats_and_padded_names() -> None:
    old = (FIXTURES / "upstream" / "fping_C3_A_q.issue128.stderr.txt").read_text()
    assert [p.rtt_ms for p in parse_fping(old).reports["8.8.8.8"].probes] == [10.65, 10.64, 10.65]
    new = (FIXTURES / "upstream" / "fping_C10_q_smokeping_lines.smokeping-issue423.partial"
           ".stderr.txt").read_text()  # fmt: skip
    run = parse_fping(new)
    assert [p.rtt_ms for p in run.reports["cixp.web.cern.ch"].probes][:3] == [49.8, 103.0, 74.8]
    assert run.reports["192.168.31.1"].probes[0].rtt_ms == 0.534


def test_repeated_target_keeps_the_first_line_and_says_so() -> None:
    stderr = load("fping5.1__repeated_target.json")["stderr"]
    assert isinstance(stderr, str)
    report = parse_fping(stderr).reports["127.0.0.1"]
    assert report.errors == (f"line 2: second result line, ignored: {stderr.splitlines()[1]}",)


def test_interrupted_run_reports_the_probes_it_finished() -> None:
    record = load("fping5.1__sigint_after_0.35s.json")
    argv = record["argv"]
    assert isinstance(argv, list)
    assert argv[:3] == ["fping", "-C", "10"]
    stderr = record["stderr"]
    assert isinstance(stderr, str)
    assert all(r.sent == 4 for r in parse_fping(stderr).reports.values())


# --- lines fping prints only in some versions or without -q (from fping.c's formats) ----------

LINES_AROUND_RESULTS = """\
10.0.0.9: Name or service not known
ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to 10.0.0.5
10.0.0.2 : duplicate for [1], 64 bytes, 0.051 ms
10.0.0.2 : duplicate for [1], 64 bytes, 0.062 ms [<- 10.0.0.3]
10.0.0.7 : duplicate for [0], 64 bytes, 0.051 ms
fping: timeout (-t) value larger than period (-p) produces unexpected results
10.0.0.2 : 0.045 0.049 0.043
10.0.0.5 : - - -
garbage after the results
"""


def test_duplicates_icmp_errors_unresolvable_and_garbage() -> None:
    run = parse_fping(LINES_AROUND_RESULTS)
    two, five = run.reports["10.0.0.2"], run.reports["10.0.0.5"]
    assert (two.sent, two.received, two.duplicates, two.errors) == (3, 3, 2, ())
    assert (five.sent, five.received, five.duplicates) == (3, 0, 0)
    assert five.errors == ("line 2: ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to "
                           "10.0.0.5",)  # fmt: skip
    assert run.target_errors == {
        "10.0.0.9": ("line 1: Name or service not known",),
        "10.0.0.7": ("duplicate replies (1) but no result line",),
    }
    assert run.errors == (
        "line 6: fping: timeout (-t) value larger than period (-p) produces unexpected results",
        "line 9: unrecognised: garbage after the results",
    )
    stats = report_stats(two)  # duplicates never count: the ping path's meaning
    assert (stats.sent, stats.received, stats.loss_pct, stats.rtt_max_ms) == (3, 3, 0.0, 0.049)


def test_trailing_garbage_on_a_result_line_is_not_a_result() -> None:
    run = parse_fping("10.0.0.2 : 0.045 0.049 x\n10.0.0.3 : 0.045 1e999\n10.0.0.4 :\n")
    assert list(run.reports) == ["10.0.0.4"] and run.reports["10.0.0.4"].sent == 0
    assert len(run.errors) == 2
    outcome = fping_outcome(CommandResult(("fping",), 1, "", "10.0.0.4 :\n", 0.1), ["10.0.0.4"])
    assert outcome == {"10.0.0.4": (CellStatus.ERROR, "fping sent no probe")}


# --- exit status ------------------------------------------------------------------------------


def result(exit_status: int | None, stderr: str = "") -> CommandResult:
    return CommandResult(("fping", "x"), exit_status, "", stderr, elapsed_s=12.0)


@pytest.mark.parametrize(
    ("res", "status", "reason"),
    [
        (result(None), CellStatus.TIMEOUT, "fping did not finish within 12.0 s"),
        (result(127, "bash: line 1: fping: command not found\n"), CellStatus.TOOL_MISSING,
         "bash: line 1: fping: command not found"),
        (result(127), CellStatus.TOOL_MISSING, "fping not found"),
        (result(1, "sh: 1: fping: not found\n"), CellStatus.TOOL_MISSING,
         "sh: 1: fping: not found"),
        (result(4), CellStatus.ERROR,
         "fping exited with status 4 (a system call failed, e.g. no ICMP socket)"),
        (result(4, "fping: can't create socket (must run as root?)\n"), CellStatus.ERROR,
         "fping may not send ICMP as this account (fping: can't create socket (must run as "
         "root?)): it needs root, a setuid or cap_net_raw binary, or net.ipv4.ping_group_range "
         "covering one of its groups"),
        (result(4, "fping error: not enough sequence numbers available! (expire_timeout=10, "
                   "host_nr=3, ping_count=9, seqmap_next_id=0)\n"), CellStatus.ERROR,
         "fping error: not enough sequence numbers available! (expire_timeout=10, host_nr=3, "
         "ping_count=9, seqmap_next_id=0)"),
        (result(3), CellStatus.ERROR, "fping exited with status 3 (invalid arguments)"),
        (result(139), CellStatus.ERROR, "fping exited with status 139"),
        (result(1, "fping: these options are too risky for mere mortals.\n"), CellStatus.ERROR,
         "no fping result (line 1: fping: these options are too risky for mere mortals.)"),
        (result(1), CellStatus.ERROR, "no fping result for this target"),
    ],
)  # fmt: skip
def test_other_outcomes(res: CommandResult, status: CellStatus, reason: str) -> None:
    assert fping_outcome(res, ["10.0.0.1", "10.0.0.2"]) == {
        "10.0.0.1": (status, reason),
        "10.0.0.2": (status, reason),
    }


# --- argv -------------------------------------------------------------------------------------


def test_fping_argv_reproduces_the_captured_runs() -> None:
    for name, count, interval_s in (
        ("fping5.1__probe_argv_three_targets.json", 10, 0.02),
        ("fping5.1__probe_argv_254_targets_stretched.json", 5, 0.1),
    ):
        argv = load(name)["argv"]
        assert isinstance(argv, list)
        assert fping_argv(targets_of(argv), count=count, interval_s=interval_s) == argv


def test_fping_argv() -> None:
    assert fping_argv(["10.0.0.2", "gpu-01.example.com"], count=20, interval_s=0.2) == [
        "fping", "-C", "20", "-p", "200", "-i", "10", "-q", "-t", "2000",
        "10.0.0.2", "gpu-01.example.com",
    ]  # fmt: skip
    argv = fping_argv(["fe80::1%eth0"], count=1, interval_s=0.07, reply_timeout_s=0.5, gap_ms=3)
    assert argv == ["fping", "-C", "1", "-p", "70", "-i", "3", "-q", "-t", "500", "fe80::1%eth0"]


@pytest.mark.parametrize(
    ("targets", "period_ms", "gap_ms"),
    [(1, 200, 10), (20, 200, 10), (21, 200, 9), (200, 200, 1), (500, 200, 1), (3, 20, 6)],
)
def test_gap_shares_the_period_between_targets(targets: int, period_ms: int, gap_ms: int) -> None:
    assert fping_gap_ms(targets, period_ms) == gap_ms
    assert targets * gap_ms <= period_ms or gap_ms == 1  # else the train stretches


def test_wall_time_counts_the_stretched_train() -> None:
    assert fping_seconds(20, count=20, interval_s=0.2) == 20 * 0.2 + 2.0 + 1.0
    assert fping_seconds(1000, count=20, interval_s=0.2) == 20 * 1.0 + 2.0 + 1.0  # -i 1: 1 s
    assert fping_seconds(2, count=5, interval_s=0.1, gap_ms=100) == 5 * 0.2 + 2.0 + 1.0


@pytest.mark.parametrize(
    ("addresses", "kwargs"),
    [
        (["10.0.0.1"], {"count": 0, "interval_s": 0.2}),
        (["10.0.0.1"], {"count": 1, "interval_s": 0.009}),  # -p < 10 ms: refused by some builds
        (["10.0.0.1"], {"count": 1, "interval_s": 0.0125}),  # whole ms only before fping 4.2
        (["10.0.0.1"], {"count": 1, "interval_s": math.nan}),
        (["10.0.0.1"], {"count": 1, "interval_s": 0.2, "reply_timeout_s": 0}),
        (["10.0.0.1"], {"count": 1, "interval_s": 0.2, "reply_timeout_s": math.inf}),
        (["10.0.0.1"], {"count": 1, "interval_s": 0.2, "gap_ms": 0}),
        ([], {"count": 1, "interval_s": 0.2}),
        (["10.0.0.1", "10.0.0.1"], {"count": 1, "interval_s": 0.2}),
        (["-q"], {"count": 1, "interval_s": 0.2}),
        (["a b"], {"count": 1, "interval_s": 0.2}),
        (["$(id)"], {"count": 1, "interval_s": 0.2}),
    ],
)
def test_fping_argv_refuses(addresses: list[str], kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        fping_argv(addresses, **kwargs)


def test_fping_refuses_says_which_trains_it_cannot_send() -> None:
    """What ``--pinger auto`` leaves to ping, and ``--pinger fping`` refuses up front."""
    assert fping_refuses(count=20, interval_s=0.2, reply_timeout_s=2) is None
    assert fping_refuses(count=5, interval_s=0.05, reply_timeout_s=2) is None
    assert "whole milliseconds ≥ 10 ms" in str(
        fping_refuses(count=20, interval_s=0.0025, reply_timeout_s=2)
    )
    assert "count must be ≥ 1" in str(fping_refuses(count=0, interval_s=0.2, reply_timeout_s=2))


# --- properties -------------------------------------------------------------------------------


def sprint_tm(ns: int) -> str:
    """fping ≥ 5.0's RTT format (``sprint_tm`` in fping.c): 3 significant digits."""
    t = ns / 1e6
    if t < 1.0:
        return f"{t:.3f}"
    if t < 10.0:
        return f"{t:.2f}"
    if t < 100.0:
        return f"{t:.1f}"
    if t < 1_000_000.0:
        return f"{t:.0f}"
    return f"{t:.3e}"


def fping_stderr(results: dict[str, list[int | None]]) -> str:
    """What ``fping -C N -q`` prints for these RTTs in ns (None = lost)."""
    width = max(len(t) for t in results)
    return "".join(
        f"{target:<{width}} :" + "".join(" -" if ns is None else f" {sprint_tm(ns)}" for ns in rtts)
        + "\n"
        for target, rtts in results.items()
    )  # fmt: skip


ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
label = st.text("abcxyz019", min_size=1, max_size=12)
hostname = st.lists(label, min_size=1, max_size=3).map(".".join)
rtt_ns = st.one_of(st.none(), st.integers(0, 3_000_000_000))
runs = st.dictionaries(
    st.one_of(ipv4, hostname), st.lists(rtt_ns, min_size=1, max_size=30), min_size=1, max_size=8
)


@settings(max_examples=150, deadline=None)
@given(runs)
def test_round_trip_of_generated_output(results: dict[str, list[int | None]]) -> None:
    stderr = fping_stderr(results)
    res = CommandResult(("fping",), 1, "", stderr, elapsed_s=1.0)
    outcome = fping_outcome(res, list(results))
    for target, rtts in results.items():
        report = outcome[target]
        assert isinstance(report, PingReport)
        check_report(report, target)
        assert [p.rtt_ms for p in report.probes] == [
            None if ns is None else float(sprint_tm(ns)) for ns in rtts
        ]
        assert (report.sent, report.duplicates, report.errors) == (len(rtts), 0, ())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 999)), min_size=1, max_size=40))
def test_statistics_mean_what_the_ping_path_means(trips_us: list[int | None]) -> None:
    """Below 1 ms fping and iputils print the same 3 decimals: the same pair, the same figures."""
    via_fping = report_stats(
        parse_fping(fping_stderr({"10.0.0.2": [None if t is None else t * 1000 for t in trips_us]}))
        .reports["10.0.0.2"]
    )  # fmt: skip
    via_ping = report_stats(parse_ping(iputils_output(trips_us)))
    exact = ("sent", "received", "loss_pct", "rtt_min_ms", "rtt_p50_ms", "rtt_p90_ms",
             "rtt_p99_ms", "rtt_max_ms", "ipdv_ms", "pdv_p99_ms")  # fmt: skip
    for field in exact:
        assert getattr(via_fping, field) == getattr(via_ping, field), field
    for field in ("rtt_mean_ms", "rtt_mdev_ms"):  # iputils' summary line truncates to 1 µs
        a, b = getattr(via_fping, field), getattr(via_ping, field)
        assert (a is None and b is None) or a == pytest.approx(b, abs=0.002), field


REAL_LINES = sorted(
    {line for path in UPSTREAM for line in path.read_text().splitlines()}
    | {line for p in LOCAL for line in str(json.loads(p.read_text())["stderr"]).splitlines()}
    | set(LINES_AROUND_RESULTS.splitlines())
)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.lists(st.one_of(st.sampled_from(REAL_LINES), st.text(max_size=40))).map("\n".join),
    ),
    st.integers(0, 4),
)
def test_arbitrary_text_never_raises(text: str, exit_status: int) -> None:
    run = parse_fping(text)  # never raises, not even ParseError: fping_outcome decides
    assert isinstance(run, FpingRun)
    for target, report in run.reports.items():
        check_report(report, target)
        assert all(p.rtt_ms is None or math.isfinite(p.rtt_ms) for p in report.probes)
    targets = [*run.reports, "10.0.0.1"]
    outcome = fping_outcome(CommandResult(("fping",), exit_status, "", text, 1.0), targets)
    assert list(outcome) == list(dict.fromkeys(targets))
