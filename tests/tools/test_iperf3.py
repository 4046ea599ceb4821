"""iperf3 argv, parser and outcome, tested on every capture in tests/fixtures/iperf3/."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import InputError, ParseError
from probe.model import CellStatus, CommandResult
from probe.tools.iperf3 import (
    ClientAuth,
    IperfInterval,
    IperfReportedError,
    IperfResult,
    ServerAuth,
    busy_backoff_s,
    iperf3_client_argv,
    iperf3_outcome,
    iperf3_server_argv,
    is_port_in_use,
    is_server_busy,
    parse_iperf3,
    server_ready,
    stall_reason,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "iperf3"
FORWARD = "loopback/iperf3.12_tcp_forward_t2_O1.json"

OK, STALLED, REPORTED, UNUSABLE, SERVER = "ok", "stalled", "reported", "unusable", "server"
# file → (kind, detail): OK → expected fields; STALLED → the stall reason; REPORTED → (message
# part, cell status); UNUSABLE → ParseError message part; SERVER → what the server helpers say.
EXPECTED: dict[str, tuple[str, object]] = {
    "iperf3-lib/iperf3.21_tcp_bidir_client_2streams_loopback.json": (UNUSABLE, "--bidir"),
    "iperf3-lib/iperf3.21_udp_client_2streams_loopback.json": (UNUSABLE, "'UDP'"),
    "issues/iperf3.0.11_error_no_route_to_host.json": (
        REPORTED, ("unable to connect to server: No route to host", CellStatus.ERROR)),
    "issues/iperf3_json-stream_error_server_busy.jsonl": (
        REPORTED, ("the server is busy", CellStatus.BUSY)),
    "issues/iperf3_json_tail_followed_by_plaintext_error.partial.txt": (
        REPORTED, ("unable to send control message: Broken pipe", CellStatus.ERROR)),
    "issues/iperf3_old_udp_interval_minus_nan_invalid_json.issue613.partial.txt": (
        UNUSABLE, "no iperf3 JSON"),
    "issues/iperf3_plaintext_error_server_busy.stderr.txt": (
        REPORTED, ("the server is busy", CellStatus.BUSY)),
    "issues/iperf3_server_json_tail_error_select_failed.partial.txt": (
        REPORTED, ("select failed: Bad file descriptor", CellStatus.ERROR)),
    "loopback/iperf3.12_error_connection_refused.json": (
        REPORTED, ("unable to connect to server: Connection refused", CellStatus.ERROR)),
    "loopback/iperf3.12_error_connect_timeout.json": (
        REPORTED, ("unable to connect to server: Connection timed out", CellStatus.ERROR)),
    "loopback/iperf3.12_plaintext_error_connect_timeout.stderr.txt": (
        REPORTED, ("Connection timed out", CellStatus.ERROR)),
    "loopback/iperf3.12_error_server_busy.json": (
        REPORTED, ("the server is busy", CellStatus.BUSY)),
    "loopback/iperf3.12_plaintext_error_connection_refused.stderr.txt": (
        REPORTED, ("Connection refused", CellStatus.ERROR)),
    "loopback/iperf3.12_plaintext_error_server_busy.stderr.txt": (
        REPORTED, ("the server is busy", CellStatus.BUSY)),
    "loopback/iperf3.12_server_port_in_use.stderr.txt": (SERVER, "in-use"),
    "loopback/iperf3.12_server_port_in_use_J.json": (SERVER, "in-use"),
    "loopback/iperf3.12_server_s1_forceflush_one_test.stdout.txt": (SERVER, "ready"),
    "loopback/iperf3.12_server_s1_idle_timeout_no_client.stdout.txt": (SERVER, "ready"),
    "loopback/iperf3.12_tcp_4streams_P4_t2_O1.json": (OK, {
        "streams": 4, "reverse": False, "retransmits": 0, "max_snd_cwnd_bytes": 916762,
        "mean_rtt_ms": 0.024, "bytes_received": 7171080192, "cpu_bound": True}),
    FORWARD: (OK, {
        "streams": 1, "reverse": False, "retransmits": 0, "max_snd_cwnd_bytes": 916762,
        "mean_rtt_ms": 0.044, "version": "3.12", "duration_s": 2.0, "omit_s": 1.0,
        "bytes_received": 7325024309, "cpu_bound": True, "sender_cc": "bbr",
        "receiver_cc": "bbr"}),
    "loopback/iperf3.12_tcp_reverse_R_get_server_output.json": (OK, {
        "reverse": True, "max_snd_cwnd_bytes": None, "mean_rtt_ms": None, "retransmits": 0}),
    "loopback/iperf3.12_tcp_reverse_R_t2_O1.json": (OK, {
        "reverse": True, "max_snd_cwnd_bytes": None, "mean_rtt_ms": None, "sender_cc": "bbr",
        "bytes_received": 5937168384, "cpu_remote_pct": pytest.approx(99.38, abs=0.01)}),
    "loopback/iperf3.12_tcp_paced_b10M_t4_O1.json": (OK, {
        "bytes_received": 4980736, "duration_s": 4.0, "omit_s": 1.0}),
    "loopback/iperf3.12_stall_server_stopped_3s_t6_O1.json": (
        STALLED, "stalled for 3.0 s of 6 s (from 2.0 s)"),
    "loopback/iperf3.12_stall_server_stopped_3s_R_t6_O1.json": (
        STALLED, "stalled for 3.0 s of 6 s (from 2.0 s)"),
    "loopback/iperf3.12_stall_server_stopped_whole_test_R_t3_O2.json": (
        STALLED, "no bytes received in 3 s"),
    "loopback/iperf3.12_stall_server_stopped_whole_test_t3_O2.json": (
        STALLED, "stalled for 3.0 s of 3 s (from 0.0 s)"),
    "loopback/iperf3.12_stall_server_stopped_at_start_t3_O0.json": (
        STALLED, "stalled for 2.0 s of 3 s (from 1.0 s)"),
    **{f"omnt/iperf3_json-stream_interval_{n}_Single_Stream.jsonl": (UNUSABLE, "no iperf3 JSON")
       for n in ("TCP_BIDIR", "TCP_DL", "TCP_UL", "UDP_BIDIR", "UDP_DL", "UDP_UL")},
}  # fmt: skip


def _read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_every_capture_has_an_expectation() -> None:
    files = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
    assert files - {"SOURCE.md"} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture(name: str) -> None:
    kind, detail = EXPECTED[name]
    text = _read(name)
    if kind == OK:
        result = parse_iperf3(text)
        assert isinstance(detail, dict)
        assert {k: getattr(result, k) for k in detail} == detail
        assert result.receiver_bps > 0 and result.sender_bps > 0
        assert result.intervals and stall_reason(result) is None
    elif kind == STALLED:
        assert stall_reason(parse_iperf3(text)) == detail
    elif kind == REPORTED:
        assert isinstance(detail, tuple)
        with pytest.raises(IperfReportedError, match=detail[0]):
            parse_iperf3(text)
        as_stdout = iperf3_outcome(CommandResult(("iperf3",), 0, text, "", 1.0))
        as_stderr = iperf3_outcome(CommandResult(("iperf3",), 1, "", text, 1.0))
        assert isinstance(as_stdout, tuple) and isinstance(as_stderr, tuple)
        assert as_stdout[0] == as_stderr[0] == detail[1]
    elif kind == UNUSABLE:
        with pytest.raises(ParseError, match=str(detail)) as info:
            parse_iperf3(text)
        assert not isinstance(info.value, IperfReportedError)
    else:
        assert server_ready(text) is (detail == "ready")
        assert is_port_in_use(text) is (detail == "in-use")


@pytest.mark.parametrize("name", sorted(n for n, (k, _) in EXPECTED.items() if k in (OK, STALLED)))
def test_rates_agree_with_pypi_iperf3_testresult(name: str) -> None:
    """The PyPI package's TestResult as an independent oracle (it parses clean JSON only)."""
    from iperf3 import TestResult

    oracle, ours = TestResult(_read(name)), parse_iperf3(_read(name))
    assert ours.receiver_bps == oracle.received_bps
    assert ours.sender_bps == oracle.sent_bps
    assert ours.bytes_received == oracle.received_bytes
    assert ours.retransmits == oracle.retransmits
    assert ours.cpu_local_pct == oracle.local_cpu_total
    assert ours.cpu_remote_pct == oracle.remote_cpu_total
    assert (ours.reverse, ours.streams) == (oracle.reverse, oracle.num_streams)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace("\n", "\r\n"),
        lambda t: "^C" + t,
        lambda t: "^C\r\n" + t,
        lambda t: "iperf3: interrupt - the client has terminated\n" + t,
        lambda t: t + "iperf3: error - unable to send control message: Broken pipe\n",
        lambda t: t.replace('"host_user":', '"ignored": -nan, "host_user":'),
    ],
    ids=["crlf", "ctrl-c", "ctrl-c-crlf", "leading-line", "trailing-error", "minus-nan"],
)
def test_defensive_parsing_keeps_the_measurement(mangle: object) -> None:
    assert callable(mangle)
    assert parse_iperf3(mangle(_read(FORWARD))) == parse_iperf3(_read(FORWARD))


def _forward_doc() -> dict[str, Any]:
    doc = json.loads(_read(FORWARD))
    assert isinstance(doc, dict)
    return doc


def test_nan_cpu_is_unknown_and_nan_rate_is_unusable() -> None:
    text = _read(FORWARD)
    nan_cpu = re.sub(r'("host_total":\s*)[^,\n]+', r"\1-nan", text)
    assert parse_iperf3(nan_cpu).cpu_local_pct is None
    nan_rate = re.sub(r'("bits_per_second":\s*)[^,\n]+', r"\1nan", text)
    with pytest.raises(ParseError, match="bits_per_second"):
        parse_iperf3(nan_rate)


def test_error_key_wins_over_a_filled_end() -> None:
    doc = _forward_doc() | {"error": "error - unable to receive results"}
    with pytest.raises(IperfReportedError, match=r"^iperf3: unable to receive results$"):
        parse_iperf3(json.dumps(doc))


def test_json_stream_start_and_end_events() -> None:
    doc = _forward_doc()
    intervals = doc["intervals"]
    assert isinstance(intervals, list)
    events = [
        {"event": "start", "data": doc["start"]},
        *({"event": "interval", "data": i} for i in intervals),
        {"event": "end", "data": doc["end"]},
    ]
    text = "\n".join(json.dumps(e) for e in events)
    assert parse_iperf3(text) == parse_iperf3(_read(FORWARD))


def test_cpu_bound_threshold_scales_with_threads_from_3_16() -> None:
    doc = _forward_doc()
    doc["start"]["test_start"]["num_streams"] = 4
    doc["end"]["cpu_utilization_percent"] = {"host_total": 150.0, "remote_total": 20.0}
    assert parse_iperf3(json.dumps(doc)).cpu_bound is True  # 3.12: one thread
    doc["start"]["version"] = "iperf 3.16"
    assert parse_iperf3(json.dumps(doc)).cpu_bound is False  # 4 threads: 150 % < 4 × 90 %
    doc["end"]["cpu_utilization_percent"] = {"host_total": 89.0}
    doc["start"]["version"] = "iperf 3.12"
    assert parse_iperf3(json.dumps(doc)).cpu_bound is False


def test_intervals_are_the_measured_ones_summed_over_streams() -> None:
    result = parse_iperf3(_read("loopback/iperf3.12_tcp_4streams_P4_t2_O1.json"))
    assert result.intervals == (
        IperfInterval(7.2e-05, 1.0010809898376465, 2899312640),
        IperfInterval(1.001009, 0.9968690276145935, 4267704320),
    )  # the omitted ramp (1,985,347,584 B) is left out
    assert result.intervals[0].bps == pytest.approx(23169.455e6)
    doc = _forward_doc()
    doc["intervals"] = [{"streams": []}]
    with pytest.raises(ParseError, match="interval 0 has no 'sum'"):
        parse_iperf3(json.dumps(doc))
    del doc["intervals"]  # -i 0: no interval reports, nothing to judge a stall by
    assert parse_iperf3(json.dumps(doc)).intervals == ()


def _rates(
    mbps: list[float], *, seconds: float = 1.0, received: float | None = None
) -> IperfResult:
    """The forward capture with its intervals replaced by ``mbps`` (one per ``seconds``)."""
    intervals = tuple(
        IperfInterval(n * seconds, seconds, round(r * 1e6 / 8 * seconds))
        for n, r in enumerate(mbps)
    )
    counted = sum(i.bytes for i in intervals)
    got = counted if received is None else round(received)
    base = parse_iperf3(_read(FORWARD))
    duration = len(mbps) * seconds
    return replace(
        base,
        intervals=intervals,
        bytes_received=got,
        duration_s=duration,
        receiver_bps=got * 8 / duration,  # what the receiver saw, as iperf3 reports it
    )


@pytest.mark.parametrize(
    "mbps",
    [
        # 10 Mbit/s at 240 ms RTT: slow start (IW10 doubling for 4 RTTs) fills the first second
        [1.8, 9.6, 10.1, 9.8, 10.0, 9.9, 10.2, 9.7, 10.0, 9.9],
        # 10 Gbit/s at 240 ms RTT without -O: seconds of slow start below 1 % of the peak
        [1.8, 29.0, 460.0, 3000.0, 5000.0, 5100.0, 4900.0, 5000.0, 5050.0, 4950.0],
        # a loss halves the window: one second at 40 % of the peak
        [900.0, 950.0, 380.0, 700.0, 930.0, 940.0],
        # a 0.4 s outage inside one second, the rest of it at full rate
        [900.0, 950.0, 540.0, 930.0, 940.0, 945.0],
    ],
    ids=["10M-240ms", "10G-240ms-no-omit", "loss", "sub-second"],
)
def test_a_slow_or_briefly_dented_link_is_not_a_stall(mbps: list[float]) -> None:
    assert stall_reason(_rates(mbps)) is None


def test_a_sliver_of_an_interval_does_not_set_the_peak() -> None:
    """iperf3's last interval can last microseconds: one 128 KiB write there reads as Gbit/s."""
    result = _rates([10.0, 9.9, 10.1, 10.0])
    sliver = IperfInterval(4.0, 0.0005, 131072)  # 2.1 Gbit/s; 1 % of it would flag 10 Mbit/s
    assert stall_reason(replace(result, intervals=(*result.intervals, sliver))) is None


def test_a_sender_blocked_on_a_full_buffer_is_not_a_stall() -> None:
    """Seen on the lab (home1→ap1: 10 Mbit/s uplink, deep queue, 240 ms): the sender wrote
    nothing for a second while the receiver got 9.6 Mbit/s throughout."""
    blocked = _rates([10.49, 10.49, 0.0, 10.49], received=9.645e6 / 8 * 4)
    assert stall_reason(blocked) is None
    # the same intervals with the receiver a quarter short: the path really stalled
    assert stall_reason(_rates([10.49, 10.49, 0.0, 10.49])) == (
        "stalled for 1.0 s of 4 s (from 2.0 s)"
    )


def test_stall_spells_are_counted_and_placed() -> None:
    assert stall_reason(_rates([900.0, 0.0, 950.0, 2.0, 0.0, 940.0])) == (
        "stalled for 3.0 s of 6 s (from 1.0 s, 2 spells)"
    )
    # the floor catches a stall that fills most of the test (the peak share alone would not)
    assert stall_reason(_rates([0.05, 0.0, 0.0, 0.01])) == "stalled for 4.0 s of 4 s (from 0.0 s)"
    # finer intervals (-i 0.5): one starved half-second is not yet a stall, two are
    assert stall_reason(_rates([900.0, 0.0, 900.0, 900.0], seconds=0.5)) is None
    assert stall_reason(_rates([900.0, 0.0, 0.0, 900.0], seconds=0.5)) == (
        "stalled for 1.0 s of 2 s (from 0.5 s)"
    )


def test_a_short_test_on_a_long_fat_path_is_not_inconsistent() -> None:
    """Seen on the lab: 1 s forward tests on a 20 Mbit/s, 240 ms path count 0.6 MB written for
    0.2 MB received — the sender's buffer, not a stall (every such test was flagged)."""
    assert stall_reason(_rates([4.44], received=0.2e6)) is None
    assert stall_reason(_rates([4.44, 33.31], received=2.2e6)) is None


def test_received_and_counted_bytes_far_apart_are_inconsistent() -> None:
    steady = [900.0, 910.0, 905.0, 900.0]  # 451.9 MB counted
    assert stall_reason(_rates(steady, received=300e6)) is None  # 66 %: sender ahead by buffers
    assert stall_reason(_rates(steady, received=200e6)) == (
        "inconsistent: 200.0 MB received, the intervals count 451.9 MB"
    )
    assert stall_reason(_rates(steady, received=1000e6)) is not None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_truncation_is_a_parse_error(data: st.DataObject) -> None:
    text = _read(FORWARD).rstrip()
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    with pytest.raises(ParseError):
        parse_iperf3(text[:cut])


_KEYS = ["start", "end", "error", "event", "data", "test_start", "protocol", "sum_received",
         "sum_sent", "streams", "bits_per_second", "bytes", "num_streams", "duration"]  # fmt: skip
_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _json.map(json.dumps), st.text().map(lambda t: t + _read(FORWARD))))
def test_arbitrary_text_returns_or_raises_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        assert isinstance(parse_iperf3(text), IperfResult)


@pytest.mark.parametrize(
    ("result", "status", "reason"),
    [
        (CommandResult(("iperf3",), None, "", "", 25.0), CellStatus.TIMEOUT, "25 s"),
        (CommandResult(("iperf3",), 127, "", "sh: 1: iperf3: not found", 0.1),
         CellStatus.TOOL_MISSING, "not found"),
        (CommandResult(("iperf3",), 1, "garbage", "", 0.1), CellStatus.ERROR, "unreadable"),
        (CommandResult(("iperf3",), 1, "", "iperf3: error - unable to connect to server: "
                       "No route to host\r\n", 0.1), CellStatus.ERROR, "No route to host"),
    ],
)  # fmt: skip
def test_outcome_statuses(result: CommandResult, status: CellStatus, reason: str) -> None:
    outcome = iperf3_outcome(result)
    assert isinstance(outcome, tuple)
    assert outcome[0] == status and reason in outcome[1]


def test_outcome_of_a_complete_run_is_the_result_whatever_the_exit_status() -> None:
    text = _read(FORWARD) + "iperf3: error - unable to send control message: Broken pipe\n"
    assert isinstance(iperf3_outcome(CommandResult(("iperf3",), 1, text, "", 3.0)), IperfResult)


def test_server_argv_is_one_off_and_announces_readiness() -> None:
    assert iperf3_server_argv(5299, idle_timeout_s=30) == [
        "iperf3", "-s", "-1", "-p", "5299", "--idle-timeout", "30", "--forceflush"]  # fmt: skip


def test_client_argv() -> None:
    assert iperf3_client_argv("10.0.0.2", 5201, duration_s=10, omit_s=2) == [
        "iperf3", "-c", "10.0.0.2", "-p", "5201", "-J", "-t", "10", "-O", "2",
        "--connect-timeout", "5000"]  # fmt: skip
    argv = iperf3_client_argv("gpu-1.example", 1, duration_s=3.0, omit_s=0, reverse=True, streams=8)
    assert argv[-3:] == ["-P", "8", "-R"]
    assert iperf3_client_argv("fe80::1%eth0", 9, duration_s=1, omit_s=0)[2] == "fe80::1%eth0"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": "-oProxyCommand=x"}, {"address": ""}, {"address": "a b"},
        {"address": "[::1]"}, {"port": 0}, {"port": 65536}, {"duration_s": 1.5},
        {"duration_s": 0}, {"omit_s": -1}, {"omit_s": float("nan")}, {"streams": 0},
        {"streams": 129}, {"connect_timeout_ms": 0},
    ],
)  # fmt: skip
def test_client_argv_refuses(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"address": "h1", "port": 5201, "duration_s": 2, "omit_s": 1}
    with pytest.raises(InputError):
        iperf3_client_argv(**(args | kwargs))


def test_busy_helpers() -> None:
    assert [busy_backoff_s(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert is_server_busy(_read("loopback/iperf3.12_error_server_busy.json"))
    assert not is_server_busy(_read(FORWARD))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 not installed")
def test_real_iperf3_on_loopback() -> None:
    """Our argv against the installed iperf3, 127.0.0.1 only; the one-off server must exit."""
    port = _free_port()
    argv = iperf3_server_argv(port, idle_timeout_s=10)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            seen, deadline = "", time.monotonic() + 5
            while not server_ready(seen) and time.monotonic() < deadline:
                seen += server.stdout.readline()
            assert server_ready(seen)
            argv = iperf3_client_argv("127.0.0.1", port, duration_s=1, omit_s=0, reverse=True)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
            result = CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr, 1.0)
            outcome = iperf3_outcome(result)
            assert isinstance(outcome, IperfResult), outcome
            assert outcome.reverse and outcome.receiver_bps > 0 and outcome.duration_s == 1
            assert server.wait(timeout=5) == 0  # -1: gone after one test
        finally:
            if server.poll() is None:
                server.kill()


def _with_cc(sender: object, receiver: object) -> str:
    doc = json.loads(_read(FORWARD))
    doc["end"].update(sender_tcp_congestion=sender, receiver_tcp_congestion=receiver)
    return json.dumps(doc)


def test_congestion_control_of_both_ends_is_read_and_checked() -> None:
    """iperf3 names the *data's* sender and receiver (with -R the sender is the server), so
    the names hold as they are whichever way the test ran."""
    result = parse_iperf3(_with_cc("cubic", "bbr"))
    assert (result.sender_cc, result.receiver_cc) == ("cubic", "bbr")
    odd = parse_iperf3(_with_cc("bbr; rm -rf", 3))  # not a kernel's name: not reported
    assert (odd.sender_cc, odd.receiver_cc) == (None, None)
    doc = json.loads(_read(FORWARD))
    del doc["end"]["sender_tcp_congestion"], doc["end"]["receiver_tcp_congestion"]
    older = parse_iperf3(json.dumps(doc))  # before 3.3, or not Linux
    assert (older.sender_cc, older.receiver_cc) == (None, None)


def test_congestion_bind_and_auth_argv() -> None:
    client = iperf3_client_argv(
        "10.0.0.2", 5201, duration_s=5, omit_s=1, reverse=True, congestion="bbr",
        auth=ClientAuth("probe-1a2b", "/tmp/d/PROBE_RSA_PUB", pkcs1=True),
    )  # fmt: skip
    assert client[-8:] == [
        "-R", "-C", "bbr", "--username", "probe-1a2b", "--rsa-public-key-path",
        "/tmp/d/PROBE_RSA_PUB", "--use-pkcs1-padding",
    ]  # fmt: skip
    server = iperf3_server_argv(
        5201, idle_timeout_s=30, bind="10.0.0.2", auth=ServerAuth("/t/KEY", "/t/USERS")
    )
    assert server == [
        "iperf3", "-s", "-1", "-p", "5201", "--idle-timeout", "30", "-B", "10.0.0.2",
        "--rsa-private-key-path", "/t/KEY", "--authorized-users-path", "/t/USERS",
        "--forceflush",
    ]  # fmt: skip
    for bad in ("BBR", "cubic;id", "-x", "", "a" * 16):
        with pytest.raises(InputError, match="congestion control name"):
            iperf3_client_argv("10.0.0.2", 5201, duration_s=5, omit_s=1, congestion=bad)
    with pytest.raises(InputError):
        iperf3_server_argv(5201, idle_timeout_s=30, bind="-x")
