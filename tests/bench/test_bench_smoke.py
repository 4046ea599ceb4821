"""The benchmarks still run: each core function at a tiny size, its JSON checked (never timed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.bench_anchors import run_anchors
from bench.bench_fanout import VARIANTS, run_fanout
from bench.bench_matrix import linear_fit, run_matrix

MACHINE_KEYS = {"nproc", "python", "versions", "machine"}


def _report(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    assert {"bench", "timestamp_utc", "machine"} <= doc.keys()
    assert doc["machine"].keys() >= MACHINE_KEYS
    assert doc["machine"]["nproc"] >= 1
    assert isinstance(doc, dict)
    return doc


def test_fanout_smoke(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    run_fanout(5, users_per_sshd=2, repeats=1, out=out)
    doc = _report(out)
    assert doc["bench"] == "fanout"
    assert doc["hosts"] == 5
    assert doc["sshds"] == 3  # 5 hosts, 2 users per sshd
    variants = doc["variants"]
    assert isinstance(variants, dict)
    stats: dict[str, Any]
    assert set(variants) == set(VARIANTS)
    for stats in variants.values():
        assert stats["connected_min"] == 5
        assert stats["commands_ok_min"] == 5
        assert stats["fanout_s_median"] > 0
        assert 10 < stats["peak_rss_mib_max"] < 2000
        assert stats["max_unauthenticated_per_sshd"] <= 2
    assert doc["median_ratio_vs_capped"] > 0
    assert isinstance(doc["within_goal"], bool)
    assert len(doc["runs"]) == len(VARIANTS)


def test_matrix_smoke(tmp_path: Path) -> None:
    out = tmp_path / "matrix.json"
    run_matrix([5, 10], bw_pairs="sample:1", out=out)
    doc = _report(out)
    assert doc["bench"] == "matrix"
    points = doc["points"]
    assert isinstance(points, list)
    assert [p["hosts"] for p in points] == [5, 10]
    for p in points:
        n = p["hosts"]
        assert p["rows"] == p["anchor_pairs"] == p["ping"] == n * (n - 1)
        assert p["rtt_ok_rows"] == p["rows"]
        assert p["host"] == n
        assert set(p["seconds"]) == {"read_samples", "build_matrix", "to_anchors"}
        rss = p["peak_rss_mib_after"]
        assert rss["imports"] <= rss["read_samples"] <= rss["build_matrix"] <= rss["to_anchors"]
        assert p["baseline_records"]["peak_rss_mib"] > 0 and p["ratio_vs_records"]["seconds"] > 0
    growth = doc["growth"]
    assert isinstance(growth, dict)
    assert growth["extrapolated"]["ordered_pairs"] == 2000 * 1999
    by_mode = {r["pairs"]: r for r in doc["bandwidth_pairs_2000_hosts"]}
    assert by_mode["all"]["unordered_pairs"] == 2000 * 1999 // 2
    # sample:K = the intra-region full meshes (10 × C(200, 2)) + C(10·K, 2) − 10·C(K, 2)
    assert by_mode["sample:2"]["unordered_pairs"] == 10 * 19900 + 190 - 10


def test_anchors_smoke(tmp_path: Path) -> None:
    """Both layouts built and loaded; calc's Monte-Carlo agrees between them (or it raises)."""
    out = tmp_path / "anchors.json"
    run_anchors([6], out=out)
    doc = _report(out)
    assert doc["bench"] == "anchors"
    (p,) = doc["points"]
    assert p["hosts"] == 6 and p["pairs"] == 30
    assert set(p["build"]["v1"]["bytes"]) == {"anchors.json"}
    assert set(p["build"]["v2"]["bytes"]) == {"anchors.json", "anchors-samples.parquet"}
    assert p["load"]["v1"]["decode_tail"] == p["load"]["v2"]["decode_tail"] is not None
    assert all(v is not None and v > 0 for v in p["ratio_v2_vs_v1"].values())


def test_linear_fit() -> None:
    assert linear_fit([1, 2, 3], [3, 5, 7]) == (1.0, 2.0)
