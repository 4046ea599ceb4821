"""Replacing a file: all or nothing, with ordinary permissions, and a failure named in one line."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.errors import StoreError
from probe.textio import save, write_atomic
from tests.tmpfs import PAGE, fill, leftovers, needs_root, remount, tmpfs


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_text_and_bytes_replace_the_file_with_the_umask_permissions(
    tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "matrix.parquet"
    write_atomic(path, b"PAR1\x00")
    assert path.read_bytes() == b"PAR1\x00"
    write_atomic(path, "ünïcode\n", durable=True)
    assert path.read_text(encoding="utf-8") == "ünïcode\n"
    assert path.stat().st_mode & 0o777 == 0o644  # an export is read by other users
    assert [p.name for p in tmp_path.iterdir()] == ["matrix.parquet"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.json"
    path.write_text("old")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError) as caught:
        save(path, "new", durable=True)
    assert str(caught.value) == f"{path}: cannot write (No space left on device)"
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_an_unwritable_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"/missing/report\.md: cannot write \(No such file"):
        save(tmp_path / "missing" / "report.md", "x")


@needs_root
def test_a_full_and_a_read_only_filesystem_leave_the_old_file_whole(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        path = disk / "anchors.json"
        save(path, "old")
        fill(disk)
        with pytest.raises(StoreError, match=r"anchors\.json: cannot write \(No space left"):
            save(path, "x" * 2 * PAGE)
        assert path.read_text() == "old" and leftovers(disk) == []
        remount(disk, "ro")
        with pytest.raises(StoreError, match=r"anchors\.json: cannot write \(Read-only file"):
            save(path, "new")
        assert path.read_text() == "old"
