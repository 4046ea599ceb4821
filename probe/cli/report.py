"""``probe report`` and ``probe diff``: render one run, compare two.

pandas and matplotlib are imported inside the commands so that ``probe --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from probe.cli import EXIT_FAIL, EXIT_OK, main
from probe.cli.jsondoc import diff_document, dumps
from probe.cli.options import field_option, json_option
from probe.decide.regression import DEFAULT_FAIL_ON, KINDS, Thresholds


def _warn(message: str) -> None:
    click.echo(f"probe: warning: {message}", err=True)


@main.command()
@click.argument("run")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Policy YAML: add its gate verdicts to the report (see inventory/policies/).",
)
def report(run: str, policy_file: str | None) -> int:
    """Write report.html (self-contained) and report.md into the run directory RUN."""
    from probe.report import build_report, save_report
    from probe.store.rundir import resolve_run

    run_dir = resolve_run(run)
    report = build_report(run_dir, Path(policy_file) if policy_file else None, warn=_warn)
    md, html = save_report(run_dir, report)
    if report.coverage.incomplete:
        click.echo(report.coverage.incomplete)
    click.echo(f"wrote {html}")
    click.echo(f"wrote {md}")
    return EXIT_OK


def _kinds(_ctx: click.Context, param: click.Parameter, value: str) -> frozenset[str]:
    names = {v.strip() for v in value.split(",") if v.strip()}
    if names == {"all"}:
        return frozenset(KINDS)
    if names == {"none"}:
        return frozenset()
    unknown = names - set(KINDS)
    if unknown:
        raise click.BadParameter(
            f"unknown {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}, all, none",
            param=param,
        )
    return frozenset(names)


@main.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option(
    "--fail-on",
    default=",".join(k for k in KINDS if k in DEFAULT_FAIL_ON),
    show_default=True,
    callback=_kinds,
    help=f"Regression kinds that make the exit code 1: comma list of {', '.join(KINDS)}, "
    "or all, or none.",
)
@field_option(
    "--rtt-p50-pct",
    type=float,
    default_from=(Thresholds, "rtt_p50_pct"),
    help="RTT p50 regressed: up by more than this percentage …",
)
@field_option(
    "--rtt-p50-ms",
    type=float,
    default_from=(Thresholds, "rtt_p50_ms"),
    help="… and by more than this many milliseconds.",
)
@field_option(
    "--rtt-p99-pct",
    type=float,
    default_from=(Thresholds, "rtt_p99_pct"),
    help="RTT p99 regressed: up by more than this percentage …",
)
@field_option(
    "--rtt-p99-ms",
    type=float,
    default_from=(Thresholds, "rtt_p99_ms"),
    help="… and by more than this many milliseconds.",
)
@field_option(
    "--loss-pp",
    type=float,
    default_from=(Thresholds, "loss_pp"),
    help="Loss regressed: up by more than this many percentage points.",
)
@field_option(
    "--bw-pct",
    type=float,
    default_from=(Thresholds, "bw_pct"),
    help="Bandwidth regressed: down by more than this percentage.",
)
@json_option("diff")
def diff(
    run_a: str,
    run_b: str,
    fail_on: frozenset[str],
    rtt_p50_pct: float,
    rtt_p50_ms: float,
    rtt_p99_pct: float,
    rtt_p99_ms: float,
    loss_pp: float,
    bw_pct: float,
    as_json: bool,
) -> int:
    """Compare RUN_A (before) with RUN_B (after). Exit 1 when a --fail-on regression occurred."""
    from probe.matrix.build import with_implied
    from probe.matrix.stored import matrix_of
    from probe.report.diff import diff_runs, render_diff
    from probe.store.rundir import read_run, resolve_run

    thresholds = Thresholds(rtt_p50_pct, rtt_p50_ms, rtt_p99_pct, rtt_p99_ms, loss_pp, bw_pct)
    dir_a, dir_b = resolve_run(run_a), resolve_run(run_b)
    # every pair of each run, implied ones too: a pair planned in one run only is a change
    before, after = (
        with_implied(matrix_of(d, warn=_warn, run=(run := read_run(d))), run)
        for d in (dir_a, dir_b)
    )
    result = diff_runs(before, after, thresholds)
    if as_json:
        click.echo(dumps(diff_document(result, fail_on, str(dir_a), str(dir_b))))
    else:
        click.echo(render_diff(result, fail_on), nl=False)
    return EXIT_FAIL if result.failed(fail_on) else EXIT_OK
