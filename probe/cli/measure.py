"""``probe check | run | show | export``: measure a fleet and look at the matrix."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from probe.cli import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, main, say
from probe.cli.jsondoc import check_document, dumps
from probe.cli.options import (
    field_option,
    given_fields,
    json_option,
    option_names,
    ssh_options,
    ssh_options_of,
)
from probe.errors import Terminated
from probe.measure.bandwidth import AUTH_MODES, AuthMode, BandwidthOptions
from probe.measure.context import PINGERS, Pinger, RunOptions
from probe.model import PortRange
from probe.networks import ALL_NETWORKS
from probe.tools.ping import PING_FANOUT_MAX

if TYPE_CHECKING:
    import pandas as pd

    from probe.matrix.unmeasured import Unmeasured
    from probe.measure.check import HostCheck
    from probe.store.rundoc import RunDoc


def _warn(message: str) -> None:
    click.echo(f"probe: warning: {message}", err=True)


class PortsType(click.ParamType[PortRange, object]):
    """``LO-HI`` or ``PORT``; the range itself is checked by ``BandwidthOptions``."""

    name = "LO-HI"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> PortRange:
        if isinstance(value, PortRange):
            return value
        try:
            return PortRange.parse(str(value), check=False)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


CHECK_COLUMNS = (
    "host", "region", "ssh", "connect s", "command s", "ping", "iperf3", "iperf3 auth",
    "ping_group_range", "reason",
)  # fmt: skip


def _seconds(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else ""


def _printable(text: str) -> str:
    """A cell as one line of visible text. Cells carry what hosts answered: a tab (Linux's
    ping_group_range is ``0<TAB>2147483647``) or a newline would break the table, an escape
    sequence would reach the terminal."""
    return "".join(c if c.isprintable() else " " if c.isspace() else repr(c)[1:-1] for c in text)


def _tool(c: HostCheck, tool: str, version: str | None) -> str:
    if not c.usable or c.relay:
        return ""
    return version or ("HUNG" if tool in c.hung else "MISSING")


def render_check(checks: Sequence[HostCheck]) -> str:
    """The table of ``probe check``: a missing tool says MISSING, a hanging one HUNG, a failed
    host its reason; a relay (a jump host, not measured) is marked as one and its tools are not
    asked. Below it, one line per thing a host's account lacks, with what it costs, and the
    hosts whose ping is not today's iputils (its output differs: probe reads it)."""
    from tabulate import tabulate

    from probe.measure.check import account_findings

    rows = [
        [
            f"{c.host} (relay)" if c.relay else c.host,
            c.region,
            str(c.status),
            _seconds(c.connect_s),
            _seconds(c.command_s),
            _tool(c, "ping", c.ping),
            _tool(c, "iperf3", c.iperf3),
            c.iperf3_auth if c.usable and not c.relay else "",
            c.ping_group_range or "",
            c.reason or "",
        ]
        for c in checks
    ]
    clean = [[_printable(cell) for cell in row] for row in rows]
    notes = [f"{c.host}: {line}" for c in checks if c.usable for line in account_findings(c)]
    odd = (c for c in checks if c.ping_flavor not in (None, "iputils"))
    notes += [f"{c.host}: ping is {c.ping_flavor}" for c in odd]
    return "\n".join([tabulate(clean, CHECK_COLUMNS), *map(_printable, notes)])


@main.command()
@click.argument("inventory", type=click.Path(dir_okay=False))
@ssh_options
@json_option("check")
def check(
    inventory: str, accept_new: bool, known_hosts: str | None, connect_timeout: float, as_json: bool
) -> int:
    """Can every host be reached and does it have ping and iperf3? A table and an exit code."""
    from probe.inventory import load_inventory

    inv = load_inventory(inventory)  # before the heavy imports: a bad file fails fast
    with option_names():
        ssh = ssh_options_of(accept_new, connect_timeout, known_hosts)

    from probe.measure.check import check as check_fleet

    checks = asyncio.run(check_fleet(inv, ssh))
    click.echo(dumps(check_document(checks)) if as_json else render_check(checks))
    return EXIT_OK if all(c.ready for c in checks) else EXIT_FAIL


@main.command()
@click.argument("inventory", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", "out", default="reports", show_default=True, help="Directory of runs."
)
@field_option(
    "--count",
    type=int,
    default_from=(RunOptions, "count"),
    help="Pings per pair.",
)
@field_option(
    "--interval",
    type=float,
    default_from=(RunOptions, "interval_s"),
    help="Seconds between pings.",
)
@field_option(
    "--pinger",
    type=click.Choice(PINGERS),
    default_from=(RunOptions, "pinger"),
    help="Ping with fping (one process per source), with ping (one per target, at most "
    f"{PING_FANOUT_MAX} at a time), or auto: fping on the sources that have it.",
)
@field_option(
    "--ping-pairs",
    default_from=(RunOptions, "ping_pairs"),
    help="Ping pairs: all | intra-region | intra-zone | sample:K (full mesh inside each region, "
    "K seeded representatives per region across); the rest are not-planned, never failures.",
)
@field_option(
    "--bandwidth/--no-bandwidth",
    default_from=(RunOptions, "bandwidth"),
    help="Run iperf3 tests.",
)
@field_option(
    "--duration",
    type=int,
    default_from=(BandwidthOptions, "duration_s"),
    help="iperf3 seconds measured.",
)
@field_option(
    "--omit",
    type=int,
    default_from=(BandwidthOptions, "omit_s"),
    help="iperf3 warm-up seconds omitted.",
)
@field_option(
    "--streams",
    type=int,
    default_from=(BandwidthOptions, "streams"),
    help="iperf3 parallel streams (-P).",
)
@field_option(
    "--congestion",
    metavar="ALGO",
    default_from=(BandwidthOptions, "congestion"),
    help="TCP congestion control the iperf3 sender uses (iperf3 -C, e.g. cubic, bbr); "
    "default: each host's own. Recorded per test either way.",
)
@field_option(
    "--auth",
    type=click.Choice(AUTH_MODES),
    default_from=(BandwidthOptions, "auth"),
    help="Authenticate iperf3 tests with a credential made for the run and removed after it: "
    "auto where both ends can (iperf3 3.7+ with OpenSSL), required (a pair that cannot is "
    "not measured), or off.",
)
@field_option(
    "--iperf3-ports",
    type=PortsType(),
    default_from=(BandwidthOptions, "iperf3_ports"),
    help="TCP ports iperf3 servers listen on (LO-HI), unless a host's inventory names its own "
    "(iperf3_ports).",
)
@field_option(
    "--pairs",
    default_from=(RunOptions, "pairs"),
    help="Bandwidth pairs: all | cross-region | intra-region | sample:K.",
)
@field_option(
    "--exclusive-by",
    type=click.Choice(["region", "zone"]),
    default_from=(RunOptions, "exclusive_by"),
    help="At most one bandwidth test per site at a time (shared uplinks).",
)
@field_option(
    "--compare-streams",
    type=int,
    default_from=(RunOptions, "compare_streams"),
    help="Also run each bandwidth test with -P N streams, for comparison with the single stream.",
)
@field_option(
    "--under-load",
    is_flag=True,
    default_from=(RunOptions, "under_load"),
    help="Also ping each pair while its bandwidth test runs (latency under load, bufferbloat).",
)
@field_option(
    "--network",
    default_from=(RunOptions, "network"),
    help="Measure over this network only (an inventory 'addresses:' name); pairs not both on "
    "it are not-measurable.",
)
@field_option(
    "--networks",
    type=click.Choice([ALL_NETWORKS]),
    default_from=(RunOptions, "networks"),
    help="all: measure each pair over every network both hosts are on, a cell per network (the "
    "preferred network's cells feed the grids, anchors and calc).",
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    default=None,
    help="Continue an interrupted run with its own options: only missing cells are measured.",
)
@ssh_options
def run(
    inventory: str,
    out: str,
    count: int,
    interval: float,
    pinger: Pinger,
    ping_pairs: str,
    bandwidth: bool,
    duration: int,
    omit: int,
    streams: int,
    congestion: str | None,
    auth: AuthMode,
    iperf3_ports: PortRange,
    pairs: str,
    exclusive_by: str | None,
    compare_streams: int,
    under_load: bool,
    network: str | None,
    networks: str | None,
    resume: str | None,
    accept_new: bool,
    known_hosts: str | None,
    connect_timeout: float,
) -> int:
    """Measure RTT, loss, jitter (every ordered pair) and single-stream bandwidth (both ways).

    Ctrl-C (exit 130) or SIGTERM (exit 143) stops remote tools and keeps what was measured;
    continue with --resume, which measures with the run's own options (one given with another
    value is an error) and needs the same hosts, addresses and labels. Every option is checked
    before anything connects.
    """
    from probe.inventory import load_inventory

    with option_names():
        options = RunOptions(
            count=count,
            interval_s=interval,
            pinger=pinger,
            ping_pairs=ping_pairs,
            bandwidth=bandwidth,
            pairs=pairs,
            exclusive_by=exclusive_by,
            under_load=under_load,
            compare_streams=compare_streams,
            network=network,
            networks=networks,
            bw=BandwidthOptions(
                duration_s=duration,
                omit_s=omit,
                streams=streams,
                congestion=congestion,
                auth=auth,
                iperf3_ports=iperf3_ports,
            ),
        )
    inv = load_inventory(inventory)  # before the heavy imports: a bad file fails fast
    for message in options.warnings(inv.measured, getpass.getuser()):
        _warn(message)

    from probe.measure.execute import execute
    from probe.store.rundir import resolve_run

    with option_names():
        ssh = ssh_options_of(accept_new, connect_timeout, known_hosts)
    resume_dir = resolve_run(resume) if resume else None
    try:
        summary = asyncio.run(
            execute(
                inv,
                out_root=Path(out),
                options=options,
                ssh=ssh,
                say=say,
                resume=resume_dir,
                given=given_fields(click.get_current_context(), RunOptions, BandwidthOptions),
            )
        )
    except KeyboardInterrupt:
        say("interrupted: partial results are in the run directory (resume with --resume)")
        return EXIT_INTERRUPTED
    except Terminated as exc:
        say(str(exc))
        return exc.exit_code
    click.echo(str(summary.run_dir))
    return EXIT_OK if summary.complete else EXIT_PARTIAL


def _load_matrix(path: Path) -> tuple[RunDoc, pd.DataFrame]:
    """run.json (checked before pandas is imported: fail fast) and the matrix (stored)."""
    from probe.store.rundir import read_run

    run_doc = read_run(path)
    from probe.matrix.stored import matrix_of

    return run_doc, matrix_of(path, warn=_warn, run=run_doc)


@main.command()
@click.argument("run_dir", metavar="RUN", default="reports/latest")
@click.option(
    "--metric",
    default="rtt_p50_ms",
    show_default=True,
    help="rtt_p50_ms, rtt_p99_ms, loss_pct, ipdv_ms, rtt_mdev_ms, bw_mbps, …",
)
@click.option(
    "--by",
    type=click.Choice(["host", "region"]),
    default="host",
    show_default=True,
    help="host: the src × dst grid; region: the region roll-up (pooled loss, medians of pairs).",
)
@json_option("show")
def show(run_dir: str, metric: str, by: str, as_json: bool) -> int:
    """Print the src × dst grid of one metric (a cell without a number shows its status).

    A run with cells not measured yet (interrupted, killed) says so on the first line."""
    from probe.store.rundir import resolve_run

    path = resolve_run(run_dir)
    run_doc, frame = _load_matrix(path)

    from probe.cli.render import render_grid, render_regions
    from probe.matrix.unmeasured import unmeasured

    missing = unmeasured(run_doc, frame)
    notice = missing.notice(str(path), run_doc.inventory.path)
    if as_json:
        if notice:
            _warn(notice)
        click.echo(dumps(_show_document(run_doc, frame, metric, by, missing, notice)))
        return EXIT_OK
    if notice:
        click.echo(notice)
    if by == "region":
        text = render_regions(run_doc, frame, metric)
    else:
        text = render_grid(run_doc, frame, metric)
    click.echo(text)
    return EXIT_OK


def _show_document(
    run: RunDoc, frame: pd.DataFrame, metric: str, by: str, missing: Unmeasured, notice: str | None
) -> dict[str, object]:
    from probe.cli.jsondoc import show_hosts_document, show_regions_document
    from probe.matrix import build as matrix
    from probe.matrix.regions import figure

    if by == "region":
        rows = matrix.by_region(frame, metric, run)
        left_out = matrix.left_out_by_region(frame, metric, run)
        definition = figure(metric).definition
        return show_regions_document(
            run.run_id, metric, definition, rows, left_out, missing, notice
        )
    order = matrix.host_order(run)
    values = matrix.wide(frame, metric, order)
    statuses = matrix.status_grid(frame, order, bandwidth=metric.startswith("bw"), run=run)
    bounds = matrix.confidence_grids(frame, metric, order)
    return show_hosts_document(run.run_id, metric, values, statuses, missing, notice, bounds)


@main.command()
@click.argument("run_dir", metavar="RUN", default="reports/latest")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "parquet", "markdown", "prometheus"]),
    default="csv",
    help="Long form (one row per ordered pair), or Prometheus text exposition.",
    show_default=True,
)
@click.option("-o", "--output", default="-", show_default=True, help="File, or - for stdout.")
@click.option(
    "--with-unplanned",
    is_flag=True,
    help="Add a row for each pair a sampled --ping-pairs plan left out without a bandwidth "
    "cell (not-planned, no figures): the full N×(N−1). Without it, only the pairs with a "
    "measurement or a reason of their own, as stored.",
)
def export(run_dir: str, fmt: str, output: str, with_unplanned: bool) -> int:
    """Export the long-form matrix (one row per ordered pair with a measurement or a reason
    of its own, with status and reason; --with-unplanned: every ordered pair)."""
    from probe.store.rundir import resolve_run
    from probe.textio import save

    path = resolve_run(run_dir)
    run_doc, frame = _load_matrix(path)
    if with_unplanned:
        from probe.matrix.build import with_implied

        frame = with_implied(frame, run_doc)
    if fmt == "parquet":
        if output == "-":
            raise click.UsageError("parquet is binary: give -o FILE")
        save(Path(output), frame.to_parquet(None, index=False))
        return EXIT_OK
    if fmt == "csv":
        text = frame.to_csv(index=False)
    elif fmt == "json":
        text = frame.to_json(orient="records", indent=1)
    elif fmt == "markdown":
        text = frame.to_markdown(index=False)
    else:
        from probe.report.prometheus import prometheus_text

        text = prometheus_text(run_doc, frame)
    if output == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:  # write then rename: a textfile collector never reads half a file
        save(Path(output), text)
    return EXIT_OK
