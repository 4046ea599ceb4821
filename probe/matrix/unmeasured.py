"""What a run has not measured yet: its planned cells that no record speaks of.

A cell with a record is measured, even when the record is a failure and its reason: the run is
then complete, with failures (``probe run`` exits 4). A cell without one was never reached — the
run was interrupted, killed, or a kill tore its record — and ``probe run --resume`` measures it.
``show`` and ``report`` say so first, so an incomplete run never passes for a complete one.

Every ordered pair of measured hosts the ping plan holds is an RTT cell (``--ping-pairs``: the
others are ``not-planned``, never missing), unless neither host accepts ICMP (``not-measurable``).
The bandwidth cells are the plan's tests,
recomputed from run.json as ``probe run`` made them (its hosts in order, ``--pairs``): a pair
outside the plan is no more missing than in a run that never meant to measure it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pandas as pd

from probe.matrix.build import NOT_MEASURED, bandwidth_cells
from probe.model import CellStatus
from probe.store.rundoc import RunDoc

_SKIPPED = str(CellStatus.SKIPPED)
#: RTT rows that are no cell to measure: left out by the plan, or known to be unmeasurable
_NO_CELL = (str(CellStatus.NOT_PLANNED), str(CellStatus.NOT_MEASURABLE))


@dataclass(frozen=True, slots=True)
class Unmeasured:
    """Cells without a record, of those the run meant to measure; how the run ended."""

    rtt: int
    rtt_cells: int
    bw: int
    bw_cells: int  # the bandwidth plan's directed tests (0 with --no-bandwidth)
    interrupted: bool  # Ctrl-C or SIGTERM
    finished: bool  # the run (its latest attempt) got to its end: False when it was killed

    @property
    def incomplete(self) -> bool:
        return bool(self.rtt or self.bw) or self.interrupted or not self.finished

    def notice(self, run: str, inventory: str) -> str | None:
        """One line for the top of ``show`` and ``report`` (None when the run is complete):
        how many cells are missing, why, and the command that measures them."""
        if not self.incomplete:
            return None
        counts = f"{self.rtt} of {self.rtt_cells} RTT cells"
        if self.bw_cells:
            counts = f"{self.bw} of {self.bw_cells} bandwidth cells and {counts}"
        why = "interrupted; " if self.interrupted else "" if self.finished else "not finished; "
        command = shlex.join(["probe", "run", inventory, "--resume", run])
        return f"incomplete: {counts} not measured ({why}resume with {command})"


def unmeasured(run: RunDoc, frame: pd.DataFrame) -> Unmeasured:
    """Count the cells of ``frame`` (the long-form matrix of ``run``) that have no record."""
    missing = (frame["status"] == _SKIPPED) & (frame["reason"] == NOT_MEASURED)
    bw_missing = (frame["bw_status"] == _SKIPPED) & (frame["bw_reason"] == NOT_MEASURED)
    planned = bandwidth_cells(run)
    # only the rows without a test can be missing ones: none in a finished run of 1M rows
    waiting = frame.loc[bw_missing.to_numpy(bool), ["src", "dst"]]
    bw = sum(cell in planned for cell in zip(waiting["src"], waiting["dst"], strict=True))
    ended, resumed = run.ended_utc, run.resumed_utc
    return Unmeasured(
        rtt=int(missing.sum()),
        rtt_cells=int((~frame["status"].isin(_NO_CELL)).sum()),
        bw=bw,
        bw_cells=len(planned),
        interrupted=run.interrupted,
        # ISO times of one format order as text; a resume keeps the first attempt's end
        finished=ended is not None and (resumed is None or ended >= resumed),
    )
