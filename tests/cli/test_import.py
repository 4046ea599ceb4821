"""``probe import matrix | captures`` end to end: the run directory it builds is one that show,
calc, groups, gate and report read, and every imported figure says where it came from."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from probe.cli import run
from probe.matrix.anchors import load_anchors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DOIT = FIXTURES / "matrices" / "doit" / "results_subset.csv"
DOIT_COLUMNS = (
    "src=from_region,dst=to_region,rtt_ms=avgrtt,src_region=from_cloud,dst_region=to_cloud"
)
POLICIES = Path(__file__).resolve().parents[2] / "inventory" / "policies"


def test_rtt_only_matrix_becomes_a_run_that_every_command_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs" / "doit"
    assert run(["import", "matrix", str(DOIT), "-o", str(out), "--columns", DOIT_COLUMNS]) == 0
    said = capsys.readouterr().out
    assert "56 of 56 pairs with an RTT, 0 with bandwidth" in said and str(out) in said
    assert {p.name for p in out.iterdir()} >= {
        "run.json", "samples.jsonl", "matrix.csv", "matrix.parquet", "anchors.json",
    }  # fmt: skip
    doc = json.loads((out / "run.json").read_text())
    assert doc["imported"] == {"source": str(DOIT), "format": "long-csv"} and doc["complete"]
    frame = pd.read_csv(out / "matrix.csv")
    row = frame[(frame.src == "eu-west-1") & (frame.dst == "eu-central-1")].iloc[0]
    assert row.status == "ok" and row.reason == f"imported from {DOIT}:2"
    assert row.rtt_p50_ms == row.rtt_p99_ms == 23.541 and row.sent == 0
    # RTT only: no bandwidth cell, and not a failure: not-planned, saying why
    assert set(frame.bw_status) == {"not-planned"}
    assert set(frame.bw_reason) == {f"no bandwidth figure for this pair in the imported {DOIT}"}
    assert (out.parent / "latest").resolve() == out.resolve()

    assert run(["show", str(out), "--by", "region"]) == 0
    assert "AWS" in capsys.readouterr().out
    assert run(["groups", str(out), "--max-rtt", "30ms"]) == 0
    assert "group(s) with RTT p50 ≤ 30 ms" in capsys.readouterr().out
    # one figure per pair: no samples to count and no loss figure, never read as 100 % loss
    assert run(["gate", str(out), "--policy", str(POLICIES / "coverage.yaml")]) == 1
    gate = capsys.readouterr().out
    assert (
        "with < 15 RTT samples" in gate and "without a loss figure" in gate and "100%" not in gate
    )
    assert run(["report", str(out)]) == 0
    assert "**Imported** (long-csv)" in (out / "report.md").read_text()


def test_matrix_with_bandwidth_feeds_calc_groups_and_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """doit's ``bitrate_Bps`` is iperf 2's bytes in 10 s (see SOURCE.md): ×8/10/1e6 Mbit/s."""
    long = tmp_path / "doit.csv"
    with DOIT.open(newline="") as src, long.open("w", newline="") as dst:
        out_csv = csv.writer(dst)
        out_csv.writerow(["src", "dst", "rtt_ms", "bw_mbps", "src_region", "dst_region"])
        for r in csv.DictReader(src):
            mbps = float(r["bitrate_Bps"]) * 8 / 10 / 1e6
            out_csv.writerow([r["from_region"], r["to_region"], r["avgrtt"], mbps,
                              r["from_cloud"], r["to_cloud"]])  # fmt: skip
    out = tmp_path / "run"
    assert run(["import", "matrix", str(long), "-o", str(out)]) == 0
    assert "56 with bandwidth" in capsys.readouterr().out
    assert run(["calc", str(out), "--stages", "4"]) == 0
    assert "== decode:" in capsys.readouterr().out
    assert run(["groups", str(out), "--max-rtt", "30ms"]) == 0
    assert " → " in capsys.readouterr().out  # a group large enough for a stage order
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "schema: probe.policy/1\nname: imported\nchecks:\n"
        "  - name: 4 stages, 128 tokens in 5 s\n    kind: decode\n    model: llama-3-8b\n"
        "    stages: 4\n    tokens: 128\n    compute_per_stage: 5ms\n    budget: 5s\n"
        "    at: p50\n"
    )
    assert run(["gate", str(out), "--policy", str(policy)]) == 0
    assert "PASS" in capsys.readouterr().out


def test_regions_file_labels_a_square_matrix(tmp_path: Path) -> None:
    matrix = tmp_path / "m.csv"
    matrix.write_text(",a,b,c\na,,1.2,80\nb,1.1,,81\nc,79,82,\n")
    regions = tmp_path / "regions.csv"
    regions.write_text("host,region\na,eu\nb,eu\nc,us\n")
    out = tmp_path / "r"
    assert run(["import", "matrix", str(matrix), "-o", str(out), "--regions", str(regions)]) == 0
    hosts = json.loads((out / "run.json").read_text())["hosts"]
    assert {h["name"]: h["region"] for h in hosts} == {"a": "eu", "b": "eu", "c": "us"}


@pytest.mark.parametrize(
    ("matrix", "regions", "says"),
    [
        (",a,b\na,,1\nb,2\n", None, "m.csv:3: not square"),
        ("src,dst,rtt_ms\na,b,1\nb,a,-2\n", None, "m.csv:3: rtt_ms: -2 is not a figure ≥ 0"),
        ("src,dst,rtt_ms\na,b,1\na,b,2\n", None, "m.csv:3: a → b again (first on line 2)"),
        ("src,dst,rtt_ms\na,b,1\n", "a,eu\nz,us\n", "regions.csv:2: unknown host 'z'"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    matrix: str,
    regions: str | None,
    says: str,
) -> None:
    (tmp_path / "m.csv").write_text(matrix)
    argv = ["import", "matrix", str(tmp_path / "m.csv"), "-o", str(tmp_path / "out")]
    if regions is not None:
        (tmp_path / "regions.csv").write_text(regions)
        argv += ["--regions", str(tmp_path / "regions.csv")]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path}/{says}" in err
    assert not (tmp_path / "out").exists()


def test_import_never_writes_into_a_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "run.json").write_text("{}")
    assert run(["import", "matrix", str(DOIT), "-o", str(out), "--columns", DOIT_COLUMNS]) == 2
    assert (out / "run.json").read_text() == "{}"


def cell(frame: pd.DataFrame, src: str, dst: str) -> pd.Series:
    return frame[(frame.src == src) & (frame.dst == dst)].iloc[0]


def captures(folder: Path) -> Path:
    folder.mkdir()
    copies = {
        "a__b.ping.txt": "ping/local/debian-iputils-20221126__ping-ip-i0.01-w5.out",
        "b__a.ping.txt": "ping/local/debian-busybox-1.35__ping-ip-i0.2.out",
        "a.fping.txt": "fping/upstream/fping_C5_q_with_loss_manpage.stderr.txt",
        "a__b.iperf3.json": "iperf3/loopback/iperf3.12_tcp_forward_t2_O1.json",
        "b__a.iperf3.json": "iperf3/loopback/iperf3.12_tcp_reverse_R_t2_O1.json",
    }
    for name, fixture in copies.items():
        shutil.copy(FIXTURES / fixture, folder / name)
    return folder


def test_captures_become_cells_like_probe_s_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = captures(tmp_path / "caps")
    (folder / "README").write_text("how these were taken\n")
    out = tmp_path / "r"
    assert run(["import", "captures", str(folder), "-o", str(out)]) == 0
    streams = capsys.readouterr()
    assert "3 of 6 pairs with an RTT, 2 with bandwidth" in streams.out
    assert "not a capture, left out: README" in streams.err
    frame = pd.read_csv(out / "matrix.csv")
    ab = cell(frame, "a", "b")
    assert ab.status == "ok" and ab.reason == f"imported from {folder / 'a__b.ping.txt'}"
    assert ab.sent == 10 and ab.rtt_p99_ms > ab.rtt_p50_ms > ab.rtt_min_ms  # per-probe RTTs
    assert ab.bw_status == "ok" and ab.bw_fwd_mbps > 1000 and ab.bw_rev_mbps > 1000
    fping = cell(frame, "a", "somehost")
    assert (fping.sent, fping.received, fping.loss_pct) == (5, 4, 20.0)
    assert cell(frame, "somehost", "a").status == "not-planned"
    doc = json.loads((out / "run.json").read_text())
    assert doc["imported"] == {"source": str(folder), "format": "captures"}
    anchors = load_anchors(out / "anchors.json")
    ab_pair = anchors.pair("a", "b")
    samples = None if ab_pair is None else anchors.rtt_samples(ab_pair)
    assert samples is not None and len(samples.rtt_ms) == 10


def test_captures_by_manifest_and_an_unreadable_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    shutil.copy(FIXTURES / "ping/local/debian-busybox-1.35__ping-ip-i0.2.out", folder / "1.out")
    (folder / "manifest.csv").write_text("file,src,dst,tool\n1.out,x,y,ping\n")
    assert run(["import", "captures", str(folder), "-o", str(tmp_path / "r")]) == 0
    frame = pd.read_csv(tmp_path / "r" / "matrix.csv")
    assert list(frame.status) == ["ok", "not-planned"]
    (folder / "2.out").write_text("PING y (10.0.0.2) 56(84) bytes of data.\n")
    (folder / "manifest.csv").write_text("file,src,dst,tool\n1.out,x,y,ping\n2.out,y,x,ping\n")
    capsys.readouterr()
    assert run(["import", "captures", str(folder), "-o", str(tmp_path / "r2")]) == 2
    assert f"{folder / '2.out'}: not ping output" in capsys.readouterr().err
