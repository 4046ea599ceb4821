"""Benchmark: ``calc`` + ``groups`` on a synthetic 1,000-host anchors (goal: ≤ 10 s).

Eight cloud regions with inter-region RTTs taken from public measurements between AWS regions
(doitintl/intercloud-throughput, Feb 2022, median of ``ping -c 5``), 125 hosts each in three
zones; intra-zone 0.2–0.4 ms, inter-zone 0.6–1.2 ms. Every ordered pair has statistics and 20
raw RTT samples (sample tuples are shared between pairs of one region pair to bound memory).

The baseline, timed in the same run, is a naive O(N²) pure-Python loop over every host pair that
evaluates the group predicate (RTT and goodput both ways) through ``Anchors.pair`` lookups: the
work a straightforward implementation would do before any clustering at all.

    .venv/bin/python bench/bench_calc.py [--hosts 1000] [--out reports/bench/calc.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.decide import scenarios as sc
from probe.decide.groups import find_groups
from probe.decide.options import Limits
from probe.decide.shapes import preset
from probe.matrix.anchors import (
    Anchors,
    Bandwidth,
    HostInfo,
    PairAnchor,
    RttAnchor,
)
from probe.matrix.pairs import PairTable
from probe.matrix.regions import roll_up
from probe.matrix.samples import Probes
from probe.model import CellStatus

GOAL_S = 10.0
REGIONS = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-1",
    "ap-south-1",
    "sa-east-1",
]
# median RTT ms between AWS regions (intercloud-throughput 2022-02); missing cells estimated
RTT_MS = {
    ("us-east-1", "us-west-2"): 63.7,
    ("us-east-1", "eu-west-1"): 66.0,
    ("us-east-1", "eu-central-1"): 89.3,
    ("us-east-1", "sa-east-1"): 112.4,
    ("us-east-1", "ap-northeast-1"): 145.0,
    ("us-east-1", "ap-southeast-1"): 215.0,
    ("us-east-1", "ap-south-1"): 185.0,
    ("us-west-2", "eu-west-1"): 126.1,
    ("us-west-2", "eu-central-1"): 149.9,
    ("us-west-2", "ap-northeast-1"): 98.0,
    ("us-west-2", "ap-southeast-1"): 168.8,
    ("us-west-2", "ap-south-1"): 218.0,
    ("us-west-2", "sa-east-1"): 181.8,
    ("eu-west-1", "eu-central-1"): 23.5,
    ("eu-west-1", "ap-northeast-1"): 198.5,
    ("eu-west-1", "ap-southeast-1"): 179.0,
    ("eu-west-1", "ap-south-1"): 147.5,
    ("eu-west-1", "sa-east-1"): 176.1,
    ("eu-central-1", "ap-northeast-1"): 222.9,
    ("eu-central-1", "ap-southeast-1"): 155.6,
    ("eu-central-1", "ap-south-1"): 153.8,
    ("eu-central-1", "sa-east-1"): 203.9,
    ("ap-northeast-1", "ap-southeast-1"): 73.8,
    ("ap-northeast-1", "ap-south-1"): 128.1,
    ("ap-northeast-1", "sa-east-1"): 255.3,
    ("ap-southeast-1", "ap-south-1"): 60.1,
    ("ap-southeast-1", "sa-east-1"): 321.7,
    ("ap-south-1", "sa-east-1"): 331.3,
}
VARIANTS = 16  # distinct sample tuples per (region pair, zone relation)


def _base_rtt(a: HostInfo, b: HostInfo) -> float:
    if a.region != b.region:
        return RTT_MS.get((a.region, b.region)) or RTT_MS[(b.region, a.region)]
    return 0.3 if a.zone == b.zone else 0.9


def synthetic_anchors(n_hosts: int, seed: int = 0) -> Anchors:
    rng = random.Random(seed)
    per_region = n_hosts // len(REGIONS)
    hosts = [
        HostInfo(f"{r}-{i:03d}", r, f"{r}{'abc'[i % 3]}", "aws")
        for r in REGIONS
        for i in range(per_region)
    ]
    pool: dict[tuple[str, str, bool], list[tuple[RttAnchor, Probes, Bandwidth]]] = {}
    pairs = []
    rtts: dict[tuple[str, str], Probes] = {}
    for a in hosts:
        for b in hosts:
            if a is b:
                continue
            key = (a.region, b.region, a.zone == b.zone)
            variants = pool.get(key)
            if variants is None:
                variants = pool[key] = []
                base = _base_rtt(a, b)
                same_region = a.region == b.region
                for _ in range(VARIANTS):
                    samples = tuple(
                        sorted(
                            base * (1 + abs(rng.gauss(0, 0.03)))
                            + rng.expovariate(1 / (0.02 * base))
                            for _ in range(20)
                        )
                    )
                    stats = RttAnchor(
                        samples[0],
                        sum(samples) / 20,
                        samples[10],
                        samples[18],
                        samples[19],
                        samples[19],
                    )
                    gbit = rng.uniform(10, 25) if same_region else rng.uniform(0.3, 5)
                    probes = Probes(np.array(samples), np.arange(1, 21, dtype=np.int32))
                    pool[key].append((stats, probes, Bandwidth(gbit * 1e3, gbit * 1e3)))
            stats, probes, bw = variants[rng.randrange(VARIANTS)]
            rtts[a.name, b.name] = probes
            pairs.append(
                PairAnchor(
                    a.name,
                    b.name,
                    a.region,
                    b.region,
                    CellStatus.OK,
                    None,
                    stats,
                    None,
                    None,
                    None,
                    0.0,
                    20,
                    20,
                    bw,
                    "ok",
                    None,
                )
            )
    return Anchors(
        "bench",
        "2026-11-23T08:00:00Z",
        "0.1.0",
        tuple(hosts),
        PairTable.of(pairs),
        roll_up(pairs),
        rtts,
    )


def naive_good_pairs(anchors: Anchors, max_rtt_ms: float, min_bw_bps: float) -> int:
    """The O(N²) Python baseline: the group predicate for every host pair, one at a time."""
    names = [h.name for h in anchors.hosts]
    good = 0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ab, ba = anchors.pair(a, b), anchors.pair(b, a)
            if ab is None or ba is None or ab.rtt is None or ba.rtt is None:
                continue
            fwd = [x for x in (ab.bw.forward_mbps, ba.bw.reverse_mbps) if x is not None]
            rev = [x for x in (ab.bw.reverse_mbps, ba.bw.forward_mbps) if x is not None]
            if (
                max(ab.rtt.p50_ms, ba.rtt.p50_ms) <= max_rtt_ms
                and fwd
                and rev
                and min(fwd) * 1e6 >= min_bw_bps
                and min(rev) * 1e6 >= min_bw_bps
            ):
                good += 1
    return good


T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--out", default="reports/bench/calc.json")
    ap.add_argument("--quick", action="store_true", help="300 hosts instead of --hosts")
    args = ap.parse_args()
    if args.quick:
        args.hosts = 300

    gc.disable()  # building 10⁶ frozen dataclasses otherwise spends most of its time in the GC
    anchors, t_build = timed(lambda: synthetic_anchors(args.hosts))
    gc.enable()
    w = sc.Workload(
        preset("llama-3-70b"),
        "bf16",
        tokens=128,
        batch=4,
        seq=2048,
        decode_compute_ms_per_stage=4.0,
    )
    limits = Limits(max_rtt_ms=5.0, min_bw_bps=1e9)

    links, t_links = timed(lambda: sc.Links.from_anchors(anchors))

    def calc() -> float:
        path = sc.place(links, 4, w.activation_bytes(1, 1), ring=False).path
        hops = links.hops(path, ring=False)
        dec = sc.decode(hops, w, trials=2000, seed=0)
        sc.prefill(hops, w, trials=2000, seed=0)
        sc.tensor_parallel(links.hops(path, ring=True), w)
        cross = [
            links.hop(a.name, b.name)
            for a, b in zip(anchors.hosts[::125], anchors.hosts[1::125], strict=False)
        ]
        sc.speculative(cross, 3.5, 45.0, 30.0)
        sc.pool(path[0], links, path, 256, [800.0] * len(path), 8192.0)
        return dec.total.full_p99_ms

    _, t_calc = timed(calc)
    found, t_groups = timed(lambda: find_groups(links, limits, 4, w))
    n_good, t_naive = timed(
        lambda: naive_good_pairs(anchors, limits.max_rtt_ms, limits.min_bw_bps or 0)
    )

    total = t_links + t_calc + t_groups
    seconds = {
        "build_synthetic_anchors": round(t_build, 3),
        "links_from_anchors": round(t_links, 3),
        "calc_all_scenarios": round(t_calc, 3),
        "groups": round(t_groups, 3),
        "calc_plus_groups_total": round(total, 3),
        "naive_python_pair_loop": round(t_naive, 3),
    }
    result = {
        "hosts": len(anchors.hosts),
        "pairs": len(anchors.pairs),
        "regions": len(REGIONS),
        "groups": len(found),
        "largest_group": max(len(g.members) for g in found),
        "seconds": seconds,
        "goal_s": GOAL_S,
        "within_goal": total <= GOAL_S,
        "ratio_total_vs_naive_loop": round(total / t_naive, 3),
        "speedup_groups_vs_naive_loop": round(t_naive / t_groups, 1),
        "naive_good_unordered_pairs": n_good,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rows = [[k, v] for k, v in seconds.items()]
    print(tabulate(rows, ["phase", "seconds"], floatfmt=".3f"))
    print(
        f"{result['hosts']} hosts, {result['pairs']:,} pairs → {result['groups']} groups "
        f"(largest {result['largest_group']}); calc + groups {total:.2f} s vs goal {GOAL_S:g} s "
        f"({'met' if total <= GOAL_S else 'MISSED'}); {total / t_naive:.2f}× the time of one naive "
        f"Python pass over the pairs ({t_naive:.2f} s)"
    )
    print(
        f"groups alone (given the link matrix): {t_naive / t_groups:.0f}× faster "
        "than the naive loop"
    )
    print(f"wrote {out}")
    return 0 if total <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
