"""Gate policies: a policy YAML read into typed checks, every error at ``file:line``.

The format is in the README (``probe gate``); ``probe.decide.gate`` evaluates a policy over a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from probe import units
from probe.decide import formulas as f
from probe.decide.options import (
    TOKEN_ID_BYTES,
    AllReduce,
    PipelineOptions,
    PoolOptions,
    SpecCalibration,
)
from probe.decide.scenarios import (
    Workload,
)
from probe.decide.shapes import ModelShape, load_hf_config, preset
from probe.errors import InputError
from probe.yamlsrc import MapNode, Node, load_yaml_mapping

POLICY_SCHEMA = "probe.policy/1"
At = Literal["p50", "p99", "mc-p99"]
Scope = Literal["all", "intra-region", "cross-region"]


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
    kind: Literal["decode", "prefill", "tp"]
    placement: Placement  # tp: the hosts of its ring
    workload: Workload
    budget_ms: float  # decode and tp: all tokens; prefill: per hop
    at: At
    min_pairs_ok_pct: float  # region placement: share of ok pairs needed per region pair
    allreduce: AllReduce = field(default_factory=AllReduce)  # tp only


@dataclass(frozen=True, slots=True)
class SpecCheck:
    name: str
    where: str
    proposer: str  # a host, or "[region]"
    verifier: str
    accepted_per_block: float | None  # None: solved from ``calibration``
    block_ms: float | None
    ar_tokens_per_s: float | None
    min_speedup: float
    at: Literal["p50", "p99"]
    min_pairs_ok_pct: float
    calibration: SpecCalibration | None = None  # the remote point without an RTT: this hop's p50


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


@dataclass(frozen=True, slots=True)
class PoolCheck:
    """Whole requests spread over hosts (``probe calc``'s pool): the makespan within budget."""

    name: str
    where: str
    hosts: tuple[str, ...]  # the first dispatches; (): calc's default (every reachable host)
    service_ms: float
    requests: int
    payload_bytes: float
    capability: tuple[tuple[str, float], ...]
    split: Literal["even", "aware"]
    budget_ms: float
    at: Literal["p50", "p99"]


_LATENCY_KINDS: tuple[Literal["decode", "prefill", "tp"], ...] = ("decode", "prefill", "tp")
Check = LatencyCheck | SpecCheck | CoverageCheck | LossCheck | PoolCheck


@dataclass(frozen=True, slots=True)
class Policy:
    source: str
    name: str
    checks: tuple[Check, ...]


# --------------------------------------------------------------------------- policy loading

_COMMON_KEYS = {"kind", "name"}
_LATENCY_KEYS = _COMMON_KEYS | {
    "path", "regions", "stages", "model", "model_config", "dtype", "tokens", "batch", "seq",
    "ring", "compute_per_stage", "at", "min_pairs_ok",
}  # fmt: skip
_KEYS = {
    "decode": _LATENCY_KEYS | {"budget"},
    "prefill": _LATENCY_KEYS | {"budget_per_hop"},
    "tp": _LATENCY_KEYS - {"ring", "compute_per_stage"} | {
        "compute_per_token", "allreduce", "budget",
    },
    "pool": _COMMON_KEYS | {
        "hosts", "service", "requests", "payload", "seq", "capability", "split", "budget", "at",
    },
    "spec": _COMMON_KEYS | {
        "proposer", "proposer_region", "verifier", "verifier_region", "accepted_tokens", "block",
        "ar_tokens_per_s", "min_speedup", "at", "min_pairs_ok", "calibrate",
    },
    "coverage": _COMMON_KEYS | {"min_regions", "min_samples", "min_ok"},
    "max_loss": _COMMON_KEYS | {"max", "scope"},
}  # fmt: skip


def _names(n: MapNode, key: str) -> tuple[str, ...]:
    return tuple(item.as_str() for item in n.get_list(key) or ())


def _model(n: MapNode, base: Path) -> ModelShape:
    if "model" in n and "model_config" in n:
        raise n.error("give model or model_config, not both")
    config = n.get("model_config")
    if config is not None:
        return load_hf_config(base / config.as_str())
    return preset(n.require("model").as_str())


def _latency(
    n: MapNode, kind: Literal["decode", "prefill", "tp"], name: str, base: Path
) -> LatencyCheck:
    placement = Placement(_names(n, "path"), _names(n, "regions"), n.get_int("stages", 0, min=1))
    if sum(bool(x) for x in (placement.path, placement.regions, placement.stages)) != 1:
        raise n.error("give exactly one of path, regions or stages")
    per = "compute_per_token" if kind == "tp" else "compute_per_stage"
    compute_ms = n.get_quantity(per, units.parse_duration_ms, 0.0)
    d = PipelineOptions()  # a key left out means what ``probe calc`` means without the option
    w = Workload(
        model=_model(n, base),
        dtype=n.get_choice("dtype", tuple(f.BYTES_PER_ELEMENT), d.dtype),
        tokens=n.get_int("tokens", d.tokens, min=1),
        batch=n.get_int("batch", d.batch, min=1),
        seq=n.get_int("seq", d.seq, min=1),
        ring=n.get_bool("ring", d.ring),
        decode_compute_ms_per_stage=compute_ms if kind == "decode" else 0.0,
        prefill_compute_ms_per_stage=compute_ms if kind == "prefill" else 0.0,
        tp_compute_ms_per_token=compute_ms if kind == "tp" else 0.0,
    )
    budget = n.require("budget_per_hop" if kind == "prefill" else "budget")
    allreduce = n.get("allreduce")
    return LatencyCheck(
        name,
        n.where,
        kind,
        placement,
        w,
        budget.as_quantity(units.parse_duration_ms),
        n.get_choice("at", ("p50", "p99", "mc-p99"), "p99"),
        n.get_quantity("min_pairs_ok", units.parse_percent, 100.0),
        AllReduce() if allreduce is None else _allreduce(allreduce),
    )


def _allreduce(n: Node) -> AllReduce:
    try:
        return AllReduce.parse(n.as_str())
    except InputError as exc:
        raise n.error(f"{n.name}: {exc}") from None


def _pool(n: MapNode, name: str) -> PoolCheck:
    d = PoolOptions()
    capability = n.get_mapping("capability")
    items = capability.items() if capability else iter(())
    factors = tuple((host, node.as_float(above=0.0)) for host, node in items)
    payload = n.get_quantity("payload", units.parse_size_bytes, None)
    seq = n.get_int("seq", PipelineOptions().seq, min=1)
    return PoolCheck(
        name,
        n.where,
        _names(n, "hosts"),
        n.require("service").as_quantity(units.parse_duration_ms),
        n.get_int("requests", d.requests, min=1),
        seq * TOKEN_ID_BYTES if payload is None else payload,
        factors,
        n.get_choice("split", ("even", "aware"), "aware"),
        n.require("budget").as_quantity(units.parse_duration_ms),
        n.get_choice("at", ("p50", "p99"), "p99"),
    )


def _end(n: MapNode, role: str) -> str:
    host, region = n.get_str(role, ""), n.get_str(f"{role}_region", "")
    if bool(host) == bool(region):
        raise n.error(f"give exactly one of {role} or {role}_region")
    return host or f"[{region}]"


_SPEC_FIGURES = ("accepted_tokens", "block", "ar_tokens_per_s")


def _spec(n: MapNode, name: str) -> SpecCheck:
    """E, block time and AR rate as keys, or ``calibrate:`` rates they are solved from."""
    node = n.get("calibrate")
    calibration = None
    if node is not None:
        if any(k in n for k in _SPEC_FIGURES):
            raise node.error(
                f"calibrate replaces {', '.join(_SPEC_FIGURES)}: give one or the other"
            )
        try:
            calibration = SpecCalibration.parse(node.as_str())
        except InputError as exc:
            raise node.error(f"calibrate: {exc}") from None
    return SpecCheck(
        name,
        n.where,
        _end(n, "proposer"),
        _end(n, "verifier"),
        None if calibration else n.require("accepted_tokens").as_float(above=0.0),
        None if calibration else n.require("block").as_quantity(units.parse_duration_ms),
        None if calibration else n.require("ar_tokens_per_s").as_float(above=0.0),
        n.get_float("min_speedup", 1.0, above=0.0),
        n.get_choice("at", ("p50", "p99"), "p99"),
        n.get_quantity("min_pairs_ok", units.parse_percent, 100.0),
        calibration,
    )


def _check(n: MapNode, index: int, base: Path) -> Check:
    kind = n.require("kind").as_choice(tuple(_KEYS))
    n.check_keys(_KEYS[kind])
    name = n.get_str("name", f"{kind}#{index + 1}")
    for latency in _LATENCY_KINDS:
        if kind == latency:
            return _latency(n, latency, name, base)
    if kind == "pool":
        return _pool(n, name)
    if kind == "spec":
        return _spec(n, name)
    if kind == "coverage":
        return CoverageCheck(
            name,
            n.where,
            n.get_int("min_regions", 1, min=1),
            n.get_int("min_samples", 1, min=1),
            n.get_quantity("min_ok", units.parse_percent, 0.0),
        )
    return LossCheck(
        name,
        n.where,
        n.require("max").as_quantity(units.parse_percent),
        n.get_choice("scope", ("all", "intra-region", "cross-region"), "all"),
    )


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (format in the README); every error names file:line."""
    p = Path(path)
    top = load_yaml_mapping(p)
    top.check_keys({"schema", "name", "checks"})
    schema = top.get_str("schema", POLICY_SCHEMA)
    if schema != POLICY_SCHEMA:
        message = f"policy schema {schema!r} is not {POLICY_SCHEMA!r}"
        raise top.require("schema").error(message)
    checks = top.get_list("checks")
    if not checks:
        where = top.key_where("checks") if "checks" in top else top.where
        raise InputError("the policy needs a non-empty list 'checks'", where=where)
    return Policy(
        str(p),
        top.get_str("name", p.stem),
        tuple(_check(c.as_mapping(), i, p.parent) for i, c in enumerate(checks)),
    )
