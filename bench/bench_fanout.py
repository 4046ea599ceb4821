"""Benchmark: probe's SSH fan-out vs a bare asyncssh gather, 500 hosts behind one jump host.

The fleet is ``tests/sshfleet.py`` (asyncssh servers on 127.0.0.1, many hosts per sshd by user
name, one jump server forwarding direct-tcpip) running in its *own* process, so the measured
controller process holds only client work and its peak RSS is the controller's. Each variant runs
in a fresh child process:

    probe          SshPool(inventory, SshOptions()) → connect() every host → run() one command
                   on every host (as Measurement.connect does: connect all, then the preflight)
    bare-capped    asyncssh: connect the jump once, then gather connect(tunnel=jump) + run() per
                   host, with probe's handshake bounds (8 per sshd, 64 through the hop)
    bare-uncapped  the same gather with no bound at all (the in-process sshds have no MaxStartups;
                   a real OpenSSH would drop connections past ~10 unauthenticated)

Both send the identical command line (``remote_command(["echo-argv", "preflight"], 61)``), which
the fleet's fake shell answers. Variants alternate (rotated order per repeat); the goal is the
median ratio probe / bare-capped ≤ 1.2 of the fan-out wall time (jump connect + every connect +
every command; closing is timed separately).

    .venv/bin/python -m bench.bench_fanout [--quick] [--hosts 500] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    child_env,
    emit_child_result,
    median,
    peak_rss_mib,
    print_table,
    raise_nofile_limit,
    write_report,
)

GOAL_RATIO = 1.2
VARIANTS = ("probe", "bare-capped", "bare-uncapped")
COMMAND_ARGV = ["echo-argv", "preflight"]
LOOPBACK = "127.0.0.1"


# --- the fleet process --------------------------------------------------------------------------


async def serve(tmp: Path, n_hosts: int, users_per_sshd: int) -> None:
    """Run the fleet until stdin closes; answer ``stats`` lines with the fleet's counters."""
    from tests.sshfleet import Fleet, fan_out_fleet

    raise_nofile_limit()
    async with Fleet(tmp) as fleet:
        inventory = await fan_out_fleet(
            fleet, n_hosts, via_jump=True, users_per_sshd=users_per_sshd
        )
        spec = {
            "known_hosts": inventory.known_hosts,
            "hosts": [
                {
                    "name": h.name,
                    "port": h.ssh.port,
                    "user": h.ssh.user,
                    "identity": list(h.ssh.identity),
                    "via": list(h.ssh.via),
                }
                for h in inventory.hosts
            ],
        }
        spec_path = tmp / "fleet.json"
        spec_path.write_text(json.dumps(spec))
        emit_child_result({"ready": True, "spec": str(spec_path), "sshds": len(fleet.sshds)})
        loop = asyncio.get_running_loop()
        seen = 0
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() != "stats":
                continue
            targets = [s for name, s in fleet.sshds.items() if name != "jump"]
            total = sum(s.stats.connections for s in fleet.sshds.values())
            emit_child_result(
                {
                    "connections": total - seen,
                    "max_unauthenticated_per_sshd": max(
                        s.stats.max_unauthenticated for s in targets
                    ),
                    "forwards": len(fleet.sshds["jump"].stats.forwards),
                }
            )
            seen = total
            for s in fleet.sshds.values():
                s.stats.max_unauthenticated = s.stats.unauthenticated
                s.stats.forwards.clear()
                s.stats.commands.clear()
    emit_child_result({"fleet_peak_rss_mib": peak_rss_mib()})


class FleetProcess:
    """The parent's handle on the fleet child (``--serve``)."""

    def __init__(self, tmp: Path, n_hosts: int, users_per_sshd: int) -> None:
        # asyncio's teardown chatter ("socket.send() raised exception.") goes to a log, not the tty
        self._log = (tmp / "fleet.log").open("w")
        self._proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.bench_fanout", "--serve", str(tmp)),
                *("--hosts", str(n_hosts), "--users-per-sshd", str(users_per_sshd)),
            ],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        ready = self._read()
        self.spec = str(ready["spec"])
        self.sshds = int(ready["sshds"])

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fleet process exited ({self._proc.wait()})")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def stats(self) -> dict[str, Any]:
        """Counters since the previous call (connections, peak unauthenticated per sshd)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        return self._read()

    def stop(self) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            final = self._read()
        finally:
            self._log.close()
            assert self._proc.stdout is not None
            self._proc.stdout.close()
            if self._proc.wait(timeout=60) != 0:
                raise RuntimeError(f"the fleet process exited {self._proc.returncode}")
        return final


# --- the measured child -------------------------------------------------------------------------


def _inventory(spec_path: str) -> Any:
    from probe.model import Host, Inventory, SshTarget

    spec = json.loads(Path(spec_path).read_text())
    hosts = tuple(
        Host(
            name=h["name"],
            address=LOOPBACK,
            ssh=SshTarget(LOOPBACK, h["port"], h["user"], tuple(h["identity"]), tuple(h["via"])),
        )
        for h in spec["hosts"]
    )
    return Inventory(spec_path, "0" * 64, hosts, spec["known_hosts"])


def _check(stdout: str) -> bool:
    try:
        return bool(json.loads(stdout)["argv"] == COMMAND_ARGV[1:])
    except (ValueError, KeyError):
        return False


async def fan_out_probe(inventory: Any) -> dict[str, Any]:
    from probe.errors import HostError
    from probe.measure.ssh import SshPool
    from probe.measure.sshoptions import SshOptions

    targets = [h.name for h in inventory.hosts if h.ssh.via]
    ok_commands = 0

    async def one(pool: SshPool, name: str) -> None:
        nonlocal ok_commands
        try:
            res = await pool.run(name, COMMAND_ARGV)
        except HostError:
            return
        ok_commands += res.exit_status == 0 and _check(res.stdout)

    start = time.perf_counter()
    pool = SshPool(inventory, SshOptions())
    try:
        results = await pool.connect(targets)
        connected = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for name in targets:
                if results[name].ok:
                    tg.create_task(one(pool, name))
        done = time.perf_counter()
    finally:
        await pool.aclose()
    closed = time.perf_counter()
    return {
        "hosts": len(targets),
        "connected": sum(results[n].ok for n in targets),
        "commands_ok": ok_commands,
        "connect_s": connected - start,
        "fanout_s": done - start,
        "close_s": closed - done,
    }


async def fan_out_bare(inventory: Any, *, capped: bool) -> dict[str, Any]:
    """The bare asyncssh baseline: what a hand-written script does, minus error handling."""
    import asyncssh

    from probe.measure.remote import REMOTE_SLACK_S, remote_command
    from probe.measure.sshoptions import SshOptions

    options = SshOptions()
    command = remote_command(COMMAND_ARGV, options.command_timeout_s + REMOTE_SLACK_S)
    known = asyncssh.read_known_hosts(inventory.known_hosts)
    jump_host = next(h for h in inventory.hosts if not h.ssh.via)
    targets = [h for h in inventory.hosts if h.ssh.via]
    hop = asyncio.Semaphore(options.max_handshakes_per_hop)
    per_server: defaultdict[int, asyncio.Semaphore] = defaultdict(
        lambda: asyncio.Semaphore(options.max_handshakes_per_server)
    )

    def connect(host: Any, tunnel: Any = ()) -> Any:
        return asyncssh.connect(
            host.ssh.host,
            host.ssh.port,
            tunnel=tunnel,
            username=host.ssh.user,
            client_keys=list(host.ssh.identity),
            known_hosts=known,
            config=None,
        )

    start = time.perf_counter()
    jump = await connect(jump_host)

    async def one(host: Any) -> tuple[Any, Any]:
        if capped:
            async with per_server[host.ssh.port], hop:
                conn = await connect(host, jump)
        else:
            conn = await connect(host, jump)
        return conn, await conn.run(command)

    outcomes = await asyncio.gather(*(one(h) for h in targets))
    done = time.perf_counter()
    for conn, _ in outcomes:
        conn.close()
    await asyncio.gather(*(conn.wait_closed() for conn, _ in outcomes))
    jump.close()
    await jump.wait_closed()
    closed = time.perf_counter()
    return {
        "hosts": len(targets),
        "connected": len(outcomes),
        "commands_ok": sum(r.exit_status == 0 and _check(str(r.stdout)) for _, r in outcomes),
        "connect_s": None,  # pipelined: each host runs its command as soon as it is connected
        "fanout_s": done - start,
        "close_s": closed - done,
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(variant: str, spec_path: str, profile_path: str | None = None) -> dict[str, Any]:
    raise_nofile_limit()
    inventory = _inventory(spec_path)
    import asyncssh  # noqa: F401  (imports before the clock, the same for every variant)

    import probe.measure.ssh  # noqa: F401

    coro = (
        fan_out_probe(inventory)
        if variant == "probe"
        else fan_out_bare(inventory, capped=variant == "bare-capped")
    )
    cpu0 = _cpu_s()
    if profile_path is None:
        result = asyncio.run(coro)
    else:
        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, coro)
        profiler.dump_stats(profile_path)
    result["cpu_s"] = _cpu_s() - cpu0
    result["hosts_per_s"] = result["hosts"] / result["fanout_s"]
    return {"variant": variant, **result, "peak_rss_mib": peak_rss_mib()}


# --- the parent ---------------------------------------------------------------------------------


def _run_variant(variant: str, spec: str, profile: str | None = None) -> dict[str, Any]:
    args = ["--variant", variant, "--spec", spec, *(["--profile-to", profile] if profile else [])]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_fanout", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"variant {variant} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def profile_summary(path: str, top: int = 20) -> list[dict[str, Any]]:
    """The functions with the most own time in a cProfile dump."""
    stats = pstats.Stats(path, stream=io.StringIO())
    rows = []
    # typeshed leaves out Stats.stats, the raw table; get_stats_profile() would give counts as text
    for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({func})",
                "calls": calls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
            }
        )
    rows.sort(key=lambda r: -float(r["tottime_s"]))
    return rows[:top]


def run_fanout(
    n_hosts: int,
    *,
    users_per_sshd: int,
    repeats: int,
    out: Path | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Start the fleet, run every variant ``repeats`` times (rotated order), write the report."""
    raise_nofile_limit()
    tmp = Path(tempfile.mkdtemp(prefix="probe-bench-fanout-"))
    runs: list[dict[str, Any]] = []
    profiles: dict[str, list[dict[str, Any]]] = {}
    try:
        fleet = FleetProcess(tmp, n_hosts, users_per_sshd)
        try:
            for repeat in range(repeats):
                order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
                for variant in order:
                    res = _run_variant(variant, fleet.spec)
                    runs.append({**res, "repeat": repeat, "fleet": fleet.stats()})
            if profile:
                for variant in ("probe", "bare-capped"):
                    path = str(tmp / f"{variant}.pstats")
                    _run_variant(variant, fleet.spec, path)
                    fleet.stats()
                    profiles[variant] = profile_summary(path)
        finally:
            final = fleet.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = summarise(runs, n_hosts, users_per_sshd, fleet.sshds, final)
    if profiles:
        result["profile_top_tottime"] = profiles
    result["report"] = str(write_report("fanout", result, out))
    return result


def summarise(
    runs: Sequence[dict[str, Any]],
    n_hosts: int,
    users_per_sshd: int,
    sshds: int,
    final: dict[str, Any],
) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by[r["variant"]].append(r)
    variants = {
        v: {
            "fanout_s_median": round(median(r["fanout_s"] for r in rs), 3),
            "fanout_s_all": [round(r["fanout_s"], 3) for r in rs],
            "close_s_median": round(median(r["close_s"] for r in rs), 3),
            "cpu_s_median": round(median(r["cpu_s"] for r in rs), 3),
            "cpu_ms_per_host": round(1000 * median(r["cpu_s"] for r in rs) / n_hosts, 2),
            "hosts_per_s_median": round(median(r["hosts_per_s"] for r in rs), 1),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rs),
            "connected_min": min(r["connected"] for r in rs),
            "commands_ok_min": min(r["commands_ok"] for r in rs),
            "max_unauthenticated_per_sshd": max(
                r["fleet"]["max_unauthenticated_per_sshd"] for r in rs
            ),
        }
        for v, rs in by.items()
    }
    if by["probe"]:
        variants["probe"]["connect_phase_s_median"] = round(
            median(r["connect_s"] for r in by["probe"]), 3
        )
    ratios: dict[str, list[float]] = {}
    for base in ("bare-capped", "bare-uncapped"):
        ratios[base] = [
            round(p["fanout_s"] / b["fanout_s"], 3)
            for p, b in zip(by["probe"], by[base], strict=True)
        ]
    ratio = median(ratios["bare-capped"])
    cpu_ratio = [
        round(p["cpu_s"] / b["cpu_s"], 3)
        for p, b in zip(by["probe"], by["bare-capped"], strict=True)
    ]
    return {
        "hosts": n_hosts,
        "sshds": sshds - 1,
        "users_per_sshd": users_per_sshd,
        "jump_hosts": 1,
        "repeats": len(by["probe"]),
        "command": COMMAND_ARGV,
        "variants": variants,
        "ratio_probe_vs_bare_capped": ratios["bare-capped"],
        "ratio_probe_vs_bare_uncapped": ratios["bare-uncapped"],
        "median_ratio_vs_capped": ratio,
        "median_ratio_vs_uncapped": median(ratios["bare-uncapped"]),
        "cpu_ratio_probe_vs_bare_capped": cpu_ratio,
        "median_cpu_ratio_vs_capped": median(cpu_ratio),
        "goal_ratio": GOAL_RATIO,
        "within_goal": ratio <= GOAL_RATIO,
        "fleet_peak_rss_mib": final.get("fleet_peak_rss_mib"),
        "runs": list(runs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hosts", type=int, default=None, help="default 500 (--quick: 60)")
    ap.add_argument("--users-per-sshd", type=int, default=None, help="default 50 (--quick: 10)")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 1)")
    ap.add_argument("--quick", action="store_true", help="a small fleet, one repeat")
    ap.add_argument("--profile", action="store_true", help="also cProfile probe and bare-capped")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    hosts = args.hosts or (60 if args.quick else 500)
    users = args.users_per_sshd or (10 if args.quick else 50)
    if args.serve:
        asyncio.run(serve(Path(args.serve), hosts, users))
        return 0
    if args.variant:
        emit_child_result(measure(args.variant, args.spec, args.profile_to))
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    result = run_fanout(
        hosts, users_per_sshd=users, repeats=repeats, out=args.out, profile=args.profile
    )
    v = result["variants"]
    rows = [
        [
            name,
            s["fanout_s_median"],
            " ".join(f"{x:.2f}" for x in s["fanout_s_all"]),
            s["close_s_median"],
            s["cpu_s_median"],
            s["hosts_per_s_median"],
            s["peak_rss_mib_max"],
            s["max_unauthenticated_per_sshd"],
            f"{s['commands_ok_min']}/{result['hosts']}",
        ]
        for name, s in v.items()
    ]
    print_table(
        rows,
        [
            "variant",
            "fan-out s",
            "runs s",
            "close s",
            "CPU s",
            "hosts/s",
            "peak RSS MiB",
            "unauth",
            "ok",
        ],
    )
    print(
        f"{result['hosts']} hosts on {result['sshds']} sshds behind 1 jump host: probe / "
        f"bare-capped = {result['median_ratio_vs_capped']:.3f} (goal ≤ {GOAL_RATIO}: "
        f"{'met' if result['within_goal'] else 'MISSED'}), probe / bare-uncapped = "
        f"{result['median_ratio_vs_uncapped']:.3f}; controller CPU probe / bare-capped = "
        f"{result['median_cpu_ratio_vs_capped']:.3f}; fleet process peak RSS "
        f"{result['fleet_peak_rss_mib']} MiB"
    )
    for variant, top in result.get("profile_top_tottime", {}).items():
        print(f"\ncProfile {variant}: top own time")
        print_table([[t["function"], t["calls"], t["tottime_s"], t["cumtime_s"]] for t in top[:12]],
                    ["function", "calls", "tottime s", "cumtime s"])  # fmt: skip
    print(f"wrote {result['report']}")
    return 0 if result["within_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
