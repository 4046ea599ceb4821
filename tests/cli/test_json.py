"""``--json`` on calc, groups, gate, check, show and diff: one document on stdout, valid against
its schema in ``probe/schemas/``, exit codes as without ``--json``; and each schema can fail."""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

from probe.cli import run
from probe.cli.jsondoc import diff_document, dumps, gate_document
from probe.decide.gate import CheckResult, GateReport, Verdict
from probe.decide.regression import DEFAULT_FAIL_ON
from probe.matrix.anchors import write_anchors
from probe.measure.check import HostCheck
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, Inventory
from probe.report.diff import diff_runs
from tests.decide.fleet import make_anchors
from tests.report.runs import cut_short, make_lab8, ping_record
from tests.report.test_diff_noise import _frame as noise_frame
from tests.report.test_diff_noise import _lan as lan
from tests.report.test_diff_noise import _steady as steady

SCHEMAS = ("calc", "groups", "gate", "check", "show", "diff", "rehearse")
POLICIES = Path(__file__).resolve().parents[2] / "inventory" / "policies"
GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"
INVENTORY = Path(__file__).resolve().parents[1] / "fixtures" / "inventory" / "good" / "minimal.yaml"


def schema(name: str) -> dict[str, Any]:
    text = (resources.files("probe") / "schemas" / f"{name}-1.json").read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))


def validate(doc: object, name: str) -> None:
    jsonschema.Draft202012Validator(schema(name)).validate(doc)


def document(out: str, name: str) -> dict[str, Any]:
    """stdout as exactly one JSON document of schema ``name``, validated."""
    doc = cast(dict[str, Any], json.loads(out))
    assert doc["schema"] == f"probe.{name}/1"
    validate(doc, name)
    return doc


def rejected(doc: dict[str, Any], name: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, name)


def anchors_run(tmp_path: Path, name: str, **kw: Any) -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    write_anchors(run_dir / "anchors.json", make_anchors(**kw))
    return run_dir


@pytest.fixture
def two_regions(tmp_path: Path) -> Path:
    return anchors_run(tmp_path, "run-1", sizes={"us-east": 4, "eu-west": 4}, samples=True)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_schema_is_a_draft_2020_12_schema_of_its_document(name: str) -> None:
    s = schema(name)
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["title"] == s["properties"]["schema"]["const"] == f"probe.{name}/1"


def test_calc_json_every_scenario(two_regions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["calc", str(two_regions), "--path", "us-east-0,us-east-1,eu-west-0,eu-west-1"]
    argv += ["--spec-accepted", "3", "--spec-block", "40ms", "--spec-ar-tps", "30"]
    argv += ["--pool-service", "800ms", "--decode-compute", "4ms", "--trials", "200", "--json"]
    assert run(argv) == 0
    doc = document(capsys.readouterr().out, "calc")
    assert doc["path"] == ["us-east-0", "us-east-1", "eu-west-0", "eu-west-1"]
    decode = doc["decode"]
    assert decode["payload_bytes"] == 8192 and decode["monte_carlo"]["trials"] == 200
    assert decode["hops"][1]["goodput_mbps"] == 10_000.0 and decode["hops"][1]["samples"] == 5
    assert decode["per_token"]["full_p50_ms"] == pytest.approx(
        decode["per_token"]["network_p50_ms"] + 16.0
    )
    assert doc["spec"]["breakeven_rtt_ms"] == pytest.approx(60.0)
    assert (
        doc["pool"]["dispatcher"] == "us-east-0" and doc["pool"]["hosts"][0]["goodput_mbps"] is None
    )
    assert list(doc) == list(schema("calc")["properties"])  # stable key order, every key
    assert doc["tp"]["allreduce"] == {"algorithm": "ring", "measured_ms": None}
    assert doc["spec"]["calibration"] is None and doc["sweep"] is None
    assert doc["placed_on_rtt_only"] is False and doc["chosen"] == []
    wrong = copy.deepcopy(doc)
    wrong["decode"]["per_token"]["full_p50_ms"] = "16 ms"
    rejected(wrong, "calc")
    del wrong["decode"]
    rejected(wrong, "calc")


def test_calc_json_unmeasured_goodput_is_null_and_a_lower_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rtt_only = anchors_run(tmp_path, "rtt-only", sizes={"r": 3}, bw_mbps=None)
    argv = ["calc", str(rtt_only), "--path", "r-0,r-1,r-2", "--scenario", "decode", "--json"]
    assert run(argv) == 0
    doc = document(capsys.readouterr().out, "calc")
    assert doc["prefill"] is None and doc["tp"] is None and doc["decode"]["monte_carlo"] is None
    assert {h["goodput_mbps"] for h in doc["decode"]["hops"]} == {None}
    assert doc["decode"]["per_token"]["lower_bound"] is True


def test_calc_json_calibrated_spec_and_a_sweep_make_one_document(
    two_regions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "curve.png"
    argv = ["calc", str(two_regions), "--scenario", "spec,tp", "--allreduce", "measured:0.8ms"]
    argv += ["--spec-calibrate", "ar=30,local=75,remote=50@us-east-0>eu-west-0", "--json"]
    argv += ["--sweep", "rtt=0..100ms:50ms", "--sweep-png", str(png)]
    assert run(argv) == 0
    doc = document(capsys.readouterr().out, "calc")  # nothing printed after the document
    cal = doc["spec"]["calibration"]
    assert cal["remote_pair"] == {"proposer": "us-east-0", "verifier": "eu-west-0"}
    assert cal["remote_rtt_ms"] == 80.0 and cal["notes"] == []
    assert doc["spec"]["block_ms"] == pytest.approx(50 * 80 / 25)
    assert doc["tp"]["allreduce"] == {"algorithm": "measured", "measured_ms": 0.8}
    assert any(c.startswith("spec (proposer + verifier): 2 hosts") for c in doc["chosen"])
    sweep = doc["sweep"]
    assert sweep["rtt_ms"] == [0.0, 50.0, 100.0] and "goodput_mbps" not in sweep
    assert sweep["png"] == str(png) and png.read_bytes().startswith(b"\x89PNG")
    tps = next(s for s in sweep["series"] if s["unit"] == "tokens/s")
    assert tps["values"][0] == pytest.approx(75.0)  # RTT 0: the co-located rate, as measured
    wrong = copy.deepcopy(doc)
    wrong["sweep"]["goodput_mbps"] = [1.0]
    wrong["sweep"]["variable"] = "bw"
    del wrong["sweep"]["rtt_ms"]
    validate(wrong, "calc")
    wrong["sweep"]["variable"] = "rtt"
    rejected(wrong, "calc")
    wrong = copy.deepcopy(doc)
    wrong["spec"]["calibration"]["remote_rtt_ms"] = 0
    rejected(wrong, "calc")


def test_calc_json_rtt_only_placement_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rtt_only = anchors_run(tmp_path, "rtt-only", sizes={"r": 3}, bw_mbps=None)
    assert run(["calc", str(rtt_only), "--scenario", "decode", "--stages", "3", "--json"]) == 0
    doc = document(capsys.readouterr().out, "calc")
    assert doc["placed_on_rtt_only"] is True and doc["decode"]["per_token"]["lower_bound"]


def test_calc_json_usage_errors_print_no_document(
    two_regions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["calc", str(two_regions), "--scenario", "spec", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "spec needs" in err


def test_groups_json_lists_every_group_with_its_members(
    two_regions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["groups", str(two_regions), "--max-rtt", "5ms", "--min-bw", "1gbit", "--stages", "2"]
    assert run([*argv, "--json"]) == 0
    doc = document(capsys.readouterr().out, "groups")
    assert doc["limits"] == {"max_rtt_ms": 5.0, "min_goodput_mbps": 1000.0, "rtt_stat": "p50"}
    members = [g["members"] for g in doc["groups"]]
    assert sorted(map(sorted, members)) == [
        [f"eu-west-{i}" for i in range(4)],
        [f"us-east-{i}" for i in range(4)],
    ]
    first = doc["groups"][0]
    assert len(first["stage_order"]) == 2 and set(first["stage_order"]) <= set(first["members"])
    assert first["decode_per_token"]["network_p50_ms"] > 0
    wrong = copy.deepcopy(doc)
    wrong["groups"][0]["members"] = []
    rejected(wrong, "groups")


def test_groups_json_a_group_too_small_for_the_stages_has_null_figures(
    two_regions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["groups", str(two_regions), "--max-rtt", "5ms", "--stages", "6", "--json"]) == 0
    for g in document(capsys.readouterr().out, "groups")["groups"]:
        assert g["stage_order"] == [] and g["decode_per_token"] is None
        assert g["prefill_per_request"] is None and g["min_goodput_mbps"] == 10_000.0


@pytest.mark.parametrize(
    ("policy", "down", "rc"),
    [
        ("coverage.yaml", (), 0),
        ("coverage.yaml", ("eu-west",), 1),
        ("prefill-200ms.yaml", ("eu-west",), 3),
    ],
)
def test_gate_json_keeps_the_exit_code(
    tmp_path: Path,
    policy: str,
    down: tuple[str, ...],
    rc: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = anchors_run(tmp_path, "run", sizes={"us-east": 4, "eu-west": 2}, down=down)
    md = tmp_path / "gate.md"
    argv = ["gate", str(run_dir), "--policy", str(POLICIES / policy), "--json"]
    assert run([*argv, "--markdown", str(md)]) == rc
    doc = document(capsys.readouterr().out, "gate")
    assert doc["exit_code"] == rc and md.exists()
    assert doc["verdict"] == {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}[rc]
    assert doc["policy"]["source"] == str(POLICIES / policy) and doc["checks"]
    wrong = copy.deepcopy(doc)
    wrong["verdict"] = "MAYBE"
    rejected(wrong, "gate")


def test_gate_json_a_figure_that_is_not_a_number_is_null() -> None:
    report = GateReport(
        "p.yaml",
        "r",
        (
            CheckResult("a", "decode", Verdict.INCONCLUSIVE, None, None, "", "no cell"),
            CheckResult("b", "decode", Verdict.FAIL, math.nan, math.inf, "ms", "x"),
        ),
    )
    doc = gate_document(report, "p")
    validate(json.loads(dumps(doc)), "gate")
    checks = cast(list[dict[str, object]], doc["checks"])
    assert [(c["value"], c["limit"], c["unit"]) for c in checks] == [
        (None, None, None),
        (None, None, "ms"),
    ]


def test_dumps_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        dumps({"rtt_p50_ms": math.nan})


def _host(name: str, **kw: Any) -> HostCheck:
    base: dict[str, Any] = dict(
        host=name,
        region="default",
        status=CellStatus.OK,
        reason=None,
        connect_s=0.25,
        command_s=0.125,
        ping="ping from iputils 20221126",
        iperf3="iperf 3.12",
        ping_group_range="0\t2147483647",
        fping=None,
        ping_flavor="iputils",
        groups="1000",
        iperf3_auth="yes",
    )
    return HostCheck(**(base | kw))


@pytest.mark.parametrize("broken", [False, True])
def test_check_json(
    broken: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = (
        _host("a", icmp_denied={"ping": "Operation not permitted"}, fping="fping: Version 5.1"),
        _host("b", iperf3=None, iperf3_auth="", hung=("iperf3",))
        if broken
        else _host("b", status=CellStatus.OK),
    )

    async def fake_check(_inv: Inventory, _ssh: SshOptions) -> Sequence[HostCheck]:
        return rows

    monkeypatch.setattr("probe.measure.check.check", fake_check)
    assert run(["check", str(INVENTORY), "--json"]) == (1 if broken else 0)
    doc = document(capsys.readouterr().out, "check")
    assert doc["ready"] is not broken
    a, b = doc["hosts"]
    assert a["icmp_denied"] == {"ping": "Operation not permitted"} and a["ready"]
    assert a["findings"] and "the ping mesh uses fping here" in a["findings"][0]
    assert (b["iperf3"], b["iperf3_auth"], b["hung"]) == (
        (None, None, ["iperf3"]) if broken else ("iperf 3.12", "yes", [])
    )
    wrong = copy.deepcopy(doc)
    wrong["hosts"][0]["connect_s"] = -1
    rejected(wrong, "check")


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    return Path(shutil.copytree(GOLDEN, tmp_path / GOLDEN.name))


def test_show_json_by_host(golden: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["show", str(golden), "--json"]) == 0
    doc = document(capsys.readouterr().out, "show")
    assert (doc["by"], doc["metric"], doc["complete"], doc["notice"]) == (
        "host",
        "rtt_p50_ms",
        True,
        None,
    )
    n = len(doc["hosts"])
    assert len(doc["cells"]) == n * (n - 1)
    first = doc["cells"][0]
    assert list(first) == ["src", "dst", "status", "rtt_p50_ms", "rtt_p50_lo_ms", "rtt_p50_hi_ms"]
    assert first["status"] == "ok"
    assert first["rtt_p50_lo_ms"] <= first["rtt_p50_ms"] <= first["rtt_p50_hi_ms"]
    lost = [c for c in doc["cells"] if c["status"] != "ok"]
    assert lost and all(c["rtt_p50_ms"] is None for c in lost)
    wrong = copy.deepcopy(doc)
    wrong["cells"][0]["rtt_p50_ms"] = "0.5"
    rejected(wrong, "show")
    wrong = copy.deepcopy(doc)
    wrong["regions"] = []
    rejected(wrong, "show")


def test_show_json_carries_the_figures_intervals_and_few_samples_flag(
    golden: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", str(golden), "--metric", "rtt_p99_ms", "--json"]) == 0
    doc = document(capsys.readouterr().out, "show")
    ok = [c for c in doc["cells"] if c["status"] == "ok"]
    assert ok and all(c["p99_few_samples"] is True for c in ok)  # 20 probes: p99 is the max
    assert all(c["rtt_p99_hi_ms"] is None for c in ok)  # unbounded below 368 replies
    assert all(c["rtt_p99_lo_ms"] <= c["rtt_p99_ms"] for c in ok)
    assert all(c["p99_few_samples"] is None for c in doc["cells"] if c["status"] != "ok")
    assert run(["show", str(golden), "--metric", "loss_pct", "--json"]) == 0
    loss = document(capsys.readouterr().out, "show")
    cell = next(c for c in loss["cells"] if c["status"] == "ok")
    assert cell["loss_lo_pct"] <= cell["loss_pct"] <= cell["loss_hi_pct"]
    assert run(["show", str(golden), "--metric", "ipdv_ms", "--json"]) == 0  # no intervals
    plain = document(capsys.readouterr().out, "show")
    assert list(plain["cells"][0]) == ["src", "dst", "status", "ipdv_ms"]
    wrong = copy.deepcopy(doc)
    wrong["cells"][0]["p99_few_samples"] = "yes"
    rejected(wrong, "show")
    wrong["cells"][0]["p99_few_samples"] = None
    wrong["cells"][0]["extra_ms"] = 1.0
    rejected(wrong, "show")


def test_show_json_by_region_bandwidth(golden: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["show", str(golden), "--by", "region", "--metric", "bw_mbps", "--json"]) == 0
    doc = document(capsys.readouterr().out, "show")
    assert doc["definition"] == "median over pairs with a goodput" and "cells" not in doc
    row = doc["regions"][0]
    assert list(row) == [
        "src_region",
        "dst_region",
        "bw_mbps",
        "pairs",
        "pairs_measured",
        "pairs_not_planned",
        "pairs_not_measurable",
    ]
    assert any(r["bw_mbps"] and r["bw_mbps"] > 0 for r in doc["regions"])


def test_show_json_of_an_incomplete_run_says_so_in_the_document(
    golden: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", str(cut_short(golden, 12)), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = document(out, "show")
    assert doc["complete"] is False and doc["notice"].startswith("incomplete: 12 of 56")
    assert doc["notice"] in err


def _slower(pair: tuple[str, str], rec: dict[str, Any]) -> dict[str, Any] | None:
    if pair != ("eu1", "us1"):
        return None
    return ping_record(*pair, rec["t"], [None if r is None else r + 30.0 for _, r in rec["probes"]])


def test_diff_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_lab8(tmp_path / "20261123T090000Z", seed=8)
    slower = make_lab8(tmp_path / "20261123T110000Z", seed=9, tweak=_slower)
    assert run(["diff", str(a), str(a), "--json"]) == 0
    same = document(capsys.readouterr().out, "diff")
    assert same["verdict"] == "OK" and same["pairs"] == [] and same["pairs_compared"] == 56
    assert run(["diff", str(a), str(slower), "--json"]) == 1
    doc = document(capsys.readouterr().out, "diff")
    assert doc["verdict"] == "REGRESSED" and doc["pairs_regressed"] == 1
    assert doc["runs"] == {"before": str(a.resolve()), "after": str(slower.resolve())}
    (pair,) = [p for p in doc["pairs"] if p["regressions"]]
    assert (pair["src"], pair["dst"], pair["regressions"]) == ("eu1", "us1", ["rtt_p50"])
    change = pair["rtt_p50_ms"]
    assert change["regressed"] and change["delta"] == pytest.approx(30.0, abs=5.0)
    assert run(["diff", str(a), str(slower), "--fail-on", "none", "--json"]) == 0
    assert document(capsys.readouterr().out, "diff")["fail_on"] == []
    wrong = copy.deepcopy(doc)
    wrong["pairs"][0]["regressions"] = ["slower"]
    rejected(wrong, "diff")


def test_diff_json_says_which_changes_are_within_noise() -> None:
    def spiked(src: str, dst: str) -> list[float | None]:
        rtts = steady(10.0)
        if (src, dst) == ("e1", "e2"):
            rtts[7] = 60.0  # one slow reply of 20: past the p99 threshold, inside its interval
        return rtts

    result = diff_runs(noise_frame(lan), noise_frame(spiked))
    doc = cast(dict[str, Any], diff_document(result, DEFAULT_FAIL_ON, "a", "b"))
    validate(doc, "diff")
    assert doc["verdict"] == "OK" and doc["pairs_within_noise"] == 1
    (pair,) = doc["pairs"]
    assert (pair["src"], pair["dst"], pair["within_noise"]) == ("e1", "e2", ["rtt_p99"])
    assert pair["regressions"] == [] and pair["rtt_p99_ms"]["within_noise"] is True
    assert pair["rtt_p50_ms"]["within_noise"] is False
    wrong = copy.deepcopy(doc)
    wrong["pairs"][0]["within_noise"] = ["jitter"]
    rejected(wrong, "diff")


def test_rehearse_document_with_and_without_a_prediction() -> None:
    from probe.cli.jsondoc import rehearse_document
    from probe.decide.options import CalcOptions, RehearseOptions
    from probe.decide.rehearse import Figure, traffic
    from probe.measure.rehearsal import HostOutcome, Rehearsal

    t = traffic(["a", "b", "c"], CalcOptions(), RehearseOptions("decode"))
    hosts = (
        HostOutcome("a", CellStatus.OK, None, "10.0.0.1", 5201),
        HostOutcome("b", CellStatus.OK, None, "10.0.0.2", 5201),
        HostOutcome("c", CellStatus.ERROR, "c: python3 not found on c"),
    )
    r = Rehearsal("20261130T000000Z-abcd", t, hosts, (), 1.5)
    fig = Figure("per token", "ms", 128, 14.0, 20.0, 13.0, 15.0, 13.5)
    doc: dict[str, Any] = rehearse_document(r, [fig], "run-1", "/x/timings.jsonl")
    validate(doc, "rehearse")
    assert doc["figures"][0]["measured_p50_ms"] == 14.0
    assert doc["figures"][0]["error_p50_pct"] == pytest.approx(100 / 13)
    rate = Figure("tokens/s", "tokens/s", 20, 39.7, 37.5)
    bare: dict[str, Any] = rehearse_document(r, [rate], None, "/x/timings.jsonl")
    validate(bare, "rehearse")
    assert bare["figures"][0]["predicted_p50_tokens_per_s"] is None and bare["ok"] is False
    rejected({**doc, "pattern": "shell"}, "rehearse")
