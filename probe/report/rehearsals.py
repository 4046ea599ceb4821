"""The report's rehearsal section: each ``probe rehearse`` of the run, read back from its
``rehearsal-<id>/summary.json`` (the ``probe.rehearse/1`` document), as table cells shared by
Markdown and HTML.

A summary reads back into ``decide.rehearse.Figure`` (the errors are its properties, computed
as ``probe rehearse`` printed them). A damaged summary costs its rehearsal one warning naming the
file, never the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from probe.decide.options import Pattern
from probe.decide.rehearse import MECHANISM, Figure
from probe.errors import StoreError
from probe.jsonfields import JsonObject, read_object
from probe.report import fmt

#: Where ``probe rehearse`` writes inside the run directory: ``rehearsal-<id>/summary.json``.
FOLDER_PREFIX = "rehearsal-"
SUMMARY_FILE = "summary.json"

HEADERS = ("figure", "unit", "samples", "measured p50", "measured p99", "predicted p50",
           "predicted p99", "error p50 %", "error p99 %", "corrected p50",
           "corrected error p50 %")  # fmt: skip
NOTE = (
    "Measured: the pattern's own traffic over the path, each figure on one host's clock. "
    "Predicted: the calculator's formula on the run's anchors; corrected: with slow start after "
    "idle (not over a BBR sender), BBR's pacing of sparse messages and the per-message overhead "
    "(all-reduce: the ring's schedule played out); ≥: a hop's "
    "goodput was not measured, the prediction is a lower bound. "
    "Error = (measured − predicted) / predicted."
)


@dataclass(frozen=True, slots=True)
class RehearsalSummary:
    """One rehearsal as its summary says: where it ran, who failed, what it measured."""

    rehearsal_id: str
    pattern: Pattern
    path: tuple[str, ...]
    run_id: str | None  # None: rehearsed on an inventory, nothing predicted
    rounds: int
    failed: tuple[str, ...]  # "host: status: reason" of each host that did not take part
    figures: tuple[Figure, ...]

    @property
    def route(self) -> str:
        """``a → b → c → a`` for a pattern that closes back at its first host."""
        hosts = self.path if MECHANISM[self.pattern] == "transfer" else (*self.path, self.path[0])
        return " → ".join(hosts)

    @property
    def title(self) -> str:
        return f"Rehearsal {self.rehearsal_id}: {self.pattern} over {self.route}"

    @property
    def lines(self) -> tuple[str, ...]:
        """What the table cannot say: rounds, a missing prediction, the hosts that failed."""
        rounds = f"{self.rounds} rounds"
        if self.run_id is None:
            rounds += "; no prediction: rehearsed on an inventory, not on a run"
        return (rounds, *(f"did not take part: {f}" for f in self.failed))


def _figure(x: JsonObject) -> Figure:
    unit = x.req("unit", str)
    if unit not in ("ms", "tokens/s"):
        x.wrong("unit", unit, "ms or tokens/s")
    key = "ms" if unit == "ms" else "tokens_per_s"
    return Figure(
        name=x.req("name", str),
        unit="ms" if unit == "ms" else "tokens/s",
        samples=x.req("samples", int),
        measured_p50=x.req(f"measured_p50_{key}", float),
        measured_p99=x.req(f"measured_p99_{key}", float),
        predicted_p50=x.opt(f"predicted_p50_{key}", float, None),
        predicted_p99=x.opt(f"predicted_p99_{key}", float, None),
        corrected_p50=x.opt(f"corrected_p50_{key}", float, None),
        lower_bound=x.opt("lower_bound", bool, False),
    )


def summary_of(doc: JsonObject) -> RehearsalSummary:
    """A ``probe.rehearse/1`` document, typed; ``StoreError`` naming the file and key if not."""
    if (schema := doc.req("schema", str)) != "probe.rehearse/1":
        doc.wrong("schema", schema, "probe.rehearse/1")
    pattern = doc.req("pattern", str)
    if pattern not in get_args(Pattern):
        doc.wrong("pattern", pattern, " or ".join(get_args(Pattern)))
    path = doc.listing("path", str)
    if len(path) < 2:
        doc.wrong("path", list(path), "two hosts at least")
    failed = tuple(
        f"{h.req('host', str)}: {h.req('status', str)}: {h.opt('reason', str, '-')}"
        for h in doc.objects("hosts")
        if h.req("status", str) != "ok"
    )
    return RehearsalSummary(
        rehearsal_id=doc.req("rehearsal_id", str),
        pattern=cast(Pattern, pattern),
        path=path,
        run_id=doc.opt("run_id", str, None),
        rounds=doc.req("rounds", int),
        failed=failed,
        figures=tuple(_figure(x) for x in doc.objects("figures")),
    )


def read_rehearsals(
    run_dir: Path, warn: Callable[[str], None] | None = None, *, run_id: str | None = None
) -> tuple[RehearsalSummary, ...]:
    """The run's rehearsals, newest first (their ids start with the UTC time); a summary that
    cannot be read, or that predicted from another run than ``run_id`` (a folder copied between
    runs: its predictions are not this run's), is left out and ``warn`` hears one line naming it."""
    found = []
    for path in sorted(run_dir.glob(f"{FOLDER_PREFIX}*/{SUMMARY_FILE}"), reverse=True):
        try:
            summary = summary_of(read_object(path, StoreError))
        except StoreError as exc:
            if warn is not None:
                warn(f"rehearsal left out of the report: {exc}")
            continue
        if run_id is not None and summary.run_id not in (None, run_id):
            if warn is not None:
                warn(
                    f"rehearsal left out of the report: {path}: predicted from run "
                    f"{summary.run_id}, not from this run {run_id}"
                )
            continue
        found.append(summary)
    return tuple(found)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1f}"


def figure_cells(x: Figure) -> list[str]:
    """One figure as the cells of ``HEADERS``."""
    bound = "≥" if x.lower_bound else ""
    predicted = (x.predicted_p50, x.predicted_p99, x.corrected_p50)
    p50, p99, corrected = (fmt(v) if v is None else bound + fmt(v) for v in predicted)
    return [
        x.name, x.unit, str(x.samples), fmt(x.measured_p50), fmt(x.measured_p99), p50, p99,
        _pct(x.error_p50_pct), _pct(x.error_p99_pct), corrected, _pct(x.corrected_error_p50_pct),
    ]  # fmt: skip
