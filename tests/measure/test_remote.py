"""probe.measure.remote against real asyncssh servers on 127.0.0.1 and real shells: spawned
processes are stopped by PID, gated ones run only on "go", and every one dies with its channel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from probe.measure.remote import GATED_SPAWN_SCRIPT, SPAWN_SCRIPT, Secret
from probe.measure.ssh import SshPool
from tests.sshfleet import FAST, Fleet

pytestmark = pytest.mark.usefixtures("no_agent")


async def test_spawn_then_stop_kills_by_pid(fleet: Fleet) -> None:
    sshd = await fleet.sshd("srv")
    async with SshPool(fleet.inventory([fleet.host("srv", sshd)]), FAST) as pool:
        await pool.connect()
        async with await pool.spawn("srv", ["iperf3", "-s", "-1"], max_lifetime_s=20) as server:
            assert await server.read_until("listening", timeout_s=3)
            assert not await server.read_until("never", timeout_s=0.1)
        result = await server.stop()  # idempotent
        assert sshd.stats.killed == [(server.pid, "TERM")]
        assert result.exit_status is None
        assert "listening" in result.stdout
        assert result.argv == ("iperf3", "-s", "-1")


async def test_cancelled_waiter_still_stops_the_remote_process(fleet: Fleet) -> None:
    sshd = await fleet.sshd("srv")
    async with SshPool(fleet.inventory([fleet.host("srv", sshd)]), FAST) as pool:
        await pool.connect()
        started = asyncio.Event()

        async def serve() -> None:
            async with await pool.spawn("srv", ["iperf3", "-s"], max_lifetime_s=20) as server:
                started.set()
                await server.read_until("never", timeout_s=60)

        task = asyncio.create_task(serve())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [sig for _, sig in sshd.stats.killed] == ["TERM"]

        forgotten = await pool.spawn("srv", ["iperf3", "-s"], max_lifetime_s=20)
    assert (forgotten.pid, "TERM") in sshd.stats.killed  # the pool's exit stopped it


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
async def test_spawn_with_a_real_shell_kills_the_real_process(tmp_path: Path) -> None:
    async with Fleet(tmp_path, real_shell=True) as fleet:
        sshd = await fleet.sshd("real")
        async with SshPool(fleet.inventory([fleet.host("real", sshd)]), FAST) as pool:
            await pool.connect()
            server = await pool.spawn("real", ["sleep", "30"], max_lifetime_s=20)
            os.kill(server.pid, 0)  # the PID printed is the sleep itself, on this machine
            assert (await pool.run("real", ["cat", f"/proc/{server.pid}/comm"])).stdout == "sleep\n"
            result = await server.stop()
            assert result.exit_status in (None, 128 + 15)  # killed by TERM, via sh or timeout
            with pytest.raises(ProcessLookupError):
                os.kill(server.pid, 0)


@contextlib.asynccontextmanager
async def _real_host(tmp_path: Path) -> AsyncIterator[SshPool]:
    """A pool connected to one sshd that runs commands in a real shell on this machine."""
    async with Fleet(tmp_path, real_shell=True) as fleet:
        sshd = await fleet.sshd("real")
        async with SshPool(fleet.inventory([fleet.host("real", sshd)]), FAST) as pool:
            await pool.connect()
            yield pool


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
async def test_a_gated_spawn_runs_its_command_only_after_release(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    async with _real_host(tmp_path) as pool:
        argv = ["sh", "-c", 'touch "$1"; echo done', "sh", str(marker)]
        proc = await pool.spawn("real", argv, max_lifetime_s=20, gated=True)
        await asyncio.sleep(0.3)
        assert not marker.exists() and not proc.ended  # armed: waiting on its stdin
        comm = await asyncio.to_thread(Path(f"/proc/{proc.pid}/comm").read_text)
        assert comm == "sh\n"
        proc.release()
        result = await proc.wait(timeout_s=5)
    assert marker.exists()
    assert (result.exit_status, result.stdout) == (0, "done\n")
    assert result.elapsed_s < 2  # counted from the release, not from the spawn


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
async def test_a_gated_spawn_stopped_before_release_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    async with _real_host(tmp_path) as pool:
        proc = await pool.spawn("real", ["touch", str(marker)], max_lifetime_s=20, gated=True)
        await proc.stop()
        await asyncio.sleep(0.2)
    assert not marker.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
async def test_a_spawned_process_dies_with_its_channel(tmp_path: Path) -> None:
    """The lease: a controller that vanishes without stopping it leaves no process behind."""
    async with _real_host(tmp_path) as pool:
        proc = await pool.spawn("real", ["sleep", "30"], max_lifetime_s=60)
        assert await asyncio.to_thread(_becomes, proc.pid, "sleep\n", 3.0)
        proc.abandon()  # close the channel, no kill: what a SIGKILLed controller leaves
        assert await asyncio.to_thread(_gone_within, proc.pid, 3.0)


def _becomes(pid: int, comm: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}/comm").read_text() != comm and time.monotonic() < deadline:
        time.sleep(0.02)
    return Path(f"/proc/{pid}/comm").read_text() == comm


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize(("stdin", "runs"), [("go\n", True), ("", False), ("stop\n", False)])
def test_the_gate_opens_only_on_go(tmp_path: Path, stdin: str, runs: bool) -> None:
    """EOF (the controller went away) or any other line ends the gate without the command;
    after "go", stdin stays open: it is the command's lease."""
    marker = tmp_path / "ran"
    proc = subprocess.Popen(
        ["sh", "-c", GATED_SPAWN_SCRIPT, "sh", "touch", str(marker)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip().isdigit()  # the PID comes first
    proc.stdin.write(stdin)
    proc.stdin.flush()
    if not runs:
        proc.stdin.close()
    assert proc.wait(timeout=5) == 0
    assert marker.exists() is runs
    if runs:
        proc.stdin.close()
    proc.stdout.close()


def test_the_lease_ends_a_command_when_stdin_closes(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ["sh", "-c", SPAWN_SCRIPT, "sh", "sleep", "30"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert _becomes(pid, "sleep\n", 3.0)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.3)  # stdin open: it keeps running
    proc.stdin.close()
    assert proc.wait(timeout=5) == -15  # TERMed by the watcher, as the PID it printed
    proc.stdout.close()


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
async def test_a_secret_reaches_the_environment_through_stdin_only(tmp_path: Path) -> None:
    secret = Secret("PROBE_TEST_SECRET", "s3cret value")
    async with Fleet(tmp_path, real_shell=True) as fleet:
        sshd = await fleet.sshd("real")
        async with SshPool(fleet.inventory([fleet.host("real", sshd)]), FAST) as pool:
            await pool.connect()
            argv = ["sh", "-c", 'printf "%s|" "$PROBE_TEST_SECRET"']
            for gated in (False, True):
                proc = await pool.spawn(
                    "real", argv, max_lifetime_s=20, gated=gated, secrets=[secret]
                )
                if gated:
                    proc.release()
                result = await proc.wait(timeout_s=5)
                assert result.stdout == "s3cret value|"
    assert sshd.stats.commands and not any("s3cret" in line for line in sshd.stats.commands)
    assert "s3cret" not in repr(secret)
    with pytest.raises(ValueError, match="one line"):
        Secret("PROBE_TEST_SECRET", "two\nlines")
    with pytest.raises(ValueError, match="one line"):
        Secret("X; rm", "v")
