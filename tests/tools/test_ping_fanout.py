"""The ping fan-out script in a real POSIX shell, with a stand-in ``ping`` first on PATH.

The lab runs it with the real ping; here the shell logic alone is pinned down: framing and exit
codes per target, the temp directory removed, at most ``PING_FANOUT_MAX`` pings at once (in
every POSIX shell found here: dash, busybox ash, bash --posix), and — the case that once
leaked — every ping killed when the script is TERMed (dash's ``$(jobs -p)`` is empty inside a
trap), in a later batch too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from probe.measure.remote import remote_command
from probe.model import CommandResult
from probe.tools.ping import (
    PING_FANOUT_MAX,
    PingReport,
    fanout_target_argv,
    ping_argv,
    ping_fanout_argv,
    ping_fanout_seconds,
    ping_outcome,
    split_fanout,
)

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
#: notes its start and its end in $PROBE_TEST_LOG (short appends: atomic) and, in between,
#: replies once every ping of its batch has started (at most 10 s): so the most pings running
#: at once is exactly the bound when the script keeps it, whatever the machine's load
COUNTING_PING = """#!/bin/sh
for a; do :; done
echo "+ $a" >>"$PROBE_TEST_LOG"
n=$(grep -c "^+" "$PROBE_TEST_LOG")
end=$(( (n + PROBE_TEST_BOUND - 1) / PROBE_TEST_BOUND * PROBE_TEST_BOUND ))
[ "$end" -le "$PROBE_TEST_TARGETS" ] || end=$PROBE_TEST_TARGETS
t=0
while [ "$(grep -c "^+" "$PROBE_TEST_LOG")" -lt "$end" ] && [ "$t" -lt 200 ]; do
  sleep 0.05; t=$((t+1))
done
echo "64 bytes from $a: icmp_seq=1 ttl=64 time=0.5 ms"
echo "- $a" >>"$PROBE_TEST_LOG"
"""
#: POSIX shells the script must work in (``sh`` of Debian, Alpine and a bash-only host)
SHELLS = [
    pytest.param(argv, id=argv[0], marks=pytest.mark.skipif(
        shutil.which(argv[0]) is None, reason=f"{argv[0]} not installed"))
    for argv in (["dash"], ["busybox", "sh"], ["bash", "--posix"])
]  # fmt: skip


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


def _most_at_once(log: Path) -> int:
    running = most = 0
    for line in log.read_text().splitlines():
        running += 1 if line.startswith("+") else -1
        most = max(most, running)
    return most


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("targets", "bound"), [(100, PING_FANOUT_MAX), (10, 3)])
def test_at_most_the_bound_runs_at_once_and_every_target_is_framed(
    tmp_path: Path, shell: list[str], targets: int, bound: int
) -> None:
    addresses = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(targets)]
    argv = ping_fanout_argv(
        addresses, count=3, interval_s=0.2, reply_timeout_s=1, max_concurrent=bound
    )
    log = tmp_path / "pings.log"
    env = {**_env(tmp_path, COUNTING_PING), "PROBE_TEST_LOG": str(log),
           "PROBE_TEST_BOUND": str(bound), "PROBE_TEST_TARGETS": str(targets)}  # fmt: skip
    proc = subprocess.run(
        [*shell, *argv[1:]], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert _most_at_once(log) == bound  # never more, and the batches do run side by side
    assert log.read_text().count("+ ") == targets
    per = split_fanout(argv, CommandResult(tuple(argv), 0, proc.stdout, proc.stderr, 0.1))
    assert [per[a].exit_status for a in addresses] == [0] * targets
    assert all(f"from {a}:" in per[a].stdout for a in addresses)
    assert list(Path(env["TMPDIR"]).iterdir()) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_term_in_a_later_batch_kills_its_pings_and_starts_no_more(
    env: dict[str, str], tmp_path: Path, shell: list[str]
) -> None:
    argv = ping_fanout_argv(
        ["10.0.0.1", "10.0.0.9", "10.0.0.9"], count=3, interval_s=0.2, reply_timeout_s=1,
        max_concurrent=1,
    )  # fmt: skip
    proc = subprocess.Popen(
        [*shell, *argv[1:]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 5
    while not _sleepers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_sleepers(tmp_path)) == 1  # batch 2 of 3: one hanging "ping"
    proc.terminate()
    assert proc.wait(timeout=5) == 143
    proc.communicate()
    deadline = time.monotonic() + 2
    while _sleepers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the third batch would have started by now
    assert _sleepers(tmp_path) == []
    assert list(Path(env["TMPDIR"]).iterdir()) == []


def test_the_fanouts_bound_counts_its_batches() -> None:
    one = ping_fanout_seconds(20, 0.2, 2, targets=1)
    assert ping_fanout_seconds(20, 0.2, 2, targets=PING_FANOUT_MAX) == one
    assert ping_fanout_seconds(20, 0.2, 2, targets=PING_FANOUT_MAX + 1) - 1 == 2 * (one - 1)
    assert ping_fanout_seconds(20, 0.2, 2, targets=100, max_concurrent=10) - 1 == 10 * (one - 1)


def _busybox_pings() -> bool:
    busybox = shutil.which("busybox")
    probe = [str(busybox), "ping", "-c", "1", "-W", "1", "127.0.0.1"]
    return (
        busybox is not None
        and subprocess.run(probe, capture_output=True, check=False).returncode == 0
    )


@pytest.mark.skipif(not _busybox_pings(), reason="no busybox, or its ping may not run here")
def test_busybox_ping_and_timeout_applets_run_the_fanout_per_probe(tmp_path: Path) -> None:
    """A busybox-only host: ping, timeout and sh are applets. The very command line probe sends
    (``remote_command``), against loopback addresses only; every target's probes parse one by
    one (busybox numbers them from 0) and name busybox."""
    busybox = shutil.which("busybox")
    assert busybox is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for applet in ("ping", "timeout", "sh", "env", "mktemp", "cat", "rm"):
        (bindir / applet).symlink_to(busybox)
    (tmp_path / "tmp").mkdir()
    addresses = ["127.0.0.1", "127.0.0.2"]
    argv = ping_fanout_argv(addresses, count=5, interval_s=0.2, reply_timeout_s=1)
    line = remote_command(argv, ping_fanout_seconds(5, 0.2, 1, targets=2) + 5)
    env = {"PATH": str(bindir), "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.run(
        [str(bindir / "sh"), "-c", line], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    per = split_fanout(argv, CommandResult(tuple(argv), 0, proc.stdout, proc.stderr, 1.0))
    for address in addresses:
        report = ping_outcome(per[address])
        assert isinstance(report, PingReport), report
        assert (report.flavor, report.sent, report.received) == ("busybox", 5, 5)
        assert [p.seq for p in report.probes] == [0, 1, 2, 3, 4]
        assert all(p.rtt_ms is not None for p in report.probes)
    assert list((tmp_path / "tmp").iterdir()) == []
