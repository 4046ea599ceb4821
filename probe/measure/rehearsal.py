"""The ``probe rehearse`` use case, measurement side: a relay on each host of the path, started
over the run's SSH connections (jump hosts included), the pattern driven, the raw timings back.

Each relay (``probe.measure.relay``) is ``python3 -u -c BOOTSTRAP`` spawned like an iperf3 server
(PID first, stopped by PID on every exit path, a remote deadline); its source, then its config
with the run's random token, go down the session's stdin, never a command line. stdin stays open
as the lease: when this controller dies, even SIGKILLed, the channel closes and every relay exits.

Order: connect → start every relay (each reports the port it listens on, from the host's data
ports) → tell each its next stage's address and port → all connected → ``go`` → every relay's
``done``. A host that fails a step is an outcome (its status and why: unreachable, python3
missing, another rehearsal running…), not an exception; the others are stopped.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from probe.decide.options import RehearseOptions
from probe.decide.rehearse import Timing, Traffic
from probe.errors import HostError, InputError
from probe.measure import relay
from probe.measure.bandwidth import IPERF3_PORTS
from probe.measure.remote import Ready
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, CommandResult, Host, Inventory
from probe.networks import NetworkChoice, NoRoute, host_networks, routes
from probe.reach import server_ports

START_TIMEOUT_S = 30.0  # session, python3 start, source read, lock, listen
CONNECT_TIMEOUT_S = 30.0  # every relay connected to its next stage
STOP_SLACK_S = 15.0  # the remote deadline beyond the relay's own
PYTHON_MISSING = 127  # what the shell's exec says when there is no python3
#: The program every relay runs: this module's sibling, sent as text (UTF-8: its length in bytes).
RELAY_SOURCE = Path(relay.__file__).read_bytes()


class RelayProcess(Protocol):
    """What the controller needs of a spawned relay (``RemoteProcess``, or a local fake)."""

    @property
    def output(self) -> str: ...

    @property
    def ended(self) -> bool: ...

    def write(self, text: str) -> None: ...

    async def read_until(self, ready: Ready, timeout_s: float) -> bool: ...

    async def stop(self, grace_s: float = 2.0) -> CommandResult: ...


class RelayRunner(Protocol):
    """What a rehearsal needs from SSH: ``SshPool``."""

    async def connect(
        self, names: Sequence[str] | None = None, *, on_connected: Callable[[Any], None] | None
    ) -> Mapping[str, Any]: ...

    async def spawn(
        self, host: str, argv: Sequence[str], *, max_lifetime_s: float, keep_stdin: bool
    ) -> RelayProcess: ...


@dataclass(frozen=True, slots=True)
class Leg:
    """Where a host's relay listens, dials from, and whom it accepts."""

    host: str
    listen: str  # its address on the network the previous stage reaches it over
    source: str  # its address on the network toward the next stage
    prev: str  # the previous stage's source address: the only one accepted
    ports: tuple[int, int]


@dataclass(frozen=True, slots=True)
class HostOutcome:
    """One host of the rehearsal: ``ok``, or its status and why."""

    host: str
    status: CellStatus
    reason: str | None = None
    address: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """A rehearsal's outcome: every host's, and the raw timings when all of them ran."""

    rehearsal_id: str
    traffic: Traffic
    hosts: tuple[HostOutcome, ...]
    timings: tuple[Timing, ...]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return all(h.status is CellStatus.OK for h in self.hosts)


def legs(inventory: Inventory, path: Sequence[str]) -> tuple[Leg, ...]:
    """Each host's addresses on the ring ``path`` (the last stage connects back to the first)."""
    hosts = [_host(inventory, name) for name in path]
    n = len(hosts)
    nets = []
    for i, host in enumerate(hosts):
        nxt = hosts[(i + 1) % n]
        found = routes(host, nxt, inventory.networks, NetworkChoice())
        if isinstance(found, NoRoute):
            raise InputError(f"no network from {host.name} to {nxt.name}: {found.reason}")
        nets.append(found[0].network)  # i → i+1 goes over nets[i]
    out = []
    for i, host in enumerate(hosts):
        prev = hosts[i - 1]
        ports = server_ports(host, IPERF3_PORTS)
        if ports is None:
            raise InputError(f"{host.name} accepts no TCP on its data ports: it cannot relay")
        out.append(
            Leg(
                host.name,
                listen=host_networks(host)[nets[i - 1]],
                source=host_networks(host)[nets[i]],
                prev=host_networks(prev)[nets[i - 1]],
                ports=(ports.lo, ports.hi),
            )
        )
    return tuple(out)


def _host(inventory: Inventory, name: str) -> Host:
    for host in inventory.measured:
        if host.name == name:
            return host
    raise InputError(f"--path: {name!r} is not a measured host of the inventory")


def new_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


class _Relay:
    """One started relay: its config, its events as they come."""

    def __init__(self, index: int, leg: Leg, proc: RelayProcess) -> None:
        self.index, self.leg, self.proc = index, leg, proc
        self.events: list[dict[str, Any]] = []
        self._seen = 0  # characters of output already parsed

    def send(self, kind: str, **fields: object) -> None:
        self.proc.write(json.dumps({"kind": kind, **fields}) + "\n")

    def _parse(self) -> None:
        text = self.proc.output
        end = text.rfind("\n") + 1
        for line in text[self._seen : end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not the relay's (a login banner): never trusted
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                self.events.append(event)
        self._seen = max(self._seen, end)

    def first(self, *names: str) -> dict[str, Any] | None:
        self._parse()
        return next((e for e in self.events if e["event"] in names), None)

    async def until(self, name: str, timeout_s: float) -> dict[str, Any]:
        """The ``name`` event (or ``error``); HostError when neither comes."""
        await self.proc.read_until(lambda _t: self.first(name, "error") is not None, timeout_s)
        event = self.first(name, "error")
        if event is None:
            done = await self.proc.stop()
            said = done.stderr.lower()
            if done.exit_status == PYTHON_MISSING or ("python3" in said and "not found" in said):
                why = f"python3 not found on {self.leg.host}: rehearsal needs Python 3"
            else:
                tail = (done.stderr or done.stdout).strip()[-200:]
                why = f"relay gave no {name} within {timeout_s:g} s" + (
                    f" ({tail})" if tail else ""
                )
            raise HostError(self.leg.host, CellStatus.ERROR, why)
        if event["event"] == "error":
            raise HostError(self.leg.host, CellStatus.ERROR, f"relay: {event.get('reason')}")
        return event


def relay_config(
    t: Traffic, index: int, leg: Leg, token: str, o: RehearseOptions
) -> dict[str, object]:
    """What relay ``index`` is told on its stdin (``relay.Config``)."""
    return {
        "token": token,
        "index": index,
        "hosts": len(t.hosts),
        "bind": leg.listen,
        "source": leg.source,
        "prev": leg.prev,
        "port_low": leg.ports[0],
        "port_high": leg.ports[1],
        "mechanism": t.mechanism,
        "rounds": t.rounds,
        "warmup": t.warmup,
        "send_bytes": t.send_bytes[index],
        "recv_max": t.send_bytes[index - 1],
        "max_in_bytes": t.received_bytes(index, relay.HEADER.size) + 65536,
        "deadline_s": o.max_time_s,
        "compute_ms": t.compute_ms[index],
        "idle_s": t.idle_s,
        "pings": t.pings,
    }


async def rehearse(
    inventory: Inventory,
    t: Traffic,
    o: RehearseOptions,
    runner: RelayRunner,
    say: Callable[[str], None],
) -> Rehearsal:
    """Run ``t`` over its hosts; every relay is stopped on every exit path."""
    started = time.monotonic()
    rid = new_id()
    ring = legs(inventory, t.hosts)
    outcomes = {h: HostOutcome(h, CellStatus.OK) for h in t.hosts}

    def result(timings: tuple[Timing, ...] = ()) -> Rehearsal:
        hosts = tuple(outcomes[h] for h in t.hosts)
        return Rehearsal(rid, t, hosts, timings, time.monotonic() - started)

    conns = await runner.connect(list(t.hosts), on_connected=None)
    for name in t.hosts:
        conn = conns[name]
        if not conn.ok:
            outcomes[name] = HostOutcome(name, conn.status, conn.reason)
    if any(x.status is not CellStatus.OK for x in outcomes.values()):
        return result()
    say(f"rehearse {t.pattern}: starting relays on {', '.join(t.hosts)}")
    token = secrets.token_hex(16)
    relays: list[_Relay] = []
    try:
        failed: list[HostError] = []
        try:
            async with asyncio.TaskGroup() as tg:
                for i, leg in enumerate(ring):
                    tg.create_task(_start(runner, t, i, leg, token, o, relays))
        except* HostError as group:
            failed = [exc for exc in group.exceptions if isinstance(exc, HostError)]
        for exc in failed:
            outcomes[exc.host] = HostOutcome(exc.host, CellStatus(exc.status), str(exc))
        if failed:
            return result()
        relays.sort(key=lambda r: r.index)
        ports = {r.index: int(r.first("listening")["port"]) for r in relays}  # type: ignore[index]
        for r in relays:
            nxt = (r.index + 1) % len(relays)
            r.send("peer", address=ring[nxt].listen, port=ports[nxt])
            outcomes[r.leg.host] = HostOutcome(r.leg.host, CellStatus.OK, None, r.leg.listen,
                                               ports[r.index])  # fmt: skip
        if not await _all(relays, "ready", CONNECT_TIMEOUT_S, outcomes):
            return result()
        say(f"rehearse {t.pattern}: {len(relays)} relays connected, {t.rounds} rounds")
        for r in relays:
            r.send("go")
        if not await _all(relays, "done", o.max_time_s, outcomes):
            return result()
        return result(tuple(timing for r in relays for timing in _timings(r)))
    finally:
        await asyncio.gather(*(r.proc.stop() for r in relays), return_exceptions=True)


async def _start(
    runner: RelayRunner,
    t: Traffic,
    index: int,
    leg: Leg,
    token: str,
    o: RehearseOptions,
    relays: list[_Relay],
) -> None:
    proc = await runner.spawn(
        leg.host,
        ["python3", "-u", "-c", relay.BOOTSTRAP],
        max_lifetime_s=o.max_time_s + STOP_SLACK_S,
        keep_stdin=True,
    )
    r = _Relay(index, leg, proc)
    relays.append(r)
    proc.write(f"{len(RELAY_SOURCE)}\n" + RELAY_SOURCE.decode())
    r.send("config", **relay_config(t, index, leg, token, o))
    await r.until("listening", START_TIMEOUT_S)


async def _all(
    relays: Sequence[_Relay], name: str, timeout_s: float, outcomes: dict[str, HostOutcome]
) -> bool:
    """Every relay reached ``name``; a failed one's outcome says why (the first to fail: the
    others then usually say only that their peer went away)."""
    results = await asyncio.gather(*(r.until(name, timeout_s) for r in relays),
                                   return_exceptions=True)  # fmt: skip
    failed = [(r, x) for r, x in zip(relays, results, strict=True) if isinstance(x, BaseException)]
    for r, exc in failed:
        if not isinstance(exc, HostError):
            raise exc
        outcomes[r.leg.host] = HostOutcome(r.leg.host, CellStatus(exc.status), str(exc))
    return not failed


def _timings(r: _Relay) -> list[Timing]:
    out = []
    for e in r.events:
        if e["event"] in ("t", "ping"):
            out.append(
                Timing(
                    host=r.leg.host,
                    kind="t" if e["event"] == "t" else "ping",
                    ms=float(e["ms"]),
                    round=e.get("round"),
                    hop=e.get("hop"),
                    bytes=e.get("bytes"),
                    warmup=bool(e.get("warmup", False)),
                )
            )
    return out


def write_timings(folder: Path, rehearsal: Rehearsal) -> Path:
    """``timings.jsonl``: one raw timing a line, as the relays reported them."""
    from probe.textio import save

    folder.mkdir(parents=True, exist_ok=True)
    lines = (
        json.dumps({k: v for k, v in _fields(x).items() if v is not None})
        for x in rehearsal.timings
    )
    target = folder / "timings.jsonl"
    save(target, "".join(line + "\n" for line in lines))
    return target


def _fields(x: Timing) -> dict[str, object]:
    return {
        "host": x.host, "kind": x.kind, "ms": x.ms, "round": x.round, "hop": x.hop,
        "bytes": x.bytes, "warmup": x.warmup or None,
    }  # fmt: skip


async def rehearse_fleet(
    inventory: Inventory,
    t: Traffic,
    o: RehearseOptions,
    ssh: SshOptions,
    say: Callable[[str], None],
) -> Rehearsal:
    """``rehearse`` over SSH: the pool connects only the path's hosts (and their jump hosts)."""
    from probe.measure.ssh import SshPool

    async with SshPool(inventory, ssh) as pool:
        return await rehearse(inventory, t, o, pool, say)
