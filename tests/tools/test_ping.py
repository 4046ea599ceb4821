"""ping argv, parser and exit-status meaning, tested on real captures (tests/fixtures/ping)."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import InputError, ParseError
from probe.model import CellStatus, CommandResult
from probe.stats import percentile, report_stats
from probe.tools.ping import (
    PingProbe,
    PingReport,
    PingSummary,
    icmp_denied,
    parse_ping,
    ping_argv,
    ping_outcome,
    ping_tool_flavor,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ping"
CAPTURES = sorted(FIXTURES.rglob("*.out"))
JC_CAPTURES = sorted((FIXTURES / "jc").glob("*.out"))
OLD_IPUTILS_CAPTURES = sorted((FIXTURES / "openstack").glob("*.out"))
DENIED = FIXTURES / "local" / "denied"


def capture(name: str) -> str:
    return next(FIXTURES.rglob(f"{name}.out")).read_text()


def lost(report: PingReport) -> list[int]:
    return [p.seq for p in report.probes if p.rtt_ms is None]


def test_every_capture_is_here() -> None:
    assert len(JC_CAPTURES) == 72
    assert len(OLD_IPUTILS_CAPTURES) == 3
    assert len(CAPTURES) == 77


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_every_capture_parses_into_one_probe_per_seq(path: Path) -> None:
    report = parse_ping(path.read_text())
    os_name = path.stem.split("__")[0]
    expected = {
        "alpine-linux-3.13": "busybox",
        "freebsd12": "bsd",
        "osx-10.14.6": "bsd",
        "openstack-iputils-old": "iputils-old",
        "debian-busybox-1.35": "busybox",
    }
    assert report.flavor == expected.get(os_name, "iputils")
    first = 1 if report.flavor.startswith("iputils") else 0
    assert [p.seq for p in report.probes] == list(range(first, first + report.sent))
    replied = sum(p.rtt_ms is not None for p in report.probes)
    assert replied <= report.received <= report.sent
    if replied < report.received:  # ping counted a reply whose line we could not read
        assert any("unrecognised" in e for e in report.errors)
    assert report.destination


@pytest.mark.parametrize("path", JC_CAPTURES, ids=lambda p: p.stem)
def test_agrees_with_jc_where_jc_is_right(path: Path) -> None:
    """jc's stored parse is right on counts, summary and reply times (72/72, see the report)."""
    oracle = json.loads(path.with_suffix(".json").read_text())
    report = parse_ping(path.read_text())
    assert report.sent == oracle["packets_transmitted"]
    assert report.received == oracle["packets_received"]
    assert report.duplicates == oracle["duplicates"]
    summary = report.summary
    if "round_trip_ms_min" in oracle:
        assert summary == PingSummary(
            oracle["round_trip_ms_min"],
            oracle["round_trip_ms_avg"],
            oracle["round_trip_ms_max"],
            oracle["round_trip_ms_stddev"],
        )
    else:
        assert summary is None
    first_reply: dict[int, float] = {}
    for response in oracle["responses"]:
        if response["type"] == "reply" and not response["duplicate"]:
            first_reply.setdefault(response["icmp_seq"], response["time_ms"])
    assert {p.seq: p.rtt_ms for p in report.probes if p.rtt_ms is not None} == first_reply
    # jc lists the timeouts ping printed ("no answer yet", "Request timeout"): all lost to us
    timeouts = {r["icmp_seq"] for r in oracle["responses"] if r["type"] == "timeout"}
    assert timeouts - first_reply.keys() <= set(lost(report))


# --- the tricky captures, spelled out -------------------------------------------------------


def test_iputils_integer_times_above_100_ms_and_lost_seqs() -> None:
    report = parse_ping(capture("ubuntu-18.04__ping6-ip-O-D-p"))
    assert (report.sent, report.received, report.duplicates) == (20, 15, 0)
    assert lost(report) == [4, 11, 13, 14, 17]
    assert report.probes[18] == PingProbe(seq=19, rtt_ms=121.0)  # printed "time=121 ms"
    assert report.probes[19] == PingProbe(seq=20, rtt_ms=159.0)  # printed "time=159 ms"
    assert report.summary == PingSummary(21.405, 45.041, 159.380, 38.693)
    stats = report_stats(report)
    assert stats.loss_pct == 25.0  # 5 of 20
    assert stats.rtt_max_ms == 159.380  # the summary's exact max, not the printed 159
    assert stats.rtt_mdev_ms == 38.693


def test_iputils_dup_replies_are_not_probes_and_keep_the_summary_out() -> None:
    report = parse_ping(capture("centos-7.7__ping-ip-dup"))
    assert report.probes == (PingProbe(1, 0.586), PingProbe(2, 0.861))
    assert (report.sent, report.received, report.duplicates) == (2, 2, 19)
    assert report.summary == PingSummary(0.586, 504.260, 1276.448, 417.208)  # DUPs included
    stats = report_stats(report)
    # recomputed from the two first replies: mean (0.586 + 0.861) / 2 = 0.7235,
    # mdev = |0.861 − 0.586| / 2 = 0.1375, ipdv = 0.275
    assert stats.rtt_max_ms == 0.861
    assert stats.rtt_mean_ms == pytest.approx(0.7235)
    assert stats.rtt_mdev_ms == pytest.approx(0.1375)
    assert stats.ipdv_ms == pytest.approx(0.275)
    assert stats.loss_pct == 0.0


def test_macos_unmarked_duplicates_count_once_per_seq() -> None:
    report = parse_ping(capture("osx-10.14.6__ping-ip-dup"))
    assert report.probes == (PingProbe(0, 0.235), PingProbe(1, 0.291))
    assert report.duplicates == 13
    assert report_stats(report).rtt_max_ms == 0.291  # the summary's 1084.262 is a duplicate


def test_iputils_destination_unreachable() -> None:
    report = parse_ping(capture("ubuntu-22.04__ping-dest-unreachable"))
    assert (report.sent, report.received, report.summary) == (3, 0, None)
    assert lost(report) == [1, 2, 3]
    assert report.errors == tuple(
        f"line {n + 1}: icmp_seq={n} Destination Host Unreachable" for n in (1, 2, 3)
    )
    stats = report_stats(report)
    assert stats.loss_pct == 100.0
    assert stats.rtt_min_ms is None and stats.ipdv_ms is None and stats.pdv_p99_ms is None


def test_bsd_unreachable_and_request_timeouts() -> None:
    report = parse_ping(capture("osx-10.14.6__ping-ip-unreachable"))
    assert (report.flavor, report.sent, report.received, report.summary) == ("bsd", 8, 0, None)
    assert lost(report) == list(range(8))
    assert [e.split(": ", 1)[1] for e in report.errors] == ["Destination Host Unreachable"] * 6


def test_all_lost_without_rtt_line() -> None:
    report = parse_ping(capture("pi__ping-ip-O-D"))
    assert (report.sent, report.received, report.summary, report.errors) == (5, 0, None, ())
    assert lost(report) == [1, 2, 3, 4, 5]  # seq 5 has no "no answer yet" line
    assert report_stats(report).loss_pct == 100.0


def test_iputils_no_answer_yet_is_a_lost_probe() -> None:
    report = parse_ping(capture("centos-7.7__ping-hostname-O"))
    assert lost(report) == [15]
    assert report.destination == "turner-tls.map.fastly.net"
    assert report_stats(report).loss_pct == 5.0


def test_busybox_has_no_mdev_so_it_is_computed() -> None:
    report = parse_ping(capture("alpine-linux-3.13__ping-hostname"))
    assert report.flavor == "busybox"
    assert report.probes == (
        PingProbe(0, 1.331),
        PingProbe(1, 1.281),
        PingProbe(2, 1.408),
        PingProbe(3, 1.360),
    )
    assert report.summary == PingSummary(1.281, 1.345, 1.408, None)
    stats = report_stats(report)
    # deviations from 1.345: −0.014, −0.064, +0.063, +0.015; squares sum to 0.008486;
    # / 4 = 0.0021215; √ = 0.046060…
    assert stats.rtt_mdev_ms == pytest.approx(0.046060, abs=1e-6)
    # |Δ|: 0.050, 0.127, 0.048 → mean 0.075
    assert stats.ipdv_ms == pytest.approx(0.075)


def test_bsd_stddev_is_mdev() -> None:
    report = parse_ping(capture("freebsd12__ping-ip"))
    assert report.probes == (PingProbe(0, 0.022), PingProbe(1, 0.036), PingProbe(2, 0.041))
    assert report.summary == PingSummary(0.022, 0.033, 0.041, 0.008)
    assert report_stats(report).rtt_mdev_ms == 0.008


def test_bsd_ping6_header_and_title() -> None:
    report = parse_ping(capture("freebsd12__ping6-hostname-p"))
    assert (report.flavor, report.destination) == ("bsd", "localhost")
    assert report.summary == PingSummary(0.036, 0.045, 0.051, 0.007)  # "std-dev"


def test_unreadable_reply_lines_keep_pings_own_counts() -> None:
    report = parse_ping(capture("centos-7.7__ping6-ip-O-p-unparsable"))
    assert (report.sent, report.received) == (20, 19)
    assert lost(report) == [1, 11]  # seq 1's line was mangled upstream: we cannot know its RTT
    assert (
        report.errors[0] == "line 3: unrecognised: 64 bytes from 2a04:4e42:600::323: strange error"
    )
    stats = report_stats(report)
    assert stats.loss_pct == 5.0  # ping's 19 of 20, not our 18 readable lines
    assert stats.rtt_min_ms == 27.064


def test_missing_hostname_falls_back_to_the_header_address() -> None:
    assert parse_ping(capture("centos-7.7__ping-missing-hostname")).destination == "100.68.105.124"


def test_current_iputils_capture() -> None:
    report = parse_ping(capture("debian-iputils-20221126__ping-ip-i0.01-w5"))
    assert (report.flavor, report.sent, report.received, report.errors) == ("iputils", 10, 10, ())
    assert report.summary == PingSummary(0.040, 0.046, 0.072, 0.009)


@pytest.mark.parametrize("path", OLD_IPUTILS_CAPTURES, ids=lambda p: p.stem)
def test_old_iputils_icmp_req_replies_are_probes(path: Path) -> None:
    """s20101006 says ``icmp_req=N``: each reply line is its probe, none "lost" (it once read
    every probe as lost but the summary, so percentiles and jitter came out empty)."""
    report = parse_ping(path.read_text())
    assert (report.flavor, report.sent, report.received, report.errors) == ("iputils-old", 4, 4, ())
    assert [p.seq for p in report.probes] == [1, 2, 3, 4] and lost(report) == []
    stats = report_stats(report)
    assert stats.rtt_p50_ms is not None and stats.ipdv_ms is not None


def test_old_iputils_gateway_capture_spelled_out() -> None:
    report = parse_ping(capture("openstack-iputils-old__ping-ip-gateway"))
    assert [p.rtt_ms for p in report.probes] == [0.357, 0.473, 0.504, 0.470]
    assert report.summary == PingSummary(0.357, 0.451, 0.504, 0.055)
    assert report.destination == "172.16.1.1"
    stats = report_stats(report)
    assert stats.ipdv_ms == pytest.approx((0.116 + 0.031 + 0.034) / 3)


def old_iputils(text: str) -> str:
    """``text`` as s20101006 prints it: reply lines (``pr_echo_reply``) say icmp_req."""
    return "\n".join(
        line.replace(": icmp_seq=", ": icmp_req=") if " bytes from " in line else line
        for line in text.split("\n")
    )


def test_old_iputils_dup_and_unreachable_in_their_own_format() -> None:
    """Their "(DUP!)" follows the time as today; their error lines still say icmp_seq (ping.c
    ``receive_error_msg``: "From %s icmp_seq=%u ")."""
    dup = capture("centos-7.7__ping-ip-dup")
    report = parse_ping(old_iputils(dup))
    assert report.flavor == "iputils-old"
    assert report.probes == parse_ping(dup).probes == (PingProbe(1, 0.586), PingProbe(2, 0.861))
    unreachable = capture("ubuntu-22.04__ping-dest-unreachable")
    assert parse_ping(old_iputils(unreachable)) == parse_ping(unreachable)  # no reply: "iputils"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 10_000_000)), min_size=1, max_size=40))
def test_old_iputils_output_reads_like_todays(trips_us: list[int | None]) -> None:
    """Any train in s20101006's words gives the very probes and figures of today's iputils."""
    today = parse_ping(iputils_output(trips_us))
    then = parse_ping(old_iputils(iputils_output(trips_us)))
    assert then.probes == today.probes and then.summary == today.summary
    assert then.flavor == ("iputils-old" if today.received else "iputils")
    assert report_stats(then) == report_stats(today)


def test_busybox_1_35_capture() -> None:
    report = parse_ping(capture("debian-busybox-1.35__ping-ip-i0.2"))
    assert (report.flavor, report.sent, report.received, report.errors) == ("busybox", 10, 10, ())
    assert [p.seq for p in report.probes] == list(range(10))
    assert report.summary == PingSummary(0.042, 0.066, 0.099, None)


# --- a 240 ms link, in iputils' own format ---------------------------------------------------

LINK_240MS = """\
PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.
64 bytes from 198.18.0.2: icmp_seq=1 ttl=61 time=240 ms
64 bytes from 198.18.0.2: icmp_seq=2 ttl=61 time=242 ms
64 bytes from 198.18.0.2: icmp_seq=3 ttl=61 time=240 ms
64 bytes from 198.18.0.2: icmp_seq=5 ttl=61 time=240 ms
64 bytes from 198.18.0.2: icmp_seq=6 ttl=61 time=245 ms

--- 198.18.0.2 ping statistics ---
6 packets transmitted, 5 received, 16.6667% packet loss, time 5006ms
rtt min/avg/max/mdev = 239.604/241.267/244.501/1.787 ms
"""
# True RTTs (µs): 240312, 241870, 239604, lost, 240049, 244501. iputils prints (t + 500) // 1000.
# Summary: tsum = 1206336, avg = 1206336 // 5 = 241267; var = (Σt² − tsum²//5) // 5 = 3196696 µs²,
# mdev = ⌊√3196696⌋ = 1787 µs.


def test_240ms_link_with_integer_times() -> None:
    report = parse_ping(LINK_240MS)
    assert [p.rtt_ms for p in report.probes] == [240.0, 242.0, 240.0, None, 240.0, 245.0]
    stats = report_stats(report)
    assert (stats.sent, stats.received) == (6, 5)
    assert stats.loss_pct == pytest.approx(100 / 6)
    assert (stats.rtt_min_ms, stats.rtt_mean_ms, stats.rtt_max_ms) == (239.604, 241.267, 244.501)
    assert stats.rtt_mdev_ms == 1.787
    # sorted printed values 240, 240, 240, 242, 245 (type 7, position (n−1)·q):
    assert stats.rtt_p50_ms == 240.0  # position 2
    assert stats.rtt_p90_ms == pytest.approx(243.8)  # position 3.6: 242 + 0.6 · 3
    assert stats.rtt_p99_ms == 244.501  # 242 + 0.96 · 3 = 244.88, clamped to the exact max
    assert stats.pdv_p99_ms == pytest.approx(244.501 - 239.604)
    assert stats.ipdv_ms == pytest.approx(2.25)  # |Δ| in seq order: 2, 2, 0, 5 → 9 / 4


def test_percentiles_never_fall_below_the_exact_min() -> None:
    # 240.400 and 240.450 ms both print as "240"
    text = LINK_240MS.splitlines()
    lines = [*text[:2], text[2].replace("242", "240"), "", text[7]]
    lines[-1] = "2 packets transmitted, 2 received, 0% packet loss, time 1001ms"
    lines.append("rtt min/avg/max/mdev = 240.400/240.425/240.450/0.025 ms")
    stats = report_stats(parse_ping("\n".join(lines)))
    assert stats.rtt_p50_ms == stats.rtt_p90_ms == stats.rtt_p99_ms == 240.400
    assert stats.pdv_p99_ms == 0.0


def iputils_time(t_us: int) -> str:
    """iputils' per-packet format (ping_common.c, gather_stats_noflush)."""
    if t_us >= 100_000 - 50:
        return f"{(t_us + 500) // 1000}"
    if t_us >= 10_000 - 5:
        return f"{(t_us + 50) // 1000}.{((t_us + 50) % 1000) // 100}"
    if t_us >= 1000:
        return f"{(t_us + 5) // 1000}.{((t_us + 5) % 1000) // 10:02d}"
    return f"{t_us // 1000}.{t_us % 1000:03d}"


def iputils_output(trips_us: list[int | None]) -> str:
    """What iputils prints for these triptimes (None = lost): replies, statistics, summary."""
    got = [t for t in trips_us if t is not None]
    lines = ["PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data."]
    lines += [
        f"64 bytes from 198.18.0.2: icmp_seq={seq} ttl=61 time={iputils_time(t)} ms"
        for seq, t in enumerate(trips_us, start=1)
        if t is not None
    ]
    loss = (len(trips_us) - len(got)) * 100.0 / len(trips_us)
    lines += ["", "--- 198.18.0.2 ping statistics ---"]
    lines.append(f"{len(trips_us)} packets transmitted, {len(got)} received, {loss:g}% packet loss")
    if got:
        total, tsum = len(got), sum(got)
        tmvar = int((float(sum(t * t for t in got)) - tsum * tsum // total) / total)
        mdev = int(math.sqrt(abs(tmvar)))
        values = (min(got), tsum // total, max(got), mdev)
        lines.append(
            "rtt min/avg/max/mdev = "
            + "/".join(f"{v // 1000}.{v % 1000:03d}" for v in values)
            + " ms"
        )
    return "\n".join(lines) + "\n"


trip_us = st.one_of(
    st.integers(0, 10_000_000),  # iputils caps a triptime at MAXWAIT = 10 s
    st.integers(235_000, 250_000),  # a 240 ms link: every line is an integer
    st.integers(9_990, 10_010),  # around the 1-decimal boundary
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), trip_us), min_size=1, max_size=60))
def test_stats_from_iputils_output_match_the_true_rtts(trips_us: list[int | None]) -> None:
    got_us = [t for t in trips_us if t is not None]
    stats = report_stats(parse_ping(iputils_output(trips_us)))
    assert (stats.sent, stats.received) == (len(trips_us), len(got_us))
    if not got_us:
        assert stats.rtt_mean_ms is None
        return
    true = sorted(t / 1000 for t in got_us)
    assert stats.rtt_min_ms == true[0] and stats.rtt_max_ms == true[-1]  # exact, from summary
    assert stats.rtt_mean_ms == pytest.approx(sum(true) / len(true), abs=0.001)
    assert stats.rtt_mdev_ms is not None
    mean = sum(true) / len(true)
    true_mdev = math.sqrt(sum((t - mean) ** 2 for t in true) / len(true))
    assert stats.rtt_mdev_ms == pytest.approx(true_mdev, abs=0.002)
    # a printed time is within 0.5 ms of the truth, and rounding keeps the order, so:
    for q, value in ((50, stats.rtt_p50_ms), (90, stats.rtt_p90_ms), (99, stats.rtt_p99_ms)):
        assert value is not None
        assert abs(value - percentile(true, q)) <= 0.5 + 1e-9
        assert true[0] <= value <= true[-1]
    if len(got_us) >= 2:
        in_order = [t / 1000 for t in got_us]
        true_ipdv = sum(abs(b - a) for a, b in pairwise(in_order)) / (len(in_order) - 1)
        assert stats.ipdv_ms == pytest.approx(true_ipdv, abs=1.0 + 1e-9)


# --- robustness ------------------------------------------------------------------------------

REAL_LINES = sorted({line for path in CAPTURES for line in path.read_text().splitlines()})


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.lists(st.one_of(st.sampled_from(REAL_LINES), st.text(max_size=40))).map("\n".join),
    )
)
def test_arbitrary_text_gives_a_report_or_a_parse_error(text: str) -> None:
    try:
        report = parse_ping(text)
    except ParseError:
        return
    assert isinstance(report, PingReport)
    assert len(report.probes) == report.sent and report.received <= report.sent


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.\n",  # killed before the statistics
        "3 packets transmitted, 5 received, 0% packet loss\n",
        "1 packets transmitted, 1 received\nrtt min/avg/max/mdev = 3.0/2.0/1.0/0.1 ms\n",
        "٣ packets transmitted, ٣ received\n",  # Arabic-Indic digits: int() would take them
        "9" * 5000 + " packets transmitted, 1 received\n",
    ],
)
def test_unreadable_output_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_ping(text)


# --- argv ------------------------------------------------------------------------------------


def test_ping_argv() -> None:
    assert ping_argv("10.0.0.2", count=20, interval_s=0.2) == [
        "ping", "-n", "-c", "20", "-i", "0.2", "10.0.0.2",
    ]  # fmt: skip
    argv = ping_argv("gpu-01.example.com", count=5, interval_s=1, deadline_s=6.2, packet_size=1400)
    assert argv == [
        "ping", "-n", "-c", "5", "-i", "1", "-w", "7", "-s", "1400", "gpu-01.example.com",
    ]  # fmt: skip
    assert ping_argv("fe80::1%eth0", count=1, interval_s=0.002)[-1] == "fe80::1%eth0"
    assert ping_argv("host.", count=1, interval_s=0.2)[-1] == "host."


@pytest.mark.parametrize(
    "address",
    [
        "",
        "-c1",
        "--help",
        "a b",
        "gpu;reboot",
        "$(id)",
        "host..x",
        "-host",
        "host-",
        "x" * 64,
        "é.com",
    ],
)
def test_ping_argv_refuses_what_is_not_an_address(address: str) -> None:
    with pytest.raises(InputError):
        ping_argv(address, count=1, interval_s=0.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0, "interval_s": 0.2},
        {"count": 1, "interval_s": 0.001},  # iputils: "cannot flood" below 2 ms, even for root
        {"count": 1, "interval_s": math.nan},
        {"count": 1, "interval_s": 0.2, "deadline_s": 0},
        {"count": 1, "interval_s": 0.2, "packet_size": 8},  # too small to carry a timestamp
        {"count": 1, "interval_s": 0.2, "packet_size": 65508},
    ],
)
def test_ping_argv_refuses_bad_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        ping_argv("10.0.0.2", **kwargs)


# --- which ping, and an account that may not use it -------------------------------------------


@pytest.mark.parametrize(
    ("version", "flavor"),
    [
        ("ping from iputils 20221126", "iputils"),
        ("ping utility, iputils-s20161105", "iputils"),
        ("ping utility, iputils-s20121221", "iputils"),  # icmp_seq again
        ("ping utility, iputils-sss20101006", "iputils-old"),
        ("ping utility, iputils-sss20100418", "iputils-old"),
        ("ping utility, iputils-sss20071127", "iputils"),  # CentOS 6: icmp_seq
        ("BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.", "busybox"),
        ("usage: ping [-AaDdfnoQqRrv] [-c count] [-G sweepmaxsize]", None),
        ("present", None),
        (None, None),
    ],
)
def test_which_ping_from_its_version_line(version: str | None, flavor: str | None) -> None:
    assert ping_tool_flavor(version) == flavor


def denied(name: str) -> CommandResult:
    """A real capture of a ping refused its ICMP socket (tests/fixtures/ping/local/denied)."""
    exit_status = {"busybox-1.35": 1, "iputils-20221126": 2}[name]
    out, err = ((DENIED / f"{name}.{s}").read_text() for s in ("stdout", "stderr"))
    return CommandResult(("ping", "x"), exit_status, out, err, elapsed_s=0.1)


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("busybox-1.35", "ping: permission denied (are you root?)"),
        ("iputils-20221126", "ping: socket: Operation not permitted"),
    ],
)
def test_an_account_refused_icmp_gets_a_reason_saying_so(name: str, line: str) -> None:
    res = denied(name)
    assert icmp_denied(res.stderr) == line
    status, reason = ping_outcome(res)  # type: ignore[misc]
    assert status is CellStatus.ERROR
    assert reason.startswith(f"ping may not send ICMP as this account ({line})")
    assert "ping_group_range" in reason


@pytest.mark.parametrize(
    "stderr",
    [
        "ping: icmp open socket: Operation not permitted",  # iputils before 2016
        "ping: socket: Permission denied",  # the ping socket, refused by ping_group_range
        "fping: can't create raw socket (must run as root?) : Operation not permitted",
    ],
)
def test_other_words_for_no_icmp_socket(stderr: str) -> None:
    assert icmp_denied(f"\n{stderr}\n") == stderr


def test_a_firewall_refusing_the_packet_is_not_the_account() -> None:
    """iptables -j REJECT on OUTPUT makes sendmsg fail with EPERM: the socket was allowed."""
    assert icmp_denied("ping: sendmsg: Operation not permitted\n") is None


# --- exit status -----------------------------------------------------------------------------


def result(exit_status: int | None, stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(("ping", "x"), exit_status, stdout, stderr, elapsed_s=12.0)


def test_exit_0_and_1_are_measurements() -> None:
    ok = ping_outcome(result(0, capture("fedora32__ping-ip-O")))
    assert isinstance(ok, PingReport) and ok.received == 20
    all_lost = ping_outcome(result(1, capture("pi__ping-ip-O")))
    assert isinstance(all_lost, PingReport) and all_lost.received == 0


@pytest.mark.parametrize(
    ("res", "status", "reason"),
    [
        (result(None), CellStatus.TIMEOUT, "ping did not finish within 12.0 s"),
        (result(127, stderr="bash: line 1: ping: command not found\n"), CellStatus.TOOL_MISSING,
         "bash: line 1: ping: command not found"),
        (result(127), CellStatus.TOOL_MISSING, "ping not found"),
        (result(2, stderr="sh: 1: ping: not found\n"), CellStatus.TOOL_MISSING,
         "sh: 1: ping: not found"),
        (result(2, stderr="\nping: nohost: Name or service not known\n"), CellStatus.ERROR,
         "ping: nohost: Name or service not known"),
        (result(2, stderr="ping: cannot flood; minimal interval allowed for user is 200ms\n"),
         CellStatus.ERROR, "ping: cannot flood; minimal interval allowed for user is 200ms"),
        (result(139), CellStatus.ERROR, "ping exited with status 139"),
        (result(1, "garbage\n", "ping: bad address 'x'\n"), CellStatus.ERROR,
         "unparseable ping output: no 'packets transmitted' statistics line"
         " (ping: bad address 'x')"),
        (result(1, "0 packets transmitted, 0 received\n"), CellStatus.ERROR, "ping sent no probe"),
    ],
)  # fmt: skip
def test_other_outcomes(res: CommandResult, status: CellStatus, reason: str) -> None:
    assert ping_outcome(res) == (status, reason)


def test_bad_checksum_is_not_a_reply_and_huge_numbers_are_not_times() -> None:
    text = (
        "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n"
        "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.100 ms (BAD CHECKSUM)\n"
        f"64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time={'9' * 400} ms\n"
        "64 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=0.300 ms\n"
        "\n--- 10.0.0.2 ping statistics ---\n"
        "3 packets transmitted, 2 received, +1 corrupted, 33.3333% packet loss, time 2002ms\n"
        f"rtt min/avg/max/mdev = 0.200/{'9' * 400}/0.300/0.050 ms\n"
    )
    report = parse_ping(text)
    assert [p.rtt_ms for p in report.probes] == [None, None, 0.3]
    assert report.errors[0].startswith("line 3: reply without a time")
    assert report.summary is None  # not float('inf')
