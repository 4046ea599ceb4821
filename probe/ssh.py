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
  processes.
* Remote commands are argv lists: ``env LC_ALL=C timeout -k 2 <T> <argv…>`` joined with
  ``shlex.join``. coreutils ``timeout`` ends the remote process by itself even if the controller
  dies, so no ping or iperf3 server outlives its deadline.
* A host that fails to connect is data (a :class:`HostConnection` with a :class:`CellStatus`),
  never an exception out of :meth:`SshPool.connect`.
* Host keys: strict against known_hosts by default. ``accept_new`` records an *unknown* key in a
  probe-owned store, loudly (a log line and the host's reason say so); a *changed* key is always
  refused. Lookup name is the inventory ``ssh.host`` (``[host]:port`` off port 22).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import random
import re
import shlex
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import asyncssh

from probe.errors import HostError, InputError
from probe.model import CellStatus, CommandResult, Inventory

log = logging.getLogger(__name__)

KILL_AFTER_S = 2  # `timeout -k`: SIGKILL this long after the SIGTERM at the deadline
REMOTE_SLACK_S = 1  # remote deadline = local one + this, so the controller normally sees it first
#: The session's stdin is the command's lease: a watcher waits for its EOF — the channel closed,
#: the controller or its connection gone — and then TERMs the command, if the command is still
#: the watcher's parent (so an exited command's PID, maybe reused, is never signalled). Without
#: it an idle iperf3 server orphaned by a killed controller would live until its idle timeout.
#: (An asynchronous list's stdin is /dev/null *before* its redirections: stdin goes via fd 3.)
_LEASE = (
    "exec 3<&0; "
    "(cat <&3 >/dev/null 2>&1; read -r s </proc/self/stat 2>/dev/null || exit 0; s=${s##*) }; "
    'set -- $s; [ "$2" = "$$" ] && kill -s TERM "$$") >/dev/null 2>&1 & '
)
#: Print our PID, then become the command (same PID), held by the lease.
SPAWN_SCRIPT = "echo $$; " + _LEASE + 'exec "$@" </dev/null 3<&-'
#: As SPAWN_SCRIPT, but wait for a "go" line first; EOF or anything else (the controller went
#: away) ends it without running the command.
GATED_SPAWN_SCRIPT = (
    'echo $$; IFS= read -r go && [ "$go" = go ] || exit 0; ' + _LEASE + 'exec "$@" </dev/null 3<&-'
)
KILL_SCRIPT = 'kill -s "$1" "$2"'  # the shell builtin: no /bin/kill needed, no name matching
_DEFAULT_PORT = 22

Ready = str | re.Pattern[str] | Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class SshOptions:
    """How the pool connects and runs commands. Times in seconds."""

    connect_timeout_s: float = 10.0  # TCP + SSH handshake + auth, per attempt
    command_timeout_s: float = 60.0
    keepalive_interval_s: float = 15.0
    connect_retries: int = 2  # extra attempts after a transient connect failure
    retry_backoff_s: float = 0.5  # first back-off; doubles per attempt, ×U(0.5, 1.5) jitter
    max_handshakes_per_server: int = 8  # below sshd MaxStartups 10
    max_handshakes_per_hop: int = 64  # through one bastion connection (or from the controller)
    max_channels_per_connection: int = 8  # + 1 control channel, below sshd MaxSessions 10
    known_hosts: str | None = None  # None: the inventory's, else ~/.ssh/known_hosts
    accept_new: bool = False  # record unknown host keys in the store (never a changed key)
    accept_new_store: str | None = None  # probe-owned known_hosts; trusted whenever given


@dataclass(frozen=True, slots=True)
class HostConnection:
    """The outcome of connecting one host: ``reason`` says why it failed (or what was noted)."""

    host: str
    ok: bool
    status: CellStatus
    reason: str
    connect_s: float | None


def default_accept_new_store() -> str:
    """Where ``--accept-new`` records keys unless told otherwise (never ~/.ssh/known_hosts)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return str(Path(state) / "probe" / "known_hosts")


def remote_command(argv: Sequence[str], deadline_s: float) -> str:
    """The command line sent for ``argv``: C locale, a remote deadline, every argument quoted."""
    wrapper = ["env", "LC_ALL=C", "timeout", "-k", str(KILL_AFTER_S), str(math.ceil(deadline_s))]
    return shlex.join([*wrapper, *argv])


def known_hosts_name(host: str, port: int) -> str:
    """The known_hosts lookup name: ``host``, or ``[host]:port`` off the default port."""
    return host if port == _DEFAULT_PORT else f"[{host}]:{port}"


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


class _HostKeys:
    """known_hosts files plus the accept-new store, and the keys accepted during this run."""

    def __init__(self, files: Sequence[str], store: str | None, accept_new: bool) -> None:
        present = [f for f in files if Path(f).is_file()]
        self.known = (
            asyncssh.read_known_hosts(present) if present else asyncssh.import_known_hosts("")
        )
        self._store = store
        self._accept_new = accept_new
        self._accepted: dict[str, asyncssh.SSHKey] = {}

    def judge(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> tuple[bool, str]:
        """Called by asyncssh only for a key *not* already trusted: (accept, what to report)."""
        name = known_hosts_name(host, port)
        offered = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
        earlier = self._accepted.get(name)
        if earlier is not None and earlier == key:  # a second inventory entry, same sshd
            return True, f"accepted new host key {offered} for {name}"
        trusted, ca_keys, *_ = self.known.match(host, addr, None if port == _DEFAULT_PORT else port)
        if trusted or ca_keys or earlier is not None:
            return False, (
                f"host key for {name} CHANGED: offered {offered}, known_hosts holds another; "
                "refused (also with --accept-new); remove the stale entry only if you expect this"
            )
        if not self._accept_new or self._store is None:
            return False, (
                f"unknown host key for {name}: {offered}; verify it, then add it to known_hosts "
                "or re-run with --accept-new"
            )
        try:
            self._record(name, key)
        except OSError as exc:
            return False, f"unknown host key for {name}: {offered}; cannot record it: {exc}"
        self._accepted[name] = key
        message = f"accepted new host key {offered} for {name} into {self._store}"
        log.warning("%s", message)
        return True, message

    def _record(self, name: str, key: asyncssh.SSHKey) -> None:
        assert self._store is not None
        path = Path(self._store)
        path.parent.mkdir(parents=True, exist_ok=True)
        alg, blob = key.export_public_key("openssh").decode("ascii").split()[:2]
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as f:
            f.write(f"{name} {alg} {blob}\n")


class _Client(asyncssh.SSHClient):
    """Remembers the host-key verdict so a rejection can name the key that was offered."""

    def __init__(self, keys: _HostKeys) -> None:
        self._keys = keys
        self.verdict: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        accepted, self.verdict = self._keys.judge(host, addr, port, key)
        return accepted


@dataclass(slots=True)
class _Link:
    """A live connection and the sessions it may still open."""

    conn: asyncssh.SSHClientConnection
    sessions: asyncio.Semaphore
    control: asyncio.Semaphore  # kills of spawned processes never wait behind them
    depth: int


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
        self._keys = _HostKeys([*files, *([store] if store else [])], store, options.accept_new)
        self._links: dict[str, _Link] = {}
        self._results: dict[str, HostConnection] = {}
        self._handshakes: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._hop_handshakes: dict[str, asyncio.Semaphore] = {}
        self._spawned: set[RemoteProcess] = set()

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
        link = self._link(host)
        timeout = timeout_s if timeout_s is not None else self._options.command_timeout_s
        async with link.sessions:
            return await _run_on(host, link.conn, argv, timeout)

    async def spawn(
        self, host: str, argv: Sequence[str], *, max_lifetime_s: float, gated: bool = False
    ) -> RemoteProcess:
        """Start a long-running ``argv`` whose remote PID is known; :meth:`RemoteProcess.stop` it.

        The remote ``timeout`` ends it after ``max_lifetime_s`` whatever happens here; use
        ``async with await pool.spawn(...) as proc:`` so it is stopped on every exit path.
        ``gated``: the session is opened and the PID known, but ``argv`` starts only at
        :meth:`RemoteProcess.release`. Opening a session costs two round trips to the host plus
        its login shell; a gated start pays that ahead, off the measurement's critical path.
        """
        link = self._link(host)
        script = GATED_SPAWN_SCRIPT if gated else SPAWN_SCRIPT
        command = remote_command(["sh", "-c", script, "sh", *argv], max_lifetime_s)
        await link.sessions.acquire()
        try:
            process = await _open(host, link.conn, command, stdin=True)
        except BaseException:
            link.sessions.release()
            raise
        remote = RemoteProcess(host, tuple(argv), process, link, self._spawned.discard)
        line = ""
        try:
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

    def _link(self, host: str) -> _Link:
        link = self._links.get(host)
        if link is None:
            result = self._results.get(host)
            if result is not None:
                raise HostError(host, result.status, result.reason)
            raise HostError(host, CellStatus.ERROR, "not connected (SshPool.connect first)")
        if link.conn.is_closed():
            raise HostError(host, CellStatus.UNREACHABLE, "connection lost")
        return link

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
            client = _Client(self._keys)
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
            self._links[name] = _Link(conn, sessions, asyncio.Semaphore(1), depth)
            return HostConnection(name, True, CellStatus.OK, client.verdict or "", elapsed)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, name: str, tunnel: asyncssh.SSHClientConnection | None, client: _Client
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


class RemoteProcess:
    """A process started by :meth:`SshPool.spawn`, known by its remote PID."""

    def __init__(
        self,
        host: str,
        argv: tuple[str, ...],
        process: asyncssh.SSHClientProcess[str],
        link: _Link,
        on_done: Callable[[RemoteProcess], None],
    ) -> None:
        self.host = host
        self.argv = argv
        self.pid = 0
        self._on_done = on_done
        self._process = process
        self._link = link
        self._started = time.monotonic()
        self._stdout = ""
        self._stderr = ""
        self._stopping: asyncio.Task[CommandResult] | None = None
        self._released = False

    @property
    def output(self) -> str:
        """stdout read so far (after the PID line)."""
        return self._stdout

    @property
    def ended(self) -> bool:
        """The process exited, or the connection it ran on is gone."""
        return self._process.returncode is not None or self._link.conn.is_closed()

    @property
    def connection_lost(self) -> bool:
        return self._link.conn.is_closed()

    def release(self) -> None:
        """Let a gated process (``spawn(..., gated=True)``) become its command.

        Half a round trip: one line on stdin (which stays open: it is the lease). A process
        that already ended (its remote deadline, a lost connection) is left alone; :meth:`wait`
        then reports it.
        """
        self._started = time.monotonic()  # elapsed_s counts from here: the command's own time
        with contextlib.suppress(OSError, asyncssh.Error):
            self._process.stdin.write("go\n")

    async def wait(self, timeout_s: float) -> CommandResult:
        """Read to the end of output within ``timeout_s``, then :meth:`stop` (a kill if late).

        ``exit_status`` is None when it had to be killed, as for :meth:`SshPool.run`.
        """
        await self.read_until(_never, timeout_s)
        return await self.stop()

    async def __aenter__(self) -> RemoteProcess:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def read_until(self, ready: Ready, timeout_s: float) -> bool:
        """Read stdout until ``ready`` matches it (a substring, a regex, or a predicate).

        False if the process ended or ``timeout_s`` passed first; :meth:`stop` then tells why.
        """
        matches = _matcher(ready)
        try:
            async with asyncio.timeout(timeout_s):
                while not matches(self._stdout):
                    chunk = await self._process.stdout.read(4096)
                    if not chunk:
                        return False
                    self._stdout += chunk
        except TimeoutError:
            return False
        return True

    async def stop(self, grace_s: float = 2.0) -> CommandResult:
        """Kill by PID (TERM, then KILL after ``grace_s``) unless it ended; return its output.

        Safe to call twice. If the caller is cancelled meanwhile, the kill still completes.
        """
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(grace_s))
        try:
            return await asyncio.shield(self._stopping)
        except asyncio.CancelledError:
            await self._stopping  # finish the kill, then let the cancellation through
            raise

    async def _stop(self, grace_s: float) -> CommandResult:
        try:
            if self._process.returncode is not None:  # it ended by itself: nothing to kill
                await self._exited(grace_s)
            elif not await self._exited(0.05):
                await self._signal("TERM")
                if not await self._exited(grace_s):
                    await self._signal("KILL")
                    await self._exited(grace_s)
        finally:
            self.abandon()
        status = self._process.returncode
        return CommandResult(
            argv=self.argv,
            exit_status=status if status is not None and status >= 0 else None,
            stdout=self._stdout,
            stderr=self._stderr,
            elapsed_s=time.monotonic() - self._started,
        )

    async def _exited(self, within_s: float) -> bool:
        """Wait up to ``within_s`` for the channel to close, keeping what it printed."""
        try:
            async with asyncio.timeout(within_s):
                out, err = await self._process.communicate()
        except TimeoutError:
            return False
        self._stdout += out
        self._stderr += err
        return True

    async def _signal(self, signal: str) -> None:
        if self._link.conn.is_closed():
            return
        async with self._link.control:
            kill = ["sh", "-c", KILL_SCRIPT, "sh", signal, str(self.pid)]
            with contextlib.suppress(HostError):  # a dead connection took the process with it
                await _run_on(self.host, self._link.conn, kill, 10)

    def abandon(self) -> None:
        """Close the channel and give back its session slot (the remote deadline remains)."""
        self._process.close()
        if not self._released:
            self._released = True
            self._link.sessions.release()
        self._on_done(self)


def _never(_text: str) -> bool:
    return False


def _matcher(ready: Ready) -> Callable[[str], bool]:
    if isinstance(ready, str):
        return lambda text: ready in text
    if isinstance(ready, re.Pattern):
        return lambda text: ready.search(text) is not None
    return ready


async def _open(
    host: str, conn: asyncssh.SSHClientConnection, command: str, *, stdin: bool = False
) -> asyncssh.SSHClientProcess[str]:
    try:
        return await conn.create_process(
            command,
            stdin=asyncssh.PIPE if stdin else asyncssh.DEVNULL,
            encoding="utf-8",
            errors="replace",
        )
    except asyncssh.ChannelOpenError as exc:
        status = CellStatus.UNREACHABLE if conn.is_closed() else CellStatus.ERROR
        raise HostError(host, status, f"cannot open a session: {exc.reason}") from exc
    except (OSError, asyncssh.Error) as exc:
        raise HostError(host, CellStatus.UNREACHABLE, f"connection lost: {exc}") from exc


async def _run_on(
    host: str, conn: asyncssh.SSHClientConnection, argv: Sequence[str], timeout_s: float
) -> CommandResult:
    start = time.monotonic()
    process = await _open(host, conn, remote_command(argv, timeout_s + REMOTE_SLACK_S))
    try:
        done = await process.wait(timeout=timeout_s)
    except asyncssh.TimeoutError as exc:
        out, err = str(exc.stdout or ""), str(exc.stderr or "")
        return CommandResult(tuple(argv), None, out, err, time.monotonic() - start)
    except (OSError, asyncssh.Error) as exc:
        raise HostError(host, CellStatus.UNREACHABLE, f"connection lost: {exc}") from exc
    finally:
        process.close()
    if done.returncode is None and conn.is_closed():
        raise HostError(host, CellStatus.UNREACHABLE, "connection lost during a command")
    code = done.returncode
    return CommandResult(
        argv=tuple(argv),
        exit_status=code if code is not None and code >= 0 else None,
        stdout=str(done.stdout or ""),
        stderr=str(done.stderr or ""),
        elapsed_s=time.monotonic() - start,
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
