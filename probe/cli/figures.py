"""Terminal views of the calculator's answers (tabulate): ``calc``, ``groups`` and ``gate``.

Each ``render_*`` takes a use case's typed answer and returns the text the command prints.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from tabulate import tabulate

if TYPE_CHECKING:
    from probe.decide.calc import Calculation
    from probe.decide.gate import GateReport
    from probe.decide.groups import Grouping
    from probe.decide.scenarios import (
        Calibrated,
        Estimate,
        Hop,
        PipelineResult,
        PoolResult,
        SpecResult,
        Tail,
        TpResult,
        Workload,
    )
    from probe.decide.sweep import SweepResult

_EST_HEAD = [
    "figure",
    "network p50 ms",
    "network p99 ms",
    "full p50 ms",
    "full p99 ms",
    "MC p50 ms",
    "MC p99 ms",
]


def _decimals(x: float, digits: int) -> int:
    """At least ``digits`` decimals, more for a small figure to keep 3 significant digits."""
    if x == 0 or not math.isfinite(x):
        return digits
    return max(digits, 2 - math.floor(math.log10(abs(x))))


def num(x: float, digits: int = 2) -> str:
    """A figure as printed: ``digits`` decimals, 3 significant digits when small (0.1365 →
    0.137, not 0.14), thousands separated."""
    return f"{x:,.{_decimals(x, digits)}f}"


def _fmt(x: float | None, digits: int = 2) -> float | None:
    """A cell value rounded to what ``num`` prints; ``_table`` renders None as a dash."""
    return None if x is None else round(x, _decimals(x, digits))


def _cell(v: object) -> object:
    if isinstance(v, float):
        return num(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return v


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """Floats through ``num``, ints thousands separated; number columns right-aligned."""
    numeric = [
        all(
            isinstance(r[i], int | float) and not isinstance(r[i], bool)
            for r in rows
            if r[i] is not None
        )
        for i in range(len(headers))
    ]
    return tabulate(
        [[_cell(v) for v in r] for r in rows],
        list(headers),
        missingval="–",
        disable_numparse=True,
        colalign=["right" if n else "left" for n in numeric],
    )


def _bytes(b: float) -> str:
    return f"{b:,.0f} B ({b / 2**20:.4g} MiB)"


def _estimate_row(label: str, e: Estimate, tail: Tail | None = None) -> list[object]:
    flag = " (lower bound)" if e.lower_bound else ""
    return [
        label + flag,
        _fmt(e.network_p50_ms),
        _fmt(e.network_p99_ms),
        _fmt(e.full_p50_ms),
        _fmt(e.full_p99_ms),
        _fmt(tail.p50_ms if tail else None),
        _fmt(tail.p99_ms if tail else None),
    ]


LOWER_BOUND = "lower bound: transfer time unknown (bandwidth not measured)"


def _caveats(*estimates: Estimate) -> list[str]:
    """One line per caveat of the figures above it, once each: what they rest on and cannot
    show (a stalled bandwidth test under a lower bound, or no goodput at all)."""
    lines = [f"caveat: {c}" for c in dict.fromkeys(c for e in estimates for c in e.caveats)]
    if not lines and any(e.lower_bound for e in estimates):
        lines.append(LOWER_BOUND)
    return lines


def _hop_table(hops: Sequence[Hop]) -> str:
    rows = [
        [
            f"{h.src}→{h.dst}",
            _fmt(h.rtt_p50_ms),
            _fmt(h.rtt_p99_ms),
            _fmt(h.bw_bps / 1e6 if h.bw_bps else None, 1),
            len(h.samples_ms) if h.samples_ms else 0,
        ]
        for h in hops
    ]
    return _table(rows, ["hop", "RTT p50 ms", "RTT p99 ms", "goodput Mbit/s", "samples"])


def _pipeline(title: str, res: PipelineResult, step: str, total: str, corrected: str) -> list[str]:
    """``corrected``: the row the corrections are counted in (``step`` or ``total``)."""
    rows = [_estimate_row(step, res.per_step), _estimate_row(total, res.total, res.tail)]
    return [
        f"\n== {title}: {' → '.join(res.path)}; payload {_bytes(res.payload_bytes)} per hop",
        _hop_table(res.hops),
        _table(rows, _EST_HEAD),
        *(
            f"{c.name}: +{num(c.p50_ms)} ms {corrected} at RTT p50, +{num(c.p99_ms)} at p99 "
            "(included above)"
            for c in res.corrections
        ),
        *_caveats(res.per_step, res.total),
    ]


def render_calculation(res: Calculation) -> str:
    """Everything ``probe calc`` prints: a header, then one section per scenario."""
    w = res.workload
    shape = w.model
    stages = (
        f", {'ring' if w.ring else 'open chain'}, {len(res.path)} stages"
        f"{' (auto placement)' if res.auto_placed else ''}"
        if res.path
        else ""
    )
    lines = [
        f"run {res.run_id}: {res.hosts} hosts; model {shape.name} "
        f"(hidden {shape.hidden_size}, {shape.num_hidden_layers} layers), {w.dtype}{stages}",
        *(f"chosen: {c}" for c in res.choices),
    ]
    if res.rtt_only:
        lines.append(
            "placed on RTT alone: no hosts enough are joined by hops with measured goodput; "
            "figures with a transfer time are lower bounds (marked)"
        )
    if shape.note:
        lines.append(f"note: {shape.note}")
    if res.decode:
        lines += _pipeline("decode", res.decode, "per token", f"{w.tokens} tokens", "per token")
    if res.prefill:
        title = f"prefill B={w.batch} S={w.seq}"
        lines += _pipeline(title, res.prefill, "per hop", "per request", "per request")
    if res.tp:
        lines += _tensor_parallel(res.tp, w, len(res.path))
    if res.spec:
        lines += _speculative(res.spec, res.spec_skipped)
    if res.pool:
        lines += _pool(res.pool)
    return "\n".join(lines)


def _tensor_parallel(tp: TpResult, w: Workload, hosts: int) -> list[str]:
    layers = w.model.num_hidden_layers
    rows = [
        _estimate_row(
            f"decode per token (2×{layers} all-reduces of {tp.decode_payload_bytes:,.0f} B)",
            tp.decode_token,
        ),
        _estimate_row(f"decode {w.tokens} tokens", tp.decode_total),
    ]
    estimates = [tp.decode_token, tp.decode_total]
    if tp.prefill_request is not None:
        label = f"prefill per request ({_bytes(tp.prefill_payload_bytes)})"
        rows.append(_estimate_row(label, tp.prefill_request))
        estimates.append(tp.prefill_request)
    bw = tp.worst_hop.bw_bps
    return [
        f"\n== tensor parallel over {hosts} hosts (ring {' → '.join(tp.hosts)}), "
        f"{tp.allreduce} all-reduce; worst link RTT p50 {num(tp.worst_hop.rtt_p50_ms)} ms, "
        f"goodput {f'{num(bw / 1e6)} Mbit/s' if bw else 'not measured'}",
        _table(rows, _EST_HEAD),
        *_caveats(*estimates),
        *(
            ["prefill: not estimated (the measured all-reduce time is the decode payload's)"]
            if tp.prefill_request is None
            else []
        ),
    ]


def _speculative(res: SpecResult, skipped: Sequence[str]) -> list[str]:
    rows = [
        [
            f"{r.proposer}→{r.verifier}",
            _fmt(r.rtt_p50_ms),
            _fmt(r.rtt_p99_ms),
            _fmt(r.tokens_per_s_p50, 1),
            _fmt(r.tokens_per_s_p99, 1),
            f"{num(r.speedup_p50)}×",
            f"{num(r.speedup_p99)}×",
            "yes" if r.rtt_p99_ms < res.breakeven_rtt_ms else "no",
        ]
        for r in res.rows
    ]
    head = [
        "proposer→verifier",
        "RTT p50 ms",
        "RTT p99 ms",
        "tok/s p50",
        "tok/s p99",
        "speed-up p50",
        "speed-up p99",
        "pays at p99",
    ]
    return [
        f"\n== speculative decoding: E={res.accepted_per_block:.4g} tokens/block, "
        f"block {res.block_ms:.4g} ms, AR {res.ar_tokens_per_s:g} tok/s; "
        f"break-even RTT {num(res.breakeven_rtt_ms, 1)} ms",
        *_calibration(res.calibration),
        _table(rows, head),
        *(f"skipped: {s}" for s in skipped),
    ]


def _calibration(cal: Calibrated | None) -> list[str]:
    """Where E and the block time came from, when they were solved from measured rates."""
    if cal is None:
        return []
    r = cal.rates
    where = f" ({'→'.join(cal.remote_pair)} RTT p50 in the run)" if cal.remote_pair else ""
    return [
        f"calibrated from measured rates: co-located {r.local_tokens_per_s:g} tok/s, "
        f"{r.remote_tokens_per_s:g} tok/s at RTT {num(cal.remote_rtt_ms)} ms{where}",
        *(f"note: {n}" for n in cal.notes),
    ]


def _pool(res: PoolResult) -> list[str]:
    members = [
        [m.host, _fmt(m.rtt_p50_ms), _fmt(m.service_ms, 1), n_even, n_aware]
        for m, n_even, n_aware in zip(res.hosts, res.even_counts, res.aware_counts, strict=True)
    ]
    rows = [[*_estimate_row("fastest host alone", res.alone)[:5], "1.00", "1.00"]]
    splits: tuple[tuple[str, Estimate, Literal["even", "aware"]], ...] = (
        ("even split", res.even, "even"),
        ("capability-aware", res.aware, "aware"),
    )
    for label, est, split in splits:
        ratios = [num(res.overhead(split, at)) for at in ("p50", "p99")]
        rows.append([*_estimate_row(label, est)[:5], *ratios])
    return [
        f"\n== pool: {res.requests} requests from {res.hosts[0].host} over {len(res.hosts)} "
        f"hosts, payload {_bytes(res.payload_bytes)} each, served serially per host",
        _table(members, ["host", "RTT p50 ms", "service ms", "even split", "capability-aware"]),
        _table(rows, [*_EST_HEAD[:5], "overhead p50", "overhead p99"]),
        *_caveats(res.alone, res.even, res.aware),
    ]


def _at_least(x: float | None, lower_bound: bool) -> float | str | None:
    """A figure cell, written ``≥ x`` when it is a lower bound."""
    return f"≥ {x:,.2f}" if lower_bound and x is not None else _fmt(x)


def render_groups(run_id: str, stages: int, found: Grouping) -> str:
    """``probe groups``: the limits in one line, notes, one row per group, then every group's
    members in full (wrapped, never cut)."""
    rows = []
    members = []
    for i, g in enumerate(found.groups, 1):
        order = " → ".join(g.order) if len(g.order) <= 6 else f"{g.order[0]} → … ({len(g.order)})"
        lb = g.latency_only
        rows.append(
            [
                i,
                len(g.members),
                "exact" if g.exact else f"greedy ≤ {g.size_bound}",
                ",".join(g.regions),
                _fmt(g.max_rtt_ms),
                "not measured" if lb else _fmt(g.min_bw_bps / 1e6 if g.min_bw_bps else None, 0),
                order or "(too small)",
                _at_least(g.decode.per_step.full_p50_ms if g.decode else None, lb),
                _at_least(g.decode.per_step.full_p99_ms if g.decode else None, lb),
                _at_least(g.prefill.total.full_p50_ms if g.prefill else None, lb),
            ]
        )
        members.append(
            textwrap.fill(
                ", ".join(g.members),
                100,
                initial_indent=f"{i:>3}  ",
                subsequent_indent="     ",
                break_long_words=False,  # a host name is never split
                break_on_hyphens=False,
            )
        )
    limits = found.limits
    min_bw = limits.min_bw_bps
    bw_text = "any goodput" if min_bw is None else f"goodput ≥ {min_bw / 1e6:g} Mbit/s"
    w = found.workload
    head = [
        "#",
        "hosts",
        "search",
        "regions",
        f"max RTT {limits.rtt_stat} ms",
        "min Mbit/s",
        "stage order",
        "decode ms/token p50",
        "p99",
        "prefill ms/request p50",
    ]
    notes = list(found.notes)
    if not all(g.exact for g in found.groups):
        notes.append(
            "greedy ≤ N: too many hosts for the exact search; no group among the hosts left "
            "could have more than N (colouring bound)"
        )
    notes = [
        textwrap.fill(n, 100, initial_indent="note: ", subsequent_indent="      ") for n in notes
    ]
    return "\n".join(
        [
            f"run {run_id}: {len(found.groups)} group(s) with RTT {limits.rtt_stat} ≤ "
            f"{limits.max_rtt_ms:g} ms and {bw_text} both ways; {stages} stages of "
            f"{w.model.name} {w.dtype}",
            *notes,
            _table(rows, head),
            "members:",
            *members,
        ]
    )


def render_gate(report: GateReport, policy_name: str) -> str:
    """``probe gate``: one row per check, then the verdict."""
    rows = [
        [r.name, r.verdict.value, _fmt(r.value), r.limit, r.unit, r.reason] for r in report.results
    ]
    table = _table(rows, ["check", "verdict", "value", "limit", "unit", "reason"])
    return f"{table}\ngate: {report.verdict.value} ({policy_name})"


def render_sweep(res: SweepResult) -> str:
    """``probe calc --sweep``: one row per point, one column per scenario's figure."""
    head = [res.x_label, *(f"{s.label} {s.unit}" for s in res.series)]
    rows = [[x, *(s.values[i] for s in res.series)] for i, x in enumerate(res.x)]
    bounds = [s.label for s in res.series if s.lower_bound]
    what = "RTT (p50 and p99)" if res.sweep.variable == "rtt" else "goodput"
    lines = [
        f"\n== sweep: every hop's {what} set to each value in turn, compute included, "
        "on the hosts above",
        _table(rows, head),
    ]
    if bounds:
        lines.append(f"{', '.join(bounds)}: {LOWER_BOUND}")
    return "\n".join(lines)
