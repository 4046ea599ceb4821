"""The bandwidth store: iperf3 records as Parquet rows, read instead of their JSON lines — and the
matrix the same whichever way its records came."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.matrix.build import build_matrix, load_matrix
from probe.model import CellStatus
from probe.store import bandwidth, rundir
from probe.store.probes import read_store
from probe.store.records import (
    HostRecord,
    ImportedRecord,
    Iperf3MultiRecord,
    Iperf3Record,
    IperfTestRecord,
    PingRecord,
    SampleRecord,
    decode_record,
    encode_record,
)
from probe.store.rundir import RunStore, read_run, read_samples
from probe.tools.iperf3 import IperfResult
from tests.matrix.test_build import RUN, iperf, ping

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kinds of the lines samples.jsonl's reader decoded."""
    kinds: list[str] = []

    def spy(line: str, where: str) -> Any:
        rec = decode_record(line, where)
        kinds.append(getattr(rec, "kind", ""))
        return rec

    monkeypatch.setattr(rundir, "decode_record", spy)
    return kinds


def _written(tmp_path: Path, batches: Sequence[Sequence[SampleRecord]]) -> Path:
    store = RunStore.create(tmp_path)
    store.write_run(RUN)
    for batch in batches:
        if len(batch) == 1:
            store.append(batch[0])  # as the bandwidth phase appends: one at a time
        else:
            store.append_many(batch)
    store.close()
    return store.dir


def test_iperf3_lines_a_part_covers_are_not_decoded(tmp_path: Path, decoded: list[str]) -> None:
    records: list[SampleRecord] = [
        HostRecord("a", CellStatus.OK),
        iperf("a", "b", 90.0),
        iperf("b", "a", 45.0, multi=True, streams=4),
    ]
    run = _written(tmp_path, [[r] for r in records])
    first = len(encode_record(records[0])) + 1
    assert [p.name for p in (run / "bandwidth").iterdir()] == [f"bw-{first:012d}.parquet"]
    stored = read_store(run, [])
    assert decoded == ["host"] and stored.others == (records[0],)
    assert stored.tests["kind"].to_pylist() == ["iperf3", "iperf3_multi"]
    pd.testing.assert_frame_equal(load_matrix(run), build_matrix(RUN, records))


def test_a_part_every_part_records_tests_and_one_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoded: list[str]
) -> None:
    monkeypatch.setattr(bandwidth, "PART_RECORDS", 2)
    tests = [iperf(a, b, 10.0) for a, b in (("a", "b"), ("b", "a"), ("a", "c"))]
    store = RunStore.create(tmp_path)
    for rec in tests:
        store.append(rec)
    assert len(list((store.dir / "bandwidth").iterdir())) == 1  # the third one waits
    store.close()
    assert len(list((store.dir / "bandwidth").iterdir())) == 2
    assert read_store(store.dir, []).tests.num_rows == 3 and decoded == []


def test_tests_a_crash_kept_from_their_part_are_decoded(tmp_path: Path, decoded: list[str]) -> None:
    run = _written(tmp_path, [[iperf("a", "b", 90.0)], [iperf("b", "a", 40.0)]])
    shutil.rmtree(run / "bandwidth")  # killed before close: the part was never written
    stored = read_store(run, [])
    assert decoded == ["iperf3", "iperf3"] and stored.tests.num_rows == 2


def test_a_part_that_cannot_be_written_is_one_warning_at_close(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path)
    (store.dir / "bandwidth").write_text("a file where the folder goes")
    warned: list[str] = []
    store.append(iperf("a", "b", 90.0), warn=warned.append)
    store.close(warn=warned.append)
    (message,) = warned
    assert (
        message.startswith(f"WARNING: {store.dir / 'bandwidth'}/bw-") and "nothing lost" in message
    )
    assert read_store(store.dir, []).tests.num_rows == 1


def test_a_part_naming_lines_that_are_no_tests_is_left_out(tmp_path: Path) -> None:
    run = _written(tmp_path, [[HostRecord("a", CellStatus.OK)], [iperf("a", "b", 90.0)]])
    bandwidth.write_part(run, [(0, iperf("b", "a", 1.0))])  # the host record's line
    at = len(encode_record(HostRecord("a", CellStatus.OK))) + 1  # an iperf3 line
    bandwidth.write_part(run, [(at, iperf("b", "a", 1.0, multi=True))])
    warned: list[str] = []
    stored = read_store(run, [], warn=warned.append)
    assert stored.tests["dst"].to_pylist() == ["b"] and len(warned) == 2
    assert "bw-000000000000.parquet: 1 of its records name no whole iperf3 line" in warned[0]
    assert "1 of its records name no whole iperf3_multi line" in warned[1]


def test_an_unreadable_part_is_left_out_and_its_tests_decoded(tmp_path: Path) -> None:
    run = _written(tmp_path, [[iperf("a", "b", 90.0)]])
    (part,) = (run / "bandwidth").iterdir()
    part.write_bytes(b"PAR1 not really")
    warned: list[str] = []
    assert read_store(run, [], warn=warned.append).tests.num_rows == 1
    assert len(warned) == 1 and warned[0].startswith(f"{part}: not a part of the bandwidth store")


def test_the_golden_run_with_parts_is_the_golden_run_without(tmp_path: Path) -> None:
    """Parts compacted from the golden run's lines: the frame is the records' frame."""
    run = tmp_path / "run"
    shutil.copytree(GOLDEN, run)
    want = build_matrix(read_run(GOLDEN), read_samples(GOLDEN).records)
    pd.testing.assert_frame_equal(load_matrix(run), want)
    offset, tests = 0, []
    for line in (run / "samples.jsonl").read_bytes().splitlines(keepends=True):
        rec = decode_record(line.decode(), "x")
        if isinstance(rec, IperfTestRecord):
            tests.append((offset, rec))
        offset += len(line)
    bandwidth.write_part(run, tests[:10])
    bandwidth.write_part(run, tests[10:])
    assert read_store(run, []).tests.num_rows == len(tests) == 42
    pd.testing.assert_frame_equal(load_matrix(run), want)


_HOSTS = st.sampled_from(["a", "b", "c", "j", "x"])
_STATUS = st.sampled_from(
    [CellStatus.OK, CellStatus.STALLED, CellStatus.BLOCKED, CellStatus.TIMEOUT]
)


@st.composite
def _tests(draw: st.DrawFn) -> IperfTestRecord:
    ran = draw(st.booleans())
    result = IperfResult(
        receiver_bps=draw(st.floats(0, 1e11)), sender_bps=1.0,
        retransmits=draw(st.none() | st.integers(0, 10**6)), max_snd_cwnd_bytes=None,
        mean_rtt_ms=draw(st.none() | st.floats(0, 1e3)), cpu_local_pct=None, cpu_remote_pct=None,
        cpu_bound=draw(st.booleans()), version=None, reverse=False,
        streams=draw(st.integers(1, 8)), duration_s=draw(st.floats(0.5, 30)), omit_s=1.0,
        bytes_received=0, sender_cc=draw(st.none() | st.sampled_from(["cubic", "bbr"])),
        receiver_cc=draw(st.none() | st.just("cubic")),
    )  # fmt: skip
    src, dst = draw(_HOSTS), draw(_HOSTS)
    kind = Iperf3MultiRecord if draw(st.booleans()) else Iperf3Record
    return kind(
        src=src, dst=dst, client=src, server=dst, reverse=False, status=draw(_STATUS),
        reason=draw(st.none() | st.just("why")), result=result if ran else None,
        network=draw(st.sampled_from(["default", "other"])),
    )  # fmt: skip


_IMPORTED = st.builds(
    ImportedRecord, _HOSTS, _HOSTS, st.just(CellStatus.OK), st.just("m.csv"), st.integers(1, 9),
    rtt_ms=st.just(1.0), bw_mbps=st.none() | st.floats(0, 1e5),
)  # fmt: skip
_PINGS = st.builds(ping, _HOSTS, _HOSTS, st.lists(st.none() | st.floats(0.1, 9), min_size=1))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stream=st.lists(st.one_of(_tests(), _tests(), _IMPORTED, _PINGS), max_size=14),
    batched=st.booleans(),
    crashed=st.booleans(),
)
def test_any_records_give_the_frame_whichever_way_they_are_read(
    tmp_path_factory: pytest.TempPathFactory,
    stream: list[SampleRecord],
    batched: bool,
    crashed: bool,
) -> None:
    """Cells measured again, tests without results, imported figures before and after tests,
    unknown hosts and networks: the store's rows (parts, or the JSONL when a crash left none)
    give the frame the records give."""
    tmp = tmp_path_factory.mktemp("run")
    batches = [stream] if batched and stream else [[r] for r in stream]
    run = _written(tmp, [b for b in batches if b])
    if crashed:
        shutil.rmtree(run / "bandwidth", ignore_errors=True)
    want = build_matrix(RUN, stream)
    pd.testing.assert_frame_equal(load_matrix(run), want)
    assert [r for r in read_samples(run).records if not isinstance(r, PingRecord)] == [
        r for r in stream if not isinstance(r, PingRecord)
    ]
