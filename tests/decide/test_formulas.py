"""Closed-form cases, computed by hand in the comments (ms, bytes, bit/s)."""

from __future__ import annotations

import pytest

from probe.decide import formulas as f
from probe.decide.scenarios import Hop, Workload, decode, prefill, speculative, tensor_parallel
from probe.decide.shapes import preset

LLAMA8B = preset("llama-3-8b")  # hidden 4096, 32 layers


def _hops(n: int, rtt_ms: float, bw_bps: float) -> list[Hop]:
    return [Hop(f"h{i}", f"h{i + 1}", rtt_ms, rtt_ms * 2, bw_bps) for i in range(n)]


def test_decode_open_chain_and_ring() -> None:
    # bytes = 1·1·4096·2 = 8192 B; at 100 Mbit/s: 8192·8 / 1e8 s = 0.65536 ms
    # one hop: 10/2 + 0.65536 = 5.65536 ms; K = 4 open: 3 hops → 16.96608 ms per token
    w = Workload(LLAMA8B, "bf16", tokens=100)
    res = decode(_hops(3, 10.0, 1e8), w, trials=0)
    assert res.payload_bytes == 8192
    assert res.per_step.network_p50_ms == pytest.approx(16.96608)
    assert res.total.network_p50_ms == pytest.approx(1696.608)  # × 100 tokens
    # ring: 4 hops → 22.62144 ms per token
    ring = decode(_hops(4, 10.0, 1e8), Workload(LLAMA8B, "bf16", tokens=1, ring=True), trials=0)
    assert ring.per_step.network_p50_ms == pytest.approx(22.62144)
    assert len(ring.path) == 4


def test_decode_full_estimate_adds_compute_per_stage() -> None:
    # 3 hops of 5.65536 ms + 4 stages × 2 ms = 24.96608 ms per token
    w = Workload(LLAMA8B, "bf16", tokens=10, decode_compute_ms_per_stage=2.0)
    res = decode(_hops(3, 10.0, 1e8), w, trials=0)
    assert res.per_step.full_p50_ms == pytest.approx(24.96608)
    assert res.total.full_p50_ms == pytest.approx(249.6608)
    # p99 RTT is 20 ms: hop 10.65536, 3 hops 31.96608, + 8 = 39.96608
    assert res.per_step.full_p99_ms == pytest.approx(39.96608)


def test_prefill_per_hop_and_per_request() -> None:
    # B=2, S=1024, fp16: 2·1024·4096·2 = 16,777,216 B = 16 MiB; at 1 Gbit/s 134.217728 ms
    # hop = 20/2 + 134.217728 = 144.217728 ms; K = 3 → 2 hops = 288.435456 ms per request
    w = Workload(LLAMA8B, "fp16", batch=2, seq=1024)
    res = prefill(_hops(2, 20.0, 1e9), w, trials=0)
    assert res.payload_bytes == 16 * f.MIB
    assert res.per_step.network_p50_ms == pytest.approx(144.217728)
    assert res.total.network_p50_ms == pytest.approx(288.435456)
    # int8 halves the bytes: 67.108864 ms serialisation, hop 77.108864 ms
    res8 = prefill(_hops(2, 20.0, 1e9), Workload(LLAMA8B, "int8", batch=2, seq=1024), trials=0)
    assert res8.per_step.network_p50_ms == pytest.approx(77.108864)
    # int4 quarters them: 33.554432 + 10
    res4 = prefill(_hops(2, 20.0, 1e9), Workload(LLAMA8B, "int4", batch=2, seq=1024), trials=0)
    assert res4.per_step.network_p50_ms == pytest.approx(43.554432)


def test_tensor_parallel_ring_allreduce() -> None:
    # N=4, RTT 1 ms, 10 Gbit/s, 8192 B: 2·3·(0.5 + 8192·8/(4·1e10)·1e3) = 6·0.5016384 = 3.0098304
    assert f.ring_allreduce_ms(4, 1.0, 8192, 1e10) == pytest.approx(3.0098304)
    # per token: 2 all-reduces × 32 layers = 192.6291456 ms
    tp = tensor_parallel(_hops(4, 1.0, 1e10), Workload(LLAMA8B, "bf16", tokens=2))
    assert tp.decode_token.network_p50_ms == pytest.approx(192.6291456)
    assert tp.decode_total.network_p50_ms == pytest.approx(2 * 192.6291456)
    assert f.ring_allreduce_ms(1, 50.0, 8192, 1e6) == 0.0


def test_tensor_parallel_uses_the_worst_link() -> None:
    hops = [*_hops(3, 1.0, 1e10), Hop("h3", "h0", 9.0, 18.0, 1e9)]
    tp = tensor_parallel(hops, Workload(LLAMA8B, "bf16"))
    assert (tp.worst_hop.rtt_p50_ms, tp.worst_hop.bw_bps) == (9.0, 1e9)


def test_speculative_decoding() -> None:
    # E = 3, block 40 ms, RTT 20 ms: 3 / 0.060 s = 50 tok/s; AR 30 → 1.667×
    # break-even RTT* = 3/30 s − 40 ms = 60 ms
    assert f.spec_tokens_per_s(3, 40, 20) == pytest.approx(50.0)
    assert f.spec_speedup(3, 40, 20, 30) == pytest.approx(50 / 30)
    assert f.spec_breakeven_rtt_ms(3, 40, 30) == pytest.approx(60.0)
    # at the break-even RTT the speed-up is exactly 1
    assert f.spec_speedup(3, 40, 60, 30) == pytest.approx(1.0)
    res = speculative([Hop("p", "v", 20.0, 70.0, None)], 3, 40, 30)
    (row,) = res.rows
    assert row.speedup_p50 == pytest.approx(50 / 30)
    assert row.speedup_p99 < 1.0  # 70 ms > 60 ms break-even


def test_pool_even_and_capability_aware() -> None:
    # host A: 100 ms service, dispatcher itself → 100 ms per request
    # host B: 200 ms + 50 ms RTT + 1e6 B at 1e8 bit/s (80 ms) → 330 ms per request
    cost = [100.0, f.request_cost_ms(200.0, 50.0, 1e6, 1e8)]
    assert cost[1] == pytest.approx(330.0)
    even = f.even_split(10, 2)
    assert even == [5, 5]
    assert f.makespan_ms(even, cost) == pytest.approx(1650.0)  # 5 × 330
    # finish times A: 100..800, B: 330, 660 → 8 to A, 2 to B, makespan 800
    aware = f.capability_split(10, cost)
    assert aware == [8, 2]
    assert f.makespan_ms(aware, cost) == pytest.approx(800.0)
    # vs the fastest host alone: 10 × 100 = 1000 → overhead 0.8
    assert f.makespan_ms(aware, cost) / f.makespan_ms([10, 0], cost) == pytest.approx(0.8)


def test_capability_split_is_optimal_against_brute_force() -> None:
    cost = [70.0, 100.0, 260.0]
    best = min(f.makespan_ms([a, b, 12 - a - b], cost) for a in range(13) for b in range(13 - a))
    assert f.makespan_ms(f.capability_split(12, cost), cost) == pytest.approx(best)


def test_empty_payload_costs_no_time_even_without_bandwidth() -> None:
    assert f.serialisation_ms(0, 0.0) == 0.0
    assert f.transfer_ms(10.0, 0, 1.0) == 5.0


def test_tree_allreduce_takes_2_log2_n_full_size_steps() -> None:
    step = 1.0 / 2 + 8192 * 8 / 1e10 * 1e3
    assert f.tree_allreduce_ms(4, 1.0, 8192, 1e10) == pytest.approx(4 * step)
    assert f.tree_allreduce_ms(5, 1.0, 8192, 1e10) == pytest.approx(6 * step)  # ⌈log2 5⌉ = 3
    assert f.tree_allreduce_ms(1, 50.0, 8192, 1e6) == 0.0
    assert f.tp_token_ms(2, 4, 1.0, 8192, 1e10, "tree") == pytest.approx(4 * 4 * step)
