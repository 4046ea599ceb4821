"""``probe diff``: what changed between two runs, per ordered pair and per region pair (pure).

Region pairs are compared on the region roll-up (``matrix.regions``), the rows every other view
shows: RTT medians over ok pairs, loss pooled over probes, goodput medians.

Which changes are regressions, and the default thresholds, are ``probe.decide.regression``'s.
A goodput change where the sender's TCP congestion control changed between the runs (CUBIC vs
BBR: a factor of several on a lossy long path) is not the path's: it is shown as
``cc changed: cubic→bbr``, neither a regression nor an improvement.

**Noise.** A change past a threshold whose 95 % intervals before and after overlap (the matrix's
``*_lo_*`` / ``*_hi_*`` columns: Wilson for loss, order statistics for p50 / p99, see
``probe.stats``) is *within noise*, neither: one lost probe of 20 or one slow reply is not a
regression. Region rows use ``matrix.regions.median_interval`` over their pairs and Wilson over
their pooled probes. A matrix from before those columns is judged on thresholds alone, as then.
``diff_runs`` never reads files: the CLI loads the two frames (``matrix.stored.matrix_of``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import cast

import pandas as pd

from probe.decide.regression import DEFAULT_FAIL_ON, KINDS, Kind, Thresholds
from probe.matrix.anchors import RegionAnchor
from probe.matrix.build import pair_table, preferred
from probe.matrix.regions import figure, median_interval, roll_up
from probe.model import CellStatus
from probe.stats import wilson

_COLUMN: dict[Kind, str] = {
    "rtt_p50": "rtt_p50_ms", "rtt_p99": "rtt_p99_ms", "loss": "loss_pct", "bw": "bw_fwd_mbps"
}  # fmt: skip
_OK = CellStatus.OK.value
#: The 95 % bounds of each judged figure (absent from matrices written before them).
_BOUNDS: dict[Kind, tuple[str, str]] = {
    "rtt_p50": ("rtt_p50_lo_ms", "rtt_p50_hi_ms"), "rtt_p99": ("rtt_p99_lo_ms", "rtt_p99_hi_ms"),
    "loss": ("loss_lo_pct", "loss_hi_pct"),
}  # fmt: skip
#: A 95 % interval; None: unbounded on that side.
Interval = tuple[float | None, float | None]


@dataclass(frozen=True, slots=True)
class Change:
    """One metric of one pair (or region pair), before and after; None where not measured."""

    kind: Kind
    before: float | None
    after: float | None
    regressed: bool
    improved: bool
    within_noise: bool = False  # past a threshold, but the intervals overlap: neither

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before


@dataclass(frozen=True, slots=True)
class PairDiff:
    src: str  # for a region pair: the source region
    dst: str
    status: tuple[str, str]  # ping status (before, after)
    bw_status: tuple[str, str]
    changes: tuple[Change, ...]
    cc_change: str | None = None  # "cubic→bbr": the goodput change is the algorithm's

    @property
    def regressions(self) -> frozenset[Kind]:
        kinds: set[Kind] = {c.kind for c in self.changes if c.regressed}
        if _OK in (self.status[0], self.bw_status[0]) and (
            (self.status[0] == _OK and self.status[1] != _OK)
            or (self.bw_status[0] == _OK and self.bw_status[1] != _OK)
        ):
            kinds.add("broken")
        return frozenset(kinds)

    @property
    def improvements(self) -> frozenset[Kind]:
        kinds: set[Kind] = {c.kind for c in self.changes if c.improved}
        if (self.status[0] != _OK and self.status[1] == _OK) or (
            self.bw_status[0] != _OK and self.bw_status[1] == _OK
        ):
            kinds.add("broken")  # fixed
        return frozenset(kinds)

    @property
    def noise(self) -> frozenset[Kind]:
        return frozenset(c.kind for c in self.changes if c.within_noise)


@dataclass(frozen=True, slots=True)
class DiffResult:
    thresholds: Thresholds
    pairs: tuple[PairDiff, ...]  # pairs present in both runs
    regions: tuple[PairDiff, ...]  # region pairs present in both runs (src/dst are regions)
    appeared: tuple[tuple[str, str], ...]
    vanished: tuple[tuple[str, str], ...]

    @property
    def regressed_pairs(self) -> tuple[PairDiff, ...]:
        return tuple(p for p in self.pairs if p.regressions)

    @property
    def regressed_regions(self) -> tuple[PairDiff, ...]:
        return tuple(r for r in self.regions if r.regressions)

    def failed(self, fail_on: Collection[str] = DEFAULT_FAIL_ON) -> bool:
        """True when a regression of a kind in ``fail_on`` occurred (the CI exit code 1)."""
        wanted = set(fail_on)
        if "vanished" in wanted and self.vanished:
            return True
        return any(wanted & d.regressions for d in (*self.pairs, *self.regions))


def _num(value: object) -> float | None:
    if value is None or value is pd.NA:
        return None
    x = float(value)  # type: ignore[arg-type]
    return None if math.isnan(x) else x


def compare(kind: Kind, before: float | None, after: float | None, t: Thresholds) -> Change:
    """One metric's change judged against ``t`` (both values needed to judge)."""
    if before is None or after is None:
        return Change(kind, before, after, False, False)
    up, down = after - before, before - after
    if kind in ("rtt_p50", "rtt_p99"):
        pct, floor = (
            (t.rtt_p50_pct, t.rtt_p50_ms) if kind == "rtt_p50" else (t.rtt_p99_pct, t.rtt_p99_ms)
        )
        worse = up > floor and up > before * pct / 100
        better = down > floor and down > before * pct / 100
    elif kind == "loss":
        worse, better = up > t.loss_pp, down > t.loss_pp
    else:  # bandwidth: higher is better
        worse, better = down > before * t.bw_pct / 100, up > before * t.bw_pct / 100
    return Change(kind, before, after, worse, better)


def overlap(a: Interval, b: Interval) -> bool:
    """Whether two intervals (None: unbounded on that side) share a value."""
    return (a[1] is None or b[0] is None or b[0] <= a[1]) and (
        b[1] is None or a[0] is None or a[0] <= b[1]
    )


def _noise(change: Change, a: Interval | None, b: Interval | None) -> Change:
    """A change past a threshold is within noise when its intervals (both known) overlap."""
    if a is None or b is None or not (change.regressed or change.improved) or not overlap(a, b):
        return change
    return Change(change.kind, change.before, change.after, False, False, within_noise=True)


def _pair_interval(row: Mapping[str, object], kind: Kind) -> Interval | None:
    if kind not in _BOUNDS or any(col not in row for col in _BOUNDS[kind]):
        return None
    low, high = _BOUNDS[kind]
    return _num(row[low]), _num(row[high])


def _pair_diff(key: tuple[str, str], a: Mapping[str, object], b: Mapping[str, object],
               t: Thresholds) -> PairDiff:  # fmt: skip
    changes = tuple(
        _noise(compare(k, _num(a[col]), _num(b[col]), t), _pair_interval(a, k),
               _pair_interval(b, k))
        for k, col in _COLUMN.items()
    )  # fmt: skip
    cc = _cc_change({_text(a.get("sender_cc"))}, {_text(b.get("sender_cc"))})
    return PairDiff(
        key[0], key[1], (str(a["status"]), str(b["status"])),
        (str(a["bw_status"]), str(b["bw_status"])), _cc_neutral(changes, cc), cc,
    )  # fmt: skip


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _cc_change(before: set[str | None], after: set[str | None]) -> str | None:
    """``cubic→bbr`` when the senders' algorithms (known in both runs) differ, else None."""
    before.discard(None)
    after.discard(None)
    if not before or not after or before == after:
        return None
    return f"{'+'.join(sorted(map(str, before)))}→{'+'.join(sorted(map(str, after)))}"


def _cc_neutral(changes: tuple[Change, ...], cc_change: str | None) -> tuple[Change, ...]:
    """Goodput under another congestion control is no change of the path: not judged."""
    if cc_change is None:
        return changes
    return tuple(Change(c.kind, c.before, c.after, False, False) if c.kind == "bw" else c
                 for c in changes)  # fmt: skip


def _region_cc(frame: pd.DataFrame) -> dict[tuple[str, str], set[str | None]]:
    """The senders' algorithms of each region pair's measured goodputs."""
    out: dict[tuple[str, str], set[str | None]] = {}
    if "sender_cc" not in frame.columns:  # a matrix from before the column
        return out
    for r in _rows(frame[frame["bw_status"] == _OK]).values():
        key = (str(r["src_region"]), str(r["dst_region"]))
        out.setdefault(key, set()).add(_text(r["sender_cc"]))
    return out


def _status(measured: bool) -> str:
    """A region pair's status: ok when at least one of its pairs is."""
    return _OK if measured else "none-ok"


def _region_diff(
    a: RegionAnchor,
    b: RegionAnchor,
    t: Thresholds,
    cc_change: str | None = None,
    bounds: tuple[Mapping[Kind, Interval], Mapping[Kind, Interval]] = ({}, {}),
) -> PairDiff:
    """Two rows of the region roll-up (``matrix.regions``): the same figures as everywhere."""
    changes = tuple(
        _noise(compare(k, figure(col).value(a), figure(col).value(b), t), bounds[0].get(k),
               bounds[1].get(k))
        for k, col in _COLUMN.items()
    )  # fmt: skip
    return PairDiff(
        a.src_region, a.dst_region, (_status(a.pairs_ok > 0), _status(b.pairs_ok > 0)),
        (_status(a.bw.forward_mbps is not None), _status(b.bw.forward_mbps is not None)),
        _cc_neutral(changes, cc_change), cc_change,
    )  # fmt: skip


def region_rows(frame: pd.DataFrame) -> dict[tuple[str, str], RegionAnchor]:
    """The region roll-up of a long-form matrix, by (source region, destination region)."""
    return {(r.src_region, r.dst_region): r for r in roll_up(pair_table(frame))}


def region_intervals(frame: pd.DataFrame) -> dict[tuple[str, str], dict[Kind, Interval]]:
    """The 95 % intervals of each region row's RTT p50, p99 and loss; {} for a matrix from
    before the interval columns."""
    if any(col not in frame.columns for cols in _BOUNDS.values() for col in cols):
        return {}
    out: dict[tuple[str, str], dict[Kind, Interval]] = {}
    ok: dict[tuple[str, str], list[dict[str, object]]] = {}
    for r in _rows(frame[frame["status"] == _OK]).values():
        ok.setdefault((str(r["src_region"]), str(r["dst_region"])), []).append(r)
    for key, row in region_rows(frame).items():
        pairs = ok.get(key, [])
        out[key] = {}
        for kind in ("rtt_p50", "rtt_p99"):
            values = [v for r in pairs if (v := _num(r[_COLUMN[kind]])) is not None]
            bounds = [i for r in pairs if (i := _pair_interval(r, kind)) is not None]
            out[key][kind] = median_interval(values, bounds)
        if row.sent:
            low, high = wilson(row.sent - (row.received or 0), row.sent)
            out[key]["loss"] = (100.0 * low, 100.0 * high)
    return out


def _rows(frame: pd.DataFrame) -> dict[tuple[str, str], dict[str, object]]:
    records = cast("list[dict[str, object]]", preferred(frame).to_dict("records"))
    return {(str(r["src"]), str(r["dst"])): r for r in records}


def diff_runs(
    frame_a: pd.DataFrame, frame_b: pd.DataFrame, thresholds: Thresholds | None = None
) -> DiffResult:
    """Compare two long-form matrices (``matrix.build_matrix``): run A before, run B after."""
    t = thresholds or Thresholds()
    rows_a = _rows(frame_a)
    rows_b = _rows(frame_b)
    common = [k for k in rows_a if k in rows_b]
    reg_a, reg_b = region_rows(frame_a), region_rows(frame_b)
    cc_a, cc_b = _region_cc(frame_a), _region_cc(frame_b)
    ci_a, ci_b = region_intervals(frame_a), region_intervals(frame_b)
    return DiffResult(
        thresholds=t,
        pairs=tuple(_pair_diff(k, rows_a[k], rows_b[k], t) for k in common),
        regions=tuple(
            _region_diff(
                reg_a[k],
                reg_b[k],
                t,
                _cc_change(cc_a.get(k, set()), cc_b.get(k, set())),
                (ci_a.get(k, {}), ci_b.get(k, {})),
            )
            for k in reg_a
            if k in reg_b
        ),
        appeared=tuple(k for k in rows_b if k not in rows_a),
        vanished=tuple(k for k in rows_a if k not in rows_b),
    )


def _fmt(c: Change) -> str:
    def one(x: float | None) -> str:
        return "–" if x is None else f"{x:.4g}"

    mark = (
        " ▲ regressed" if c.regressed else " ▼ improved" if c.improved
        else " ≈ within noise" if c.within_noise else ""
    )  # fmt: skip
    return f"{one(c.before)} → {one(c.after)}{mark}"


def _flags(d: PairDiff) -> str:
    flags = sorted(d.regressions) + ([f"cc changed: {d.cc_change}"] if d.cc_change else [])
    return ", ".join(flags) or "–"


def _noise_count(result: DiffResult) -> str:
    n = sum(1 for d in result.pairs if d.noise)
    return f"; {n} changed within noise (95 % intervals overlap)" if n else ""


def render_diff(result: DiffResult, fail_on: Collection[str] = DEFAULT_FAIL_ON) -> str:
    """A Markdown summary: the pairs and region pairs that moved past a threshold."""
    from tabulate import tabulate

    head = ["pair", "ping", "bandwidth", "RTT p50 ms", "RTT p99 ms", "loss %", "bw Mbit/s",
            "regressed"]  # fmt: skip

    def table(diffs: tuple[PairDiff, ...]) -> str:
        rows = [
            [f"{d.src} → {d.dst}", " → ".join(d.status), " → ".join(d.bw_status),
             *(_fmt(c) for c in d.changes), _flags(d)]
            for d in diffs
            if d.regressions or d.improvements or d.cc_change or d.noise
        ]  # fmt: skip
        return tabulate(rows, head, tablefmt="github") if rows else "No change past a threshold."

    verdict = "REGRESSED" if result.failed(fail_on) else "OK"
    lines = [
        f"## probe diff: {verdict}",
        "",
        f"{len(result.pairs)} pairs in both runs; {len(result.regressed_pairs)} regressed, "
        f"{len(result.appeared)} appeared, {len(result.vanished)} vanished"
        f"{_noise_count(result)}. "
        f"Failing on: {', '.join(k for k in KINDS if k in fail_on) or 'nothing'}.",
        "",
        "### Pairs",
        "",
        table(result.pairs),
        "",
        "### Region pairs",
        "",
        table(result.regions),
        "",
    ]
    for label, keys in (("Appeared", result.appeared), ("Vanished", result.vanished)):
        if keys:
            lines += [f"{label}: " + ", ".join(f"{s} → {d}" for s, d in keys), ""]
    return "\n".join(lines)
