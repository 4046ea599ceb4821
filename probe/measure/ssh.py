"""SSH fan-out on asyncssh: one connection per host, shared jump-host tunnels, bounded.

* Every host gets one connection, reused for every command. Each jump host is connected once and
  passed as ``tunnel=`` to every host behind it (a ProxyJump string would reopen the bastion per
  target). Chains (``via: [outer, inner]``) nest the same way.
* Handshakes are bounded per sshd: OpenSSH ``MaxStartups 10:30:100`` starts dropping
  *unauthenticated* connections at 10, so at most ``max_handshakes_per_server`` are in flight per
  ``(hop, address, port)``; the address is the one the hop before the server dials, so two
  bastions that both reach ``10.0.0.5:22`` count as two servers. Tunneled handshakes are
  direct-tcpip channels on the bastion's one *authenticated* connection: neither MaxStartups nor
  MaxSessions (which counts sessions only) limits them there; what they share is the bastion
  sshd child's CPU and one TCP window, so each hop (the controller or a jump connection) also has
  a total bound, ``max_handshakes_per_hop``.
* Sessions are bounded per connection below sshd ``MaxSessions`` (10):
  ``max_channels_per_connection`` for commands plus one control channel that only kills spawned
  processes. Commands and spawned processes themselves live in :mod:`probe.measure.remote`; the
  host-key policy (strict by default, opt-in accept-new) in :mod:`probe.measure.hostkeys`.
* A host that fails to connect is data (a :class:`HostConnection` with a :class:`CellStatus`),
  never an exception out of :meth:`SshPool.connect`.
* A connection lost mid-run (a rebooted host or jump host, a dropped NAT mapping; keepalives
  notice a silent one) is reconnected when the host is next used, jump hosts first, trying for
  ``reconnect_window_s`` (a reboot takes seconds); if that fails, every later use of the host
  raises at once one :class:`HostError` naming the loss and the failed reconnect, so its
  remaining cells become UNREACHABLE with that reason and the run goes on without waiting again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import asyncssh

from probe.errors import HostError, InputError
from probe.measure.hostkeys import HostKeys, KeyCheckingClient, default_accept_new_store
from probe.measure.remote import (
    RemoteProcess,
    Secret,
    SshLink,
    open_session,
    remote_command,
    run_command,
    spawn_script,
)
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, CommandResult, Inventory

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HostConnection:
    """The outcome of connecting one host: ``reason`` says why it failed (or what was noted)."""

    host: str
    ok: bool
    status: CellStatus
    reason: str
    connect_s: float | None


def describe_connect_error(
    exc: BaseException, *, via: str | None, connect_timeout_s: float
) -> tuple[CellStatus, str, bool]:
    """(status, reason, transient) for an exception out of ``asyncssh.connect``."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return CellStatus.HOST_KEY, str(exc), False
    if isinstance(exc, asyncssh.PermissionDenied):
        return CellStatus.AUTH_FAILED, f"authentication failed: {exc.reason}", False
    if isinstance(exc, asyncssh.ChannelOpenError):
        if exc.code == asyncssh.OPEN_CONNECT_FAILED:
            return CellStatus.UNREACHABLE, f"jump host {via} could not connect: {exc.reason}", False
        return CellStatus.ERROR, f"jump host {via} refused to forward: {exc.reason}", False
    if isinstance(exc, asyncssh.ConnectionLost | ConnectionResetError | BrokenPipeError):
        # sshd drops connections past MaxStartups exactly like this: worth another try
        return CellStatus.UNREACHABLE, f"connection closed during handshake: {exc}", True
    if isinstance(exc, asyncssh.DisconnectError):
        transient = exc.code == asyncssh.DISC_TOO_MANY_CONNECTIONS
        return CellStatus.ERROR, f"disconnected: {exc.reason}", transient
    if isinstance(exc, TimeoutError):
        return CellStatus.UNREACHABLE, f"connect timed out after {connect_timeout_s:g} s", True
    if isinstance(exc, ConnectionRefusedError):
        return CellStatus.UNREACHABLE, "connection refused", False
    if isinstance(exc, socket.gaierror):
        return CellStatus.UNREACHABLE, f"name does not resolve: {exc.strerror}", False
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return CellStatus.UNREACHABLE, "no route to host", False
    if isinstance(exc, OSError):
        return CellStatus.UNREACHABLE, f"connect failed: {exc}", True
    return CellStatus.ERROR, f"{type(exc).__name__}: {exc}", False


class SshPool:
    """Connections to the hosts of one inventory. Use as ``async with SshPool(...) as pool``."""

    def __init__(self, inventory: Inventory, options: SshOptions) -> None:
        self._inventory = inventory
        self._options = options
        self._chains = _jump_chains(inventory)
        store = options.accept_new_store
        if options.accept_new and store is None:
            store = default_accept_new_store()
        known = options.known_hosts or inventory.known_hosts
        if known is not None and not Path(known).expanduser().is_file():
            raise InputError("known_hosts file not found", where=known)
        files = [str(Path(known or "~/.ssh/known_hosts").expanduser())]
        self._keys = HostKeys([*files, *([store] if store else [])], store, options.accept_new)
        self._links: dict[str, SshLink] = {}
        self._results: dict[str, HostConnection] = {}
        self._handshakes: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._hop_handshakes: dict[str, asyncio.Semaphore] = {}
        self._spawned: set[RemoteProcess] = set()
        self._reconnecting: dict[str, asyncio.Lock] = {}
        self._lost: dict[str, str] = {}  # host → why it stays lost (one reconnect failed)

    async def __aenter__(self) -> SshPool:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop spawned processes, then close targets before the jump hosts they tunnel through."""
        try:
            async with asyncio.TaskGroup() as tg:
                for remote in list(self._spawned):
                    tg.create_task(remote.stop())
        finally:
            for depth in sorted({link.depth for link in self._links.values()}, reverse=True):
                async with asyncio.TaskGroup() as tg:
                    for name, link in list(self._links.items()):
                        if link.depth == depth:
                            del self._links[name]
                            tg.create_task(_close(link.conn))

    async def connect(
        self,
        names: Sequence[str] | None = None,
        *,
        on_connected: Callable[[HostConnection], None] | None = None,
    ) -> dict[str, HostConnection]:
        """Connect ``names`` (default: every host) and the jump hosts they need, concurrently.

        Returns one :class:`HostConnection` per host attempted, jump hosts included; a host
        whose jump host failed is UNREACHABLE "via bastion …". Outcomes of an earlier call
        (success or failure) are reused, not retried.
        """
        wanted = list(names) if names is not None else [h.name for h in self._inventory.hosts]
        order: list[str] = []
        for name in wanted:
            for hop in (*self._chain(name), name):
                if hop not in order:
                    order.append(hop)
        loop = asyncio.get_running_loop()
        pending = {n: loop.create_future() for n in order if n not in self._results}
        async with asyncio.TaskGroup() as tg:
            for name in pending:
                tg.create_task(self._connect_one(name, pending, on_connected))
        return {name: self._results[name] for name in order}

    async def run(
        self, host: str, argv: Sequence[str], *, timeout_s: float | None = None
    ) -> CommandResult:
        """Run ``argv`` on ``host``. ``exit_status`` is None on timeout or a signal."""
        link = await self._live_link(host)
        timeout = timeout_s if timeout_s is not None else self._options.command_timeout_s
        async with link.sessions:
            return await run_command(host, link.conn, argv, timeout)

    async def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        max_lifetime_s: float,
        gated: bool = False,
        secrets: Sequence[Secret] = (),
        keep_stdin: bool = False,
    ) -> RemoteProcess:
        """Start a long-running ``argv`` whose remote PID is known; :meth:`RemoteProcess.stop` it.

        The remote ``timeout`` ends it after ``max_lifetime_s`` whatever happens here; use
        ``async with await pool.spawn(...) as proc:`` so it is stopped on every exit path.
        ``gated``: the session is opened and the PID known, but ``argv`` starts only at
        :meth:`RemoteProcess.release`. Opening a session costs two round trips to the host plus
        its login shell; a gated start pays that ahead, off the measurement's critical path.
        ``secrets`` reach the command's environment through stdin, never its command line.
        ``keep_stdin``: the command reads the session's stdin itself (:meth:`RemoteProcess.write`)
        and must exit at its end, the lease.
        """
        link = await self._live_link(host)
        script = spawn_script(gated=gated, secrets=secrets, keep_stdin=keep_stdin)
        command = remote_command(["sh", "-c", script, "sh", *argv], max_lifetime_s)
        await link.sessions.acquire()
        try:
            process = await open_session(host, link.conn, command, stdin=True)
        except BaseException:
            link.sessions.release()
            raise
        remote = RemoteProcess(host, tuple(argv), process, link, self._spawned.discard)
        line = ""
        try:
            for secret in secrets:
                process.stdin.write(secret.value + "\n")
            async with asyncio.timeout(self._options.command_timeout_s):
                line = await process.stdout.readline()
            remote.pid = int(line)
        except asyncio.CancelledError:
            remote.abandon()  # no PID, nothing to kill by PID: the remote deadline does the rest
            raise
        except (TimeoutError, ValueError, OSError, asyncssh.Error) as exc:
            remote.abandon()
            _, err = process.collect_output()
            detail = err.strip() or f"no PID on stdout ({line!r})"
            raise HostError(host, CellStatus.ERROR, f"could not start {argv[0]}: {detail}") from exc
        self._spawned.add(remote)
        return remote

    def _chain(self, name: str) -> tuple[str, ...]:
        if name not in self._chains:
            raise InputError("unknown host", where=name)
        return self._chains[name]

    def _link(self, host: str) -> SshLink:
        link = self._links.get(host)
        if link is None:
            result = self._results.get(host)
            if result is not None:
                raise HostError(host, result.status, result.reason)
            raise HostError(host, CellStatus.ERROR, "not connected (SshPool.connect first)")
        return link

    async def _live_link(self, host: str) -> SshLink:
        """The host's link, reconnected once if its connection was lost (jump hosts first)."""
        link = self._link(host)
        if not link.conn.is_closed():
            return link
        async with self._reconnecting.setdefault(host, asyncio.Lock()):
            link = self._links[host]
            if not link.conn.is_closed():
                return link  # another task reconnected it meanwhile
            if host in self._lost:
                raise HostError(host, CellStatus.UNREACHABLE, self._lost[host])
            chain = self._chain(host)
            tunnel = None
            try:
                if chain:
                    tunnel = (await self._live_link(chain[-1])).conn
            except HostError as exc:
                self._lost[host] = f"connection lost; via bastion {exc}"
                raise HostError(host, CellStatus.UNREACHABLE, self._lost[host]) from exc
            log.info("%s: connection lost, reconnecting", host)
            deadline = time.monotonic() + self._options.reconnect_window_s
            while True:
                result = await self._connect_with_retries(host, tunnel, len(chain))
                if result.ok or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if not result.ok:
                self._lost[host] = f"connection lost; reconnect failed: {result.reason}"
                raise HostError(host, CellStatus.UNREACHABLE, self._lost[host])
            return self._links[host]

    async def _connect_one(
        self,
        name: str,
        pending: dict[str, asyncio.Future[HostConnection]],
        on_connected: Callable[[HostConnection], None] | None,
    ) -> None:
        chain = self._chain(name)
        tunnel: asyncssh.SSHClientConnection | None = None
        result: HostConnection | None = None
        if chain:
            jump = chain[-1]
            via = self._results.get(jump) or await pending[jump]
            if via.ok:
                tunnel = self._links[jump].conn
            else:
                reason = via.reason
                if not reason.startswith("via bastion"):  # name the innermost failed hop once
                    reason = f"via bastion {jump}: {reason}"
                result = HostConnection(name, False, CellStatus.UNREACHABLE, reason, None)
        if result is None:
            result = await self._connect_with_retries(name, tunnel, len(chain))
        self._results[name] = result
        pending[name].set_result(result)
        if on_connected is not None:
            on_connected(result)

    async def _connect_with_retries(
        self, name: str, tunnel: asyncssh.SSHClientConnection | None, depth: int
    ) -> HostConnection:
        opts = self._options
        target = self._inventory.host(name).ssh
        hop = self._chain(name)[-1] if depth else ""
        server = self._handshakes.setdefault(
            (hop, target.host, target.port), asyncio.Semaphore(opts.max_handshakes_per_server)
        )
        through_hop = self._hop_handshakes.setdefault(
            hop, asyncio.Semaphore(opts.max_handshakes_per_hop)
        )
        for attempt in range(opts.connect_retries + 1):
            client = KeyCheckingClient(self._keys)
            try:
                async with server, through_hop:
                    start = time.monotonic()
                    conn = await self._attempt(name, tunnel, client)
                    elapsed = time.monotonic() - start
            except asyncssh.KeyImportError as exc:  # a ValueError: unreadable or encrypted key
                keys = ", ".join(target.identity) or "default keys"
                reason = f"cannot use identity {keys}: {exc} (encrypted keys: use ssh-agent)"
                return HostConnection(name, False, CellStatus.AUTH_FAILED, reason, None)
            except (OSError, asyncssh.Error) as exc:
                status, reason, transient = describe_connect_error(
                    exc, via=hop or None, connect_timeout_s=opts.connect_timeout_s
                )
                if status is CellStatus.HOST_KEY and client.verdict:
                    reason = client.verdict
                log.info("%s: connect attempt %d: %s", name, attempt + 1, reason)
                if not transient or attempt == opts.connect_retries:
                    return HostConnection(name, False, status, reason, None)
                await asyncio.sleep(opts.retry_backoff_s * 2**attempt * random.uniform(0.5, 1.5))
                continue
            sessions = asyncio.Semaphore(opts.max_channels_per_connection)
            self._links[name] = SshLink(conn, sessions, asyncio.Semaphore(1), depth)
            return HostConnection(name, True, CellStatus.OK, client.verdict or "", elapsed)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, name: str, tunnel: asyncssh.SSHClientConnection | None, client: KeyCheckingClient
    ) -> asyncssh.SSHClientConnection:
        opts = self._options
        target = self._inventory.host(name).ssh
        async with asyncio.timeout(opts.connect_timeout_s):
            return await asyncssh.connect(
                target.host,
                target.port,
                tunnel=tunnel if tunnel is not None else (),
                username=target.user if target.user is not None else (),
                client_keys=list(target.identity) if target.identity else (),
                known_hosts=self._keys.known,
                client_factory=lambda: client,
                config=None,  # the inventory decides, not ~/.ssh/config
                keepalive_interval=opts.keepalive_interval_s,
                login_timeout=opts.connect_timeout_s,
            )


async def _close(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    try:
        async with asyncio.timeout(5):
            await conn.wait_closed()
    except TimeoutError:
        conn.abort()


def _jump_chains(inventory: Inventory) -> dict[str, tuple[str, ...]]:
    """Each host's jump chain; a jump host is reached through the hops before it in a chain."""
    names = {h.name for h in inventory.hosts}
    chains = {h.name: h.ssh.via for h in inventory.hosts}
    for host in inventory.hosts:
        via = host.ssh.via
        for i, jump in enumerate(via):
            if jump not in names:
                raise InputError(f"jump host {jump!r} is not in the inventory", where=host.name)
            if jump == host.name or jump in via[:i]:
                raise InputError(f"jump chain {list(via)} loops", where=host.name)
            own = inventory.host(jump).ssh.via or chains[jump]
            if own and own != via[:i]:
                raise InputError(
                    f"reached via {list(own)}, but {host.name} reaches it via {list(via[:i])}",
                    where=jump,
                )
            chains[jump] = via[:i]
    return chains
