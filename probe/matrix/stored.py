"""Analyse once, read many times: a run's matrix.parquet, rebuilt only when its inputs changed.

A rebuild from samples.jsonl costs ~50 s and ~3 GiB at 1,000 hosts; reading the Parquet file the
run's end wrote costs a second, and less for a few columns. matrix.parquet carries a stamp in its
key-value metadata (``probe.matrix``): samples.jsonl's size and mtime_ns, run.json's sha256 and
the format of the frame. It is fresh while all four match: a ``--resume`` appends to the samples,
an edit changes run.json, an older probe wrote no stamp, a newer probe's frame has other columns.
Anything else — no file, a damaged one, a stale stamp — rebuilds with ``build.load_matrix`` and
saves the result with its stamp, unless the directory refuses (someone else's run, a read-only
mount): then the frame is returned unsaved, the next reader rebuilds it again.

The stamp is taken *before* the samples are read, so a record appended during a rebuild leaves a
stamp that no longer matches. The torn lines the rebuild skipped ride along in the metadata, so a
fresh read still warns about them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from probe.errors import StoreError
from probe.matrix import build
from probe.matrix.anchors import Anchors
from probe.matrix.pairs import FRAME_COLUMNS, NUMERIC_COLUMNS, Codes, PairTable
from probe.matrix.samples import SIDECAR, Probes, SidecarSamples
from probe.store.rundir import read_run, torn_warning
from probe.store.rundoc import RunDoc

if TYPE_CHECKING:
    import pyarrow.parquet as pq

#: The metadata key of the stamp in matrix.parquet.
STAMP_KEY = "probe.matrix"
#: Bump when the frame changes in a way its column names do not show (a dtype, a meaning).
FORMAT_VERSION = 2  # 2: a sampled plan's implied pairs have no row (matrix.implied)
#: What a stamp's ``format`` says: the version and the columns, so a frame with other columns is
#: never read as this one even if nobody bumped the version.
FORMAT = f"{FORMAT_VERSION}:" + hashlib.sha256(",".join(build.COLUMNS).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a matrix was built from: samples.jsonl (size -1: none) and run.json, and its format."""

    samples_bytes: int
    samples_mtime_ns: int
    run_sha256: str
    format: str = FORMAT


@dataclass(frozen=True, slots=True, eq=False)
class StoredMatrix:
    """A run's long-form matrix and the samples.jsonl lines its build skipped as torn."""

    frame: pd.DataFrame
    torn_lines: tuple[int, ...]


def stamp_of(run_dir: Path, *, run_json: str | None = None) -> Stamp:
    """The stamp the run directory's inputs have now, or once run.json holds ``run_json``: the
    run's end writes its matrix before its last run.json, so a matrix that cannot be written
    leaves a run that does not say it is complete."""
    try:
        data = (run_dir / "run.json").read_bytes() if run_json is None else run_json.encode()
    except OSError as exc:
        raise StoreError(f"{run_dir / 'run.json'}: cannot read ({exc.strerror or exc})") from exc
    run_sha = hashlib.sha256(data).hexdigest()
    try:
        st = (run_dir / "samples.jsonl").stat()
    except FileNotFoundError:
        return Stamp(-1, 0, run_sha)
    except OSError as exc:
        raise StoreError(f"{run_dir / 'samples.jsonl'}: cannot stat ({exc.strerror})") from exc
    return Stamp(st.st_size, st.st_mtime_ns, run_sha)


def save_matrix(
    run_dir: Path, frame: pd.DataFrame, stamp: Stamp, torn_lines: Sequence[int] = ()
) -> None:
    """matrix.csv and matrix.parquet, the latter stamped (``stamp`` taken before the build)."""
    meta = json.dumps({**asdict(stamp), "torn_lines": list(torn_lines)})
    build.write_matrix(run_dir, frame, {STAMP_KEY: meta})


def read_matrix(
    run_dir: Path, *, columns: Sequence[str] | None = None, run: RunDoc | None = None
) -> StoredMatrix:
    """The matrix (only ``columns``, in that order, when given): stored if fresh, else rebuilt
    and saved where the directory allows. ``run`` is its run.json when the caller read it."""
    stamp = stamp_of(run_dir)
    stored = _read_fresh(run_dir / "matrix.parquet", stamp, columns)
    if stored is not None:
        return stored
    torn: list[int] = []
    frame = build.load_matrix(run_dir, run=run, torn=torn)
    # not ours to write (read-only, someone else's, a full disk): the frame is right all the same
    with contextlib.suppress(StoreError):
        save_matrix(run_dir, frame, stamp, torn)
    return StoredMatrix(frame if columns is None else frame[list(columns)], tuple(torn))


def matrix_of(
    run_dir: Path,
    *,
    columns: Sequence[str] | None = None,
    warn: Callable[[str], None] | None = None,
    run: RunDoc | None = None,
) -> pd.DataFrame:
    """``read_matrix``'s frame; ``warn`` hears about torn lines of samples.jsonl, stored or not."""
    stored = read_matrix(run_dir, columns=columns, run=run)
    if warn is not None and (message := torn_warning(run_dir, stored.torn_lines)) is not None:
        warn(message)
    return stored.frame


def _fresh_file(
    path: Path, stamp: Stamp, *, read_dictionary: Sequence[str] = ()
) -> tuple[pq.ParquetFile, tuple[int, ...]] | None:
    """The stored matrix file and its torn lines when its stamp is ``stamp``; None when
    missing, stale or damaged. ``read_dictionary``: string columns read as codes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path, read_dictionary=list(read_dictionary) or None)
        meta = json.loads((f.schema_arrow.metadata or {}).get(STAMP_KEY.encode(), b"null"))
        if not isinstance(meta, dict):
            return None
        torn = tuple(int(n) for n in meta.pop("torn_lines", None))
    # gone, not Parquet, cut short, a stamp that is not ours
    except (OSError, ValueError, TypeError, pa.ArrowException):
        return None
    return (f, torn) if meta == asdict(stamp) else None


def _read_fresh(path: Path, stamp: Stamp, columns: Sequence[str] | None) -> StoredMatrix | None:
    """The stored matrix when its stamp is ``stamp``; None when missing, stale or damaged."""
    import pyarrow as pa

    found = _fresh_file(path, stamp)
    if found is None:
        return None
    f, torn = found
    try:
        frame = f.read(columns=None if columns is None else list(columns)).to_pandas()
    except (OSError, ValueError, TypeError, pa.ArrowException):  # cut short
        return None
    return StoredMatrix(frame, torn)


def _stored_pairs(run_dir: Path) -> tuple[PairTable, tuple[int, ...]] | None:
    """The fresh stored matrix's pairs straight from its Parquet columns (strings as codes: no
    pandas, no Python string per row), each pair's preferred row as ``build.preferred`` keeps
    it; None when the matrix is not fresh."""
    import pyarrow as pa

    strings = [c for c in FRAME_COLUMNS if c not in NUMERIC_COLUMNS]
    found = _fresh_file(run_dir / "matrix.parquet", stamp_of(run_dir), read_dictionary=strings)
    if found is None:
        return None
    f, torn = found
    try:
        names = f.schema_arrow.names
        table = f.read(columns=[c for c in FRAME_COLUMNS if c in names])
        table = table.unify_dictionaries().combine_chunks()
    except (OSError, ValueError, TypeError, pa.ArrowException):  # cut short
        return None
    src, dst = (Codes.from_arrow(table[c]) for c in build.KEY)
    key = pd.Index(src.codes.astype(np.int64) * (len(dst.values) + 1) + dst.codes)
    if not key.is_unique:  # --networks all: a pair's first row is its preferred network's
        table = table.filter(pa.array(~key.duplicated()))
    return PairTable.from_arrow(table), torn


def kept_samples(run_dir: Path, run: RunDoc) -> Mapping[tuple[str, str], Probes]:
    """The raw RTTs behind the anchors (calc's Monte-Carlo): the sidecar the run's end wrote
    beside anchors.json, read lazily, while it is not older than samples.jsonl; else rebuilt
    from samples.jsonl (a run killed before its end, or from a probe before the sidecar)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sidecar = run_dir / SIDECAR
    try:
        fresh = sidecar.stat().st_mtime_ns >= (run_dir / "samples.jsonl").stat().st_mtime_ns
        if fresh:
            return SidecarSamples(sidecar, pq.read_metadata(sidecar).num_rows)
    except (OSError, pa.ArrowException):
        pass  # none, or unreadable: the samples are the truth
    builder = build.MatrixBuilder(run)
    builder.add_store(build.stored_run(run_dir, []))
    return builder.samples()


def anchors_of(run_dir: Path, *, warn: Callable[[str], None] | None = None) -> Anchors:
    """The run's anchors without parsing anchors.json: pairs and region roll-ups from the stored
    matrix (its columns as they are while it is fresh, else rebuilt as ``read_matrix`` does),
    samples as ``kept_samples`` finds them."""
    run = read_run(run_dir)
    stored = _stored_pairs(run_dir)
    if stored is None:
        frame = matrix_of(run_dir, columns=FRAME_COLUMNS, warn=warn, run=run)
        pairs = build.pair_table(frame)
    else:
        pairs, torn = stored
        if warn is not None and (message := torn_warning(run_dir, torn)) is not None:
            warn(message)
    return build.anchors_from(run, pairs, kept_samples(run_dir, run))
