"""``probe run`` when its run directory refuses a write (a full disk, a folder gone read-only).

It stops the way Ctrl-C stops it — remote processes stopped, connections closed — writes
nothing more, and ends in one ``StoreError``: exit 2 when nothing was saved yet (a new run's
directory is removed again), exit 4 when samples.jsonl holds results (``PartialRunError``: the
run is partial, samples.jsonl is whole, ``--resume`` finishes it). ``latest`` moves only to a run
that finished writing. (Real full and read-only filesystems: ``tests/cli/test_run_filesystem.py``.)
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from probe.errors import PartialRunError, StoreError
from probe.matrix import build
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.context import RunOptions
from probe.measure.execute import execute
from probe.model import Host
from probe.store.records import HostRecord, Iperf3Record, PingRecord, SampleRecord
from probe.store.rundir import RunStore, read_run, read_samples
from probe.store.rundoc import RunDoc
from tests.sshfleet import FAST, Fleet

OPTIONS = RunOptions(count=2, bandwidth=False)
FULL = "No space left on device"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder with an earlier run that ``latest`` points at."""
    folder = tmp_path / "reports"
    (folder / "old-run").mkdir(parents=True)
    (folder / "latest").symlink_to("old-run")
    return folder


def _refuse_append(patch: pytest.MonkeyPatch, when: Callable[[SampleRecord], bool]) -> None:
    """Both ways records are saved (one, or a batch: a source's pings) refuse what ``when``
    picks, as a full disk would: nothing of the write is saved."""
    append, append_many = RunStore.append, RunStore.append_many

    def refuse(records: Sequence[SampleRecord], store: RunStore) -> None:
        if any(when(r) for r in records):
            raise StoreError(f"{store.samples_path}: cannot write ({FULL})")

    def full(store: RunStore, record: SampleRecord, **warn: Any) -> None:
        refuse((record,), store)
        append(store, record, **warn)

    def full_many(store: RunStore, records: Sequence[SampleRecord], **warn: Any) -> None:
        refuse(records, store)
        append_many(store, records, **warn)

    patch.setattr(RunStore, "append", full)
    patch.setattr(RunStore, "append_many", full_many)


async def _run(fleet: Fleet, out: Path, options: RunOptions = OPTIONS) -> None:
    a, b = await fleet.sshd("a"), await fleet.sshd("b")
    inventory = fleet.inventory([fleet.host("a", a), fleet.host("b", b)])
    await execute(inventory, out_root=out, options=options, ssh=FAST, say=print)


def _runs(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "old-run"]


async def test_run_json_refused_at_the_start_stops_before_connecting(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(store: RunStore, doc: RunDoc) -> None:
        raise StoreError(f"{store.dir / 'run.json'}: cannot write ({FULL})")

    monkeypatch.setattr(RunStore, "write_run", full)
    async with Fleet(tmp_path) as fleet:
        with pytest.raises(StoreError) as caught:
            await _run(fleet, out)
        assert all(s.stats.connections == 0 for s in fleet.sshds.values())
    assert type(caught.value) is StoreError and caught.value.exit_code == 2
    assert str(caught.value).endswith(f"run.json: cannot write ({FULL}); nothing was measured")
    assert _runs(out) == [] and (out / "latest").readlink() == Path("old-run")


async def test_a_refused_first_record_exits_2_and_removes_the_new_run(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_append(monkeypatch, lambda r: isinstance(r, HostRecord))
    async with Fleet(tmp_path) as fleet:
        with pytest.raises(StoreError) as caught:
            await _run(fleet, out)
    assert type(caught.value) is StoreError and caught.value.exit_code == 2
    assert "samples.jsonl: cannot write" in str(caught.value)
    assert str(caught.value).endswith("nothing was measured")
    assert _runs(out) == [] and (out / "latest").readlink() == Path("old-run")


async def test_a_refused_record_after_others_were_saved_stops_the_run_partial(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_append(monkeypatch, lambda r: isinstance(r, PingRecord))
    async with Fleet(tmp_path) as fleet:
        with pytest.raises(PartialRunError) as caught:
            await _run(fleet, out)
    (run_dir,) = _runs(out)
    assert caught.value.exit_code == 4
    assert str(caught.value) == (
        f"{run_dir / 'samples.jsonl'}: cannot write ({FULL}); the run stopped partial: "
        f"samples.jsonl is intact, finish it with --resume {run_dir}"
    )
    samples = read_samples(run_dir)
    assert {r.kind for r in samples.records} == {"host"} and samples.torn_lines == ()
    assert not read_run(run_dir).complete
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.json", "samples.jsonl"]
    assert (out / "latest").readlink() == Path("old-run")


async def test_a_matrix_that_cannot_be_written_leaves_a_partial_run_and_latest_as_it_was(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(run_dir: Path, frame: object, metadata: object = None) -> None:
        raise StoreError(f"{run_dir / 'matrix.csv'}: cannot write ({FULL})")

    monkeypatch.setattr(build, "write_matrix", full)
    async with Fleet(tmp_path) as fleet:
        with pytest.raises(PartialRunError) as caught:
            await _run(fleet, out)
    (run_dir,) = _runs(out)
    assert str(caught.value).startswith(f"{run_dir / 'matrix.csv'}: cannot write ({FULL}); ")
    assert not read_run(run_dir).complete
    assert (out / "latest").readlink() == Path("old-run")


@pytest.mark.skipif(
    shutil.which("iperf3") is None or shutil.which("ping") is None, reason="needs ping, iperf3"
)
async def test_a_disk_full_during_the_bandwidth_tests_stops_every_remote_process(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real ping and iperf3 on loopback: the first bandwidth record is refused while the next
    test is armed (its server listening, its client gated); the run stops them all rather than
    measure on (the disk had room again for the second test's record: it never came)."""
    refused: list[SampleRecord] = []

    def first_iperf3(record: SampleRecord) -> bool:
        if isinstance(record, Iperf3Record) and not refused:
            refused.append(record)
            return True
        return False

    _refuse_append(monkeypatch, first_iperf3)
    options = RunOptions(count=2, bw=BandwidthOptions(duration_s=1, omit_s=0))
    async with Fleet(tmp_path, real_shell=True) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        hosts = [
            Host("a", "127.0.0.1", ssh=fleet.host("a", a).ssh),
            Host("b", "127.0.0.2", ssh=fleet.host("b", b).ssh),
        ]
        said: list[str] = []
        with pytest.raises(PartialRunError, match=r"samples\.jsonl: cannot write"):
            await execute(
                fleet.inventory(hosts), out_root=out, options=options, ssh=FAST, say=said.append
            )
        assert any(line.startswith("bandwidth: 1/2") for line in said), said  # the refused one
        assert not any(line.startswith("bandwidth: 2/2") for line in said)  # stopped, not on
        for _ in range(100):  # a killed process is reaped by the loop a moment later
            if fleet.running() == 0:
                break
            await asyncio.sleep(0.05)
        assert fleet.running() == 0
    (run_dir,) = _runs(out)
    samples = read_samples(run_dir)
    assert {r.kind for r in samples.records} >= {"host", "ping"}
    assert not any(isinstance(r, Iperf3Record) for r in samples.records)
    assert samples.torn_lines == () and (out / "latest").readlink() == Path("old-run")
