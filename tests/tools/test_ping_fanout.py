"""The ping fan-out script in a real POSIX shell, with a stand-in ``ping`` first on PATH.

The lab runs it with the real ping; here the shell logic alone is pinned down: framing and exit
codes per target, the temp directory removed, and — the case that once leaked — every ping
killed when the script is TERMed (dash's ``$(jobs -p)`` is empty inside a trap).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from probe.model import CommandResult
from probe.tools.ping import fanout_target_argv, ping_argv, ping_fanout_argv, split_fanout

SHELL = shutil.which("dash") or "/bin/sh"

FAKE_PING = """#!/bin/sh
# the address is the last argument; 10.0.0.9 never answers (sleeps), 10.0.0.2 is all lost
for a; do :; done
case "$a" in
  10.0.0.9) exec sleep 300 ;;
  10.0.0.2) echo "--- $a ping statistics ---"; echo "3 packets transmitted, 0 received"; exit 1 ;;
  *) echo "64 bytes from $a: icmp_seq=1 ttl=64 time=0.5 ms"; echo "err for $a" >&2; exit 0 ;;
esac
"""
#: prints the argv it was started with, one argument a line
ECHO_PING = """#!/bin/sh
printf '%s\n' ping "$@"
"""


def _env(tmp_path: Path, ping: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ping").write_text(ping)
    (bindir / "ping").chmod(0o755)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "TMPDIR": str(tmpdir)}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return _env(tmp_path, FAKE_PING)


def _argv(addresses: list[str]) -> list[str]:
    argv = ping_fanout_argv(addresses, count=3, interval_s=0.2, reply_timeout_s=1)
    assert argv[0] == "sh"
    return [SHELL, *argv[1:]]


def _sleepers(tmp_path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if cmd[:2] == [b"sleep", b"300"] and str(tmp_path).encode() in environ:
                found.append(int(proc.name))
    return found


def test_each_target_gets_its_frame_and_exit_status(env: dict[str, str]) -> None:
    addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    proc = subprocess.run(
        _argv(addresses), env=env, capture_output=True, text=True, timeout=10, check=False
    )
    assert proc.returncode == 0, proc.stderr
    argv = _argv(addresses)
    per = split_fanout(argv, CommandResult(tuple(argv), 0, proc.stdout, proc.stderr, 0.1))
    assert [per[a].exit_status for a in addresses] == [0, 1, 0]
    assert "from 10.0.0.3:" in per["10.0.0.3"].stdout
    assert "from 10.0.0.1" not in per["10.0.0.3"].stdout
    assert per["10.0.0.1"].stderr.strip() == "err for 10.0.0.1"
    assert list(Path(env["TMPDIR"]).iterdir()) == []  # the temp dir went with the script


def test_each_target_carries_the_ping_the_script_ran(tmp_path: Path) -> None:
    """Not a stand-in argv (it once said ``-c 1 -i 1`` whatever ran): the run's count, interval
    and reply timeout, exactly as ping got them, and what ``ping_argv`` builds for them."""
    addresses = ["10.0.0.1", "db-1.example"]
    argv = ping_fanout_argv(addresses, count=7, interval_s=0.3, reply_timeout_s=2)
    proc = subprocess.run(
        [SHELL, *argv[1:]], env=_env(tmp_path, ECHO_PING), capture_output=True, text=True,
        timeout=10, check=True,
    )  # fmt: skip
    per = split_fanout(argv, CommandResult(tuple(argv), 0, proc.stdout, proc.stderr, 0.1))
    for address in addresses:
        ran = tuple(per[address].stdout.split())
        assert per[address].argv == ran == fanout_target_argv(argv, address)
        assert ran == tuple(ping_argv(address, count=7, interval_s=0.3, reply_timeout_s=2))
        assert ran[1:8] == ("-n", "-c", "7", "-i", "0.3", "-W", "2")


def test_a_target_without_its_frame_still_names_its_ping() -> None:
    argv = ping_fanout_argv(["10.0.0.1", "10.0.0.2"], count=7, interval_s=0.3, reply_timeout_s=2)
    killed = CommandResult(tuple(argv), None, "@@probe-ping 1 0\n", "Terminated", 12.0)
    per = split_fanout(argv, killed)
    assert per["10.0.0.2"].exit_status is None and per["10.0.0.2"].stderr == "Terminated"
    assert per["10.0.0.2"].argv == fanout_target_argv(argv, "10.0.0.2")


def test_term_kills_every_ping_and_removes_the_temp_dir(
    env: dict[str, str], tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        _argv(["10.0.0.9", "10.0.0.1", "10.0.0.9"]),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 5
    while len(_sleepers(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_sleepers(tmp_path)) == 2  # both hanging "pings" are running
    proc.terminate()
    assert proc.wait(timeout=5) == 143
    proc.communicate()
    deadline = time.monotonic() + 2
    while _sleepers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleepers(tmp_path) == []
    assert list(Path(env["TMPDIR"]).iterdir()) == []
