"""``matrix.stored``: matrix.parquet is read while its stamp matches the run's inputs, rebuilt
(and saved, where allowed) whenever it does not, and never a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from probe.errors import StoreError
from probe.matrix import build, stored
from probe.matrix.anchors import load_anchors
from probe.matrix.samples import SidecarSamples
from probe.measure.execute import finish
from probe.store.rundir import RunStore, read_run

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(GOLDEN, tmp_path / GOLDEN.name))


class Rebuilds:
    """Counts ``build.load_matrix`` calls (the rebuild from samples.jsonl)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = build.load_matrix

        def counting(*args: Any, **kwargs: Any) -> pd.DataFrame:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(build, "load_matrix", counting)


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> Rebuilds:
    return Rebuilds(monkeypatch)


def _forbid_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> pd.DataFrame:
        raise AssertionError("rebuilt from samples.jsonl")

    monkeypatch.setattr(build, "load_matrix", refuse)


def _stamp(run_dir: Path) -> dict[str, Any] | None:
    meta = pq.read_schema(run_dir / "matrix.parquet").metadata or {}
    raw = meta.get(stored.STAMP_KEY.encode())
    return None if raw is None else dict(json.loads(raw))


def test_a_fresh_stamp_is_read_not_rebuilt(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = stored.matrix_of(run_dir)
    pd.testing.assert_frame_equal(first, build.load_matrix(run_dir))
    assert (run_dir / "matrix.csv").read_text() == first.to_csv(index=False)
    _forbid_rebuild(monkeypatch)
    (run_dir / "samples.jsonl").chmod(0)  # as root still readable: load_matrix refuses anyway
    pd.testing.assert_frame_equal(stored.matrix_of(run_dir), first)
    cols = ["src", "dst", "rtt_p50_ms", "sent", "p99_few_samples"]
    pd.testing.assert_frame_equal(stored.matrix_of(run_dir, columns=cols), first[cols])


def test_appended_samples_rebuild(
    run_dir: Path, rebuilds: Rebuilds, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stored.matrix_of(run_dir)
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    record = json.loads(next(line for line in lines if '"kind":"ping"' in line))
    cell = record["src"], record["dst"]
    record.update(status="timeout", reason="a --resume measured it again", train=None)
    with (run_dir / "samples.jsonl").open("a") as fh:  # what a --resume appends
        fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    after = stored.matrix_of(run_dir)
    assert rebuilds.calls == 2
    row = after[(after.src == cell[0]) & (after.dst == cell[1])].iloc[0]
    old = before[(before.src == cell[0]) & (before.dst == cell[1])].iloc[0]
    assert (old.status, row.status) == ("ok", "timeout")
    _forbid_rebuild(monkeypatch)  # and the rebuilt one was saved, stamped afresh
    pd.testing.assert_frame_equal(stored.matrix_of(run_dir), after)


def test_an_edited_run_json_rebuilds(run_dir: Path, rebuilds: Rebuilds) -> None:
    stored.matrix_of(run_dir)
    text = (run_dir / "run.json").read_text()
    edited = text.replace('"complete": true', '"complete": false')
    assert edited != text
    (run_dir / "run.json").write_text(edited)
    stored.matrix_of(run_dir)
    assert rebuilds.calls == 2


def test_an_older_probes_matrix_without_a_stamp_is_rebuilt(
    run_dir: Path, rebuilds: Rebuilds
) -> None:
    frame = build.load_matrix(run_dir)
    build.write_matrix(run_dir, frame)  # what probe wrote before the stamp
    assert _stamp(run_dir) is None
    pd.testing.assert_frame_equal(stored.matrix_of(run_dir), frame)
    assert rebuilds.calls == 2
    stamp = _stamp(run_dir)
    assert stamp is not None and stamp["format"] == stored.FORMAT


def test_another_format_is_rebuilt(run_dir: Path, rebuilds: Rebuilds) -> None:
    frame = build.load_matrix(run_dir)
    old = stored.Stamp(**{**_fields(stored.stamp_of(run_dir)), "format": "0:columns-of-old"})
    stored.save_matrix(run_dir, frame, old)
    stored.matrix_of(run_dir)
    assert rebuilds.calls == 2


def _fields(stamp: stored.Stamp) -> dict[str, Any]:
    return {f: getattr(stamp, f) for f in stored.Stamp.__slots__}


@pytest.mark.parametrize(
    "damage", ["garbage", "cut short", "empty", "stamp not JSON", "stamp of another shape"]
)
def test_a_damaged_matrix_is_rebuilt(run_dir: Path, rebuilds: Rebuilds, damage: str) -> None:
    frame = stored.matrix_of(run_dir)
    path = run_dir / "matrix.parquet"
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"PAR1 not a parquet file at all")
    elif damage == "cut short":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "stamp not JSON":
        build.write_matrix(run_dir, frame, {stored.STAMP_KEY: "{not json"})
    else:
        build.write_matrix(run_dir, frame, {stored.STAMP_KEY: '{"torn_lines": 3}'})
    pd.testing.assert_frame_equal(stored.matrix_of(run_dir), frame)
    assert rebuilds.calls == 2
    assert _stamp(run_dir) is not None


def test_a_read_only_run_directory_is_read_without_writing(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: Path, _data: object, **_kw: object) -> None:
        raise StoreError(f"{path}: cannot write (Read-only file system)")

    monkeypatch.setattr(build, "save", refuse)  # root writes through chmod; a mount would not
    run_dir.chmod(0o555)
    try:
        frame = stored.matrix_of(run_dir)
    finally:
        run_dir.chmod(0o755)
    pd.testing.assert_frame_equal(frame, build.load_matrix(run_dir))
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.json", "samples.jsonl"]


def test_torn_lines_are_warned_about_from_the_stored_matrix_too(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (run_dir / "samples.jsonl").open("a") as fh:
        fh.write('{"kind":"ping","src":"eu1","dst":')  # a kill mid-write
    n = len((run_dir / "samples.jsonl").read_text().splitlines())
    heard: list[str] = []
    stored.matrix_of(run_dir, warn=heard.append)
    _forbid_rebuild(monkeypatch)
    again = stored.read_matrix(run_dir)
    stored.matrix_of(run_dir, warn=heard.append)
    assert again.torn_lines == (n,)
    assert len(heard) == 2 and heard[0] == heard[1] and f"(line {n})" in heard[0]


def test_the_run_end_writes_a_matrix_every_reader_takes(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """finish writes run.json last before the matrix: its stamp holds for every later reader."""
    finish(RunStore.reopen(run_dir), read_run(run_dir), bw_planned=0)
    expected = build.load_matrix(run_dir)
    _forbid_rebuild(monkeypatch)
    pd.testing.assert_frame_equal(stored.matrix_of(run_dir), expected)
    anchors = stored.anchors_of(run_dir)
    on_disk = load_anchors(run_dir / "anchors.json")
    assert anchors == on_disk  # hosts, pairs, region roll-ups (samples compare apart)
    assert isinstance(anchors.samples, SidecarSamples)
    pair = next(p for p in anchors.pairs if p.ok)
    kept, written = anchors.rtt_samples(pair), on_disk.rtt_samples(pair)
    assert kept is not None and written is not None
    assert kept.rtt_ms.tolist() == written.rtt_ms.tolist()


def test_samples_newer_than_the_sidecar_are_read_from_samples_jsonl(run_dir: Path) -> None:
    finish(RunStore.reopen(run_dir), read_run(run_dir), bw_planned=0)
    sidecar = run_dir / "anchors-samples.parquet"
    assert isinstance(stored.kept_samples(run_dir, read_run(run_dir)), SidecarSamples)
    samples = run_dir / "samples.jsonl"
    os.utime(sidecar, ns=(samples.stat().st_mtime_ns - 10**9,) * 2)  # a resume killed later
    rebuilt = stored.kept_samples(run_dir, read_run(run_dir))
    assert not isinstance(rebuilt, SidecarSamples)
    on_disk = load_anchors(run_dir / "anchors.json").samples
    assert sorted(rebuilt) == sorted(on_disk)


def test_the_samples_stay_unread_until_a_pair_is_asked_for(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the whole sidecar costs ~1 s at 300 hosts: anchors_of leaves it to calc."""
    finish(RunStore.reopen(run_dir), read_run(run_dir), bw_planned=0)
    sources: list[str | None] = []
    real = SidecarSamples._read

    def counting(self: SidecarSamples, groups: list[int], src: str | None) -> Any:
        sources.append(src)
        return real(self, groups, src)

    monkeypatch.setattr(SidecarSamples, "_read", counting)
    anchors = stored.anchors_of(run_dir)
    assert sources == []
    pair = next(p for p in anchors.pairs if p.ok)
    assert anchors.rtt_samples(pair) is not None
    assert sources == [pair.src]
