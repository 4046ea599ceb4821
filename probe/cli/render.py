"""Terminal views of a matrix (tabulate): the host grid and the region roll-up."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tabulate import tabulate

from probe.matrix import build as matrix
from probe.matrix.regions import RegionFigure, figure
from probe.store.rundoc import RunDoc


def _cell(value: object, status: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return status if status != "ok" else "—"
    number = float(value)  # type: ignore[arg-type]
    return f"{number:.3g}" if abs(number) < 100 else f"{number:.0f}"


def render_grid(run: RunDoc, frame: pd.DataFrame, metric: str) -> str:
    """The src × dst grid from whole arrays: a pandas lookup per cell took 3 s at 300 hosts."""
    order = matrix.host_order(run)
    values = matrix.wide(frame, metric, order).to_numpy(dtype="float64")
    statuses = matrix.status_grid(frame, order, bandwidth=metric.startswith("bw"), run=run)
    # a pair without a row has no status: shown as str() of pandas' missing value, as ever
    status = statuses.astype(object).where(statuses.notna(), "nan").to_numpy(dtype=object)
    without = np.where(status == "ok", "—", status)
    numbers = np.where(
        np.abs(values) < 100, np.char.mod("%.3g", values), np.char.mod("%.0f", values)
    )
    cells = np.where(np.isnan(values), without, numbers).astype(object)
    np.fill_diagonal(cells, "·")
    rows = [[src, *row] for src, row in zip(order, cells.tolist(), strict=True)]
    title = f"{metric} (row = source, column = destination)"
    return title + "\n" + tabulate(rows, ["src \\ dst", *order], disable_numparse=True)


def render_regions(run: RunDoc, frame: pd.DataFrame, metric: str) -> str:
    """One figure of the region roll-up per region pair, with the pairs it rests on (and how
    many of the others were left out on purpose: by a sampled ping plan for ping figures, and,
    for any figure, as not measurable)."""
    notes = matrix.left_out_by_region(frame, metric, run)

    def rests_on(f: RegionFigure) -> str:
        key = (f.src_region, f.dst_region)
        why = ", ".join(f"{n[key]} {what}" for what, n in notes.items() if n.get(key))
        return f"{f.measured}/{f.pairs}" + (f" ({why})" if why else "")

    rows = [
        [f.src_region, f.dst_region, _cell(f.value, "—"), rests_on(f)]
        for f in matrix.by_region(frame, metric, run)
    ]
    return f"{metric} by region ({figure(metric).definition})\n" + tabulate(
        rows, ["src region", "dst region", metric, "pairs measured"], disable_numparse=True
    )
