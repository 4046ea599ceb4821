"""One single-stream iperf3 test between two connected hosts, with its server's whole life.

The server is started per test on a free port (``-s -1``: one test, then it exits; an idle
timeout ends it if no client ever comes), readiness is *read* from its output rather than slept
for, and it is stopped by PID on every exit path (``async with``), cancellation included.
"Server busy" (someone else's test on that port) and "address in use" move to another port with
backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from probe.errors import HostError
from probe.model import CellStatus, CommandResult
from probe.tools.iperf3 import (
    BUSY_RETRIES,
    IperfResult,
    busy_backoff_s,
    iperf3_client_argv,
    iperf3_outcome,
    iperf3_server_argv,
    is_port_in_use,
    is_server_busy,
)

SERVER_READY_TIMEOUT_S = 10.0
SERVER_IDLE_TIMEOUT_S = 30
SERVER_EXIT_WAIT_S = 3.0


def _never(_text: str) -> bool:
    return False


class CommandRunner(Protocol):
    """What the measurement needs from SSH: ``SshPool`` in production, fakes in unit tests."""

    async def run(
        self, host: str, argv: Sequence[str], *, timeout_s: float | None = None
    ) -> CommandResult: ...

    async def spawn(self, host: str, argv: Sequence[str], *, max_lifetime_s: float) -> Any: ...


@dataclass(frozen=True, slots=True)
class BandwidthOptions:
    duration_s: int = 10
    omit_s: int = 2
    streams: int = 1
    port_base: int = 5201
    port_span: int = 64  # the ports probe may use on a host: port_base .. port_base+span-1
    connect_timeout_ms: int = 5000


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What one directed test left: a result or a status with its reason, and what was run."""

    status: CellStatus
    reason: str | None
    result: IperfResult | None
    argv: tuple[str, ...]
    attempts: int

    def record(self, src: str, dst: str, client: str, server: str, reverse: bool) -> dict[str, Any]:
        return {
            "kind": "iperf3",
            "src": src,
            "dst": dst,
            "client": client,
            "server": server,
            "reverse": reverse,
            "status": str(self.status),
            "reason": self.reason,
            "argv": list(self.argv),
            "attempts": self.attempts,
            "result": asdict(self.result) if self.result else None,
        }


async def run_test(
    runner: CommandRunner,
    *,
    client: str,
    server: str,
    server_address: str,
    reverse: bool,
    options: BandwidthOptions,
    slot: int,
) -> TestOutcome:
    """Run client→server (data flows client→server, or server→client with ``reverse``).

    ``slot`` (the test's index in its round) picks the first port, so concurrent tests of a round
    never race for one port on the same host.
    """
    budget = options.duration_s + options.omit_s
    client_timeout = budget + options.connect_timeout_ms / 1000 + 15
    argv: tuple[str, ...] = ()
    last: tuple[CellStatus, str] = (CellStatus.ERROR, "no attempt")
    for attempt in range(BUSY_RETRIES + 1):
        port = options.port_base + (slot + attempt * 7) % options.port_span
        server_argv = iperf3_server_argv(port, idle_timeout_s=SERVER_IDLE_TIMEOUT_S)
        try:
            proc = await runner.spawn(server, server_argv, max_lifetime_s=client_timeout + 30)
        except HostError as exc:
            return TestOutcome(
                CellStatus(exc.status), f"server {server}: {exc}", None, argv, attempt + 1
            )
        async with proc:
            if not await proc.read_until("Server listening", SERVER_READY_TIMEOUT_S):
                done = await proc.stop()
                text = done.stdout + done.stderr
                if is_port_in_use(text):
                    last = (CellStatus.BUSY, f"port {port} in use on {server}")
                    await asyncio.sleep(busy_backoff_s(attempt))
                    continue
                outcome = iperf3_outcome(done)
                status, reason = outcome if isinstance(outcome, tuple) else (CellStatus.ERROR, "")
                reason = reason or f"iperf3 server on {server} did not start: {text.strip()[:200]}"
                return TestOutcome(status, f"server {server}: {reason}", None, argv, attempt + 1)
            argv = tuple(
                iperf3_client_argv(
                    server_address,
                    port,
                    duration_s=options.duration_s,
                    omit_s=options.omit_s,
                    reverse=reverse,
                    streams=options.streams,
                    connect_timeout_ms=options.connect_timeout_ms,
                )
            )
            try:
                done = await runner.run(client, argv, timeout_s=client_timeout)
            except HostError as exc:
                return TestOutcome(
                    CellStatus(exc.status), f"client {client}: {exc}", None, argv, attempt + 1
                )
            # A one-off server exits by itself after its test: waiting for that end of stream
            # costs one trip, a kill by PID two (the stop below then has nothing to kill).
            await proc.read_until(_never, SERVER_EXIT_WAIT_S)
        if is_server_busy(done.stdout + done.stderr):
            last = (CellStatus.BUSY, f"iperf3 server on {server}:{port} busy")
            await asyncio.sleep(busy_backoff_s(attempt))
            continue
        outcome = iperf3_outcome(done)
        if isinstance(outcome, IperfResult):
            return TestOutcome(CellStatus.OK, None, outcome, argv, attempt + 1)
        return TestOutcome(outcome[0], outcome[1], None, argv, attempt + 1)
    return TestOutcome(
        last[0], f"{last[1]} after {BUSY_RETRIES + 1} attempts", None, argv, BUSY_RETRIES + 1
    )
