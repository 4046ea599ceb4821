"""``probe calc``, ``probe groups`` and ``probe gate``: offline analysis of one run's anchors.

RUN is a run directory (its stored matrix is read, not ``anchors.json``) or the path of an
anchors file. Each command parses its options into ``probe.decide.options`` values, calls one use
case and renders its answer. numpy and the calculator are imported inside the commands so that
``probe --help`` stays instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from probe import units
from probe.cli import main
from probe.cli.figures import render_calculation, render_gate, render_groups, render_sweep
from probe.cli.jsondoc import calc_document, dumps, gate_document, groups_document
from probe.cli.options import (
    comma_list,
    compute_options,
    duration_option,
    field_option,
    given_fields,
    host_list,
    json_option,
    model_options,
    parse_callback,
    path_option,
    spec_block_options,
)
from probe.decide.options import (
    SCENARIOS,
    TOKEN_ID_BYTES,
    AllReduce,
    CalcOptions,
    Draws,
    Limits,
    MissingInput,
    PipelineOptions,
    PoolOptions,
    Scenario,
    SpecCalibration,
    SpecOptions,
    Sweep,
    Transport,
)
from probe.errors import InputError

if TYPE_CHECKING:
    from probe.decide.sweep import SweepResult
    from probe.matrix.anchors import Anchors

_F = TypeVar("_F", bound=Callable[..., Any])
#: What ``probe calc`` says when a scenario lacks its inputs, in the words of its options.
_NEEDS: dict[Scenario, str] = {
    "spec": "spec needs --spec-accepted, --spec-block and --spec-ar-tps, or --spec-calibrate",
    "pool": "pool needs --pool-service (e.g. 800ms)",
}


def _load_run(run: str) -> Anchors:
    """A run directory's anchors from its stored matrix (``matrix.stored``: no JSON of a million
    pairs to parse); an anchors file, or a directory holding only one, parsed."""
    from probe.matrix.anchors import load_anchors
    from probe.matrix.stored import anchors_of

    p = Path(run)
    if (p / "run.json").is_file():
        return anchors_of(p, warn=lambda m: click.echo(f"probe: warning: {m}", err=True))
    if p.is_dir():
        p = p / "anchors.json"
    if not p.exists():
        raise InputError(
            "no anchors.json here (give a run directory or an anchors file)", where=str(p)
        )
    return load_anchors(p)


def _scenarios(
    _ctx: click.Context, _param: click.Parameter, value: str
) -> frozenset[Scenario] | None:
    if value == "auto":
        return None
    wanted = set(comma_list(value))
    unknown = wanted - set(SCENARIOS)
    if unknown:
        raise click.BadParameter(f"unknown {', '.join(sorted(unknown))}", param_hint="--scenario")
    return frozenset(s for s in SCENARIOS if s in wanted)


def _capability(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[tuple[str, float], ...]:
    factors = []
    for item in comma_list(value):
        name, _, text = item.partition("=")
        try:
            factor = float(text)
        except ValueError:
            raise click.BadParameter(
                f"{item!r} is not host=factor", param_hint="--capability"
            ) from None
        if not (factor > 0 and math.isfinite(factor)):
            raise click.BadParameter(
                f"{item!r}: the factor must be a positive number", param_hint="--capability"
            )
        factors.append((name, factor))
    return tuple(factors)


@main.command()
@click.argument("run")
@model_options()
@path_option
@compute_options
@duration_option("--tp-compute", help="Compute per token of the tensor-parallel group, e.g. 8ms.")
@field_option(
    "--after-idle/--warm",
    default_from=(Transport, "after_idle"),
    help="Prefill: each hop's transfer starts in TCP slow start (the connection sat idle or "
    "carried only decode messages; not over a BBR sender), and decode's messages over a BBR "
    "sender are paced at its start-up rate; --warm: today's formula.",
)
@duration_option(
    "--per-message",
    help="Fixed cost per message per hop for decode and prefill, e.g. 0.2ms (default 0 until "
    "probe rehearse measures one).",
)
@click.option(
    "--allreduce",
    callback=parse_callback(AllReduce.parse),
    help="tp: ring (default), tree, or measured:TIME, your own time per all-reduce of the "
    "decode payload (e.g. measured:0.8ms).",
)
@click.option(
    "--scenario",
    "scenarios",
    default="auto",
    show_default=True,
    callback=_scenarios,
    help="Comma list of decode,prefill,tp,spec,pool; auto = decode,prefill,tp plus spec "
    "and pool when their inputs are given.",
)
@spec_block_options
@click.option(
    "--spec-ar-tps",
    type=click.FloatRange(min=0, min_open=True),
    help="spec: autoregressive tokens/s of the verifier alone.",
)
@click.option(
    "--spec-calibrate",
    callback=parse_callback(SpecCalibration.parse),
    help="spec: solve E and the block time from measured tokens/s instead: autoregressive, "
    "co-located and one remote point at its RTT, e.g. ar=30,local=75,remote=52@40ms "
    "(remote=52@P>V or remote=52 with one --proposers and --verifiers: the run's RTT).",
)
@click.option(
    "--proposers", callback=host_list, help="spec: proposer hosts (default: the stage hosts)."
)
@click.option(
    "--verifiers", callback=host_list, help="spec: verifier hosts (default: the stage hosts)."
)
@duration_option(
    "--pool-service",
    help="pool: service time of one request on a capability-1.0 host, e.g. 800ms.",
)
@field_option(
    "--pool-requests",
    type=click.IntRange(min=1),
    default_from=(PoolOptions, "requests"),
    help="pool: number of requests.",
)
@click.option(
    "--pool-hosts",
    callback=host_list,
    help="pool: hosts (default: the stage hosts); the first dispatches.",
)
@click.option(
    "--capability",
    callback=_capability,
    help="pool: relative speed per host, e.g. a=1,b=0.5 (default 1).",
)
@click.option(
    "--payload",
    callback=parse_callback(units.parse_size_bytes),
    help=f"pool: bytes moved per request, e.g. 64KiB (default seq × {TOKEN_ID_BYTES:g} B of "
    "token ids).",
)
@field_option(
    "--trials",
    type=click.IntRange(min=0),
    default_from=(Draws, "trials"),
    help="Monte-Carlo trials (0: off).",
)
@field_option(
    "--seed",
    type=int,
    default_from=(Draws, "seed"),
    help="Monte-Carlo RNG seed.",
)
@click.option(
    "--sweep",
    "sweep_text",
    callback=parse_callback(Sweep.parse),
    help="Set every hop's RTT (rtt=0..200ms:10ms) or goodput (bw=100mbit..10gbit:100mbit) to "
    "each value in turn: a table of the figures and a PNG curve.",
)
@click.option(
    "--sweep-png",
    type=click.Path(dir_okay=False),
    help="Where --sweep writes its curve (default: calc-sweep-VAR.png beside the run).",
)
@json_option("calc")
def calc(
    run: str,
    pipeline: PipelineOptions,
    path_: tuple[str, ...],
    decode_compute: float | None,
    prefill_compute: float | None,
    tp_compute: float | None,
    after_idle: bool,
    per_message: float | None,
    allreduce: AllReduce | None,
    scenarios: frozenset[Scenario] | None,
    spec_accepted: float | None,
    spec_block: float | None,
    spec_ar_tps: float | None,
    spec_calibrate: SpecCalibration | None,
    proposers: tuple[str, ...],
    verifiers: tuple[str, ...],
    pool_service: float | None,
    pool_requests: int,
    pool_hosts: tuple[str, ...],
    capability: tuple[tuple[str, float], ...],
    payload: float | None,
    trials: int,
    seed: int,
    as_json: bool,
    sweep_text: Sweep | None,
    sweep_png: str | None,
) -> int:
    """Predict decode, prefill, tensor-parallel, speculative and pooling times over RUN."""
    anchors = _load_run(run)  # before numpy is imported: a bad run fails fast
    stages_given = "stages" in given_fields(click.get_current_context(), PipelineOptions)
    options = CalcOptions(
        pipeline=pipeline,
        path=path_,
        stages=pipeline.stages if stages_given else None,
        allreduce=allreduce or AllReduce(),
        decode_compute_ms=decode_compute or 0.0,
        prefill_compute_ms=prefill_compute or 0.0,
        tp_compute_ms=tp_compute or 0.0,
        transport=Transport(after_idle, per_message or 0.0, sparse_pacing=after_idle),
        scenarios=scenarios,
        spec=SpecOptions(
            accepted_per_block=spec_accepted,
            block_ms=spec_block,
            ar_tokens_per_s=spec_ar_tps,
            proposers=proposers,
            verifiers=verifiers,
            calibration=spec_calibrate,
        ),
        pool=PoolOptions(
            service_ms=pool_service,
            requests=pool_requests,
            hosts=pool_hosts,
            capability=capability,
            payload_bytes=payload,
        ),
        draws=Draws(trials=trials, seed=seed),
    )

    from probe.decide.calc import calc as calculate

    try:
        result = calculate(anchors, options)
    except MissingInput as exc:
        raise click.UsageError(_NEEDS[exc.scenario]) from None
    swept = None if sweep_text is None else _sweep(run, anchors, options, sweep_text, sweep_png)
    if as_json:  # one document: the sweep inside it
        click.echo(dumps(calc_document(result, *swept) if swept else calc_document(result)))
        return 0
    click.echo(render_calculation(result))
    if swept:
        click.echo(render_sweep(swept[0]))
        click.echo(f"curve: {swept[1]}")
    return 0


def _sweep(
    run: str, anchors: Anchors, options: CalcOptions, s: Sweep, png: str | None
) -> tuple[SweepResult, str]:
    """The sweep, and where its curve was written: beside the run, or to ``png``."""
    from probe.decide.sweep import sweep
    from probe.report.curve import sweep_png
    from probe.textio import save

    res = sweep(anchors, options, s)
    where = Path(run) if Path(run).is_dir() else Path(run).parent
    target = Path(png) if png else where / f"calc-sweep-{s.variable}.png"
    save(target, sweep_png(res, f"run {anchors.run_id}: every hop's {s.variable} swept"))
    return res, str(target)


@main.command()
@click.argument("run")
@duration_option(
    "--max-rtt",
    required=True,
    help="Highest RTT allowed between two members, both directions, e.g. 5ms.",
)
@field_option(
    "--min-bw",
    callback=parse_callback(units.parse_rate_bps),
    default_from=(Limits, "min_bw_bps"),
    help="Lowest goodput allowed between two members, both directions, e.g. 10gbit.",
)
@field_option(
    "--rtt-stat",
    type=click.Choice(["p50", "p99"]),
    default_from=(Limits, "rtt_stat"),
    help="Which RTT statistic is held to --max-rtt.",
)
@model_options()
@json_option("groups")
def groups(
    run: str,
    max_rtt: float,
    min_bw: float | None,
    rtt_stat: str,
    pipeline: PipelineOptions,
    as_json: bool,
) -> int:
    """Network-local groups of RUN, each with its best stage order and predicted figures."""
    anchors = _load_run(run)  # before numpy is imported: a bad run fails fast
    limits = Limits(max_rtt, min_bw, "p99" if rtt_stat == "p99" else "p50")

    from probe.decide.groups import group_run

    found = group_run(anchors, limits, pipeline)
    if as_json:
        click.echo(dumps(groups_document(anchors.run_id, limits, pipeline.stages, found)))
    else:
        click.echo(render_groups(anchors.run_id, pipeline.stages, found))
    return 0


@main.command()
@click.argument("run")
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Policy YAML (see inventory/policies/).",
)
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False),
    help="Also write a Markdown summary here (for CI logs).",
)
@json_option("gate")
def gate(run: str, policy_file: str, markdown_file: str | None, as_json: bool) -> int:
    """Judge RUN against a policy. Exit 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 2 usage or input error."""
    from probe.decide.gate import evaluate
    from probe.decide.policy import load_policy
    from probe.report.gate import render_markdown
    from probe.textio import save

    policy = load_policy(policy_file)
    report = evaluate(policy, _load_run(run))
    click.echo(
        dumps(gate_document(report, policy.name)) if as_json else render_gate(report, policy.name)
    )
    if markdown_file:
        save(Path(markdown_file), render_markdown(report))
    return report.exit_code
