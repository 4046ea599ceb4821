"""The calculator's inputs as plain values, before any file is read or any figure computed.

Their field defaults are the one place for the defaults of ``probe calc`` and ``probe groups``
(the CLI reads its option defaults from them), of ``scenarios.Workload`` and of the report's
headline, which is the calculator's default scenario. No numpy here: the CLI imports this module
to build its options and ``probe --help`` stays instant.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from probe import units
from probe.decide.formulas import Dtype
from probe.decide.shapes import ModelShape, load_hf_config, preset
from probe.errors import InputError

Scenario = Literal["decode", "prefill", "tp", "spec", "pool"]
#: ``probe rehearse``'s traffic patterns (``decide.rehearse``).
Pattern = Literal["decode", "prefill", "allreduce", "spec", "kv"]
PATTERNS: tuple[Pattern, ...] = get_args(Pattern)
SCENARIOS: tuple[Scenario, ...] = get_args(Scenario)
TOKEN_ID_BYTES = 4.0  # pool: without a payload, a request moves its seq token ids
SPEC_STAGES = 2  # spec without --stages: one proposer and one verifier
SWEEP_MAX_POINTS = 1000


class MissingInput(InputError):
    """A scenario was asked for without the inputs it needs."""

    def __init__(self, scenario: Scenario, needs: tuple[str, ...]) -> None:
        self.scenario = scenario
        super().__init__(f"{scenario} needs {', '.join(needs)}")


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """A model cut into ``stages`` pipeline stages, and the requests it serves."""

    model: str = "llama-3-8b"  # a preset of shapes.PRESETS
    model_config: str | None = None  # a Hugging Face config.json; wins over ``model``
    stages: int = 4  # calc: the decode, prefill and tp default (spec and pool have their own)
    dtype: Dtype = "bf16"  # activations on the wire
    tokens: int = 128  # decoded per request
    batch: int = 1  # prefill B
    seq: int = 2048  # prefill S (tokens)
    ring: bool = False  # the token travels back to stage 1 (K hops, not K − 1)

    def shape(self) -> ModelShape:
        return load_hf_config(self.model_config) if self.model_config else preset(self.model)


@dataclass(frozen=True, slots=True)
class Transport:
    """What the connections add to ``RTT/2 + bytes·8/bw`` (``formulas``' corrections).

    Prefill starts in slow start by default: between requests a stage's connection sits idle or
    carries only decode's few-segment messages, so Linux has its window back at the initial one
    when the next prompt's activations arrive (``--warm``: a connection kept busy with bulk
    transfers). The per-message overhead stays 0 until ``probe rehearse`` measures one.
    """

    after_idle: bool = True  # prefill transfers start in slow start (unless the sender runs BBR)
    per_message_ms: float = 0.0  # added once per message per hop (decode and prefill)
    sparse_pacing: bool = True  # decode's messages over a BBR sender are paced at its start-up rate

    def __post_init__(self) -> None:
        if not (self.per_message_ms >= 0 and math.isfinite(self.per_message_ms)):
            raise InputError(f"per-message overhead {self.per_message_ms:g} ms is not ≥ 0")


#: The formula before issue 16's corrections: groups, gate, fitness and the report keep it until
#: ``probe rehearse`` has checked the corrections on the lab; calc applies ``Transport()``.
UNCORRECTED = Transport(after_idle=False, sparse_pacing=False)


@dataclass(frozen=True, slots=True)
class Draws:
    """Monte-Carlo tails: draws per figure (0: none) and the seed that makes them repeatable."""

    trials: int = 2000
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    """What makes a link good enough for two hosts to share one model (``groups``)."""

    max_rtt_ms: float
    min_bw_bps: float | None = None  # None: goodput is not a criterion
    rtt_stat: Literal["p50", "p99"] = "p50"


_CALIBRATE_EXAMPLE = "ar=30,local=75,remote=52@40ms"


@dataclass(frozen=True, slots=True)
class SpecCalibration:
    """Three measured rates that E and the block time are solved from
    (``formulas.spec_calibrate``): the verifier alone, proposer + verifier co-located, and the
    two apart at one RTT: ``remote_rtt_ms`` as given, else the run's RTT p50 of ``remote_pair``,
    else of the one proposer → verifier pair named."""

    ar_tokens_per_s: float
    local_tokens_per_s: float
    remote_tokens_per_s: float
    remote_rtt_ms: float | None = None
    remote_pair: tuple[str, str] | None = None  # (proposer, verifier) of the remote point

    def __post_init__(self) -> None:
        rates = (self.ar_tokens_per_s, self.local_tokens_per_s, self.remote_tokens_per_s)
        if not all(r > 0 and math.isfinite(r) for r in rates):
            raise InputError(f"spec calibration: rates must be above 0 tokens/s, got {rates}")
        if self.remote_tokens_per_s >= self.local_tokens_per_s:
            raise InputError(
                f"spec calibration: the remote rate {self.remote_tokens_per_s:g} tokens/s must "
                f"be below the co-located rate {self.local_tokens_per_s:g} (the round trip "
                "costs time)"
            )
        if self.remote_rtt_ms is not None:
            self.check_rtt(self.remote_rtt_ms)

    @staticmethod
    def check_rtt(rtt_ms: float) -> None:
        if not (rtt_ms > 0 and math.isfinite(rtt_ms)):
            raise InputError(f"spec calibration: the remote point's RTT {rtt_ms:g} ms is not > 0")

    @classmethod
    def parse(cls, text: str) -> SpecCalibration:
        """``ar=30,local=75,remote=52@40ms``; the remote point's RTT may instead be the run's,
        ``remote=52@PROPOSER>VERIFIER`` or ``remote=52`` (the one pair named)."""
        fields: dict[str, str] = {}
        for item in (i.strip() for i in text.split(",") if i.strip()):
            key, eq, value = item.partition("=")
            if not eq or key not in ("ar", "local", "remote") or key in fields:
                raise InputError(
                    f"{text!r} is not ar=RATE,local=RATE,remote=RATE[@RTT] "
                    f"(e.g. {_CALIBRATE_EXAMPLE})"
                )
            fields[key] = value.strip()
        missing = [k for k in ("ar", "local", "remote") if k not in fields]
        if missing:
            raise InputError(f"{text!r} lacks {', '.join(missing)} (e.g. {_CALIBRATE_EXAMPLE})")
        remote, _, at = fields["remote"].partition("@")
        rtt: float | None = None
        pair: tuple[str, str] | None = None
        if ">" in at:
            src, _, dst = at.partition(">")
            pair = (src.strip(), dst.strip())
        elif at:
            rtt = units.parse_duration_ms(at.strip())
        return cls(_rate(fields["ar"]), _rate(fields["local"]), _rate(remote), rtt, pair)


def _rate(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{text!r} is not a rate in tokens/s (a number)") from None


@dataclass(frozen=True, slots=True)
class SpecOptions:
    """Speculative decoding across hosts: the block figures (or the rates they are calibrated
    from) and who proposes to whom."""

    accepted_per_block: float | None = None  # E
    block_ms: float | None = None  # co-located draft + verify
    ar_tokens_per_s: float | None = None  # the verifier alone
    proposers: tuple[str, ...] = ()  # (): the stage hosts
    verifiers: tuple[str, ...] = ()  # (): the stage hosts
    calibration: SpecCalibration | None = None  # replaces the three figures above

    def __post_init__(self) -> None:
        given = (self.accepted_per_block, self.block_ms, self.ar_tokens_per_s)
        if self.calibration is not None and any(v is not None for v in given):
            raise InputError(
                "spec: calibration rates (--spec-calibrate) replace E, block time and AR rate "
                "(--spec-accepted, --spec-block, --spec-ar-tps): give one or the other"
            )

    @property
    def given(self) -> bool:
        """Spec has its inputs: the three figures, or the calibration rates."""
        figures = (self.accepted_per_block, self.block_ms, self.ar_tokens_per_s)
        return self.calibration is not None or None not in figures


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """Whole requests spread over hosts, served serially per host."""

    service_ms: float | None = None  # one request on a host of capability 1
    requests: int = 64
    hosts: tuple[str, ...] = ()  # (): the stage hosts; the first one dispatches
    capability: tuple[tuple[str, float], ...] = ()  # relative speed per host (others: 1)
    payload_bytes: float | None = None  # None: seq × TOKEN_ID_BYTES


@dataclass(frozen=True, slots=True)
class AllReduce:
    """How tensor parallel's all-reduces are timed: an algorithm over the measured links, or the
    user's own measured time per all-reduce (formulas in ``formulas``)."""

    algorithm: Literal["ring", "tree", "measured"] = "ring"
    measured_ms: float | None = None  # "measured": one all-reduce of the decode payload

    @classmethod
    def parse(cls, text: str) -> AllReduce:
        """``ring``, ``tree`` or ``measured:TIME`` (e.g. ``measured:0.8ms``)."""
        if text in ("ring", "tree"):
            return cls("ring" if text == "ring" else "tree")
        kind, _, time = text.partition(":")
        if kind != "measured" or not time:
            raise InputError(f"{text!r} is not ring, tree or measured:TIME (e.g. measured:0.8ms)")
        measured = units.parse_duration_ms(time)
        if not measured > 0:
            raise InputError(f"{text!r}: the measured all-reduce time must be above 0")
        return cls("measured", measured)

    def __str__(self) -> str:
        if self.measured_ms is None:
            return self.algorithm
        return f"measured {self.measured_ms:g} ms"


_SWEEP = re.compile(r"^(rtt|bw)=(.+?)\.\.(.+?):(.+)$")
_NUMBER = re.compile(r"^\s*[0-9.]+\s*$")


@dataclass(frozen=True, slots=True)
class Sweep:
    """One variable set on every hop in turn: ``rtt`` (ms, both percentiles) or ``bw`` (bit/s)."""

    variable: Literal["rtt", "bw"]
    start: float
    stop: float
    step: float

    @classmethod
    def parse(cls, text: str) -> Sweep:
        """``rtt=0..200ms:10ms`` or ``bw=100mbit..10gbit:100mbit``; a bare start takes the stop's
        unit. Raises ``InputError`` on a malformed range or more than ``SWEEP_MAX_POINTS``."""
        m = _SWEEP.match(text.strip())
        if m is None:
            raise InputError(f"{text!r} is not rtt=START..STOP:STEP or bw=START..STOP:STEP")
        variable, start, stop, step = m.groups()
        parse = units.parse_duration_ms if variable == "rtt" else units.parse_rate_bps
        if _NUMBER.match(start):
            start += stop.strip().lstrip("0123456789.")
        sweep = cls("rtt" if variable == "rtt" else "bw", parse(start), parse(stop), parse(step))
        if sweep.step <= 0 or sweep.stop < sweep.start:
            raise InputError(f"{text!r}: needs START ≤ STOP and a STEP above 0")
        if variable == "bw" and sweep.start <= 0:
            raise InputError(f"{text!r}: a goodput sweep starts above 0")
        if len(sweep.points()) > SWEEP_MAX_POINTS:
            raise InputError(f"{text!r}: more than {SWEEP_MAX_POINTS} points")
        return sweep

    def points(self) -> tuple[float, ...]:
        """START, START + STEP, … up to STOP (included when a step lands on it)."""
        n = math.floor((self.stop - self.start) / self.step * (1 + 1e-12)) + 1
        return tuple(self.start + i * self.step for i in range(min(n, SWEEP_MAX_POINTS + 1)))


@dataclass(frozen=True, slots=True)
class CalcOptions:
    """Everything ``probe calc`` computes over one run, by scenario."""

    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    path: tuple[str, ...] = ()  # the stage hosts in order; (): placed automatically
    stages: int | None = None  # asked for (--stages); None: each scenario's default (calc.py)
    allreduce: AllReduce = field(default_factory=AllReduce)
    decode_compute_ms: float = 0.0  # per stage per decoded token (0: network only)
    prefill_compute_ms: float = 0.0  # per stage per prefill request
    tp_compute_ms: float = 0.0  # per token of the tensor-parallel group
    transport: Transport = field(default_factory=Transport)
    scenarios: frozenset[Scenario] | None = None  # None: auto (see ``wanted``)
    spec: SpecOptions = field(default_factory=SpecOptions)
    pool: PoolOptions = field(default_factory=PoolOptions)
    draws: Draws = field(default_factory=Draws)

    def wanted(self) -> frozenset[Scenario]:
        """The scenarios to run: auto = decode, prefill, tp, plus spec and pool when their
        inputs are given. Raises ``MissingInput`` before anything is computed."""
        wanted = self.scenarios
        if wanted is None:
            extra: set[Scenario] = set()
            if self.spec.accepted_per_block is not None or self.spec.calibration is not None:
                extra.add("spec")
            if self.pool.service_ms is not None:
                extra.add("pool")
            wanted = frozenset({"decode", "prefill", "tp", *extra})
        if "spec" in wanted and not self.spec.given:
            raise MissingInput("spec", ("accepted_per_block", "block_ms", "ar_tokens_per_s"))
        if "pool" in wanted and self.pool.service_ms is None:
            raise MissingInput("pool", ("service_ms",))
        return wanted


@dataclass(frozen=True, slots=True)
class RehearseOptions:
    """How a rehearsal runs; the workload itself is calc's (``CalcOptions``)."""

    pattern: Pattern = "decode"
    rounds: int | None = None  # None: DEFAULT_ROUNDS, decode: --tokens
    warmup: int = 2  # allreduce repetitions run first and not counted (start-up skew)
    # prefill, kv: the gap before each transfer; 4 s brings a window of twice a 240 ms path's
    # BDP back to the initial one (``rehearsal.idle_reset_ms``: 3.1 s), as calc's prediction has it
    idle_s: float = 4.0
    pings: int = 5  # prefill, kv: small echoed messages timing each hop's round trip
    max_bytes: int = 2**30  # bytes any one hop may carry in the whole rehearsal
    max_time_s: float = 300.0  # every relay's hard deadline
    per_message_ms: float = 0.0  # the corrected formula's fixed cost per message and hop
