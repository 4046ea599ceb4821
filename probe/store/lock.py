"""One probe run at a time per output folder and per run directory.

Two runs that share an output folder (``probe run -o D`` twice) or a run directory (two
``--resume`` of one run) would each cut the other's bandwidth in half and interleave their
records, and both would still say "complete". :class:`RunLock` makes the second one stop with a
one-line error naming the holder.

The lock is ``flock(2)`` on a small file: the kernel releases it when its holder dies, SIGKILL
included, so a lock left by a killed run is simply taken over — no stale-PID guessing. The file
also names its holder (PID, machine, start time) so the error can say who has it. Folders on
network filesystems without working ``flock`` are refused rather than silently unlocked.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from probe.errors import StoreError

LOCK_NAME = ".probe-run.lock"


class RunLock:
    """An exclusive, non-blocking lock on ``folder`` for as long as the ``with`` block runs."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the run lock ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreError(
                f"{self.path.parent}: in use by another probe run ({holder}); wait for it to "
                "end or use another output folder"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"{self.path}: cannot lock ({exc.strerror})") from exc
        stamp = {"pid": os.getpid(), "host": socket.gethostname(), "since_unix": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(stamp).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock


def _holder(fd: int) -> str:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc["since_unix"])))
        return f"pid {int(doc['pid'])} on {doc['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
