"""A sampled ping plan in the matrix: the pairs it left out are ``not-planned``, never failures.

The run's plan is run.json's ``options.ping_pairs``; the matrix draws it again (seeded) from
run.json's hosts, so the pairs it left out need no record in samples.jsonl.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from probe.errors import StoreError
from probe.matrix.build import build_matrix
from probe.model import CellStatus
from probe.store.records import HostRecord, PingRecord, PingTrain, SampleRecord
from probe.store.rundoc import InventoryRef, RunDoc, RunHost, RunOptionsDoc

HOSTS = (
    RunHost("a", "10.0.0.1", region="eu"),
    RunHost("b", "10.0.0.2", region="eu"),
    RunHost("c", "10.0.0.3", region="us"),
)


def _run(ping_pairs: str) -> RunDoc:
    return RunDoc(
        run_id="r1", probe_version="0", inventory=InventoryRef("inventory.yaml", "0" * 64),
        started_utc="2026-11-23T00:00:00Z", hosts=HOSTS,
        options=RunOptionsDoc(ping_pairs=ping_pairs),
    )  # fmt: skip


def _ping(src: str, dst: str, rtts: list[float | None]) -> PingRecord:
    got = [r for r in rtts if r is not None]
    train = PingTrain(sent=len(rtts), received=len(got), duplicates=0,
                      probes=tuple((i + 1, r) for i, r in enumerate(rtts)))  # fmt: skip
    status = CellStatus.OK if got else CellStatus.ALL_LOST
    return PingRecord(src=src, dst=dst, status=status, train=train)


#: c is down; a ↔ b measured; a → c has a record from an earlier (full-mesh) attempt
RECORDS: list[SampleRecord] = [
    HostRecord("a", CellStatus.OK),
    HostRecord("b", CellStatus.OK),
    HostRecord("c", CellStatus.UNREACHABLE, "connection refused"),
    _ping("a", "b", [1.0, 2.0]),
    _ping("b", "a", [1.0, 1.0]),
    _ping("a", "c", [None, None]),
]


def _cells(
    ping_pairs: str, records: list[SampleRecord] = RECORDS
) -> dict[tuple[str, str], dict[Any, Any]]:
    frame = build_matrix(_run(ping_pairs), records)
    return {(row["src"], row["dst"]): row for row in frame.to_dict("records")}


def test_pairs_the_plan_left_out_are_not_planned_unless_a_record_says_more() -> None:
    """``intra-region`` plans a ↔ b only. c → a was never going to be pinged: not-planned, not
    unreachable, though c is down; a → c has a record, and a record always wins."""
    cells = _cells("intra-region")
    for pair in (("c", "a"), ("c", "b"), ("b", "c")):
        assert cells[pair]["status"] == CellStatus.NOT_PLANNED, pair
        assert cells[pair]["reason"] == "not in the intra-region plan"
        assert math.isnan(cells[pair]["rtt_p50_ms"]) and math.isnan(cells[pair]["loss_pct"])
    assert cells["c", "a"]["bw_status"] == "unreachable"  # bandwidth has a plan of its own
    assert cells["a", "c"]["status"] == "all-lost"
    assert cells["a", "b"]["status"] == cells["b", "a"]["status"] == "ok"


def test_the_full_mesh_has_no_not_planned_cell() -> None:
    cells = _cells("all")
    assert cells["c", "a"]["status"] == cells["b", "c"]["status"] == "unreachable"
    assert "not-planned" not in {row["status"] for row in cells.values()}


def test_a_sample_plan_is_drawn_again_from_run_json() -> None:
    """sample:1 over eu {a, b} and us {c}: eu's mesh, c and eu's representative both ways; the
    other eu host and c, neither way."""
    cells = _cells("sample:1", records=[])
    unplanned = {pair for pair, row in cells.items() if row["status"] == "not-planned"}
    (other,) = {src for src, dst in unplanned if dst == "c"}
    assert unplanned == {(other, "c"), ("c", other)}
    assert {row["reason"] for pair, row in cells.items() if pair in unplanned} == {
        "not in the sample:1 plan"
    }


def test_a_damaged_ping_plan_in_run_json_is_one_line() -> None:
    with pytest.raises(StoreError, match=r"^run.json: 'options.ping_pairs': ping pairs 'sample:x'"):
        build_matrix(_run("sample:x"), RECORDS)


def test_bandwidth_cells_outside_the_pairs_plan_are_not_planned() -> None:
    """``--pairs intra-region`` plans a↔b only: a→c and the others have no test by design, which
    is not a failure and not "not measured" either; a planned test without a record still is."""
    run = RunDoc(
        run_id="r1", probe_version="0", inventory=InventoryRef("inventory.yaml", "0" * 64),
        started_utc="2026-11-23T00:00:00Z", hosts=HOSTS,
        options=RunOptionsDoc(pairs="intra-region"),
    )  # fmt: skip
    frame = build_matrix(run, RECORDS)
    cells = {(row["src"], row["dst"]): row for row in frame.to_dict("records")}
    for key in [("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")]:
        assert cells[key]["bw_status"] == CellStatus.NOT_PLANNED
        assert cells[key]["bw_reason"] == "not in the --pairs intra-region plan"
    assert cells["a", "b"]["bw_status"] == CellStatus.SKIPPED  # planned, no record yet
    off = build_matrix(
        RunDoc(
            run_id="r1", probe_version="0", inventory=InventoryRef("inventory.yaml", "0" * 64),
            started_utc="2026-11-23T00:00:00Z", hosts=HOSTS,
            options=RunOptionsDoc(bandwidth=False),
        ),
        RECORDS,
    )  # fmt: skip
    assert set(off.bw_status) == {CellStatus.NOT_PLANNED}
    assert set(off.bw_reason) == {"no bandwidth tests in this run (--no-bandwidth)"}
