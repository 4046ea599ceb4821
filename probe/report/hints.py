"""Where a whole row or column of the matrix is bad, say which end to suspect (pure).

The matrix is ordered: row = source (the host that runs ping, or sends iperf3 data), column =
destination. A pattern that follows one host points at that host rather than at the paths:

- **host down**: the host never answered SSH; its row and column are empty.
- **egress** (bad row, clean column): trouble when the host initiates or sends — its outbound
  shaping, NIC, or, for ping, load on the host that times the probes.
- **ingress** (bad column, clean row): trouble towards the host — an inbound firewall dropping
  ICMP or the iperf3 port, ingress shaping, a small receive window.
- **host** (row and column bad): the host itself — a missing tool, a bad NIC, a saturated link.
- **pair**: a failed cell that no row or column explains: one path is broken.

Some statuses have their own wording: a ``stalled`` bandwidth test (iperf3 ran, the path stopped
moving data for seconds) is its own aspect, ``bandwidth stalled``; cells that are ``tool-hung``
point at the hanging tool; ``skipped``, ``not-planned`` and ``not-measurable`` cells were not
measured on purpose (or not yet, or cannot be as the inventory declares the hosts) and are never
bad. A ``blocked`` bandwidth test (a firewall drops the iperf3 port) is its own aspect, and its
hint says what to do: open the port on the server host, or declare its ``inbound:`` so it is the
iperf3 client instead.

A row is "bad" when at least ``ROW_SHARE`` of its cells (towards hosts that are up, at least
``MIN_CELLS`` of them) are bad for the same aspect, and "clean" when at most ``CLEAN_SHARE`` are.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from probe.model import CellStatus, PortRange

ROW_SHARE = 0.75
CLEAN_SHARE = 0.25
MIN_CELLS = 2
LOSS_BAD_PCT = 1.0  # a cell losing more than this is lossy
SLOW_EXCESS = 0.05  # RTT p50 this far above its region pair's median (and ≥ SLOW_MIN_MS) is slow
SLOW_MIN_MS = 1.0
LOW_BW_SHARE = 0.5  # goodput below half of its region pair's median is low
MAX_PAIR_HINTS = 8

Scope = Literal["host-down", "egress", "ingress", "host", "pair"]


@dataclass(frozen=True, slots=True)
class Hint:
    scope: Scope
    subject: str  # a host, or "src → dst" for a pair
    aspect: str  # what is bad: "ping failed", "loss", "slow", "bandwidth failed", "low bandwidth"
    bad_cells: int
    cells: int
    text: str


@dataclass(frozen=True, slots=True)
class _Aspect:
    label: str
    bandwidth: bool
    failure: bool  # cells fail to measure (reasons worth quoting) rather than measure badly
    bad: Callable[[pd.DataFrame], pd.Series]
    why: Mapping[Scope, str] = field(default_factory=dict)  # its own wording, else _WHY's
    advice: Callable[[pd.DataFrame], str] | None = None  # what to do about its bad cells


#: Not measured, on purpose, not yet, or not measurable as declared: never a bad cell.
_UNMEASURED = (
    CellStatus.SKIPPED.value,
    CellStatus.NOT_PLANNED.value,
    CellStatus.NOT_MEASURABLE.value,
)


def _failed(col: str, *, but: tuple[str, ...] = ()) -> Callable[[pd.DataFrame], pd.Series]:
    """Cells of ``col`` that failed, other than those of statuses ``but`` (aspects of their own)."""
    fine = [CellStatus.OK.value, *_UNMEASURED, *but]

    def bad(frame: pd.DataFrame) -> pd.Series:
        return ~frame[col].isin(fine)

    return bad


def _status_is(col: str, status: str) -> Callable[[pd.DataFrame], pd.Series]:
    def bad(frame: pd.DataFrame) -> pd.Series:
        return frame[col] == status

    return bad


def _relative(frame: pd.DataFrame, col: str) -> pd.Series:
    """Each cell's value and the median of its region pair (ok cells only)."""
    median = frame.groupby(["src_region", "dst_region"])[col].transform("median")
    return median.astype("float64")


def _slow(frame: pd.DataFrame) -> pd.Series:
    median = _relative(frame, "rtt_p50_ms")
    excess = frame["rtt_p50_ms"] - median
    return (excess > (median * SLOW_EXCESS).clip(lower=SLOW_MIN_MS)).fillna(False)


def _low_bw(frame: pd.DataFrame) -> pd.Series:
    median = _relative(frame, "bw_fwd_mbps")
    return (frame["bw_fwd_mbps"] < median * LOW_BW_SHARE).fillna(False)


def _lossy(frame: pd.DataFrame) -> pd.Series:
    ok = frame["status"] == CellStatus.OK.value
    return ok & (frame["loss_pct"] > LOSS_BAD_PCT).fillna(False)


_STALLED = CellStatus.STALLED.value
_STALL_WHY: dict[Scope, str] = {
    "egress": "its send path stopping for seconds (an outage, a paused sender, a flapping link): "
    "these rates are no capacity",
    "ingress": "the path towards it stopping for seconds (an outage, a paused receiver, "
    "a flapping link): these rates are no capacity",
    "host": "the host itself stopping for seconds (a paused or migrated VM, a flapping NIC): "
    "these rates are no capacity",
}

_BLOCKED = CellStatus.BLOCKED.value
_BLOCKED_WHY: dict[Scope, str] = dict.fromkeys(
    ("egress", "ingress", "host"), "a firewall dropping or rejecting the iperf3 port"
)
#: The port and server a ``blocked`` reason names: "iperf3 client on C → ADDR:PORT on SERVER: …"
_BLOCKED_AT = re.compile(r"→ \S+:(\d+) on ([^\s:]+):")


def _unblock(cells: pd.DataFrame) -> str:
    """What to do about blocked tests, per server host: open the ports they used, or declare
    the host's ``inbound:`` so the plan makes it the client (a reason probe did not word names
    no server: the destination, the default plan's server)."""
    ports: dict[str, set[int]] = {}
    for reason, dst in zip(cells["bw_reason"], cells["dst"], strict=True):
        at = _BLOCKED_AT.search(reason) if isinstance(reason, str) else None
        used = ports.setdefault(at.group(2) if at else str(dst), set())
        used.update([int(at.group(1))] if at else [])
    return "; ".join(
        f"open TCP {PortRange(min(p), max(p)) if p else 'its iperf3 ports'} on {host} or declare "
        f"`inbound:` in the inventory so {host} is the iperf3 client"
        for host, p in ports.items()
    )


ASPECTS = (
    _Aspect("ping failed", False, True, _failed("status")),
    _Aspect("loss", False, False, _lossy),
    _Aspect("slow", False, False, _slow),
    _Aspect("bandwidth failed", True, True, _failed("bw_status", but=(_STALLED, _BLOCKED))),
    _Aspect("bandwidth stalled", True, True, _status_is("bw_status", _STALLED), _STALL_WHY),
    _Aspect(
        "bandwidth blocked",
        True,
        True,
        _status_is("bw_status", _BLOCKED),
        _BLOCKED_WHY,
        _unblock,
    ),
    _Aspect("low bandwidth", True, False, _low_bw),
)

_WHY = {
    ("egress", False): "its outbound path, or load on {h} itself (the source times the probes)",
    ("egress", True): "its send path (egress shaping, NIC, TCP send settings)",
    ("ingress", False): "the path towards it: an inbound firewall or filter, ingress shaping",
    ("ingress", True): "its receive path (ingress shaping, NIC, receive window)",
    ("host", False): "the host itself (network stack, NIC, firewall both ways)",
    ("host", True): "the host itself (a missing or broken iperf3, NIC, a saturated link)",
}


#: A tool that hangs is the suspect whatever the pattern: its tests never ran.
_HUNG_WHY = "a tool that hangs on {h} (no answer to its version probe at preflight)"


def _reason(cells: pd.DataFrame, aspect: _Aspect) -> str:
    if not aspect.failure or cells.empty:
        return ""
    status, reason = ("bw_status", "bw_reason") if aspect.bandwidth else ("status", "reason")
    text = cells[status].astype(str) + ": " + cells[reason].fillna("-").astype(str)
    counts = text.value_counts()
    return f"; most common: {counts.index[0]} ({int(counts.iloc[0])}×)"


def _advice(aspect: _Aspect, cells: pd.DataFrame) -> str:
    return "" if aspect.advice is None or cells.empty else f" → {aspect.advice(cells)}"


def _why(host: str, scope: Scope, aspect: _Aspect, cells: pd.DataFrame) -> str:
    """What to suspect: the hanging tool when most bad cells are ``tool-hung``, else the
    aspect's own wording for the scope, else the generic one."""
    status = "bw_status" if aspect.bandwidth else "status"
    hung = CellStatus.TOOL_HUNG.value
    if aspect.failure and not cells.empty and cells[status].value_counts().index[0] == hung:
        return _HUNG_WHY.format(h=host)
    return aspect.why.get(scope) or _WHY[scope, aspect.bandwidth].format(h=host)


def _host_hint(
    host: str,
    aspect: _Aspect,
    live: pd.DataFrame,
    row: np.ndarray,
    col: np.ndarray,
    bad: np.ndarray,
) -> Hint | None:
    """``row``, ``col``: positions in ``live`` of the host's cells as source and destination
    (frame order); ``bad``: of each cell of ``live``."""
    if len(row) < MIN_CELLS or len(col) < MIN_CELLS:
        return None
    r_bad, c_bad = int(bad[row].sum()), int(bad[col].sum())
    r_share, c_share = r_bad / len(row), c_bad / len(col)
    scope: Scope
    if r_share >= ROW_SHARE and c_share >= ROW_SHARE:
        scope, n_bad, n = "host", r_bad + c_bad, len(row) + len(col)
        where = f"as source ({r_bad}/{len(row)}) and as destination ({c_bad}/{len(col)})"
    elif r_share >= ROW_SHARE and c_share <= CLEAN_SHARE:
        scope, n_bad, n = "egress", r_bad, len(row)
        where = f"as source, row {host} ({r_bad}/{len(row)} cells; its column is clean)"
    elif c_share >= ROW_SHARE and r_share <= CLEAN_SHARE:
        scope, n_bad, n = "ingress", c_bad, len(col)
        where = f"as destination, column {host} ({c_bad}/{len(col)} cells; its row is clean)"
    else:
        return None
    cells = np.concatenate([row, col])
    failed = live.iloc[cells[bad[cells]]]
    reason, why = _reason(failed, aspect), _why(host, scope, aspect, failed)
    text = f"{host}: {aspect.label} {where} → suspect {why}{reason}" + _advice(aspect, failed)
    return Hint(scope, host, aspect.label, n_bad, n, text)


def _positions(hosts: pd.Series, order: Sequence[str]) -> list[np.ndarray]:
    """Per host of ``order``, the positions of its cells in ``hosts`` (ascending): one pass
    over the frame, not one selection per host."""
    codes = pd.Index(order).get_indexer_for(pd.Index(hosts))  # -1: a host outside ``order``
    by = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by], np.arange(len(order) + 1))
    return [by[a:b] for a, b in itertools.pairwise(bounds)]


def diagnose(
    frame: pd.DataFrame, order: Sequence[str], down: Mapping[str, str] | None = None
) -> tuple[Hint, ...]:
    """Hints for ``frame`` (the long-form matrix); ``down`` maps hosts that never came up to why.

    Hosts in ``down`` are left out of every other rule: their empty cells explain themselves.
    Cells are counted per host with one grouping of the frame, so this is linear in its rows.
    """
    down = dict(down or {})
    order = list(dict.fromkeys(order))
    hints = []
    if down:
        as_src, as_dst = _positions(frame["src"], order), _positions(frame["dst"], order)
        hints = [
            Hint("host-down", h, "host down", len(np.union1d(as_src[i], as_dst[i])), len(frame),
                 f"{h} is down ({down[h]}): its whole row and column are empty")
            for i, h in enumerate(order)
            if h in down
        ]  # fmt: skip
    live = frame[~frame["src"].isin(list(down)) & ~frame["dst"].isin(list(down))]
    rows, cols = _positions(live["src"], order), _positions(live["dst"], order)
    explained = np.zeros(len(live), dtype=bool)
    for aspect in ASPECTS:
        bad = aspect.bad(live).to_numpy(dtype=bool)
        for i, host in enumerate(order):
            if host in down:
                continue
            row, col = rows[i], cols[i]
            hint = _host_hint(host, aspect, live, row, col, bad)
            if hint is not None:
                hints.append(hint)
                side = {"egress": row, "ingress": col, "host": np.concatenate([row, col])}
                explained[side[hint.scope]] |= bad[side[hint.scope]]
    hints.extend(_pair_hints(live, explained, order))
    return tuple(hints)


def _pair_hints(live: pd.DataFrame, explained: np.ndarray, order: Sequence[str]) -> list[Hint]:
    """Failed cells that no host hint covers, in host order (then aspect, then frame order);
    only the first ``MAX_PAIR_HINTS`` are worded, the rest counted."""
    failures = [a for a in ASPECTS if a.failure]
    found = [(k, np.flatnonzero(a.bad(live).to_numpy(dtype=bool) & ~explained))
             for k, a in enumerate(failures)]  # fmt: skip
    pos = np.concatenate([p for _, p in found]).astype("int64")
    which = np.concatenate([np.full(len(p), k, dtype="int64") for k, p in found])
    bw = np.array([int(a.bandwidth) for a in failures], dtype="int64")[which]
    hosts = pd.Index(order)
    src, dst = (  # a host outside ``order`` ranks first
        np.maximum(hosts.get_indexer(pd.Index(live[c].to_numpy()[pos])), 0) for c in ("src", "dst")
    )
    first = np.lexsort((pos, which, bw, dst, src))[:MAX_PAIR_HINTS]
    hints = []
    for k, idx in zip(which[first].tolist(), pos[first].tolist(), strict=True):
        aspect, cell = failures[k], live.iloc[idx]
        status, reason = ("bw_status", "bw_reason") if aspect.bandwidth else ("status", "reason")
        subject = f"{cell['src']} → {cell['dst']}"
        why = cell[reason] if isinstance(cell[reason], str) else "-"
        text = f"{subject}: {aspect.label} ({cell[status]}: {why}); only this path"
        text += _advice(aspect, live.iloc[[idx]])
        hints.append(Hint("pair", subject, aspect.label, 1, 1, text))
    if len(pos) > MAX_PAIR_HINTS:
        more = len(pos) - MAX_PAIR_HINTS
        hints.append(Hint("pair", "…", "more", more, more, f"… and {more} more failed cells"))
    return hints
