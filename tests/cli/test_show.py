"""``probe show``: an incomplete run says so on its first line; a complete one does not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from probe.cli import run
from tests.report.runs import cut_short

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(GOLDEN, tmp_path / GOLDEN.name))


@pytest.mark.parametrize("by", ["host", "region"])
def test_an_interrupted_run_says_what_is_not_measured_first(
    run_dir: Path, by: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", str(cut_short(run_dir, 12)), "--by", by]) == 0
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert first == (
        "incomplete: 12 of 56 bandwidth cells and 0 of 56 RTT cells not measured (interrupted; "
        f"resume with probe run inventory/lab-3regions.yaml --resume {run_dir.resolve()})"
    )
    assert second.startswith("rtt_p50_ms ")


def test_a_killed_run_did_not_finish(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["show", str(cut_short(run_dir, 60, interrupted=False))]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("incomplete: 42 of 56 bandwidth cells and 18 of 56 RTT cells")
    assert "(not finished; resume with probe run " in first


def test_a_complete_run_starts_with_its_grid(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rtt_p50_ms (row = source") and "incomplete" not in out
