"""Named networks in the run's files and views: records and run.json round trips (old files
too), the long form's rows per network, and the preferred network everywhere one figure is read."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from probe.matrix.anchors import dump_anchors, parse_anchors
from probe.matrix.build import COLUMNS, build_matrix, preferred, status_grid, to_anchors, wide
from probe.model import CellStatus
from probe.networks import NetworkOrder
from probe.report import build_report
from probe.report.markdown import render
from probe.store.records import PingRecord, PingTrain, decode_record, encode_record
from probe.store.rundoc import InventoryRef, RunDoc, RunHost, RunOptionsDoc, decode_run, encode_run
from tests.cells import as_float
from tests.report.runs import typed, write_run

LAN = {"a": "10.0.0.1", "b": "10.0.0.2"}
WAN = {"a": "203.0.113.1", "b": "203.0.113.2", "c": "203.0.113.3"}
RUN = RunDoc(
    run_id="n1",
    probe_version="0",
    inventory=InventoryRef("inventory.yaml", "0" * 64),
    started_utc="2026-11-23T00:00:00Z",
    hosts=(
        RunHost("a", "10.0.0.1", region="eu", addresses={"lan": LAN["a"], "wan": WAN["a"]}),
        RunHost("b", "10.0.0.2", region="eu", addresses={"lan": LAN["b"], "wan": WAN["b"]}),
        RunHost("c", "203.0.113.3", region="us", addresses={"wan": WAN["c"]}),
        RunHost("d", "172.16.0.4", region="us", addresses={"vpn": "172.16.0.4"}),
    ),
    options=RunOptionsDoc(networks="all", bandwidth=False),
    networks=NetworkOrder(("lan", "wan")),
)


def ping(src: str, dst: str, network: str | None, rtt_ms: float) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "ping", "src": src, "dst": dst, "t": 1.0, "status": "ok", "reason": None,
        "argv": [], "exit_status": 0, "sent": 3, "received": 3, "duplicates": 0,
        "probes": [[1, rtt_ms], [2, rtt_ms], [3, rtt_ms]], "summary": None,
    }  # fmt: skip
    if network is not None:
        on = LAN if network == "lan" else WAN
        rec.update(network=network, address=on[dst])
    return rec


RECORDS = [
    ping("a", "b", "lan", 0.2), ping("a", "b", "wan", 9.0), ping("b", "a", "wan", 9.5),
    ping("a", "c", "wan", 80.0),
]  # fmt: skip


def test_a_ping_record_carries_its_network_and_address_and_old_ones_read_as_default() -> None:
    new = PingRecord("a", "b", CellStatus.OK, train=PingTrain(1, 1, 0, ((1, 0.5),)),
                     network="wan", address="203.0.113.2")  # fmt: skip
    line = encode_record(new)
    assert json.loads(line)["network"] == "wan" and decode_record(line, "x:1") == new
    old = {k: v for k, v in json.loads(line).items() if k not in ("network", "address")}
    decoded = decode_record(json.dumps(old), "x:1")
    assert isinstance(decoded, PingRecord)
    assert (decoded.network, decoded.address) == ("default", None)


def test_run_json_keeps_addresses_and_the_network_order_and_old_files_read_empty() -> None:
    assert decode_run(encode_run(RUN), "run.json") == RUN
    doc = json.loads(encode_run(RUN))
    assert doc["networks"] == {"order": ["lan", "wan"], "pairs": {}}
    assert doc["options"]["networks"] == "all"
    for key in ("networks",):
        del doc[key]
    for host in doc["hosts"]:
        del host["addresses"]
    old = decode_run(json.dumps(doc), "run.json")
    assert old.networks == NetworkOrder() and all(not h.addresses for h in old.hosts)
    plain = replace(RUN, options=RunOptionsDoc(), networks=NetworkOrder())
    assert "network" not in json.loads(encode_run(plain))["options"]  # defaults: not written


def test_the_long_form_has_a_row_per_network_the_preferred_first() -> None:
    frame = build_matrix(RUN, typed(RECORDS))
    assert list(frame.columns[:4]) == ["src", "dst", "network", "address"] == COLUMNS[:4]
    ab = frame[(frame["src"] == "a") & (frame["dst"] == "b")]
    assert list(ab["network"]) == ["lan", "wan"]
    assert list(ab["address"]) == ["10.0.0.2", "203.0.113.2"]
    assert list(ab["rtt_p50_ms"]) == [0.2, 9.0]
    ba = frame[(frame["src"] == "b") & (frame["dst"] == "a")]
    assert list(ba["status"]) == ["skipped", "ok"]  # b→a over lan: no record yet
    ad = frame[(frame["src"] == "a") & (frame["dst"] == "d")]
    assert list(ad["status"]) == ["not-measurable"] == list(ad["bw_status"])
    assert ad["network"].isna().all()
    assert "no network in common" in ad["reason"].iloc[0]
    assert len(preferred(frame)) == 12  # one row per ordered pair of 4 hosts


def test_grids_and_anchors_read_the_preferred_network() -> None:
    frame = build_matrix(RUN, typed(RECORDS))
    assert wide(frame, "rtt_p50_ms").loc["a", "b"] == 0.2  # lan, not wan's 9.0
    assert math.isnan(as_float(wide(frame, "rtt_p50_ms").loc["b", "a"]))
    assert status_grid(frame).loc["a", "d"] == "not-measurable"
    anchors = to_anchors(RUN, frame)
    pair = anchors.pair("a", "b")
    assert pair is not None and (pair.network, pair.address) == ("lan", "10.0.0.2")
    again = parse_anchors(dump_anchors(anchors))
    assert again.pair("a", "c") == anchors.pair("a", "c")
    c = again.pair("a", "c")
    assert c is not None and (c.network, c.address) == ("wan", "203.0.113.3")
    assert len(anchors.pairs) == 12


def test_a_run_from_before_networks_reads_as_network_default() -> None:
    run = replace(RUN, hosts=tuple(replace(h, addresses={}) for h in RUN.hosts),
                  options=RunOptionsDoc(bandwidth=False), networks=NetworkOrder())  # fmt: skip
    frame = build_matrix(run, typed([ping("a", "b", None, 0.3)]))
    ab = frame[(frame["src"] == "a") & (frame["dst"] == "b")]
    assert list(ab["network"]) == ["default"] and list(ab["address"]) == ["10.0.0.2"]
    assert list(ab["rtt_p50_ms"]) == [0.3]
    assert len(frame) == 12


def test_the_report_has_a_per_network_table_when_a_run_has_several(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "n1", replace(RUN, ended_utc="2026-11-23T00:01:00Z"), RECORDS)
    report = build_report(run_dir)
    assert [row[:3] for row in report.networks] == [("lan", "2", "1"), ("wan", "6", "3")]
    text = render(report)
    assert "## Per network" in text and "| lan " in text
    plain = tuple(replace(h, addresses={}) for h in RUN.hosts)
    one = write_run(tmp_path / "n2", replace(RUN, hosts=plain, networks=NetworkOrder()), [])
    assert build_report(one).networks == ()  # every pair over network default


def test_anchors_read_from_the_stored_columns_are_those_of_the_frame(tmp_path: Path) -> None:
    """``anchors_of`` reads a fresh matrix.parquet's columns without pandas: each pair's
    preferred row, as ``to_anchors`` over the frame keeps it (``--networks all``)."""
    from probe.matrix import stored

    run_dir = write_run(tmp_path / "n1", RUN, RECORDS)
    frame = stored.matrix_of(run_dir)  # rebuilt and stored, stamped
    assert frame.duplicated(["src", "dst"]).any()
    from_columns = stored.anchors_of(run_dir)
    from_frame = to_anchors(RUN, frame)
    assert from_columns == from_frame
    assert from_columns.pairs.pair("a", "b") == from_frame.pair("a", "b")
    ab = from_columns.pair("a", "b")
    assert ab is not None and ab.network == "lan"
    assert dump_anchors(replace(from_columns, samples={})) == dump_anchors(from_frame)
