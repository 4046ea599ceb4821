"""``report.html``: one self-contained file (inline CSS, PNG heatmaps as data: URIs, no script).

It opens offline, from a CI artefact or an e-mail attachment, with nothing to fetch. Every text
from the run (host names, reasons, policy names) is escaped. Verdicts and statuses are spelled
out, never shown by colour alone.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from probe.report import (
    CELLS_ELSEWHERE,
    NETWORK_HEADERS,
    NETWORKS_NOTE,
    ROLLUP_HEADERS,
    Report,
    rollup_cells,
)
from probe.report.heatmap import HEATMAPS, LABELS_MAX, SPLIT_MAX, Cells, heatmap_png
from probe.report.markdown import summary_lines

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:#1b1b1b;background:#fff;margin:0 auto;max-width:1500px;padding:1rem 1.5rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.2rem;margin:1.8rem 0 .6rem;
  border-bottom:1px solid #ccc;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #c8c8c8;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f1f1}td.num{text-align:right;font-variant-numeric:tabular-nums}
ul{margin:.3rem 0 1rem;padding-left:1.3rem}li{margin:.15rem 0}
.scope{display:inline-block;min-width:5.5em;font-weight:600}
.verdict{font-weight:700;padding:0 .3em;border:1px solid currentColor;border-radius:3px}
.PASS{color:#1a5e20}.FAIL{color:#9b1c1c}.INCONCLUSIVE{color:#7a4b00}
.heatmaps{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:1.2rem}
figure{margin:0;border:1px solid #ddd;padding:.5rem}figure img{max-width:100%;height:auto}
figcaption{font-size:.85rem;color:#444}.headline{font-size:1.05rem;background:#f6f6f6;
  padding:.6rem .8rem;border-left:4px solid #555}footer{color:#666;font-size:.8rem;margin-top:2rem}
.incomplete{font-weight:700;color:#7a4b00;background:#fff4e0;padding:.6rem .8rem;
  border-left:4px solid #7a4b00}
"""

CAPTIONS = {
    "rtt_p50": "Median round-trip time of the ping probes, measured from the row host.",
    "rtt_p99": "99th percentile round trip: the tail a latency budget must absorb.",
    "ipdv": "IP packet delay variation (RFC 3393 / RFC 5481): mean |RTT difference| of "
    "consecutive replies.",
    "loss": "Share of ping probes without a reply; 100 % is a measurement (the path drops all).",
    "bandwidth": "iperf3 TCP goodput at the receiver; the upper-left triangle is the row host "
    "sending to the column host.",
}


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(str(c))}</td>'
            if i in numeric
            else f"<td>{escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _inline_md(line: str) -> str:
    """The summary bullets use **bold** only; escape first, then restore it."""
    parts = escape(line.removeprefix("- ")).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _summary(report: Report) -> str:
    items = "".join(f"<li>{_inline_md(line)}</li>" for line in summary_lines(report))
    out = [f"<ul>{items}</ul>"]
    if report.coverage.failures:
        rows = [
            [g.test, g.status, g.reason, g.cells, ", ".join(g.examples)]
            for g in report.coverage.failures
        ]
        out.append("<h3>Cells without a measurement, and why</h3>")
        out.append(_table(rows, ["test", "status", "reason", "cells", "e.g."], {3}))
    return "".join(out)


def _incomplete(report: Report) -> str:
    """An incomplete run says so before anything else (nothing when it is complete)."""
    notice = report.coverage.incomplete
    return f'<p class="incomplete" role="alert">{escape(notice)}</p>' if notice else ""


def _hints(report: Report) -> str:
    if not report.hints:
        return "<p>Nothing stands out: no row, column or host is bad as a whole.</p>"
    items = "".join(
        f'<li data-scope="{escape(h.scope)}"><span class="scope">{escape(h.scope)}</span> '
        f"{escape(h.text)}</li>"
        for h in report.hints
    )
    return f'<ul class="hints">{items}</ul>'


def _caveats(caveats: Sequence[str]) -> str:
    """What a figure rests on that it cannot show (a stalled test), under the figure."""
    items = "".join(f"<li>caveat: {escape(c)}</li>" for c in caveats)
    return f'<ul class="caveats">{items}</ul>' if items else ""


def _gate(report: Report) -> str:
    gate = report.gate
    if gate is None:
        return ""
    rows = "".join(
        f'<tr><td>{escape(r.name)}</td><td><span class="verdict {r.verdict.value}">'
        f"{escape(r.verdict.value)}</span></td>"
        f'<td class="num">{"–" if r.value is None else escape(f"{r.value:.2f} {r.unit}")}</td>'
        f'<td class="num">{"–" if r.limit is None else escape(f"{r.limit:g} {r.unit}")}</td>'
        f"<td>{escape(r.reason)}</td></tr>"
        for r in gate.results
    )
    return (
        f'<h2 id="gate">Gate: <span class="verdict {gate.verdict.value}">'
        f"{escape(gate.verdict.value)}</span></h2>"
        f"<p>Policy <code>{escape(gate.policy)}</code>.</p>"
        "<table><thead><tr><th>check</th><th>verdict</th><th>value</th><th>limit</th>"
        f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _reading(report: Report) -> str:
    """How to read the maps; above ``LABELS_MAX`` hosts, that regions label them and where each
    pair's figures are (no per-host text in the page: it opens in a browser at any size)."""
    n = len(report.order)
    if n <= SPLIT_MAX:
        return (
            "<p>Rows are sources, columns destinations; hosts are grouped by region. Each cell "
            "is split: upper-left triangle row → column, lower-right column → row. Darker is "
            "worse; hatched cells have no value and carry a code (legend under each map).</p>"
        )
    text = (
        "Rows are sources, columns destinations; hosts are grouped by region. Each cell is "
        "row → column (its mirror cell column → row). Darker is worse; grey cells have no "
        "value, white ones were not planned (legend under each map)."
    )
    if n > LABELS_MAX:
        text += (
            f" {n} hosts: the maps name regions, not hosts (a host is a row and a column in "
            f"its region's block, in inventory order); {CELLS_ELSEWHERE}."
        )
    return f'<p class="reading">{escape(text)}</p>'


def _heatmaps(report: Report) -> str:
    figures, cells = [], Cells.of(report.frame, report.order)
    for spec in HEATMAPS:
        png = heatmap_png(cells, report.regions, spec, implied=report.implied)
        data = base64.b64encode(png).decode("ascii")
        alt = f"Heatmap of {spec.title} in {spec.unit}, hosts grouped by region"
        figures.append(
            f'<figure class="heatmap" data-metric="{spec.key}">'
            f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>{escape(CAPTIONS.get(spec.key, spec.title))}</figcaption></figure>"
        )
    return f'<div class="heatmaps">{"".join(figures)}</div>'


def _rollup(report: Report) -> str:
    rows = [
        rollup_cells(r, report.spreads.get((r.src_region, r.dst_region))) for r in report.rollup
    ]
    note = (
        "<p>RTT and IPDV: medians over the ok pairs of each region pair; loss: pooled over every "
        "probe sent; goodput: the median over the pairs measured; pair p50s: the range of the "
        "ok pairs' own p50s, multi-modal when they split into clusters.</p>"
    )
    return note + _table(rows, ROLLUP_HEADERS, set(range(1, len(ROLLUP_HEADERS))))


def _fitness(report: Report) -> str:
    """Which hosts can serve a pipeline stage, and the best orders among those that can."""
    f = report.fitness
    if f is None:
        return ""
    from probe.report import fitness

    hosts = [fitness.host_cells(h) for h in f.hosts]
    best = [fitness.best_cells(f, c) for c in f.best]
    return (
        f'<h2 id="fitness">Pipeline fitness</h2><p>{escape(fitness.note(f))}</p>'
        + _table(hosts, fitness.HOST_HEADERS, set(range(2, 9)))
        + _table(best, fitness.BEST_HEADERS, {0, 3, 4, 5})
    )


def _rehearsals(report: Report) -> str:
    """Each rehearsal of the run: measured against the calculator's prediction, per figure."""
    if not report.rehearsals:
        return ""
    from probe.report import rehearsals

    out = [f'<h2 id="rehearsals">Rehearsals</h2><p>{escape(rehearsals.NOTE)}</p>']
    for r in report.rehearsals:
        items = "".join(f"<li>{escape(line)}</li>" for line in r.lines)
        out.append(f"<h3>{escape(r.title)}</h3><ul>{items}</ul>")
        if r.figures:
            rows = [rehearsals.figure_cells(x) for x in r.figures]
            out.append(_table(rows, rehearsals.HEADERS, set(range(2, len(rehearsals.HEADERS)))))
    return "".join(out)


def _confidence(report: Report) -> str:
    """The figures that rest on too little (``report.confidence``), when there are any."""
    if not report.confidence:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in report.confidence)
    return f'<h2 id="confidence">Confidence</h2><ul class="confidence">{items}</ul>'


def _networks(report: Report) -> str:
    """Per network, when the run measured pairs over several (else nothing)."""
    if not report.networks:
        return ""
    rows = [list(r) for r in report.networks]
    return f'<h2 id="networks">Per network</h2><p>{escape(NETWORKS_NOTE)}</p>' + _table(
        rows, NETWORK_HEADERS, set(range(1, len(NETWORK_HEADERS)))
    )


def render(report: Report) -> str:
    title = f"probe report — run {report.run_id}"
    body = [
        f"<h1>{escape(title)}</h1>",
        _incomplete(report),
        '<h2 id="coverage">Fleet and coverage</h2>',
        _summary(report),
        '<h2 id="hints">Hints</h2>',
        _hints(report),
        _gate(report),
        '<h2 id="headline">Calculator headline</h2>',
        f'<p class="headline">{escape(report.headline.text)}</p>',
        _caveats(report.headline.caveats),
        _fitness(report),
        _rehearsals(report),
        '<h2 id="heatmaps">Heatmaps</h2>',
        _reading(report),
        _heatmaps(report),
        '<h2 id="regions">Region × region</h2>',
        _rollup(report),
        _confidence(report),
        _networks(report),
        f"<footer>probe {escape(report.probe_version)} · rebuilt offline from samples.jsonl"
        "</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
