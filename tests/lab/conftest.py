"""A lab's state directory without root: the files ``lab up`` writes, no namespace, no process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.lab import control, files, htb
from probe.lab.files import LabPaths
from probe.lab.state import LabState, save
from probe.lab.topology import load_topology
from tests.conftest import ROOT

TINY = ROOT / "tests" / "fixtures" / "lab" / "tiny.yaml"
FIELD_HOSTS = ROOT / "tests" / "fixtures" / "lab" / "field-hosts.yaml"  # hosts unlike the others


@pytest.fixture
def tiny_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[control.LabInfo]:
    """A state directory as ``lab up`` leaves it (no namespace, no process)."""
    topo = load_topology(str(TINY))
    monkeypatch.setattr(control, "STATE_ROOT", tmp_path)
    paths = LabPaths(tmp_path / topo.name)
    paths.root.mkdir()
    hosts = tuple(h.name for h in topo.hosts)
    save(paths.state, LabState(topo.name, topo.prefix, str(TINY), hosts, topo.jump))
    config, pairs = files.emulator_files(topo, paths)
    save(paths.emulator_config, config)
    save(paths.pairs, pairs)
    save(paths.truth, files.lab_truth(topo))
    paths.ready.write_text("1\n")
    yield control.running()[0]


@pytest.fixture
def tc_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every ``tc`` command the lab would run, as (netns, *args), instead of running it."""
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(
        htb, "tc_batch", lambda netns, commands: calls.extend((netns, *c) for c in commands)
    )
    return calls
