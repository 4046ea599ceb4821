"""The connect phase: reach every host, then ask each which tools it has (one command).

Preflight also finds what would spoil the measurement later: a tool that hangs (its tests are
skipped with ``tool-hung`` instead of each waiting for its own deadline) and iperf3 processes
already running on a host (another probe run, or another tool: a loud warning).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from probe.errors import HostError
from probe.measure.bandwidth import CommandRunner
from probe.measure.context import Emit, HostState, Say
from probe.model import CellStatus
from probe.tools.ping import icmp_denied

#: The tools preflight looks for: what probe runs on a host (``timeout`` wraps every command).
#: fping is optional: where it is, the ping mesh uses it (``--pinger auto``).
TOOLS = ("ping", "iperf3", "fping", "timeout")
#: How long a tool's version probe may take: a tool that does not print its version in this
#: time hangs (an NFS mount, a wrapper waiting for a lock, a broken binary), and every test
#: using it would run into its own, much longer, deadline.
TOOL_DEADLINE_S = 5
#: The flag that makes each measuring tool print its version and exit.
VERSION_FLAGS = {"ping": "-V", "iperf3": "--version", "fping": "-v"}
#: How preflight finds whether this account may send ICMP: it tries, one probe to the host's own
#: loopback. Trying is the one test that covers every way a host grants it (root, a setuid or
#: cap_net_raw binary, net.ipv4.ping_group_range, and whatever a container or LSM forbids); the
#: range and the account's groups are read only to explain a refusal (``probe check``).
ICMP_PROBES = {
    "ping": ("-n", "-c", "1", "-W", "1", "127.0.0.1"),
    "fping": ("-c", "1", "-t", "500", "127.0.0.1"),  # not -q: fping < 5.2 then says nothing
}
#: Tools whose processes, found running at preflight, are another measurement on the host (this
#: run starts none before its bandwidth phase): iperf3 shares the path with our tests.
WATCHED = ("iperf3",)

_PREFLIGHT = r"""
for t in @TOOLS@; do
  p=$(command -v "$t" 2>/dev/null) && [ -x "$p" ] && echo "have $t" || echo "missing $t"
done
probe_version() {
  command -v "$1" >/dev/null 2>&1 || return 0
  out=$(timeout -k 1 @DEADLINE@ "$@" 2>&1 </dev/null)
  case $? in
    124|137|143) echo "hung $1" ;;
    *) echo "version $1 $(printf '%s\n' "$out" | sed -e '/option --/d' -e q)"
       printf '%s\n' "$out" | sed -n "s/^Optional features available: */features $1 /p" ;;
  esac
}
probe_icmp() {
  command -v "$1" >/dev/null 2>&1 || return 0
  err=$(timeout -k 1 @DEADLINE@ "$@" 2>&1 >/dev/null </dev/null)
  printf '%s\n' "$err" | sed "s/^/icmp-said $1 /"
}
@VERSIONS@ & @ICMP@ &
wait
echo "ping_group_range $(cat /proc/sys/net/ipv4/ping_group_range 2>/dev/null)"
echo "groups $(id -G 2>/dev/null)"
me=$(readlink /proc/self/ns/net 2>/dev/null)
for t in @WATCHED@; do
  n=0
  for c in /proc/[0-9]*/comm; do
    IFS= read -r name 2>/dev/null <"$c" || continue
    [ "$name" = "$t" ] || continue
    ns=$(readlink "${c%comm}ns/net" 2>/dev/null)
    if [ -z "$ns" ]; then  # unreadable; or gone, or a zombie, since it was listed: not running
      read -r _ _ state _ <"${c%comm}stat" 2>/dev/null || continue
      [ "$state" = Z ] && continue
    fi
    { [ -z "$ns" ] || [ "$ns" = "$me" ]; } && n=$((n + 1))
  done
  echo "running $t $n"
done
"""
#: One command per host: which tools exist, their versions (each under ``TOOL_DEADLINE_S``, all
#: at once; the first line that is not a complaint about the flag: busybox's ping names itself on
#: its second), whether ping and fping may send ICMP as this account (``ICMP_PROBES``, what each
#: said on stderr), who the account is (``id -G``), and the watched tools' processes already
#: running in the host's network namespace (a process in another one, such as a container's,
#: does not share this host's addresses; one whose namespace this account may not read counts;
#: a zombie, which has none to read and runs nothing, does not, nor one that ended while the
#: list was read: in the lab, where hosts share the PID space, another host's preflight
#: ``iperf3 --version`` could).
PREFLIGHT_SCRIPT = (
    _PREFLIGHT.replace("@TOOLS@", " ".join(TOOLS))
    .replace("@DEADLINE@", str(TOOL_DEADLINE_S))
    .replace("@VERSIONS@", " & ".join(f"probe_version {t} {f}" for t, f in VERSION_FLAGS.items()))
    .replace("@ICMP@", " & ".join(f"probe_icmp {t} {' '.join(a)}" for t, a in ICMP_PROBES.items()))
    .replace("@WATCHED@", " ".join(WATCHED))
)

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


@dataclass(frozen=True, slots=True)
class Preflight:
    """What one host's preflight found.

    ``tools``: tool → its version line (``"present"`` when it printed none), None when it is
    missing or hangs (and ``iperf3_features``: the "Optional features available" of its
    ``--version``, which say whether it can authenticate); ``hung``: tool → what it did not do
    in time; ``already_running``: watched
    tool → how many of its processes ran on the host before this run started any.
    """

    tools: Mapping[str, str | None]
    hung: Mapping[str, str] = field(default_factory=dict)
    already_running: Mapping[str, int] = field(default_factory=dict)
    icmp_denied: Mapping[str, str] = field(default_factory=dict)  # tool → what it said


def parse_preflight(text: str) -> Preflight:
    have = set(re.findall(r"^have (\S+)$", text, re.MULTILINE))
    hung = set(re.findall(r"^hung (\S+)$", text, re.MULTILINE))
    tools: dict[str, str | None] = {}
    for tool in TOOLS:
        tools[tool] = "present" if tool in have and tool not in hung else None
    for tool, version in re.findall(r"^version (\S+) (.*)$", text, re.MULTILINE):
        if tools.get(tool) is not None and version.strip():
            tools[tool] = version.strip()
    for tool, features in re.findall(r"^features (\S+) (.*)$", text, re.MULTILINE):
        if tools.get(tool) is not None:  # iperf3's build options: can it authenticate?
            tools[f"{tool}_features"] = features.strip()
    if m := re.search(r"^ping_group_range (.*)$", text, re.MULTILINE):
        tools["ping_group_range"] = m.group(1).strip() or None
    if m := re.search(r"^groups (.*)$", text, re.MULTILINE):
        tools["groups"] = m.group(1).strip() or None
    said: dict[str, list[str]] = {}
    for tool, line in re.findall(r"^icmp-said (\S+) (.*)$", text, re.MULTILINE):
        said.setdefault(tool, []).append(line)
    denied = {
        tool: line
        for tool, lines in said.items()
        if tool in ICMP_PROBES and (line := icmp_denied("\n".join(lines))) is not None
    }
    running = {
        tool: int(n)
        for tool, n in re.findall(r"^running (\S+) (\d+)$", text, re.MULTILINE)
        if int(n) > 0
    }
    return Preflight(
        tools,
        {
            tool: f"no answer to {VERSION_FLAGS[tool]} within {TOOL_DEADLINE_S} s"
            for tool in VERSION_FLAGS
            if tool in hung
        },
        running,
        denied,
    )


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
        for line in activity_warnings(self.hosts.values()):
            self.say(line)

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
            state.status = CellStatus.TOOL_MISSING
            state.reason = f"coreutils `timeout` missing on {state.host.name}"
            return
        found = parse_preflight(res.stdout)
        state.tools, state.hung = dict(found.tools), dict(found.hung)
        state.already_running = dict(found.already_running)
        state.icmp_denied = dict(found.icmp_denied)
        state.command_s = res.elapsed_s


def activity_warnings(hosts: Iterable[HostState]) -> list[str]:
    """One loud line per finding, naming every host with it: tests beside another measurement
    share the path with it, so their figures may be cut (issue: two runs from two folders)."""
    found: dict[tuple[str, int], list[str]] = {}
    for state in hosts:
        for tool, n in state.already_running.items():
            found.setdefault((tool, n), []).append(state.host.name)
    return [
        f"WARNING: {', '.join(names)}: {n} {tool} already running (another probe run, or "
        "another tool?): bandwidth figures from these hosts may be cut"
        for (tool, n), names in sorted(found.items())
    ]
