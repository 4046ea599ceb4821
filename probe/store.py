"""The run store: one directory per run under ``reports/``.

    reports/<run-id>/run.json        what was run: inventory (path, sha256), options, versions,
                                     per-host connection and tool versions, phase times
    reports/<run-id>/samples.jsonl   every result, appended and flushed as it arrives
    reports/<run-id>/matrix.csv|.parquet, anchors.json, report.*   derived, rebuilt offline
    reports/latest -> <run-id>

``samples.jsonl`` is the source of truth: a crash loses nothing already measured, and a
``--resume`` reads it to know which cells are still missing. Each line is one JSON object with a
``kind`` (``host``, ``ping``, ``iperf3``); lines are written whole, so a torn last line (a kill
mid-write) is detected and skipped with a warning, never trusted.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from probe.errors import StoreError

RUN_SCHEMA = "probe.run/1"
SAMPLES_SCHEMA = "probe.samples/1"
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

    records: tuple[dict[str, Any], ...]
    torn_lines: tuple[int, ...]  # line numbers that were not whole JSON objects


class RunStore:
    """Writes one run directory. ``append`` flushes and fsyncs each record (crash-safe)."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.dir = root / run_id
        self.run_id = run_id
        self._samples: IO[str] | None = None

    @classmethod
    def create(cls, root: Path, run_id: str | None = None) -> RunStore:
        rid = run_id or new_run_id()
        base, n = rid, 1
        while (root / rid).exists():  # two runs in one second
            n += 1
            rid = f"{base}-{n}"
        store = cls(root, rid)
        store.dir.mkdir(parents=True)
        return store

    @classmethod
    def reopen(cls, run_dir: Path) -> RunStore:
        """For ``--resume``: append to an existing run."""
        if not (run_dir / "run.json").exists():
            raise StoreError(f"{run_dir}: not a run directory (no run.json)")
        return cls(run_dir.parent, run_dir.name)

    def write_run(self, doc: dict[str, Any]) -> None:
        """Atomically replace run.json (written at start, updated per phase and at the end)."""
        tmp = self.dir / "run.json.tmp"
        tmp.write_text(json.dumps({"schema": RUN_SCHEMA, **doc}, indent=1, default=str))
        tmp.replace(self.dir / "run.json")

    def append(self, record: dict[str, Any]) -> None:
        if self._samples is None:
            self._samples = (self.dir / "samples.jsonl").open("a", encoding="utf-8")
        self._samples.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self._samples.flush()
        os.fsync(self._samples.fileno())

    def close(self) -> None:
        if self._samples is not None:
            self._samples.close()
            self._samples = None

    def point_latest(self) -> None:
        """``reports/latest`` -> this run (a relative symlink, replaced atomically)."""
        link = self.dir.parent / "latest"
        tmp = self.dir.parent / f".latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.run_id)
        tmp.replace(link)


def resolve_run(path: str | Path) -> Path:
    """A run directory from what the user typed: a directory, ``latest``, or a run id."""
    p = Path(path)
    if p.is_dir() and (p / "run.json").exists():
        return p.resolve()
    if not p.exists() and (Path("reports") / p / "run.json").exists():
        return (Path("reports") / p).resolve()
    raise StoreError(f"{path}: not a run directory (expected run.json inside)")


def read_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise StoreError(f"{path}: missing") from exc
    except ValueError as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise StoreError(f"{path}: expected a JSON object")
    schema = str(doc.get("schema", ""))
    if not schema.startswith("probe.run/"):
        raise StoreError(f"{path}: not a probe run file (schema {schema!r})")
    if schema.split("/", 1)[1].split(".")[0] != RUN_SCHEMA.split("/")[1]:
        raise StoreError(f"{path}: schema {schema} is newer than this probe ({RUN_SCHEMA})")
    return doc


def iter_samples(run_dir: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, record or None when the line is torn or not an object)."""
    path = run_dir / "samples.jsonl"
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                yield n, None
                continue
            yield n, rec if isinstance(rec, dict) and "kind" in rec else None


def read_samples(run_dir: Path) -> Samples:
    records: list[dict[str, Any]] = []
    torn: list[int] = []
    for n, rec in iter_samples(run_dir):
        if rec is None:
            torn.append(n)
        else:
            records.append(rec)
    return Samples(tuple(records), tuple(torn))
