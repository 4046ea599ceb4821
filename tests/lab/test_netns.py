"""Which processes a lab sweep would kill (reads /proc only: no root, no namespaces)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

from probe.lab import netns


def test_a_process_naming_the_state_directory_is_found(tmp_path: Path) -> None:
    marker = str(tmp_path / "lab3")
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)", f"{marker}/sshd_eu1.conf"]
    proc = subprocess.Popen(sleeper)
    try:
        deadline = time.monotonic() + 10  # until the child has exec'd (its cmdline is its own)
        while proc.pid not in netns.processes_with_marker(marker):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert proc.pid not in netns.processes_with_marker(str(tmp_path / "other"))
    finally:
        proc.kill()
        proc.wait()


def test_the_caller_and_its_ancestors_are_spared(tmp_path: Path) -> None:
    """``make demo``'s shell names the lab inventory; ``lab up`` inside it must not kill it."""
    marker = str(tmp_path / "lab3")
    code = (
        "import os; from probe.lab import netns; "
        "print(netns.processes_with_marker(MARK), os.getppid())"
    )
    script = f'{sys.executable} -c "MARK={marker!r}; {code}"; : {marker}/inventory.yaml'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    found, shell = out.stdout.rsplit(" ", 1)
    assert int(shell) not in ast.literal_eval(found)
    assert netns.self_and_ancestors() >= {os.getpid(), os.getppid()}
