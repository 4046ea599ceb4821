"""``report.md``: the report as GitHub-flavoured Markdown (CI logs, pull requests, terminals).

Deterministic for a given run directory (no generation time, no absolute paths), so it is
golden-tested. Heatmaps are HTML-only; small fleets get the same grids as text tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from probe.model import CellStatus
from probe.report import (
    CELLS_ELSEWHERE,
    NETWORK_HEADERS,
    NETWORKS_NOTE,
    ROLLUP_HEADERS,
    Report,
    rollup_cells,
)
from probe.report.heatmap import HEATMAPS, MetricSpec, grids, short

GRID_MAX = 16  # hosts; larger fleets get no text grids (see report.html)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    clean = [[_cell(c) for c in row] for row in rows]
    return tabulate(clean, list(headers), tablefmt="github", disable_numparse=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def summary_lines(report: Report) -> list[str]:
    c = report.coverage
    regions = ", ".join(f"{r} {n}" for r, n in c.regions)
    lines = [
        f"- **Fleet**: {c.hosts} hosts in {len(c.regions)} regions ({regions}); "
        f"{c.hosts - len(c.down)} reachable.",
    ]
    for host, why in c.down:
        lines.append(f"- **Down**: {host} ({why})")
    state = "complete" if c.complete else "incomplete"
    if c.interrupted:
        state += ", interrupted"
    phases = ", ".join(f"{k.removesuffix('_s')} {v:g} s" for k, v in c.phases)
    lines.append(
        f"- **Run**: {c.started_utc} → {c.ended_utc} ({_duration(c.duration_s)}; {state})"
        + (f"; phases: {phases}" if phases else "")
    )
    if (i := c.imported) is not None:
        what = (
            "ping/fping/iperf3 outputs parsed as probe's own"
            if i.format == "captures"
            else "one RTT figure per pair (every RTT statistic is that figure), no probes behind it"
        )
        lines.append(f"- **Imported** ({i.format}) from {i.source}, not measured by probe: {what}")
    if c.torn_lines:
        lines.append(f"- **Damaged**: {c.torn_lines} torn line(s) in samples.jsonl were skipped")
    failed_ping = c.pairs - c.ping_ok - c.ping_all_lost - c.ping_not_planned - c.ping_not_measurable
    not_planned = f", not planned {c.ping_not_planned}" if c.ping_not_planned else ""
    not_planned += f", not measurable {c.ping_not_measurable}" if c.ping_not_measurable else ""
    bw_not = f", not measurable {c.bw_not_measurable}" if c.bw_not_measurable else ""
    lines.append(
        f"- **Pairs** (ordered): {c.pairs}; ping ok {c.ping_ok}, all probes lost "
        f"{c.ping_all_lost}{not_planned}, failed {failed_ping}; bandwidth ok {c.bw_ok}{bw_not}, "
        f"failed {c.pairs - c.bw_ok - c.bw_not_measurable}."
    )
    if (cc := congestion_line(report.frame)) is not None:
        lines.append(cc)
    return lines


def congestion_line(frame: pd.DataFrame) -> str | None:
    """Which TCP congestion control sent the measured goodputs, and a warning when a run mixes
    them: on a lossy long path CUBIC and BBR differ by large factors, so such goodputs are not
    comparable with each other. None when iperf3 reported no algorithm."""
    if "sender_cc" not in frame.columns:
        return None
    senders = frame.loc[frame["bw_status"] == CellStatus.OK.value, "sender_cc"].dropna()
    counts = senders.value_counts()
    if counts.empty:
        return None
    shown = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    line = f"- **Congestion control** (senders of the {len(senders)} measured tests): {shown}"
    if len(counts) > 1:
        line += (
            "; mixed: goodput on lossy long paths depends on the algorithm, compare tests "
            "with the same one (matrix columns sender_cc, receiver_cc)"
        )
    return line + "."


def _failures(report: Report) -> str:
    rows = [
        [g.test, g.status, g.reason, g.cells, ", ".join(g.examples) + (" …" if g.cells > 3 else "")]
        for g in report.coverage.failures
    ]
    return _table(rows, ["test", "status", "reason", "cells", "e.g."])


def _rollup(report: Report) -> str:
    rows = [
        rollup_cells(r, report.spreads.get((r.src_region, r.dst_region))) for r in report.rollup
    ]
    return _table(rows, ROLLUP_HEADERS)


def _fitness(report: Report) -> list[str]:
    """Which hosts can serve a pipeline stage, and the best orders among those that can."""
    f = report.fitness
    if f is None:
        return []
    from probe.report import fitness

    return [
        "## Pipeline fitness", "", fitness.note(f), "",
        _table([fitness.host_cells(h) for h in f.hosts], fitness.HOST_HEADERS), "",
        _table([fitness.best_cells(f, c) for c in f.best], fitness.BEST_HEADERS), "",
    ]  # fmt: skip


def _rehearsals(report: Report) -> list[str]:
    """Each rehearsal of the run: measured against the calculator's prediction, per figure."""
    if not report.rehearsals:
        return []
    from probe.report import rehearsals

    out = ["## Rehearsals", "", rehearsals.NOTE, ""]
    for r in report.rehearsals:
        out += [f"### {r.title}", "", *(f"- {line}" for line in r.lines), ""]
        if r.figures:
            rows = [rehearsals.figure_cells(x) for x in r.figures]
            out += [_table(rows, rehearsals.HEADERS), ""]
    return out


def _grid(report: Report, spec: MetricSpec) -> str:
    values, codes = grids(report.frame, report.order, spec, implied=report.implied)
    rows = []
    for i, src in enumerate(report.order):
        row: list[object] = [f"**{src}**"]
        for j in range(len(report.order)):
            row.append("·" if i == j else codes[i, j] or short(float(values[i, j])))
        rows.append(row)
    return _table(rows, ["from \\ to", *report.order])


def render(report: Report) -> str:
    out = [f"# probe report — run {report.run_id}", ""]
    if report.coverage.incomplete:
        out += [f"> **{report.coverage.incomplete}**", ""]
    out += ["## Fleet and coverage", "", *summary_lines(report), ""]
    if report.coverage.failures:
        out += ["### Cells without a measurement, and why", "", _failures(report), ""]
    out += ["## Hints", ""]
    out += [f"- **{h.scope}** — {h.text}" for h in report.hints] or ["- nothing stands out"]
    out += [""]
    if report.gate is not None:
        from probe.report.gate import render_markdown

        out += [render_markdown(report.gate).replace("## probe gate:", "## Gate:"), ""]
    out += ["## Calculator headline", "", report.headline.text, ""]
    if report.headline.caveats:
        out += [*(f"- caveat: {c}" for c in report.headline.caveats), ""]
    out += _fitness(report)
    out += _rehearsals(report)
    out += ["## Region × region", "", _rollup(report), ""]
    if report.confidence:
        out += ["## Confidence", "", *(f"- {note}" for note in report.confidence), ""]
    if report.networks:
        out += ["## Per network", "", NETWORKS_NOTE, "",
                _table([list(r) for r in report.networks], NETWORK_HEADERS), ""]  # fmt: skip
    out += ["## Matrices", ""]
    if len(report.order) > GRID_MAX:
        out += [f"{len(report.order)} hosts: too many for text grids; heatmaps in report.html, "
                f"{CELLS_ELSEWHERE}.", ""]  # fmt: skip
    else:
        out += [
            "Row = source, column = destination. Codes: `down` host unreachable, `lost` every "
            "probe lost, `tool` tool missing, `hung` tool hangs, `t/o` timeout, `err` tool "
            "error, `stall` bandwidth test stalled, `fw` iperf3 port blocked by a firewall, "
            "`skip` not measured, `omit` left out by the plan, `n/m` not measurable (no shared "
            "network, or neither end accepts the test), `n/a` too few replies.",
            "",
        ]
        for spec in HEATMAPS:
            out += [f"### {spec.title} ({spec.unit})", "", _grid(report, spec), ""]
    out += [f"_probe {report.probe_version}; heatmaps in report.html._", ""]
    return "\n".join(out)
