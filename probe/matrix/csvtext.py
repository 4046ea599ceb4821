"""A frame as CSV text, vectorised, byte for byte what ``DataFrame.to_csv(index=False)`` writes.

pandas writes a CSV row by row through Python's ``csv`` module: 17 s for the million rows of a
1,000-host matrix. Here each column is rendered at once with Arrow (a categorical's categories
once) and the rows are joined in C, a block of rows at a time, so the text never has to be held
whole. The rendering is pandas' own: floats as ``repr`` (shortest round trip: ``1.0``, ``1e-05``,
``1e+16``), NaN, None and NA empty, booleans ``True`` / ``False``, integers as they are, and a
field holding ``,``, ``"`` or a newline quoted with its quotes doubled (``QUOTE_MINIMAL``).
Arrow's float text has the same digits but not the same layout (``1``, ``0.00001``,
``1e+15``): integral values get their ``.0``, and the few values outside [1e-4, 1e15) go
through ``repr`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

#: Rows rendered at a time: a block's text is tens of MiB.
_BLOCK_ROWS = 1 << 17
#: What makes the csv module quote a field (delimiter, quote, line terminator ``\n``).
_NEEDS_QUOTES = '[,"\n]'
#: Floats Arrow writes as Python does once given their ``.0``: fixed notation in both.
_FIXED_LOW, _FIXED_HIGH = 1e-4, 1e15


def csv_blocks(frame: pd.DataFrame) -> Iterator[bytes]:
    """``frame.to_csv(index=False)`` as UTF-8, header first, then a block of rows at a time.
    A block's columns are rendered on every core (Arrow's kernels release the GIL)."""
    if frame.shape[1] < 2:  # one column: csv quotes an empty field ("") to keep its line
        yield frame.to_csv(index=False).encode("utf-8")
        return
    header = [_quoted(str(c)) for c in frame.columns]
    yield (",".join(header) + "\n").encode("utf-8")
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for start in range(0, len(frame), _BLOCK_ROWS):
            block = frame.iloc[start : start + _BLOCK_ROWS]
            cells = pool.map(_cells, [block.iloc[:, i] for i in range(block.shape[1])])
            rows = pc.binary_join_element_wise(
                *cells, ",", null_handling="replace", null_replacement=""
            )
            yield _text(pc.binary_join_element_wise(rows, "\n", ""))


def _text(lines: pa.Array) -> bytes:
    """The concatenated values of a string array (no nulls): its data buffer, sliced."""
    if not len(lines):
        return b""
    offsets = np.frombuffer(lines.buffers()[1], np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    data: bytes = lines.buffers()[2][first:last].to_pybytes()
    return data


def _quoted(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _cells(column: pd.Series) -> pa.Array:
    """One column's fields as a string array, null where pandas writes nothing."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        names = _cells(pd.Series(dtype.categories.to_numpy(object), dtype=object))
        codes = column.cat.codes.to_numpy()
        return names.take(pa.array(codes, mask=codes < 0))
    if pd.api.types.is_bool_dtype(dtype):
        flags = pa.array(column, pa.bool_(), from_pandas=True)
        return pc.if_else(flags, "True", "False")
    if pd.api.types.is_float_dtype(dtype):
        return float_texts(column.to_numpy(np.float64, na_value=np.nan))
    if pd.api.types.is_integer_dtype(dtype):
        return pc.cast(pa.array(column, pa.int64(), from_pandas=True), pa.string())
    return _texts(column)


def float_texts(values: NDArray[np.float64]) -> pa.Array:
    """Floats as ``repr`` writes them (NaN: null): also what ``json.dumps`` writes."""
    nan = np.isnan(values)
    text = pc.cast(pa.array(values, mask=nan), pa.string())
    size = np.abs(values)
    with np.errstate(invalid="ignore"):
        fixed = ~nan & (((size >= _FIXED_LOW) & (size < _FIXED_HIGH)) | (values == 0))
    integral = fixed & (np.trunc(np.where(fixed, values, 0.0)) == values)
    # tiny, huge or infinite, or written with an exponent by Arrow (17 digits above 1e9): rare
    odd = ~nan & ~fixed
    odd[fixed] |= pc.match_substring(text.filter(pa.array(fixed)), "e").to_numpy(False)
    text = _replace(text, odd, pa.array([repr(v) for v in values[odd].tolist()], pa.string()))
    integral &= ~odd
    return _replace(text, integral, pc.binary_join_element_wise(text.filter(integral), ".0", ""))


def _replace(text: pa.Array, where: NDArray[np.bool_], values: pa.Array) -> pa.Array:
    """``text`` with the fields ``where`` is true replaced by ``values``, in order."""
    return pc.replace_with_mask(text, pa.array(where), values) if len(values) else text


def _texts(column: pd.Series) -> pa.Array:
    """Strings (and anything else, as ``str`` writes it), quoted where the csv module would."""
    try:
        text = pa.array(column, pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        missing = column.isna().to_numpy()
        values = [str(v) for v in column.tolist()]
        text = pa.array(values, pa.string(), mask=missing)
    quote = pc.match_substring_regex(text, _NEEDS_QUOTES)
    if pc.any(quote).as_py():
        doubled = pc.replace_substring(text, '"', '""')
        wrapped = pc.binary_join_element_wise('"', doubled, '"', "")
        text = pc.if_else(quote, wrapped, text)
    return text
