"""The region roll-up: one definition per figure, each with the pairs it rests on."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.errors import InputError
from probe.matrix.anchors import Bandwidth, HostInfo, PairAnchor
from probe.matrix.regions import FIGURES, figure, figures, roll_up
from probe.model import CellStatus
from tests.decide.fleet import pair

A = HostInfo("a-0", "a")
B = [HostInfo(f"b-{i}", "b") for i in range(5)]


def probed(dst: HostInfo, sent: int, received: int, rtt_ms: float = 10.0) -> PairAnchor:
    """A pair a-0 → dst that sent ``sent`` probes and got ``received`` back."""
    p = pair(A, dst, rtt_ms, status=CellStatus.OK if received else CellStatus.ALL_LOST)
    loss = 100.0 * (sent - received) / sent
    return dataclasses.replace(p, sent=sent, received=received, loss_pct=loss)


def test_loss_is_pooled_over_probes_not_a_median_of_pairs() -> None:
    pairs = [probed(B[0], 10, 10), probed(B[1], 10, 10), probed(B[2], 40, 28)]  # 0, 0, 30 %
    (row,) = roll_up(pairs)
    assert row.loss_pct == pytest.approx(100.0 * 12 / 60)  # the median would say 0, the mean 10
    assert (row.sent, row.received, row.pairs_probed) == (60, 48, 3)


def test_a_pair_without_probes_weighs_nothing_and_an_all_lost_pair_counts() -> None:
    timeout = pair(A, B[1], 1.0, status=CellStatus.TIMEOUT)
    (row,) = roll_up([probed(B[0], 20, 20), timeout])
    assert row.loss_pct == 0.0 and (row.pairs, row.pairs_probed) == (2, 1)
    (row,) = roll_up([probed(B[0], 20, 20), probed(B[1], 20, 0)])
    assert row.loss_pct == 50.0 and row.pairs_ok == 1
    (row,) = roll_up([timeout])
    assert row.loss_pct is None and row.rtt is None and row.pairs_probed == 0  # None, never 0


def test_rtt_and_ipdv_are_medians_over_ok_pairs_with_their_counts() -> None:
    one_reply = dataclasses.replace(pair(A, B[2], 50.0), ipdv_ms=None)
    lost = pair(A, B[3], 1.0, status=CellStatus.ALL_LOST)
    (row,) = roll_up([pair(A, B[0], 10.0), pair(A, B[1], 30.0), one_reply, lost])
    assert row.rtt is not None
    assert (row.rtt.p50_ms, row.rtt.p90_ms, row.rtt.p99_ms, row.rtt.mean_ms) == (30, 36, 45, 30)
    assert (row.pairs, row.pairs_ok, row.pairs_ipdv) == (4, 3, 2)
    assert row.ipdv_ms == 0.05


def test_goodput_is_the_median_of_measured_pairs_per_direction() -> None:
    pairs = [
        dataclasses.replace(pair(A, B[0], 1.0), bw=Bandwidth(100.0, 10.0)),
        dataclasses.replace(pair(A, B[1], 1.0), bw=Bandwidth(300.0, None)),
        dataclasses.replace(pair(A, B[2], 1.0), bw=Bandwidth(None, 30.0)),
        pair(A, B[3], 1.0, None),
    ]
    (row,) = roll_up(pairs)
    assert row.bw == Bandwidth(200.0, 20.0)
    assert (row.pairs_bw_forward, row.pairs_bw_reverse) == (2, 2)


def test_figures_name_their_definition_and_basis() -> None:
    pairs = [probed(B[0], 10, 10), probed(B[1], 10, 10), probed(B[2], 40, 28)]
    (f,) = figures(roll_up(pairs), "loss_pct")
    assert (f.src_region, f.dst_region, f.measured, f.pairs) == ("a", "b", 3, 3)
    assert f.value == pytest.approx(20.0)
    assert figure("loss_pct").definition.startswith("pooled")
    assert figure("bw_mbps") is figure("bw_fwd_mbps")
    with pytest.raises(InputError, match=r"no region roll-up of 'rtt_max_ms'; choose one of"):
        figure("rtt_max_ms")


# --------------------------------------------------------------------------- properties

HOSTS = [HostInfo(f"{r}-{i}", r) for r in ("a", "b", "c") for i in range(3)]


@st.composite
def pairs_of_a_run(draw: st.DrawFn) -> list[PairAnchor]:
    """Ordered pairs of HOSTS, each ok, all-lost or unmeasured, with its own probe count."""
    out = []
    for src in HOSTS:
        for dst in HOSTS:
            if src is dst or not draw(st.booleans()):
                continue
            status = draw(st.sampled_from([CellStatus.OK, CellStatus.ALL_LOST, CellStatus.TIMEOUT]))
            sent = draw(st.integers(1, 200))
            received = draw(st.integers(1, sent)) if status is CellStatus.OK else 0
            rtt = draw(st.floats(0.01, 500.0))
            bw = draw(st.one_of(st.none(), st.floats(1.0, 1e5)))
            p = pair(src, dst, rtt, bw, status=status)
            if status is not CellStatus.TIMEOUT:
                p = dataclasses.replace(
                    p, sent=sent, received=received, loss_pct=100.0 * (sent - received) / sent
                )
            out.append(p)
    return out


@given(pairs_of_a_run())
def test_pooled_loss_lies_between_the_pairs_losses(pairs: list[PairAnchor]) -> None:
    for row in roll_up(pairs):
        losses = [
            p.loss_pct
            for p in pairs
            if (p.src_region, p.dst_region) == (row.src_region, row.dst_region) and p.sent
            if p.loss_pct is not None
        ]
        if not losses:
            assert row.loss_pct is None
            continue
        assert row.loss_pct is not None
        assert min(losses) - 1e-9 <= row.loss_pct <= max(losses) + 1e-9


@given(pairs_of_a_run(), st.randoms(use_true_random=False))
def test_a_region_row_depends_only_on_its_own_pairs(
    pairs: list[PairAnchor], rnd: random.Random
) -> None:
    rows = {(r.src_region, r.dst_region): r for r in roll_up(pairs)}
    assert list(rows) == sorted({(p.src_region, p.dst_region) for p in pairs})
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    for key, row in rows.items():
        own = [p for p in shuffled if (p.src_region, p.dst_region) == key]
        assert roll_up(own) == (row,)


@given(pairs_of_a_run())
def test_counts_bound_each_other_and_no_figure_rests_on_nothing(pairs: list[PairAnchor]) -> None:
    for row in roll_up(pairs):
        assert row.pairs_ipdv is not None and row.pairs_probed is not None
        assert row.pairs_ipdv <= row.pairs_ok <= row.pairs_probed <= row.pairs
        for name, f in FIGURES.items():
            value, basis = f.value(row), f.pairs(row)
            assert basis is not None and basis <= row.pairs
            assert (value is None) == (basis == 0), name
            assert value is None or math.isfinite(value)
