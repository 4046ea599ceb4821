"""The default lab's one full run, watched: every host's iperf3 processes sampled while it goes on.

``test_run_lab`` checks the run against the truth and the watcher's counts; ``test_rehearse_lab``
predicts from the same run (``lab_run`` in tests/conftest.py: measured once per test session).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from probe.lab import control, netns

PINGS = 100  # per ordered pair in the full run: enough for the 0.5 ms + 2 % bound on jittered pairs


def _established_inodes(pid: int) -> set[str]:
    """Socket inodes in ESTABLISHED state, from the netns view of ``/proc/PID/net/tcp``."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01":
                    inodes.add(fields[9])
    return inodes


def _sockets(pid: int) -> set[str]:
    out = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    out.add(target[8:-1])
    return out


class IperfWatcher(threading.Thread):
    """Samples every host's process table while a run goes on.

    ``most_tests``: iperf3 processes with an established TCP connection (a test in progress),
    per host. ``most_processes``: iperf3 processes of any kind — an armed next server listens
    idle beside the running test, which moves no packets and is allowed.
    """

    def __init__(self, lab: control.LabInfo) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.stop = threading.Event()
        self.most_tests: dict[str, int] = dict.fromkeys(lab.hosts, 0)
        self.most_processes: dict[str, int] = dict.fromkeys(lab.hosts, 0)
        self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for host in self.lab.hosts:
                iperfs = []
                for pid in netns.netns_pids(self.lab.netns(host)):
                    with contextlib.suppress(OSError):
                        if Path(f"/proc/{pid}/comm").read_text().strip() == "iperf3":
                            iperfs.append(pid)
                testing = 0
                if iperfs:
                    established = _established_inodes(iperfs[0])
                    testing = sum(bool(_sockets(pid) & established) for pid in iperfs)
                self.most_tests[host] = max(self.most_tests[host], testing)
                self.most_processes[host] = max(self.most_processes[host], len(iperfs))
            self.samples += 1
            time.sleep(0.05)
