"""What a rehearsal should measure, by today's formula and with ``formulas``' corrections.

``probe rehearse`` drives the inference traffic pattern over the measured links and compares;
these pure functions give it the predictions, each a ``Figure`` holding both answers so one run
says what each correction is worth. A ``Link`` is one direction of a hop: its RTT and goodput
(calc's figures for it, e.g. ``Link.of(links.hop(a, b))``).

Where "corrected" differs from "today":

- every message pays ``per_message_ms`` on every hop it crosses;
- a transfer that follows an idle gap (prefill activations, a KV cache) starts in slow start
  from ``start_window_segments`` (the initial window after a full reset; ``window_after_idle``
  says what a shorter gap leaves);
- a ring all-reduce is timed step by step as the relay runs it: each host sends step ``s`` once it
  has received step ``s − 1`` from its predecessor and its own link has finished the previous
  chunk, so a step waits for the slowest link on its way, not for the worst RTT and the lowest
  goodput of the ring put together (today's formula, which is never below it); each chunk is a
  sparse message, so a BBR sender paces it (``formulas.bbr_sparse_extra_ms``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from probe.decide import formulas as f
from probe.decide.scenarios import Hop
from probe.decide.shapes import ModelShape
from probe.errors import InputError


@dataclass(frozen=True, slots=True)
class Link:
    """One direction of a hop as the formulas see it: RTT, goodput and the sender's TCP
    congestion control (None: unknown, taken for CUBIC)."""

    rtt_ms: float
    bw_bps: float
    sender_cc: str | None = None

    def __post_init__(self) -> None:
        if not (self.rtt_ms >= 0 and self.bw_bps > 0):
            raise InputError(f"link: RTT {self.rtt_ms} ms must be ≥ 0, goodput {self.bw_bps} > 0")

    @classmethod
    def of(cls, hop: Hop, at: Literal["p50", "p99"] = "p50") -> Link:
        """The link of a measured hop; its goodput must be known (a rehearsal moves bytes)."""
        if hop.bw_bps is None:
            raise InputError(f"hop {hop.src}→{hop.dst}: no goodput measured, nothing to predict")
        return cls(hop.rtt_p50_ms if at == "p50" else hop.rtt_p99_ms, hop.bw_bps, hop.sender_cc)


@dataclass(frozen=True, slots=True)
class Figure:
    """One prediction by today's formula and with the corrections, in ``unit``."""

    today: float
    corrected: float
    unit: Literal["ms", "tokens/s"] = "ms"

    @property
    def correction(self) -> float:
        """What the corrections add (negative: take away)."""
        return self.corrected - self.today

    def error_pct(self, measured: float) -> tuple[float, float]:
        """Signed error of each prediction against ``measured``: ``(today, corrected)`` in %."""
        return (
            (self.today - measured) / measured * 100.0,
            (self.corrected - measured) / measured * 100.0,
        )


def decode_token(
    links: Sequence[Link],
    payload_bytes: float,
    stages: int,
    compute_ms_per_stage: float = 0.0,
    per_message_ms: float = 0.0,
) -> Figure:
    """One token over ``links`` (a ring of K stages crosses K links, an open chain K − 1), each
    of the ``stages`` computing once: decode's messages follow one another, so no slow start."""
    today = f.pipeline_token_ms(
        [f.transfer_ms(k.rtt_ms, payload_bytes, k.bw_bps) for k in links],
        stages,
        compute_ms_per_stage,
    )
    return Figure(today, today + per_message_ms * len(links))


def transfer(
    link: Link,
    payload_bytes: float,
    per_message_ms: float = 0.0,
    *,
    after_idle: bool = True,
    start_window_segments: int = f.INIT_CWND_SEGMENTS,
    to_ack: bool = False,
) -> Figure:
    """One bulk transfer over ``link`` (prefill activations per hop, a KV cache): first byte sent
    → last byte received, or with ``to_ack`` until a small acknowledgement is back at the sender
    (half a round trip and one more message later), which needs only the sender's clock."""
    today = f.transfer_ms(link.rtt_ms, payload_bytes, link.bw_bps)
    corrected = f.transfer_ms(
        link.rtt_ms, payload_bytes, link.bw_bps, per_message_ms=per_message_ms
    )
    if after_idle:
        corrected += f.slow_start_stall_ms(
            link.rtt_ms, payload_bytes, link.bw_bps, init_cwnd_segments=start_window_segments
        )
    if to_ack:
        today += link.rtt_ms / 2.0
        corrected += link.rtt_ms / 2.0 + per_message_ms
    return Figure(today, corrected)


def ring_allreduce(
    links: Sequence[Link],
    chunk_bytes: float,
    per_message_ms: float = 0.0,
    *,
    repetitions: int = 1,
) -> Figure:
    """Ring all-reduce over the N hosts of ``links`` (``links[i]``: host i → host i+1, the last
    back to host 0), ``2(N−1)`` steps of one ``chunk_bytes`` message each (the payload / N).

    Today's: ``formulas.ring_allreduce_ms`` over the worst RTT and the lowest goodput. Corrected:
    the relay's schedule played out (module docstring), ``repetitions`` back to back as host 0
    times them: until host 0 has received its last chunk, the mean per repetition (another host
    may finish a chunk's serialisation later). A BBR link's chunk, sent after the link idled for
    the previous step, lands ``bbr_sparse_extra_ms`` later (nothing for a chunk of one pacing
    burst). 0 for one host.
    """
    n = len(links)
    if n <= 1:
        return Figure(0.0, 0.0)
    worst_rtt, lowest_bw = max(k.rtt_ms for k in links), min(k.bw_bps for k in links)
    today = f.ring_allreduce_ms(n, worst_rtt, chunk_bytes * n, lowest_bw)
    steps = 2 * (n - 1) * repetitions
    paced = [_paced_ms(k, chunk_bytes) for k in links]
    received = [0.0] * n  # when host i last received a chunk (from host i − 1)
    link_free = [0.0] * n  # when link i → i+1 has finished sending its last chunk
    for _ in range(steps):
        ready = list(received)  # each host sends this step once it received the previous one
        for i, k in enumerate(links):
            start = max(ready[i], link_free[i])
            link_free[i] = start + f.serialisation_ms(chunk_bytes, k.bw_bps) + paced[i]
            received[(i + 1) % n] = link_free[i] + k.rtt_ms / 2.0 + per_message_ms
    return Figure(today, received[0] / repetitions)


def _paced_ms(link: Link, message_bytes: float) -> float:
    """What a sparse message's pacing adds on ``link``: BBR's only (CUBIC sends the window)."""
    if f.restarts_after_idle(link.sender_cc):
        return 0.0
    return f.bbr_sparse_extra_ms(link.rtt_ms, message_bytes, link.bw_bps)


def spec_tokens_per_s(
    there: Link,
    back: Link,
    accepted_per_block: float,
    block_ms: float,
    message_bytes: float = 0.0,
    per_message_ms: float = 0.0,
) -> Figure:
    """Speculative decoding, proposer → verifier over ``there`` and back over ``back``: one
    exchange of ``message_bytes`` each way per block of ``block_ms`` compute. Today's:
    ``E / (t_block + RTT)`` with the mean of the two RTTs; corrected: both transfers as hops."""
    rtt = (there.rtt_ms + back.rtt_ms) / 2.0
    exchange = sum(
        f.transfer_ms(k.rtt_ms, message_bytes, k.bw_bps, per_message_ms=per_message_ms)
        for k in (there, back)
    )
    return Figure(
        f.spec_tokens_per_s(accepted_per_block, block_ms, rtt),
        accepted_per_block / ((block_ms + exchange) / 1e3),
        "tokens/s",
    )


def kv_cache_bytes(shape: ModelShape, seq: int, batch: int, dtype: f.Dtype) -> float:
    """The KV cache of ``seq`` tokens of ``batch`` sequences: what disaggregated serving moves
    from the prefill host to the decode host."""
    heads, kv_heads = shape.num_attention_heads, shape.num_key_value_heads
    if heads is None or kv_heads is None:
        raise InputError(
            f"model {shape.name}: the KV cache size needs num_attention_heads and "
            "num_key_value_heads in its config"
        )
    head_dim = shape.hidden_size // heads
    d = f.BYTES_PER_ELEMENT[dtype]
    return f.kv_cache_bytes(shape.num_hidden_layers, kv_heads, head_dim, seq, batch, d)


def idle_reset_ms(cwnd_segments: int, rtt_ms: float) -> float:
    """The shortest idle gap after which a window of ``cwnd_segments`` is back at the initial
    window on Linux (``formulas.window_after_idle``): a rehearsal's gap should exceed it."""
    halvings = max(0, math.ceil(math.log2(cwnd_segments / f.INIT_CWND_SEGMENTS)))
    return halvings * f.linux_rto_ms(rtt_ms)
