"""``probe rehearse``: send the inference traffic pattern over the fleet and check calc against it.

INVENTORY_OR_RUN is a run directory (its inventory is the one the run recorded, and calc predicts
from its anchors) or an inventory (measured only: no prediction). The raw timings and the summary
go to ``rehearsal-<id>/`` inside the run directory, or inside ``--output`` with an inventory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from probe.cli import EXIT_FAIL, EXIT_OK, main, say
from probe.cli.jsondoc import Doc, dumps, rehearse_document
from probe.cli.options import (
    compute_options,
    duration_option,
    field_option,
    given_fields,
    json_option,
    model_options,
    option_names,
    path_option,
    spec_block_options,
    ssh_options,
    ssh_options_of,
)
from probe.decide.options import (
    PATTERNS,
    CalcOptions,
    Pattern,
    PipelineOptions,
    RehearseOptions,
    SpecOptions,
)
from probe.errors import InputError

if TYPE_CHECKING:
    from probe.decide.rehearse import Figure, Traffic
    from probe.matrix.anchors import Anchors
    from probe.measure.rehearsal import Rehearsal
    from probe.model import Inventory

#: Hosts a pattern takes without --path or --stages.
DEFAULT_STAGES: dict[str, int] = {"decode": 3, "prefill": 3, "allreduce": 4, "spec": 2, "kv": 2}


@main.command()
@click.argument("target", metavar="INVENTORY_OR_RUN")
@field_option(
    "--pattern",
    type=click.Choice(PATTERNS),
    default_from=(RehearseOptions, "pattern"),
    help="The traffic: decode tokens round the stages, prefill activations after an idle gap, a "
    "ring all-reduce, speculative blocks, or one KV-cache transfer.",
)
@path_option
@model_options(ring=False)
@compute_options
@spec_block_options
@field_option(
    "--rounds",
    type=click.IntRange(min=1),
    default_from=(RehearseOptions, "rounds"),
    help="Rounds (default: --tokens for decode, 3 prefill and kv, 20 allreduce and spec).",
)
@field_option(
    "--warmup",
    type=click.IntRange(min=0),
    default_from=(RehearseOptions, "warmup"),
    help="allreduce: repetitions first run and not counted.",
)
@field_option(
    "--idle",
    "idle_s",
    type=click.FloatRange(min=0),
    default_from=(RehearseOptions, "idle_s"),
    help="prefill, kv: seconds idle before each transfer.",
)
@field_option(
    "--pings",
    type=click.IntRange(min=1),
    default_from=(RehearseOptions, "pings"),
    help="prefill, kv: small echoed messages timing each hop's round trip.",
)
@field_option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default_from=(RehearseOptions, "max_bytes"),
    help="The most bytes any one hop may carry.",
)
@field_option(
    "--max-time",
    "max_time_s",
    type=click.FloatRange(min=1),
    default_from=(RehearseOptions, "max_time_s"),
    help="Seconds after which every relay ends, whatever happens.",
)
@duration_option(
    "--per-message",
    "per_message_ms",
    help="The corrected formula's fixed cost per message and hop, e.g. 0.05ms (default 0).",
)
@click.option(
    "-o",
    "--output",
    default="reports",
    show_default=True,
    help="With an inventory: where rehearsal-<id>/ is written.",
)
@ssh_options
@json_option("rehearse")
def rehearse(
    target: str,
    pattern: str,
    path_: tuple[str, ...],
    pipeline: PipelineOptions,
    decode_compute: float | None,
    prefill_compute: float | None,
    spec_accepted: float | None,
    spec_block: float | None,
    rounds: int | None,
    warmup: int,
    idle_s: float,
    pings: int,
    max_bytes: int,
    max_time_s: float,
    per_message_ms: float | None,
    output: str,
    accept_new: bool,
    known_hosts: str | None,
    connect_timeout: float,
    as_json: bool,
) -> int:
    """Rehearse a traffic pattern on the fleet; with a run, measured against calc's prediction."""
    from probe.decide.rehearse import figures, traffic

    inventory, anchors, run_dir = _target(target)
    calc = CalcOptions(
        pipeline=pipeline,
        decode_compute_ms=decode_compute or 0.0,
        prefill_compute_ms=prefill_compute or 0.0,
        spec=SpecOptions(accepted_per_block=spec_accepted, block_ms=spec_block),
    )
    options = RehearseOptions(
        cast(Pattern, pattern), rounds, warmup, idle_s, pings, max_bytes, max_time_s,
        per_message_ms or 0.0,
    )  # fmt: skip
    given = "stages" in given_fields(click.get_current_context(), PipelineOptions)
    k = pipeline.stages if given else DEFAULT_STAGES[pattern]
    path = path_ or _place(inventory, anchors, k, calc)
    t = traffic(path, calc, options)
    with option_names():
        ssh = ssh_options_of(accept_new, connect_timeout, known_hosts)

    from probe.decide import scenarios as sc
    from probe.measure.rehearsal import rehearse_fleet, write_timings
    from probe.report.rehearsals import FOLDER_PREFIX

    done = asyncio.run(rehearse_fleet(inventory, t, options, ssh, say))
    folder = (run_dir or Path(output)) / f"{FOLDER_PREFIX}{done.rehearsal_id}"
    timings = write_timings(folder, done)
    links = sc.Links.from_anchors(anchors) if anchors is not None else None
    found = figures(t, done.timings, links, options) if done.ok else ()
    run_id = anchors.run_id if anchors is not None else None
    doc = rehearse_document(done, found, run_id, str(timings))
    save_summary(folder, doc)
    click.echo(dumps(doc) if as_json else render(done, t, found, run_id, str(timings)))
    return EXIT_OK if done.ok else EXIT_FAIL


def save_summary(folder: Path, doc: Doc) -> Path:
    """``summary.json``: the ``--json`` document, which the report reads back."""
    from probe.report.rehearsals import SUMMARY_FILE
    from probe.textio import save

    target = folder / SUMMARY_FILE
    save(target, dumps(doc) + "\n")
    return target


def _target(target: str) -> tuple[Inventory, Anchors | None, Path | None]:
    """The inventory, and with a run directory its anchors and the directory."""
    from probe.cli import say
    from probe.inventory import load_inventory
    from probe.matrix.stored import anchors_of
    from probe.store.rundir import read_run

    p = Path(target)
    if not p.is_dir():
        return load_inventory(p), None, None
    if not (p / "run.json").exists():
        raise InputError("not a run directory (no run.json)", where=str(p))
    run = read_run(p)
    # the stamped matrix, as calc reads it: the prediction is calc's on the same figures
    anchors = anchors_of(p, warn=lambda m: say(f"probe: warning: {m}"))
    return load_inventory(run.inventory.path), anchors, p


def _place(
    inventory: Inventory, anchors: Anchors | None, k: int, calc: CalcOptions
) -> tuple[str, ...]:
    """K hosts: placed like calc's decode on a run (lowest round trip), else the first K
    measured hosts of the inventory."""
    if anchors is None:
        hosts = tuple(h.name for h in inventory.measured)[:k]
        if len(hosts) < k:
            raise InputError(f"--stages {k}: the inventory measures {len(hosts)} hosts")
        return hosts
    from probe.decide import scenarios as sc

    payload = sc.Workload.of(calc.pipeline).activation_bytes(1, 1)
    return sc.place(sc.Links.from_anchors(anchors), k, payload, True).path


def _ms(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:+.1f}%"


def render(
    r: Rehearsal, t: Traffic, found: tuple[Figure, ...], run_id: str | None, timings: str
) -> str:
    """The text view: what ran where, then measured against predicted per figure."""
    from tabulate import tabulate

    loop = " → ".join((*t.hosts, t.hosts[0]) if t.mechanism != "transfer" else t.hosts)
    lines = [
        f"rehearsal {r.rehearsal_id}: {t.pattern} over {loop}, {t.rounds} rounds, "
        f"{max(t.send_bytes)} B per message at most ({r.elapsed_s:.1f} s)"
    ]
    for h in r.hosts:
        if h.status.value != "ok":
            lines.append(f"{h.host}: {h.status.value}: {h.reason}")
        else:
            lines.append(f"{h.host}: relay on {h.address}:{h.port}")
    if found:
        rows = [
            [x.name, x.unit, x.samples, _ms(x.measured_p50), _ms(x.measured_p99),
             _ms(x.predicted_p50), _ms(x.predicted_p99), _pct(x.error_p50_pct),
             _ms(x.corrected_p50), _pct(x.corrected_error_p50_pct)]
            for x in found
        ]  # fmt: skip
        head = ["figure", "unit", "n", "measured p50", "p99", "predicted p50", "p99", "error",
                "corrected p50", "error"]  # fmt: skip
        lines.append(tabulate(rows, head))
    if run_id is None:
        lines.append("no prediction: an inventory was given, not a run (rehearse RUN to compare)")
    elif any(x.lower_bound for x in found):
        lines.append("lower bound: a hop's goodput was not measured in the run")
    lines.append(f"timings: {timings}")
    return "\n".join(lines)
