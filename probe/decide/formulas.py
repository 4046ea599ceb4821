"""The calculator's arithmetic: plain floats, no I/O, units in every name.

Times are milliseconds, sizes bytes, rates bit/s (10⁶ bit/s = 1 Mbit/s, as iperf3 reports).
``bytes · 8 / bw`` is the serialisation time of a payload; one transfer over a hop costs half a
round trip plus that (``transfer_ms``).

All-reduce of ``size`` bytes over N hosts (tensor parallel does two per layer per token), with
``step(b) = RTT/2 + b·8/bw`` over the ring's slowest link:

- ``ring``: reduce-scatter then all-gather, ``2(N−1)`` steps of ``size/N`` each:
  ``2(N−1) · step(size/N)``; bandwidth-optimal, latency grows with N.
- ``tree``: reduce up a binary tree then broadcast down, ``2·⌈log2 N⌉`` steps of the full size:
  ``2⌈log2 N⌉ · step(size)``; fewer round trips, so it wins for small payloads on slow RTTs.
- ``measured``: the user's own time per all-reduce (e.g. from nccl-tests), used as is.

Speculative decoding, proposer and verifier apart: a block of draft + verify takes ``t`` ms of
compute and one round trip, and yields ``E`` accepted tokens, so ``tokens/s = E / (t + RTT)``
(``E / t`` co-located). Calibration from measured rates (``spec_calibrate``): the co-located
rate ``L = E / t`` and one remote rate ``R = E / (t + r)`` at RTT ``r`` (rates per ms here) are
two equations in the two unknowns. Dividing them, ``L / R = (t + r) / t``, so
``t = R·r / (L − R)`` and ``E = L·t = L·R·r / (L − R)``: a unique answer when ``0 < R < L`` and
``r > 0`` (a remote rate at or above the co-located one says the RTT costs nothing, which the
model cannot fit). The autoregressive rate ``AR`` only scales the speed-up ``tokens/s / AR``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Literal

Dtype = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]

BYTES_PER_ELEMENT: dict[Dtype, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}

MIB = 2**20


def activation_bytes(batch: int, seq: int, hidden: int, bytes_per_element: float) -> float:
    """Bytes crossing one stage boundary: ``B · S · hidden · d``."""
    return batch * seq * hidden * bytes_per_element


def serialisation_ms(payload_bytes: float, bw_bps: float) -> float:
    """Time to push ``payload_bytes`` through ``bw_bps`` bit/s; 0 for an empty payload."""
    if payload_bytes == 0:
        return 0.0
    return payload_bytes * 8.0 / bw_bps * 1e3


def transfer_ms(rtt_ms: float, payload_bytes: float, bw_bps: float) -> float:
    """One transfer over a hop: ``RTT/2 + bytes·8/bw``."""
    return rtt_ms / 2.0 + serialisation_ms(payload_bytes, bw_bps)


def pipeline_token_ms(hop_ms: Sequence[float], stages: int, compute_ms_per_stage: float) -> float:
    """One token through the pipeline: every hop once plus each stage's compute."""
    return sum(hop_ms) + stages * compute_ms_per_stage


def decode_ms(
    tokens: int, hop_ms: Sequence[float], stages: int, compute_ms_per_stage: float = 0.0
) -> float:
    """Interactive decode of ``tokens`` tokens: ``T · (Σ hop + K · compute)``.

    With K stages an open chain has K−1 hops, a ring K (the token returns to stage 1). For equal
    hops and no compute this is DESIGN.md's ``T · (K−1) · t(B=1, S=1)``.
    """
    return tokens * pipeline_token_ms(hop_ms, stages, compute_ms_per_stage)


def prefill_request_ms(
    hop_ms: Sequence[float], stages: int, compute_ms_per_stage: float = 0.0
) -> float:
    """One prefill request through all stages: ``Σ t(B, S)`` over the hops plus compute."""
    return pipeline_token_ms(hop_ms, stages, compute_ms_per_stage)


def ring_allreduce_ms(hosts: int, rtt_ms: float, payload_bytes: float, bw_bps: float) -> float:
    """Ring all-reduce over N hosts: ``2(N−1) · (RTT/2 + bytes·8/(N·bw))``; 0 for one host.

    A ring moves at the pace of its slowest link, so callers pass the worst RTT and the lowest
    bandwidth of the ring.
    """
    if hosts <= 1:
        return 0.0
    return 2 * (hosts - 1) * (rtt_ms / 2.0 + serialisation_ms(payload_bytes, hosts * bw_bps))


def tree_allreduce_ms(hosts: int, rtt_ms: float, payload_bytes: float, bw_bps: float) -> float:
    """Tree all-reduce over N hosts: ``2⌈log2 N⌉ · (RTT/2 + bytes·8/bw)``; 0 for one host."""
    if hosts <= 1:
        return 0.0
    steps = 2 * math.ceil(math.log2(hosts))
    return steps * (rtt_ms / 2.0 + serialisation_ms(payload_bytes, bw_bps))


ALLREDUCE: dict[str, Callable[[int, float, float, float], float]] = {
    "ring": ring_allreduce_ms,
    "tree": tree_allreduce_ms,
}


def tp_token_ms(
    layers: int,
    hosts: int,
    rtt_ms: float,
    payload_bytes: float,
    bw_bps: float,
    algorithm: Literal["ring", "tree"] = "ring",
) -> float:
    """Tensor parallel: two all-reduces per layer per token (attention and MLP outputs)."""
    return 2 * layers * ALLREDUCE[algorithm](hosts, rtt_ms, payload_bytes, bw_bps)


def spec_tokens_per_s(accepted_per_block: float, block_ms: float, rtt_ms: float) -> float:
    """Speculative decoding with proposer and verifier apart: ``E / (t_block + RTT)``."""
    return accepted_per_block / ((block_ms + rtt_ms) / 1e3)


def spec_speedup(
    accepted_per_block: float, block_ms: float, rtt_ms: float, ar_tokens_per_s: float
) -> float:
    """Speed-up over autoregressive decoding: ``E / (AR · (t_block + RTT))``."""
    return spec_tokens_per_s(accepted_per_block, block_ms, rtt_ms) / ar_tokens_per_s


def spec_breakeven_rtt_ms(
    accepted_per_block: float, block_ms: float, ar_tokens_per_s: float
) -> float:
    """The RTT at which speculation stops paying: ``E/AR − t_block`` (negative: never pays)."""
    return accepted_per_block / ar_tokens_per_s * 1e3 - block_ms


def spec_calibrate(
    local_tokens_per_s: float, remote_tokens_per_s: float, remote_rtt_ms: float
) -> tuple[float, float]:
    """``(E, t_block ms)`` reproducing both measured rates (algebra in the module docstring).
    The caller has checked ``0 < remote < local`` and ``remote_rtt_ms > 0``."""
    block_ms = remote_tokens_per_s * remote_rtt_ms / (local_tokens_per_s - remote_tokens_per_s)
    return local_tokens_per_s * block_ms / 1e3, block_ms


def request_cost_ms(service_ms: float, rtt_ms: float, payload_bytes: float, bw_bps: float) -> float:
    """One whole request sent to a host: ``service + RTT + payload·8/bw``."""
    return service_ms + rtt_ms + serialisation_ms(payload_bytes, bw_bps)


def even_split(requests: int, hosts: int) -> list[int]:
    """Requests per host, round robin: the first ``requests mod hosts`` get one more."""
    base, extra = divmod(requests, hosts)
    return [base + (1 if i < extra else 0) for i in range(hosts)]


def capability_split(requests: int, cost_ms: Sequence[float]) -> list[int]:
    """Requests per host minimising the makespan when host h costs ``cost_ms[h]`` per request.

    Each request goes where it would finish first. All requests being alike, this greedy rule is
    optimal: any schedule's k-th finishing request ends no earlier than the k-th smallest of the
    values ``n · cost_h`` (n ≥ 1), which is exactly what the greedy rule achieves.
    """
    counts = [0] * len(cost_ms)
    heap = [(c, i) for i, c in enumerate(cost_ms)]  # (finish time of the next request, host)
    heapq.heapify(heap)
    for _ in range(requests):
        _, h = heapq.heappop(heap)
        counts[h] += 1
        heapq.heappush(heap, ((counts[h] + 1) * cost_ms[h], h))
    return counts


def makespan_ms(counts: Sequence[int], cost_ms: Sequence[float]) -> float:
    """Requests served serially per host: ``max_h count_h · cost_h``."""
    return max((n * c for n, c in zip(counts, cost_ms, strict=True) if n), default=0.0)
