"""Slow start after idle and the per-message overhead (``formulas``): a case counted by hand and
the properties any such correction must keep (ms, bytes, bit/s)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.decide import formulas as f
from probe.errors import InputError

RTT = st.floats(0.0, 1000.0)
PAYLOAD = st.floats(0.0, 2e9)
BW = st.floats(1e5, 1e11)


def test_prefill_across_the_intercontinental_path_counted_by_hand() -> None:
    # Llama-3-8B, B=1, S=2048, fp16: 2048·4096·2 = 16,777,216 B = 11,587 segments of 1448 B.
    # 20 Mbit/s: one segment s = 1448·8 / 20e6 s = 0.5792 ms; RTT 240 ms, so a round waits for
    # its first ACK s + RTT = 240.5792 ms after it starts. BDP = 20e6·0.240/8 = 600,000 B ≈ 414 seg.
    #   round  window  sent in (w·s)  stall = 240.5792 − w·s
    #     1      10       5.792         234.7872
    #     2      20      11.584         228.9952
    #     3      40      23.168         217.4112
    #     4      80      46.336         194.2432
    #     5     160      92.672         147.9072
    #     6     320     185.344          55.2352
    #     7     640     370.688        (≥ 240.5792: the pipe is full, the rest streams)
    # 630 segments sent in the stalled rounds, 10,957 still to go: slow start is over long before.
    # Σ stalls = 6·240.5792 − 630·0.5792 = 1443.4752 − 364.896 = 1078.5792 ms
    # today's hop: 240/2 + 16,777,216·8/20e6 s = 120 + 6710.8864 = 6830.8864 ms
    payload = 2048 * 4096 * 2
    assert f.transfer_ms(240.0, payload, 20e6) == pytest.approx(6830.8864)
    assert f.slow_start_stall_ms(240.0, payload, 20e6) == pytest.approx(1078.5792)
    assert f.slow_start_transfer_ms(240.0, payload, 20e6) == pytest.approx(7909.4656)
    # log2(BDP/IW) = log2(414.4/10) ≈ 5.4: six stalled rounds, as counted
    assert math.ceil(math.log2(600_000 / 1448 / 10)) == 6


def test_a_payload_within_the_initial_window_costs_what_it_did() -> None:
    # 10 segments = 14,480 B leave in one round; one byte more needs a second round
    assert f.slow_start_transfer_ms(240.0, 14_480, 20e6) == f.transfer_ms(240.0, 14_480, 20e6)
    # 11 segments: round 1 stalls s + RTT − 10·s = 0.5792 + 240 − 5.792 = 234.7872 ms
    assert f.slow_start_stall_ms(240.0, 14_481, 20e6) == pytest.approx(234.7872)


def test_a_full_pipe_from_the_start_never_stalls() -> None:
    # 0.5 ms, 200 Mbit/s: s = 0.05792 ms, IW sent in 0.5792 ms ≥ s + RTT = 0.55792 ms
    assert f.slow_start_stall_ms(0.5, 16 * f.MIB, 200e6) == 0.0


def test_the_initial_window_and_segment_size_are_parameters() -> None:
    # IW 1 segment of 1000 B, 8 Mbit/s (s = 1 ms), RTT 9 ms, 4000 B: rounds of 1, 2 then 1 left.
    # stalls: 1 + 9 − 1 = 9, 10 − 2 = 8; the third round sends the last segment: 17 ms
    stall = f.slow_start_stall_ms(9.0, 4000, 8e6, init_cwnd_segments=1, mss_bytes=1000)
    assert stall == pytest.approx(17.0)
    with pytest.raises(InputError, match="window"):
        f.slow_start_stall_ms(9.0, 4000, 8e6, init_cwnd_segments=0)


def test_unknown_goodput_stalls_a_whole_rtt_per_round() -> None:
    # bw = inf: the pipe never fills. 10 rounds send 10·(2¹⁰ − 1) = 10,230 of the 11,587
    # segments, the 11th the rest: 10 rounds stall, each a whole 240 ms round trip
    assert f.slow_start_stall_ms(240.0, 16 * f.MIB, math.inf) == pytest.approx(10 * 240.0)


def test_per_message_overhead_is_added_once_per_transfer() -> None:
    assert f.transfer_ms(10.0, 8192, 1e8, per_message_ms=0.2) == pytest.approx(5.65536 + 0.2)
    small = f.slow_start_transfer_ms(10.0, 8192, 1e8, per_message_ms=0.2)
    assert small == pytest.approx(5.65536 + 0.2)


@given(RTT, PAYLOAD, BW)
def test_never_below_todays_formula(rtt: float, payload: float, bw: float) -> None:
    assert f.slow_start_transfer_ms(rtt, payload, bw) >= f.transfer_ms(rtt, payload, bw)


@given(RTT, st.floats(0.0, f.INIT_CWND_SEGMENTS * f.MSS_BYTES), BW)
def test_equal_to_todays_formula_within_the_initial_window(
    rtt: float, payload: float, bw: float
) -> None:
    assert f.slow_start_transfer_ms(rtt, payload, bw) == f.transfer_ms(rtt, payload, bw)


@given(RTT, PAYLOAD, PAYLOAD, BW)
def test_monotone_in_payload(rtt: float, a: float, b: float, bw: float) -> None:
    lo, hi = sorted((a, b))
    assert f.slow_start_transfer_ms(rtt, lo, bw) <= f.slow_start_transfer_ms(rtt, hi, bw)


@given(RTT, RTT, PAYLOAD, BW)
def test_monotone_in_rtt(a: float, b: float, payload: float, bw: float) -> None:
    lo, hi = sorted((a, b))
    assert f.slow_start_transfer_ms(lo, payload, bw) <= f.slow_start_transfer_ms(hi, payload, bw)


@given(st.floats(1.0, 1000.0), BW)
def test_a_large_payload_pays_about_log2_bdp_over_iw_round_trips(rtt: float, bw: float) -> None:
    # n stalled rounds: the first window with IW·2^n·s ≥ s + RTT. Each stall is below s + RTT,
    # and the windows before the n-th send less than 2(s + RTT) in all: (n−2)·RTT < stalls.
    s = f.serialisation_ms(f.MSS_BYTES, bw)
    n = max(0, math.ceil(math.log2((s + rtt) / (f.INIT_CWND_SEGMENTS * s))))
    bdp_bytes = bw * rtt / 8e3
    payload = 4 * bdp_bytes + 2**20 * f.MSS_BYTES  # never runs out before the pipe is full
    stalls = f.slow_start_stall_ms(rtt, payload, bw)
    assert (n - 2) * rtt <= stalls <= n * (s + rtt) * (1 + 1e-9)


# --------------------------------------------------------------------------- BBR


def test_bbr_keeps_its_window_over_idle_cubic_and_unknown_restart() -> None:
    assert not f.restarts_after_idle("bbr") and not f.restarts_after_idle("BBR")
    assert f.restarts_after_idle("cubic") and f.restarts_after_idle("reno")
    assert f.restarts_after_idle(None)  # unknown: Linux's default, CUBIC


def test_bbr_paces_an_8_kib_decode_message_on_a_240_ms_hop_counted_by_hand() -> None:
    # pacing = 2/ln2 · 0.99 · 14,480 B · 8 / 0.240 s = 1,378,754.8 bit/s (≥ 1.2 Mbit/s: bursts of
    # 2 segments, 2,896 B); 8,192 B = 2,896 + 2,896 + 2,400. The last burst leaves after half the
    # first and all the second: (1,448 + 2,896)·8 / 1,378,754.8 s = 25.2054 ms, then crosses
    # 20 Mbit/s in 0.96 ms, against 8,192 B in 3.2768 ms: +22.8886 ms
    pacing = f.bbr_sparse_pacing_bps(240.0, 8192)
    assert pacing == pytest.approx(2 / math.log(2) * 0.99 * 14480 * 8 / 0.240)
    bursts = f.pacing_bursts(8192, pacing)
    assert bursts == (2896.0, 2896.0, 2400.0)
    assert f.paced_release_ms(bursts, pacing) == pytest.approx(4344 * 8 / pacing * 1e3)
    assert f.bbr_sparse_extra_ms(240.0, 8192, 20e6) == pytest.approx(
        4344 * 8 / pacing * 1e3 + 0.96 - 3.2768
    )


def test_bbr_pacing_slower_than_1_2_mbits_sends_one_segment_a_burst() -> None:
    pacing = f.bbr_sparse_pacing_bps(400.0, 8192)  # 0.83 Mbit/s
    assert pacing < f.BBR_MIN_TSO_RATE_BPS
    assert f.pacing_bursts(8192, pacing) == (1448.0,) * 5 + (952.0,)


def test_bbr_pacing_costs_nothing_where_it_outruns_the_path() -> None:
    assert f.bbr_sparse_extra_ms(0.5, 8192, 200e6) == 0.0  # 660 Mbit/s: one burst
    assert f.bbr_sparse_extra_ms(240.0, 2000, 20e6) == 0.0  # one burst of two segments
    assert f.bbr_sparse_extra_ms(240.0, 0, 20e6) == 0.0
    assert f.bbr_sparse_extra_ms(0.0, 8192, 20e6) == 0.0
    assert f.bbr_sparse_extra_ms(5e-324, 1.0, 1e5) == 0.0  # hypothesis found: RTT/1e3 is 0


@given(RTT, st.floats(1.0, 1e8), BW)
def test_bbr_pacing_never_takes_time_away(rtt_ms: float, payload: float, bw: float) -> None:
    extra = f.bbr_sparse_extra_ms(rtt_ms, payload, bw)
    assert extra >= 0.0 and math.isfinite(extra)


@given(st.floats(1.0, 1000.0), st.floats(1.0, 1e6))
def test_bursts_add_up_to_the_message(rtt_ms: float, payload: float) -> None:
    bursts = f.pacing_bursts(payload, f.bbr_sparse_pacing_bps(rtt_ms, payload))
    assert sum(bursts) == pytest.approx(payload)
    assert all(b > 0 for b in bursts) and len(set(bursts[:-1])) <= 1
