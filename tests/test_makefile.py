"""The Makefile's set-up path, which a fresh machine takes once and a warm one never does.

``sysdeps`` is run for real with a missing command and a stand-in ``apt-get`` first on PATH
(the test must not install packages): what it proves is the recipe's shell, which a warm
machine never executes — a broken ``install`` line once passed CI on a machine that had every
package already.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _fake_apt(bindir: Path, log: Path) -> None:
    script = bindir / "apt-get"
    script.write_text(
        f'#!/bin/sh\necho "$DEBIAN_FRONTEND apt-get $*" >> {log}\nexit 0\n', encoding="utf-8"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "apt.log"
    _fake_apt(bindir, log)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="the recipe uses sudo when not root")
def test_sysdeps_installs_the_package_of_a_missing_command(tmp_path: Path) -> None:
    policy_before = Path("/usr/sbin/policy-rc.d").exists()
    proc = _make(tmp_path, "sysdeps", "SYSDEPS=probe-no-such-command:probe-fake-pkg ip:iproute2")
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "apt.log").read_text(encoding="utf-8").splitlines()
    assert calls[0].endswith("apt-get update -qq")
    assert calls[1].startswith("noninteractive apt-get install -y")
    assert calls[1].split()[-1] == "probe-fake-pkg"  # ip exists: iproute2 is not asked for
    assert "installing: probe-fake-pkg" in proc.stdout
    # the no-daemon-start policy exists only during the install
    assert Path("/usr/sbin/policy-rc.d").exists() == policy_before


def test_sysdeps_does_nothing_when_every_command_exists(tmp_path: Path) -> None:
    proc = _make(tmp_path, "sysdeps", "SYSDEPS=sh:dash ip:iproute2")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "apt.log").exists()
    assert proc.stdout == ""
