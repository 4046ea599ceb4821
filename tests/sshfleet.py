"""An in-process SSH fleet on 127.0.0.1 for tests and the fan-out benchmark. Loopback only.

One asyncssh server per "sshd" (one port each); many inventory hosts may share one sshd by user
name. A jump server forwards direct-tcpip to 127.0.0.1 only. Sessions run a *fake* shell that
understands exactly the command lines probe.measure.ssh sends
(``env LC_ALL=C timeout -k K T argv…``):

    echo-argv ARGS…   prints {"command": <the line as received>, "argv": [ARGS…]} as JSON
    sleep S           sleeps S seconds (the ``timeout`` deadline still applies: exit 124)
    exit N            exits N
    sh -c SPAWN_SCRIPT sh ARGV…   prints a fake PID, then "listening", then waits to be killed
    sh -c KILL_SCRIPT sh SIG PID  "kills" a fake PID (recorded in ``ServerStats.killed``)

Nothing is executed unless ``real_shell=True``, which hands the line to /bin/sh (use it only with
argv you wrote yourself).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from probe.measure.hostkeys import known_hosts_name
from probe.measure.remote import KILL_SCRIPT, SPAWN_SCRIPT
from probe.measure.sshoptions import SshOptions
from probe.model import Host, Inventory, SshTarget

LOOPBACK = "127.0.0.1"
#: Options for tests against these servers: fail fast, no retries.
FAST = SshOptions(
    connect_timeout_s=5, command_timeout_s=5, connect_retries=0, reconnect_window_s=0.5
)


@dataclass
class ServerStats:
    """What one sshd saw."""

    connections: int = 0
    unauthenticated: int = 0
    max_unauthenticated: int = 0
    max_sessions_per_connection: int = 0
    forwards: list[tuple[str, int]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    killed: list[tuple[int, str]] = field(default_factory=list)
    _sessions: dict[int, int] = field(default_factory=dict)


@dataclass
class Sshd:
    name: str
    port: int
    host_key: asyncssh.SSHKey
    stats: ServerStats
    acceptor: asyncssh.SSHAcceptor
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        public = (key or self.host_key).export_public_key("openssh").decode().split()[:2]
        return f"{known_hosts_name(LOOPBACK, self.port)} {' '.join(public)}\n"


class Fleet:
    """Start with ``async with Fleet(tmp_path) as fleet``; add sshds, then build an inventory."""

    def __init__(
        self, tmp: Path, *, handshake_delay_s: float = 0.0, real_shell: bool = False
    ) -> None:
        self.tmp = tmp
        self.handshake_delay_s = handshake_delay_s
        self.real_shell = real_shell
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_path = tmp / "id_client"
        self.client_key.write_private_key(self.client_key_path)
        self.sshds: dict[str, Sshd] = {}
        self._pids = itertools.count(40000)
        self._fake_procs: dict[int, asyncio.Event] = {}
        self._subprocesses: set[asyncio.subprocess.Process] = set()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sshd in self.sshds.values():
            sshd.acceptor.close()
            for conn in list(sshd.connections):
                conn.close()
        for sshd in self.sshds.values():
            await sshd.acceptor.wait_closed()
            for conn in list(sshd.connections):
                await conn.wait_closed()
        for proc in self._subprocesses:  # only processes this fleet started
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def running(self) -> int:
        """How many real-shell processes are still running (a stopped run leaves none)."""
        return sum(proc.returncode is None for proc in self._subprocesses)

    async def sshd(self, name: str, *, jump: bool = False) -> Sshd:
        """Start one sshd on 127.0.0.1, port chosen by the kernel."""
        key = asyncssh.generate_private_key("ssh-ed25519")
        stats = ServerStats()
        holder: list[Sshd] = []
        acceptor = await asyncssh.listen(
            LOOPBACK,
            0,
            server_host_keys=[key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()
            ),
            server_factory=lambda: _Server(self, holder[0], jump=jump),
            process_factory=lambda process: self._session(holder[0], process),
            allow_scp=False,
        )
        sshd = Sshd(name, acceptor.get_port(), key, stats, acceptor)
        holder.append(sshd)
        self.sshds[name] = sshd
        return sshd

    def host(
        self, name: str, sshd: Sshd, *, via: tuple[str, ...] = (), user: str | None = None
    ) -> Host:
        target = SshTarget(LOOPBACK, sshd.port, user or "probe", (str(self.client_key_path),), via)
        return Host(name=name, address=LOOPBACK, ssh=target)

    def inventory(self, hosts: list[Host], known_hosts: Path | None = None) -> Inventory:
        if known_hosts is None:
            known_hosts = self.write_known_hosts()
        return Inventory(str(self.tmp / "inventory.yaml"), "0" * 64, tuple(hosts), str(known_hosts))

    def write_known_hosts(self, *sshds: Sshd, name: str = "known_hosts") -> Path:
        """A known_hosts file with the given sshds (default: all of them)."""
        path = self.tmp / name
        path.write_text("".join(s.known_hosts_line() for s in sshds or self.sshds.values()))
        return path

    async def _session(self, sshd: Sshd, process: asyncssh.SSHServerProcess[str]) -> None:
        conn = process.get_extra_info("connection")
        stats = sshd.stats
        stats._sessions[id(conn)] = open_now = stats._sessions.get(id(conn), 0) + 1
        stats.max_sessions_per_connection = max(stats.max_sessions_per_connection, open_now)
        try:
            command = process.command or ""
            stats.commands.append(command)
            if self.real_shell:
                await self._real(process, command)
            else:
                await self._fake(sshd, process, command)
        finally:
            stats._sessions[id(conn)] -= 1

    async def _fake(self, sshd: Sshd, process: asyncssh.SSHServerProcess[str], line: str) -> None:
        argv = shlex.split(line)
        deadline: float | None = None
        if argv[:2] == ["env", "LC_ALL=C"]:
            argv = argv[2:]
        if argv[:2] == ["timeout", "-k"]:
            deadline, argv = float(argv[3]), argv[4:]
        try:
            async with asyncio.timeout(deadline):
                await self._answer(sshd, process, line, argv)
        except TimeoutError:
            process.exit(124)

    async def _answer(
        self, sshd: Sshd, process: asyncssh.SSHServerProcess[str], line: str, argv: list[str]
    ) -> None:
        match argv:
            case ["echo-argv", *args]:
                process.stdout.write(json.dumps({"command": line, "argv": args}) + "\n")
                process.exit(0)
            case ["sleep", seconds]:
                await asyncio.sleep(float(seconds))
                process.exit(0)
            case ["exit", code]:
                process.exit(int(code))
            case ["sh", "-c", script, "sh", *_] if script == SPAWN_SCRIPT:
                pid = next(self._pids)
                killed = self._fake_procs[pid] = asyncio.Event()
                process.stdout.write(f"{pid}\nlistening\n")
                await killed.wait()
                process.exit_with_signal(next(s for p, s in sshd.stats.killed if p == pid))
            case ["sh", "-c", script, "sh", signal, pid] if script == KILL_SCRIPT:
                event = self._fake_procs.pop(int(pid), None)
                if event is None:
                    process.stderr.write(f"sh: kill: ({pid}) - No such process\n")
                    process.exit(1)
                    return
                sshd.stats.killed.append((int(pid), signal))
                event.set()
                process.exit(0)
            case _:
                process.stderr.write(f"sh: 1: {argv[0] if argv else ''}: not found\n")
                process.exit(127)

    async def _real(self, process: asyncssh.SSHServerProcess[str], line: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            line,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._subprocesses.add(proc)
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        feed = asyncio.create_task(_feed(process.stdin, proc.stdin))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_pump(proc.stdout, process.stdout))
            tg.create_task(_pump(proc.stderr, process.stderr))
        code = await proc.wait()
        feed.cancel()
        self._subprocesses.discard(proc)
        process.exit(code if code >= 0 else 128 - code)


async def _feed(src: asyncssh.SSHReader[str], dst: asyncio.StreamWriter) -> None:
    """The channel's stdin into the real process, EOF included (a gated spawn reads it)."""
    try:
        while chunk := await src.read(4096):
            dst.write(chunk.encode())
            await dst.drain()
    except (OSError, asyncssh.Error):
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.close()


class _Server(asyncssh.SSHServer):
    def __init__(self, fleet: Fleet, sshd: Sshd, *, jump: bool) -> None:
        self._fleet = fleet
        self._sshd = sshd
        self._jump = jump
        self._authenticated = False
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        stats = self._sshd.stats
        self._conn = conn
        self._sshd.connections.add(conn)
        stats.connections += 1
        stats.unauthenticated += 1
        stats.max_unauthenticated = max(stats.max_unauthenticated, stats.unauthenticated)

    async def begin_auth(self, username: str) -> bool:
        await asyncio.sleep(self._fleet.handshake_delay_s)
        return True

    def auth_completed(self) -> None:
        self._authenticated = True
        self._sshd.stats.unauthenticated -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._authenticated:
            self._sshd.stats.unauthenticated -= 1
        if self._conn is not None:
            self._sshd.connections.discard(self._conn)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        allowed = self._jump and dest_host == LOOPBACK
        if allowed:
            self._sshd.stats.forwards.append((dest_host, dest_port))
        return allowed


async def _pump(reader: asyncio.StreamReader, writer: asyncssh.SSHWriter[str]) -> None:
    while chunk := await reader.read(4096):
        with contextlib.suppress(BrokenPipeError, asyncssh.Error):
            writer.write(chunk.decode(errors="replace"))


async def fan_out_fleet(
    fleet: Fleet, n_hosts: int, *, via_jump: bool = True, users_per_sshd: int = 1
) -> Inventory:
    """A ready inventory of ``n_hosts`` (optionally behind one jump host) for the benchmark."""
    hosts: list[Host] = []
    via: tuple[str, ...] = ()
    if via_jump:
        hosts.append(fleet.host("jump", await fleet.sshd("jump", jump=True)))
        via = ("jump",)
    sshd: Sshd | None = None
    for i in range(n_hosts):
        if sshd is None or i % users_per_sshd == 0:
            sshd = await fleet.sshd(f"sshd{i}")
        hosts.append(fleet.host(f"h{i:03d}", sshd, via=via, user=f"u{i}"))
    return fleet.inventory(hosts)
