"""samples.jsonl records: one writer, one reader, old files still read, damage named by line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from probe.errors import StoreError
from probe.model import CellStatus
from probe.store.records import (
    HostRecord,
    Iperf3MultiRecord,
    Iperf3Record,
    PingFanoutRecord,
    PingLoadRecord,
    PingRecord,
    PingTrain,
    SampleRecord,
    TornMark,
    UnknownRecord,
    decode_record,
    encode_record,
    is_torn,
)
from probe.tools.iperf3 import parse_iperf3
from probe.tools.ping import PingSummary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "runs" / "20261123T090000Z" / "samples.jsonl"
IPERF = parse_iperf3(
    (FIXTURES / "iperf3" / "loopback" / "iperf3.12_tcp_forward_t2_O1.json").read_text()
)
TRAIN = PingTrain(
    sent=3, received=2, duplicates=0, probes=((1, 1.5), (2, None), (3, 2.25)),
    summary=PingSummary(1.5, 1.875, 2.25, 0.375), flavor="iputils",
    errors=("line 3: From 10.0.0.1 icmp_seq=2 Destination Host Unreachable",),
)  # fmt: skip
PING_ARGV = ("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2")
RECORDS: list[SampleRecord] = [
    HostRecord("a", CellStatus.OK, None, 1.0, 0.25, 0.5, {"ping": "iputils", "iperf3": None}),
    HostRecord("b", CellStatus.UNREACHABLE, "connect to 10.0.0.2:22: refused", 1.0),
    PingFanoutRecord("f1", "a", ("sh", "-c", "…", "sh", "3", "0.2", "2", "10.0.0.2"), 2.0, 0, 1.1),
    PingRecord("a", "b", CellStatus.OK, None, 2.5, PING_ARGV, 0, "f1", TRAIN),
    PingRecord("b", "a", CellStatus.UNREACHABLE, "source b: refused", 2.5),
    PingLoadRecord("a", "b", CellStatus.OK, None, 3.0, "a", PING_ARGV, 0, TRAIN),
    Iperf3Record("a", "b", "a", "b", False, CellStatus.OK, None, 4.0, ("iperf3",), 1, 3.2, IPERF),
    Iperf3Record("b", "a", "a", "b", True, CellStatus.BUSY, "busy after 5 attempts", 4.0),
    Iperf3MultiRecord("a", "b", "a", "b", False, CellStatus.OK, None, 5.0, ("iperf3",), 1, 3.3,
                      IPERF),
    Iperf3Record("b", "a", "a", "b", True, CellStatus.OK, None, 6.0, ("iperf3",), 1, 3.2,
                 replace(IPERF, sender_cc="cubic", receiver_cc="bbr"), authenticated=True,
                 server_bound=False),
]  # fmt: skip


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: type(r).__name__)
def test_what_is_written_reads_back_the_same(rec: SampleRecord) -> None:
    line = encode_record(rec)
    assert "\n" not in line
    assert decode_record(line, "samples.jsonl:1") == rec


def test_the_keys_probe_has_always_written_keep_their_names() -> None:
    """Keys are only ever added: a reader of an older probe still finds every key it read."""
    ping = json.loads(encode_record(RECORDS[3]))
    assert ping.keys() >= {"kind", "src", "dst", "t", "status", "reason", "argv", "exit_status",
                           "flavor", "sent", "received", "duplicates", "probes", "summary",
                           "errors"}  # fmt: skip
    assert ping["probes"] == [[1, 1.5], [2, None], [3, 2.25]]
    assert ping["summary"] == {"rtt_min_ms": 1.5, "rtt_avg_ms": 1.875, "rtt_max_ms": 2.25,
                               "rtt_mdev_ms": 0.375}  # fmt: skip
    iperf = json.loads(encode_record(RECORDS[6]))
    assert iperf.keys() >= {"kind", "src", "dst", "client", "server", "reverse", "status",
                            "reason", "argv", "attempts", "test_s", "result", "t"}  # fmt: skip
    assert iperf["result"]["receiver_bps"] == IPERF.receiver_bps
    host = json.loads(encode_record(RECORDS[0]))
    assert host.keys() >= {"kind", "host", "status", "reason", "connect_s", "command_s", "tools"}
    assert json.loads(encode_record(RECORDS[8]))["kind"] == "iperf3_multi"


def test_the_committed_old_run_decodes_and_keeps_its_meaning() -> None:
    """The golden run was written before typed records: every line reads, and writing the
    record again gives back every key and value it had (``bytes_received`` was a fraction)."""
    lines = GOLDEN.read_text().splitlines()
    kinds = set()
    for n, line in enumerate(lines, 1):
        rec = decode_record(line, f"samples.jsonl:{n}")
        assert rec is not None and not isinstance(rec, UnknownRecord)
        kinds.add(rec.kind)
        old, again = json.loads(line), json.loads(encode_record(rec))
        if isinstance(old.get("result"), dict):
            old["result"]["bytes_received"] = round(old["result"]["bytes_received"])
            # keys added since (``intervals``) may be new; every old one must come back
            again["result"] = {k: again["result"][k] for k in old["result"]}
        assert {k: again[k] for k in old} == old
    assert kinds == {"host", "ping", "iperf3"}


def test_keys_newer_than_a_file_read_as_null() -> None:
    old_ping = {"kind": "ping", "src": "a", "dst": "b", "status": "all-lost", "reason": "lost",
                "sent": 2, "received": 0, "probes": [[1, None], [2, None]]}  # fmt: skip
    rec = decode_record(json.dumps(old_ping), "x:1")
    assert isinstance(rec, PingRecord) and rec.argv == () and rec.fanout is None
    assert rec.train == PingTrain(2, 0, 0, ((1, None), (2, None)))
    old_load = {"kind": "ping_load", "src": "a", "dst": "b", "status": "timeout", "reason": "slow",
                "t": 1.0}  # fmt: skip
    assert decode_record(json.dumps(old_load), "x:1") == PingLoadRecord(
        "a", "b", CellStatus.TIMEOUT, "slow", 1.0
    )


def test_torn_unknown_and_damaged_lines() -> None:
    assert decode_record('{"kind":"ping","src":"a","d', "x:7") is None
    assert decode_record('{"kind":"traceroute","hops":[]}', "x:7") == UnknownRecord("traceroute")
    with pytest.raises(StoreError, match=r"^x:7: not a JSON record$"):
        decode_record("ping 10.0.0.1", "x:7")
    with pytest.raises(StoreError, match=r"^x:7: record without 'client'$"):
        decode_record('{"kind":"iperf3","src":"a","dst":"b","status":"busy"}', "x:7")
    with pytest.raises(StoreError, match=r"^x:7: 'argv' must hold strings$"):
        decode_record('{"kind":"ping","src":"a","dst":"b","status":"error","argv":[1]}', "x:7")


@pytest.mark.parametrize("seq", [-1, 2**31, 10**30])
def test_a_probe_seq_outside_int32_is_damage(seq: int) -> None:
    """The RTT samples sidecar stores seq as int32: a seq no ping sends is refused on reading."""
    doc = {"kind": "ping", "src": "a", "dst": "b", "status": "ok", "sent": 2, "received": 2,
           "probes": [[0, 1.0], [seq, 1.5]]}  # fmt: skip
    with pytest.raises(StoreError) as exc:
        decode_record(json.dumps(doc), "x:3")
    assert str(exc.value) == f"x:3: probe seq {seq} is outside 0..2147483647"
    doc["probes"] = [[0, 1.0], [2**31 - 1, 1.5]]
    assert decode_record(json.dumps(doc), "x:3") is not None


@pytest.mark.parametrize("bps", [-1.0, -9.4e8])
def test_a_negative_receiver_rate_is_damage(bps: float) -> None:
    doc = json.loads(encode_record(RECORDS[6]))
    doc["result"]["receiver_bps"] = bps
    with pytest.raises(StoreError) as exc:
        decode_record(json.dumps(doc), "samples.jsonl:51")
    assert str(exc.value) == (
        f"samples.jsonl:51: 'result.receiver_bps' must be a rate ≥ 0 bit/s, not {bps}"
    )


def test_a_torn_mark_reads_back_and_names_a_line() -> None:
    mark = TornMark(92, 1795424700.5)
    assert json.loads(encode_record(mark)) == {"kind": "torn", "line": 92, "t": 1795424700.5}
    assert decode_record(encode_record(mark), "x:93") == mark
    with pytest.raises(StoreError, match=r"^x:93: 'line' must be a line number ≥ 1, not 0$"):
        decode_record('{"kind":"torn","line":0}', "x:93")
    with pytest.raises(StoreError, match=r"^x:93: record without 'line'$"):
        decode_record('{"kind":"torn"}', "x:93")


@pytest.mark.parametrize(
    ("line", "torn"),
    [('{"kind":"ping","src":"a","d', True), ("{", True), ('{"kind":"host"}', False),
     ("ping 10.0.0.1", False), ("", False), ('  {"kind": "x", ', True)],
)  # fmt: skip
def test_is_torn_is_the_start_of_an_object_cut_short(line: str, torn: bool) -> None:
    assert is_torn(line) is torn


def test_an_iperf3_record_from_before_cc_and_auth_reads_them_as_unknown() -> None:
    doc = json.loads(encode_record(RECORDS[6]))
    del doc["authenticated"], doc["result"]["sender_cc"], doc["result"]["receiver_cc"]
    del doc["server_bound"]
    rec = decode_record(json.dumps(doc), "x:1")
    assert isinstance(rec, Iperf3Record) and rec.authenticated is None
    assert rec.server_bound is None
    assert rec.result is not None and (rec.result.sender_cc, rec.result.receiver_cc) == (None, None)
    again = json.loads(encode_record(RECORDS[9]))
    assert again["authenticated"] is True and again["server_bound"] is False
    assert (again["result"]["sender_cc"], again["result"]["receiver_cc"]) == ("cubic", "bbr")
