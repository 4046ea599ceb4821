"""RunLock: one run per output folder; a killed holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.errors import StoreError
from probe.store.lock import LOCK_NAME, RunLock

HOLD = """
import sys, time
from pathlib import Path
from probe.store.lock import RunLock
with RunLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_lock_on_one_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(StoreError) as info:
        RunLock(tmp_path).acquire()
    message = str(info.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message
    assert "\n" not in message and info.value.exit_code == 2
    with RunLock(tmp_path):  # released on exit: the next run may go
        pass


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            with pytest.raises(StoreError, match=f"pid {holder.pid}"):
                RunLock(tmp_path).acquire()
        finally:
            holder.send_signal(signal.SIGKILL)
    assert (tmp_path / LOCK_NAME).exists()  # the file stays; the kernel dropped the lock
    started = time.monotonic()
    with RunLock(tmp_path):
        assert time.monotonic() - started < 1.0


def test_an_unwritable_folder_is_a_one_line_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot create the run lock"):
        RunLock(tmp_path / "missing" / "folder").acquire()
