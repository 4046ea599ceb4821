"""Machine-readable views (``--json``): one use case's typed answer → one JSON document.

Each document starts with ``"schema": "probe.NAME/1"`` and is described by the JSON Schema
``probe/schemas/NAME-1.json``; within a major version keys are only ever added. Units sit in the
key names (``_ms``, ``_mbps``, ``_bytes``, ``_pct``, ``_s``); a figure the run does not have is
``null``, never NaN or infinity; keys come in the order written here, so two runs diff line by
line. The builders are pure (no files, no click): the commands print ``dumps(document)``.
They sit beside the text views of the CLI because ``probe check``'s answer belongs to the
measurement and the others to the decisions and the report, which must not import each other.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from probe.decide.calc import Calculation
    from probe.decide.gate import GateReport
    from probe.decide.groups import Grouping
    from probe.decide.options import Limits
    from probe.decide.rehearse import Figure
    from probe.decide.scenarios import (
        Calibrated,
        Estimate,
        Hop,
        PipelineResult,
        PoolResult,
        SpecResult,
        Tail,
        TpResult,
    )
    from probe.decide.sweep import SweepResult
    from probe.matrix.regions import RegionFigure
    from probe.matrix.unmeasured import Unmeasured
    from probe.measure.check import HostCheck
    from probe.measure.rehearsal import Rehearsal
    from probe.report.diff import Change, DiffResult, PairDiff

Doc = dict[str, object]
#: diff's metric kinds → the document's keys (part of probe.diff/1, not the matrix's columns)
_DIFF_KEYS = {"rtt_p50": "rtt_p50_ms", "rtt_p99": "rtt_p99_ms", "loss": "loss_pct", "bw": "bw_mbps"}


def schema_id(name: str) -> str:
    return f"probe.{name}/1"


def dumps(doc: Doc) -> str:
    """The document as printed: indented, UTF-8 as is; a NaN that slipped through is a bug."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)


def _num(x: float | None) -> float | None:
    """A figure, or None for what was not measured (NaN, an infinite goodput, None)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _stored(value: object) -> float | bool | None:
    """A matrix cell as stored: a flag stays a flag, a number a number, NA and NaN null."""
    value = value.item() if hasattr(value, "item") else value  # a numpy scalar: Python's
    if isinstance(value, bool):
        return value
    return _num(float(value)) if isinstance(value, float | int) else None


def _mbps(bps: float | None) -> float | None:
    return None if bps is None else _num(bps / 1e6)


# --------------------------------------------------------------------------- calc


def _estimate(e: Estimate) -> Doc:
    return {
        "network_p50_ms": _num(e.network_p50_ms),
        "network_p99_ms": _num(e.network_p99_ms),
        "full_p50_ms": _num(e.full_p50_ms),
        "full_p99_ms": _num(e.full_p99_ms),
        "lower_bound": e.lower_bound,
        "caveats": list(e.caveats),
    }


def _hop(h: Hop) -> Doc:
    return {
        "src": h.src,
        "dst": h.dst,
        "rtt_p50_ms": _num(h.rtt_p50_ms),
        "rtt_p99_ms": _num(h.rtt_p99_ms),
        "goodput_mbps": _mbps(h.bw_bps),
        "samples": len(h.samples_ms or ()),
        "caveat": h.bw_caveat,
    }


def _tail(t: Tail | None) -> Doc | None:
    if t is None:
        return None
    return {
        "trials": t.trials,
        "p50_ms": _num(t.p50_ms),
        "p90_ms": _num(t.p90_ms),
        "p99_ms": _num(t.p99_ms),
        "max_ms": _num(t.max_ms),
    }


def _pipeline(res: PipelineResult | None, step: str, total: str) -> Doc | None:
    if res is None:
        return None
    return {
        "path": list(res.path),
        "payload_bytes": _num(res.payload_bytes),
        "hops": [_hop(h) for h in res.hops],
        step: _estimate(res.per_step),
        total: _estimate(res.total),
        "monte_carlo": _tail(res.tail),
        "corrections": [
            {"name": c.name, "p50_ms": _num(c.p50_ms), "p99_ms": _num(c.p99_ms)}
            for c in res.corrections
        ],
    }


def _tp(tp: TpResult | None) -> Doc | None:
    if tp is None:
        return None
    return {
        "hosts": list(tp.hosts),
        "worst_rtt_p50_ms": _num(tp.worst_hop.rtt_p50_ms),
        "worst_rtt_p99_ms": _num(tp.worst_hop.rtt_p99_ms),
        "worst_goodput_mbps": _mbps(tp.worst_hop.bw_bps),
        "decode_payload_bytes": _num(tp.decode_payload_bytes),
        "prefill_payload_bytes": _num(tp.prefill_payload_bytes),
        "per_token": _estimate(tp.decode_token),
        "all_tokens": _estimate(tp.decode_total),
        # None with --allreduce measured:TIME (the time given is the decode payload's only)
        "prefill_per_request": None
        if tp.prefill_request is None
        else _estimate(tp.prefill_request),
        "allreduce": {
            "algorithm": tp.allreduce.algorithm,
            "measured_ms": _num(tp.allreduce.measured_ms),
        },
    }


def _spec(spec: SpecResult | None, skipped: Sequence[str]) -> Doc | None:
    if spec is None:
        return None
    return {
        "accepted_per_block": spec.accepted_per_block,
        "block_ms": _num(spec.block_ms),
        "ar_tokens_per_s": _num(spec.ar_tokens_per_s),
        "breakeven_rtt_ms": _num(spec.breakeven_rtt_ms),
        "pairs": [
            {
                "proposer": r.proposer,
                "verifier": r.verifier,
                "rtt_p50_ms": _num(r.rtt_p50_ms),
                "rtt_p99_ms": _num(r.rtt_p99_ms),
                "tokens_per_s_p50": _num(r.tokens_per_s_p50),
                "tokens_per_s_p99": _num(r.tokens_per_s_p99),
                "speedup_p50": _num(r.speedup_p50),
                "speedup_p99": _num(r.speedup_p99),
                "pays_at_p99": r.rtt_p99_ms < spec.breakeven_rtt_ms,
            }
            for r in spec.rows
        ],
        "skipped": list(skipped),
        "calibration": _calibration(spec.calibration),
    }


def _calibration(cal: Calibrated | None) -> Doc | None:
    if cal is None:
        return None
    r, pair = cal.rates, cal.remote_pair
    return {
        "ar_tokens_per_s": r.ar_tokens_per_s,
        "local_tokens_per_s": r.local_tokens_per_s,
        "remote_tokens_per_s": r.remote_tokens_per_s,
        "remote_rtt_ms": _num(cal.remote_rtt_ms),
        "remote_pair": None if pair is None else {"proposer": pair[0], "verifier": pair[1]},
        "notes": list(cal.notes),
    }


def _pool(pool: PoolResult | None) -> Doc | None:
    if pool is None:
        return None
    return {
        "dispatcher": pool.hosts[0].host,
        "requests": pool.requests,
        "payload_bytes": _num(pool.payload_bytes),
        "hosts": [
            {
                "host": m.host,
                "rtt_p50_ms": _num(m.rtt_p50_ms),
                "rtt_p99_ms": _num(m.rtt_p99_ms),
                "goodput_mbps": _mbps(m.bw_bps),
                "service_ms": _num(m.service_ms),
                "requests_even": int(even),
                "requests_aware": int(aware),
            }
            for m, even, aware in zip(pool.hosts, pool.even_counts, pool.aware_counts, strict=True)
        ],
        "alone": _estimate(pool.alone),
        "even": {
            **_estimate(pool.even),
            "overhead_p50": _num(pool.overhead("even", "p50")),
            "overhead_p99": _num(pool.overhead("even", "p99")),
        },
        "aware": {
            **_estimate(pool.aware),
            "overhead_p50": _num(pool.overhead("aware", "p50")),
            "overhead_p99": _num(pool.overhead("aware", "p99")),
        },
    }


def _sweep(res: SweepResult, png: str) -> Doc:
    rtt = res.sweep.variable == "rtt"
    return {
        "variable": res.sweep.variable,
        "rtt_ms" if rtt else "goodput_mbps": [_num(x) for x in res.x],
        "series": [
            {
                "figure": s.label,
                "unit": s.unit,
                "values": [_num(v) for v in s.values],
                "lower_bound": s.lower_bound,
            }
            for s in res.series
        ],
        "png": png,
    }


def calc_document(res: Calculation, sweep: SweepResult | None = None, png: str = "") -> Doc:
    """``probe calc --json``: the workload, the stage path, then one object per scenario
    (null when it was not asked for or has fewer than two stages); then how the hosts were
    chosen and, with ``--sweep``, the swept figures and where their curve was written."""
    w, shape = res.workload, res.workload.model
    return {
        "schema": schema_id("calc"),
        "run_id": res.run_id,
        "hosts_in_run": res.hosts,
        "model": {
            "name": shape.name,
            "hidden_size": shape.hidden_size,
            "num_hidden_layers": shape.num_hidden_layers,
            "note": shape.note,
        },
        "workload": {
            "dtype": w.dtype,
            "tokens": w.tokens,
            "batch": w.batch,
            "seq": w.seq,
            "ring": w.ring,
            "decode_compute_ms_per_stage": w.decode_compute_ms_per_stage,
            "prefill_compute_ms_per_stage": w.prefill_compute_ms_per_stage,
            "tp_compute_ms_per_token": w.tp_compute_ms_per_token,
            "prefill_after_idle": w.transport.after_idle,
            "decode_sparse_pacing": w.transport.sparse_pacing,
            "per_message_ms": w.transport.per_message_ms,
        },
        "path": list(res.path),
        "auto_placed": res.auto_placed,
        "decode": _pipeline(res.decode, "per_token", "all_tokens"),
        "prefill": _pipeline(res.prefill, "per_hop", "per_request"),
        "tp": _tp(res.tp),
        "spec": _spec(res.spec, res.spec_skipped),
        "pool": _pool(res.pool),
        "placed_on_rtt_only": res.rtt_only,
        "chosen": list(res.choices),
        "sweep": None if sweep is None else _sweep(sweep, png),
    }


# --------------------------------------------------------------------------- groups, gate


def groups_document(run_id: str, limits: Limits, stages: int, found: Grouping) -> Doc:
    """``probe groups --json``: the limits, then every group with its members (largest first)."""
    w = found.workload
    return {
        "schema": schema_id("groups"),
        "run_id": run_id,
        "limits": {
            "max_rtt_ms": found.limits.max_rtt_ms,  # as applied (a floor without goodput drops)
            "min_goodput_mbps": _mbps(found.limits.min_bw_bps),
            "rtt_stat": found.limits.rtt_stat,
        },
        "stages": stages,
        "model": w.model.name,
        "dtype": w.dtype,
        "groups": [
            {
                "members": list(g.members),
                "regions": list(g.regions),
                "max_rtt_ms": _num(g.max_rtt_ms),
                "min_goodput_mbps": _mbps(g.min_bw_bps),
                "stage_order": list(g.order),
                "decode_per_token": _estimate(g.decode.per_step) if g.decode else None,
                "prefill_per_request": _estimate(g.prefill.total) if g.prefill else None,
                "latency_only": g.latency_only,
                "exact": g.exact,
                "size_bound": g.size_bound,
            }
            for g in found.groups
        ],
        "notes": list(found.notes),
    }


def gate_document(report: GateReport, policy_name: str) -> Doc:
    """``probe gate --json``: the verdict with its exit code, then one object per check. A
    check's figure is ``value`` against ``limit`` in ``unit``, which differs from check to check
    (ms, %, ×, regions); null when the check could not compute it."""
    return {
        "schema": schema_id("gate"),
        "run_id": report.run_id,
        "policy": {"name": policy_name, "source": report.policy},
        "verdict": report.verdict.value,
        "exit_code": report.exit_code,
        "checks": [
            {
                "name": r.name,
                "kind": r.kind,
                "verdict": r.verdict.value,
                "value": _num(r.value),
                "limit": _num(r.limit),
                "unit": r.unit or None,
                "reason": r.reason,
            }
            for r in report.results
        ],
    }


# --------------------------------------------------------------------------- diff


def _change(c: Change) -> Doc:
    return {
        "before": _num(c.before),
        "after": _num(c.after),
        "delta": _num(c.delta),
        "regressed": c.regressed,
        "improved": c.improved,
        "within_noise": c.within_noise,
    }


def _pair_diff(d: PairDiff) -> Doc:
    return {
        "src": d.src,
        "dst": d.dst,
        "status": {"before": d.status[0], "after": d.status[1]},
        "bw_status": {"before": d.bw_status[0], "after": d.bw_status[1]},
        **{_DIFF_KEYS[c.kind]: _change(c) for c in d.changes},
        "regressions": sorted(d.regressions),
        "improvements": sorted(d.improvements),
        "cc_change": d.cc_change,
        "within_noise": sorted(d.noise),
    }


def diff_document(result: DiffResult, fail_on: Collection[str], before: str, after: str) -> Doc:
    """``probe diff --json``: the two run directories, the verdict, the thresholds, and — as in
    the text — the pairs and region pairs that moved past a threshold (a regression, an
    improvement, or a change within noise: past it, but inside the 95 % intervals) or changed
    congestion control."""
    from probe.decide.regression import KINDS

    def moved(diffs: Sequence[PairDiff]) -> list[Doc]:
        return [
            _pair_diff(d)
            for d in diffs
            if d.regressions or d.improvements or d.cc_change or d.noise
        ]

    failed = result.failed(fail_on)
    return {
        "schema": schema_id("diff"),
        "runs": {"before": before, "after": after},
        "verdict": "REGRESSED" if failed else "OK",
        "fail_on": [k for k in KINDS if k in fail_on],
        "thresholds": dataclasses.asdict(result.thresholds),
        "pairs_compared": len(result.pairs),
        "pairs_regressed": len(result.regressed_pairs),
        "pairs_within_noise": sum(1 for d in result.pairs if d.noise),
        "appeared": [{"src": s, "dst": d} for s, d in result.appeared],
        "vanished": [{"src": s, "dst": d} for s, d in result.vanished],
        "pairs": moved(result.pairs),
        "regions": moved(result.regions),
    }


# --------------------------------------------------------------------------- show


def _show_head(run_id: str, by: str, metric: str, missing: Unmeasured, notice: str | None) -> Doc:
    return {
        "schema": schema_id("show"),
        "run_id": run_id,
        "by": by,
        "metric": metric,
        "complete": not missing.incomplete,
        "notice": notice,
    }


def show_hosts_document(
    run_id: str,
    metric: str,
    values: pd.DataFrame,
    statuses: pd.DataFrame,
    missing: Unmeasured,
    notice: str | None,
    confidence: Mapping[str, pd.DataFrame] | None = None,
) -> Doc:
    """``probe show --json``: one cell per ordered pair of the grid (``matrix.wide`` and
    ``matrix.status_grid`` in host order), the figure under the metric's own name, then its
    95 % bounds and few-samples flag when the metric has them (``matrix.confidence_grids``;
    a bound is null when unbounded: too few samples for it to exist)."""
    hosts = [str(h) for h in values.index]
    cells: list[Doc] = []
    for src in hosts:
        for dst in hosts:
            if src != dst:
                status, value = statuses.at[src, dst], values.at[src, dst]
                cells.append(
                    {
                        "src": src,
                        "dst": dst,
                        "status": status if isinstance(status, str) else None,
                        metric: _num(value) if isinstance(value, float | int) else None,
                        **{c: _stored(g.at[src, dst]) for c, g in (confidence or {}).items()},
                    }
                )
    return {**_show_head(run_id, "host", metric, missing, notice), "hosts": hosts, "cells": cells}


def show_regions_document(
    run_id: str,
    metric: str,
    definition: str,
    rows: Sequence[RegionFigure],
    left_out: Mapping[str, Mapping[tuple[str, str], int]],
    missing: Unmeasured,
    notice: str | None,
) -> Doc:
    """``probe show --by region --json``: the region roll-up (``matrix.regions``), each figure
    with the pairs it rests on and those left out on purpose (``matrix.left_out_by_region``)."""
    unplanned = left_out.get("not planned", {})
    unmeasurable = left_out.get("not measurable", {})
    return {
        **_show_head(run_id, "region", metric, missing, notice),
        "definition": definition,
        "regions": [
            {
                "src_region": f.src_region,
                "dst_region": f.dst_region,
                metric: _num(f.value),
                "pairs": f.pairs,
                "pairs_measured": f.measured,
                "pairs_not_planned": unplanned.get((f.src_region, f.dst_region), 0),
                "pairs_not_measurable": unmeasurable.get((f.src_region, f.dst_region), 0),
            }
            for f in rows
        ],
    }


# --------------------------------------------------------------------------- check


def check_document(checks: Sequence[HostCheck]) -> Doc:
    """``probe check --json``: one object per measured host and relay, in inventory order."""
    from probe.measure.check import account_findings

    return {
        "schema": schema_id("check"),
        "ready": all(c.ready for c in checks),
        "hosts": [
            {
                "host": c.host,
                "region": c.region,
                "relay": c.relay,
                "status": c.status.value,
                "ready": c.ready,
                "reason": c.reason,
                "connect_s": _num(c.connect_s),
                "command_s": _num(c.command_s),
                "ping": c.ping,
                "ping_flavor": c.ping_flavor,
                "fping": c.fping,
                "iperf3": c.iperf3,
                "iperf3_auth": c.iperf3_auth or None,
                "hung": list(c.hung),
                "icmp_denied": dict(c.icmp_denied),
                "ping_group_range": c.ping_group_range,
                "groups": c.groups,
                "findings": list(account_findings(c)) if c.usable else [],
            }
            for c in checks
        ],
    }


# --------------------------------------------------------------------------- rehearse


def _figure_unit(unit: str) -> str:
    return "ms" if unit == "ms" else "tokens_per_s"


def rehearse_document(
    r: Rehearsal, figures: Sequence[Figure], run_id: str | None, timings: str
) -> Doc:
    """``probe rehearse``: each host's outcome, and each measured figure beside calc's
    prediction (null without a run) and the corrected formula's, errors in %."""
    t = r.traffic
    return {
        "schema": schema_id("rehearse"),
        "rehearsal_id": r.rehearsal_id,
        "pattern": t.pattern,
        "path": list(t.hosts),
        "run_id": run_id,
        "rounds": t.rounds,
        "send_bytes": list(t.send_bytes),
        "ok": r.ok,
        "elapsed_s": _num(r.elapsed_s),
        "hosts": [
            {
                "host": h.host,
                "status": h.status.value,
                "reason": h.reason,
                "address": h.address,
                "port": h.port,
            }
            for h in r.hosts
        ],
        "figures": [
            {
                "name": x.name,
                "unit": x.unit,
                "samples": x.samples,
                f"measured_p50_{_figure_unit(x.unit)}": _num(x.measured_p50),
                f"measured_p99_{_figure_unit(x.unit)}": _num(x.measured_p99),
                f"predicted_p50_{_figure_unit(x.unit)}": _num(x.predicted_p50),
                f"predicted_p99_{_figure_unit(x.unit)}": _num(x.predicted_p99),
                f"corrected_p50_{_figure_unit(x.unit)}": _num(x.corrected_p50),
                "error_p50_pct": _num(x.error_p50_pct),
                "error_p99_pct": _num(x.error_p99_pct),
                "corrected_error_p50_pct": _num(x.corrected_error_p50_pct),
                "lower_bound": x.lower_bound,
            }
            for x in figures
        ],
        "timings": timings,
    }
