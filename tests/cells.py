"""Typed reads of matrix cells for tests. pandas-stubs types a cell (``.at``, a field of
``itertuples``) as any scalar at all, so tests narrow it here, in one place, and a cell of the
wrong kind fails the test instead of being compared as whatever it is."""

from __future__ import annotations

import numpy as np
import pandas as pd


def as_float(value: object) -> float:
    """A numeric cell as a float (NaN stays NaN)."""
    if not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def as_str(value: object) -> str:
    """A text cell: a host, a status, a reason."""
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r}")
    return value


class Cells:
    """A matrix frame (one row per ordered pair) read a cell at a time by (src, dst)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._by_pair = frame.set_index(["src", "dst"])

    def num(self, src: str, dst: str, column: str) -> float:
        return as_float(self._by_pair.at[(src, dst), column])

    def text(self, src: str, dst: str, column: str) -> str:
        return as_str(self._by_pair.at[(src, dst), column])
