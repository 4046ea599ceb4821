"""Benchmark: anchors.json with its samples inline (``probe.anchors/1``) against the sidecar (/2).

For each N a synthetic run directory (``bench_matrix.write_run_dir``: N hosts over 10 regions,
20 probes per ordered pair, bandwidth `--pairs sample:1`) is measured, each layout in fresh child
processes so each peak RSS is its own:

* ``build``: what the end of ``probe run`` does — rebuild the matrix from samples.jsonl (the same
  for both layouts, timed apart), then ``to_anchors`` and write the file(s);
* ``load``: what every ``calc`` does — ``load_anchors``, then calc decode + prefill on 4 placed
  stages with its Monte-Carlo (which reads the samples of the hops it places on).

The old layout is written here from the new document with each pair's samples put back inline:
the same JSON ``probe.anchors/1`` was. Ratios are new / old, measured in the same run.

    .venv/bin/python -m bench.bench_anchors [--quick] [--hosts 100,300,1000]
    PROBE_BENCH_LARGE=1 make bench       # the default sizes and 1,000 hosts
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bench_matrix import write_run_dir
from bench.common import emit_child_result, peak_rss_mib, print_table, run_child, write_report

SIZES = (100, 300)
LARGE = 1000  # only with --hosts or PROBE_BENCH_LARGE=1: ~1.5 GiB of samples.jsonl, minutes
QUICK_SIZES = (10, 20)
BW_PAIRS = "sample:1"  # a few iperf3 records: the anchors carry goodput as in a real run
LAYOUTS = ("v1", "v2")


def v1_text(anchors: Any) -> str:
    """The ``probe.anchors/1`` text of ``anchors``: every ok pair's samples inline."""
    from probe.matrix.anchors import dump_anchors

    doc = json.loads(dump_anchors(anchors))
    doc["schema"] = "probe.anchors/1"
    del doc["samples"]
    pairs = doc["pairs"]
    for pair, out in zip(anchors.pairs, pairs, strict=True):
        probes = anchors.rtt_samples(pair)
        out["rtt_samples_ms"] = None if probes is None else probes.rtt_ms.tolist()
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


# --- the measured children ----------------------------------------------------------------------


def build(run_dir: Path, out: Path, layout: str) -> dict[str, Any]:
    """Rebuild, then anchors in ``layout`` written to ``out``: seconds and peak RSS of each."""
    from probe.matrix import build as matrix
    from probe.matrix.anchors import write_anchors
    from probe.store.probes import read_store
    from probe.store.rundir import read_run
    from probe.textio import save

    rss = {"imports": peak_rss_mib()}
    t0 = time.perf_counter()
    run = read_run(run_dir)
    builder = matrix.MatrixBuilder(run)
    builder.add_store(read_store(run_dir, []))
    frame = builder.frame()
    rebuild_s = time.perf_counter() - t0
    rss["rebuild"] = peak_rss_mib()
    t0 = time.perf_counter()
    anchors = matrix.to_anchors(run, frame, builder.samples())
    out.mkdir(parents=True, exist_ok=True)
    if layout == "v1":
        save(out / "anchors.json", v1_text(anchors))
    else:
        write_anchors(out / "anchors.json", anchors)
    anchors_s = time.perf_counter() - t0
    rss["anchors"] = peak_rss_mib()
    return {
        "rebuild_s": round(rebuild_s, 3),
        "anchors_s": round(anchors_s, 3),
        "peak_rss_mib_after": rss,
        "bytes": {p.name: p.stat().st_size for p in sorted(out.iterdir())},
    }


def load(out: Path) -> dict[str, Any]:
    """``load_anchors`` then calc decode + prefill (4 stages, Monte-Carlo): seconds, peak RSS."""
    from probe.decide.calc import calc
    from probe.decide.options import CalcOptions
    from probe.matrix.anchors import load_anchors

    rss = {"imports": peak_rss_mib()}
    t0 = time.perf_counter()
    anchors = load_anchors(out / "anchors.json")
    load_s = time.perf_counter() - t0
    rss["load"] = peak_rss_mib()
    t0 = time.perf_counter()
    result = calc(anchors, CalcOptions(stages=4, scenarios=frozenset({"decode", "prefill"})))
    calc_s = time.perf_counter() - t0
    rss["calc"] = peak_rss_mib()
    tail = result.decode.tail if result.decode is not None else None
    return {
        "load_s": round(load_s, 3),
        "calc_s": round(calc_s, 3),
        "peak_rss_mib_after": rss,
        "path": list(result.path),
        "decode_tail": None if tail is None else repr(tail),
    }


# --- the parent ---------------------------------------------------------------------------------


def _ratio(new: float, old: float) -> float | None:
    return round(new / old, 3) if old else None


def run_anchors(sizes: Sequence[int], *, out: Path | None = None) -> dict[str, Any]:
    """Each N: a run directory, each layout built and loaded in fresh processes; new / old."""
    points = []
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"probe-bench-anchors-{n}-"))
        try:
            t0 = time.perf_counter()
            write_run_dir(tmp / "run", n, BW_PAIRS)
            generate_s = time.perf_counter() - t0
            built, loaded = {}, {}
            for layout in LAYOUTS:
                dest = tmp / layout
                built[layout] = run_child(
                    "bench.bench_anchors", ["--build", str(tmp / "run"), str(dest), layout]
                )
                loaded[layout] = run_child("bench.bench_anchors", ["--load", str(dest)])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if loaded["v1"]["decode_tail"] != loaded["v2"]["decode_tail"]:
            raise RuntimeError(f"{n} hosts: calc's Monte-Carlo differs between the layouts")
        old_b, new_b = built["v1"], built["v2"]
        old_l, new_l = loaded["v1"], loaded["v2"]
        points.append(
            {
                "hosts": n,
                "pairs": n * (n - 1),
                "generate_s": round(generate_s, 2),
                "build": built,
                "load": loaded,
                "ratio_v2_vs_v1": {
                    "anchors_s": _ratio(new_b["anchors_s"], old_b["anchors_s"]),
                    "build_peak_rss": _ratio(
                        new_b["peak_rss_mib_after"]["anchors"],
                        old_b["peak_rss_mib_after"]["anchors"],
                    ),
                    "bytes": _ratio(sum(new_b["bytes"].values()), sum(old_b["bytes"].values())),
                    "load_s": _ratio(new_l["load_s"], old_l["load_s"]),
                    "load_plus_calc_s": _ratio(
                        new_l["load_s"] + new_l["calc_s"], old_l["load_s"] + old_l["calc_s"]
                    ),
                    "calc_peak_rss": _ratio(
                        new_l["peak_rss_mib_after"]["calc"], old_l["peak_rss_mib_after"]["calc"]
                    ),
                },
            }
        )
    result: dict[str, Any] = {"probes_per_pair": 20, "layouts": list(LAYOUTS), "points": points}
    result["report"] = str(write_report("anchors", result, out))
    return result


def _rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for p in result["points"]:
        for layout in LAYOUTS:
            b, ld = p["build"][layout], p["load"][layout]
            rows.append(
                [
                    p["hosts"],
                    layout,
                    b["rebuild_s"],
                    b["anchors_s"],
                    b["peak_rss_mib_after"]["anchors"],
                    round(sum(b["bytes"].values()) / 2**20, 1),
                    ld["load_s"],
                    ld["calc_s"],
                    ld["peak_rss_mib_after"]["calc"],
                ]
            )
        r = p["ratio_v2_vs_v1"]
        rows.append(
            [p["hosts"], "v2 / v1", None, r["anchors_s"], r["build_peak_rss"], r["bytes"],
             r["load_s"], None, r["calc_peak_rss"]]
        )  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hosts", help="comma-separated host counts (default 100,300)")
    ap.add_argument("--quick", action="store_true", help="host counts 10,20")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--build", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--load", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build:
        run_dir, dest, layout = args.build
        emit_child_result(build(Path(run_dir), Path(dest), layout))
        return 0
    if args.load:
        emit_child_result(load(Path(args.load)))
        return 0
    if args.hosts:
        sizes = [int(s) for s in args.hosts.split(",")]
    else:
        sizes = list(QUICK_SIZES if args.quick else SIZES)
        if os.environ.get("PROBE_BENCH_LARGE") == "1" and not args.quick:
            sizes.append(LARGE)
    result = run_anchors(sizes, out=args.out)
    print_table(
        _rows(result),
        [
            *("N", "layout", "rebuild s", "anchors s", "build RSS MiB", "MiB on disk"),
            *("load s", "calc s", "calc RSS MiB"),
        ],
        floatfmt=".2f",
    )
    print(f"wrote {result['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
