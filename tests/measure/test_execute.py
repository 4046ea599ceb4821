"""``probe run`` writes run.json at each step, and finishes it when interrupted (loopback fleet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.measure.context import RunOptions
from probe.measure.execute import execute
from probe.measure.measurement import Measurement
from probe.store.rundir import RunStore, read_run
from probe.store.rundoc import RunDoc
from tests.sshfleet import FAST, Fleet

OPTIONS = RunOptions(count=2, bandwidth=False)


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[RunDoc]:
    """Every run.json as ``RunStore.write_run`` wrote it, in order."""
    docs: list[RunDoc] = []
    write = RunStore.write_run

    def spy(store: RunStore, doc: RunDoc) -> None:
        docs.append(doc)
        write(store, doc)

    monkeypatch.setattr(RunStore, "write_run", spy)
    return docs


async def _run(tmp_path: Path) -> Path:
    async with Fleet(tmp_path) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        inventory = fleet.inventory([fleet.host("a", a), fleet.host("b", b)])
        summary = await execute(
            inventory, out_root=tmp_path / "reports", options=OPTIONS, ssh=FAST, say=print
        )
    return summary.run_dir


async def test_run_json_at_start_after_connect_after_ping_and_at_the_end(
    tmp_path: Path, written: list[RunDoc]
) -> None:
    run_dir = await _run(tmp_path)
    start, connected, pinged, end = written
    assert start.phases is None and not start.complete and not start.interrupted
    assert all(h.connection is None and h.ssh is not None for h in start.hosts)
    assert start.options == OPTIONS.as_doc() and start.ended_utc is None
    assert all(h.connection is not None for h in connected.hosts)
    assert connected.controller is not None
    assert connected.phases is not None and connected.phases.connect_s is not None
    assert connected.phases.ping_s is None
    assert pinged.phases is not None and pinged.phases.ping_s is not None
    assert end.ended_utc is not None and end.cells is not None and end.cells.pairs == 2
    assert read_run(run_dir) == end
    (attempt,) = end.attempts
    assert attempt.started_utc == end.started_utc and attempt.phases == end.phases
    assert attempt.ended_utc == end.ended_utc and end.resumed_utc is None


async def test_an_interrupted_run_is_finished_and_resumes(
    tmp_path: Path, written: list[RunDoc], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupt(_m: Measurement) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Measurement, "ping_mesh", interrupt)
        with pytest.raises(KeyboardInterrupt):
            await _run(tmp_path)
    stopped = written[-1]
    assert stopped.interrupted and not stopped.complete and stopped.ended_utc is not None
    assert stopped.phases is not None and stopped.phases.ping_s is None
    assert stopped.cells is not None and stopped.cells.rtt_measured == 0
    run_dir = tmp_path / "reports" / stopped.run_id
    assert read_run(run_dir) == stopped

    async with Fleet(tmp_path) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        inventory = fleet.inventory([fleet.host("a", a), fleet.host("b", b)])
        await execute(
            inventory, out_root=tmp_path, options=OPTIONS, ssh=FAST, say=print, resume=run_dir
        )
    resumed = read_run(run_dir)
    assert resumed.run_id == stopped.run_id and resumed.started_utc == stopped.started_utc
    assert resumed.resumed_utc is not None and not resumed.interrupted
    assert resumed.phases is not None and resumed.phases.ping_s is not None
    first, again = resumed.attempts  # the resume's sshds listen on other ports: routes may change
    assert first == stopped.attempts[0] and first.interrupted and first.phases == stopped.phases
    assert again.started_utc == resumed.resumed_utc and again.phases == resumed.phases
