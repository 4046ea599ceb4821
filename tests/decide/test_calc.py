"""The ``calc`` and ``groups`` use cases called directly (no click): options in, figures out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from probe.decide.calc import calc
from probe.decide.groups import group_run
from probe.decide.options import (
    AllReduce,
    CalcOptions,
    Draws,
    Limits,
    MissingInput,
    PipelineOptions,
    PoolOptions,
    Scenario,
    SpecOptions,
    Sweep,
    Transport,
)
from probe.decide.policy import LatencyCheck, load_policy
from probe.decide.scenarios import Workload
from probe.decide.sweep import sweep
from probe.errors import InputError
from probe.matrix.pairs import PairTable
from probe.report import headline
from tests.decide.fleet import make_anchors

TWO = make_anchors({"us-east": 4, "eu-west": 4}, 75.0, samples=True)
PATH = ("us-east-0", "us-east-1", "eu-west-0", "eu-west-1")


def test_auto_runs_decode_prefill_and_tp_on_auto_placed_stages() -> None:
    res = calc(TWO, CalcOptions(draws=Draws(trials=100)))
    assert res.auto_placed and len(res.path) == PipelineOptions().stages
    assert {h.split("-")[0] for h in res.path} == {"us"}  # four hosts of one region: the cheapest
    assert res.decode and res.prefill and res.tp
    assert res.spec is None and res.pool is None
    assert res.decode.tail is not None and res.decode.tail.trials == 100
    # the model's workload, with calc's own default transport (prefill after idle)
    model_workload = Workload.of(PipelineOptions())
    assert res.workload == dataclasses.replace(model_workload, transport=Transport())
    assert (res.run_id, res.hosts) == ("synthetic", 8)


def test_spec_and_pool_join_auto_when_their_inputs_are_given() -> None:
    options = CalcOptions(
        path=PATH,
        spec=SpecOptions(3.0, 40.0, 30.0, proposers=("us-east-0",), verifiers=("eu-west-0",)),
        pool=PoolOptions(800.0, requests=10, capability=(("us-east-0", 2.0),)),
        draws=Draws(trials=0),
    )
    res = calc(TWO, options)
    assert not res.auto_placed and res.path == PATH
    assert res.spec is not None and [(r.proposer, r.verifier) for r in res.spec.rows] == [
        ("us-east-0", "eu-west-0")
    ]
    assert res.spec.breakeven_rtt_ms == pytest.approx(60.0)
    assert res.pool is not None and res.pool.requests == 10
    service = {m.host: m.service_ms for m in res.pool.hosts}
    assert service["us-east-0"] == pytest.approx(400.0) and service["eu-west-1"] == 800.0
    assert res.pool.payload_bytes == PipelineOptions().seq * 4.0  # token ids by default


def test_only_the_scenarios_asked_for_and_compute_enters_the_full_figures() -> None:
    options = CalcOptions(
        path=PATH, scenarios=frozenset({"decode"}), decode_compute_ms=4.0, draws=Draws(trials=0)
    )
    res = calc(TWO, options)
    assert res.decode is not None and res.prefill is None and res.tp is None
    per_token = res.decode.per_step
    assert per_token.full_p50_ms == pytest.approx(per_token.network_p50_ms + 4 * 4.0)


def test_unmeasured_spec_hops_are_reasons_not_errors() -> None:
    cut = dataclasses.replace(
        TWO,
        pairs=PairTable.of(p for p in TWO.pairs if {p.src, p.dst} != {"us-east-0", "eu-west-1"}),
    )
    spec = SpecOptions(3.0, 40.0, 30.0, proposers=("us-east-0",), verifiers=PATH[2:])
    res = calc(cut, CalcOptions(path=PATH, scenarios=frozenset({"spec"}), spec=spec))
    assert res.spec is not None and [r.verifier for r in res.spec.rows] == ["eu-west-0"]
    assert len(res.spec_skipped) == 1 and "us-east-0→eu-west-1" in res.spec_skipped[0]


@pytest.mark.parametrize(
    ("options", "scenario"),
    [
        (CalcOptions(scenarios=frozenset({"spec"})), "spec"),
        (CalcOptions(spec=SpecOptions(accepted_per_block=2.0)), "spec"),  # auto, inputs half given
        (CalcOptions(scenarios=frozenset({"pool"})), "pool"),
    ],
)
def test_missing_scenario_inputs_fail_before_anything_is_computed(
    options: CalcOptions, scenario: str
) -> None:
    with pytest.raises(MissingInput) as err:
        calc(TWO, options)
    assert err.value.scenario == scenario and err.value.exit_code == 2


def test_bad_inputs_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown model 'gpt-5'"):
        calc(TWO, CalcOptions(pipeline=PipelineOptions(model="gpt-5")))
    with pytest.raises(InputError, match="host 'ghost' was not measured"):
        calc(TWO, CalcOptions(path=("us-east-0", "ghost")))
    with pytest.raises(InputError, match="no 20 hosts"):
        calc(TWO, CalcOptions(stages=20))


def test_group_run_loads_the_model_and_orders_each_group() -> None:
    res = group_run(TWO, Limits(5.0, 1e9), PipelineOptions(model="llama-3-70b", stages=2))
    assert res.workload.model.name == "llama-3-70b"
    assert sorted(len(g.members) for g in res.groups) == [4, 4]
    assert all(len(g.order) == 2 and g.decode is not None for g in res.groups)


def test_the_headline_is_calc_with_its_defaults() -> None:
    res = calc(TWO, CalcOptions(scenarios=frozenset({"decode", "prefill"})))
    p = PipelineOptions()
    assert res.decode is not None and res.prefill is not None
    text = headline(TWO, len(TWO.hosts)).text
    assert text.startswith(f"{p.model} {p.dtype} in {p.stages} pipeline stages")
    assert f"{' → '.join(res.path)}: decode {res.decode.per_step.network_p50_ms:.2f} ms" in text
    assert f"{p.tokens} tokens {res.decode.total.network_p50_ms / 1e3:.2f} s" in text


def test_a_policy_without_workload_keys_means_the_calc_defaults(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "schema: probe.policy/1\nchecks:\n"
        "  - {kind: decode, model: llama-3-8b, stages: 2, budget: 1s}\n"
    )
    (check,) = load_policy(policy).checks
    assert isinstance(check, LatencyCheck)
    assert check.workload == Workload.of(PipelineOptions())


RTT_ONLY = make_anchors({"us-east": 4, "eu-west": 4}, 75.0, bw_mbps=None)
SPEC = SpecOptions(3.0, 40.0, 30.0)


def test_an_rtt_only_run_is_placed_on_rtt_alone_and_its_figures_are_lower_bounds() -> None:
    res = calc(RTT_ONLY, CalcOptions(stages=4, draws=Draws(trials=0)))
    assert res.rtt_only and len(res.path) == 4
    assert {h.split("-")[0] for h in res.path} == {"us"}  # still the cheapest RTTs
    assert res.decode and res.decode.per_step.lower_bound
    assert res.decode.per_step.network_p50_ms == pytest.approx(3 * 0.25)  # 3 hops of RTT/2
    assert res.tp and res.tp.decode_token.lower_bound
    spec = calc(RTT_ONLY, CalcOptions(scenarios=frozenset({"spec"}), spec=SPEC))
    assert spec.spec is not None and len(spec.spec.rows) == 2
    assert not calc(TWO, CalcOptions(stages=4, draws=Draws(trials=0))).rtt_only


def test_spec_and_pool_need_no_stages_and_the_default_is_said() -> None:
    spec = calc(TWO, CalcOptions(scenarios=frozenset({"spec"}), spec=SPEC))
    assert len(spec.spec_hosts) == 2 and spec.path == ()
    assert spec.choices == ("spec (proposer + verifier): 2 hosts (default 2; --stages to change)",)
    pool = calc(TWO, CalcOptions(scenarios=frozenset({"pool"}), pool=PoolOptions(800.0)))
    assert pool.pool is not None and len(pool.pool.hosts) == 8  # every host, 64 requests
    assert pool.choices and pool.choices[0].startswith("pool: 8 of 8 measured hosts")
    few = calc(TWO, CalcOptions(scenarios=frozenset({"pool"}), pool=PoolOptions(800.0, 3)))
    assert few.pool is not None and len(few.pool.hosts) == 3  # one host per request at most
    asked = calc(TWO, CalcOptions(stages=3, scenarios=frozenset({"spec"}), spec=SPEC))
    assert len(asked.spec_hosts) == 3 and asked.choices == ()


def test_a_two_host_run_with_the_default_stages_says_what_it_chose() -> None:
    small = make_anchors({"us-east": 2})
    res = calc(small, CalcOptions(draws=Draws(trials=0)))
    assert len(res.path) == 2 and res.decode is not None
    (choice,) = res.choices
    assert choice.startswith("decode, prefill, tp: 2 hosts (default 4, capped at the 2 measured")
    with pytest.raises(InputError, match=r"no 4 hosts .* 2 hosts measured"):
        calc(small, CalcOptions(stages=4))  # asked for: never capped silently


def test_tp_allreduce_algorithms_and_a_measured_time() -> None:
    tp: frozenset[Scenario] = frozenset({"tp"})
    ring = calc(TWO, CalcOptions(path=PATH, scenarios=tp)).tp
    tree = calc(TWO, CalcOptions(path=PATH, scenarios=tp, allreduce=AllReduce("tree"))).tp
    measured = AllReduce.parse("measured:0.5ms")
    own = calc(TWO, CalcOptions(path=PATH, scenarios=tp, allreduce=measured)).tp
    assert ring and tree and own
    # 4 hosts, worst RTT 75 ms: ring 6 steps, tree 2·log2 4 = 4 steps (of the full payload)
    assert ring.decode_token.network_p50_ms == pytest.approx(
        64 * 6 * (37.5 + 8192 / 4 * 8 / 1e10 * 1e3)
    )
    assert tree.decode_token.network_p50_ms == pytest.approx(64 * 4 * (37.5 + 8192 * 8 / 1e7))
    assert own.decode_token.network_p50_ms == own.decode_token.network_p99_ms == 64 * 0.5
    assert own.prefill_request is None and str(own.allreduce) == "measured 0.5 ms"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ring", None),
        ("tree", None),
        ("measured:2ms", None),
        ("star", "not ring, tree"),
        ("measured:2", "needs a unit"),
        ("measured:0ms", "above 0"),
    ],
)
def test_allreduce_parse(text: str, message: str | None) -> None:
    if message is None:
        assert AllReduce.parse(text).algorithm == text.partition(":")[0]
    else:
        with pytest.raises(InputError, match=message):
            AllReduce.parse(text)


def test_sweep_parse_and_points() -> None:
    s = Sweep.parse("rtt=0..200ms:10ms")
    assert (s.variable, s.start, s.stop, s.step) == ("rtt", 0.0, 200.0, 10.0)
    assert len(s.points()) == 21 and s.points()[-1] == pytest.approx(200.0)
    bw = Sweep.parse("bw=100mbit..1gbit:100mbit")
    assert bw.points()[0] == 1e8 and len(bw.points()) == 10
    for bad in ("rtt=0..200:10ms", "rtt=10ms..0ms:1ms", "bw=0..1gbit:1mbit", "x=1..2:1"):
        with pytest.raises(InputError):
            Sweep.parse(bad)
    with pytest.raises(InputError, match="more than 1000 points"):
        Sweep.parse("rtt=0..10s:1ms")


def test_a_sweep_keeps_the_hosts_and_sets_every_hop() -> None:
    options = CalcOptions(scenarios=frozenset({"decode", "spec"}), spec=SPEC, draws=Draws(trials=0))
    res = sweep(TWO, options, Sweep.parse("rtt=0..100ms:50ms"))
    assert res.x == (0.0, 50.0, 100.0) and res.x_label == "RTT ms"
    decode, spec, spec_tps = res.series
    assert decode.label == "decode" and not decode.lower_bound
    # 3 hops of RTT/2 plus the serialisation of 8 KiB at 10 Gbit/s each
    assert decode.values == pytest.approx([3 * (x / 2 + 8192 * 8 / 1e7) for x in res.x])
    assert spec.values == pytest.approx([3 / ((40 + x) / 1e3) / 30 for x in res.x])
    assert spec_tps.unit == "tokens/s"
    assert spec_tps.values == pytest.approx([3 / ((40 + x) / 1e3) for x in res.x])
    filled = sweep(RTT_ONLY, options, Sweep.parse("bw=1gbit..2gbit:1gbit"))
    assert [s.lower_bound for s in filled.series] == [False, False, False]  # goodput now given
    assert filled.x == (1000.0, 2000.0) and filled.base.rtt_only
