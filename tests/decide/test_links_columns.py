"""Links from the columnar pairs equal the per-pair reading probe had before (the oracle here)."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from probe.decide import fitness
from probe.decide.fitness import assess
from probe.decide.scenarios import Links
from probe.matrix.anchors import Anchors, HostInfo
from probe.matrix.pairs import PairAnchor, PairTable
from probe.matrix.regions import roll_up
from probe.model import CellStatus
from tests.matrix.test_pairs import HOSTS, pairs

PAIRS = st.lists(pairs(), max_size=20)
PROPERTY = settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])


def _anchors(ps: list[PairAnchor], down: str = "b-0") -> Anchors:
    hosts = tuple(HostInfo(h, h[0], measured=h != down) for h in HOSTS)
    return Anchors("r", "t", "v", hosts, PairTable.of(ps), roll_up(ps))


def oracle(anchors: Anchors) -> dict[str, object]:
    hosts = tuple(h.name for h in anchors.measured_hosts)
    index = {h: i for i, h in enumerate(hosts)}
    n = len(hosts)
    ps = [p for p in anchors.pairs if p.src in index and p.dst in index]

    def dense(values: list[float | None], scale: float = 1.0) -> NDArray[np.float64]:
        out = np.full((n, n), np.nan)
        for p, v in zip(ps, values, strict=True):
            out[index[p.src], index[p.dst]] = math.nan if v is None else v * scale
        return out

    p50 = dense([p.rtt.p50_ms if p.rtt and p.ok else None for p in ps])
    fwd = dense([p.bw.forward_mbps for p in ps], 1e6)
    rev = dense([p.bw.reverse_mbps for p in ps], 1e6)
    stalled = ~np.isnan(dense([1.0 if p.bw_status == "stalled" else None for p in ps]))
    stalled |= (fwd <= 0) | (rev.T <= 0)
    lost = ~np.isnan(dense([1.0 if p.status is CellStatus.ALL_LOST else None for p in ps]))
    cc = {p.dst: p.receiver_cc for p in ps if p.receiver_cc}
    cc.update((p.src, p.sender_cc) for p in ps if p.sender_cc)
    return {
        "p50": p50,
        "p99": dense([p.rtt.p99_ms if p.rtt and p.ok else None for p in ps]),
        "loss": dense([p.loss_pct for p in ps]),
        "stalled": stalled,
        "dead": lost | lost.T,
        "cc": list(cc.items()),
    }


@PROPERTY
@given(PAIRS)
def test_links_are_the_per_pair_matrices(ps: list[PairAnchor]) -> None:
    ps = [p for p in ps if p.src != p.dst]
    a = _anchors(ps)
    links, want = Links.from_anchors(a), oracle(a)
    np.testing.assert_array_equal(links.cell_p50_ms, want["p50"])
    np.testing.assert_array_equal(links.loss_pct, want["loss"])
    np.testing.assert_array_equal(links.bw_stalled, want["stalled"])
    dead = want["dead"]
    assert isinstance(dead, np.ndarray)
    assert np.isnan(links.hop_p50_ms[dead]).all()
    assert list(links.host_cc.items()) == want["cc"]


@PROPERTY
@given(PAIRS)
def test_host_fitness_counts_each_hosts_own_cells(ps: list[PairAnchor]) -> None:
    ps = [p for p in ps if p.src != p.dst]
    ps = [dataclasses.replace(p, received=min(p.received, p.sent)) for p in ps]
    for h in assess(_anchors(ps)):
        ok_out = [p for p in ps if p.ok and p.src == h.host]
        sent = sum(p.sent for p in ok_out)
        lost = sum(p.sent - p.received for p in ok_out)
        if h.loss_out_pct is None:
            assert sent < 1 or h.fitness.value == "unfit"
        else:
            assert h.loss_out_pct == 100.0 * lost / sent


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 7).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(
                st.one_of(st.floats(0.0, 500.0), st.just(math.nan), st.sampled_from([1.0, 2.0])),
                min_size=k * 9,
                max_size=k * 9,
            ),
        )
    )
)
def test_leave_one_out_medians_are_nanmedian_over_the_other_rows(
    shape: tuple[int, list[float]],
) -> None:
    """One sort per region gives each row's siblings' median to the float (ties, NaN, a row
    alone, columns all NaN): what ``np.nanmedian`` over the other rows gives."""
    k, values = shape
    block = np.asarray(values, np.float64).reshape(k, 9)
    got = fitness._leave_one_out_medians(block)
    for row in range(k):
        others = np.delete(block, row, axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(others, axis=0) if len(others) else np.full(9, np.nan)
        np.testing.assert_array_equal(got[row], want)
