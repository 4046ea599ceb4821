"""The run store: one directory per run under ``reports/``.

    reports/<run-id>/run.json        what was run: inventory (path, sha256), options, versions,
                                     per-host connection and tool versions, phase times
                                     (typed: ``probe.store.rundoc``)
    reports/<run-id>/samples.jsonl   every result, appended and flushed as it arrives
    reports/<run-id>/probes/         its ping records as Parquet, one part per source's batch
                                     (``probe.store.probes``: a cache, samples.jsonl wins)
    reports/<run-id>/matrix.csv|.parquet, anchors.json, report.*   derived, rebuilt offline
    reports/latest -> <run-id>

``samples.jsonl`` is the source of truth: a crash loses nothing already measured, and a
``--resume`` reads it to know which cells are still missing. Each line is one record
(``probe.store.records``: the format, its one writer and its one reader); lines are written
whole, so a torn line (a kill mid-write leaves the start of an object, ``{...``, without its end)
can only be the last line, and is skipped with a warning, never trusted. A resumed run appending
after one marks it with a ``torn`` record on the next line, so it stays readable in the middle
of the file; a torn line anywhere else was cut by something other than a kill. That, and
anything else that is not a record of the known shape (a line that is not JSON at all, a record
missing a key the matrix needs), is damage: ``StoreError`` at ``samples.jsonl:LINE``. Records of
an unknown ``kind`` are skipped (fields and kinds are only ever added within a schema major).

Every write that fails (a full disk, a read-only or unwritable folder) is one ``StoreError``
naming the path, and leaves no temporary, empty or half-written file: run.json is replaced
atomically, and an append that fails is cut back to the last whole line.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from probe.errors import InputError, StoreError
from probe.store.records import (
    IperfTestRecord,
    PingRecord,
    SampleRecord,
    TornMark,
    UnknownRecord,
    decode_record,
    encode_record,
    is_torn,
)
from probe.store.rundoc import RunDoc, decode_run, encode_run
from probe.textio import cannot_write, read_text, save

if TYPE_CHECKING:
    from probe.store.probes import Summarize

_RUN_ID = re.compile(r"^\d{8}T\d{6}Z(-[a-z0-9]+)?$")


def new_run_id(now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return stamp.strftime("%Y%m%dT%H%M%SZ")


def utc_iso(ts: float | None = None) -> str:
    return (
        datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class Samples:
    """What ``samples.jsonl`` holds, with the damage found while reading it."""

    records: tuple[SampleRecord, ...]
    torn_lines: tuple[int, ...]  # line numbers that were not whole JSON objects


class RunStore:
    """Writes one run directory. ``append`` writes and fsyncs each record (crash-safe)."""

    def __init__(self, root: Path, run_id: str, summarize: Summarize | None = None) -> None:
        """``summarize``: a ping part's rows → its statistics part (``probe.store.probes``);
        None writes none."""
        self.dir = root / run_id
        self.run_id = run_id
        self._summarize = summarize
        self._samples: int | None = None  # samples.jsonl, opened for appending
        self._part_failed = False  # a part of the probe store could not be written (warned)
        self._tests: list[tuple[int, IperfTestRecord]] = []  # not in a bandwidth part yet

    @classmethod
    def create(
        cls,
        root: Path,
        run_id: str | None = None,
        summarize: Summarize | None = None,
    ) -> RunStore:
        rid = run_id or new_run_id()
        base, n = rid, 1
        while (root / rid).exists():  # two runs in one second
            n += 1
            rid = f"{base}-{n}"
        store = cls(root, rid, summarize)
        try:
            store.dir.mkdir(parents=True)
        except OSError as exc:
            raise cannot_write(store.dir, exc, "create the run directory") from exc
        return store

    @classmethod
    def reopen(cls, run_dir: Path, summarize: Summarize | None = None) -> RunStore:
        """For ``--resume``: append to an existing run."""
        if not (run_dir / "run.json").exists():
            raise StoreError(f"{run_dir}: not a run directory (no run.json)")
        return cls(run_dir.parent, run_dir.name, summarize)

    @property
    def samples_path(self) -> Path:
        return self.dir / "samples.jsonl"

    def write_run(self, doc: RunDoc) -> None:
        """Atomically replace run.json (written at start, updated per phase and at the end)."""
        save(self.dir / "run.json", encode_run(doc), durable=True)

    def append(self, record: SampleRecord, *, warn: Callable[[str], None] | None = None) -> None:
        """Add one line to samples.jsonl. A write the disk cuts short (ENOSPC) is cut back to
        where the file ended, so it never ends in half a record, and raised as ``StoreError``.
        An iperf3 record is also kept for the bandwidth store's next part (``append_many``)."""
        self._keep_tests(self._write((record,)), (record,), warn)

    def append_many(
        self, records: Sequence[SampleRecord], *, warn: Callable[[str], None] | None = None
    ) -> None:
        """Add the records' lines as ``append`` does, with one write and one fsync for all, then
        their ``ping`` records to the probe store (``probe.store.probes``) as one part; their
        iperf3 records join the bandwidth store's next part (``probe.store.bandwidth``: written
        every ``PART_RECORDS`` tests and by ``close``).

        Parts are a cache: one that cannot be written is not an error — its records are in
        samples.jsonl, where the reader finds them — but ``warn`` is told of the first such
        failure of the run (the folder is unwritable, or the disk full: the next append says)."""
        offsets = self._write(records)
        pings = [(o, r) for o, r in zip(offsets, records, strict=True) if isinstance(r, PingRecord)]
        if pings:
            from probe.store.probes import write_part  # pyarrow: imported by runs that ping only

            self._part(lambda: write_part(self.dir, pings, self._summarize), warn)
        self._keep_tests(offsets, records, warn)

    def _keep_tests(
        self,
        offsets: Sequence[int],
        records: Sequence[SampleRecord],
        warn: Callable[[str], None] | None,
    ) -> None:
        from probe.store.bandwidth import PART_RECORDS

        self._tests += [
            (o, r) for o, r in zip(offsets, records, strict=True) if isinstance(r, IperfTestRecord)
        ]
        if len(self._tests) >= PART_RECORDS:
            self._write_tests(warn)

    def _write_tests(self, warn: Callable[[str], None] | None) -> None:
        if self._tests:
            from probe.store.bandwidth import write_part

            tests, self._tests = self._tests, []
            self._part(lambda: write_part(self.dir, tests), warn)

    def _part(self, write: Callable[[], object], warn: Callable[[str], None] | None) -> None:
        try:
            write()
        except StoreError as exc:
            if warn is not None and not self._part_failed:
                warn(
                    f"WARNING: {exc}; the probe store is incomplete, and reading the run "
                    "takes those records from samples.jsonl instead (slower, nothing lost)"
                )
            self._part_failed = True

    def _write(self, records: Sequence[SampleRecord]) -> list[int]:
        """Append the records' lines (one fsync); each line's byte offset in the file."""
        if not records:
            return []
        path = self.samples_path
        lines = [(encode_record(r) + "\n").encode("utf-8") for r in records]
        end: int | None = None
        try:
            if self._samples is None:
                flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                self._samples = os.open(path, flags, 0o666)
            end = os.fstat(self._samples).st_size
            marks = b""
            if end and os.pread(self._samples, 1, end - 1) != b"\n":
                # a resumed run killed mid-write: the torn line stays a line of its own, and a
                # ``torn`` record right after it says that a kill, not damage, cut it
                count, tail = _tail(path)
                marks = b"\n"
                if is_torn(tail.decode("utf-8", errors="replace")):
                    marks += (encode_record(TornMark(count + 1, time.time())) + "\n").encode()
            first = end + len(marks)
            view = memoryview(marks + b"".join(lines))
            while view:
                view = view[os.write(self._samples, view) :]
            os.fsync(self._samples)
        except OSError as exc:
            if self._samples is not None and end is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._samples, end)
            raise cannot_write(path, exc) from exc
        return list(accumulate((len(line) for line in lines[:-1]), initial=first))

    def has_samples(self) -> bool:
        """Whether samples.jsonl holds anything: what a ``--resume`` can build on."""
        try:
            return self.samples_path.stat().st_size > 0
        except OSError:
            return False

    def close(self, *, warn: Callable[[str], None] | None = None) -> None:
        """Write the bandwidth store's last part (``warn``: as ``append_many``), close the file."""
        self._write_tests(warn)
        if self._samples is not None:
            fd, self._samples = self._samples, None
            os.close(fd)

    def discard(self) -> None:
        """Remove a new run's directory that holds no samples (best effort: a folder that turned
        read-only keeps it). Only the files a run writes first are removed, never a tree."""
        self.close()
        for name in ("samples.jsonl", "run.json"):
            with contextlib.suppress(OSError):
                (self.dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    def point_latest(self) -> None:
        """``reports/latest`` -> this run (a relative symlink, replaced atomically)."""
        link = self.dir.parent / "latest"
        tmp = self.dir.parent / f".latest.{os.getpid()}"
        try:
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.run_id)
            tmp.replace(link)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise cannot_write(link, exc) from exc


def resolve_run(path: str | Path) -> Path:
    """A run directory from what the user typed: a directory, ``latest``, or a run id."""
    p = Path(path)
    if p.is_dir() and (p / "run.json").exists():
        return p.resolve()
    if not p.exists() and (Path("reports") / p / "run.json").exists():
        return (Path("reports") / p).resolve()
    raise StoreError(f"{path}: not a run directory (expected run.json inside)")


def _tail(path: Path) -> tuple[int, bytes]:
    """(how many lines end with a newline, the bytes after the last newline)."""
    lines, tail = 0, b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            ended = chunk.count(b"\n")
            lines += ended
            tail = chunk.rpartition(b"\n")[2] if ended else tail + chunk
    return lines, tail


def read_run(run_dir: Path) -> RunDoc:
    path = run_dir / "run.json"
    try:
        text, _ = read_text(path)
    except InputError as exc:
        raise StoreError(str(exc)) from exc
    return decode_run(text, path)


def iter_samples(run_dir: Path) -> Iterator[tuple[int, SampleRecord | UnknownRecord | None]]:
    """(line number, record or None when the line is torn); damage raises StoreError."""
    for n, _, rec in iter_lines(run_dir):
        yield n, rec


#: samples.jsonl is scanned for line ends this many bytes at a time (numpy, not line by line),
#: and the lines to decode are read at most this many bytes at a time.
_BLOCK_BYTES = 1 << 24
#: Lines to decode closer than this are read together (one read, the bytes between wasted).
_GAP_BYTES = 1 << 16
#: How many of each line's first bytes the index keeps: enough for any ``Covered.prefix``.
HEAD_BYTES = 32


@dataclass(frozen=True, slots=True, eq=False)
class Covered:
    """Lines a columnar copy of samples.jsonl holds (``probe.store.probes``, ``.bandwidth``):
    the whole lines at ``offsets`` (sorted) that start with ``prefix`` (how their kind's lines
    start, at most ``HEAD_BYTES``). ``iter_lines`` passes over them unparsed and puts the
    offsets of those it met into ``found``."""

    prefix: bytes
    offsets: NDArray[np.int64]
    found: list[NDArray[np.int64]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, eq=False)
class LineIndex:
    """Where samples.jsonl's lines are, learnt without parsing one: each line's byte range
    ``[starts, ends)`` (its newline included) and first ``HEAD_BYTES`` bytes (``heads``, 0 past
    its end). A reader builds it beside other work (``index_lines`` leaves the GIL in reads and
    numpy): at 1,000 hosts the file is 0.7 GB and its scan ~1 s."""

    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    heads: NDArray[np.uint8]
    newline: bool  # the file ends with a newline (its last line is whole)


def index_lines(run_dir: Path) -> LineIndex | None:
    """samples.jsonl's ``LineIndex`` (None: the run has none). Failure: ``StoreError``."""
    path = run_dir / "samples.jsonl"
    if not path.exists():
        return None
    starts: list[NDArray[np.int64]] = []
    ends: list[NDArray[np.int64]] = []
    heads: list[NDArray[np.uint8]] = []
    base, carry, last = 0, b"", b""
    reach = np.arange(HEAD_BYTES, dtype=np.int64)
    try:
        with path.open("rb") as fh:
            while True:
                chunk = fh.read(_BLOCK_BYTES)
                buf = carry + chunk
                if not buf:
                    break
                last = chunk[-1:] or last
                data = np.frombuffer(buf, np.uint8)
                end = np.flatnonzero(data == 10) + 1
                if not chunk and (not len(end) or end[-1] != len(buf)):
                    end = np.r_[end, len(buf)]  # the last line, without its newline
                if not len(end):  # no line ends in the block yet: read on
                    carry = buf
                    continue
                start = np.r_[0, end[:-1]].astype(np.int64)
                at = start[:, None] + reach
                heads.append(np.where(at < end[:, None], data[np.minimum(at, len(data) - 1)], 0))
                starts.append(base + start)
                ends.append(base + end.astype(np.int64))
                used = int(end[-1])
                base += used
                carry = buf[used:]
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not starts:
        empty = np.zeros(0, np.int64)
        return LineIndex(empty, empty, np.zeros((0, HEAD_BYTES), np.uint8), True)
    return LineIndex(
        np.concatenate(starts), np.concatenate(ends), np.concatenate(heads), last == b"\n"
    )


def iter_lines(
    run_dir: Path, covered: Sequence[Covered] = (), index: LineIndex | None = None
) -> Iterator[tuple[int, int, SampleRecord | UnknownRecord | None]]:
    """(line number, byte offset, record or None when the line is torn); damage raises
    StoreError. A line ``covered`` names is neither parsed nor yielded (a columnar copy has
    it): at 1,000 hosts a million covered lines cost no Python each, and no second read.
    ``index``: the file's ``index_lines``, when the caller built it already.

    A torn line is accepted last in the file, or followed by the ``torn`` record a resumed run
    wrote for it (see the module's docstring); ``torn`` records themselves are not yielded."""
    path = run_dir / "samples.jsonl"
    index = index if index is not None else index_lines(run_dir)
    if index is None:
        return
    starts, ends = index.starts, index.ends
    skip = np.zeros(len(starts), np.bool_)
    for cover in covered:
        hit = _covered_lines(index, cover)
        cover.found.append(starts[hit])
        skip |= hit
    skipped = np.cumsum(skip)  # lines passed over up to each line, itself included
    todo = np.flatnonzero(~skip)
    # the lines to decode, read a run of near ones (at most a block) at a time
    t_ends = ends[todo]
    gap = starts[todo][1:] - t_ends[:-1] > _GAP_BYTES
    run_last = np.flatnonzero(np.r_[gap, True]) if len(todo) else todo
    run_of = np.r_[0, np.cumsum(gap)] if len(todo) else todo
    torn: tuple[int, int] | None = None  # a torn line, until the next line says if it may be
    torn_i = 0

    def cut_short() -> StoreError:
        assert torn is not None
        return StoreError(
            f"{path}:{torn[0]}: a record cut short in the middle of the file "
            "(only the last line may be torn by a kill)"
        )

    window, window_at = b"", 0
    try:
        with path.open("rb") as fh:
            for k, i in enumerate(todo.tolist()):
                a, b = int(starts[i]), int(ends[i])
                if a < window_at or b > window_at + len(window):
                    end = int(run_last[run_of[k]]) + 1
                    j = k + int(np.searchsorted(t_ends[k:end], a + _BLOCK_BYTES, "right")) - 1
                    stop = int(t_ends[max(j, k)])
                    window, window_at = os.pread(fh.fileno(), stop - a, a), a
                raw = window[a - window_at : b - window_at]
                if not raw.strip():
                    continue
                n = i + 1
                rec = decode_record(raw.decode("utf-8", errors="replace"), f"{path}:{n}")
                if torn is not None:
                    if skipped[i] > skipped[torn_i] or not (
                        isinstance(rec, TornMark) and rec.line == torn[0]
                    ):
                        raise cut_short()
                    yield *torn, None
                    torn = None
                elif isinstance(rec, TornMark):
                    raise StoreError(f"{path}:{n}: a 'torn' record below a line that is whole")
                elif rec is None:
                    torn, torn_i = (n, a), i
                else:
                    yield n, a, rec
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if torn is not None:  # the last line: a kill mid-write
        if skipped[-1] > skipped[torn_i]:
            raise cut_short()
        yield *torn, None


def _covered_lines(index: LineIndex, cover: Covered) -> NDArray[np.bool_]:
    """Which lines are whole lines at an offset ``cover`` holds, starting with its prefix."""
    covered, prefix, starts = cover.offsets, cover.prefix, index.starts
    if not len(covered) or not len(starts):
        return np.zeros(len(starts), np.bool_)
    at = np.minimum(np.searchsorted(covered, starts), len(covered) - 1)
    hit: NDArray[np.bool_] = covered[at] == starts
    hit &= index.ends - starts > len(prefix)
    hit[-1] &= index.newline  # a whole line ends with its newline: the last one may lack it
    want = np.frombuffer(prefix, np.uint8)
    hit[hit] &= (index.heads[hit][:, : len(want)] == want).all(axis=1)
    return hit


def scan_samples(run_dir: Path, torn: list[int]) -> Iterator[SampleRecord]:
    """The records of known kinds one at a time, so a rebuild need not hold them all; the
    numbers of torn lines are appended to ``torn`` as they are met."""
    for n, rec in iter_samples(run_dir):
        if rec is None:
            torn.append(n)
        elif not isinstance(rec, UnknownRecord):
            yield rec


def read_samples(run_dir: Path) -> Samples:
    torn: list[int] = []
    records = tuple(scan_samples(run_dir, torn))
    return Samples(records, tuple(torn))


def torn_warning(run_dir: Path, samples: Samples | Sequence[int]) -> str | None:
    """One line for the user when torn lines were skipped (None when there were none)."""
    torn = samples.torn_lines if isinstance(samples, Samples) else samples
    if not torn:
        return None
    lines = ", ".join(str(n) for n in torn[:5]) + (", …" if len(torn) > 5 else "")
    return (
        f"{run_dir / 'samples.jsonl'}: skipped {len(torn)} torn line(s) (line {lines}); "
        "the cells they held count as not measured"
    )
