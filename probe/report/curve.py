"""``probe calc --sweep`` as PNG curves (matplotlib ``Figure``, no pyplot): one panel per figure,
all against the swept variable, so each keeps its own unit and scale."""

from __future__ import annotations

import io

from matplotlib.figure import Figure

from probe.decide.sweep import SweepResult


def sweep_png(res: SweepResult, title: str) -> bytes:
    """The curves of ``res`` as PNG bytes; a lower bound is drawn dashed and says so."""
    n = max(len(res.series), 1)
    fig = Figure(figsize=(7.0, 2.4 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, s in zip(axes, res.series, strict=False):
        pts = [(x, y) for x, y in zip(res.x, s.values, strict=True) if y is not None]
        ax.plot(
            [x for x, _ in pts],
            [y for _, y in pts],
            marker="o",
            markersize=3,
            linestyle="--" if s.lower_bound else "-",
        )
        ax.set_ylabel(s.unit)
        ax.set_title(s.label + (" (lower bound: bandwidth not measured)" if s.lower_bound else ""))
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel(res.x_label)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
