"""The calculator's arithmetic: plain floats, no I/O, units in every name.

Times are milliseconds, sizes bytes, rates bit/s (10⁶ bit/s = 1 Mbit/s, as iperf3 reports).
``bytes · 8 / bw`` is the serialisation time of a payload; one transfer over a hop costs half a
round trip plus that (``transfer_ms``), plus a fixed ``per_message_ms`` when one is known.

Two corrections to that formula (issue 16: where real pipeline traffic is not iperf3):

- Slow start after an idle gap (``slow_start_transfer_ms``). Linux's default
  ``net.ipv4.tcp_slow_start_after_idle = 1`` (RFC 5681 §4.1, RFC 7661) halves the congestion window
  of a connection for every retransmission timeout (≥ 200 ms) it sat idle, down to the initial
  window ``IW = 10`` segments (RFC 6928) of ``MSS = 1448`` bytes (1500-byte MTU less IP, TCP and
  timestamp headers). A prefill that follows a gap between requests starts there, and so does one
  that follows decode on the same connection: decode's few-segment messages never fill the window,
  and Linux grows only a window the sender fills. Slow start doubles the window every round trip
  (Linux counts acknowledged bytes, so delayed ACKs do not slow the doubling); until the window
  covers the path's bandwidth-delay product ``BDP = bw · RTT``, the sender sends a window in ``w·s``
  ms (``s = MSS·8/bw``, one segment's serialisation) and then sits idle until the first ACK of
  that round is back, ``s + RTT`` after the round started. Each round that leaves bytes unsent
  therefore stalls ``max(0, s + RTT − w·s)``; the first round with ``w·s ≥ s + RTT`` fills the pipe
  and the rest streams at ``bw``. The receiver has the last byte at ``transfer_ms + Σ stalls``
  (first byte sent → last byte received; the receiver sees the bytes at the bottleneck's pace with
  one gap per stall). A payload within the initial window never stalls, so the result is exactly
  ``transfer_ms``; a large one stalls about ``log2(BDP / IW)`` rounds of nearly one RTT each.
  The sender's congestion control decides whether this applies (``restarts_after_idle``):
  Linux skips ``tcp_slow_start_after_idle`` for one that sets the window itself
  (``cong_control``: BBR), which keeps its window over the gap and paces at its bandwidth estimate.
- BBR's pacing of sparse messages (``bbr_sparse_extra_ms``). A connection that carries one small
  message per round trip (decode's activations) is application-limited, so BBR never leaves
  start-up and keeps the pacing rate it started with, ``2/ln 2 · 0.99 · IW·MSS / RTT`` (1.38
  Mbit/s on a 240 ms path), or the largest rate a message delivered. Linux's pacing releases a
  message in bursts of two segments at that rate (one below 1.2 Mbit/s; more when a millisecond
  of the rate holds more), the first burst after a gap charged half its length: an 8 KiB
  activation leaves over ~25 ms on a 240 ms hop, where the bottleneck alone takes ~4 ms.
- Per-message overhead (``per_message_ms``): a fixed cost each message pays on each hop —
  system calls, copies, a wake-up of the receiving thread — that neither ping nor iperf3 sees.
  Nagle and delayed-ACK interactions are not in it: inference transports set ``TCP_NODELAY``,
  so a small message leaves at once rather than waiting for the previous one's ACK.

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

from probe.errors import InputError

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


def transfer_ms(
    rtt_ms: float, payload_bytes: float, bw_bps: float, *, per_message_ms: float = 0.0
) -> float:
    """One transfer over a hop: ``RTT/2 + bytes·8/bw`` (+ the per-message overhead)."""
    return rtt_ms / 2.0 + serialisation_ms(payload_bytes, bw_bps) + per_message_ms


INIT_CWND_SEGMENTS = 10  # RFC 6928's initial window, Linux's default since 2.6.39
MSS_BYTES = 1448  # a 1500-byte MTU less 20 (IP) + 20 (TCP) + 12 (timestamps)


def slow_start_stall_ms(
    rtt_ms: float,
    payload_bytes: float,
    bw_bps: float,
    *,
    init_cwnd_segments: int = INIT_CWND_SEGMENTS,
    mss_bytes: int = MSS_BYTES,
) -> float:
    """What slow start after idle adds to ``transfer_ms``: ``Σ max(0, s + RTT − w·s)`` over the
    rounds that leave bytes unsent, ``w`` doubling from the initial window until the pipe is full
    (module docstring). 0 when the payload fits the initial window. An infinite ``bw_bps`` (goodput
    unknown) never fills the pipe: every round but the last stalls a whole RTT, which no finite
    goodput beats, so the figure stays a lower bound."""
    if init_cwnd_segments < 1 or mss_bytes < 1:
        raise InputError(
            f"slow start needs a window ≥ 1 segment of ≥ 1 byte, got "
            f"{init_cwnd_segments} × {mss_bytes} B"
        )
    seg_ms = serialisation_ms(mss_bytes, bw_bps)
    unsent = math.ceil(payload_bytes / mss_bytes)
    window, stalls = init_cwnd_segments, 0.0
    while True:
        unsent -= window
        if unsent <= 0 or window * seg_ms >= seg_ms + rtt_ms:  # all sent, or the pipe is full
            return stalls
        stalls += seg_ms + rtt_ms - window * seg_ms
        window *= 2


#: Congestion controls that set the window themselves (``tcp_congestion_ops.cong_control``):
#: Linux's slow start after idle leaves their window alone.
OWN_WINDOW_CC = frozenset({"bbr", "bbr2", "bbr3"})


def restarts_after_idle(cc: str | None) -> bool:
    """Whether a connection of this congestion control restarts from the initial window after
    idle (unknown: assume Linux's default, CUBIC, which does)."""
    return (cc or "").lower() not in OWN_WINDOW_CC


BBR_HIGH_GAIN = 2.0 / math.log(2.0)  # bbr_high_gain: start-up's pacing and window gain
BBR_PACING_MARGIN = 0.99  # bbr_pacing_margin_percent = 1
BBR_MIN_TSO_RATE_BPS = 1.2e6  # below it bbr_min_tso_segs sends one segment per burst
PACING_SHIFT = 10  # sk_pacing_shift: a burst holds ~1/1024 s of the pacing rate


def bbr_sparse_pacing_bps(
    rtt_ms: float,
    payload_bytes: float,
    *,
    init_cwnd_segments: int = INIT_CWND_SEGMENTS,
    mss_bytes: int = MSS_BYTES,
) -> float:
    """BBR's pacing rate on a connection of sparse messages: start-up's gain times the initial
    window per RTT (``bbr_init_pacing_rate_from_rtt``), or times a message per RTT when a message
    is larger (its delivery rate, the most an application-limited sample can show; start-up only
    ever raises the rate)."""
    carried = max(init_cwnd_segments * mss_bytes, payload_bytes)
    rtt_s = rtt_ms / 1e3
    if rtt_s <= 0.0:  # a round trip too short for a float (5e-324 ms): no pacing to speak of
        return math.inf
    return BBR_HIGH_GAIN * BBR_PACING_MARGIN * carried * 8.0 / rtt_s


def pacing_bursts(
    payload_bytes: float, pacing_bps: float, *, mss_bytes: int = MSS_BYTES
) -> tuple[float, ...]:
    """The bursts Linux's pacing sends a message in: ``max(2, rate/1024 / MSS)`` segments each
    (``tcp_tso_autosize``; one below 1.2 Mbit/s, ``bbr_min_tso_segs``), the last what is left."""
    per_ms = pacing_bps / 8.0 / 2**PACING_SHIFT
    if not math.isfinite(per_ms) or per_ms >= payload_bytes:  # the whole message in one burst
        return (payload_bytes,)
    segs = 1 if pacing_bps < BBR_MIN_TSO_RATE_BPS else max(2, int(per_ms) // mss_bytes)
    burst = float(segs * mss_bytes)
    full = max(0, math.ceil(payload_bytes / burst) - 1)
    return (burst,) * full + (payload_bytes - full * burst,)


def paced_release_ms(bursts: Sequence[float], pacing_bps: float) -> float:
    """When the last burst leaves after a gap: the first is charged half its length at the pacing
    rate (``tcp_update_skb_after_send`` credits the idle time), each later one in full."""
    if len(bursts) < 2:
        return 0.0
    return (bursts[0] / 2.0 + sum(bursts[1:-1])) * 8.0 / pacing_bps * 1e3


def bbr_sparse_extra_ms(
    rtt_ms: float,
    payload_bytes: float,
    bw_bps: float,
    *,
    init_cwnd_segments: int = INIT_CWND_SEGMENTS,
    mss_bytes: int = MSS_BYTES,
) -> float:
    """What BBR's pacing adds to ``transfer_ms`` for one sparse message (module docstring): its
    last burst leaves at ``paced_release_ms`` and then crosses the bottleneck, against the whole
    message's ``bytes·8/bw``; 0 when the pacing outruns the bottleneck."""
    if payload_bytes <= 0 or rtt_ms <= 0:
        return 0.0
    pacing = bbr_sparse_pacing_bps(
        rtt_ms, payload_bytes, init_cwnd_segments=init_cwnd_segments, mss_bytes=mss_bytes
    )
    bursts = pacing_bursts(payload_bytes, pacing, mss_bytes=mss_bytes)
    arrives = paced_release_ms(bursts, pacing) + serialisation_ms(bursts[-1], bw_bps)
    return max(0.0, arrives - serialisation_ms(payload_bytes, bw_bps))


LINUX_RTO_MIN_MS = 200.0  # TCP_RTO_MIN: Linux's floor on the RTT variance term of the RTO


def linux_rto_ms(rtt_ms: float) -> float:
    """The retransmission timeout Linux settles on over a steady path: ``srtt + rttvar`` with the
    variance term at its 200 ms floor."""
    return rtt_ms + LINUX_RTO_MIN_MS


def window_after_idle(
    cwnd_segments: int,
    idle_ms: float,
    rto_ms: float,
    *,
    init_cwnd_segments: int = INIT_CWND_SEGMENTS,
) -> int:
    """The window a connection resumes with after ``idle_ms`` without sending (Linux's
    ``tcp_cwnd_restart``): halved for every RTO the gap outlasted (once past one RTO, twice past
    two, …), never below ``min(IW, cwnd)``. So a window of ``w`` segments is back at the initial
    one only after a gap longer than ``⌈log2(w / IW)⌉`` RTOs; a shorter gap leaves it larger."""
    restart = min(init_cwnd_segments, cwnd_segments)
    cwnd, left = cwnd_segments, idle_ms
    while (left := left - rto_ms) > 0 and cwnd > restart:
        cwnd //= 2
    return max(cwnd, restart)


def slow_start_transfer_ms(
    rtt_ms: float,
    payload_bytes: float,
    bw_bps: float,
    *,
    init_cwnd_segments: int = INIT_CWND_SEGMENTS,
    mss_bytes: int = MSS_BYTES,
    per_message_ms: float = 0.0,
) -> float:
    """One transfer over a connection back from idle: ``transfer_ms`` plus slow start's stalls."""
    stalls = slow_start_stall_ms(
        rtt_ms, payload_bytes, bw_bps, init_cwnd_segments=init_cwnd_segments, mss_bytes=mss_bytes
    )
    return transfer_ms(rtt_ms, payload_bytes, bw_bps, per_message_ms=per_message_ms) + stalls


def kv_cache_bytes(
    layers: int, kv_heads: int, head_dim: int, seq: int, batch: int, bytes_per_element: float
) -> float:
    """A KV cache for ``seq`` tokens: keys and values of every layer, ``2·L·H_kv·d_head·S·B·d``
    (grouped-query attention keeps only ``H_kv`` heads of keys and values)."""
    return 2.0 * layers * kv_heads * head_dim * seq * batch * bytes_per_element


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
