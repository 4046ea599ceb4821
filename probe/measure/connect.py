"""The connect phase: reach every host, then ask each which tools it has (one command)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from probe.errors import HostError
from probe.measure.bandwidth import CommandRunner
from probe.measure.context import Emit, HostState, Say
from probe.model import CellStatus

#: One command per host: which tools exist and their versions (``timeout`` wraps every command).
#: fping is optional: where it is, the ping mesh uses it (``--pinger auto``).
PREFLIGHT_SCRIPT = r"""
for t in ping iperf3 timeout fping; do
  p=$(command -v "$t" 2>/dev/null) && [ -x "$p" ] && echo "have $t" || echo "missing $t"
done
echo "version ping $(ping -V 2>&1 | head -n 1)"
echo "version iperf3 $(iperf3 --version 2>&1 | head -n 1)"
command -v fping >/dev/null 2>&1 && echo "version fping $(fping -v 2>&1 | head -n 1)"
echo "ping_group_range $(cat /proc/sys/net/ipv4/ping_group_range 2>/dev/null)"
"""
_TOOLS = ("ping", "iperf3", "timeout", "fping")

#: Work to start on a host once it is reached and preflighted (the ping phase arms its pinger
#: there: which pinger depends on the tools preflight found).
OnReached = Callable[[HostState], Coroutine[Any, Any, None]]


class Connector(CommandRunner, Protocol):
    async def connect(
        self,
        names: Sequence[str] | None = None,
        *,
        on_connected: Callable[[Any], None] | None = None,
    ) -> Mapping[str, Any]: ...


def parse_preflight(text: str) -> dict[str, str | None]:
    have = set(re.findall(r"^have (\S+)$", text, re.MULTILINE))
    tools: dict[str, str | None] = {}
    for tool in _TOOLS:
        tools[tool] = "present" if tool in have else None
    for tool, version in re.findall(r"^version (ping|iperf3|fping) (.*)$", text, re.MULTILINE):
        if tools.get(tool) is not None and version.strip():
            tools[tool] = version.strip()
    if m := re.search(r"^ping_group_range (.*)$", text, re.MULTILINE):
        tools["ping_group_range"] = m.group(1).strip() or None
    return tools


class ConnectPhase:
    """Fills in each host's state and emits one ``host`` record per host."""

    def __init__(
        self, pool: Connector, hosts: Mapping[str, HostState], emit: Emit, say: Say
    ) -> None:
        self.pool, self.hosts, self.emit, self.say = pool, hosts, emit, say

    async def run(self, on_reached: OnReached | None = None) -> None:
        """Connect and preflight every host; ``on_reached`` runs after each host's preflight, if
        the host is still usable."""
        names = list(self.hosts)
        connected = 0

        def progress(conn: Any) -> None:
            nonlocal connected
            if conn.host in self.hosts:
                connected += 1
                self.say(f"connect: {connected}/{len(names)} hosts ({conn.host}: {conn.status})")

        results = await self.pool.connect(names, on_connected=progress)
        async with asyncio.TaskGroup() as tg:
            for name, state in self.hosts.items():
                conn = results.get(name)
                if conn is not None:
                    state.status, state.reason, state.connect_s = (
                        conn.status,
                        conn.reason,
                        conn.connect_s,
                    )
                if state.usable:
                    tg.create_task(self._prepare(state, on_reached))
        for state in self.hosts.values():
            self.emit(state.record())

    async def _prepare(self, state: HostState, on_reached: OnReached | None) -> None:
        await self._preflight(state)
        if on_reached is not None and state.usable:
            await on_reached(state)

    async def _preflight(self, state: HostState) -> None:
        try:
            res = await self.pool.run(state.host.name, ["sh", "-c", PREFLIGHT_SCRIPT], timeout_s=20)
        except HostError as exc:
            state.status, state.reason = CellStatus(exc.status), str(exc)
            return
        if res.exit_status == 127:
            state.status, state.reason = CellStatus.TOOL_MISSING, "coreutils `timeout` missing"
            return
        state.tools = parse_preflight(res.stdout)
        state.command_s = res.elapsed_s
