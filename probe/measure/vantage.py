"""Controller → host RTT with icmplib, for when the controller itself is a vantage point.

No subprocess, no SSH: the controller sends echo requests itself. Raw ICMP sockets need root or
CAP_NET_RAW; Linux also offers unprivileged ICMP datagram sockets to groups listed in
``net.ipv4.ping_group_range`` (macOS to everyone). ``icmp_mode`` finds out which one works by
opening it, which sends nothing and is the only check that covers capabilities, sysctls and
seccomp alike.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Sequence
from typing import Literal

from icmplib import (
    AsyncSocket,
    ICMPError,
    ICMPLibError,
    ICMPRequest,
    ICMPv4Socket,
    ICMPv6Socket,
    SocketPermissionError,
    TimeoutExceeded,
    async_resolve,
)

from probe.errors import InputError
from probe.stats import RttStats, rtt_stats
from probe.tools.ping import PingProbe, validate_address

IcmpMode = Literal["privileged", "unprivileged", "unavailable"]

_MAX_SEQ = 0xFFFF
_UNAVAILABLE = (
    "ICMP sockets unavailable: needs root / CAP_NET_RAW, or net.ipv4.ping_group_range "
    "covering the controller's group"
)


def icmp_mode() -> IcmpMode:
    """Which ICMP socket this process may open: raw ("privileged"), datagram, or neither.

    Checks IPv4 only; an IPv6 address whose socket cannot be opened gets its own reason.
    """
    if _can_open(socket.SOCK_RAW):
        return "privileged"
    if _can_open(socket.SOCK_DGRAM):
        return "unprivileged"
    return "unavailable"


def _can_open(kind: socket.SocketKind) -> bool:
    try:
        with socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP):
            return True
    except OSError:
        return False


async def controller_rtt(
    addresses: Sequence[str],
    *,
    count: int,
    interval_s: float,
    timeout_s: float,
    max_concurrent: int = 32,
    mode: IcmpMode | None = None,
) -> dict[str, RttStats | str]:
    """RTT statistics from this controller to each address, or the reason there are none.

    Probes to one address go one at a time: send, wait up to ``timeout_s`` for the reply, sleep
    ``interval_s``; so one address takes at most ``count · (timeout_s + interval_s)``. Addresses
    run concurrently, at most ``max_concurrent`` at once. ``mode`` overrides detection.
    """
    if count < 1 or count > _MAX_SEQ + 1:
        raise InputError(f"icmp count must be 1..{_MAX_SEQ + 1}, not {count}")
    if not (interval_s >= 0 and timeout_s > 0):
        raise InputError(
            f"icmp interval must be ≥ 0 s and timeout > 0 s: {interval_s}, {timeout_s}"
        )
    mode = icmp_mode() if mode is None else mode
    unique = list(dict.fromkeys(addresses))
    if mode == "unavailable":
        return dict.fromkeys(unique, _UNAVAILABLE)

    results: dict[str, RttStats | str] = {}
    limit = asyncio.Semaphore(max_concurrent)

    async def measure(address: str, ident: int) -> None:
        async with limit:
            results[address] = await _measure(
                address,
                ident=ident,
                count=count,
                interval_s=interval_s,
                timeout_s=timeout_s,
                privileged=mode == "privileged",
            )

    async with asyncio.TaskGroup() as group:
        # Raw sockets see every echo reply on the host: a distinct identifier per address keeps
        # icmplib's (identifier, seq) matching apart. The kernel picks it for datagram sockets.
        for i, address in enumerate(unique):
            group.create_task(measure(address, (os.getpid() + i) & _MAX_SEQ))
    return {address: results[address] for address in unique}


async def _measure(
    address: str, *, ident: int, count: int, interval_s: float, timeout_s: float, privileged: bool
) -> RttStats | str:
    """One address; every expected failure comes back as a reason string."""
    try:
        validate_address(address)
        ip = address if _is_ip(address) else str((await async_resolve(address))[0])
        icmp_socket = ICMPv6Socket if ipaddress.ip_address(ip).version == 6 else ICMPv4Socket
        probes: list[PingProbe] = []
        with AsyncSocket(icmp_socket(None, privileged)) as sock:
            for seq in range(count):
                if seq:
                    await asyncio.sleep(interval_s)
                request = ICMPRequest(destination=ip, id=ident, sequence=seq)
                sock.send(request)
                try:
                    reply = await sock.receive(request, timeout_s)
                    reply.raise_for_status()  # e.g. destination unreachable: a lost probe
                except (TimeoutExceeded, ICMPError):
                    probes.append(PingProbe(seq=seq, rtt_ms=None))
                    continue
                probes.append(PingProbe(seq=seq, rtt_ms=float(reply.time - request.time) * 1e3))
    except InputError as exc:
        return str(exc)
    except SocketPermissionError:
        kind = "raw" if privileged else "datagram (ping_group_range)"
        return f"icmp: not permitted to open a {kind} ICMP socket"
    except ICMPLibError as exc:
        return f"icmp: {exc}"
    return rtt_stats(probes)


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
