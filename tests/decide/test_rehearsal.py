"""Predictions for ``probe rehearse``: today's formula and the corrected one, worked by hand in
the comments (ms, bytes, bit/s), and the properties the corrected ones keep."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.decide import formulas as f
from probe.decide import rehearsal as r
from probe.decide.scenarios import Hop
from probe.decide.shapes import ModelShape, preset
from probe.errors import InputError

LLAMA8B = preset("llama-3-8b")
TOKEN = 4096 * 2  # one token's activation, fp16: 8192 B
PROMPT = 2048 * 4096 * 2  # B=1, S=2048, fp16: 16 MiB
LAN = r.Link(0.5, 200e6)
WAN = r.Link(240.0, 20e6)


def test_decode_token_over_a_three_stage_ring() -> None:
    # 8192 B at 200 Mbit/s: 0.32768 ms; a hop 0.25 + 0.32768 = 0.57768; 3 hops 1.73304 ms,
    # + 3 stages × 2 ms compute = 7.73304; 0.1 ms per message per hop adds 0.3
    fig = r.decode_token([LAN] * 3, TOKEN, 3, 2.0, per_message_ms=0.1)
    assert fig.today == pytest.approx(7.73304)
    assert fig.corrected == pytest.approx(8.03304) and fig.correction == pytest.approx(0.3)
    assert fig.unit == "ms"


def test_prefill_hop_after_idle_to_the_ack() -> None:
    # 6830.8864 ms one way today, + 1078.5792 ms of slow start (test_slow_start.py counts them);
    # timed to the ack: + 120 ms back, + one more message
    one_way = r.transfer(WAN, PROMPT)
    assert one_way.today == pytest.approx(6830.8864)
    assert one_way.corrected == pytest.approx(7909.4656)
    acked = r.transfer(WAN, PROMPT, 0.5, to_ack=True)
    assert acked.today == pytest.approx(6950.8864)
    assert acked.corrected == pytest.approx(7909.4656 + 0.5 + 120.0 + 0.5)
    warm = r.transfer(WAN, PROMPT, after_idle=False)
    assert warm.corrected == warm.today
    # a window left at 640 segments by a short gap: the pipe is full from the first round
    assert r.transfer(WAN, PROMPT, start_window_segments=640).correction == 0.0


def test_prediction_errors_are_signed_percentages() -> None:
    assert r.Figure(90.0, 105.0).error_pct(100.0) == pytest.approx((-10.0, 5.0))


def test_ring_allreduce_waits_for_the_links_on_its_way_not_the_worst_of_each() -> None:
    # 2 hosts: a→b 10 ms, b→a 2 ms, both 8 Mbit/s; 1000 B chunks take 1 ms.
    # today: 2·(2−1)·(10/2 + 1) = 12 ms.
    # relay: step 0: a→b sent by 1, at b by 6; b→a sent by 1, at a by 2.
    #        step 1: a sends at 2 (has step 0), at b by 8; b sends at 6, at a by 6 + 1 + 1 = 8.
    fig = r.ring_allreduce([r.Link(10.0, 8e6), r.Link(2.0, 8e6)], 1000)
    assert fig.today == pytest.approx(12.0)
    assert fig.corrected == pytest.approx(8.0)


def test_ring_allreduce_on_equal_links_is_todays_formula() -> None:
    # N=4, RTT 1 ms, 10 Gbit/s, 2048 B chunks (8192 B / 4): 6·(0.5 + 0.0016384) = 3.0098304
    fig = r.ring_allreduce([r.Link(1.0, 1e10)] * 4, 2048)
    assert fig.today == pytest.approx(3.0098304) and fig.corrected == pytest.approx(3.0098304)
    # back to back, repetitions pipeline no better on equal links; a message overhead adds 6×
    assert r.ring_allreduce([r.Link(1.0, 1e10)] * 4, 2048, repetitions=5).corrected == (
        pytest.approx(3.0098304)
    )
    assert r.ring_allreduce([r.Link(1.0, 1e10)] * 4, 2048, 0.1).corrected == pytest.approx(
        3.6098304
    )
    assert r.ring_allreduce([LAN], 2048) == r.Figure(0.0, 0.0)


def test_ring_allreduce_on_bbr_links_pays_the_pacing_of_each_chunk() -> None:
    """Each step's chunk follows the link's wait for the previous step: a BBR sender paces it
    at start-up's rate; a chunk of one burst (2 KiB) and a CUBIC sender pay nothing."""
    cubic = r.ring_allreduce([r.Link(240.0, 20e6, "cubic")] * 4, 65536)
    bbr = r.ring_allreduce([r.Link(240.0, 20e6, "bbr")] * 4, 65536)
    extra = f.bbr_sparse_extra_ms(240.0, 65536, 20e6)
    assert extra > 50.0  # 64 KiB paced at ~6 Mbit/s (start-up, a chunk per RTT), not 20
    assert bbr.today == cubic.today
    assert bbr.corrected == pytest.approx(cubic.corrected + 6 * extra)
    assert cubic.corrected == r.ring_allreduce([r.Link(240.0, 20e6)] * 4, 65536).corrected
    small = r.ring_allreduce([r.Link(240.0, 20e6, "bbr")] * 4, 2048)
    assert small == r.ring_allreduce([r.Link(240.0, 20e6, "cubic")] * 4, 2048)


LINKS = st.lists(
    st.builds(r.Link, st.floats(0.0, 300.0), st.floats(1e6, 1e10)), min_size=2, max_size=6
)


@given(LINKS, st.floats(0.0, 1e6), st.integers(1, 4))
def test_ring_allreduce_corrected_is_never_above_today(
    links: list[r.Link], chunk: float, reps: int
) -> None:
    # and never below the work of host 0's incoming link: 2(N−1) chunks in a row per repetition
    fig = r.ring_allreduce(links, chunk, repetitions=reps)
    incoming = 2 * (len(links) - 1) * f.serialisation_ms(chunk, links[-1].bw_bps)
    assert incoming * (1 - 1e-9) <= fig.corrected <= fig.today * (1 + 1e-9)


def test_spec_tokens_per_s() -> None:
    # E = 3, block 40 ms, RTT 20 ms both ways: today 3 / 0.060 s = 50 tokens/s.
    # 32 B of draft token ids at 100 Mbit/s: 0.00256 ms each way, 0.5 ms per message:
    # exchange 2·(10 + 0.00256 + 0.5) = 21.00512 ms → 3 / 0.06100512 s
    link = r.Link(20.0, 1e8)
    fig = r.spec_tokens_per_s(link, link, 3.0, 40.0, 32, 0.5)
    assert fig.unit == "tokens/s" and fig.today == pytest.approx(50.0)
    assert fig.corrected == pytest.approx(3 / 0.06100512)


def test_kv_cache_of_llama_3_8b() -> None:
    # 2 · 32 layers · 8 KV heads · 128 (4096 / 32 heads) · 2048 tokens · 2 B = 256 MiB
    assert r.kv_cache_bytes(LLAMA8B, 2048, 1, "fp16") == 256 * f.MIB
    with pytest.raises(InputError, match="num_key_value_heads"):
        r.kv_cache_bytes(ModelShape("bare", 4096, 32), 2048, 1, "fp16")


def test_link_of_a_measured_hop() -> None:
    hop = Hop("a", "b", 40.0, 55.0, 1e8)
    assert r.Link.of(hop) == r.Link(40.0, 1e8) and r.Link.of(hop, "p99").rtt_ms == 55.0
    with pytest.raises(InputError, match="no goodput"):
        r.Link.of(Hop("a", "b", 40.0, 55.0, None))
    with pytest.raises(InputError, match="goodput"):
        r.Link(1.0, 0.0)


def test_an_idle_gap_resets_the_window_only_after_enough_rtos() -> None:
    # 240 ms path: RTO 240 + 200 = 440 ms. A window of 640 segments needs log2(64) = 6 halvings.
    rto = f.linux_rto_ms(240.0)
    assert rto == 440.0 and r.idle_reset_ms(640, 240.0) == 6 * 440.0
    assert f.window_after_idle(640, 6 * 440.0 + 1, rto) == 10
    assert f.window_after_idle(640, 6 * 440.0, rto) == 20  # one halving short
    assert f.window_after_idle(640, 440.0, rto) == 640  # not idle past one RTO: unchanged
    assert f.window_after_idle(640, 441.0, rto) == 320
    assert f.window_after_idle(4, 10_000.0, rto) == 4  # never raised to the initial window
    assert r.idle_reset_ms(10, 240.0) == 0.0
