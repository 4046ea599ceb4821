"""``probe gate``: a policy YAML turned into PASS / FAIL / INCONCLUSIVE verdicts over one run.

A check is INCONCLUSIVE — never PASS — when it needs data the run does not have: a cell that
failed, a region pair with too few ok pairs, a cross-region check on a run that measured fewer
than two regions, a Monte-Carlo tail without raw samples, or a figure that is only a lower bound
(unmeasured or stalled goodput) and still within budget. A lower bound already over budget is a
FAIL. A verdict resting on a stalled bandwidth test names it in its reason. ``not-planned`` and
``not-measurable`` cells are excluded, never failed: checks decide on the other pairs, and coverage
says how many it left out.

Overall: any FAIL → FAIL (exit 1); else any INCONCLUSIVE → INCONCLUSIVE (exit 3); else PASS (0).
Policies are read by :mod:`probe.decide.policy`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from probe.decide import formulas as f
from probe.decide.policy import (
    Check,
    CoverageCheck,
    LatencyCheck,
    LossCheck,
    Policy,
    PoolCheck,
    SpecCheck,
)
from probe.decide.scenarios import (
    Estimate,
    Hop,
    Links,
    UnmeasuredHop,
    calibrate,
    decode,
    place,
    pool,
    pool_hosts,
    prefill,
    region_hop,
    tensor_parallel,
)
from probe.errors import InputError
from probe.matrix.anchors import Anchors
from probe.model import CellStatus


class Verdict(StrEnum):
    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


EXIT_CODES = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 3}


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    kind: str
    verdict: Verdict
    value: float | None  # the figure compared with ``limit``, in ``unit``
    limit: float | None
    unit: str
    reason: str


@dataclass(frozen=True, slots=True)
class GateReport:
    policy: str
    run_id: str
    results: tuple[CheckResult, ...]

    @property
    def verdict(self) -> Verdict:
        seen = {r.verdict for r in self.results}
        for v in (Verdict.FAIL, Verdict.INCONCLUSIVE):
            if v in seen:
                return v
        return Verdict.PASS

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


class _Inconclusive(Exception):
    """Raised inside one check's evaluation; becomes that check's INCONCLUSIVE verdict."""


#: Cells the run never meant to measure: left out by a sampled plan, or that no run can measure
#: as the inventory declares the hosts (no shared network, neither end accepts the test).
EXCLUDED = (CellStatus.NOT_PLANNED, CellStatus.NOT_MEASURABLE)


def _region_hops(anchors: Anchors, regions: Sequence[str], min_ok_pct: float) -> tuple[Hop, ...]:
    hops = []
    # the pairs left out (a sampled plan's implied ones have no entry) are not failed
    planned = anchors.pairs.region_counts(~anchors.pairs.status_in(EXCLUDED))
    for a, b in itertools.pairwise(regions):
        row = anchors.region(a, b)
        pairs = 0 if row is None else planned.get((a, b), 0)
        if row is not None and pairs and 100.0 * row.pairs_ok / pairs < min_ok_pct:
            raise _Inconclusive(
                f"regions {a}→{b}: {row.pairs_ok} of {pairs} pairs ok "
                f"(policy needs {min_ok_pct:g}%)"
            )
        hops.append(region_hop(anchors, a, b))
    return tuple(hops)


def _host_hops(links: Links, path: Sequence[str], ring: bool) -> tuple[Hop, ...]:
    ends = [*path, path[0]] if ring else list(path)
    for a, b in itertools.pairwise(ends):
        cell = links.anchors.pair(a, b)
        if cell is not None and cell.status in EXCLUDED:
            raise _Inconclusive(
                f"cell {a}→{b} is excluded by the plan or reachability, not a failure "
                f"({cell.status.value}: {cell.reason or '-'}): place the path over other hosts"
            )
        if cell is None or cell.status is not CellStatus.OK:
            status = "no cell" if cell is None else f"{cell.status.value}: {cell.reason or '-'}"
            raise _Inconclusive(f"cell {a}→{b} was not measured ok ({status})")
    return links.hops(path, ring)


def _place(links: Links, stages: int, payload_bytes: float, ring: bool) -> tuple[str, ...]:
    try:
        return place(links, stages, payload_bytes, ring).path
    except InputError as exc:
        raise _Inconclusive(str(exc)) from exc


def _cross_region_guard(anchors: Anchors, regions: set[str]) -> None:
    measured = anchors.measured_regions
    if len(regions) >= 2 and len(measured) < 2:
        raise _Inconclusive(
            f"cross-region check but the run measured {len(measured)} region(s) "
            f"({', '.join(measured) or 'none'})"
        )


def _latency_result(c: LatencyCheck, anchors: Anchors, links: Links) -> CheckResult:
    w, pl = c.workload, c.placement
    ring = w.ring or c.kind == "tp"  # tensor parallel all-reduces around a closed ring
    if pl.regions:
        _cross_region_guard(anchors, set(pl.regions))
        hops = _region_hops(
            anchors, [*pl.regions, pl.regions[0]] if ring else pl.regions, c.min_pairs_ok_pct
        )
        route = "→".join(pl.regions)
    else:
        path = pl.path or _place(links, pl.stages, w.activation_bytes(1, 1), ring)
        _cross_region_guard(anchors, {anchors.host(h).region for h in path})
        hops = _host_hops(links, path, ring)
        route = "→".join(path)
    what = f"{w.model.name} {w.dtype}, {route}, at {c.at}"
    est: Estimate
    if c.kind == "tp":
        if c.at == "mc-p99":
            raise _Inconclusive("mc-p99: tensor parallel has no Monte-Carlo tail; use p50 or p99")
        est = tensor_parallel(hops, w, c.allreduce).decode_total
        what += f", {c.allreduce} all-reduce"
        value = est.full_p50_ms if c.at == "p50" else est.full_p99_ms
        return _compare(c.name, "tp", value, c.budget_ms, "ms", what, est.lower_bound, est.caveats)
    res = decode(hops, w) if c.kind == "decode" else prefill(hops, w)
    est = res.total if c.kind == "decode" else res.per_step
    if c.at == "mc-p99":
        if res.tail is None:
            raise _Inconclusive("mc-p99 needs raw RTT samples on every hop; the run has none")
        value = res.tail.p99_ms if c.kind == "decode" else res.tail.p99_ms / max(len(hops), 1)
    else:
        value = est.full_p50_ms if c.at == "p50" else est.full_p99_ms
    return _compare(c.name, c.kind, value, c.budget_ms, "ms", what, est.lower_bound, est.caveats)


def _pool_result(c: PoolCheck, links: Links) -> CheckResult:
    hosts = c.hosts or pool_hosts(links, c.requests)
    factor = {h: 1.0 for h in hosts} | dict(c.capability)
    service = [c.service_ms / factor[h] for h in hosts]
    res = pool(hosts[0], links, hosts, c.requests, service, c.payload_bytes)
    est = res.aware if c.split == "aware" else res.even
    value = est.full_p50_ms if c.at == "p50" else est.full_p99_ms
    what = (
        f"{c.requests} requests from {hosts[0]} over {len(hosts)} hosts, {c.split} split, "
        f"at {c.at} ({res.overhead(c.split, c.at):.2f}× the fastest host alone)"
    )
    return _compare(c.name, "pool", value, c.budget_ms, "ms", what, est.lower_bound, est.caveats)


def _compare(
    name: str,
    kind: str,
    value: float,
    limit: float,
    unit: str,
    what: str,
    lower_bound: bool = False,
    caveats: Sequence[str] = (),
) -> CheckResult:
    note = "; ".join(caveats)
    if value <= limit and lower_bound:
        return CheckResult(
            name,
            kind,
            Verdict.INCONCLUSIVE,
            value,
            limit,
            unit,
            f"{what}: {note or 'goodput unmeasured'}, {value:.1f} {unit} is only a lower bound",
        )
    verdict = Verdict.PASS if value <= limit else Verdict.FAIL
    sign = "≤" if value <= limit else ">"
    text = f"{what}: {value:.1f} {sign} {limit:g} {unit}" + (f" ({note})" if note else "")
    return CheckResult(name, kind, verdict, value, limit, unit, text)


def _spec_result(c: SpecCheck, anchors: Anchors, links: Links) -> CheckResult:
    ends = (c.proposer, c.verifier)
    if all(e.startswith("[") for e in ends):
        regions = [e.strip("[]") for e in ends]
        _cross_region_guard(anchors, set(regions))
        (hop,) = _region_hops(anchors, regions, c.min_pairs_ok_pct)
    elif any(e.startswith("[") for e in ends):
        raise InputError("spec: give both ends as hosts or both as regions", where=c.where)
    else:
        _cross_region_guard(anchors, {anchors.host(e).region for e in ends})
        (hop,) = _host_hops(links, ends, ring=False)
    rtt = hop.rtt_p50_ms if c.at == "p50" else hop.rtt_p99_ms
    e, block, ar, solved = _spec_figures(c, links, hop)
    speedup = f.spec_speedup(e, block, rtt, ar)
    breakeven = f.spec_breakeven_rtt_ms(e, block, ar)
    verdict = Verdict.PASS if speedup >= c.min_speedup else Verdict.FAIL
    reason = (
        f"{c.proposer}→{c.verifier} RTT {c.at} {rtt:.1f} ms, break-even {breakeven:.1f} ms: "
        f"speed-up {speedup:.2f}× (needs ≥ {c.min_speedup:g}×){solved}"
    )
    return CheckResult(c.name, "spec", verdict, speedup, c.min_speedup, "×", reason)


def _spec_figures(c: SpecCheck, links: Links, hop: Hop) -> tuple[float, float, float, str]:
    """E, block time and AR rate as given, or solved from ``calibrate:`` rates with the remote
    point at its RTT (given, of its named pair, else this check's hop at p50), and the words
    saying so."""
    rates = c.calibration
    if rates is None:
        e, block, ar = c.accepted_per_block, c.block_ms, c.ar_tokens_per_s
        assert e is not None and block is not None and ar is not None  # policy.py
        return e, block, ar, ""
    pair = rates.remote_pair
    rtt = rates.remote_rtt_ms
    if rtt is None:
        rtt = links.hop(*pair).rtt_p50_ms if pair else hop.rtt_p50_ms
    cal = calibrate(rates, rtt, pair)
    return (
        cal.accepted_per_block,
        cal.block_ms,
        rates.ar_tokens_per_s,
        f"; calibrated E {cal.accepted_per_block:.3g}, block {cal.block_ms:.3g} ms",
    )


def _excluded_note(anchors: Anchors) -> str | None:
    """How many pairs coverage leaves out, and why (so a 100 % never hides them)."""
    counts = {s: int(anchors.pairs.status_in((s,)).sum()) for s in EXCLUDED}
    if anchors.implied is not None:  # not-planned pairs without an entry: counted by the regions
        counts[CellStatus.NOT_PLANNED] += sum(r.pairs for r in anchors.regions) - len(anchors.pairs)
    if not any(counts.values()):
        return None
    each = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    return f"{sum(counts.values())} pair(s) excluded by the plan or reachability ({each})"


def _coverage_result(c: CoverageCheck, anchors: Anchors) -> CheckResult:
    """Value, limit and unit are those of the first criterion that failed (else the regions);
    the reason names each failed criterion by its policy key."""
    regions = anchors.measured_regions
    t = anchors.pairs
    # the pairs the run meant to ping: one left out by a sampled ping plan or that cannot be
    # measured is not a failed cell
    planned = ~t.status_in(EXCLUDED)
    ok = planned & t.ok
    pairs, n_ok = int(planned.sum()), int(ok.sum())
    thin = np.flatnonzero(ok & (t.received < c.min_samples))
    thin = thin[np.argsort(t.received[thin], kind="stable")]  # the fewest samples first
    fewest_pair = t[int(thin[0])] if len(thin) else None
    ok_pct = 100.0 * n_ok / pairs if pairs else 0.0
    fewest = float(t.received[ok].min()) if n_ok else 0.0
    criteria = [  # (policy key, value, limit, unit, what failed or None)
        (
            "min_regions",
            float(len(regions)),
            float(c.min_regions),
            "regions",
            f"{len(regions)} region(s) measured, policy needs {c.min_regions}"
            if len(regions) < c.min_regions
            else None,
        ),
        (
            "min_samples",
            fewest,
            float(c.min_samples),
            "samples",
            f"{len(thin)} ok pair(s) with < {c.min_samples} RTT samples (fewest: "
            f"{fewest_pair.received}, {fewest_pair.src}→{fewest_pair.dst})"
            if fewest_pair is not None
            else None,
        ),
        (
            "min_ok",
            ok_pct,
            c.min_ok_pct,
            "% pairs ok",
            f"{ok_pct:.1f}% of pairs ok, policy needs {c.min_ok_pct:g}%"
            if ok_pct < c.min_ok_pct
            else None,
        ),
    ]
    failed = [x for x in criteria if x[4] is not None]
    _, value, limit, unit, _ = failed[0] if failed else criteria[0]
    summary = f"{len(regions)} region(s), {n_ok}/{pairs} pairs ok"
    excluded = _excluded_note(anchors)
    return CheckResult(
        c.name,
        "coverage",
        Verdict.FAIL if failed else Verdict.PASS,
        value,
        limit,
        unit,
        "; ".join(
            [
                *([f"{key}: {problem}" for key, *_, problem in failed] or [summary]),
                *([excluded] if excluded else []),
            ]
        ),
    )


def _loss_result(c: LossCheck, anchors: Anchors) -> CheckResult:
    if c.scope == "cross-region":
        _cross_region_guard(anchors, {h.region for h in anchors.hosts})
    t = anchors.pairs
    in_scope = ~t.status_in(EXCLUDED)  # planned: see coverage
    if c.scope != "all":
        in_scope &= t.same_region() == (c.scope == "intra-region")
    measured = in_scope & t.status_in((CellStatus.OK, CellStatus.ALL_LOST))
    # an imported RTT (probe import) may come without a loss figure: unknown, not 100 %
    loss = t.floats["loss_pct"]
    unknown = np.flatnonzero(measured & t.status_in((CellStatus.OK,)) & np.isnan(loss))
    measured[unknown] = False
    if not measured.any():
        raise _Inconclusive(
            f"no {c.scope} pair has a loss measurement"
            + (f" ({len(unknown)} ok pair(s) without a loss figure)" if len(unknown) else "")
        )
    rows = np.flatnonzero(measured)
    pct = np.where(np.isnan(loss[rows]), 100.0, loss[rows])
    worst = t[int(rows[np.argmax(pct)])]  # the first of the worst
    worst_pct = 100.0 if worst.loss_pct is None else worst.loss_pct
    if worst_pct > c.max_loss_pct:
        return CheckResult(
            c.name,
            "max_loss",
            Verdict.FAIL,
            worst_pct,
            c.max_loss_pct,
            "%",
            f"worst {worst.src}→{worst.dst}: {worst_pct:g}% > {c.max_loss_pct:g}%",
        )
    if len(unknown):
        first = t[int(unknown[0])]
        raise _Inconclusive(
            f"{len(unknown)} {c.scope} ok pair(s) without a loss figure (e.g. "
            f"{first.src}→{first.dst}); the rest ≤ {c.max_loss_pct:g}%"
        )
    failed = int(in_scope.sum()) - len(rows)
    if failed:
        raise _Inconclusive(
            f"{failed} {c.scope} cell(s) failed to measure; the rest ≤ {c.max_loss_pct:g}%"
        )
    return CheckResult(
        c.name,
        "max_loss",
        Verdict.PASS,
        worst_pct,
        c.max_loss_pct,
        "%",
        f"worst of {len(measured)} pairs: {worst_pct:g}% ≤ {c.max_loss_pct:g}%",
    )


_KIND: dict[type, str] = {
    SpecCheck: "spec",
    CoverageCheck: "coverage",
    LossCheck: "max_loss",
    PoolCheck: "pool",
}


def _check_names(c: Check, anchors: Anchors) -> None:
    """A region or host the run does not have is a mistake in the policy (a typo, the wrong
    run), not missing data: say so at the check's line instead of calling it INCONCLUSIVE."""
    hosts: list[str] = []
    regions: list[str] = []
    if isinstance(c, LatencyCheck):
        hosts, regions = list(c.placement.path), list(c.placement.regions)
    elif isinstance(c, SpecCheck):
        for end in (c.proposer, c.verifier):
            (regions if end.startswith("[") else hosts).append(end.strip("[]"))
    elif isinstance(c, PoolCheck):
        hosts = [*c.hosts, *(h for h, _ in c.capability)]
    known_regions = sorted({h.region for h in anchors.hosts})
    for region in regions:
        if region not in known_regions:
            raise InputError(
                f"check {c.name!r}: region {region!r} is not in run {anchors.run_id} "
                f"(its regions: {', '.join(known_regions)})",
                where=c.where,
            )
    known_hosts = {h.name for h in anchors.hosts}
    for host in hosts:
        if host not in known_hosts:
            raise InputError(
                f"check {c.name!r}: host {host!r} is not in run {anchors.run_id}", where=c.where
            )


def evaluate(policy: Policy, anchors: Anchors) -> GateReport:
    """Every check of ``policy`` against ``anchors``; missing data makes a check INCONCLUSIVE."""
    links = Links.from_anchors(anchors)
    results = []
    for c in policy.checks:
        _check_names(c, anchors)
        kind = c.kind if isinstance(c, LatencyCheck) else _KIND[type(c)]
        try:
            if isinstance(c, LatencyCheck):
                results.append(_latency_result(c, anchors, links))
            elif isinstance(c, SpecCheck):
                results.append(_spec_result(c, anchors, links))
            elif isinstance(c, CoverageCheck):
                results.append(_coverage_result(c, anchors))
            elif isinstance(c, PoolCheck):
                results.append(_pool_result(c, links))
            else:
                results.append(_loss_result(c, anchors))
        except (_Inconclusive, UnmeasuredHop) as exc:
            results.append(
                CheckResult(c.name, kind, Verdict.INCONCLUSIVE, None, None, "", str(exc))
            )
    return GateReport(policy.source, anchors.run_id, tuple(results))
