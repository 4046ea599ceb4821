"""samples.jsonl is fsynced once per event-loop turn while a run measures: a ping source's
results arrive together, and one fsync per record held a 60-host lab's loop for seconds."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from probe.errors import StoreError
from probe.model import CellStatus
from probe.store.records import HostRecord
from probe.store.rundir import RunStore, read_samples


def _record(name: str) -> HostRecord:
    return HostRecord(name, CellStatus.OK, None, 1.0)


def _hosts(store: RunStore) -> list[str]:
    return [r.host for r in read_samples(store.dir).records if isinstance(r, HostRecord)]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def count(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", count)
    return calls


def test_outside_an_event_loop_each_record_is_fsynced(tmp_path: Path, fsyncs: list[int]) -> None:
    store = RunStore.create(tmp_path, "r")
    for name in ("a", "b", "c"):
        store.append(_record(name))
    assert len(fsyncs) == 3
    store.close()


def test_records_of_one_loop_turn_share_one_fsync(tmp_path: Path, fsyncs: list[int]) -> None:
    store = RunStore.create(tmp_path, "r")

    async def measure() -> list[int]:
        for name in ("a", "b", "c"):  # one source's results: appended in one turn
            store.append(_record(name))
        assert fsyncs == []  # written (readable below), not yet synced
        assert _hosts(store) == ["a", "b", "c"]
        await asyncio.sleep(0)
        after_first = len(fsyncs)
        store.append(_record("d"))  # the next turn's result
        await asyncio.sleep(0)
        return [after_first, len(fsyncs)]

    assert asyncio.run(measure()) == [1, 2]
    store.close()
    assert _hosts(store) == ["a", "b", "c", "d"]


def test_a_failed_fsync_stops_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore.create(tmp_path, "r")

    def refuse(fd: int) -> None:
        raise OSError(5, "Input/output error")

    async def measure() -> None:
        store.append(_record("a"))
        monkeypatch.setattr(os, "fsync", refuse)
        await asyncio.sleep(0)
        with pytest.raises(StoreError, match=r"samples\.jsonl"):
            store.append(_record("b"))

    asyncio.run(measure())
    store.close()
    assert _hosts(store) == ["a"]
