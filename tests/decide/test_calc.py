"""The ``calc`` and ``groups`` use cases called directly (no click): options in, figures out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from probe.decide.calc import calc
from probe.decide.groups import group_run
from probe.decide.options import (
    CalcOptions,
    Draws,
    Limits,
    MissingInput,
    PipelineOptions,
    PoolOptions,
    SpecOptions,
)
from probe.decide.policy import LatencyCheck, load_policy
from probe.decide.scenarios import Workload
from probe.errors import InputError
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
    assert res.workload == Workload.of(PipelineOptions())
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
        TWO, pairs=tuple(p for p in TWO.pairs if {p.src, p.dst} != {"us-east-0", "eu-west-1"})
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
        calc(TWO, CalcOptions(pipeline=PipelineOptions(stages=20)))


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
