"""matrix.csv's vectorised writer writes pandas' ``to_csv`` text, byte for byte."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.matrix import build, csvtext
from probe.matrix.csvtext import csv_blocks
from probe.store.rundir import read_run

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"


def text(frame: pd.DataFrame) -> bytes:
    return b"".join(csv_blocks(frame))


def test_the_golden_runs_matrix_is_written_as_pandas_writes_it() -> None:
    frame = build.load_matrix(GOLDEN)
    assert text(frame) == frame.to_csv(index=False).encode()
    assert {str(frame[c].dtype) for c in build.COLUMNS} >= {"float64", "Int64", "boolean", "bool"}


def test_floats_of_every_magnitude_and_bit_pattern() -> None:
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**64, 50_000, dtype=np.uint64).view(np.float64)
    edges = [0.0, -0.0, 1.0, -1.0, 1e-4, 9.9999e-5, 1e-5, 2.5e-7, 5e-324, 1e15, 9.99e14, 1e16,
             123456789012345.6, 13463053035.748682, 1.7976931348623157e308, math.inf, -math.inf,
             math.nan, 0.1, 100.0]  # fmt: skip
    values = np.concatenate([bits, rng.random(20_000) * 1000, np.round(rng.random(5000), 2), edges])
    frame = pd.DataFrame({"x": values, "y": "a"})
    assert text(frame) == frame.to_csv(index=False).encode()


_TEXT = st.one_of(st.none(), st.text(st.sampled_from('ab ,"\n\r\té-'), max_size=6))
_FLOAT = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_INT = st.one_of(st.none(), st.integers(-(2**40), 2**40))
_FLAG = st.one_of(st.none(), st.booleans())


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(_TEXT, _FLOAT, _INT, _FLAG, st.booleans(), _TEXT), max_size=30),
    categorical=st.booleans(),
)
def test_every_dtype_of_the_matrix(
    rows: list[tuple[str | None, float | None, int | None, bool | None, bool, str | None]],
    categorical: bool,
) -> None:
    texts, floats, ints, flags, bools, more = zip(*rows, strict=True) if rows else ((),) * 6
    frame = pd.DataFrame(
        {
            "text": np.array(texts, dtype=object),
            "float": np.array([math.nan if v is None else v for v in floats], np.float64),
            "int": pd.array(list(ints), dtype="Int64"),
            "flag": pd.array(list(flags), dtype="boolean"),
            "bool": np.array(bools, np.bool_),
            "more": pd.Series(more, dtype="category" if categorical else object),
        }
    )
    assert text(frame) == frame.to_csv(index=False).encode()


def test_a_block_boundary_and_a_one_column_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvtext, "_BLOCK_ROWS", 3)
    frame = pd.DataFrame({"a": [1.5, math.nan, 2.0, 3.0, 4.25], "b": list("vwxyz")})
    assert text(frame) == frame.to_csv(index=False).encode()
    one = pd.DataFrame({"a": ["x", None, ""]})
    assert text(one) == one.to_csv(index=False).encode()


def test_write_matrix_writes_the_same_csv(tmp_path: Path) -> None:
    frame = build.load_matrix(GOLDEN, run=read_run(GOLDEN))
    build.write_matrix(tmp_path, frame)
    assert (tmp_path / "matrix.csv").read_bytes() == frame.to_csv(index=False).encode()
