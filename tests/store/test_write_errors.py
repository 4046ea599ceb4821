"""The run directory when the disk says no: one StoreError naming the path, and no temporary,
empty or half-written file — samples.jsonl always ends in a whole line."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from probe.errors import StoreError
from probe.matrix.build import write_matrix
from probe.model import CellStatus
from probe.store.records import HostRecord, PingRecord, PingTrain, encode_record
from probe.store.rundir import RunStore, read_samples
from probe.store.rundoc import InventoryRef, RunDoc
from tests.tmpfs import PAGE, fill, leftovers, needs_root, remount, tmpfs

HOST = HostRecord("a", CellStatus.OK, None, 1.0, 0.25, 0.5, {"ping": "iputils"})
TRAIN = PingTrain(sent=400, received=400, duplicates=0,
                  probes=tuple((i, 1.25) for i in range(1, 401)))  # fmt: skip
PING = PingRecord("a", "b", CellStatus.OK, None, 2.0, train=TRAIN)  # longer than a page


def _doc(run_id: str) -> RunDoc:
    return RunDoc(run_id, "0", InventoryRef("inv.yaml", "0" * 64), "2026-11-30T00:00:00Z", ())


def test_an_append_cut_short_by_a_full_disk_is_cut_back_to_the_last_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore.create(tmp_path)
    store.append(HOST)
    before = store.samples_path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 100:  # the kernel took what fitted, then refused the rest
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", half_then_full)
        with pytest.raises(StoreError) as caught:
            store.append(PING)
    assert str(caught.value) == f"{store.samples_path}: cannot write (No space left on device)"
    assert store.samples_path.read_bytes() == before  # no half line
    store.append(PING)  # room again: the run (or its --resume) goes on
    store.close()
    samples = read_samples(store.dir)
    assert samples.records == (HOST, PING) and samples.torn_lines == ()


def test_a_torn_last_line_stays_a_line_of_its_own_even_after_a_refused_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed run left half a record; its --resume appends after it, on a line of its own."""
    store = RunStore.create(tmp_path)
    torn = encode_record(HOST)[:20]
    store.samples_path.write_text(encode_record(HOST) + "\n" + torn)

    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", full)
        with pytest.raises(StoreError):
            store.append(PING)
    store.append(PING)
    store.close()
    lines = store.samples_path.read_text().splitlines()
    assert lines[:2] == [encode_record(HOST), torn] and lines[3:] == [encode_record(PING)]
    assert json.loads(lines[2])["kind"] == "torn" and json.loads(lines[2])["line"] == 2
    assert read_samples(store.dir).torn_lines == (2,)


def test_a_run_directory_that_cannot_be_created_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(_path: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(StoreError, match=r"cannot create the run directory \(Permission denied\)"):
        RunStore.create(tmp_path, "20261130T000000Z")


def test_discard_removes_a_new_run_that_holds_nothing(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, "r1")
    store.write_run(_doc("r1"))
    store.samples_path.touch()
    assert not store.has_samples()
    store.discard()
    assert list(tmp_path.iterdir()) == []


@needs_root
def test_samples_on_a_full_disk_end_in_a_whole_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        store = RunStore.create(disk, "r1")
        store.append(HOST)
        fill(disk)  # what is left of samples.jsonl's page fits less than one more line
        assert len(encode_record(PING)) > PAGE
        with pytest.raises(StoreError, match=r"samples\.jsonl: cannot write \(No space left"):
            store.append(PING)
        store.close()
        assert store.samples_path.read_text() == encode_record(HOST) + "\n"
        assert leftovers(disk) == []


@needs_root
def test_run_json_the_matrix_and_latest_on_a_full_then_read_only_disk(tmp_path: Path) -> None:
    frame = pd.DataFrame({"src": ["a"], "dst": ["b"], "rtt_p50_ms": [1.5]})
    with tmpfs(tmp_path / "disk") as disk:
        store = RunStore.create(disk, "r1")
        store.write_run(_doc("r1"))
        fill(disk)
        with pytest.raises(StoreError, match=r"r1/run\.json: cannot write \(No space left"):
            store.write_run(_doc("r1"))  # the new file needs a page before the old one goes
        with pytest.raises(StoreError, match=r"r1/matrix\.csv: cannot write \(No space left"):
            write_matrix(store.dir, frame)
        assert sorted(p.name for p in store.dir.iterdir()) == ["run.json"]
        assert leftovers(disk) == []

        remount(disk, "rw,size=1m")
        write_matrix(store.dir, frame)
        assert pd.read_parquet(store.dir / "matrix.parquet").equals(frame)
        remount(disk, "ro")
        with pytest.raises(StoreError, match=r"/latest: cannot write \(Read-only file system\)"):
            store.point_latest()
        assert not (disk / "latest").exists()
        with pytest.raises(StoreError, match=r"/r2: cannot create the run directory \(Read-only"):
            RunStore.create(disk, "r2")
