"""Writing one Parquet part of a run's columnar copies (``probes/``, ``bandwidth/``): whole or
absent, never fatal to the run (samples.jsonl, fsynced first, holds every record)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from probe.errors import StoreError
from probe.textio import cannot_write, write_atomic


def save_part(path: Path, table: pa.Table) -> Path:
    """``table`` at ``path``, under a temporary name renamed when whole. Not fsynced: a part a
    power cut spoils is ignored by the reader, which takes its records from samples.jsonl.
    Failure: ``StoreError``."""
    sink = pa.BufferOutputStream()
    try:
        pq.write_table(table, sink)
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, sink.getvalue().to_pybytes())
    except OSError as exc:
        raise cannot_write(path, exc) from exc
    except pa.ArrowException as exc:  # a value the schema cannot hold: the JSONL still has it
        raise StoreError(f"{path}: cannot write ({exc})") from exc
    return path
