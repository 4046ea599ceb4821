"""The run's iperf3 credential on the hosts: its files uploaded at first need, removed after.

Each host gets what its role needs, once per run: a server the private key and the users file,
a client the public key. The files are written by a *holder*, a spawned shell that creates a
directory under the account's ``$TMPDIR`` (mode 0700, files 0600), writes the content it got
through its session's stdin (never a command line), and removes the directory when it ends.
It ends like an iperf3 server does: stopped by PID at the end of the phase, TERMed by its lease
when the controller goes away, and by its remote deadline at the latest — so an interrupted run
leaves no key behind either.
"""

from __future__ import annotations

import asyncio
import re

from probe.errors import HostError
from probe.measure.bandwidth import CommandRunner, PairAuth, Process
from probe.measure.remote import Secret
from probe.model import CellStatus
from probe.tools.iperf3 import ClientAuth, ServerAuth
from probe.tools.iperf3auth import RunCredential, needs_pkcs1

HOLD_READY_TIMEOUT_S = 10.0
#: Write each named variable's content (``printf %b``: ``\n`` escapes, see ``_escaped``) to a
#: file of that name in a fresh private directory, print it, and remove it on any exit.
HOLD_SCRIPT = r"""umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/probe-iperf3.XXXXXX") || exit 1
s=
trap 'kill $s 2>/dev/null; rm -rf "$d"' EXIT
trap 'exit 143' TERM INT HUP
for f in "$@"; do
  eval "v=\$$f"; printf '%b' "$v" >"$d/$f" || exit 1; unset "$f" v
done
echo "dir $d"
sleep 1000000 & s=$!
wait $s
"""
_DIR = re.compile(r"^dir (.+)\n", re.MULTILINE)
SERVER_FILES = ("PROBE_RSA_KEY", "PROBE_USERS")
CLIENT_FILES = ("PROBE_RSA_PUB",)


def _escaped(text: str) -> str:
    """One line that ``printf %b`` turns back into ``text``."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class HostCredentials:
    """The run's credential files per host and role; use ``async with``: every holder is
    stopped (its files removed) on every exit path."""

    def __init__(
        self, runner: CommandRunner, credential: RunCredential, *, lifetime_s: float
    ) -> None:
        self.runner, self.credential, self.lifetime_s = runner, credential, lifetime_s
        self._dirs: dict[tuple[str, str], asyncio.Task[str]] = {}
        self._holders: list[Process] = []
        self._holder_of: dict[tuple[str, str], Process] = {}

    async def __aenter__(self) -> HostCredentials:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in self._dirs.values():
            task.cancel()
        await asyncio.gather(*self._dirs.values(), return_exceptions=True)
        holders, self._holders = self._holders, []
        for holder in holders:
            await holder.stop()

    async def pair(
        self, client: str, client_version: str | None, server: str, server_version: str | None
    ) -> PairAuth:
        """The files of both ends (uploaded on first use); HostError when a host fails it."""
        server_dir = await self._dir(server, "server")
        client_dir = await self._dir(client, "client")
        key, users = (f"{server_dir}/{name}" for name in SERVER_FILES)
        return PairAuth(
            server=ServerAuth(key, users, pkcs1=needs_pkcs1(server_version, client_version)),
            client=ClientAuth(
                self.credential.username,
                f"{client_dir}/{CLIENT_FILES[0]}",
                pkcs1=needs_pkcs1(client_version, server_version),
            ),
            password=Secret("IPERF3_PASSWORD", self.credential.password),
        )

    async def _dir(self, host: str, role: str) -> str:
        key = (host, role)
        task = self._dirs.get(key)
        if task is not None and task.done() and self._gone(key):
            # its holder ended with its connection (a host or sshd restart, then a reconnect):
            # the files went with it, so the next test uploads them again
            task = None
        if task is None:  # the first test to need it uploads; the others wait for it
            task = self._dirs[key] = asyncio.create_task(self._upload(host, role))
        return await asyncio.shield(task)

    def lost(self, *hosts: str) -> str | None:
        """The first of ``hosts`` whose credential holder has ended (its files are gone)."""
        for key, holder in self._holder_of.items():
            if key[0] in hosts and holder.ended:
                return key[0]
        return None

    def _gone(self, key: tuple[str, str]) -> bool:
        holder = self._holder_of.get(key)
        return holder is None or holder.ended

    async def _upload(self, host: str, role: str) -> str:
        c = self.credential
        files = (
            zip(SERVER_FILES, (c.private_key_pem, c.users_file()), strict=True)
            if role == "server"
            else zip(CLIENT_FILES, (c.public_key_pem,), strict=True)
        )
        secrets = [Secret(name, _escaped(text)) for name, text in files]
        holder = await self.runner.spawn(
            host,
            ["sh", "-c", HOLD_SCRIPT, "sh", *(s.env for s in secrets)],
            max_lifetime_s=self.lifetime_s,
            secrets=secrets,
        )
        self._holders.append(holder)
        self._holder_of[host, role] = holder
        found: list[str] = []

        def written(text: str) -> bool:
            found.extend(m.group(1) for m in _DIR.finditer(text))
            return bool(found)

        if not await holder.read_until(written, HOLD_READY_TIMEOUT_S):
            lost = holder.connection_lost
            done = await holder.stop()
            if lost:
                raise HostError(host, CellStatus.UNREACHABLE, "connection lost")
            why = (done.stderr or done.stdout).strip()[:200] or "no directory"
            raise HostError(host, CellStatus.ERROR, f"iperf3 credential not written: {why}")
        return found[0]
