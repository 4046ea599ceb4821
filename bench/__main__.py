"""``make bench``: every benchmark, each writing reports/bench/NAME.json and printing a table.

Ratios are against baselines measured in the same run; absolute times on a shared 2-core
machine are noise. The lab benchmarks need root and are skipped (with a line saying so) without it.
``python -m bench NAME [ARGS]`` runs one, ``bench.bench_NAME``, with its own arguments. The scale
benchmark runs in its quick form here: its full form writes runs of 1,000 and 3,000 hosts (GiBs of
samples, the better part of an hour on two cores): ``python -m bench scale``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.common import ROOT, child_env

BENCHES = [
    "bench.bench_calc",
    "bench.bench_matrix",
    "bench.bench_engine",
    "bench.bench_anchors",
    "bench.bench_fanout",
    "bench.bench_lab",
    "bench.bench_scale",
]
#: Too slow for ``make bench`` in full: always its quick form there.
ALWAYS_QUICK = {"bench.bench_scale"}


def main(argv: list[str]) -> int:
    if argv and not argv[0].startswith("-"):
        module = f"bench.bench_{argv[0]}"
        return subprocess.run([sys.executable, "-m", module, *argv[1:]], cwd=ROOT,
                              env=child_env(), check=False).returncode  # fmt: skip
    quick = "--quick" in argv
    failed = []
    for module in BENCHES:
        if module == "bench.bench_lab" and os.geteuid() != 0:
            print(f"== {module}: skipped (the lab needs root)")
            continue
        print(f"== {module}", flush=True)
        args = [sys.executable, "-m", module] + (
            ["--quick"] if quick or module in ALWAYS_QUICK else []
        )
        if subprocess.run(args, cwd=ROOT, env=child_env(), check=False).returncode != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
