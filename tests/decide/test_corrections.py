"""The formula's corrections in the pipeline scenarios and in ``probe calc``: slow start after
idle on prefill, the per-message overhead on decode and prefill (ms, bytes, bit/s)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from probe.cli import run
from probe.decide import formulas as f
from probe.decide.calc import calc
from probe.decide.options import UNCORRECTED, CalcOptions, Draws, PipelineOptions, Transport
from probe.decide.scenarios import Hop, Workload, decode, prefill
from probe.decide.shapes import preset
from probe.errors import InputError
from probe.matrix.anchors import write_anchors
from tests.cli.test_json import document
from tests.decide.fleet import make_anchors

LLAMA8B = preset("llama-3-8b")
PROMPT = Workload(LLAMA8B, "fp16", batch=1, seq=2048)  # 16 MiB per boundary
AFTER_IDLE = Transport()
WAN = Hop("a", "b", 240.0, 300.0, 20e6, samples_ms=(240.0, 240.0))


def test_prefill_after_idle_adds_the_slow_start_stalls_of_each_hop() -> None:
    # one 240 ms / 20 Mbit/s hop: 6830.8864 ms today, + 1078.5792 ms of stalls
    # (tests/decide/test_slow_start.py counts them); at p99 (300 ms) the stalls are
    # 6·300.5792 − 630·0.5792 = 1803.4752 − 364.896 = 1438.5792 ms
    res = prefill([WAN, WAN], replace(PROMPT, transport=AFTER_IDLE), trials=0)
    (ss,) = res.corrections
    assert ss.name == "slow start after idle"
    assert [ss.p50_ms, ss.p99_ms] == pytest.approx([2 * 1078.5792, 2 * 1438.5792])
    assert res.total.network_p50_ms == pytest.approx(2 * (6830.8864 + 1078.5792))
    assert res.per_step.network_p50_ms == pytest.approx(6830.8864 + 1078.5792)
    assert res.total.network_p99_ms == pytest.approx(2 * (6860.8864 + 1438.5792))


def test_the_uncorrected_workload_keeps_todays_formula() -> None:
    res = prefill([WAN], PROMPT, trials=0)
    assert PROMPT.transport == UNCORRECTED and res.corrections == ()
    assert res.total.network_p50_ms == pytest.approx(6830.8864)


def test_a_hop_without_goodput_stays_a_latency_only_lower_bound() -> None:
    blind = Hop("a", "b", 240.0, 300.0, None)
    res = prefill([blind], replace(PROMPT, transport=AFTER_IDLE), trials=0)
    assert res.corrections == () and res.total.lower_bound
    assert res.total.network_p50_ms == pytest.approx(120.0)


def test_decode_pays_the_per_message_overhead_but_no_slow_start() -> None:
    # 3 hops of 10 ms / 100 Mbit/s, 8192 B: 5.65536 ms each, + 0.25 ms per message per hop
    hops = [Hop(f"h{i}", f"h{i + 1}", 10.0, 20.0, 1e8) for i in range(3)]
    w = Workload(LLAMA8B, "bf16", tokens=10, transport=Transport(per_message_ms=0.25))
    res = decode(hops, w, trials=0)
    assert [c.name for c in res.corrections] == ["per-message overhead"]
    assert res.corrections[0].p50_ms == pytest.approx(0.75)
    assert res.per_step.network_p50_ms == pytest.approx(3 * 5.65536 + 0.75)
    assert res.total.network_p50_ms == pytest.approx(10 * (3 * 5.65536 + 0.75))


def test_the_monte_carlo_tail_includes_the_corrections() -> None:
    # every sample is 240 ms: the tail is the p50 figure exactly
    res = prefill([WAN], replace(PROMPT, transport=Transport(per_message_ms=1.0)), trials=50)
    assert res.tail is not None
    assert res.tail.p50_ms == pytest.approx(6830.8864 + 1078.5792 + 1.0)


def test_transport_rejects_a_negative_overhead() -> None:
    with pytest.raises(InputError, match="per-message"):
        Transport(per_message_ms=-1.0)


def test_calc_starts_prefill_in_slow_start_unless_warm() -> None:
    # two regions 240 ms apart at 20 Mbit/s: the prefill hop between them stalls
    anchors = make_anchors({"us": 1, "ap": 1}, 240.0, bw_mbps=20.0)
    base = CalcOptions(
        pipeline=PipelineOptions(dtype="fp16"),
        path=("us-0", "ap-0"),
        scenarios=frozenset({"prefill"}),
        draws=Draws(trials=0),
    )
    idle = calc(anchors, base).prefill
    warm = calc(anchors, replace(base, transport=UNCORRECTED)).prefill
    assert idle is not None and warm is not None
    assert warm.total.network_p50_ms == pytest.approx(6830.8864)
    assert idle.total.network_p50_ms == pytest.approx(6830.8864 + 1078.5792)


def test_calc_cli_says_what_each_correction_adds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "anchors.json"
    write_anchors(path, make_anchors({"us": 1, "ap": 1}, 240.0, bw_mbps=20.0))
    argv = ["calc", str(path), "--path", "us-0,ap-0", "--dtype", "fp16", "--trials", "0"]
    argv += ["--scenario", "decode,prefill", "--per-message", "0.5ms"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    prefill_text = out[out.index("== prefill") :]
    assert "slow start after idle: +1,078.58 ms per request at RTT p50" in prefill_text
    assert "per-message overhead: +0.500 ms per request" in prefill_text
    assert "per-message overhead: +0.500 ms per token" in out[: out.index("== prefill")]

    assert run([*argv, "--warm", "--json"]) == 0
    doc = document(capsys.readouterr().out, "calc")
    assert doc["workload"]["prefill_after_idle"] is False
    assert doc["workload"]["per_message_ms"] == 0.5
    assert doc["prefill"]["corrections"] == [
        {"name": "per-message overhead", "p50_ms": 0.5, "p99_ms": 0.5}
    ]
    assert run([*argv, "--json"]) == 0
    (ss, _) = document(capsys.readouterr().out, "calc")["prefill"]["corrections"]
    assert ss["name"] == "slow start after idle" and ss["p50_ms"] == pytest.approx(1078.5792)


BBR_WAN = replace(WAN, sender_cc="bbr")


def test_a_bbr_sender_keeps_its_window_so_prefill_has_no_slow_start() -> None:
    res = prefill([BBR_WAN, WAN], replace(PROMPT, transport=AFTER_IDLE), trials=0)
    (ss,) = res.corrections  # the CUBIC (unknown) hop's stalls only
    assert ss.p50_ms == pytest.approx(1078.5792)


def test_decode_over_a_bbr_sender_pays_its_sparse_pacing() -> None:
    # formulas.bbr_sparse_extra_ms(240 ms, 8192 B, 20 Mbit/s) on the BBR hop, nothing on the other
    w = Workload(LLAMA8B, "bf16", tokens=10, transport=AFTER_IDLE)
    res = decode([BBR_WAN, WAN], w, trials=0)
    (pacing,) = res.corrections
    assert pacing.name == "BBR pacing of sparse messages"
    assert pacing.p50_ms == pytest.approx(f.bbr_sparse_extra_ms(240.0, 8192, 20e6))
    assert pacing.p99_ms == pytest.approx(f.bbr_sparse_extra_ms(300.0, 8192, 20e6))
    plain = decode([BBR_WAN, WAN], replace(w, transport=UNCORRECTED), trials=0)
    assert plain.corrections == ()
    assert res.per_step.network_p50_ms == pytest.approx(
        plain.per_step.network_p50_ms + pacing.p50_ms
    )
