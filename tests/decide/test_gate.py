"""Policy loading (errors at file:line) and verdicts, INCONCLUSIVE whenever data is missing."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import pytest

from probe.decide.gate import Verdict, evaluate
from probe.decide.policy import load_policy
from probe.errors import InputError
from probe.matrix.anchors import Anchors
from probe.model import CellStatus
from probe.report.gate import render_markdown
from tests.decide.fleet import make_anchors, pair, with_stalled_bw

POLICIES = Path(__file__).resolve().parents[2] / "inventory" / "policies"
TWO = make_anchors({"us-east": 4, "eu-west": 4}, 75.0, samples=True)
ONE = make_anchors({"us-east": 4, "eu-west": 2}, samples=True, down=("eu-west",))  # measured 1


def _policy(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text("schema: probe.policy/1\nchecks:\n" + body)
    return p


def _verdicts(tmp_path: Path, body: str, anchors: Anchors) -> list[Verdict]:
    report = evaluate(load_policy(_policy(tmp_path, body)), anchors)
    return [r.verdict for r in report.results]


@pytest.mark.parametrize("name", ["interactive-wan", "prefill-200ms", "coverage"])
def test_shipped_policies_load_and_decide_on_two_regions(name: str) -> None:
    report = evaluate(load_policy(POLICIES / f"{name}.yaml"), TWO)
    assert report.results and report.verdict in (Verdict.PASS, Verdict.FAIL)


def test_cross_region_checks_on_one_region_are_inconclusive_never_pass() -> None:
    for name in ("interactive-wan", "prefill-200ms"):
        report = evaluate(load_policy(POLICIES / f"{name}.yaml"), ONE)
        cross = [r for r in report.results if "region(s)" in r.reason]
        assert cross and all(r.verdict is Verdict.INCONCLUSIVE for r in cross)
    report = evaluate(load_policy(POLICIES / "prefill-200ms.yaml"), ONE)
    assert report.verdict is Verdict.INCONCLUSIVE and report.exit_code == 3


def test_decode_budget_pass_and_fail(tmp_path: Path) -> None:
    # 2 stages us-east → eu-west, 10 tokens: hop 75/2 + 8192·8/1e10 s = 37.5065536 ms at p50
    body = """  - kind: decode
    model: llama-3-8b
    regions: [us-east, eu-west]
    tokens: 10
    budget: {budget}
    at: p50
"""
    assert _verdicts(tmp_path, body.format(budget="376ms"), TWO) == [Verdict.PASS]
    assert _verdicts(tmp_path, body.format(budget="375ms"), TWO) == [Verdict.FAIL]


def test_failed_cell_on_the_path_is_inconclusive(tmp_path: Path) -> None:
    h = {x.name: x for x in TWO.hosts}
    dead = pair(h["us-east-0"], h["eu-west-0"], 75.0, status=CellStatus.TIMEOUT)
    a = make_anchors(
        {"us-east": 4, "eu-west": 4}, 75.0, overrides={("us-east-0", "eu-west-0"): dead}
    )
    body = """  - kind: decode
    model: llama-3-8b
    path: [us-east-0, eu-west-0]
    budget: 100s
"""
    report = evaluate(load_policy(_policy(tmp_path, body)), a)
    (r,) = report.results
    assert r.verdict is Verdict.INCONCLUSIVE and "timeout" in r.reason
    # the same cell failing makes a region check inconclusive under the default 100 % rule
    region_body = """  - kind: prefill
    model: llama-3-8b
    regions: [us-east, eu-west]
    budget_per_hop: 10s
"""
    assert _verdicts(tmp_path, region_body, a) == [Verdict.INCONCLUSIVE]
    assert _verdicts(tmp_path, region_body + "    min_pairs_ok: 90%\n", a) == [Verdict.PASS]


def test_mc_p99_without_samples_is_inconclusive(tmp_path: Path) -> None:
    body = """  - kind: decode
    model: llama-3-8b
    path: [us-east-0, us-east-1]
    budget: 10s
    at: mc-p99
"""
    assert _verdicts(tmp_path, body, TWO) == [Verdict.PASS]
    assert _verdicts(tmp_path, body, make_anchors({"us-east": 2})) == [Verdict.INCONCLUSIVE]


def test_lower_bound_within_budget_is_inconclusive_over_budget_fails(tmp_path: Path) -> None:
    no_bw = make_anchors({"us-east": 2}, bw_mbps=None)
    body = """  - kind: decode
    model: llama-3-8b
    path: [us-east-0, us-east-1]
    tokens: 100
    budget: {budget}
    at: p50
"""
    # latency only: 100 × 0.25 ms = 25 ms
    assert _verdicts(tmp_path, body.format(budget="1s"), no_bw) == [Verdict.INCONCLUSIVE]
    assert _verdicts(tmp_path, body.format(budget="20ms"), no_bw) == [Verdict.FAIL]


def test_a_stalled_bandwidth_test_on_the_path_is_named_and_never_passes(tmp_path: Path) -> None:
    stall = "stalled for 5.0 s of 10 s (from 2.0 s)"
    a = with_stalled_bw(make_anchors({"us-east": 2}), "us-east-0", "us-east-1", stall)
    body = """  - kind: prefill
    model: llama-3-8b
    path: [us-east-0, us-east-1]
    budget_per_hop: {budget}
"""
    report = evaluate(load_policy(_policy(tmp_path, body.format(budget="1s"))), a)
    (r,) = report.results
    assert r.verdict is Verdict.INCONCLUSIVE
    assert f"us-east-0→us-east-1: bandwidth stalled ({stall})" in r.reason
    assert "only a lower bound" in r.reason
    # the other direction measured fine: a figure, no caveat
    body = body.replace("[us-east-0, us-east-1]", "[us-east-1, us-east-0]")
    report = evaluate(load_policy(_policy(tmp_path, body.format(budget="1s"))), a)
    assert report.results[0].verdict is Verdict.PASS and "stalled" not in report.results[0].reason


def test_a_region_check_names_stalled_pairs_in_its_verdict(tmp_path: Path) -> None:
    a = with_stalled_bw(TWO, "us-east-0", "eu-west-0", "no bytes received in 10 s")
    body = """  - kind: prefill
    model: llama-3-8b
    regions: [us-east, eu-west]
    budget_per_hop: 10s
"""
    (r,) = evaluate(load_policy(_policy(tmp_path, body)), a).results
    assert r.verdict is Verdict.PASS
    assert r.reason.endswith("([us-east]→[eu-west]: bandwidth stalled on 1 of 16 pairs)")


def test_spec_loss_and_coverage(tmp_path: Path) -> None:
    spec = """  - kind: spec
    proposer_region: us-east
    verifier_region: eu-west
    accepted_tokens: 3
    block: 40ms
    ar_tokens_per_s: 30
    at: {at}
"""
    # break-even 60 ms; RTT p50 75 → 3/0.115 s = 26.1 tok/s < 30
    assert _verdicts(tmp_path, spec.format(at="p50"), TWO) == [Verdict.FAIL]
    assert _verdicts(
        tmp_path, spec.format(at="p50"), make_anchors({"us-east": 2, "eu-west": 2}, 15.0)
    ) == [Verdict.PASS]
    h = {x.name: x for x in TWO.hosts}
    lossy = make_anchors(
        {"us-east": 4, "eu-west": 4},
        75.0,
        overrides={
            ("eu-west-1", "us-east-2"): pair(
                h["eu-west-1"], h["us-east-2"], 75.0, status=CellStatus.ALL_LOST
            )
        },
    )
    loss = "  - kind: max_loss\n    max: 1%\n    scope: {scope}\n"
    assert _verdicts(tmp_path, loss.format(scope="cross-region"), lossy) == [Verdict.FAIL]
    assert _verdicts(tmp_path, loss.format(scope="intra-region"), lossy) == [Verdict.PASS]
    assert _verdicts(tmp_path, loss.format(scope="cross-region"), ONE) == [Verdict.INCONCLUSIVE]
    cov = "  - kind: coverage\n    min_regions: 2\n    min_samples: 30\n"
    assert _verdicts(tmp_path, cov, TWO) == [Verdict.FAIL]  # 20 samples per pair


def test_spec_calibrated_from_measured_rates(tmp_path: Path) -> None:
    spec = """  - kind: spec
    proposer_region: us-east
    verifier_region: eu-west
    calibrate: {rates}
    at: p50
"""
    # 75 tok/s co-located, 50 at 20 ms → E 3, block 40 ms: at RTT p50 75 ms 26.1 tok/s < 30
    report = evaluate(
        load_policy(_policy(tmp_path, spec.format(rates="ar=30,local=75,remote=50@20ms"))), TWO
    )
    (r,) = report.results
    assert r.verdict is Verdict.FAIL and r.value == pytest.approx(3 / 0.115 / 30)
    assert r.reason.endswith("; calibrated E 3, block 40 ms")
    # without an RTT the remote point sits on the check's own hop: 50 tok/s at 75 ms
    own = evaluate(
        load_policy(_policy(tmp_path, spec.format(rates="ar=30,local=75,remote=50"))), TWO
    )
    assert own.results[0].value == pytest.approx(50 / 30)
    assert own.results[0].verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    calibrate: ar=30,local=75,remote=80@20ms\n", r"policy.yaml:7: calibrate: .*below"),
        (
            "    calibrate: ar=30,local=75,remote=50@20ms\n    block: 40ms\n",
            r"policy.yaml:7: calibrate replaces accepted_tokens, block, ar_tokens_per_s",
        ),
    ],
)
def test_spec_calibration_errors_name_the_line(tmp_path: Path, extra: str, message: str) -> None:
    body = "  - kind: spec\n    proposer: a\n    verifier: b\n    min_speedup: 1\n" + extra
    with pytest.raises(InputError, match=message):
        load_policy(_policy(tmp_path, body))


def test_overall_verdict_and_markdown(tmp_path: Path) -> None:
    body = """  - kind: coverage
    min_regions: 1
  - name: impossible
    kind: decode
    model: llama-3-8b
    path: [us-east-0, us-east-1]
    budget: 1ms
"""
    report = evaluate(load_policy(_policy(tmp_path, body)), TWO)
    assert [r.verdict for r in report.results] == [Verdict.PASS, Verdict.FAIL]
    assert report.verdict is Verdict.FAIL and report.exit_code == 1
    md = render_markdown(report)
    assert md.startswith("## probe gate: ❌ FAIL") and "| impossible | ❌ FAIL |" in md


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  - kind: decode\n    model: llama-3-8b\n    stages: 2\n"
            "    budget: 1s\n    tokes: 3\n",
            r"policy\.yaml:7: unknown key 'checks\[0\]\.tokes' \(did you mean 'tokens'\?\)",
        ),
        (
            "  - kind: decode\n    model: llama-3-8b\n    stages: 2\n    budget: 100\n",
            r"policy\.yaml:6: 'checks\[0\]\.budget': duration '100' needs a unit",
        ),
        (
            "  - kind: decode\n    model: llama-3-8b\n    budget: 1s\n",
            r"policy\.yaml:3: give exactly one of path, regions or stages",
        ),
        (
            "  - kind: telepathy\n",
            r"policy\.yaml:3: 'checks\[0\]\.kind' must be one of decode, .*, got 'telepathy'",
        ),
        (
            "  - kind: coverage\n    min_regions: -1\n",
            r"policy\.yaml:4: 'checks\[0\]\.min_regions' must be at least 1, got -1",
        ),
        (
            "  - kind: decode\n    model: gpt-5\n    stages: 2\n    budget: 1s\n",
            r"unknown model 'gpt-5'",
        ),
        ("  - kind: spec\n    proposer: a\n    proposer_region: r\n", r"exactly one of proposer"),
        ("  - [unclosed\n", r"policy\.yaml:\d+: not valid YAML"),
    ],
)
def test_policy_errors_name_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_policy(_policy(tmp_path, body))


def test_policy_needs_checks(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("schema: probe.policy/1\nchecks: []\n")
    with pytest.raises(InputError, match="non-empty list 'checks'"):
        load_policy(p)
    p.write_text("schema: probe.policy/9\nchecks: []\n")
    with pytest.raises(InputError, match=r"p\.yaml:1: policy schema"):
        load_policy(p)


@pytest.mark.parametrize(
    "ends",
    [
        "    regions: [us-east, eu-wset]\n",
        "    path: [us-east-0, ghost]\n",
    ],
)
def test_a_policy_naming_what_the_run_lacks_is_an_error_at_its_line(
    tmp_path: Path, ends: str
) -> None:
    body = "  - kind: decode\n    model: llama-3-8b\n" + ends + "    budget: 1s\n"
    with pytest.raises(InputError) as info:
        evaluate(load_policy(_policy(tmp_path, body)), TWO)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'policy.yaml'}:3: check 'decode#1': ")
    assert "not in run synthetic" in message
    assert ("eu-wset" in message and "us-east" in message) or "'ghost'" in message


def test_pairs_a_sampled_ping_plan_left_out_are_not_failed_cells(tmp_path: Path) -> None:
    """sample:1 across us-east and eu-west: one representative pair each way is measured, the
    other 30 cross-region pairs are not-planned. Region, loss and coverage checks decide on the
    planned pairs; the same 30 cells *failed* leave them inconclusive or failing."""

    def sampled(status: CellStatus) -> Anchors:
        h = {x.name: x for x in TWO.hosts}
        left_out = {
            (a.name, b.name): pair(a, b, 75.0, status=status)
            for a in h.values()
            for b in h.values()
            if a.region != b.region and {a.name, b.name} != {"us-east-0", "eu-west-0"}
        }
        return make_anchors({"us-east": 4, "eu-west": 4}, 75.0, overrides=left_out)

    region = """  - kind: prefill
    model: llama-3-8b
    regions: [us-east, eu-west]
    budget_per_hop: 10s
"""
    loss = "  - kind: max_loss\n    max: 1%\n    scope: cross-region\n"
    coverage = "  - kind: coverage\n    min_regions: 2\n    min_samples: 20\n    min_ok: 100%\n"
    body = region + loss + coverage
    assert _verdicts(tmp_path, body, sampled(CellStatus.NOT_PLANNED)) == [Verdict.PASS] * 3
    assert _verdicts(tmp_path, body, sampled(CellStatus.TIMEOUT)) == [
        Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, Verdict.FAIL,
    ]  # fmt: skip


def test_the_demo_policy_decides_on_the_lab_regions() -> None:
    """``make demo`` reports and gates the lab (regions eu, us, ap) with lab-wan.yaml: every
    region it names is one the lab has, so it decides instead of refusing the policy."""
    lab = make_anchors({"eu": 3, "us": 2, "ap": 2}, 40.0, samples=True)
    report = evaluate(load_policy(POLICIES / "lab-wan.yaml"), lab)
    assert len(report.results) == 4
    assert all(r.verdict in (Verdict.PASS, Verdict.FAIL) for r in report.results), report


def test_not_measurable_pairs_are_excluded_never_failed_and_coverage_counts_them(
    tmp_path: Path,
) -> None:
    """eu-west-3 sits behind NAT and us-east-3 too: neither accepts ICMP, so both cells between
    them are not-measurable. Region, loss and coverage checks pass on the other pairs, coverage
    says how many it excluded and why, and a path through them says it is excluded, not failed."""
    h = {x.name: x for x in TWO.hosts}
    nat = {
        (a, b): replace(
            pair(h[a], h[b], 75.0, status=CellStatus.NOT_MEASURABLE),
            reason="neither host accepts inbound ICMP",
        )
        for a, b in (("us-east-3", "eu-west-3"), ("eu-west-3", "us-east-3"))
    }
    anchors = make_anchors({"us-east": 4, "eu-west": 4}, 75.0, overrides=nat, samples=True)
    region = """  - kind: prefill
    model: llama-3-8b
    regions: [us-east, eu-west]
    budget_per_hop: 10s
"""
    loss = "  - kind: max_loss\n    max: 1%\n    scope: cross-region\n"
    coverage = "  - kind: coverage\n    min_regions: 2\n    min_samples: 20\n    min_ok: 100%\n"
    report = evaluate(load_policy(_policy(tmp_path, region + loss + coverage)), anchors)
    assert [r.verdict for r in report.results] == [Verdict.PASS] * 3, report
    assert report.results[2].reason == (
        "2 region(s), 54/54 pairs ok; "
        "2 pair(s) excluded by the plan or reachability (2 not-measurable)"
    )
    path = """  - kind: decode
    model: llama-3-8b
    path: [us-east-3, eu-west-3]
    budget: 100s
"""
    (result,) = evaluate(load_policy(_policy(tmp_path, path)), anchors).results
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason.startswith(
        "cell us-east-3→eu-west-3 is excluded by the plan or reachability, not a failure "
        "(not-measurable: neither host accepts inbound ICMP)"
    ), result.reason


def test_tp_checks_place_a_ring_and_time_its_all_reduces(tmp_path: Path) -> None:
    # 2 hosts in us-east, ring all-reduce: 2 steps of 0.25 ms + 4 KiB at 10 Gbit/s, 2 × 32 layers
    ring_ms = 64 * 2 * (0.25 + 4096 * 8 / 1e7)
    body = """  - kind: tp
    model: llama-3-8b
    path: [us-east-0, us-east-1]
    tokens: 10
    allreduce: {allreduce}
    budget: {budget}
    at: p50
"""
    for allreduce, per_token in (("ring", ring_ms), ("measured:1ms", 64.0)):
        over = f"{per_token * 10 * 0.99:.4f}ms"
        under = f"{per_token * 10 * 1.01:.4f}ms"
        assert _verdicts(tmp_path, body.format(allreduce=allreduce, budget=under), TWO) == [
            Verdict.PASS
        ]
        report = evaluate(
            load_policy(_policy(tmp_path, body.format(allreduce=allreduce, budget=over))), TWO
        )
        (r,) = report.results
        assert (r.kind, r.verdict) == ("tp", Verdict.FAIL)
        assert r.value == pytest.approx(per_token * 10) and "all-reduce" in r.reason
    placed = "  - kind: tp\n    model: llama-3-8b\n    stages: 4\n    budget: 100s\n"
    assert _verdicts(tmp_path, placed, TWO) == [Verdict.PASS]
    no_bw = make_anchors({"us-east": 4}, bw_mbps=None)
    assert _verdicts(tmp_path, placed, no_bw) == [Verdict.INCONCLUSIVE]  # RTT only: lower bound
    with pytest.raises(InputError, match=r"policy\.yaml:7: .*allreduce.*not ring, tree"):
        load_policy(_policy(tmp_path, body.format(allreduce="star", budget="1s")))


def test_pool_checks_judge_the_makespan(tmp_path: Path) -> None:
    body = """  - kind: pool
    hosts: [us-east-0, us-east-1, eu-west-0]
    service: 800ms
    requests: 6
    capability: {{us-east-0: 2}}
    split: {split}
    budget: {budget}
    at: p50
"""
    # even: 2 requests per host; eu-west-0 costs 800 + 75 + 8 KiB/10 Gbit/s each
    even_ms = 2 * (800 + 75 + 8192 * 8 / 1e7)
    report = evaluate(load_policy(_policy(tmp_path, body.format(split="even", budget="1.8s"))), TWO)
    (r,) = report.results
    assert (r.kind, r.verdict, r.unit) == ("pool", Verdict.PASS, "ms")
    assert r.value == pytest.approx(even_ms) and "from us-east-0 over 3 hosts" in r.reason
    assert _verdicts(tmp_path, body.format(split="even", budget="1.7s"), TWO) == [Verdict.FAIL]
    assert _verdicts(tmp_path, body.format(split="aware", budget="1.7s"), TWO) == [Verdict.PASS]
    default = "  - kind: pool\n    service: 800ms\n    requests: 8\n    budget: 1s\n"
    assert _verdicts(tmp_path, default, TWO) == [Verdict.PASS]  # one request per host
    ghost = body.replace("eu-west-0]", "ghost]").format(split="even", budget="1s")
    with pytest.raises(InputError, match=r"policy\.yaml:3: check 'pool#1': host 'ghost'"):
        evaluate(load_policy(_policy(tmp_path, ghost)), TWO)


def test_coverage_names_the_criterion_that_failed(tmp_path: Path) -> None:
    h = {x.name: x for x in TWO.hosts}
    thin = pair(h["us-east-0"], h["eu-west-0"], 75.0)
    thin = dataclasses.replace(thin, received=13)
    a = make_anchors(
        {"us-east": 4, "eu-west": 4}, 75.0, overrides={("us-east-0", "eu-west-0"): thin}
    )
    body = "  - kind: coverage\n    min_regions: 2\n    min_samples: 15\n"
    (r,) = evaluate(load_policy(_policy(tmp_path, body)), a).results
    assert r.verdict is Verdict.FAIL
    assert (r.value, r.limit, r.unit) == (13.0, 15.0, "samples")  # not "2 regions"
    assert r.reason == (
        "min_samples: 1 ok pair(s) with < 15 RTT samples (fewest: 13, us-east-0→eu-west-0)"
    )
    (r,) = evaluate(load_policy(_policy(tmp_path, body.replace("2\n", "3\n", 1))), TWO).results
    assert (r.value, r.limit, r.unit) == (2.0, 3.0, "regions")
    assert r.reason.startswith("min_regions: 2 region(s) measured, policy needs 3")
