"""Gate policies: a policy YAML read into typed checks, every error at ``file:line``.

The format is in the README (``probe gate``); ``probe.decide.gate`` evaluates a policy over a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import yaml

from probe import units
from probe.decide import formulas as f
from probe.decide.options import PipelineOptions
from probe.decide.scenarios import (
    Workload,
)
from probe.decide.shapes import ModelShape, load_hf_config, preset
from probe.errors import InputError

POLICY_SCHEMA = "probe.policy/1"
At = Literal["p50", "p99", "mc-p99"]
Scope = Literal["all", "intra-region", "cross-region"]
_T = TypeVar("_T")
_S = TypeVar("_S", bound=str)


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
    d = PipelineOptions()  # a key left out means what ``probe calc`` means without the option
    w = Workload(
        model=_model(n, base),
        dtype=n.convert("dtype", _choice(list(f.BYTES_PER_ELEMENT)), d.dtype),
        tokens=n.convert("tokens", _positive_int, d.tokens),
        batch=n.convert("batch", _positive_int, d.batch),
        seq=n.convert("seq", _positive_int, d.seq),
        ring=n.convert("ring", bool, d.ring),
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
