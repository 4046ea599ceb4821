"""Heatmaps of one metric over the host matrix, as PNG bytes (matplotlib ``Figure``, no pyplot).

Design (see the README section "probe report"):

- **Split cells** as in perfSONAR's MaDDash: cell (row r, column c) is cut along its diagonal; the
  upper-left triangle is r → c (r is the source), the lower-right one c → r. Each cell answers "is
  this pair symmetric?" without hunting for the mirror cell. Beyond ``SPLIT_MAX`` hosts a triangle
  is too small to read, so the plain ordered matrix is drawn (cell = row → column).
- **Colour**: viridis (perceptually uniform, readable with every common colour-vision deficiency,
  monotonic in lightness so it survives greyscale), oriented so that *darker is always worse*:
  reversed for RTT, IPDV and loss, as is for bandwidth. RTT, IPDV and bandwidth switch to a log
  scale when the values span more than ``LOG_SPAN``× (a fleet mixes 0.3 ms LAN and 150 ms WAN);
  loss uses a few fixed bins, so that 1 % is not lost next to 100 %.
- **Status cells** (no value: host down, tool missing, all probes lost…) are never coloured as a
  value: they are hatched grey with a short code, explained in the legend. Pairs a sampled ping
  plan left out (``omit``) are plain white with their code: a choice, not a failure.
- Hosts are grouped by region; black lines separate the region blocks.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PolyCollection
from matplotlib.colors import BoundaryNorm, Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from numpy.typing import NDArray

from probe.matrix.build import preferred
from probe.matrix.implied import STATUS as IMPLIED_STATUS
from probe.model import CellStatus

SPLIT_MAX = 40  # hosts; more and the matrix is drawn without split cells
ANNOTATE_MAX = 14  # hosts; more and values are not printed in the cells
LABELS_MAX = 60  # hosts; more and host names are left off the axes (regions stay)
#: The map's side at most (inches), unless that leaves less than a pixel per cell: a 1,000-host
#: map is 1,320 pixels square, not 11,000 (1.2 GB of pixels to draw and compress per map).
SIDE_MAX_IN = 12.0
LOG_SPAN = 20.0
LOSS_BINS = (0.0, 1e-6, 1.0 + 1e-6, 5.0 + 1e-6, 20.0 + 1e-6, 100.0 + 1e-6)
LOSS_LABELS = ("0", "≤ 1", "≤ 5", "≤ 20", "≤ 100")
STATUS_FACE, STATUS_EDGE, STATUS_HATCH = "#f2f2f2", "#8c8c8c", "////"

STATUS_CODE = {
    CellStatus.ALL_LOST.value: "lost",
    CellStatus.UNREACHABLE.value: "down",
    CellStatus.AUTH_FAILED.value: "auth",
    CellStatus.HOST_KEY.value: "key",
    CellStatus.TOOL_MISSING.value: "tool",
    CellStatus.TOOL_HUNG.value: "hung",
    CellStatus.TIMEOUT.value: "t/o",
    CellStatus.BUSY.value: "busy",
    CellStatus.ERROR.value: "err",
    CellStatus.STALLED.value: "stall",  # iperf3 ran, its rate is no measurement
    CellStatus.SKIPPED.value: "skip",
    CellStatus.NOT_PLANNED.value: "omit",  # left out by a sampled plan on purpose
    CellStatus.NOT_MEASURABLE.value: "n/m",  # no shared network, or no end accepts the test
    CellStatus.BLOCKED.value: "fw",  # a firewall drops the iperf3 port
}
UNPLANNED = STATUS_CODE[CellStatus.NOT_PLANNED.value]
UNPLANNED_FACE = "#ffffff"
_LABEL_BOX = {"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none",
              "alpha": 0.85}  # fmt: skip
NO_VALUE = "n/a"  # measured, but this figure needs more replies than came back


@dataclass(frozen=True, slots=True)
class MetricSpec:
    key: str  # stable id (file names, HTML data-metric)
    column: str  # column of the long-form matrix
    title: str
    unit: str
    higher_is_better: bool
    status_column: str
    value_statuses: frozenset[str]  # statuses whose cells carry this value
    binned: bool = False  # fixed bins (loss) instead of a continuous scale


_PING = frozenset({CellStatus.OK.value})
HEATMAPS = (
    MetricSpec("rtt_p50", "rtt_p50_ms", "RTT p50", "ms", False, "status", _PING),
    MetricSpec("rtt_p99", "rtt_p99_ms", "RTT p99", "ms", False, "status", _PING),
    MetricSpec("ipdv", "ipdv_ms", "IPDV, mean |ΔRTT| of consecutive replies", "ms", False,
               "status", _PING),
    MetricSpec("loss", "loss_pct", "loss", "%", False, "status",
               frozenset({CellStatus.OK.value, CellStatus.ALL_LOST.value}), binned=True),
    MetricSpec("bandwidth", "bw_fwd_mbps", "bandwidth, iperf3 receiver goodput", "Mbit/s", True,
               "bw_status", _PING),
)  # fmt: skip


def short(value: float) -> str:
    """A value in at most four characters, for a half cell."""
    if value == 0:
        return "0"
    if value < 1:
        return f"{value:.2f}"
    if value < 10:
        return f"{value:.1f}"
    if value < 1000:
        return f"{value:.0f}"
    return f"{value / 1000:.1f}k" if value < 10_000 else f"{value / 1000:.0f}k"


@dataclass(frozen=True, slots=True, eq=False)
class Cells:
    """Where each pair's row sits in the host × host grid: found once, read by every map."""

    frame: pd.DataFrame  # each pair's preferred row, between hosts of ``order``
    order: tuple[str, ...]
    row: NDArray[np.intp]  # of each row of ``frame``: its source's index in ``order``
    col: NDArray[np.intp]

    @classmethod
    def of(cls, frame: pd.DataFrame, order: Sequence[str]) -> Cells:
        frame = preferred(frame)
        hosts = pd.Index(list(order))
        i, j = (hosts.get_indexer(pd.Index(frame[c])) for c in ("src", "dst"))
        at = (i >= 0) & (j >= 0)
        return cls(frame if at.all() else frame[at], tuple(order), i[at], j[at])


def grids(
    frame: pd.DataFrame, order: Sequence[str], spec: MetricSpec, *, implied: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(values, codes): n × n arrays, row = source; a code is "" where the cell has a value.
    ``implied``: the frame is of a sampled run, a cell without a row reads not-planned."""
    return grids_of(Cells.of(frame, order), spec, implied=implied)


def grids_of(
    cells: Cells, spec: MetricSpec, *, implied: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``grids`` of cells already placed: each status is named once, not once per cell."""
    n, frame = len(cells.order), cells.frame
    v = np.full((n, n), math.nan)
    v[cells.row, cells.col] = frame[spec.column].to_numpy(dtype="float64", na_value=np.nan)
    kinds, statuses = pd.factorize(frame[spec.status_column])
    # a cell without a row or status: one more kind, read as not-planned in a sampled run
    k = np.full((n, n), len(statuses), dtype=np.intp)
    k[cells.row, cells.col] = np.where(kinds < 0, len(statuses), kinds)
    names = [str(st) for st in statuses] + [str(IMPLIED_STATUS) if implied else "nan"]
    code_of = np.array(
        ["" if st in spec.value_statuses else STATUS_CODE.get(st, st[:4]) for st in names],
        dtype=object,
    )
    codes = code_of[k]
    v[codes != ""] = math.nan
    codes[(codes == "") & np.isnan(v)] = NO_VALUE
    np.fill_diagonal(codes, "")
    np.fill_diagonal(v, math.nan)
    return v, codes


def _norm(values: np.ndarray, spec: MetricSpec) -> Normalize:
    if spec.binned:
        return BoundaryNorm(LOSS_BINS, ncolors=256)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Normalize(0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if lo > 0 and hi / lo > LOG_SPAN:
        return LogNorm(lo, hi)
    return Normalize(0.0, hi if hi > 0 else 1.0)


def _ink(rgba: Sequence[float]) -> str:
    """Black or white text, whichever reads on this background (relative luminance)."""
    luminance = 0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2]
    return "black" if luminance > 0.4 else "white"


def _blocks(order: Sequence[str], regions: Mapping[str, str]) -> list[tuple[str, int, int]]:
    """(region, first index, end index) of each run of hosts of one region."""
    out: list[tuple[str, int, int]] = []
    for i, host in enumerate(order):
        region = regions.get(host, "?")
        if out and out[-1][0] == region:
            out[-1] = (region, out[-1][1], i + 1)
        else:
            out.append((region, i, i + 1))
    return out


def heatmap_png(
    cells: Cells,
    regions: Mapping[str, str],
    spec: MetricSpec,
    *,
    annotate: bool | None = None,
    dpi: int = 110,
    implied: bool = False,
) -> bytes:
    """One heatmap of ``spec`` over the hosts of ``cells`` (grouped by region) as PNG bytes
    (``implied``: as ``grids``)."""
    fig = heatmap_figure(cells, regions, spec, annotate=annotate, dpi=dpi, implied=implied)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def heatmap_figure(
    cells: Cells,
    regions: Mapping[str, str],
    spec: MetricSpec,
    *,
    annotate: bool | None = None,
    dpi: int = 110,
    implied: bool = False,
) -> Figure:
    """The figure ``heatmap_png`` draws: per-host labels up to ``LABELS_MAX`` hosts, region
    labels only beyond; at most ``SIDE_MAX_IN`` inches a side unless that is under a pixel a
    cell."""
    order = cells.order
    n = len(order)
    values, codes = grids_of(cells, spec, implied=implied)
    norm = _norm(values, spec)
    cmap = colormaps["viridis" if spec.higher_is_better else "viridis_r"]
    annotate = n <= ANNOTATE_MAX if annotate is None else annotate
    cell = min(0.62, max(0.1, 8.5 / max(n, 1)))
    side = max(min(n * cell, max(SIDE_MAX_IN, n / dpi)), 2.6)
    left, right, top, bottom = 0.85, 0.9, 1.45, 1.3
    fig = Figure(figsize=(left + side + right, top + side + bottom), dpi=dpi)
    width, height = fig.get_size_inches()
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    ax.set_aspect("equal")
    for edge in ax.spines.values():
        edge.set_visible(False)
    split = n <= SPLIT_MAX
    if split:
        _draw_split(ax, values, codes, norm, cmap, annotate, cell)
    else:
        rgba = cmap(norm(np.nan_to_num(values, nan=1.0)))
        rgba[codes != ""] = (0.85, 0.85, 0.85, 1.0)
        rgba[codes == UNPLANNED] = (1.0, 1.0, 1.0, 1.0)
        rgba[np.eye(n, dtype=bool)] = (1.0, 1.0, 1.0, 1.0)
        ax.imshow(rgba, extent=(0, n, n, 0), interpolation="nearest")
    _decorate(fig, ax, order, regions, spec, split)
    cax = fig.add_axes((left / width, 0.6 / height, side / width, 0.13 / height))
    bar = fig.colorbar(_mappable(norm, cmap), cax=cax, orientation="horizontal", spacing="uniform")
    bar.set_label(f"{spec.unit} ({'darker = worse'})", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    bar.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    bar.ax.xaxis.set_minor_formatter(NullFormatter())
    if isinstance(norm, LogNorm):
        bar.ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    if spec.binned:
        mids = [(a + b) / 2 for a, b in itertools.pairwise(LOSS_BINS)]
        bar.set_ticks(mids, labels=list(LOSS_LABELS))
    _legend(fig, codes, split)
    return fig


def _mappable(norm: Normalize, cmap: Colormap) -> ScalarMappable:
    return ScalarMappable(norm=norm, cmap=cmap)


def _draw_split(
    ax: object,
    values: np.ndarray,
    codes: np.ndarray,
    norm: Normalize,
    cmap: Colormap,
    annotate: bool,
    cell: float,
) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    n = values.shape[0]
    tris: list[list[tuple[float, float]]] = []
    colours: list[tuple[float, float, float, float]] = []
    hatched: list[list[tuple[float, float]]] = []
    unplanned: list[list[tuple[float, float]]] = []
    size = max(5.0, min(8.0, cell * 72 * 0.17))
    for r in range(n):
        for c in range(n):
            if r == c:
                continue
            x0, y0 = float(c), float(r)
            upper = [(x0, y0), (x0 + 1, y0), (x0, y0 + 1)]
            lower = [(x0 + 1, y0), (x0 + 1, y0 + 1), (x0, y0 + 1)]
            for tri, (i, j), at in ((upper, (r, c), (0.3, 0.33)), (lower, (c, r), (0.7, 0.72))):
                code, value = codes[i, j], values[i, j]
                x, y = c + at[0], r + at[1]
                if code:
                    (unplanned if code == UNPLANNED else hatched).append(tri)
                    if annotate:
                        ax.text(x, y, code, ha="center", va="center", fontsize=size - 0.5,
                                color="#333333", bbox=_LABEL_BOX)  # fmt: skip
                    continue
                rgba = cmap(norm(value))
                tris.append(tri)
                colours.append(rgba)
                if annotate:
                    ax.text(x, y, short(value), ha="center", va="center", fontsize=size,
                            color=_ink(rgba))  # fmt: skip
    ax.add_collection(PolyCollection(tris, facecolors=colours, edgecolors="white", linewidths=0.6))
    ax.add_collection(
        PolyCollection(hatched, facecolors=STATUS_FACE, edgecolors=STATUS_EDGE, linewidths=0.3,
                       hatch=STATUS_HATCH)
    )  # fmt: skip
    ax.add_collection(
        PolyCollection(unplanned, facecolors=UNPLANNED_FACE, edgecolors=STATUS_EDGE,
                       linewidths=0.3)
    )  # fmt: skip


def _decorate(
    fig: Figure,
    ax: object,
    order: Sequence[str],
    regions: Mapping[str, str],
    spec: MetricSpec,
    split: bool,
) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    n = len(order)
    ticks = [i + 0.5 for i in range(n)] if n <= LABELS_MAX else []  # else regions label blocks
    ax.set_xticks(ticks, list(order) if ticks else [], rotation=90, fontsize=8)
    ax.set_yticks(ticks, list(order) if ticks else [], fontsize=8)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.tick_params(length=0)
    ax.set_ylabel("source (row)", fontsize=8)
    ax.set_xlabel("destination (column)", fontsize=8)
    for region, start, end in _blocks(order, regions):
        if start > 0:
            ax.axhline(start, color="#111111", linewidth=1.6)
            ax.axvline(start, color="#111111", linewidth=1.6)
        mid = (start + end) / 2
        ax.text(mid, n + 0.12, region, ha="center", va="top", fontsize=9, weight="bold")
        ax.text(n + 0.15, mid, region, ha="left", va="center", fontsize=9, weight="bold")
    how = (
        "upper-left triangle: row → column · lower-right: column → row"
        if split
        else "cell: row → column (mirror cell: column → row)"
    )
    fig.text(0.03, 1 - 0.22 / fig.get_size_inches()[1], f"{spec.title} ({spec.unit})",
             fontsize=12, weight="bold", va="top")  # fmt: skip
    fig.text(0.03, 1 - 0.5 / fig.get_size_inches()[1], how, fontsize=8, va="top", color="#333333")


def _legend(fig: Figure, codes: np.ndarray, split: bool) -> None:
    present = sorted(set(codes[codes != ""].tolist()))
    if not present:
        return
    meaning = {code: status for status, code in STATUS_CODE.items()}
    meaning[NO_VALUE] = "too few replies"
    handles = [
        Patch(
            facecolor=UNPLANNED_FACE
            if code == UNPLANNED
            else (STATUS_FACE if split else "#d9d9d9"),
            edgecolor=STATUS_EDGE,
            hatch=STATUS_HATCH if split and code != UNPLANNED else None,
            label=f"{code} = {meaning.get(code, code)}",
        )
        for code in present
    ]
    fig.legend(handles=handles, loc="lower center", ncols=min(len(handles), 4), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, 0.0))  # fmt: skip
