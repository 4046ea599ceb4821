"""Commands and long-running processes on one open SSH connection.

* A command is an argv list sent as ``env LC_ALL=C timeout -k 2 <T> <argv…>`` joined with
  ``shlex.join``: coreutils ``timeout`` ends it remotely even if the controller dies.
* A spawned process prints its PID first, so it is stopped by PID (``kill`` builtin, on a control
  channel that never waits behind busy sessions), and its session's stdin is a lease: when the
  channel closes, the process is TERMed. A gated spawn pays the session start ahead and runs its
  command on a ``go`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import asyncssh

from probe.errors import HostError
from probe.model import CellStatus, CommandResult

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
_GATE = 'IFS= read -r go && [ "$go" = go ] || exit 0; '
_EXEC = 'exec "$@" </dev/null 3<&-'
#: Print our PID, then become the command (same PID), held by the lease.
SPAWN_SCRIPT = "echo $$; " + _LEASE + _EXEC
#: As SPAWN_SCRIPT, but wait for a "go" line first; EOF or anything else (the controller went
#: away) ends it without running the command.
GATED_SPAWN_SCRIPT = "echo $$; " + _GATE + _LEASE + _EXEC
#: Print our PID, then become a command that reads the session's stdin itself and so holds its
#: own lease: it must exit at stdin's end (the rehearsal relay does).
STDIN_SPAWN_SCRIPT = 'echo $$; exec "$@"'
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
KILL_SCRIPT = 'kill -s "$1" "$2"'  # the shell builtin: no /bin/kill needed, no name matching
Ready = str | re.Pattern[str] | Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Secret:
    """An environment variable a spawned command gets through its session's stdin: a command
    line is visible to every user of the host (``ps``), and probe logs and records argv."""

    env: str
    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _ENV_NAME.fullmatch(self.env) or "\n" in self.value or "\r" in self.value:
            raise ValueError(f"a secret is one line in an environment variable ({self.env})")


def spawn_script(*, gated: bool, secrets: Sequence[Secret] = (), keep_stdin: bool = False) -> str:
    """The ``sh -c`` script a spawn runs: PID, then each secret's line from stdin (exported),
    then the gate, the lease and the command (``keep_stdin``: the command gets the session's
    stdin and is its own lease)."""
    if keep_stdin:
        assert not gated and not secrets, "a command keeping stdin reads its own input"
        return STDIN_SPAWN_SCRIPT
    if not secrets:
        return GATED_SPAWN_SCRIPT if gated else SPAWN_SCRIPT
    reads = "".join(f"IFS= read -r {s.env} && export {s.env} || exit 0; " for s in secrets)
    return "echo $$; " + reads + (_GATE if gated else "") + _LEASE + _EXEC


def remote_command(argv: Sequence[str], deadline_s: float) -> str:
    """The command line sent for ``argv``: C locale, a remote deadline, every argument quoted."""
    wrapper = ["env", "LC_ALL=C", "timeout", "-k", str(KILL_AFTER_S), str(math.ceil(deadline_s))]
    return shlex.join([*wrapper, *argv])


@dataclass(slots=True)
class SshLink:
    """A live connection and the sessions it may still open."""

    conn: asyncssh.SSHClientConnection
    sessions: asyncio.Semaphore
    control: asyncio.Semaphore  # kills of spawned processes never wait behind them
    depth: int


class RemoteProcess:
    """A process started by :meth:`SshPool.spawn`, known by its remote PID."""

    def __init__(
        self,
        host: str,
        argv: tuple[str, ...],
        process: asyncssh.SSHClientProcess[str],
        link: SshLink,
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

    def write(self, text: str) -> None:
        """Send ``text`` to the process's stdin (a command spawned with ``keep_stdin``); a
        process that already ended is left alone, as by :meth:`release`."""
        with contextlib.suppress(OSError, asyncssh.Error):
            self._process.stdin.write(text)

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

        False if the process ended, its connection was lost or ``timeout_s`` passed first;
        :meth:`stop` and :attr:`connection_lost` then tell why.
        """
        matches = _matcher(ready)
        try:
            async with asyncio.timeout(timeout_s):
                while not matches(self._stdout):
                    chunk = await self._process.stdout.read(4096)
                    if not chunk:
                        return False
                    self._stdout += chunk
        except (TimeoutError, OSError, asyncssh.Error):  # a lost connection ends the process
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
        except (OSError, asyncssh.Error):  # the connection is gone, and the channel with it
            return True
        self._stdout += out
        self._stderr += err
        return True

    async def _signal(self, signal: str) -> None:
        if self._link.conn.is_closed():
            return
        async with self._link.control:
            kill = ["sh", "-c", KILL_SCRIPT, "sh", signal, str(self.pid)]
            with contextlib.suppress(HostError):  # a dead connection took the process with it
                await run_command(self.host, self._link.conn, kill, 10)

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


async def open_session(
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
        if conn.is_closed():  # the connection died as the session was being opened
            message = f"connection lost: cannot open a session ({exc.reason})"
            raise HostError(host, CellStatus.UNREACHABLE, message) from exc
        raise HostError(host, CellStatus.ERROR, f"cannot open a session: {exc.reason}") from exc
    except (OSError, asyncssh.Error) as exc:
        raise HostError(host, CellStatus.UNREACHABLE, f"connection lost: {exc}") from exc


async def run_command(
    host: str, conn: asyncssh.SSHClientConnection, argv: Sequence[str], timeout_s: float
) -> CommandResult:
    start = time.monotonic()
    process = await open_session(host, conn, remote_command(argv, timeout_s + REMOTE_SLACK_S))
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
