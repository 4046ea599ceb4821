"""One probe run at a time per output folder.

Two runs that share an output folder (``probe run -o D`` twice, or two ``--resume`` of one run)
would each cut the other's bandwidth in half and interleave their records, and both would still
say "complete". :class:`RunLock` makes the second one stop with a one-line error naming the
holder, before it connects to anything.

The lock is ``flock(2)`` on the folder itself: no lock file to clutter ``reports/`` or to be
left behind, and the kernel releases it when its holder dies, SIGKILL included, so a lock left
by a killed run is simply taken over — no stale-PID guessing. The holder's PID is read from
``/proc/locks`` for the message. Folders on filesystems without ``flock`` are refused rather
than silently unlocked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from probe.errors import StoreError


class RunLock:
    """An exclusive, non-blocking lock on ``folder`` for as long as the ``with`` block runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StoreError(f"{self.folder}: cannot lock the folder ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(os.fstat(fd).st_ino)
            os.close(fd)
            who = f"pid {holder}" if holder is not None else "its pid unknown"
            raise StoreError(
                f"{self.folder}: in use by another probe run ({who}); wait for it to end "
                "or use another output folder"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"{self.folder}: cannot lock the folder ({exc.strerror})") from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock


def lock_holder(inode: int, locks: Path = Path("/proc/locks")) -> int | None:
    """The PID holding a ``flock`` on ``inode`` (``/proc/locks``: ``N: FLOCK ADVISORY WRITE PID
    MAJ:MIN:INODE 0 EOF``), or None when it cannot be told."""
    try:
        text = locks.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            return int(fields[4]) if fields[4].isdigit() else None
    return None
