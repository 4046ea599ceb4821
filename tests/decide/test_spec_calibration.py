"""Speculative decoding calibrated from measured rates: E and the block time solved from the
co-located rate and one remote point, then predicted over the run's RTTs and a sweep."""

from __future__ import annotations

import numpy as np
import pytest

from probe.decide import formulas as f
from probe.decide.calc import calc
from probe.decide.options import (
    CalcOptions,
    Draws,
    Scenario,
    SpecCalibration,
    SpecOptions,
    Sweep,
)
from probe.decide.scenarios import calibrate
from probe.decide.sweep import sweep
from probe.errors import InputError
from tests.decide.fleet import make_anchors

TWO = make_anchors({"us-east": 2, "eu-west": 2}, 40.0)
SPEC_ONLY: frozenset[Scenario] = frozenset({"spec"})


def spec_options(
    text: str, proposers: tuple[str, ...] = (), verifiers: tuple[str, ...] = ()
) -> CalcOptions:
    calibration = SpecCalibration.parse(text)
    spec = SpecOptions(proposers=proposers, verifiers=verifiers, calibration=calibration)
    return CalcOptions(scenarios=SPEC_ONLY, spec=spec, draws=Draws(trials=0))


def test_the_solved_figures_give_back_both_measured_rates() -> None:
    e, block = f.spec_calibrate(75.0, 50.0, 20.0)  # E = 3, block 40 ms
    assert (e, block) == pytest.approx((3.0, 40.0))
    assert f.spec_tokens_per_s(e, block, 0.0) == pytest.approx(75.0)
    assert f.spec_tokens_per_s(e, block, 20.0) == pytest.approx(50.0)


def test_a_published_style_rtt_sweep_is_matched_within_7_percent_once_calibrated() -> None:
    """A sweep as a paper would print it: the formula at E = 4.2, block 55 ms, each point off by
    up to 2 % of measurement noise; calibrated on its RTT-0 point and its 50 ms point alone."""
    rng = np.random.default_rng(7)
    rtts = np.arange(0.0, 201.0, 10.0)
    published = 4.2 / ((55.0 + rtts) / 1e3) * (1 + rng.uniform(-0.02, 0.02, rtts.size))
    rates = SpecCalibration(30.0, float(published[0]), float(published[5]), remote_rtt_ms=50.0)
    options = CalcOptions(scenarios=SPEC_ONLY, spec=SpecOptions(calibration=rates))
    res = sweep(TWO, options, Sweep.parse("rtt=0..200ms:10ms"))
    (speedup, tps) = res.series
    assert tps.unit == "tokens/s" and res.x == pytest.approx(rtts)
    predicted = np.array(tps.values, dtype=float)
    assert np.abs(predicted / published - 1).max() < 0.07
    assert speedup.values == pytest.approx(predicted / 30.0)
    base = res.base.spec
    assert base is not None and base.calibration is not None
    assert base.calibration.accepted_per_block == pytest.approx(4.2, rel=0.07)
    assert base.calibration.block_ms == pytest.approx(55.0, rel=0.07)


def test_calc_predicts_every_measured_hop_from_a_given_remote_rtt() -> None:
    res = calc(TWO, spec_options("ar=30,local=75,remote=50@20ms"))
    assert res.spec is not None and res.spec.calibration is not None
    assert (res.spec.accepted_per_block, res.spec.block_ms) == pytest.approx((3.0, 40.0))
    assert res.spec.calibration.remote_pair is None and res.spec.ar_tokens_per_s == 30.0
    assert res.spec.rows and all(
        r.tokens_per_s_p50 == pytest.approx(3.0 / ((40.0 + r.rtt_p50_ms) / 1e3))
        for r in res.spec.rows
    )


def test_the_remote_point_can_sit_at_the_runs_rtt_between_two_named_hosts() -> None:
    named = calc(TWO, spec_options("ar=30,local=75,remote=50@us-east-0>eu-west-0"))
    assert named.spec is not None and named.spec.calibration is not None
    assert named.spec.calibration.remote_pair == ("us-east-0", "eu-west-0")
    assert named.spec.calibration.remote_rtt_ms == 40.0  # the run's cross-region RTT p50
    assert named.spec.block_ms == pytest.approx(50.0 * 40.0 / 25.0)
    single = calc(TWO, spec_options("ar=30,local=75,remote=50", ("us-east-0",), ("eu-west-1",)))
    assert single.spec is not None and single.spec.calibration is not None
    assert single.spec.calibration.remote_pair == ("us-east-0", "eu-west-1")
    assert single.spec.block_ms == pytest.approx(80.0)


def test_a_bare_remote_rate_needs_one_proposer_and_one_verifier() -> None:
    with pytest.raises(InputError, match="needs one proposer and one verifier"):
        calc(TWO, spec_options("ar=30,local=75,remote=50"))
    with pytest.raises(InputError, match="not measured"):
        calc(TWO, spec_options("ar=30,local=75,remote=50@nowhere>eu-west-0"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ar=30,local=75,remote=75@20ms", "must be below the co-located rate 75"),
        ("ar=30,local=75,remote=80@20ms", "must be below the co-located rate"),
        ("ar=30,local=75,remote=50@0ms", "RTT 0 ms is not > 0"),
        ("ar=0,local=75,remote=50@20ms", "rates must be above 0"),
        ("ar=30,local=75", "lacks remote"),
        ("ar=30,local=75,remote=50@20ms,ar=31", "is not ar=RATE"),
        ("ar=30,lokal=75,remote=50@20ms", "is not ar=RATE"),
        ("ar=fast,local=75,remote=50@20ms", "'fast' is not a rate"),
        ("ar=30,local=75,remote=50@20", "duration"),
    ],
)
def test_calibration_inputs_that_cannot_fit_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        SpecCalibration.parse(text)
    assert "\n" not in str(err.value)


def test_calibration_replaces_the_block_figures_it_solves() -> None:
    with pytest.raises(InputError, match="give one or the other"):
        SpecOptions(3.0, calibration=SpecCalibration(30.0, 75.0, 50.0, 20.0))
    assert SpecOptions(calibration=SpecCalibration(30.0, 75.0, 50.0, 20.0)).given
    assert not SpecOptions(3.0, 40.0).given


def test_a_suspect_fit_says_why() -> None:
    cal = calibrate(SpecCalibration(80.0, 75.0, 74.0), 0.5)  # E ≈ 2.8: speculation never pays
    assert cal.notes == (
        "co-located speculation (75 tokens/s) is no faster than autoregressive decoding (80): "
        "it pays at no RTT",
    )
    tiny = calibrate(SpecCalibration(5.0, 10.0, 5.0), 20.0)  # E = 0.2 per block
    assert tiny.notes[0].startswith("E = 0.2 is below 1 accepted token per block")
