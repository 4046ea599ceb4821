"""Benchmark: the per-cell ping reduction by DuckDB, Polars and numpy-over-Arrow (the engine).

For each N a synthetic probe-store part is written (``probe.store.probes.SCHEMA``: N·(N−1) ping
records of 20 probes, 2 % of them losing one, a summary line each; plus one older record per 50
cells, so "latest record per cell" has work to do). A fresh child process per engine reads it
and reduces it to the figures the matrix needs per cell — latest record, count, loss, min, mean,
p50/p90/p99, max, population stddev, IPDV in seq order — and reports wall seconds and peak RSS.
The DuckDB and Polars queries compute the same figures with their own (not bit-identical)
arithmetic; numpy is ``probe.matrix.engine.ping_cells``, exact to ``train_stats``.

    .venv/bin/python -m bench.bench_engine [--quick] [--sizes 300,1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit_child_result, peak_rss_mib, print_table, run_child, write_report

SIZES = (300, 1000)
QUICK_SIZES = (50, 100)
PROBES = 20
ENGINES = ("numpy", "duckdb", "polars")

_SQL = """
WITH latest AS (
    SELECT src, dst, network, max("offset") AS "offset" FROM read_parquet('{path}')
    GROUP BY ALL
), rows AS (
    SELECT p.* FROM read_parquet('{path}') p JOIN latest USING (src, dst, network, "offset")
), jumps AS (
    SELECT src, dst, network, rtt_ms,
           abs(rtt_ms - lag(rtt_ms) OVER (PARTITION BY src, dst, network ORDER BY seq)) AS jump
    FROM rows WHERE rtt_ms IS NOT NULL
), figures AS (
    SELECT src, dst, network, count(*) AS got, min(rtt_ms) AS lo, avg(rtt_ms) AS mean,
           quantile_cont(rtt_ms, [0.5, 0.9, 0.99]) AS q, max(rtt_ms) AS hi,
           stddev_pop(rtt_ms) AS mdev, avg(jump) AS ipdv
    FROM jumps GROUP BY ALL
)
SELECT r.src, r.dst, r.network, any_value(r.status) AS status, any_value(r.sent) AS sent,
       any_value(r.received) AS received, any_value(f.lo) AS lo, any_value(f.mean) AS mean,
       any_value(f.q) AS q, any_value(f.hi) AS hi, any_value(f.mdev) AS mdev,
       any_value(f.ipdv) AS ipdv
FROM rows r LEFT JOIN figures f USING (src, dst, network) GROUP BY ALL
"""


def write_part(path: Path, n_hosts: int, seed: int = 0) -> int:
    """The synthetic part; returns its row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from probe.store.probes import SCHEMA

    rng = np.random.default_rng(seed)
    names = [f"h{i:04d}" for i in range(n_hosts)]
    src, dst = np.nonzero(~np.eye(n_hosts, dtype=np.bool_))
    stale = np.flatnonzero(rng.random(len(src)) < 0.02)  # an older attempt of some cells
    src = np.concatenate([src[stale], src]).astype(np.int32)
    dst = np.concatenate([dst[stale], dst]).astype(np.int32)
    records = len(src)
    base = np.where(src % 10 == dst % 10, 0.3, 20.0 + 10 * np.abs(src % 10 - dst % 10))
    rtt = np.round(base[:, None] * (1 + np.abs(rng.normal(0, 0.05, (records, PROBES)))), 3)
    lost = rng.random(records) < 0.02
    mask = np.zeros_like(rtt, np.bool_)
    mask[lost, 6] = True
    rtt_masked = np.ma.masked_array(rtt, mask)
    received = PROBES - lost.astype(np.int32)
    mean = np.round(rtt_masked.mean(axis=1).filled(np.nan), 3)
    mdev = np.round(rtt_masked.std(axis=1).filled(np.nan), 3)

    def per_record(values: Any) -> Any:
        return np.repeat(values, PROBES)

    def names_of(codes: Any) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(per_record(codes)), pa.array(names))

    rows = records * PROBES
    one = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array(["ping"]))
    table = pa.table(
        {
            "offset": pa.array(per_record(np.arange(records, dtype=np.int64) * 900)),
            "phase": one,
            "src": names_of(src),
            "dst": names_of(dst),
            "network": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(rows, np.int32)), pa.array(["default"])
            ),
            "status": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(rows, np.int32)), pa.array(["ok"])
            ),
            "reason": pa.nulls(rows, pa.string()),
            "sent": pa.array(np.full(rows, PROBES, np.int32)),
            "received": pa.array(per_record(received).astype(np.int32)),
            "duplicates": pa.array(np.zeros(rows, np.int32)),
            "sum_min_ms": pa.array(per_record(rtt_masked.min(axis=1).filled(np.nan))),
            "sum_avg_ms": pa.array(per_record(mean)),
            "sum_max_ms": pa.array(per_record(rtt_masked.max(axis=1).filled(np.nan))),
            "sum_mdev_ms": pa.array(per_record(mdev)),
            "seq": pa.array(np.tile(np.arange(1, PROBES + 1, dtype=np.int32), records)),
            "rtt_ms": pa.array(rtt.ravel(), mask=mask.ravel()),
        },
        schema=SCHEMA,
    )
    pq.write_table(table, path, compression="zstd")
    return rows


def measure(path: Path, engine: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    if engine == "numpy":
        import pyarrow.parquet as pq

        from probe.matrix.engine import ping_cells
        from probe.store.probes import PingRows

        cells = len(ping_cells(PingRows.of(pq.read_table(path))).cells)
    elif engine == "duckdb":
        import duckdb

        cells = len(duckdb.sql(_SQL.format(path=path)).fetchnumpy()["src"])  # type: ignore[union-attr]
    else:
        import polars as pl

        frame = pl.scan_parquet(path)
        key = ["src", "dst", "network"]
        latest = frame.filter(pl.col("offset") == pl.col("offset").max().over(key))
        got = latest.filter(pl.col("rtt_ms").is_not_null()).sort([*key, "seq"])
        figures = got.group_by(key).agg(
            pl.len().alias("got"),
            pl.col("rtt_ms").min().alias("lo"),
            pl.col("rtt_ms").mean().alias("mean"),
            *(pl.col("rtt_ms").quantile(q, "linear").alias(f"p{q}") for q in (0.5, 0.9, 0.99)),
            pl.col("rtt_ms").max().alias("hi"),
            pl.col("rtt_ms").std(ddof=0).alias("mdev"),
            pl.col("rtt_ms").diff().abs().mean().alias("ipdv"),
        )
        heads = latest.group_by(key).agg(pl.col("status", "sent", "received").first())
        cells = heads.join(figures, on=key, how="left").collect().height
    return {
        "engine": engine,
        "cells": cells,
        "seconds": round(time.perf_counter() - t0, 3),
        "peak_rss_mib": peak_rss_mib(),
    }


def run_engines(sizes: Sequence[int], out: Path | None = None) -> dict[str, Any]:
    points = []
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"probe-bench-engine-{n}-"))
        try:
            part = tmp / "ping-000000000000.parquet"
            rows = write_part(part, n)
            results = [
                run_child("bench.bench_engine", ["--child", str(part), "--engine", e])
                for e in ENGINES
            ]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        points.append({"hosts": n, "pairs": n * (n - 1), "rows": rows, "engines": results})
    result: dict[str, Any] = {"probes_per_pair": PROBES, "points": points}
    result["report"] = str(write_report("engine", result, out))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", help="comma-separated host counts (default 300,1000)")
    ap.add_argument("--quick", action="store_true", help="sizes 50,100")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        emit_child_result(measure(Path(args.child), args.engine))
        return 0
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else list(QUICK_SIZES if args.quick else SIZES)
    )
    result = run_engines(sizes, args.out)
    rows = [
        [p["hosts"], e["engine"], e["cells"], e["seconds"], e["peak_rss_mib"]]
        for p in result["points"]
        for e in p["engines"]
    ]
    print_table(rows, ["N", "engine", "cells", "seconds", "peak RSS MiB"], floatfmt=".2f")
    print(f"wrote {result['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
