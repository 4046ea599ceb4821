"""A tiny tmpfs for tests of a full or read-only filesystem: the kernel's own ENOSPC and EROFS.

Root ignores directory permissions, so a chmod'ed folder proves nothing in CI (which runs as
root); a real mount does. Mounting needs root: tests using it carry ``needs_root`` (a skip, not
the ``lab`` marker: nothing here touches the network). Each mount lives in the test's own
temporary directory and is unmounted when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096  # tmpfs counts whole pages
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def tmpfs(where: Path, size_kib: int = 64) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` mounted on ``where`` (created) for the block's duration."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(where))
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)  # a file still open


def fill(mount: Path, *, leave_pages: int = 0) -> None:
    """Fill the tmpfs with one-page files under ``mount/fill``, then free ``leave_pages``."""
    folder = mount / "fill"
    folder.mkdir(exist_ok=True)
    n = 0
    while True:
        path = folder / f"{n:05d}"
        try:
            path.write_bytes(b"x" * PAGE)
        except OSError:
            path.unlink(missing_ok=True)  # the file that did not fit
            break
        n += 1
    for i in range(leave_pages):
        (folder / f"{n - 1 - i:05d}").unlink()


def remount(mount: Path, options: str) -> None:
    """``ro``, or ``rw,size=1m`` to give a full one room again."""
    _mount("-o", f"remount,{options}", str(mount))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def leftovers(folder: Path) -> list[str]:
    """Temporary or empty files a failed write must not leave (``fill`` files excepted)."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file()
        and p.parent.name != "fill"
        and (p.name.endswith(".tmp") or p.name.startswith(".") or p.stat().st_size == 0)
    )
