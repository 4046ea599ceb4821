"""Every command documents itself, and `probe --help` stays instant (no pandas, no asyncssh)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from probe.cli import _register, main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, cmd in sorted(group.commands.items()):
        found.append((*prefix, name))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, (*prefix, name))
    return found


_register()
COMMANDS = _commands(main)


def test_the_cli_has_every_command_of_the_readme() -> None:
    top = {c[0] for c in COMMANDS}
    assert {
        "lab",
        "check",
        "run",
        "show",
        "export",
        "calc",
        "groups",
        "gate",
        "report",
        "diff",
    } <= top


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    assert cmd.help and len(cmd.help.strip()) > 20, path
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help, (path, param.name)


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from probe.cli import run; rc = run(['--help']); "
        "heavy = [m for m in ('pandas', 'asyncssh', 'matplotlib', 'numpy') if m in sys.modules]; "
        "print(heavy); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_python_m_probe_is_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "probe", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line}
    assert {c[0] for c in COMMANDS} <= listed
