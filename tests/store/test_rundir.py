"""samples.jsonl as a file: only a kill tears a line, and only the last one — or one a resumed
run marked with a ``torn`` record when it appended after it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from probe.errors import StoreError
from probe.model import CellStatus
from probe.store.records import HostRecord, TornMark, encode_record
from probe.store.rundir import RunStore, read_samples

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"
LINES = (GOLDEN / "samples.jsonl").read_text().splitlines(keepends=True)
N = len(LINES)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(GOLDEN, tmp_path / GOLDEN.name))


def _write(run: Path, lines: list[str]) -> None:
    (run / "samples.jsonl").write_text("".join(lines))


def _kill_mid_write(run: Path, record: HostRecord) -> None:
    """What SIGKILL during ``append`` leaves: the start of ``record``, no newline."""
    with (run / "samples.jsonl").open("a") as fh:
        fh.write(encode_record(record)[:25])


def _resume_once(run: Path, record: HostRecord) -> None:
    store = RunStore.reopen(run)
    store.append(record)
    store.close()


def test_a_torn_last_line_is_skipped(run: Path) -> None:
    _write(run, [*LINES[:-1], LINES[-1][:40]])
    samples = read_samples(run)
    assert samples.torn_lines == (N,)
    assert len(samples.records) == N - 1


def test_a_line_cut_in_the_middle_is_damage(run: Path) -> None:
    _write(run, [*LINES[:19], LINES[19][:60] + "\n", *LINES[20:]])
    with pytest.raises(StoreError) as exc:
        read_samples(run)
    assert str(exc.value) == (
        f"{run}/samples.jsonl:20: a record cut short in the middle of the file "
        "(only the last line may be torn by a kill)"
    )


def test_kill_then_resume_marks_the_torn_line_and_reads_on(run: Path) -> None:
    _kill_mid_write(run, HostRecord("eu1", CellStatus.OK))
    _resume_once(run, HostRecord("eu2", CellStatus.OK))
    lines = (run / "samples.jsonl").read_text().splitlines()
    assert len(lines) == N + 3
    assert json.loads(lines[N + 1])["kind"] == "torn"
    assert json.loads(lines[N + 1])["line"] == N + 1
    samples = read_samples(run)
    assert samples.torn_lines == (N + 1,)  # skipped and reported, though no longer last
    assert samples.records[-1] == HostRecord("eu2", CellStatus.OK)
    assert len(samples.records) == N + 1
    assert not any(isinstance(r, TornMark) for r in samples.records)


def test_killed_twice_resumed_twice(run: Path) -> None:
    for name in ("eu1", "eu2"):
        _kill_mid_write(run, HostRecord(name, CellStatus.OK))
        _resume_once(run, HostRecord("us1", CellStatus.OK))
    assert read_samples(run).torn_lines == (N + 1, N + 4)


def test_a_whole_last_record_without_its_newline_gets_no_mark(run: Path) -> None:
    (run / "samples.jsonl").write_text("".join(LINES).rstrip("\n"))
    _resume_once(run, HostRecord("eu2", CellStatus.OK))
    text = (run / "samples.jsonl").read_text()
    assert '"kind":"torn"' not in text
    samples = read_samples(run)
    assert samples.torn_lines == () and len(samples.records) == N + 1


def test_a_mark_must_sit_right_below_the_torn_line_it_names(run: Path) -> None:
    torn = LINES[-1][:40] + "\n"
    wrong = encode_record(TornMark(N - 1)) + "\n"
    _write(run, [*LINES[:-1], torn, wrong, LINES[0]])
    with pytest.raises(StoreError, match=rf"samples.jsonl:{N}: a record cut short in the middle"):
        read_samples(run)
    _write(run, [*LINES, encode_record(TornMark(N)) + "\n"])
    with pytest.raises(StoreError, match=rf"samples.jsonl:{N + 1}: a 'torn' record below a line"):
        read_samples(run)
