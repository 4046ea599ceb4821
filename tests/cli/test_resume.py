"""``probe run --resume`` through the CLI: a clash is one line and exit 2 before any SSH; a run
with nothing left finishes without connecting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probe.cli import run
from probe.inventory import load_inventory
from probe.measure.ssh import SshPool
from tests.measure.test_measurement import measure
from tests.measure.test_resume import write_run


def _inventory(path: Path, names: range, *, moved: str | None = None) -> Path:
    """The fleet of ``tests.measure.test_measurement.inventory`` as a file (h0 … h3, 2 regions)."""
    lines = ["hosts:"]
    for i in names:
        address = "10.0.9.9" if f"h{i}" == moved else f"10.0.0.{i + 1}"
        lines.append(f"  - {{name: h{i}, address: {address}, region: {'r1' if i < 2 else 'r2'}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SSH connect attempt, refused (a test that reaches one fails)."""
    attempts: list[str] = []

    async def connect(self: SshPool, *args: Any, **kwargs: Any) -> None:
        attempts.append("connect")
        raise AssertionError("probe run connected")

    monkeypatch.setattr(SshPool, "connect", connect)
    return attempts


@pytest.fixture
def complete(tmp_path: Path) -> tuple[Path, Path]:
    """(inventory file, run directory): a run of 4 hosts where every cell was measured."""
    inventory = _inventory(tmp_path / "fleet.yaml", range(4))
    records, _ = measure(4)
    return inventory, write_run(tmp_path / "reports", load_inventory(inventory), records)


CLASHES = [  # (arguments, the option as written, the run's value, its run.json field)
    (["--duration", "2"], "--duration 2", "1", "duration_s"),
    (["--no-bandwidth"], "--no-bandwidth", "true", "bandwidth"),
    (["--interval", "0.5", "--count", "3"], "--interval 0.5", "0.2", "interval_s"),  # count: same
    (["--under-load"], "--under-load", "false", "under_load"),
]


@pytest.mark.parametrize(("args", "given", "recorded", "field"), CLASHES)
def test_an_option_the_run_recorded_otherwise_is_one_line_and_exit_2(
    complete: tuple[Path, Path],
    no_ssh: list[str],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    given: str,
    recorded: str,
    field: str,
) -> None:
    inventory, run_dir = complete
    assert run(["run", str(inventory), "--resume", str(run_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"probe: error: {run_dir}: {given} differs from the run's {recorded} "
        f"(run.json options.{field}); resume with the run's options or start a new run\n"
    )
    assert no_ssh == [] and not (run_dir / "matrix.csv").exists()


def test_another_fleet_is_one_line_and_exit_2(
    complete: tuple[Path, Path], no_ssh: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, run_dir = complete
    other = _inventory(run_dir.parent.parent / "other.yaml", range(1, 6), moved="h2")
    assert run(["run", str(other), "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"probe: error: {other}: the inventory differs from run {run_dir.name}")
    assert "hosts added: h4, h5; removed: h0; h2 address 10.0.0.3 → 10.0.9.9; " in err
    assert err.count("\n") == 1 and no_ssh == []


def test_nothing_left_finishes_without_connecting(
    complete: tuple[Path, Path], no_ssh: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, run_dir = complete
    inventory.write_text(inventory.read_text() + "# an edited comment\n")
    args = ["--duration", "1", "--count", "3", "--connect-timeout", "1", "-o", "elsewhere"]
    assert run(["run", str(inventory), "--resume", str(run_dir), *args]) == 0
    out, err = capsys.readouterr()
    assert out == f"{run_dir}\n"
    assert "nothing left to measure: 12/12 RTT cells, 12/12 bandwidth cells already measured" in err
    assert f"note: {inventory} is not the file run {run_dir.name} recorded" in err
    assert no_ssh == [] and (run_dir / "matrix.csv").exists()
