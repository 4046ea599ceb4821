"""The lab supervisor: parent and reaper of the emulator and every sshd.

Run as ``python -m probe.lab.supervisor STATE_DIR`` by ``lab up`` in its own session. It is a
child subreaper, so sshd's per-connection children that outlive their parent are reaped here
instead of lingering as zombies under PID 1, and every child gets PDEATHSIG=SIGKILL, so killing
the supervisor with SIGKILL still takes the data plane and all sshds with it. SIGTERM stops the
children (TERM, then KILL after a grace period) and exits; ``lab down`` then sweeps namespaces.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from probe.lab.state import ChildPids, ChildSpec, SuperviseSpec, load, save
from probe.textio import write_atomic

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 2.0


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _die_with_parent() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _reap() -> list[int]:
    reaped: list[int] = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(p.poll() is None for p in children.values()):
        time.sleep(0.05)
    for proc in children.values():
        if proc.poll() is None:
            proc.kill()
    for proc in children.values():
        proc.wait()
    _reap()


def _start(entry: ChildSpec) -> subprocess.Popen[bytes]:
    with Path(entry.log).open("ab") as log:
        return subprocess.Popen(
            entry.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


def _record(state: Path, children: dict[str, subprocess.Popen[bytes]]) -> None:
    save(state / "children.json", ChildPids({n: p.pid for n, p in children.items()}))


def main(argv: list[str]) -> int:
    state = Path(argv[0])
    spec = load(state / "supervise.json", SuperviseSpec)
    write_atomic(state / "supervisor.pid", str(os.getpid()))
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    flags = {"stop": False, "restart": False}

    def on_signal(signum: int, _frame: object) -> None:
        flags["restart" if signum == signal.SIGUSR2 else "stop"] = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(sig, on_signal)
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name, entry in spec.children.items():
        children[name] = _start(entry)
    _record(state, children)
    critical = set(spec.critical)
    try:
        while not flags["stop"]:
            time.sleep(0.1)
            _reap()
            if flags["restart"]:  # ``lab sshd HOST start``: bring stopped children back
                flags["restart"] = False
                for name, proc in children.items():
                    if proc.poll() is not None:
                        children[name] = _start(spec.children[name])
                _record(state, children)
            dead = [n for n in critical if children[n].poll() is not None]
            if dead:
                print(f"supervisor: critical child {dead} exited; stopping the lab", flush=True)
                break
    finally:
        _stop(children)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
