"""Controller → host RTT with icmplib. Only ever 127.0.0.1: this network is closed and watched."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import icmplib
import pytest

from probe.errors import InputError
from probe.measure.vantage import controller_rtt, icmp_mode
from probe.stats import RttStats

LOOPBACK = "127.0.0.1"


def can_open(kind: socket.SocketKind) -> bool:
    try:
        socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


def group_may_ping() -> bool:
    """Whether net.ipv4.ping_group_range covers our group (Linux)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except OSError:
        pytest.skip("no /proc/sys/net/ipv4/ping_group_range here")
    return any(low <= gid <= high for gid in {os.getgid(), *os.getgroups()})


def test_icmp_mode_matches_what_the_kernel_allows() -> None:
    mode = icmp_mode()
    if can_open(socket.SOCK_RAW):
        assert mode == "privileged"
    elif can_open(socket.SOCK_DGRAM):
        assert mode == "unprivileged"
    else:
        assert mode == "unavailable"


def test_icmp_mode_root_is_privileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("not root")
    assert icmp_mode() == "privileged"


async def test_loopback_rtt() -> None:
    result = (await controller_rtt([LOOPBACK], count=3, interval_s=0.01, timeout_s=1.0))[LOOPBACK]
    if icmp_mode() == "unavailable":
        assert isinstance(result, str) and "ICMP sockets unavailable" in result
        return
    assert isinstance(result, RttStats)
    assert (result.sent, result.received, result.loss_pct) == (3, 3, 0.0)
    assert result.rtt_max_ms is not None and 0 < result.rtt_max_ms < 100


async def test_datagram_mode_follows_ping_group_range() -> None:
    result = await controller_rtt(
        [LOOPBACK], count=1, interval_s=0, timeout_s=1.0, mode="unprivileged"
    )
    if group_may_ping():
        assert isinstance(result[LOOPBACK], RttStats)
    else:
        assert result == {
            LOOPBACK: "icmp: not permitted to open a datagram (ping_group_range) ICMP socket"
        }


async def test_unavailable_gives_every_address_a_reason() -> None:
    result = await controller_rtt(
        [LOOPBACK, "127.0.0.2"], count=1, interval_s=0, timeout_s=1.0, mode="unavailable"
    )
    assert set(result) == {LOOPBACK, "127.0.0.2"}
    assert all(isinstance(r, str) and "CAP_NET_RAW" in r for r in result.values())


async def test_bad_address_is_a_reason_and_sends_nothing() -> None:
    result = await controller_rtt(["-f", "a b"], count=1, interval_s=0, timeout_s=1.0)
    assert result == {
        "-f": "not a host address: '-f'",
        "a b": "not an IP address or host name: 'a b'",
    }


async def test_no_address() -> None:
    assert await controller_rtt([], count=1, interval_s=0, timeout_s=1.0) == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0, "interval_s": 0, "timeout_s": 1},
        {"count": 65537, "interval_s": 0, "timeout_s": 1},
        {"count": 1, "interval_s": -1, "timeout_s": 1},
        {"count": 1, "interval_s": 0, "timeout_s": 0},
    ],
)
async def test_bad_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        await controller_rtt([LOOPBACK], **kwargs)


class FakeReply:
    def __init__(self, time: float, error: Exception | None = None) -> None:
        self.time = time
        self.error = error

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise self.error


class FakeSocket:
    """Stands in for icmplib's AsyncSocket: seq 1 times out, seq 2 comes back unreachable."""

    def __init__(self, _icmp_socket: object) -> None:
        pass

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def send(self, request: icmplib.ICMPRequest) -> None:
        request._time = 100.0

    async def receive(self, request: icmplib.ICMPRequest, timeout: float) -> FakeReply:  # noqa: ASYNC109 (icmplib's signature)
        if request.sequence == 1:
            raise icmplib.TimeoutExceeded(timeout)
        error = icmplib.ICMPError("Destination Host Unreachable", None)
        return FakeReply(
            100.0 + 0.004 * (request.sequence + 1), error if request.sequence == 2 else None
        )


async def test_timeouts_and_icmp_errors_are_lost_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("probe.measure.vantage.AsyncSocket", FakeSocket)
    result = await controller_rtt(
        [LOOPBACK], count=4, interval_s=0, timeout_s=1.0, mode="privileged"
    )
    stats = result[LOOPBACK]
    assert isinstance(stats, RttStats)
    assert (stats.sent, stats.received, stats.loss_pct) == (4, 2, 50.0)
    # seq 0: 4 ms, seq 3: 16 ms
    assert stats.rtt_min_ms == pytest.approx(4.0) and stats.rtt_max_ms == pytest.approx(16.0)
    assert stats.ipdv_ms == pytest.approx(12.0)
