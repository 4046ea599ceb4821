"""``lab exec`` without root: which namespaces the command enters, and what it says when the
host's sshd (whose namespaces are the host's) is down."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from probe.cli import run
from probe.errors import InputError
from probe.lab import control, netns
from probe.lab.state import ChildPids, save


def _sshd(lab: control.LabInfo, pid: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ta``'s sshd runs as ``pid`` in ``ta``'s network namespace."""
    save(lab.paths.root / "children.json", ChildPids({"sshd_ta": pid}))
    monkeypatch.setattr(netns, "in_netns", lambda p, name: (p, name) == (pid, lab.netns("ta")))


def test_exec_enters_the_network_uts_and_mount_namespaces_of_the_host(
    tiny_lab: control.LabInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lab exec HOST -- hostname` printed the controller's name: only the network was the
    host's. Its sshd runs in the host's UTS (hostname) and mount (tmpfs home) namespaces."""
    _sshd(tiny_lab, 4242, monkeypatch)
    cmd = control.host_command(tiny_lab, "ta", ["hostname"])
    assert cmd.host_view
    wd = f"--wd={Path.cwd()}"
    assert cmd.argv == ("nsenter", "-t", "4242", "-n", "-u", "-m", wd, "--", "hostname")


@pytest.mark.parametrize("children", [None, {"sshd_ta": 4242}, {"sshd_tb": 4242}])
def test_with_its_sshd_down_exec_enters_the_network_namespace_only(
    tiny_lab: control.LabInfo, children: dict[str, int] | None
) -> None:
    if children is not None:  # a recorded PID that is not in ta's namespace (dead, or reused)
        save(tiny_lab.paths.root / "children.json", ChildPids(children))
    cmd = control.host_command(tiny_lab, "ta", ["hostname"])
    assert not cmd.host_view
    assert cmd.argv == ("ip", "netns", "exec", "pt-ta", "hostname")


def test_exec_of_an_unknown_host_is_an_input_error(tiny_lab: control.LabInfo) -> None:
    with pytest.raises(InputError, match="has no host 'nowhere'"):
        control.host_command(tiny_lab, "nowhere", ["true"])


def test_a_process_of_another_namespace_is_not_the_hosts() -> None:
    assert not netns.in_netns(os.getpid(), "pt-no-such-namespace")


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[str]]:
    """What `lab exec` would run, recorded instead (and root assumed)."""
    argvs: list[Sequence[str]] = []

    def fake(argv: Sequence[str], check: bool) -> subprocess.CompletedProcess[str]:
        argvs.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(control, "require_root", lambda: None)
    monkeypatch.setattr(subprocess, "run", fake)
    return argvs


def test_the_cli_says_on_stderr_when_only_the_network_is_the_hosts(
    tiny_lab: control.LabInfo,
    ran: list[Sequence[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["lab", "exec", "ta", "--", "hostname"]) == 0
    err = capsys.readouterr().err
    assert "sshd of ta is not running: only its network namespace" in err
    assert ran == [("ip", "netns", "exec", "pt-ta", "hostname")]
    _sshd(tiny_lab, 4242, monkeypatch)
    assert run(["lab", "exec", "ta", "--", "hostname", "-s"]) == 0
    assert capsys.readouterr().err == ""
    assert ran[1][:7] == ("nsenter", "-t", "4242", "-n", "-u", "-m", f"--wd={Path.cwd()}")
    assert ran[1][-3:] == ("--", "hostname", "-s")


def test_the_help_of_exec_says_the_process_ids_are_the_machines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["lab", "exec", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "ps shows every process of this machine" in out
    assert "network, UTS and mount namespaces" in out
