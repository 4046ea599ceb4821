"""Rehearsal's arithmetic: what a pattern sends over each hop, what the calculator predicts for
it from a run's anchors, and what the raw timings say, with the error. No I/O, no SSH.

Every figure is read on one host's clock, so no clock synchronisation is needed:

- ``decode``: the token's round trip around the stages, timed on stage 1: the K−1 forward hops
  carry the activation (B = 1, S = 1), the closing hop the sampled token id, and each stage
  spends its compute. Predicted: calc's open-path hops plus the closing hop and K computes;
  corrected: a BBR sender's pacing of such sparse messages (``formulas.bbr_sparse_extra_ms``).
- ``prefill`` and ``kv``: each hop's payload (``B·S·hidden·d``; a KV-cache of
  ``2·layers·S·B·kv_heads·head_dim·d``) after an idle gap, timed by the sender up to a small
  ack; the hop's one-way time is that less half the round trip of small pings on the same
  connection. Predicted: ``RTT/2 + bytes·8/bw``; corrected: slow start after idle
  (``formulas.slow_start_stall_ms``) unless the hop's sender runs BBR, which keeps its window.
- ``allreduce``: one ring all-reduce of the decode activation over N hosts, timed on host 0.
  Predicted: ``2(N−1)·(RTT/2 + bytes·8/(N·bw))`` over the ring's worst RTT and lowest goodput;
  corrected: the relay's schedule played out (``rehearsal.ring_allreduce``).
- ``spec``: proposer → verifier → proposer per block, the verifier spending the block time.
  Predicted: ``E / (t_block + RTT)`` tokens/s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from probe.decide import formulas as f
from probe.decide import rehearsal as r
from probe.decide import scenarios as sc
from probe.decide.options import (
    TOKEN_ID_BYTES,
    CalcOptions,
    Pattern,
    RehearseOptions,
    Transport,
)
from probe.errors import InputError

Mechanism = Literal["loop", "transfer", "ring"]
MECHANISM: dict[Pattern, Mechanism] = {
    "decode": "loop",
    "spec": "loop",
    "prefill": "transfer",
    "kv": "transfer",
    "allreduce": "ring",
}
#: Rounds when none are asked for (decode: ``--tokens``).
DEFAULT_ROUNDS: dict[Pattern, int] = {"prefill": 3, "kv": 3, "allreduce": 20, "spec": 20}
#: A message is at most this (the relay's length field is 32 bits).
MAX_MESSAGE_BYTES = 2**31


@dataclass(frozen=True, slots=True)
class Traffic:
    """What each relay does: host i sends ``send_bytes[i]`` to host i+1 (mod N) per round."""

    pattern: Pattern
    hosts: tuple[str, ...]
    send_bytes: tuple[int, ...]
    compute_ms: tuple[float, ...]
    rounds: int
    warmup: int = 0
    idle_s: float = 0.0
    pings: int = 0
    accepted_per_block: float | None = None  # spec: E

    @property
    def mechanism(self) -> Mechanism:
        return MECHANISM[self.pattern]

    def received_bytes(self, index: int, header_bytes: int) -> int:
        """The most host ``index`` receives: the previous host's messages, echoes and acks."""
        prev = self.send_bytes[index - 1]
        messages = (self.rounds + self.warmup) * (2 * (len(self.hosts) - 1) if self.ring else 1)
        echoes = (self.pings + self.rounds) * header_bytes * 2
        return messages * (prev + header_bytes) + echoes

    @property
    def ring(self) -> bool:
        return self.mechanism == "ring"


def kv_cache_bytes(calc: CalcOptions) -> int:
    """K and V of every layer for S tokens of B sequences (``rehearsal.kv_cache_bytes``); without
    head counts in the config, every head keeps keys and values (the full hidden size)."""
    p, shape = calc.pipeline, calc.pipeline.shape()
    if shape.num_attention_heads and shape.num_key_value_heads:
        return math.ceil(r.kv_cache_bytes(shape, p.seq, p.batch, p.dtype))
    d = f.BYTES_PER_ELEMENT[p.dtype]
    return math.ceil(
        f.kv_cache_bytes(shape.num_hidden_layers, 1, shape.hidden_size, p.seq, p.batch, d)
    )


def traffic(path: Sequence[str], calc: CalcOptions, o: RehearseOptions) -> Traffic:
    """The pattern over ``path`` (in order); raises ``InputError`` on a path it cannot use."""
    hosts, n = tuple(path), len(path)
    pattern = o.pattern
    if len(set(hosts)) != n:
        raise InputError(f"--path names a host twice: {','.join(hosts)}")
    if n < 2 or (pattern in ("spec", "kv") and n != 2):
        need = "2 hosts (proposer, verifier)" if pattern == "spec" else "2 hosts at least"
        need = "2 hosts (sender, receiver)" if pattern == "kv" else need
        raise InputError(f"{pattern} needs {need}, got {n}")
    w = sc.Workload.of(calc.pipeline)
    rounds = o.rounds or (calc.pipeline.tokens if pattern == "decode" else DEFAULT_ROUNDS[pattern])
    act1 = math.ceil(w.activation_bytes(1, 1))
    zero = (0.0,) * n
    if pattern == "decode":
        sends = (act1,) * (n - 1) + (int(TOKEN_ID_BYTES),)
        t = Traffic(pattern, hosts, sends, (calc.decode_compute_ms,) * n, rounds)
    elif pattern == "prefill":
        big = math.ceil(w.activation_bytes(calc.pipeline.batch, calc.pipeline.seq))
        compute = (calc.prefill_compute_ms,) * n
        t = Traffic(pattern, hosts, (big,) * (n - 1) + (0,), compute, rounds, 0, o.idle_s, o.pings)
    elif pattern == "kv":
        t = Traffic(pattern, hosts, (kv_cache_bytes(calc), 0), zero, rounds, 0, o.idle_s, o.pings)
    elif pattern == "allreduce":
        t = Traffic(pattern, hosts, (math.ceil(act1 / n),) * n, zero, rounds, o.warmup)
    else:
        e, block = calc.spec.accepted_per_block, calc.spec.block_ms
        if e is None or block is None:
            raise InputError("spec needs --spec-accepted and --spec-block")
        draft = math.ceil(e) * int(TOKEN_ID_BYTES)
        t = Traffic(pattern, hosts, (draft, draft), (0.0, block), rounds, accepted_per_block=e)
    worst = max(t.send_bytes)
    if worst > MAX_MESSAGE_BYTES or worst * (t.rounds + t.warmup) > o.max_bytes:
        raise InputError(
            f"{pattern}: {worst} bytes × {t.rounds + t.warmup} rounds on one hop exceeds "
            f"--max-bytes {o.max_bytes}"
        )
    return t


# --------------------------------------------------------------------------- timings


@dataclass(frozen=True, slots=True)
class Timing:
    """One raw timing a relay reported (``t``: a round; ``ping``: a small echoed message)."""

    host: str
    kind: Literal["t", "ping"]
    ms: float
    round: int | None = None
    hop: int | None = None  # transfer: the sending stage's position
    bytes: int | None = None
    warmup: bool = False


def _quantiles(values: Sequence[float]) -> tuple[float, float]:
    q = np.percentile(np.asarray(values, dtype=np.float64), [50, 99])
    return float(q[0]), float(q[1])


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure beside calc's prediction (and the corrected formula's)."""

    name: str
    unit: Literal["ms", "tokens/s"]
    samples: int
    measured_p50: float
    measured_p99: float
    predicted_p50: float | None = None
    predicted_p99: float | None = None
    corrected_p50: float | None = None
    lower_bound: bool = False  # a hop's goodput was not measured: the prediction is a floor

    @staticmethod
    def error(measured: float, predicted: float | None) -> float | None:
        """(measured − predicted) / predicted, in %; None without a prediction."""
        if predicted is None or predicted == 0:
            return None
        return (measured - predicted) / predicted * 100.0

    @property
    def error_p50_pct(self) -> float | None:
        return self.error(self.measured_p50, self.predicted_p50)

    @property
    def error_p99_pct(self) -> float | None:
        return self.error(self.measured_p99, self.predicted_p99)

    @property
    def corrected_error_p50_pct(self) -> float | None:
        return self.error(self.measured_p50, self.corrected_p50)


@dataclass(frozen=True, slots=True)
class Predicted:
    p50: float
    p99: float
    corrected_p50: float
    lower_bound: bool


def figures(
    t: Traffic, timings: Iterable[Timing], links: sc.Links | None, o: RehearseOptions
) -> tuple[Figure, ...]:
    """Measured figures of the rehearsal, each with its prediction when ``links`` are given."""
    got = list(timings)
    first = [x for x in got if x.kind == "t" and x.host == t.hosts[0] and not x.warmup]
    if t.pattern in ("decode", "allreduce"):
        name = "per token" if t.pattern == "decode" else "all-reduce"
        pred = None if links is None else _predict(t, links, o)
        return (_figure(name, "ms", [x.ms for x in first], pred),)
    if t.pattern == "spec":
        e = t.accepted_per_block or 1.0
        rates = [e * 1e3 / x.ms for x in first]
        pred = None if links is None else _predict(t, links, o)
        return (_figure("tokens/s", "tokens/s", rates, pred, higher_is_p50=True),)
    out = []
    for i in range(len(t.hosts) - 1):
        pings = [x.ms for x in got if x.kind == "ping" and x.hop == i]
        half = _quantiles(pings)[0] / 2 if pings else 0.0
        sends = [x.ms - half for x in got if x.kind == "t" and x.hop == i]
        if sends:
            pred = None if links is None else _hop_predict(t, i, links, o)
            out.append(_figure(f"{t.hosts[i]}→{t.hosts[i + 1]}", "ms", sends, pred))
    return tuple(out)


def _figure(
    name: str,
    unit: Literal["ms", "tokens/s"],
    values: Sequence[float],
    pred: Predicted | None,
    *,
    higher_is_p50: bool = False,
) -> Figure:
    if not values:
        raise InputError(f"{name}: the rehearsal returned no timings")
    p50, p99 = _quantiles(values)
    if higher_is_p50:  # a rate: its slow tail is the 1st percentile
        p99 = float(np.percentile(np.asarray(values, dtype=np.float64), 1))
    if pred is None:
        return Figure(name, unit, len(values), p50, p99)
    return Figure(
        name, unit, len(values), p50, p99, pred.p50, pred.p99, pred.corrected_p50, pred.lower_bound
    )


def _bw(hop: sc.Hop) -> float:
    return hop.bw_bps if hop.bw_bps else math.inf


def _corrected_ms(hop: sc.Hop, size: int, o: RehearseOptions, *, follows_gap: bool) -> float:
    """The hop at RTT p50 with calc's corrections (``scenarios.corrections``): slow start after
    idle for a transfer that ``follows_gap`` (unless the sender runs BBR), BBR's pacing for one
    that does not, and ``--per-message``."""
    transport = Transport(per_message_ms=o.per_message_ms)
    added = sc.corrections([hop], size, transport, follows_gap=follows_gap)
    return f.transfer_ms(hop.rtt_p50_ms, size, _bw(hop)) + sum(c.p50_ms for c in added)


def _hop_predict(t: Traffic, i: int, links: sc.Links, o: RehearseOptions) -> Predicted:
    hop = links.hop(t.hosts[i], t.hosts[i + 1])
    size = t.send_bytes[i]
    p50 = f.transfer_ms(hop.rtt_p50_ms, size, _bw(hop))
    p99 = f.transfer_ms(hop.rtt_p99_ms, size, _bw(hop))
    corrected = _corrected_ms(hop, size, o, follows_gap=True)
    return Predicted(p50, p99, corrected, hop.bw_bps is None)


def _predict(t: Traffic, links: sc.Links, o: RehearseOptions) -> Predicted:
    hops = links.hops(t.hosts, ring=True)
    missing = any(h.bw_bps is None for h in hops)
    if t.pattern == "allreduce":
        # today's: every step at the ring's worst RTT and lowest goodput; corrected: the relay's
        # own schedule played out (``rehearsal.ring_allreduce``): each host sends once it has
        # received, so a step costs the ring's links in turn, not its worst one each time
        chunk = t.send_bytes[0]
        today = [r.Link(h.rtt_p50_ms, _bw(h), h.sender_cc) for h in hops]
        tail = [r.Link(h.rtt_p99_ms, _bw(h)) for h in hops]
        return Predicted(
            r.ring_allreduce(today, chunk).today,
            r.ring_allreduce(tail, chunk).today,
            r.ring_allreduce(today, chunk, o.per_message_ms).corrected,
            missing,
        )

    def around(at: Literal["p50", "p99"]) -> float:
        total = sum(t.compute_ms)
        for hop, size in zip(hops, t.send_bytes, strict=True):
            total += f.transfer_ms(
                hop.rtt_p50_ms if at == "p50" else hop.rtt_p99_ms, size, _bw(hop)
            )
        return total

    # each message follows the previous one's round trip: sparse, never after a long gap
    corrected = sum(t.compute_ms) + sum(
        _corrected_ms(hop, size, o, follows_gap=False)
        for hop, size in zip(hops, t.send_bytes, strict=True)
    )
    p50, p99 = around("p50"), around("p99")
    if t.pattern == "spec":  # the same round trip as tokens/s
        e = t.accepted_per_block or 1.0
        return Predicted(e * 1e3 / p50, e * 1e3 / p99, e * 1e3 / corrected, missing)
    return Predicted(p50, p99, corrected, missing)
