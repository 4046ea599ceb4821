"""The report's confidence notes: which figures rest on too little to be read at face value.

Three kinds, each naming its cells (a few, then a count) and the matrix column that flags them:
RTT p99s from fewer than ``probe.stats.P99_MIN_SAMPLES`` replies (a p99 of 20 probes is nearly
the slowest one), bandwidth tests shorter than ``probe.stats.MIN_RTTS_PER_TEST`` round trips of
their path (slow start dominates the goodput), and multi-modal region pairs (their median may
describe no pair; ``matrix.regions.spread``). Pure: a matrix and the spreads in, sentences out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from probe.matrix.regions import Spread
from probe.model import CellStatus
from probe.stats import MIN_RTTS_PER_TEST, P99_MIN_SAMPLES

NAMED = 6  # cells named per note before "and N more"


def _cells(names: Sequence[str], total: int | None = None) -> str:
    """The first ``NAMED`` of ``names`` and a count of the rest; ``total``: how many there are
    when ``names`` holds only the first few (a million-cell fleet names six, not all)."""
    total = len(names) if total is None else total
    more = f" and {total - NAMED} more" if total > NAMED else ""
    return ", ".join(names[:NAMED]) + more


def _flagged(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    if column not in frame.columns:  # a matrix from before the column
        return frame.iloc[0:0]
    return frame[frame[column].fillna(False).astype(bool)]


def confidence_notes(
    frame: pd.DataFrame, spreads: Mapping[tuple[str, str], Spread]
) -> tuple[str, ...]:
    """The notes for ``frame`` (each pair's preferred network) and its region ``spreads``."""
    notes = []
    few = _flagged(frame, "p99_few_samples")
    if len(few):
        ok = int((frame["status"] == CellStatus.OK.value).sum())
        named = few.head(NAMED)
        names = [f"{s}→{d}" for s, d in zip(named["src"], named["dst"], strict=True)]
        which = f"every ok cell ({ok})" if len(few) == ok else f"{len(few)} of {ok} ok cells"
        listed = "" if len(few) == ok else f": {_cells(names, len(few))}"
        notes.append(
            f"RTT p99 from fewer than {P99_MIN_SAMPLES} replies in {which}: nearly the slowest "
            f"reply, not a tail (column p99_few_samples; --count {P99_MIN_SAMPLES} or more for a "
            f"p99 to rely on){listed}."
        )
    short = _flagged(frame, "bw_short_for_rtt")
    if len(short):
        rtt = short["rtt_p50_ms"].fillna(short["bw_fwd_tcp_rtt_ms"])
        named = short.head(NAMED)
        names = [
            f"{s}→{d} ({secs:g} s at {ms:.0f} ms)"
            for s, d, secs, ms in zip(named["src"], named["dst"], named["bw_duration_s"],
                                      rtt.head(NAMED), strict=True)
        ]  # fmt: skip
        need = MIN_RTTS_PER_TEST * float(rtt.max()) / 1000.0
        notes.append(
            f"Bandwidth tests shorter than {MIN_RTTS_PER_TEST} round trips of their path after "
            f"the omitted ramp: slow start dominates their goodput (column bw_short_for_rtt; "
            f"--duration {need:.0f} or more): {_cells(names, len(short))}."
        )
    split = [
        f"{src} → {dst} (pair p50s {s.low_ms:.3g}–{s.high_ms:.3g} ms)"
        for (src, dst), s in spreads.items()
        if s.multimodal
    ]
    if split:
        notes.append(
            "Multi-modal region pairs: their pairs' RTT p50s split into clusters, so the "
            f"region median may describe no pair (see the spread column): {_cells(split)}."
        )
    return tuple(notes)
