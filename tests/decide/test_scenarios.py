"""Links, placement, Monte-Carlo, and the monotonicity properties of every scenario."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.decide import formulas as f
from probe.decide.scenarios import (
    Hop,
    Links,
    UnmeasuredHop,
    Workload,
    best_order,
    decode,
    monte_carlo,
    place,
    pool,
    prefill,
    region_hop,
    speculative,
    tensor_parallel,
)
from probe.decide.shapes import preset
from probe.errors import InputError
from probe.model import CellStatus
from tests.decide.fleet import make_anchors, pair, with_stalled_bw

LLAMA8B = preset("llama-3-8b")


def test_hop_falls_back_to_the_reverse_cell_but_never_past_all_lost() -> None:
    base = make_anchors({"r": 3})
    h = {x.name: x for x in base.hosts}
    a = make_anchors(
        {"r": 3},
        overrides={
            ("r-0", "r-1"): pair(h["r-0"], h["r-1"], 1.0, status=CellStatus.TIMEOUT),
            ("r-1", "r-2"): pair(h["r-1"], h["r-2"], 1.0, status=CellStatus.ALL_LOST),
            ("r-2", "r-0"): pair(h["r-2"], h["r-0"], 1.0, status=CellStatus.AUTH_FAILED),
            ("r-0", "r-2"): pair(h["r-0"], h["r-2"], 1.0, status=CellStatus.UNREACHABLE),
        },
    )
    links = Links.from_anchors(a)
    hop = links.hop("r-0", "r-1")  # measured from r-1 instead
    assert hop.rtt_p50_ms == 0.5 and hop.bw_bps == 10_000e6
    with pytest.raises(UnmeasuredHop, match="all-lost"):
        links.hop("r-2", "r-1")  # r-2→r-1 is ok, but r-1→r-2 lost everything
    with pytest.raises(UnmeasuredHop, match=r"r-2→r-0 auth-failed.*r-0→r-2 unreachable"):
        links.hop("r-2", "r-0")


def test_goodput_is_the_lower_of_the_two_measurements_of_a_direction() -> None:
    base = make_anchors({"r": 2})
    h0, h1 = base.hosts
    a = make_anchors({"r": 2}, overrides={("r-1", "r-0"): pair(h1, h0, 0.5, 500.0)})
    links = Links.from_anchors(a)
    # r-0→r-1: (r-0,r-1).forward = 10,000 and (r-1,r-0).reverse = 500 → 500 Mbit/s
    assert links.hop("r-0", "r-1").bw_bps == 500e6


def _brute(cost: np.ndarray, k: int, ring: bool) -> float:
    best = math.inf
    for perm in itertools.permutations(range(cost.shape[0]), k):
        total = sum(cost[a, b] for a, b in itertools.pairwise(perm))
        if ring:
            total += cost[perm[-1], perm[0]]
        best = min(best, total)
    return best


@pytest.mark.parametrize("ring", [False, True])
@pytest.mark.parametrize(("n", "k"), [(5, 3), (6, 4), (7, 5), (4, 4)])
def test_best_order_is_exact_for_small_k(n: int, k: int, ring: bool) -> None:
    rng = np.random.default_rng(n * 10 + k)
    for _ in range(5):
        cost = rng.uniform(1, 100, size=(n, n))
        np.fill_diagonal(cost, np.inf)
        order, total = best_order(cost, k, ring)
        assert len(set(order)) == k
        assert total == pytest.approx(_brute(cost, k, ring))
        again = sum(cost[a, b] for a, b in itertools.pairwise(order))
        assert total == pytest.approx(again + (cost[order[-1], order[0]] if ring else 0))


def test_best_order_on_large_pools_finds_a_finite_path() -> None:
    rng = np.random.default_rng(1)
    cost = rng.uniform(1, 100, size=(40, 40))
    np.fill_diagonal(cost, np.inf)
    order, total = best_order(cost, 6, False)
    assert len(set(order)) == 6 and math.isfinite(total)
    order, total = best_order(cost, 10, True)  # k > 8: greedy only
    assert len(set(order)) == 10 and math.isfinite(total)


def test_placement_stays_inside_a_region_and_refuses_impossible_requests() -> None:
    a = make_anchors({"us-east": 3, "eu-west": 5}, 75.0)
    links = Links.from_anchors(a)
    path = place(links, 4, 8192, ring=False).path
    assert {a.host(h).region for h in path} == {"eu-west"}
    with pytest.raises(Exception, match="no 9 hosts"):
        place(links, 9, 8192, ring=False)


def test_monte_carlo_is_seeded_and_ordered() -> None:
    hops = [Hop("a", "b", 10, 30, 1e9, (8.0, 10.0, 12.0, 30.0)) for _ in range(3)]
    one = monte_carlo(hops, 8192, 50, 0.0, trials=500, seed=7)
    two = monte_carlo(hops, 8192, 50, 0.0, trials=500, seed=7)
    assert one == two and one is not None
    assert one.p50_ms <= one.p90_ms <= one.p99_ms <= one.max_ms
    # every draw is at least 3 hops × 50 steps × 8/2 ms
    assert one.p50_ms >= 3 * 50 * 4.0
    assert monte_carlo([Hop("a", "b", 10, 30, 1e9)], 0, 1, 0.0) is None


def test_lower_bound_is_flagged_when_goodput_is_unknown() -> None:
    res = decode([Hop("a", "b", 10, 20, None)], Workload(LLAMA8B), trials=0)
    assert res.per_step.lower_bound and res.per_step.network_p50_ms == 5.0


STALL = "stalled for 5.0 s of 10 s (from 2.0 s)"


@pytest.mark.parametrize(
    "mbps",
    [
        0.0,  # no bytes received
        11_305.0,  # the rate iperf3 still reported around a stall: not used either
    ],
)
def test_a_stalled_test_is_no_goodput_and_every_figure_over_it_says_so(mbps: float) -> None:
    """Issue 12, case 5: a 16 MiB prefill over a 223 ms hop whose test stalled."""
    a = with_stalled_bw(make_anchors({"a": 1, "b": 1}, 223.0), "a-0", "b-0", STALL, mbps)
    links = Links.from_anchors(a)
    hop = links.hop("a-0", "b-0")
    assert hop.bw_bps is None and hop.bw_caveat == f"bandwidth stalled ({STALL})"
    back = links.hop("b-0", "a-0")  # its own test did not stall
    assert back.bw_bps == 10_000e6 and back.bw_caveat is None
    w = Workload(LLAMA8B, "bf16", batch=1, seq=2048)
    res = prefill([hop], w, trials=0)
    assert res.payload_bytes == 16 * 2**20
    note = f"a-0→b-0: bandwidth stalled ({STALL})"
    assert res.total.network_p50_ms == pytest.approx(111.5)  # latency only
    for e in (res.total, res.per_step, decode([hop], w, trials=0).total):
        assert e.lower_bound and e.caveats == (note,)
    tp = tensor_parallel([hop, back], w)
    assert tp.prefill_request is not None
    assert tp.prefill_request.lower_bound and tp.prefill_request.caveats == (note,)
    pooled = pool("a-0", links, ["a-0", "b-0"], 4, [100.0, 100.0], 2.0**24)
    assert pooled.even.lower_bound and pooled.even.caveats == (note,)
    healthy = prefill([back], w, trials=0).total
    assert not healthy.lower_bound and healthy.caveats == ()


def test_a_zero_goodput_marked_ok_is_a_stall_too() -> None:
    """Runs recorded before the stalled status: 0.0 Mbit/s under bw_status ok."""
    base = make_anchors({"a": 1, "b": 1}, 223.0)
    h = {x.name: x for x in base.hosts}
    zero = make_anchors(
        {"a": 1, "b": 1},
        223.0,
        overrides={
            ("a-0", "b-0"): pair(h["a-0"], h["b-0"], 223.0, 0.0),
            ("b-0", "a-0"): pair(h["b-0"], h["a-0"], 223.0, 0.0),
        },
    )
    res = prefill(Links.from_anchors(zero).hops(["a-0", "b-0"], False), Workload(LLAMA8B))
    assert res.total.network_p50_ms == pytest.approx(111.5)
    assert res.total.lower_bound
    assert res.total.caveats == ("a-0→b-0: bandwidth stalled (goodput 0 bit/s)",)
    with pytest.raises(InputError, match=r"goodput 0\.0 is not > 0"):
        Hop("a", "b", 10.0, 20.0, 0.0)  # a zero never reaches the formulas


def test_placement_goes_around_a_stalled_link() -> None:
    a = make_anchors({"r": 3})
    for src, dst in (("r-0", "r-1"), ("r-1", "r-0")):
        a = with_stalled_bw(a, src, dst, STALL)
    path = place(Links.from_anchors(a), 3, 8192, ring=False).path
    assert {path[0], path[2]} == {"r-0", "r-1"}  # never adjacent


def test_region_hop_names_stalled_pairs_and_refuses_a_zero_median() -> None:
    a = with_stalled_bw(make_anchors({"us": 2, "eu": 2}, 75.0), "us-0", "eu-0", STALL, 0.0)
    hop = region_hop(a, "us", "eu")
    assert hop.bw_bps == 10_000e6  # the median of 0, 10000, 10000, 10000
    assert hop.bw_caveat == "bandwidth stalled on 1 of 4 pairs"
    assert region_hop(a, "eu", "us").bw_caveat is None
    for src in ("us-0", "us-1"):
        for dst in ("eu-0", "eu-1"):
            a = with_stalled_bw(a, src, dst, STALL, 0.0)
    hop = region_hop(a, "us", "eu")
    assert hop.bw_bps is None
    assert hop.bw_caveat == "bandwidth stalled on 4 of 4 pairs; region goodput 0 bit/s"
    res = prefill([hop], Workload(LLAMA8B), trials=0)
    assert res.total.lower_bound
    assert res.total.caveats == (f"[us]→[eu]: {hop.bw_caveat}",)


def test_pool_over_links() -> None:
    a = make_anchors({"r": 1, "s": 1}, 50.0)
    res = pool("r-0", Links.from_anchors(a), ["r-0", "s-0"], 10, [100.0, 100.0], 0.0)
    # r-0 costs 100, s-0 costs 150: greedy 6/4 → makespan max(600, 600) = 600; alone 1000
    assert res.aware_counts == (6, 4)
    assert res.aware.full_p50_ms == pytest.approx(600.0)
    assert res.overhead("aware", "p50") == pytest.approx(0.6)
    assert res.overhead("even", "p99") >= res.overhead("even", "p50")


# --------------------------------------------------------------------------- properties

rtts = st.floats(min_value=0.05, max_value=400.0)
bws = st.floats(min_value=1e6, max_value=4e11)
extra = st.floats(min_value=0.01, max_value=100.0)


def _figures(rtt: float, p99: float, bw: float, dtype: f.Dtype) -> list[tuple[float, float]]:
    """(p50, p99) of every time-like figure of every scenario, for one hop setting."""
    w = Workload(LLAMA8B, dtype, tokens=16, batch=2, seq=256, decode_compute_ms_per_stage=1.0)
    hops = [Hop(f"h{i}", f"h{i + 1}", rtt, p99, bw) for i in range(3)]
    d, p = decode(hops, w, trials=0), prefill(hops, w, trials=0)
    tp = tensor_parallel(hops, w)
    assert tp.prefill_request is not None
    spec = speculative(hops[:1], 3.0, 40.0, 30.0).rows[0]
    out = []
    for e in (d.per_step, d.total, p.per_step, p.total, tp.decode_token, tp.prefill_request):
        out += [(e.network_p50_ms, e.network_p99_ms), (e.full_p50_ms, e.full_p99_ms)]
    out.append((1 / spec.tokens_per_s_p50, 1 / spec.tokens_per_s_p99))  # time per token
    return out


@settings(max_examples=150, deadline=None)
@given(rtt=rtts, spread=extra, bw=bws, more=extra)
def test_rtt_raises_every_figure_and_p99_is_at_least_p50(
    rtt: float, spread: float, bw: float, more: float
) -> None:
    base = _figures(rtt, rtt + spread, bw, "bf16")
    slower = _figures(rtt + more, rtt + spread + more, bw, "bf16")
    for (p50, p99), (s50, s99) in zip(base, slower, strict=True):
        assert p99 >= p50
        assert s50 > p50 and s99 > p99


@settings(max_examples=150, deadline=None)
@given(rtt=rtts, spread=extra, bw=bws)
def test_compression_lowers_every_transfer_figure(rtt: float, spread: float, bw: float) -> None:
    by_dtype = [_figures(rtt, rtt + spread, bw, d) for d in ("fp32", "bf16", "int8", "int4")]
    for wide, narrow in itertools.pairwise(by_dtype):
        for (w50, w99), (n50, n99) in zip(wide[:-1], narrow[:-1], strict=True):
            assert n50 < w50 and n99 < w99
        assert narrow[-1] == wide[-1]  # speculative decoding sends no activations
