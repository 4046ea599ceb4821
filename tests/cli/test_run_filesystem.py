"""``probe run -o`` on a full and on a read-only filesystem, end to end: the real CLI against
in-process sshds with a real shell (real ping on loopback), writing to a tiny tmpfs (root only).

What the operator must see: one line naming the path, exit 2 when nothing was measured (no run
directory left, ``latest`` untouched) or 4 when samples were saved (``--resume`` finishes the
run once there is room), and never a temporary, empty or half-written file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from probe.store.rundir import read_samples
from tests.sshfleet import LOOPBACK, Fleet
from tests.tmpfs import fill, leftovers, needs_root, remount, tmpfs

PROBE = Path(sys.executable).with_name("probe")

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("ping") is None, reason="needs ping"),
]


def _inventory(tmp: Path, fleet: Fleet, ports: dict[str, int]) -> Path:
    path = tmp / "inv.yaml"
    key = str(fleet.client_key_path)
    hosts = [
        {"name": name, "address": address, "ssh": _ssh(ports[name], key)}
        for name, address in (("a", "127.0.0.1"), ("b", "127.0.0.2"))
    ]
    known = str(fleet.write_known_hosts())
    path.write_text(yaml.safe_dump({"known_hosts": known, "hosts": hosts}))
    return path


def _ssh(port: int, key: str) -> dict[str, object]:
    return {"host": LOOPBACK, "port": port, "user": "probe", "identity": key}


async def _probe(tmp: Path, *args: str) -> tuple[int, list[str]]:
    """``probe ARGS``: its exit code and its stderr's lines."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HOME=str(tmp), XDG_STATE_HOME=str(tmp / "state"))
    proc = await asyncio.create_subprocess_exec(
        str(PROBE), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=tmp,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    assert b"Traceback" not in stderr, stderr.decode()
    return proc.returncode, stderr.decode().splitlines()


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("probe: error:")]


RUN = ("--count", "3", "--interval", "0.2", "--no-bandwidth", "--connect-timeout", "5")


async def test_a_full_disk_before_anything_was_measured_exits_2_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    async with Fleet(tmp_path, real_shell=True) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        inventory = _inventory(tmp_path, fleet, {"a": a.port, "b": b.port})
        with tmpfs(tmp_path / "disk") as disk:
            out = disk / "reports"
            out.mkdir()
            (out / "old-run").mkdir()
            (out / "latest").symlink_to("old-run")
            fill(disk)
            rc, lines = await _probe(tmp_path, "run", str(inventory), "-o", str(out), *RUN)
            assert rc == 2, lines
            (error,) = _errors(lines)
            assert "run.json: cannot write (No space left on device)" in error, error
            assert "nothing was measured" in error
            assert sorted(p.name for p in out.iterdir()) == ["latest", "old-run"]
            assert os.readlink(out / "latest") == "old-run"
            assert leftovers(disk) == []
        assert a.stats.connections == b.stats.connections == 0  # it stopped before connecting


async def test_a_disk_that_fills_mid_run_exits_4_keeps_whole_samples_and_resumes(
    tmp_path: Path,
) -> None:
    async with Fleet(tmp_path, real_shell=True) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        inventory = _inventory(tmp_path, fleet, {"a": a.port, "b": b.port})
        with tmpfs(tmp_path / "disk") as disk:
            out = disk / "reports"
            out.mkdir()
            # run.json, the host records and the first ping records fit (the longer trains of
            # 300 probes make samples.jsonl outgrow its second page); the rest does not
            fill(disk, leave_pages=3)
            long_trains = ("--count", "300", "--interval", "0.01", "--no-bandwidth")
            rc, lines = await _probe(tmp_path, "run", str(inventory), "-o", str(out), *long_trains)
            assert rc == 4, lines
            (error,) = _errors(lines)
            assert "samples.jsonl: cannot write (No space left on device)" in error, error
            assert "the run stopped partial: samples.jsonl is intact" in error
            (run_dir,) = (p for p in out.iterdir() if p.is_dir())
            assert f"--resume {run_dir}" in error
            assert not (out / "latest").exists()  # a partial run that could not finish
            samples = read_samples(run_dir)  # cut back to its last whole line
            assert {r.kind for r in samples.records} >= {"host", "ping"}
            assert samples.torn_lines == ()
            assert (run_dir / "samples.jsonl").read_bytes().endswith(b"\n")
            assert leftovers(disk) == []

            remount(disk, "rw,size=2m")  # room again: --resume finishes the run
            resume = ("--resume", str(run_dir), *long_trains)
            rc, lines = await _probe(tmp_path, "run", str(inventory), *resume)
            assert rc == 0, lines
            doc = json.loads((run_dir / "run.json").read_text())
            assert doc["complete"] is True
            assert os.readlink(out / "latest") == run_dir.name
            assert leftovers(disk) == []


async def test_a_read_only_output_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    async with Fleet(tmp_path, real_shell=True) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        inventory = _inventory(tmp_path, fleet, {"a": a.port, "b": b.port})
        with tmpfs(tmp_path / "disk") as disk:
            (disk / "reports").mkdir()
            remount(disk, "ro")
            for out in (disk / "reports", disk / "new-folder"):
                rc, lines = await _probe(tmp_path, "run", str(inventory), "-o", str(out), *RUN)
                assert rc == 2, lines
                (error,) = _errors(lines)
                assert str(out) in error and "Read-only file system" in error, error
            assert [p.name for p in disk.iterdir()] == ["reports"]
            assert list((disk / "reports").iterdir()) == []
        assert a.stats.connections == b.stats.connections == 0
