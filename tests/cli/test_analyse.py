"""``probe calc|groups|gate`` end to end through the CLI boundary (exit codes, output)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from probe.cli import main, run
from probe.decide.cliques import EXACT_HOSTS
from probe.matrix.anchors import write_anchors
from tests.decide.fleet import from_rtt_matrix, make_anchors

POLICIES = Path(__file__).resolve().parents[2] / "inventory" / "policies"


@pytest.fixture
def two_regions(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    anchors = make_anchors({"us-east": 4, "eu-west": 4}, 75.0, samples=True)
    write_anchors(run_dir / "anchors.json", anchors)
    return run_dir


@pytest.fixture
def one_region(tmp_path: Path) -> Path:
    p = tmp_path / "one.json"
    anchors = make_anchors({"us-east": 4, "eu-west": 2}, samples=True, down=("eu-west",))
    write_anchors(p, anchors)
    return p


@pytest.mark.parametrize("command", ["calc", "groups", "gate"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out and main.commands[command].help
    for param in main.commands[command].params:
        if param.param_type_name == "option":
            assert param.help, f"{command} {param.name} has no help"


def test_calc_all_scenarios(two_regions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(
        [
            "calc",
            str(two_regions),
            "--path",
            "us-east-0,us-east-1,eu-west-0,eu-west-1",
            "--spec-accepted",
            "3",
            "--spec-block",
            "40ms",
            "--spec-ar-tps",
            "30",
            "--pool-service",
            "800ms",
            "--decode-compute",
            "4ms",
            "--trials",
            "200",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    for title in ("== decode", "== prefill", "== tensor parallel", "== speculative", "== pool"):
        assert title in out
    assert "8,192 B" in out and "MiB" in out and "Mbit/s" in out and "break-even RTT 60.0 ms" in out


def test_calc_auto_placement_and_model_config(
    two_regions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "hidden_size": 1024,
                "num_hidden_layers": 8,
                "num_attention_heads": 8,
                "vocab_size": 1000,
            }
        )
    )
    rc = run(
        [
            "calc",
            str(two_regions / "anchors.json"),
            "--stages",
            "3",
            "--model-config",
            str(cfg),
            "--scenario",
            "decode",
            "--dtype",
            "int8",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "(auto placement)" in out and "hidden 1024" in out
    assert "1,024 B" in out and "== prefill" not in out


def test_calc_input_errors_exit_2(
    two_regions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["calc", str(tmp_path / "nowhere")]) == 2
    assert "no anchors.json" in capsys.readouterr().err
    assert run(["calc", str(two_regions), "--model", "gpt-5"]) == 2
    assert run(["calc", str(two_regions), "--scenario", "spec"]) == 2
    assert run(["calc", str(two_regions), "--decode-compute", "4"]) == 2
    assert run(["calc", str(two_regions), "--path", "us-east-0,ghost"]) == 2


def test_groups(two_regions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(["groups", str(two_regions), "--max-rtt", "5ms", "--min-bw", "1gbit", "--stages", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "2 group(s)" in out and "us-east-0 →" in out
    assert run(["groups", str(two_regions), "--max-rtt", "100ms"]) == 0
    assert "1 group(s)" in capsys.readouterr().out
    assert run(["groups", str(two_regions)]) == 2  # --max-rtt is required


def test_groups_name_every_member_wrapped_never_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.json"
    write_anchors(anchors, make_anchors({"us-east": 30, "eu-west": 1}, bw_mbps=None))
    assert run(["groups", str(anchors), "--max-rtt", "5ms", "--stages", "8"]) == 0
    out = capsys.readouterr().out
    head, members = out.split("members:\n")
    assert "max RTT p50 ms" in head and "exact" in head and "us-east-0 → … (8)" in head
    assert "not measured" in head and "≥ " in head
    assert "note: bandwidth was not measured between the members of 1 group(s)" in head
    listed = [line for line in members.splitlines() if line.strip()]
    assert listed[0].startswith("  1  us-east-0, us-east-1, ") and len(listed) > 2
    assert all(len(line) <= 100 for line in listed)
    assert listed[-1] == "  2  eu-west-0"
    names = " ".join(members.split()).replace(",", "").split()
    assert [n for n in names if n.startswith("us-east")] == [f"us-east-{i}" for i in range(30)]


def test_groups_say_when_the_search_was_greedy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = EXACT_HOSTS + 1  # an odd ring of close neighbours: groups of 2, a colouring needs 3
    rtt = np.full((n, n), 90.0)
    for i in range(n):
        rtt[i, (i + 1) % n] = rtt[(i + 1) % n, i] = 1.0
    anchors = tmp_path / "anchors.json"
    write_anchors(anchors, from_rtt_matrix(rtt, ["ring"] * n))
    assert run(["groups", str(anchors), "--max-rtt", "5ms"]) == 0
    out = capsys.readouterr().out
    assert "greedy ≤ 3" in out and "colouring bound" in out


def test_gate_exit_codes_and_markdown(
    two_regions: Path, one_region: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md = tmp_path / "gate.md"
    assert (
        run(
            [
                "gate",
                str(two_regions),
                "--policy",
                str(POLICIES / "coverage.yaml"),
                "--markdown",
                str(md),
            ]
        )
        == 0
    )
    assert "✅ PASS" in md.read_text()
    assert run(["gate", str(one_region), "--policy", str(POLICIES / "coverage.yaml")]) == 1
    assert run(["gate", str(one_region), "--policy", str(POLICIES / "prefill-200ms.yaml")]) == 3
    out = capsys.readouterr().out
    assert "gate: INCONCLUSIVE" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks:\n  - kind: nope\n")
    assert run(["gate", str(two_regions), "--policy", str(bad)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_calc_missing_scenario_inputs_name_the_options_and_print_nothing(
    two_regions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["calc", str(two_regions), "--spec-accepted", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "spec needs --spec-accepted, --spec-block and --spec-ar-tps" in err
    assert run(["calc", str(two_regions), "--scenario", "pool"]) == 2
    assert "pool needs --pool-service (e.g. 800ms)" in capsys.readouterr().err


@pytest.mark.parametrize("capability", ["a:1", "us-east-0=0", "us-east-0=-1", "us-east-0=nan"])
def test_calc_capability_must_be_host_equals_a_positive_factor(
    two_regions: Path, capability: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calc", str(two_regions), "--pool-service", "1ms", "--capability", capability]
    assert run(argv) == 2
    assert f"Invalid value for --capability: '{capability}'" in capsys.readouterr().err


@pytest.fixture
def rtt_only(tmp_path: Path) -> Path:
    run_dir = tmp_path / "rtt-only"
    run_dir.mkdir()
    anchors = make_anchors({"us-east": 4, "eu-west": 4}, 75.0, bw_mbps=None, samples=True)
    write_anchors(run_dir / "anchors.json", anchors)
    return run_dir


SPEC_ARGS = ["--spec-accepted", "3", "--spec-block", "40ms", "--spec-ar-tps", "30"]


def test_calc_on_an_rtt_only_run_prints_labelled_lower_bounds(
    rtt_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["calc", str(rtt_only), "--stages", "4", "--trials", "0"]) == 0
    out = capsys.readouterr().out
    assert "placed on RTT alone" in out and "per token (lower bound)" in out
    assert "lower bound: transfer time unknown (bandwidth not measured)" in out
    assert run(["calc", str(rtt_only), "--scenario", "spec", *SPEC_ARGS]) == 0
    assert "== speculative decoding" in capsys.readouterr().out


def test_calc_spec_and_pool_without_stages_say_what_they_chose(
    two_regions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["calc", str(two_regions), "--scenario", "spec", *SPEC_ARGS]) == 0
    out = capsys.readouterr().out
    assert "chosen: spec (proposer + verifier): 2 hosts (default 2" in out
    argv = ["calc", str(two_regions), "--scenario", "pool", "--pool-service", "800ms"]
    assert run(argv) == 0
    assert "chosen: pool: 8 of 8 measured hosts" in capsys.readouterr().out
    assert run([*argv, "--stages", "2"]) == 0
    out = capsys.readouterr().out
    assert "over 2 hosts" in out and "chosen:" not in out


def test_calc_prints_small_figures_with_3_significant_digits(
    two_regions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a us-east hop: 0.5 / 2 + 8192 · 8 / 1e10 s = 0.2565536 ms
    argv = ["calc", str(two_regions), "--path", "us-east-0,us-east-1", "--scenario", "decode"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"per token +0\.257 ", out) and not re.search(r" 0\.26 ", out)


def test_calc_allreduce_option(two_regions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["calc", str(two_regions), "--scenario", "tp", "--stages", "2"]
    assert run([*argv, "--allreduce", "tree"]) == 0
    assert "tree all-reduce" in capsys.readouterr().out
    assert run([*argv, "--allreduce", "measured:0.5ms"]) == 0
    out = capsys.readouterr().out
    assert "measured 0.5 ms all-reduce" in out and "32.00" in out  # 2 × 32 layers × 0.5 ms
    assert run([*argv, "--allreduce", "star"]) == 2
    assert "Invalid value for '--allreduce'" in capsys.readouterr().err


def test_calc_sweep_prints_a_table_and_writes_a_png(
    two_regions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calc", str(two_regions), "--scenario", "decode", "--stages", "2", "--trials", "0"]
    assert run([*argv, "--sweep", "rtt=0..200ms:10ms"]) == 0
    out = capsys.readouterr().out
    assert "== sweep: every hop's RTT" in out and "RTT ms" in out and "decode ms/token" in out
    assert out.count("\n  ") >= 21  # one row per point
    png = two_regions / "calc-sweep-rtt.png"
    assert png.read_bytes().startswith(b"\x89PNG") and f"curve: {png}" in out
    other = tmp_path / "bw.png"
    assert run([*argv, "--sweep", "bw=1gbit..10gbit:1gbit", "--sweep-png", str(other)]) == 0
    assert other.read_bytes().startswith(b"\x89PNG") and "goodput Mbit/s" in capsys.readouterr().out
    assert run([*argv, "--sweep", "rtt=0..200"]) == 2


def test_calc_spec_calibrated_from_measured_rates(
    two_regions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calc", str(two_regions), "--proposers", "us-east-0", "--verifiers", "eu-west-0"]
    assert run([*argv, "--spec-calibrate", "ar=30,local=75,remote=50"]) == 0
    out = capsys.readouterr().out
    # the remote point at the run's RTT between the named pair (75 ms): block 150 ms, E 11.25
    assert "== speculative decoding: E=11.25 tokens/block, block 150 ms, AR 30 tok/s" in out
    assert (
        "calibrated from measured rates: co-located 75 tok/s, 50 tok/s at RTT 75.00 ms "
        "(us-east-0→eu-west-0 RTT p50 in the run)"
    ) in out
    assert run([*argv, "--spec-calibrate", "ar=30,local=75,remote=80@20ms"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--spec-calibrate'" in err and "below the co-located rate" in err
    assert run([*argv, "--spec-calibrate", "ar=30,local=75,remote=50", *SPEC_ARGS]) == 2
    assert "give one or the other" in capsys.readouterr().err
