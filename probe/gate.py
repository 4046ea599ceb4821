"""``probe gate``: a policy YAML turned into PASS / FAIL / INCONCLUSIVE verdicts over one run.

A check is INCONCLUSIVE — never PASS — when it needs data the run does not have: a cell that
failed, a region pair with too few ok pairs, a cross-region check on a run that measured fewer
than two regions, a Monte-Carlo tail without raw samples, or a figure that is only a lower bound
(unmeasured goodput) and still within budget. A lower bound already over budget is a FAIL.

Overall: any FAIL → FAIL (exit 1); else any INCONCLUSIVE → INCONCLUSIVE (exit 3); else PASS (0).
Policy files (format in the README) are read from ``yaml.compose`` nodes so that every error
names ``file:line``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar

import yaml

from probe import units
from probe.anchors import Anchors
from probe.calc import formulas as f
from probe.calc.models import ModelShape, load_hf_config, preset
from probe.calc.scenarios import (
    Hop,
    Links,
    PipelineResult,
    UnmeasuredHop,
    Workload,
    decode,
    place,
    prefill,
    region_hop,
)
from probe.errors import InputError
from probe.model import CellStatus

POLICY_SCHEMA = "probe.policy/1"
At = Literal["p50", "p99", "mc-p99"]
Scope = Literal["all", "intra-region", "cross-region"]
_T = TypeVar("_T")
_S = TypeVar("_S", bound=str)


class Verdict(StrEnum):
    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


EXIT_CODES = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 3}

# --------------------------------------------------------------------------- policy types


@dataclass(frozen=True, slots=True)
class Placement:
    """Exactly one of: explicit hosts, one region per stage (region medians), or K auto-placed."""

    path: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    stages: int = 0


@dataclass(frozen=True, slots=True)
class LatencyCheck:
    name: str
    where: str
    kind: Literal["decode", "prefill"]
    placement: Placement
    workload: Workload
    budget_ms: float  # decode: all tokens; prefill: per hop
    at: At
    min_pairs_ok_pct: float  # region placement: share of ok pairs needed per region pair


@dataclass(frozen=True, slots=True)
class SpecCheck:
    name: str
    where: str
    proposer: str  # a host, or "[region]"
    verifier: str
    accepted_per_block: float
    block_ms: float
    ar_tokens_per_s: float
    min_speedup: float
    at: Literal["p50", "p99"]
    min_pairs_ok_pct: float


@dataclass(frozen=True, slots=True)
class CoverageCheck:
    name: str
    where: str
    min_regions: int
    min_samples: int
    min_ok_pct: float


@dataclass(frozen=True, slots=True)
class LossCheck:
    name: str
    where: str
    max_loss_pct: float
    scope: Scope


Check = LatencyCheck | SpecCheck | CoverageCheck | LossCheck


@dataclass(frozen=True, slots=True)
class Policy:
    source: str
    name: str
    checks: tuple[Check, ...]


# --------------------------------------------------------------------------- policy loading


class _Node:
    """A YAML mapping with typed getters; errors carry ``file:line`` of the offending node."""

    def __init__(self, node: yaml.Node, file: str, what: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise InputError(f"{what} must be a mapping", where=_at(file, node))
        self.file, self.node, self.what = file, node, what
        self.items: dict[str, yaml.Node] = {}
        for k, v in node.value:
            self.items[str(k.value)] = v
        self.used: set[str] = set()

    def where(self, key: str | None = None) -> str:
        node = self.items.get(key, self.node) if key is not None else self.node
        return _at(self.file, node)

    def raw(self, key: str) -> yaml.Node | None:
        self.used.add(key)
        return self.items.get(key)

    def scalar(self, key: str, default: object = None, *, required: bool = False) -> object:
        node = self.raw(key)
        if node is None:
            if required:
                raise InputError(f"{self.what}: missing key {key!r}", where=self.where())
            return default
        if not isinstance(node, yaml.ScalarNode):
            raise InputError(f"{key} must be a single value", where=_at(self.file, node))
        if node.tag == _TIMESTAMP:  # a date is read as written, never as a datetime
            return str(node.value)
        if node.tag not in _PLAIN_TAGS:
            raise InputError(f"{key}: unsupported YAML tag {node.tag!r}", where=self.where(key))
        try:
            return yaml.safe_load(yaml.serialize(node))
        except (yaml.YAMLError, ValueError, KeyError) as exc:  # e.g. ``!!int abc``
            raise InputError(f"{key}: bad value {node.value!r}", where=self.where(key)) from exc

    def convert(
        self, key: str, fn: Callable[[object], _T], default: _T, required: bool = False
    ) -> _T:
        value = self.scalar(key, None, required=required)
        if value is None:
            return default
        try:
            return fn(value)
        except InputError as exc:
            raise InputError(f"{key}: {exc}", where=self.where(key)) from exc
        except (TypeError, ValueError) as exc:
            raise InputError(f"{key}: bad value {value!r}", where=self.where(key)) from exc

    def strings(self, key: str) -> tuple[str, ...]:
        node = self.raw(key)
        if node is None:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise InputError(f"{key} must be a list", where=_at(self.file, node))
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode):
                raise InputError(f"{key} must be a list of names", where=_at(self.file, item))
        return tuple(str(item.value) for item in node.value)

    def reject_unknown(self) -> None:
        for key in self.items:
            if key not in self.used:
                raise InputError(f"{self.what}: unknown key {key!r}", where=self.where(key))


_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def _at(file: str, node: yaml.Node) -> str:
    return f"{file}:{node.start_mark.line + 1}"


def _positive_int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(v)
    return v


def _positive_float(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise ValueError(v)
    return float(v)


def _choice(options: Sequence[_S]) -> Callable[[object], _S]:
    def pick(v: object) -> _S:
        for o in options:
            if v == o:
                return o
        raise InputError(f"{v!r} is not one of {', '.join(options)}")

    return pick


def _model(n: _Node, base: Path) -> ModelShape:
    config = n.convert("model_config", str, "")
    if config:
        return load_hf_config(base / config)
    return preset(n.convert("model", str, "", required=True))


def _latency(n: _Node, kind: Literal["decode", "prefill"], name: str, base: Path) -> LatencyCheck:
    placement = Placement(
        n.strings("path"), n.strings("regions"), n.convert("stages", _positive_int, 0)
    )
    if sum(bool(x) for x in (placement.path, placement.regions, placement.stages)) != 1:
        raise InputError("give exactly one of path, regions or stages", where=n.where())
    w = Workload(
        model=_model(n, base),
        dtype=n.convert("dtype", _choice(list(f.BYTES_PER_ELEMENT)), "bf16"),
        tokens=n.convert("tokens", _positive_int, 128),
        batch=n.convert("batch", _positive_int, 1),
        seq=n.convert("seq", _positive_int, 2048),
        ring=n.convert("ring", bool, False),
        decode_compute_ms_per_stage=n.convert("compute_per_stage", units.parse_duration_ms, 0.0)
        if kind == "decode"
        else 0.0,
        prefill_compute_ms_per_stage=n.convert("compute_per_stage", units.parse_duration_ms, 0.0)
        if kind == "prefill"
        else 0.0,
    )
    budget_key = "budget" if kind == "decode" else "budget_per_hop"
    return LatencyCheck(
        name,
        n.where(),
        kind,
        placement,
        w,
        n.convert(budget_key, units.parse_duration_ms, 0.0, required=True),
        n.convert("at", _choice(["p50", "p99", "mc-p99"]), "p99"),
        n.convert("min_pairs_ok", units.parse_percent, 100.0),
    )


def _end(n: _Node, role: str) -> str:
    host, region = n.convert(role, str, ""), n.convert(f"{role}_region", str, "")
    if bool(host) == bool(region):
        raise InputError(f"give exactly one of {role} or {role}_region", where=n.where())
    return host or f"[{region}]"


def _check(n: _Node, index: int, base: Path) -> Check:
    kind = n.convert(
        "kind", _choice(["decode", "prefill", "spec", "coverage", "max_loss"]), "", required=True
    )
    name = n.convert("name", str, f"{kind}#{index + 1}")
    check: Check
    if kind in ("decode", "prefill"):
        check = _latency(n, "decode" if kind == "decode" else "prefill", name, base)
    elif kind == "spec":
        check = SpecCheck(
            name,
            n.where(),
            _end(n, "proposer"),
            _end(n, "verifier"),
            n.convert("accepted_tokens", _positive_float, 0.0, required=True),
            n.convert("block", units.parse_duration_ms, 0.0, required=True),
            n.convert("ar_tokens_per_s", _positive_float, 0.0, required=True),
            n.convert("min_speedup", _positive_float, 1.0),
            n.convert("at", _choice(["p50", "p99"]), "p99"),
            n.convert("min_pairs_ok", units.parse_percent, 100.0),
        )
    elif kind == "coverage":
        check = CoverageCheck(
            name,
            n.where(),
            n.convert("min_regions", _positive_int, 1),
            n.convert("min_samples", _positive_int, 1),
            n.convert("min_ok", units.parse_percent, 0.0),
        )
    else:
        check = LossCheck(
            name,
            n.where(),
            n.convert("max", units.parse_percent, 0.0, required=True),
            n.convert("scope", _choice(["all", "intra-region", "cross-region"]), "all"),
        )
    n.reject_unknown()
    return check


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read policy: {exc.strerror}", where=str(p)) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", where=f"{p}:{lineno}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        raise InputError(f"not valid YAML: {problem}", where=f"{p}{line}") from exc
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character; its text has 2 lines
        raise InputError(f"not valid YAML: {exc}".replace("\n", " "), where=str(p)) from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per nesting level
        raise InputError("not valid YAML: nested too deeply", where=str(p)) from exc
    if root is None:
        raise InputError("empty policy", where=str(p))
    top = _Node(root, str(p), "policy")
    schema = top.convert("schema", str, POLICY_SCHEMA)
    if schema != POLICY_SCHEMA:
        raise InputError(
            f"policy schema {schema!r} is not {POLICY_SCHEMA!r}", where=top.where("schema")
        )
    name = top.convert("name", str, p.stem)
    checks_node = top.raw("checks")
    if not isinstance(checks_node, yaml.SequenceNode) or not checks_node.value:
        raise InputError("policy needs a non-empty list 'checks'", where=top.where("checks"))
    top.reject_unknown()
    checks = tuple(
        _check(_Node(c, str(p), f"check #{i + 1}"), i, p.parent)
        for i, c in enumerate(checks_node.value)
    )
    return Policy(str(p), name, checks)


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


def _region_hops(anchors: Anchors, regions: Sequence[str], min_ok_pct: float) -> tuple[Hop, ...]:
    hops = []
    for a, b in itertools.pairwise(regions):
        row = anchors.region(a, b)
        if row is not None and row.pairs and 100.0 * row.pairs_ok / row.pairs < min_ok_pct:
            raise _Inconclusive(
                f"regions {a}→{b}: {row.pairs_ok} of {row.pairs} pairs ok "
                f"(policy needs {min_ok_pct:g}%)"
            )
        hops.append(region_hop(anchors, a, b))
    return tuple(hops)


def _host_hops(links: Links, path: Sequence[str], ring: bool) -> tuple[Hop, ...]:
    ends = [*path, path[0]] if ring else list(path)
    for a, b in itertools.pairwise(ends):
        cell = links.anchors.pair(a, b)
        if cell is None or cell.status is not CellStatus.OK:
            status = "no cell" if cell is None else f"{cell.status.value}: {cell.reason or '-'}"
            raise _Inconclusive(f"cell {a}→{b} was not measured ok ({status})")
    return links.hops(path, ring)


def _place(links: Links, stages: int, payload_bytes: float, ring: bool) -> tuple[str, ...]:
    try:
        return place(links, stages, payload_bytes, ring)
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
    if pl.regions:
        _cross_region_guard(anchors, set(pl.regions))
        hops = _region_hops(
            anchors, [*pl.regions, pl.regions[0]] if w.ring else pl.regions, c.min_pairs_ok_pct
        )
        route = "→".join(pl.regions)
    else:
        path = pl.path or _place(links, pl.stages, w.activation_bytes(1, 1), w.ring)
        _cross_region_guard(anchors, {anchors.host(h).region for h in path})
        hops = _host_hops(links, path, w.ring)
        route = "→".join(path)
    res: PipelineResult = decode(hops, w) if c.kind == "decode" else prefill(hops, w)
    est = res.total if c.kind == "decode" else res.per_step
    if c.at == "mc-p99":
        if res.tail is None:
            raise _Inconclusive("mc-p99 needs raw RTT samples on every hop; the run has none")
        value = res.tail.p99_ms if c.kind == "decode" else res.tail.p99_ms / max(len(hops), 1)
    else:
        value = est.full_p50_ms if c.at == "p50" else est.full_p99_ms
    what = f"{w.model.name} {w.dtype}, {route}, at {c.at}"
    return _compare(c.name, c.kind, value, c.budget_ms, "ms", what, est.lower_bound)


def _compare(
    name: str,
    kind: str,
    value: float,
    limit: float,
    unit: str,
    what: str,
    lower_bound: bool = False,
) -> CheckResult:
    if value <= limit and lower_bound:
        return CheckResult(
            name,
            kind,
            Verdict.INCONCLUSIVE,
            value,
            limit,
            unit,
            f"{what}: goodput unmeasured, {value:.1f} {unit} is only a lower bound",
        )
    verdict = Verdict.PASS if value <= limit else Verdict.FAIL
    sign = "≤" if value <= limit else ">"
    return CheckResult(
        name, kind, verdict, value, limit, unit, f"{what}: {value:.1f} {sign} {limit:g} {unit}"
    )


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
    speedup = f.spec_speedup(c.accepted_per_block, c.block_ms, rtt, c.ar_tokens_per_s)
    breakeven = f.spec_breakeven_rtt_ms(c.accepted_per_block, c.block_ms, c.ar_tokens_per_s)
    verdict = Verdict.PASS if speedup >= c.min_speedup else Verdict.FAIL
    reason = (
        f"{c.proposer}→{c.verifier} RTT {c.at} {rtt:.1f} ms, break-even {breakeven:.1f} ms: "
        f"speed-up {speedup:.2f}× (needs ≥ {c.min_speedup:g}×)"
    )
    return CheckResult(c.name, "spec", verdict, speedup, c.min_speedup, "×", reason)


def _coverage_result(c: CoverageCheck, anchors: Anchors) -> CheckResult:
    regions = anchors.measured_regions
    pairs = anchors.pairs
    ok = [p for p in pairs if p.ok]
    thin = [p for p in ok if p.received < c.min_samples]
    ok_pct = 100.0 * len(ok) / len(pairs) if pairs else 0.0
    problems = []
    if len(regions) < c.min_regions:
        problems.append(f"{len(regions)} region(s) measured, policy needs {c.min_regions}")
    if thin:
        problems.append(
            f"{len(thin)} ok pair(s) with < {c.min_samples} samples"
            f" (e.g. {thin[0].src}→{thin[0].dst})"
        )
    if ok_pct < c.min_ok_pct:
        problems.append(f"{ok_pct:.1f}% of pairs ok, policy needs {c.min_ok_pct:g}%")
    verdict = Verdict.FAIL if problems else Verdict.PASS
    summary = f"{len(regions)} region(s), {len(ok)}/{len(pairs)} pairs ok"
    return CheckResult(
        c.name,
        "coverage",
        verdict,
        float(len(regions)),
        float(c.min_regions),
        "regions",
        "; ".join(problems) or summary,
    )


def _loss_result(c: LossCheck, anchors: Anchors) -> CheckResult:
    if c.scope == "cross-region":
        _cross_region_guard(anchors, {h.region for h in anchors.hosts})
    in_scope = [
        p
        for p in anchors.pairs
        if c.scope == "all" or (p.src_region == p.dst_region) == (c.scope == "intra-region")
    ]
    measured = [p for p in in_scope if p.status in (CellStatus.OK, CellStatus.ALL_LOST)]
    if not measured:
        raise _Inconclusive(f"no {c.scope} pair has a loss measurement")
    worst = max(measured, key=lambda p: 100.0 if p.loss_pct is None else p.loss_pct)
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
    failed = len(in_scope) - len(measured)
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


_KIND: dict[type, str] = {SpecCheck: "spec", CoverageCheck: "coverage", LossCheck: "max_loss"}


def evaluate(policy: Policy, anchors: Anchors) -> GateReport:
    """Every check of ``policy`` against ``anchors``; missing data makes a check INCONCLUSIVE."""
    links = Links.from_anchors(anchors)
    results = []
    for c in policy.checks:
        kind = c.kind if isinstance(c, LatencyCheck) else _KIND[type(c)]
        try:
            if isinstance(c, LatencyCheck):
                results.append(_latency_result(c, anchors, links))
            elif isinstance(c, SpecCheck):
                results.append(_spec_result(c, anchors, links))
            elif isinstance(c, CoverageCheck):
                results.append(_coverage_result(c, anchors))
            else:
                results.append(_loss_result(c, anchors))
        except (_Inconclusive, UnmeasuredHop) as exc:
            results.append(
                CheckResult(c.name, kind, Verdict.INCONCLUSIVE, None, None, "", str(exc))
            )
    return GateReport(policy.source, anchors.run_id, tuple(results))


def render_markdown(report: GateReport) -> str:
    """A summary for CI logs (GitHub step summary, GitLab job log)."""
    icon = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.INCONCLUSIVE: "⚠️"}
    lines = [
        f"## probe gate: {icon[report.verdict]} {report.verdict.value}",
        "",
        f"Policy `{report.policy}` on run `{report.run_id}`.",
        "",
        "| check | verdict | value | limit | reason |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for r in report.results:
        value = "–" if r.value is None else f"{r.value:.2f} {r.unit}"
        limit = "–" if r.limit is None else f"{r.limit:g} {r.unit}"
        reason = r.reason.replace("|", "\\|")
        lines.append(
            f"| {r.name} | {icon[r.verdict]} {r.verdict.value} | {value} | {limit} | {reason} |"
        )
    return "\n".join(lines) + "\n"
