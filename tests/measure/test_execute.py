"""``probe run`` writes run.json at each step, and finishes it when interrupted (loopback fleet)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.measure.context import RunOptions
from probe.measure.execute import RunSummary, execute, finish
from probe.measure.measurement import Measurement
from probe.model import INBOUND_NONE, CellStatus
from probe.store.probes import read_store
from probe.store.records import PingRecord, PingTrain, SampleRecord
from probe.store.rundir import RunStore, read_run, read_samples
from probe.store.rundoc import CellCounts, InventoryRef, RunDoc, RunHost
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


def _ok(src: str, dst: str) -> PingRecord:
    train = PingTrain(sent=2, received=2, duplicates=0, probes=((1, 1.0), (2, 1.0)))
    return PingRecord(src=src, dst=dst, status=CellStatus.OK, train=train)


def _finish(tmp_path: Path, records: list[PingRecord]) -> RunSummary:
    """A run of eu {a, b} and us {c} with ``--ping-pairs intra-region``, finished."""
    store = RunStore.create(tmp_path)
    hosts = (RunHost("a", "10.0.0.1", "eu"), RunHost("b", "10.0.0.2", "eu"),
             RunHost("c", "10.0.0.3", "us"))  # fmt: skip
    doc = RunDoc(
        run_id=store.run_id, probe_version="0", inventory=InventoryRef("i.yaml", "0" * 64),
        started_utc="2026-11-23T00:00:00Z", hosts=hosts,
        options=replace(OPTIONS, ping_pairs="intra-region").as_doc(),
    )  # fmt: skip
    for rec in records:
        store.append(rec)
    store.close()
    return finish(store, doc, bw_planned=0)


def test_not_planned_cells_are_neither_failed_nor_missing(tmp_path: Path) -> None:
    """Only a ↔ b is planned: with both measured the run is complete (exit 0), though 4 of its
    6 cells have no RTT; a planned cell without one still makes it partial (exit 4)."""
    summary = _finish(tmp_path / "full", [_ok("a", "b"), _ok("b", "a")])
    assert (summary.pairs, summary.rtt_ok, summary.rtt_not_planned) == (6, 2, 4)
    assert summary.rtt_planned == 2 and summary.complete
    written = read_run(summary.run_dir)
    assert written.complete and written.cells == CellCounts(6, 2, 0, 0, (), rtt_not_planned=4)
    assert written.options.ping_pairs == "intra-region" and written.options.pinger == "auto"
    partial = _finish(tmp_path / "partial", [_ok("a", "b")])
    assert not partial.complete and partial.rtt_planned == 2 and partial.rtt_ok == 1
    assert not read_run(partial.run_dir).complete


async def test_a_resumed_run_keeps_its_ping_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matrix marks not-planned cells from run.json's plan: a resume measures that plan
    when --ping-pairs is not given (given with another value, it is refused: test_resume)."""

    async def interrupt(_m: Measurement) -> None:
        raise KeyboardInterrupt

    seen: list[str] = []
    init = Measurement.__init__

    def spy(m: Measurement, *args: Any, **kwargs: Any) -> None:
        seen.append(args[2].ping_pairs)
        init(m, *args, **kwargs)

    monkeypatch.setattr(Measurement, "__init__", spy)
    async with Fleet(tmp_path) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        inventory = fleet.inventory([fleet.host("a", a), fleet.host("b", b)])
        with monkeypatch.context() as patch:
            patch.setattr(Measurement, "ping_mesh", interrupt)
            with pytest.raises(KeyboardInterrupt):
                await execute(
                    inventory, out_root=tmp_path / "reports", ssh=FAST, say=print,
                    options=replace(OPTIONS, ping_pairs="intra-zone"),
                )  # fmt: skip
        (run_dir,) = (tmp_path / "reports").glob("2*")
        await execute(
            inventory, out_root=tmp_path, options=OPTIONS, ssh=FAST, say=print, resume=run_dir,
            given={},
        )  # fmt: skip
    assert seen == ["intra-zone", "intra-zone"]
    assert read_run(run_dir).options.ping_pairs == "intra-zone"


def test_not_measurable_cells_are_counted_apart_never_missing(tmp_path: Path) -> None:
    """b and c sit behind NAT: b ↔ c cannot be measured, a → b and a → c are b's and c's own
    pings. With those measured the run is complete; run.json and the end line count b ↔ c
    apart."""
    store = RunStore.create(tmp_path)
    hosts = (RunHost("a", "10.0.0.1"), RunHost("b", "10.0.0.2", inbound=INBOUND_NONE),
             RunHost("c", "10.0.0.3", inbound=INBOUND_NONE))  # fmt: skip
    doc = RunDoc(
        run_id=store.run_id, probe_version="0", inventory=InventoryRef("i.yaml", "0" * 64),
        started_utc="2026-11-23T00:00:00Z", hosts=hosts, options=OPTIONS.as_doc(),
    )  # fmt: skip
    for rec in (_ok("b", "a"), _ok("c", "a")):
        store.append(rec)
    store.close()
    summary = finish(store, doc, bw_planned=0)
    assert (summary.pairs, summary.rtt_ok, summary.rtt_not_measurable) == (6, 4, 2)
    assert summary.rtt_planned == 4 and summary.complete
    written = read_run(summary.run_dir)
    assert written.cells == CellCounts(6, 4, 0, 0, (), rtt_not_measurable=2)
    assert summary.line("R") == (
        "run R: 4/4 RTT cells (2 not measurable of 6 pairs), 0/0 bandwidth cells"
    )


async def test_each_source_s_ping_results_are_one_part_of_the_probe_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``append_many`` per source: its records in one write, its pings in one part."""
    batches: list[list[str]] = []
    append_many = RunStore.append_many

    def spy(store: RunStore, records: Sequence[SampleRecord], **warn: Any) -> None:
        batches.append([r.kind for r in records])
        append_many(store, records, **warn)

    monkeypatch.setattr(RunStore, "append_many", spy)
    run_dir = await _run(tmp_path)
    # a ping_fanout record first when the source's command ran (the loopback fleet may lack it)
    assert [b[-1:] for b in batches] == [["ping"]] * 2 and all(len(b) <= 2 for b in batches)
    assert len(list((run_dir / "probes").glob("ping-*.parquet"))) == 2
    stored = read_store(run_dir, [])
    pings = [r for r in read_samples(run_dir).records if isinstance(r, PingRecord)]
    assert sorted(stored.pings.table().column("src").to_pylist()) == sorted(
        p.src for p in pings for _ in range(max(1, len(p.train.probes) if p.train else 0))
    )
    assert not any(isinstance(r, PingRecord) for r in stored.others)
