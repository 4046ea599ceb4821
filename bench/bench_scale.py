"""Benchmark: thousands of hosts — probe's rebuild against plain DuckDB, and one pinger per source.

**Runs.** For each host count a synthetic run directory is written the way ``probe run`` writes
one: run.json, then per source one ``RunStore.append_many`` batch (its fan-out record and its
ping records: samples.jsonl lines via ``encode_record`` and one Parquet part of the probe
store), host records first and a few iperf3 records (``--pairs sample:1``) last. Hosts sit in
10 regions × 3 zones, 20 probes per pair (``bench_matrix``'s records). A host count is ``N``
(every ordered pair pinged) or ``N:PLAN`` (a ``--ping-pairs`` plan, e.g. ``3000:sample:2``).
Each measurement runs in a fresh child process, so each peak RSS is its own:

    probe_rebuild_s     ``build.load_matrix``: the long-form frame from the run's samples, each
                        record's statistics read from the statistics part the run wrote as
                        the record arrived
    probe_rebuild_from_probes_s
                        the same with every record reduced from its probes (the statistics
                        parts ignored: a run from before them, or whose parts are gone)
    duckdb_baseline_s   one DuckDB query over the same samples.jsonl: per ordered pair the
                        probes sent and received, loss, min/mean/p50/p90/p99/max RTT
    duckdb_parts_s      the same query over the probe store's Parquet parts
    end_of_run_s        what the end of ``probe run`` does (``execute.finish``: rebuild, the
                        stamped matrix, anchors.json and its samples sidecar)
    show_s, gate_s      ``probe show`` / ``probe gate`` on the finished run (stored matrix)
    report_s            ``probe report`` on the finished run: report.html (five heatmaps) and
                        report.md; ``report_peak_rss_mib`` its peak
    calc_start_s        ``anchors_of`` + ``Links.from_anchors``: what calc, groups and gate do
                        before any work
    groups_s            ``probe groups --max-rtt 5ms`` end to end

**Fan-out.** One source pings T loopback addresses (127.0.x.y: the kernel answers each, nothing
is lost) with fping (``fping_argv``: one process) and with the fan-out script
(``ping_fanout_argv``: ``sh`` running at most 32 pings at once), as the ping mesh runs them.
The parent polls ``/proc`` for the process tree: ``processes`` is every PID seen in it,
``rss_mib`` the largest summed RSS of the tree at one poll; ``cpu_s`` the tree's user + system
time (``RUSAGE_CHILDREN``); ``complete`` whether every target answered every probe, read with
probe's own parsers.

    .venv/bin/python -m bench.bench_scale [--quick] [--hosts 300,1000,3000:sample:2]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bench_matrix import _fanout_record, _host, _iperf3_record, _ping_record
from bench.common import (
    emit_child_result,
    peak_rss_mib,
    print_table,
    raise_nofile_limit,
    run_child,
    write_report,
)

HOSTS = ("300", "1000", "3000:sample:2")
QUICK_HOSTS = ("200", "300:sample:2")
BW_PAIRS = "sample:1"
TARGETS = (50, 200, 500)
COUNT, QUICK_COUNT = 20, 5
INTERVAL_S = 0.2
TOOLS = ("fping", "script")
POLL_S = 0.02
STEPS = ("rebuild", "rebuild-probes", "duckdb-jsonl", "duckdb-parts", "end", "show", "gate",
         "report", "calc-start", "groups")  # fmt: skip
POLICY = Path(__file__).resolve().parents[1] / "inventory" / "policies" / "coverage.yaml"


# --- synthetic run directory --------------------------------------------------------------------


def write_run(path: Path, n_hosts: int, ping_pairs: str, seed: int = 0) -> dict[str, int]:
    """run.json and the records of a run of ``n_hosts`` as the runner appends them."""
    from probe import plan
    from probe.matrix.engine import part_stats
    from probe.model import CellStatus
    from probe.store.records import HostRecord, SampleRecord
    from probe.store.rundir import RunStore
    from probe.store.rundoc import (
        ConnectOutcome,
        InventoryRef,
        RunDoc,
        RunHost,
        RunOptionsDoc,
    )

    rng = random.Random(seed)
    hosts = [_host(i) for i in range(n_hosts)]
    run = RunDoc(
        run_id=path.name,
        probe_version="0.1.0",
        inventory=InventoryRef("synthetic.yaml", "0" * 64),
        started_utc="2026-11-23T08:00:00.000Z",
        ended_utc="2026-11-23T09:00:00.000Z",
        options=RunOptionsDoc(ping_pairs=ping_pairs, pairs=BW_PAIRS),
        hosts=tuple(
            RunHost(
                h["name"], h["address"], h["region"], h["zone"],
                connection=ConnectOutcome(CellStatus.OK, None, 0.2, h["tools"]),
            )
            for h in hosts
        ),
    )  # fmt: skip
    store = RunStore.create(path.parent, path.name, part_stats)
    store.write_run(run)
    by_name = {h["name"]: h for h in hosts}
    ping_plan = plan.select_ping_pairs(run.measured_hosts, plan.parse_ping_pairs(ping_pairs))
    targets: dict[str, list[str]] = {}
    for src, dst in ping_plan.pairs:
        targets.setdefault(src, []).append(dst)
    store.append_many([HostRecord(h["name"], CellStatus.OK, t=0.0, connect_s=0.2,
                                  tools=h["tools"]) for h in hosts])  # fmt: skip
    pings = 0
    for src, dsts in targets.items():
        a = by_name[src]
        fanout = _fanout_record(a, [by_name[d] for d in dsts])
        batch: list[SampleRecord] = [fanout]
        batch += [_ping_record(a, by_name[d], fanout, rng) for d in dsts]
        store.append_many(batch)
        pings += len(dsts)
    bw = plan.select_pairs(run.measured_hosts, plan.parse_pair_mode(BW_PAIRS))
    store.append_many(
        [r for c, s in bw for r in (_iperf3_record(c, s, rng), _iperf3_record(s, c, rng))]
    )
    store.close()
    return {
        "pings": pings,
        "iperf3": 2 * len(bw),
        "samples_bytes": store.samples_path.stat().st_size,
        "probe_parts": len(list((path / "probes").glob("*.parquet"))),
        "stats_parts": len(list((path / "stats").glob("*.parquet"))),
    }


# --- the measured children ----------------------------------------------------------------------

#: Per ordered pair over the rows of ``{source}`` (src, dst, rtt; a null rtt: a lost probe).
_PER_PAIR = """
SELECT src, dst,
    count(*) AS sent, count(rtt) AS received, 100.0 * (1 - count(rtt) / count(*)) AS loss_pct,
    min(rtt) AS rtt_min_ms, avg(rtt) AS rtt_mean_ms,
    quantile_cont(rtt, 0.5) AS rtt_p50_ms, quantile_cont(rtt, 0.9) AS rtt_p90_ms,
    quantile_cont(rtt, 0.99) AS rtt_p99_ms, max(rtt) AS rtt_max_ms
FROM ({source}) GROUP BY src, dst
"""
_JSONL_ROWS = """
SELECT src, dst, p[2] AS rtt
FROM read_json(?, format = 'newline_delimited',
               columns = {kind: 'VARCHAR', src: 'VARCHAR', dst: 'VARCHAR', probes: 'DOUBLE[][]'})
CROSS JOIN unnest(probes) AS t(p)
WHERE kind = 'ping'
"""
_PART_ROWS = "SELECT src, dst, rtt_ms AS rtt FROM read_parquet(?) WHERE seq IS NOT NULL"
# constant text (the file names are parameters): nothing to inject
DUCKDB_JSONL = _PER_PAIR.replace("{source}", _JSONL_ROWS)
DUCKDB_PARTS = _PER_PAIR.replace("{source}", _PART_ROWS)


def _timed(step: str, run_dir: Path) -> dict[str, Any]:
    """One step on ``run_dir``: its wall seconds and this process's peak RSS after it."""
    import contextlib
    import io

    imported = _import_for(step)
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if step.startswith("rebuild"):
        out["rows"] = len(imported.load_matrix(run_dir, summaries=step == "rebuild"))
    elif step.startswith("duckdb"):
        con = imported.connect()
        query, files = (
            (DUCKDB_JSONL, str(run_dir / "samples.jsonl"))
            if step == "duckdb-jsonl"
            else (DUCKDB_PARTS, str(run_dir / "probes" / "*.parquet"))
        )
        out["pairs"] = len(con.execute(query, [files]).fetchall())
    elif step == "end":
        from probe.store.rundir import RunStore, read_run

        summary = imported.finish(RunStore.reopen(run_dir), read_run(run_dir), bw_planned=0)
        out["rows"] = summary.pairs
    elif step == "calc-start":  # what calc, groups and gate do first: anchors, then links
        stored, scenarios = imported
        anchors = stored.anchors_of(run_dir)
        out["pairs"] = len(anchors.pairs)
        out["hosts"] = len(scenarios.Links.from_anchors(anchors).hosts)
    else:
        argv = {
            "show": ["show", str(run_dir)],
            "gate": ["gate", str(run_dir), "--policy", str(POLICY)],
            "report": ["report", str(run_dir)],
            "groups": ["groups", str(run_dir), "--max-rtt", "5ms"],
        }[step]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            out["exit"] = imported.run(argv)
    return {"seconds": round(time.perf_counter() - t0, 3), "peak_rss_mib": peak_rss_mib(), **out}


def _import_for(step: str) -> Any:
    """The module a step calls, imported before its clock starts (as a CLI's are)."""
    if step.startswith("rebuild"):
        from probe.matrix import build

        return build
    if step.startswith("duckdb"):
        import duckdb

        return duckdb
    if step == "end":
        from probe.measure import execute

        return execute
    if step == "calc-start":
        from probe.decide import scenarios
        from probe.matrix import stored

        return stored, scenarios
    import probe.cli

    return probe.cli


# --- the pinger ---------------------------------------------------------------------------------


def _tree(root: int) -> dict[int, int]:
    """PID → RSS bytes of ``root`` and every descendant alive now."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:  # gone since the listing
            continue
        children.setdefault(int(stat[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(stat[21]) * page
    seen, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in rss:
            seen[pid] = rss[pid]
        todo += children.get(pid, [])
    return seen


def pinger(tool: str, targets: int, count: int) -> dict[str, Any]:
    """One source pinging ``targets`` loopback addresses with ``tool``, watched from outside."""
    from probe.model import CommandResult
    from probe.tools.fping import fping_argv, fping_outcome
    from probe.tools.ping import PingReport, ping_fanout_argv, ping_outcome, split_fanout

    addresses = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(targets)]
    argv = (
        fping_argv(addresses, count=count, interval_s=INTERVAL_S)
        if tool == "fping"
        else ping_fanout_argv(addresses, count=count, interval_s=INTERVAL_S)
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids: set[int] = set()
    peak_rss = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, "LC_ALL": "C"})
        while proc.poll() is None:
            tree = _tree(proc.pid)
            pids |= tree.keys()
            peak_rss = max(peak_rss, sum(tree.values()))
            time.sleep(POLL_S)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        result = CommandResult(tuple(argv), proc.returncode, out.read().decode(),
                               err.read().decode(), wall)  # fmt: skip
    outcomes = (
        fping_outcome(result, addresses)
        if tool == "fping"
        else {a: ping_outcome(r) for a, r in split_fanout(argv, result).items()}
    )
    reports = [r for r in outcomes.values() if isinstance(r, PingReport)]
    lost = sum(r.sent - r.received for r in reports)
    return {
        "targets": targets,
        "tool": tool,
        "processes": len(pids),
        "rss_mib": round(peak_rss / 2**20, 1),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3),
        "complete": len(reports) == targets and all(r.received == count for r in reports),
        "wall_s": round(wall, 2),
        "count": count,
        "probes_lost": lost + count * (targets - len(reports)),
    }


# --- the parent ---------------------------------------------------------------------------------


def parse_hosts(spec: str) -> tuple[int, str]:
    """``N`` or ``N:PLAN`` (``--ping-pairs``)."""
    n, _, plan = spec.partition(":")
    return int(n), plan or "all"


def measure_run(n_hosts: int, ping_pairs: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"probe-bench-scale-{n_hosts}-"))
    run_dir = tmp / "run"
    try:
        t0 = time.perf_counter()
        counts = write_run(run_dir, n_hosts, ping_pairs)
        generate_s = time.perf_counter() - t0
        steps: dict[str, Any] = {}
        for step in STEPS:
            try:
                steps[step] = run_child("bench.bench_scale", ["--child", step, str(run_dir)])
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                steps[step] = {"error": str(exc).splitlines()[-1][:300]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def s(step: str) -> float | None:
        seconds = steps[step].get("seconds")
        return None if seconds is None else float(seconds)

    rebuild, duck = s("rebuild"), s("duckdb-jsonl")
    return {
        "hosts": n_hosts,
        "pairs": n_hosts * (n_hosts - 1),
        "ping_pairs": ping_pairs,
        "pairs_pinged": counts["pings"],
        "probe_rebuild_s": rebuild,
        "probe_peak_rss_mib": steps["rebuild"].get("peak_rss_mib"),
        "probe_rebuild_from_probes_s": s("rebuild-probes"),
        "probe_from_probes_peak_rss_mib": steps["rebuild-probes"].get("peak_rss_mib"),
        "duckdb_baseline_s": duck,
        "duckdb_peak_rss_mib": steps["duckdb-jsonl"].get("peak_rss_mib"),
        "duckdb_parts_s": s("duckdb-parts"),
        "duckdb_parts_peak_rss_mib": steps["duckdb-parts"].get("peak_rss_mib"),
        "rebuild_vs_duckdb": round(rebuild / duck, 2) if rebuild and duck else None,
        "end_of_run_s": s("end"),
        "end_of_run_peak_rss_mib": steps["end"].get("peak_rss_mib"),
        "show_s": s("show"),
        "gate_s": s("gate"),
        "report_s": s("report"),
        "report_peak_rss_mib": steps["report"].get("peak_rss_mib"),
        "calc_start_s": s("calc-start"),
        "groups_s": s("groups"),
        "generate_s": round(generate_s, 1),
        **counts,
        "steps": steps,
    }


def run_scale(
    hosts: Sequence[str], targets: Sequence[int], count: int, out: Path | None = None
) -> dict[str, Any]:
    raise_nofile_limit()
    runs = [measure_run(*parse_hosts(spec)) for spec in hosts]
    have = {t: shutil.which("fping" if t == "fping" else "ping") is not None for t in TOOLS}
    fanout = [pinger(tool, n, count) for n in targets for tool in TOOLS if have[tool]]
    result: dict[str, Any] = {
        "runs": runs,
        "fanout": fanout,
        "regions": 10,
        "probes_per_pair": 20,
        "bw_pairs": BW_PAIRS,
        "pinger_interval_s": INTERVAL_S,
        "missing_tools": [t for t in TOOLS if not have[t]],
    }
    result["report"] = str(write_report("scale", result, out))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hosts", help=f"comma-separated N or N:PLAN (default {','.join(HOSTS)})")
    ap.add_argument("--targets", help="loopback targets per pinger (default 50,200,500)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"hosts {','.join(QUICK_HOSTS)}, {QUICK_COUNT} probes per pinger target",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        emit_child_result(_timed(args.child[0], Path(args.child[1])))
        return 0
    hosts = args.hosts.split(",") if args.hosts else list(QUICK_HOSTS if args.quick else HOSTS)
    targets = [int(t) for t in args.targets.split(",")] if args.targets else list(TARGETS)
    result = run_scale(hosts, targets, QUICK_COUNT if args.quick else COUNT, args.out)
    print_table(
        [
            [r["hosts"], r["ping_pairs"], r["pairs_pinged"], r["probe_rebuild_s"],
             r["probe_peak_rss_mib"], r["duckdb_baseline_s"], r["duckdb_peak_rss_mib"],
             r["duckdb_parts_s"], r["end_of_run_s"], r["show_s"], r["gate_s"],
             r["report_s"], r["calc_start_s"], r["groups_s"]]
            for r in result["runs"]
        ],
        [
            *("N", "ping plan", "pairs pinged", "rebuild s", "rebuild MiB", "DuckDB jsonl s"),
            *("DuckDB MiB", "DuckDB parts s", "end of run s", "show s", "gate s", "report s"),
            *("calc start s", "groups s"),
        ],
        floatfmt=".2f",
    )  # fmt: skip
    print_table(
        [[f["targets"], f["tool"], f["processes"], f["rss_mib"], f["cpu_s"], f["wall_s"],
          f["probes_lost"], f["complete"]] for f in result["fanout"]],
        ["targets", "pinger", "processes", "RSS MiB", "CPU s", "wall s", "lost", "complete"],
    )  # fmt: skip
    print(f"wrote {result['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
