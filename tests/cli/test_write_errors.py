"""Files the other commands write — a report, an export, a gate summary — that cannot be
written: one line naming the path, exit 2, and no temporary or empty file beside it.

A directory standing where the file should go makes the write fail for root too (root ignores
permissions); real full and read-only filesystems are tested in ``test_run_filesystem.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.cli import run
from probe.matrix.anchors import write_anchors
from tests.decide.fleet import make_anchors
from tests.report.runs import make_lab8

POLICY = Path(__file__).resolve().parents[2] / "inventory" / "policies" / "coverage.yaml"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_lab8(tmp_path / "20261123T090000Z")


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1, errors
    return errors[0]


def _no_leftovers(folder: Path) -> None:
    names = [p.name for p in folder.iterdir()]
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown", "prometheus", "parquet"])
def test_export_to_a_path_it_cannot_write(
    fmt: str, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    assert run(["export", str(run_dir), "--format", fmt, "-o", str(target)]) == 2
    assert _one_error(capsys) == f"probe: error: {target}: cannot write (Is a directory)"
    assert list(target.iterdir()) == []
    _no_leftovers(tmp_path)


def test_export_into_a_missing_folder(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "m.prom"
    assert run(["export", str(run_dir), "--format", "prometheus", "-o", str(target)]) == 2
    assert _one_error(capsys) == (
        f"probe: error: {target}: cannot write (No such file or directory)"
    )


def test_report_into_a_run_directory_where_it_cannot_write(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / "report.md").mkdir()
    assert run(["report", str(run_dir)]) == 2
    assert (
        _one_error(capsys)
        == f"probe: error: {run_dir / 'report.md'}: cannot write (Is a directory)"
    )
    _no_leftovers(run_dir)


def test_gate_markdown_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchors = tmp_path / "anchors.json"
    write_anchors(anchors, make_anchors({"us-east": 2, "eu-west": 2}, samples=True))
    target = tmp_path / "missing" / "gate.md"
    args = ["gate", str(anchors), "--policy", str(POLICY), "--markdown", str(target)]
    assert run(args) == 2
    assert _one_error(capsys) == (
        f"probe: error: {target}: cannot write (No such file or directory)"
    )
    _no_leftovers(tmp_path)
