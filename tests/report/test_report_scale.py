"""The report of a large fleet: maps labelled by region and capped in size, no per-host grids in
the text, and a note saying where each pair's figures are."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from bench.bench_scale import write_run
from probe.model import CellStatus
from probe.report import build_report, markdown
from probe.report import html as html_report
from probe.report.heatmap import HEATMAPS, LABELS_MAX, Cells, heatmap_figure, heatmap_png


def _frame(n: int) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Every ordered pair of ``n`` hosts in 4 regions, ok, RTT growing with the distance."""
    hosts = [f"h{i:04d}" for i in range(n)]
    regions = {h: f"r{i * 4 // n}" for i, h in enumerate(hosts)}
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    off = i != j
    src, dst = np.asarray(hosts)[i[off]], np.asarray(hosts)[j[off]]
    rtt = 0.3 + np.abs(i - j)[off] * 0.1
    frame = pd.DataFrame({
        "src": src, "dst": dst, "status": CellStatus.OK.value, "bw_status": CellStatus.OK.value,
        "rtt_p50_ms": rtt, "rtt_p99_ms": rtt * 2, "ipdv_ms": rtt / 10, "loss_pct": 0.0,
        "bw_fwd_mbps": 1000.0 / rtt,
    })  # fmt: skip
    return frame, hosts, regions


def test_above_the_label_limit_the_map_names_regions_not_hosts() -> None:
    n = LABELS_MAX + 20
    frame, hosts, regions = _frame(n)
    fig = heatmap_figure(Cells.of(frame, hosts), regions, HEATMAPS[0])
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []  # no host ticks
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("r0") == 2 and texts.count("r3") == 2  # below and beside the map
    assert not any(t.startswith("h0") for t in texts)
    assert len(ax.lines) == 2 * 3  # the region boundaries, each way


def test_a_small_fleet_keeps_its_host_labels() -> None:
    frame, hosts, regions = _frame(8)
    ax = heatmap_figure(Cells.of(frame, hosts), regions, HEATMAPS[0]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == hosts


def test_a_large_map_is_capped_at_a_pixel_or_so_a_cell() -> None:
    frame, hosts, regions = _frame(400)
    png = heatmap_png(Cells.of(frame, hosts), regions, HEATMAPS[0])
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert 400 <= width <= 1600 and 400 <= height <= 1700  # was 4,592 × 4,702 pixels
    assert len(png) < 3_000_000


def test_a_large_fleet_report_says_where_each_pair_is(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_run(run_dir, LABELS_MAX + 20, "all")
    report = build_report(run_dir)
    md = markdown.render(report)
    assert (
        "80 hosts: too many for text grids; heatmaps in report.html, every pair's figures are "
        "in matrix.csv and matrix.parquet in the run directory (or `probe export RUN --format "
        "prometheus`)." in md
    )
    assert max(line.count("|") for line in md.splitlines()) <= 13  # no host × host table
    page = html_report.render(report)
    assert "80 hosts: the maps name regions, not hosts" in page
    assert "matrix.csv and matrix.parquet" in page
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert rows and max(r.count("<td") for r in rows) <= 12  # the widest: pipeline fitness
    assert page.count('<figure class="heatmap"') == len(HEATMAPS)
