"""``probe run --resume`` on the lab (issue "survive the field", cases 2, 3 and 9): a resume
measures with the run's own options on the run's own fleet, refuses anything else in one line
before connecting, finishes a run with nothing left without connecting, and keeps every attempt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from probe.lab import control
from tests.measure.test_faults_lab import (
    BW_FAST,
    FAST,
    _killed_at_exit,
    _only_run,
    _start,
    _wait_for,
    _wait_for_file,
    assert_clean,
    probe,
    run_dir,
)

pytestmark = pytest.mark.lab


def _records(run: Path) -> list[dict[str, Any]]:
    """The whole records of samples.jsonl (a line torn by the kill is no record)."""
    records = []
    for line in (run / "samples.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


@pytest.fixture(scope="module")
def complete(lab: control.LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete run (--duration 1, intra-region bandwidth) the refusals below leave alone."""
    out = tmp_path_factory.mktemp("reports")
    proc = probe("run", str(lab.inventory), "-o", str(out), *FAST, *BW_FAST)
    assert proc.returncode == 0, proc.stderr
    return run_dir(proc)


def _unchanged(run: Path) -> tuple[str, str]:
    return (run / "run.json").read_text(), (run / "samples.jsonl").read_text()


def test_a_resume_with_another_duration_is_refused_naming_it(
    lab: control.LabInfo, complete: Path
) -> None:
    before = _unchanged(complete)
    proc = probe("run", str(lab.inventory), "--resume", str(complete), "--duration", "2")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"probe: error: {complete}: --duration 2 differs from the run's 1 (run.json "
        "options.duration_s); resume with the run's options or start a new run\n"
    )
    assert _unchanged(complete) == before


def test_a_resume_with_another_fleet_is_refused_saying_what_differs(
    lab: control.LabInfo, complete: Path, tmp_path: Path
) -> None:
    """A 12-host inventory: ap2 gone, five hosts more, eu1 at another address."""
    inventory = yaml.safe_load(lab.inventory.read_text())
    hosts = [h for h in inventory["hosts"] if h["name"] != "ap2"]
    for h in hosts:
        if h["name"] == "eu1":
            h["address"] = "198.18.1.99"
    extra = [{"name": f"x{i}", "address": f"198.18.9.{i}", "region": "eu",
              "ssh": {"via": lab.jump}} for i in range(1, 6)]  # fmt: skip
    inventory["hosts"] = hosts + extra
    assert len(inventory["hosts"]) == 12
    other = tmp_path / "twelve.yaml"
    other.write_text(yaml.safe_dump(inventory, sort_keys=False))
    before = _unchanged(complete)
    proc = probe("run", str(other), "--resume", str(complete))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(
        f"probe: error: {other}: the inventory differs from run {complete.name}"
    )
    assert (
        "hosts added: x1, x2, x3, x4, x5; removed: ap2; eu1 address 198.18.1.11 → 198.18.1.99; "
        in proc.stderr
    )
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert _unchanged(complete) == before


def test_a_resume_with_nothing_left_finishes_without_connecting(
    lab: control.LabInfo, complete: Path
) -> None:
    records = len(_records(complete))
    proc = probe("run", str(lab.inventory), "--resume", str(complete))
    assert proc.returncode == 0, proc.stderr
    assert "nothing left to measure: 42/42 RTT cells, 10/10 bandwidth cells already measured" in (
        proc.stderr
    )
    assert "bandwidth plan" not in proc.stderr and "ping:" not in proc.stderr
    assert len(_records(complete)) == records  # not even a host record: nothing connected
    doc = json.loads((complete / "run.json").read_text())
    assert doc["complete"] is True and len(doc["attempts"]) >= 2
    assert "phases" not in doc["attempts"][-1] and doc["attempts"][-1]["ended_utc"]


def test_a_killed_run_resumed_without_options_uses_the_recorded_ones(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    with _killed_at_exit(_start(lab, tmp_path, *FAST, "--duration", "1", "--omit", "0")):
        _wait_for_file(tmp_path)
        run = _only_run(tmp_path)
        _wait_for(run / "samples.jsonl", "iperf3", 9)
    before = _records(run)
    done = {(r["src"], r["dst"]) for r in before if r["kind"] == "iperf3" and r["status"] == "ok"}
    assert 9 <= len(done) < 42
    resumed = probe("run", str(lab.inventory), "--resume", str(run))  # no options at all
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run.name}: 42/42 RTT cells, {len(done)}/42 bandwidth cells" in (
        resumed.stderr
    )
    new = [r for r in _records(run)[len(before) :] if r["kind"] == "iperf3"]
    assert len(new) == 42 - len(done)
    for r in new:  # the run's -t 1 -O 0, not the defaults (10 and 2)
        argv = r["argv"]
        assert argv[argv.index("-t") + 1] == "1" and argv[argv.index("-O") + 1] == "0", argv
    doc = json.loads((run / "run.json").read_text())
    assert doc["options"]["duration_s"] == 1 and doc["options"]["omit_s"] == 0
    assert doc["options"]["count"] == 5 and doc["complete"] is True
    killed, finished = doc["attempts"]
    assert "ended_utc" not in killed and finished["ended_utc"]  # the kill left no end
    assert finished["phases"]["bandwidth_s"] > 0
    assert_clean(lab)
