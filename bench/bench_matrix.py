"""Benchmark: samples.jsonl → matrix → anchors for N hosts, its time and peak memory, and growth.

For each N a synthetic run directory is written (run.json + samples.jsonl, typed records written
by probe's own ``encode_record``, and the probe store's parts, one per source, as a run writes
them): N hosts over 10 regions × 3 zones, a host record each, a ping fan-out record per source
and a ping record with 20 probes for every ordered pair (the runner's ping mesh is all pairs),
and iperf3 records for the bandwidth pair selection (``--bw-pairs``, default ``all`` both
directions, as ``--pairs all`` does). A fresh child process then does what
``probe.measure.execute`` does at the end of a run: ``read_store`` → ``MatrixBuilder.frame`` →
``samples`` + ``to_anchors``, recording the wall time of each step and the peak RSS after
each. Time and memory are fitted linearly in the number of ordered pairs and extrapolated to
2,000 hosts; ``select_pairs`` gives the bandwidth pair counts of ``sample:K`` on a synthetic
2,000-host, 10-region inventory.

    .venv/bin/python -m bench.bench_matrix [--quick] [--sizes 50,100,200,300] [--bw-pairs all]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import emit_child_result, peak_rss_mib, print_table, run_child, write_report
from probe.model import CellStatus
from probe.store.probes import write_part
from probe.store.records import (
    HostRecord,
    Iperf3Record,
    PingFanoutRecord,
    PingRecord,
    PingTrain,
    SampleRecord,
    encode_record,
)
from probe.tools.iperf3 import IperfResult
from probe.tools.ping import PingSummary, fanout_target_argv, ping_fanout_argv

SIZES = (50, 100, 200, 300)
QUICK_SIZES = (10, 20, 40)
REGIONS = 10
PROBES = 20
TARGET_HOSTS = 2000
SAMPLE_KS = (1, 2, 5)


# --- synthetic run directory --------------------------------------------------------------------


def _host(i: int) -> dict[str, Any]:
    region = f"r{i % REGIONS}"
    return {
        "name": f"h{i:04d}",
        "address": f"10.{i // 250}.{i % 250}.1",
        "region": region,
        "zone": f"{region}{'abc'[(i // REGIONS) % 3]}",
        "provider": "synthetic",
        "tags": {},
        "measure": True,
        "ssh": {"host": f"10.{i // 250}.{i % 250}.1", "port": 22, "user": "probe", "via": []},
        "status": "ok",
        "reason": None,
        "connect_s": 0.2,
        "tools": {"ping": "ping from iputils 20240117", "iperf3": "iperf 3.16"},
    }


def _ping_record(
    a: dict[str, Any], b: dict[str, Any], fanout: PingFanoutRecord, rng: random.Random
) -> PingRecord:
    base = (
        0.3
        if a["region"] == b["region"]
        else 20.0 + 10 * abs(int(a["region"][1:]) - int(b["region"][1:]))
    )
    rtts = [round(base * (1 + abs(rng.gauss(0, 0.05))), 3) for _ in range(PROBES)]
    lost = rng.random() < 0.02  # a probe lost in 2 % of the pairs
    probes = tuple((seq, None if lost and seq == 7 else rtt) for seq, rtt in enumerate(rtts, 1))
    got = [r for _, r in probes if r is not None]
    mean = sum(got) / len(got)
    mdev = (sum((r - mean) ** 2 for r in got) / len(got)) ** 0.5
    summary = PingSummary(min(got), round(mean, 3), max(got), round(mdev, 3))
    return PingRecord(
        src=a["name"],
        dst=b["name"],
        status=CellStatus.OK,
        t=1795424402.05,
        argv=fanout_target_argv(fanout.argv, b["address"]),
        exit_status=0,
        fanout=fanout.id,
        train=PingTrain(PROBES, len(got), 0, probes, summary, "iputils"),
    )


def _fanout_record(a: dict[str, Any], hosts: list[dict[str, Any]]) -> PingFanoutRecord:
    targets = [b["address"] for b in hosts if b is not a]
    argv = ping_fanout_argv(targets, count=PROBES, interval_s=0.2, reply_timeout_s=2)
    return PingFanoutRecord(f"f{a['name']}", a["name"], tuple(argv), 1795424402.0, 0, 6.1)


def _iperf3_record(client: str, server: str, rng: random.Random) -> Iperf3Record:
    bps = rng.uniform(1e9, 2.5e10)
    result = IperfResult(
        receiver_bps=bps,
        sender_bps=bps * 1.01,
        retransmits=rng.randrange(20),
        max_snd_cwnd_bytes=3145728,
        mean_rtt_ms=1.2,
        cpu_local_pct=12.0,
        cpu_remote_pct=20.0,
        cpu_bound=False,
        version="3.16",
        reverse=False,
        streams=1,
        duration_s=5.0,
        omit_s=1.0,
        bytes_received=round(bps * 5 / 8),
    )
    return Iperf3Record(
        src=client,
        dst=server,
        client=client,
        server=server,
        reverse=False,
        status=CellStatus.OK,
        t=1795424410.1,
        argv=("iperf3", "-c", server, "-J", "-t", "5", "-O", "1"),
        attempts=1,
        test_s=7.2,
        result=result,
    )


def _bandwidth_pairs(hosts: list[dict[str, Any]], pairs: str) -> list[tuple[str, str]]:
    from probe import plan

    if pairs == "none":
        return []
    return plan.select_pairs(_model_hosts(hosts), plan.parse_pair_mode(pairs))


def _model_hosts(hosts: Sequence[dict[str, Any]]) -> list[Any]:
    from probe.model import Host, SshTarget

    return [
        Host(h["name"], h["address"], SshTarget(h["address"]), h["region"], h["zone"])
        for h in hosts
    ]


def _records(hosts: list[dict[str, Any]], bw_pairs: str, seed: int) -> Iterator[SampleRecord]:
    rng = random.Random(seed)
    for h in hosts:
        yield HostRecord(h["name"], CellStatus.OK, t=0.0, connect_s=0.2, tools=h["tools"])
    for a in hosts:
        fanout = _fanout_record(a, hosts)
        yield fanout
        for b in hosts:
            if a is not b:
                yield _ping_record(a, b, fanout, rng)
    for client, server in _bandwidth_pairs(hosts, bw_pairs):
        yield _iperf3_record(client, server, rng)
        yield _iperf3_record(server, client, rng)


def write_run_dir(path: Path, n_hosts: int, bw_pairs: str, seed: int = 0) -> dict[str, int]:
    """run.json + samples.jsonl for ``n_hosts``; returns record and byte counts."""
    from probe.store.rundoc import (
        ConnectOutcome,
        InventoryRef,
        RunDoc,
        RunHost,
        RunOptionsDoc,
        encode_run,
    )

    hosts = [_host(i) for i in range(n_hosts)]
    path.mkdir(parents=True, exist_ok=True)
    run = RunDoc(
        run_id="20261123T080000Z",
        probe_version="0.1.0",
        inventory=InventoryRef("synthetic.yaml", "0" * 64),
        started_utc="2026-11-23T08:00:00.000Z",
        ended_utc="2026-11-23T09:00:00.000Z",
        options=RunOptionsDoc(count=PROBES, pairs=bw_pairs),
        hosts=tuple(
            RunHost(
                h["name"], h["address"], h["region"], h["zone"],
                connection=ConnectOutcome(CellStatus.OK, None, 0.2, h["tools"]),
            )
            for h in hosts
        ),
    )  # fmt: skip
    (path / "run.json").write_text(encode_run(run))
    counts = {"ping": 0, "ping_fanout": 0, "iperf3": 0, "host": 0}
    pings: list[tuple[int, PingRecord]] = []  # one source's: one probe-store part, as a run
    with (path / "samples.jsonl").open("wb") as fh:
        for rec in _records(hosts, bw_pairs, seed):
            counts[rec.kind] += 1
            if isinstance(rec, PingRecord):
                pings.append((fh.tell(), rec))
            elif pings:
                write_part(path, pings)
                pings = []
            fh.write((encode_record(rec) + "\n").encode("utf-8"))
    if pings:
        write_part(path, pings)
    return {**counts, "samples_bytes": (path / "samples.jsonl").stat().st_size}


# --- the measured child -------------------------------------------------------------------------


def measure(run_dir: Path, path: str = "stream") -> dict[str, Any]:
    """What probe.measure.execute does after the measurement, step by step: times and peak RSS
    after each.

    ``stream`` is probe's path (the probe store's rows and the other records, as
    ``load_matrix`` reads a run); ``records`` is the baseline that decodes and holds every
    record of samples.jsonl first.
    """
    import gc

    from probe.matrix import build as matrix
    from probe.store.probes import read_store
    from probe.store.rundir import read_run, read_samples

    gc.collect()
    rss = {"imports": peak_rss_mib()}
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    run = read_run(run_dir)
    builder = matrix.MatrixBuilder(run)
    if path == "stream":
        builder.add_store(read_store(run_dir, []))
    else:
        samples = read_samples(run_dir)
    times["read_samples"] = time.perf_counter() - t0
    rss["read_samples"] = peak_rss_mib()

    t0 = time.perf_counter()
    frame = builder.frame() if path == "stream" else matrix.build_matrix(run, samples.records)
    times["build_matrix"] = time.perf_counter() - t0
    rss["build_matrix"] = peak_rss_mib()

    t0 = time.perf_counter()
    rtts = builder.samples() if path == "stream" else matrix.rtt_samples(samples.records)
    anchors = matrix.to_anchors(run, frame, rtts)
    times["to_anchors"] = time.perf_counter() - t0
    rss["to_anchors"] = peak_rss_mib()

    return {
        "rows": len(frame),
        "anchor_pairs": len(anchors.pairs),
        "rtt_ok_rows": int((frame["status"] == "ok").sum()),
        "frame_mib": round(frame.memory_usage(deep=True).sum() / 2**20, 1),
        "seconds": {k: round(v, 3) for k, v in times.items()},
        "peak_rss_mib_after": rss,
    }


# --- fit and extrapolation ----------------------------------------------------------------------


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares ``y = a + b·x``: (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return my, 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - b * mx, b


def growth(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Fits per ordered pair (time and RSS) and the 2,000-host all-pairs extrapolation."""
    pairs = [float(p["pairs"]) for p in points]
    total_s = [sum(p["seconds"].values()) for p in points]
    build_s = [p["seconds"]["build_matrix"] for p in points]
    peak = [p["peak_rss_mib_after"]["to_anchors"] for p in points]
    a_t, b_t = linear_fit(pairs, total_s)
    a_b, b_b = linear_fit(pairs, build_s)
    a_m, b_m = linear_fit(pairs, peak)
    target_pairs = TARGET_HOSTS * (TARGET_HOSTS - 1)
    return {
        "model": "y = a + b · ordered_pairs (least squares over the measured N)",
        "total_s": {"a": round(a_t, 3), "us_per_pair": round(b_t * 1e6, 2)},
        "build_matrix_s": {"a": round(a_b, 3), "us_per_pair": round(b_b * 1e6, 2)},
        "peak_rss_mib": {"a": round(a_m, 1), "kib_per_pair": round(b_m * 1024, 2)},
        "extrapolated": {
            "hosts": TARGET_HOSTS,
            "ordered_pairs": target_pairs,
            "total_s": round(a_t + b_t * target_pairs, 1),
            "build_matrix_s": round(a_b + b_b * target_pairs, 1),
            "peak_rss_gib": round((a_m + b_m * target_pairs) / 1024, 1),
            "samples_gib": round(
                points[-1]["samples_bytes"] / points[-1]["pairs"] * target_pairs / 2**30, 1
            ),
        },
    }


def sample_pair_counts(n_hosts: int = TARGET_HOSTS) -> list[dict[str, Any]]:
    """Bandwidth pairs, tests and rounds per ``--pairs`` selection on an ``n_hosts`` fleet.

    Rounds: each direction needs at least Δ rounds (Δ: the most pairs one host is in) and the
    scheduler guarantees ≤ Δ+1 (Vizing, Misra–Gries); the full mesh gets exactly N−1 (even N).
    Wall time at the default 10 s test + 2 s omit + 3 s setup per round.
    """
    from collections import Counter

    from probe import plan

    hosts = _model_hosts([_host(i) for i in range(n_hosts)])
    per_round_s = plan.per_test_wall_s(10, 2)
    rows = []
    for mode in ["all", *(f"sample:{k}" for k in SAMPLE_KS)]:
        if mode == "all":  # counted, not listed: 2 million tuples prove nothing
            unordered, delta = n_hosts * (n_hosts - 1) // 2, n_hosts - 1
        else:
            pairs = plan.select_pairs(hosts, plan.parse_pair_mode(mode))
            unordered = len(pairs)
            delta = max(Counter(h for pair in pairs for h in pair).values())
        rounds = 2 * delta
        rows.append(
            {
                "pairs": mode,
                "unordered_pairs": unordered,
                "iperf3_tests": 2 * unordered,
                "rounds_min": rounds,
                "bandwidth_hours_min": round(rounds * per_round_s / 3600, 1),
            }
        )
    return rows


# --- the parent ---------------------------------------------------------------------------------


def run_matrix(
    sizes: Sequence[int], *, bw_pairs: str = "all", out: Path | None = None
) -> dict[str, Any]:
    """Each N: write a run directory, measure it in a fresh process; fit, extrapolate, report."""
    points = []
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"probe-bench-matrix-{n}-"))
        try:
            t0 = time.perf_counter()
            counts = write_run_dir(tmp, n, bw_pairs)
            generate_s = time.perf_counter() - t0
            res = run_child("bench.bench_matrix", ["--child", str(tmp)])
            base = run_child("bench.bench_matrix", ["--child", str(tmp), "--path", "records"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        total_s, base_s = sum(res["seconds"].values()), sum(base["seconds"].values())
        peak, base_peak = (
            res["peak_rss_mib_after"]["to_anchors"],
            base["peak_rss_mib_after"]["to_anchors"],
        )
        points.append(
            {
                "hosts": n,
                "pairs": n * (n - 1),
                **counts,
                "generate_s": round(generate_s, 2),
                **res,
                "baseline_records": {"seconds": round(base_s, 3), "peak_rss_mib": base_peak},
                "ratio_vs_records": {
                    "seconds": round(total_s / base_s, 3) if base_s else None,
                    "peak_rss": round(peak / base_peak, 3) if base_peak else None,
                },
            }
        )
    result: dict[str, Any] = {
        "bw_pairs": bw_pairs,
        "regions": REGIONS,
        "probes_per_pair": PROBES,
        "points": points,
    }
    if len(points) >= 2:
        result["growth"] = growth(points)
    result["bandwidth_pairs_2000_hosts"] = sample_pair_counts()
    result["report"] = str(write_report("matrix", result, out))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", help="comma-separated host counts (default 50,100,200,300)")
    ap.add_argument("--quick", action="store_true", help="sizes 10,20,40")
    ap.add_argument("--bw-pairs", default="all", help="iperf3 records: all|none|sample:K|…")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument(
        "--path", default="stream", choices=("stream", "records"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.child:
        emit_child_result(measure(Path(args.child), args.path))
        return 0
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else list(QUICK_SIZES if args.quick else SIZES)
    )
    result = run_matrix(sizes, bw_pairs=args.bw_pairs, out=args.out)
    rows = [
        [
            p["hosts"],
            p["pairs"],
            round(p["samples_bytes"] / 2**20, 1),
            p["seconds"]["read_samples"],
            p["seconds"]["build_matrix"],
            p["seconds"]["to_anchors"],
            p["peak_rss_mib_after"]["read_samples"],
            p["peak_rss_mib_after"]["build_matrix"],
            p["peak_rss_mib_after"]["to_anchors"],
            p["frame_mib"],
            p["ratio_vs_records"]["seconds"],
            p["ratio_vs_records"]["peak_rss"],
        ]
        for p in result["points"]
    ]
    print_table(
        rows,
        [
            *("N", "pairs", "jsonl MiB", "read s", "build s", "anchors s"),
            *("RSS read", "RSS build", "RSS anchors", "frame MiB"),
            *("time / records path", "RSS / records path"),
        ],
        floatfmt=".2f",
    )
    if g := result.get("growth"):
        e = g["extrapolated"]
        print(
            f"per ordered pair: {g['total_s']['us_per_pair']} µs "
            f"(build_matrix {g['build_matrix_s']['us_per_pair']} µs), "
            f"{g['peak_rss_mib']['kib_per_pair']} KiB peak RSS; "
            f"{e['hosts']} hosts all pairs ({e['ordered_pairs']:,}): ~{e['total_s']} s, "
            f"~{e['peak_rss_gib']} GiB, samples.jsonl ~{e['samples_gib']} GiB"
        )
    print_table(
        [list(r.values()) for r in result["bandwidth_pairs_2000_hosts"]],
        ["--pairs (2,000 hosts)", "unordered pairs", "iperf3 tests", "rounds ≥", "hours ≥"],
    )
    print(f"wrote {result['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
