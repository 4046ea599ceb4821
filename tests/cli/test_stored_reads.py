"""show, export, report, diff, gate, calc and groups read the matrix the run's end stored: no
rebuild from samples.jsonl, no anchors.json parsed, and the same output as a rebuild (or the
parsed anchors file) gives."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from probe.cli import run
from probe.matrix import anchors, build
from probe.measure.execute import finish
from probe.store.rundir import RunStore, read_run

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"
POLICIES = Path(__file__).resolve().parents[2] / "inventory" / "policies"


def _finished(path: Path) -> Path:
    run_dir = Path(shutil.copytree(GOLDEN, path))
    finish(RunStore.reopen(run_dir), read_run(run_dir), bw_planned=0)
    return run_dir


def test_every_reader_takes_the_stored_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _finished(tmp_path / "a"), _finished(tmp_path / "b")

    def refuse(*_args: Any, **_kwargs: Any) -> pd.DataFrame:
        raise AssertionError("rebuilt from samples.jsonl")

    def no_json(*_args: Any, **_kwargs: Any) -> anchors.Anchors:
        raise AssertionError("parsed anchors.json")

    monkeypatch.setattr(build, "load_matrix", refuse)
    monkeypatch.setattr(anchors, "load_anchors", no_json)
    assert run(["show", str(a)]) == 0
    assert run(["export", str(a), "-o", str(tmp_path / "m.csv")]) == 0
    assert run(["diff", str(a), str(b)]) == 0
    assert run(["gate", str(a), "--policy", str(POLICIES / "coverage.yaml")]) == 1
    assert "gate: FAIL" in capsys.readouterr().out
    assert run(["report", str(a)]) == 0
    assert (tmp_path / "m.csv").read_text() == (a / "matrix.csv").read_text()


def test_the_report_from_the_stored_matrix_is_the_rebuilt_one(tmp_path: Path) -> None:
    stored = _finished(tmp_path / "stored")
    rebuilt = _finished(tmp_path / "rebuilt")
    for name in ("matrix.parquet", "anchors-samples.parquet", "anchors.json"):
        (rebuilt / name).unlink()
    for run_dir in (stored, rebuilt):
        assert run(["report", str(run_dir)]) == 0
    text = (stored / "report.md").read_text()
    assert "Monte-Carlo p99" in text  # the headline read the samples the run's end kept
    assert text == (rebuilt / "report.md").read_text().replace("rebuilt", "stored")


@pytest.mark.parametrize(
    "argv",
    [
        ["calc", "--stages", "2", "--trials", "200"],
        ["calc", "--stages", "2", "--trials", "200", "--json"],
        ["groups", "--max-rtt", "5ms"],
        ["groups", "--max-rtt", "5ms", "--json"],
    ],
)
def test_calc_and_groups_read_the_stored_matrix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    a = _finished(tmp_path / "a")
    command, *options = argv
    assert run([command, str(a / "anchors.json"), *options]) == 0  # the file, parsed
    from_json = capsys.readouterr().out

    def no_json(*_args: Any, **_kwargs: Any) -> anchors.Anchors:
        raise AssertionError("parsed anchors.json")

    monkeypatch.setattr(anchors, "load_anchors", no_json)
    (a / "anchors.json").write_text("not json")
    assert run([command, str(a), *options]) == 0
    assert capsys.readouterr().out == from_json
    assert from_json.strip()
