"""One single-stream iperf3 test between two connected hosts, with its server's whole life.

The server is started per test on a free port (``-s -1``: one test, then it exits; an idle
timeout ends it if no client ever comes), readiness is *read* from its output rather than slept
for, and it is stopped by PID on every exit path (``async with``), cancellation included.
"Server busy" (someone else's test on that port) and "address in use" move to another port with
backoff. A test can be *armed* ahead of its turn (server listening, client session open but
gated) and *fired* later, so the scheduler pays SSH set-up while the hosts' previous tests run.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from probe.errors import HostError, require
from probe.model import CellStatus, CommandResult, PortRange
from probe.plan import BandwidthTest
from probe.store.records import Iperf3MultiRecord, Iperf3Record
from probe.tools.iperf3 import (
    BUSY_RETRIES,
    CONGESTION_NAME,
    MAX_STREAMS,
    ClientAuth,
    IperfResult,
    ServerAuth,
    busy_backoff_s,
    connect_failure,
    iperf3_client_argv,
    iperf3_outcome,
    iperf3_server_argv,
    is_port_in_use,
    is_server_busy,
    stall_reason,
)

if TYPE_CHECKING:  # remote imports asyncssh, which `probe --help` must not
    from probe.measure.remote import Secret

SERVER_READY_TIMEOUT_S = 10.0
SERVER_IDLE_TIMEOUT_S = 30
SERVER_EXIT_WAIT_S = 3.0
#: ``auto``: authenticate where both ends' iperf3 can; ``required``: a pair that cannot is not
#: measured (its cells say why); ``off``: never.
AuthMode = Literal["auto", "off", "required"]
AUTH_MODES: tuple[AuthMode, ...] = ("auto", "off", "required")
_NOT_LOCAL = "Cannot assign requested address"  # -B with an address the host does not have
IPERF3_PORTS = PortRange(5201, 5264)


def _never(_text: str) -> bool:
    return False


class Process(Protocol):
    """What a test needs of a started remote process (``ssh.RemoteProcess``, or a fake)."""

    @property
    def ended(self) -> bool: ...

    @property
    def connection_lost(self) -> bool: ...

    async def read_until(self, ready: str | Callable[[str], bool], timeout_s: float) -> bool: ...

    def release(self) -> None: ...

    async def wait(self, timeout_s: float) -> CommandResult: ...

    async def stop(self, grace_s: float = 2.0) -> CommandResult: ...


class CommandRunner(Protocol):
    """What the measurement needs from SSH: ``SshPool`` in production, fakes in unit tests."""

    async def run(
        self, host: str, argv: Sequence[str], *, timeout_s: float | None = None
    ) -> CommandResult: ...

    async def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        max_lifetime_s: float,
        gated: bool = False,
        secrets: Sequence[Secret] = (),
    ) -> Process: ...


@dataclass(frozen=True, slots=True)
class BandwidthOptions:
    """How each iperf3 test runs; checked when built, like ``RunOptions``."""

    duration_s: int = 10
    omit_s: int = 2
    streams: int = 1
    #: ``--iperf3-ports``: where servers listen on a host whose inventory entry names none
    iperf3_ports: PortRange = IPERF3_PORTS
    #: iperf3 ≥ 3.7 ``--connect-timeout``: a firewall that drops the port fails the test fast
    connect_timeout_ms: int = 5000
    congestion: str | None = None  # iperf3 -C: the TCP congestion control the sender uses
    auth: AuthMode = "auto"

    def __post_init__(self) -> None:
        require(self, "duration_s", self.duration_s >= 1, "≥ 1 s")  # iperf3 -t: whole seconds
        require(self, "omit_s", self.omit_s >= 0, "≥ 0 s")
        require(self, "streams", 1 <= self.streams <= MAX_STREAMS, f"1…{MAX_STREAMS}")
        ports_ok = self.iperf3_ports.valid
        require(self, "iperf3_ports", ports_ok, "ports LO-HI within 1…65535, LO ≤ HI")
        require(self, "connect_timeout_ms", self.connect_timeout_ms >= 1, "≥ 1 ms")
        cc_ok = self.congestion is None or CONGESTION_NAME.fullmatch(self.congestion) is not None
        require(self, "congestion", cc_ok, "a congestion control name: [a-z0-9_], ≤ 15")
        require(self, "auth", self.auth in AUTH_MODES, "auto, off or required")


@dataclass(frozen=True, slots=True)
class PairAuth:
    """How one test authenticates: the files each end names, and the client's password."""

    server: ServerAuth
    client: ClientAuth
    password: Secret


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What one directed test left: a result or a status with its reason, and what was run."""

    status: CellStatus
    reason: str | None
    result: IperfResult | None
    argv: tuple[str, ...]
    attempts: int
    test_s: float | None = None  # the client's wall time, "go" to exit: iperf3's own cost
    authenticated: bool = False
    # the server listened on the test's address only (-B); False: the host refused it as not
    # its own (a cloud's 1:1 NAT) and it listened on every address; None: not asked to bind
    bound: bool | None = None

    def record(
        self, test: BandwidthTest, t: float, address: str, *, multi: bool = False
    ) -> Iperf3Record | Iperf3MultiRecord:
        """The test's record of samples.jsonl (``address``: the server's, dialled);
        ``multi``: the ``-P N`` repeat of a test."""
        src, dst = test.direction
        reason = self.reason
        if reason is None and test.reverse and self.result is not None:
            reason = test.REVERSE_NOTE  # said with the figures, so nobody reads a 0 cwnd
        return (Iperf3MultiRecord if multi else Iperf3Record)(
            src=src, dst=dst, client=test.client, server=test.server, reverse=test.reverse,
            status=self.status, reason=reason, t=t, argv=self.argv, attempts=self.attempts,
            test_s=None if self.test_s is None else round(self.test_s, 3), result=self.result,
            authenticated=self.authenticated, network=test.network, address=address,
            server_bound=self.bound,
        )  # fmt: skip


def turn_bound_s(options: BandwidthOptions) -> float:
    """How long one test keeps its hosts at most (client deadline, server exit, slack)."""
    return client_timeout_s(options) + SERVER_EXIT_WAIT_S + 5


def client_timeout_s(options: BandwidthOptions) -> float:
    return options.duration_s + options.omit_s + options.connect_timeout_ms / 1000 + 15


class ArmedTest:
    """One directed test, set up ahead (server listening, client session open) and fired later.

    Starting a test costs two SSH sessions (two round trips each, plus the host's login shell)
    before iperf3's own handshake. :meth:`arm` pays that while the hosts are still busy with
    their previous tests — an idle listener and a shell blocked on ``read`` move no packets —
    and :meth:`fire` only says "go" to the client. Use ``async with``: both processes are
    stopped by PID on every exit path.
    """

    def __init__(
        self,
        runner: CommandRunner,
        *,
        client: str,
        server: str,
        server_address: str,
        reverse: bool,
        options: BandwidthOptions,
        port_index: int,
        hold_s: float = 0.0,
        bind: str | None = None,
        auth: PairAuth | None = None,
    ) -> None:
        self.runner = runner
        self.bind, self.auth = bind, auth
        self._bind_asked = bind is not None
        self.client, self.server, self.server_address = client, server, server_address
        self.reverse, self.options, self.port_index = reverse, options, port_index
        self.client_timeout_s = client_timeout_s(options)
        self.hold_s = hold_s  # the longest it may wait armed; both ends outlive it
        self.attempt = 0
        self.argv: tuple[str, ...] = ()
        self.port: int | None = None  # where the server listens, once started
        self._server: Process | None = None
        self._client: Process | None = None

    async def __aenter__(self) -> ArmedTest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disarm()

    def _outcome(
        self,
        status: CellStatus,
        reason: str | None,
        result: IperfResult | None = None,
        test_s: float | None = None,
    ) -> TestOutcome:
        bound = (self.bind is not None) if self._bind_asked else None
        auth = self.auth is not None
        return TestOutcome(status, reason, result, self.argv, self.attempt + 1, test_s, auth, bound)

    async def disarm(self) -> None:
        procs = [p for p in (self._client, self._server) if p is not None]
        self._client = self._server = None
        for proc in procs:
            await proc.stop()

    async def arm(self) -> TestOutcome | None:
        """Start the server and the gated client; None when armed, else why it cannot run."""
        while self.attempt <= BUSY_RETRIES:
            ports = self.options.iperf3_ports
            port = ports.lo + (self.port_index + self.attempt * 7) % len(ports)
            self.port = port
            idle_s = math.ceil(self.hold_s) + SERVER_IDLE_TIMEOUT_S
            try:
                server = await self.runner.spawn(
                    self.server,
                    iperf3_server_argv(
                        port,
                        idle_timeout_s=idle_s,
                        bind=self.bind,
                        auth=None if self.auth is None else self.auth.server,
                    ),
                    max_lifetime_s=self.hold_s + self.client_timeout_s + 30,
                )
            except HostError as exc:
                return self._outcome(CellStatus(exc.status), f"iperf3 server on {exc}")
            self._server = server
            if not await server.read_until("Server listening", SERVER_READY_TIMEOUT_S):
                done = await server.stop()
                self._server = None
                text = done.stdout + done.stderr
                if _NOT_LOCAL in text and self.bind is not None:
                    # the test's address is not the host's own (1:1 NAT, a cloud's public
                    # address): it can only listen on every address
                    self.bind = None
                    continue
                if is_port_in_use(text):
                    await self._retry()
                    continue
                outcome = iperf3_outcome(done)
                status, reason = outcome if isinstance(outcome, tuple) else (CellStatus.ERROR, "")
                reason = reason or f"did not start: {text.strip()[:200]}"
                return self._outcome(status, f"iperf3 server on {self.server}: {reason}")
            self.argv = tuple(
                iperf3_client_argv(
                    self.server_address,
                    port,
                    duration_s=self.options.duration_s,
                    omit_s=self.options.omit_s,
                    reverse=self.reverse,
                    streams=self.options.streams,
                    connect_timeout_ms=self.options.connect_timeout_ms,
                    congestion=self.options.congestion,
                    auth=None if self.auth is None else self.auth.client,
                )
            )
            try:
                self._client = await self.runner.spawn(
                    self.client,
                    self.argv,
                    max_lifetime_s=self.hold_s + self.client_timeout_s,
                    gated=True,
                    secrets=() if self.auth is None else (self.auth.password,),
                )
            except HostError as exc:
                await self.disarm()
                return self._outcome(CellStatus(exc.status), f"iperf3 client on {exc}")
            return None
        return self._busy()

    async def fire(self) -> TestOutcome:
        """Run the armed test (arming first if needed); retries a busy server on another port."""
        while True:
            if (
                self._client is None
                or self._server is None
                or self._client.ended
                or self._server.ended
            ):
                # not armed, or an armed end died while it waited (deadline, lost connection)
                await self.disarm()
                if self.attempt > BUSY_RETRIES:
                    return self._busy()
                if (failed := await self.arm()) is not None:
                    return failed
            assert self._client is not None and self._server is not None
            client, server = self._client, self._server
            client.release()
            done = await client.wait(self.client_timeout_s)
            # A one-off server exits by itself after its test: waiting for that end of stream
            # costs one trip, a kill by PID two. A client that never reached it (a firewall that
            # drops or rejects the port) left it listening: no end to wait for, the kill it is.
            if connect_failure(done.stdout + done.stderr) is None:
                await server.read_until(_never, SERVER_EXIT_WAIT_S)
            await self.disarm()
            if is_server_busy(done.stdout + done.stderr):
                await self._retry()
                continue
            outcome = iperf3_outcome(done)
            # a healthy result the client printed stands; without one, or with a stall, a lost
            # end is the reason (its lease took the iperf3 at that end with it, and the client
            # only saw the effect)
            ends = (("client", self.client, client), ("server", self.server, server))
            lost = [f"iperf3 {role} on {name}" for role, name, end in ends if end.connection_lost]
            if lost and not isinstance(outcome, IperfResult):
                return self._outcome(
                    CellStatus.UNREACHABLE, f"{lost[0]}: connection lost during the test"
                )
            who = f"iperf3 client on {self.client} → server {self.server}"
            if not isinstance(outcome, IperfResult):
                return self._outcome(outcome[0], f"{who}: {outcome[1]}", test_s=done.elapsed_s)
            if (why := stall_reason(outcome)) is not None:
                if lost:  # the stall was the connection going away: say that, as above
                    return self._outcome(
                        CellStatus.UNREACHABLE,
                        f"{lost[0]}: connection lost during the test ({why})",
                        outcome,
                        done.elapsed_s,
                    )
                # kept with its result: the figures stay inspectable, the matrix uses none
                return self._outcome(CellStatus.STALLED, f"{who}: {why}", outcome, done.elapsed_s)
            return self._outcome(CellStatus.OK, None, outcome, done.elapsed_s)

    async def _retry(self) -> None:
        await asyncio.sleep(busy_backoff_s(self.attempt))
        self.attempt += 1

    def _busy(self) -> TestOutcome:
        self.attempt = min(self.attempt, BUSY_RETRIES)
        ports = self.options.iperf3_ports
        port = ports.lo + self.port_index % len(ports)
        return self._outcome(
            CellStatus.BUSY,
            f"iperf3 server on {self.server} busy or its ports in use (from {port}) "
            f"after {BUSY_RETRIES + 1} attempts",
        )
