"""Inbound-restricted hosts in the matrix: RTT toward a host refusing ICMP is its own ping of the
source (``from_reverse``); a pair nothing can aim at is ``not-measurable``, never missing.

The matrix draws who could aim at whom again from run.json's hosts (``inbound``,
``iperf3_ports``) and ``options.iperf3_ports``, as it draws the ping plan.
"""

from __future__ import annotations

import json
import math
from typing import Any

from probe.matrix.anchors import dump_anchors, parse_anchors
from probe.matrix.build import MatrixBuilder, bandwidth_cells, build_matrix, to_anchors
from probe.matrix.unmeasured import unmeasured
from probe.model import INBOUND_NONE, CellStatus, Inbound, PortRange
from probe.store.records import HostRecord, PingRecord, PingTrain, SampleRecord
from probe.store.rundoc import InventoryRef, RunDoc, RunHost, RunOptionsDoc

ICMP_ONLY = Inbound(icmp=True, tcp=())
TCP_ONLY = Inbound(icmp=False, tcp=(PortRange(5000, 6000),))
#: a accepts everything; n is behind NAT; i answers ping only; t accepts TCP (its iperf3 ports)
HOSTS = (
    RunHost("a", "10.0.0.1"),
    RunHost("n", "203.0.113.1", inbound=INBOUND_NONE),
    RunHost("i", "10.0.0.3", inbound=ICMP_ONLY),
    RunHost("t", "10.0.0.4", inbound=TCP_ONLY),
)


def _run(**options: Any) -> RunDoc:
    return RunDoc(
        run_id="r1", probe_version="0", inventory=InventoryRef("inventory.yaml", "0" * 64),
        started_utc="2026-11-30T00:00:00Z", hosts=HOSTS, options=RunOptionsDoc(**options),
    )  # fmt: skip


def _ping(src: str, dst: str, rtts: list[float]) -> PingRecord:
    train = PingTrain(sent=len(rtts), received=len(rtts), duplicates=0,
                      probes=tuple((i + 1, r) for i, r in enumerate(rtts)))  # fmt: skip
    return PingRecord(src=src, dst=dst, status=CellStatus.OK, train=train)


RECORDS: list[SampleRecord] = [
    *(HostRecord(h.name, CellStatus.OK) for h in HOSTS),
    _ping("n", "a", [10.0, 12.0]),
    _ping("i", "a", [1.0, 1.0]),
    _ping("t", "a", [2.0, 2.0]),
    _ping("n", "i", [20.0, 22.0]),
    # a → i, a → t … and i → t: measured or not, they do not matter here
]


def _cells(
    run: RunDoc | None = None, records: list[SampleRecord] = RECORDS
) -> dict[tuple[str, str], dict[Any, Any]]:
    frame = build_matrix(run or _run(), records)
    assert frame["from_reverse"].dtype == bool
    return {(row["src"], row["dst"]): row for row in frame.to_dict("records")}


def test_rtt_toward_a_host_refusing_icmp_is_its_own_ping_marked_from_reverse() -> None:
    cells = _cells()
    a_n, n_a = cells["a", "n"], cells["n", "a"]
    assert a_n["status"] == "ok" and a_n["from_reverse"] is True
    assert a_n["reason"] == "from the reverse direction: n accepts no inbound ICMP"
    assert a_n["rtt_p50_ms"] == n_a["rtt_p50_ms"] == 11.0
    assert (a_n["sent"], a_n["received"], a_n["loss_pct"]) == (2, 2, 0.0)
    assert n_a["from_reverse"] is False and not isinstance(n_a["reason"], str)
    assert cells["i", "n"]["from_reverse"] is True and cells["i", "n"]["rtt_max_ms"] == 22.0
    assert cells["a", "t"]["from_reverse"] is True  # t serves TCP but refuses ICMP


def test_neither_end_accepting_icmp_is_not_measurable_naming_both() -> None:
    cells = _cells()
    for src, dst in (("t", "n"), ("n", "t")):
        cell = cells[src, dst]
        assert cell["status"] == CellStatus.NOT_MEASURABLE and cell["from_reverse"] is False
        assert cell["reason"] == (
            f"neither {src} nor {dst} accepts inbound ICMP: neither can ping the other"
        )
        assert math.isnan(cell["rtt_p50_ms"])


def test_a_copy_of_a_reverse_not_measured_yet_is_missing_too() -> None:
    """``--resume`` measures n → a, which fills a → n as well: both count as missing."""
    records = [r for r in RECORDS if not (isinstance(r, PingRecord) and r.src == "n")]
    cells = _cells(records=records)
    assert cells["a", "n"]["status"] == cells["n", "a"]["status"] == "skipped"
    assert cells["a", "n"]["reason"] == "not measured" and cells["a", "n"]["from_reverse"]


def test_a_failed_reverse_keeps_its_status_and_says_both_whys() -> None:
    records = [*RECORDS, HostRecord("n", CellStatus.UNREACHABLE, "connection refused")]
    records = [r for r in records if not (isinstance(r, PingRecord) and r.src == "n")]
    cell = _cells(records=records)["a", "n"]
    assert cell["status"] == "unreachable" and cell["from_reverse"]
    assert cell["reason"] == (
        "from the reverse direction: n accepts no inbound ICMP; source n: connection refused"
    )


def test_bandwidth_no_end_of_which_can_serve_is_not_measurable_and_not_planned() -> None:
    """n (NAT) and i (no TCP) cannot serve: their pair has no test; with a it is a's to serve."""
    run = _run()
    planned = bandwidth_cells(run)
    assert ("n", "i") not in planned and ("i", "n") not in planned
    assert {("a", "n"), ("n", "a"), ("n", "t"), ("i", "t")} <= planned
    cells = _cells(run)
    for cell in (cells["n", "i"], cells["i", "n"]):
        assert cell["bw_status"] == CellStatus.NOT_MEASURABLE
        assert cell["bw_reason"] == (
            "neither n nor i can be the iperf3 server: n accepts no inbound TCP; "
            "i accepts no inbound TCP"
        )
    assert cells["a", "n"]["bw_status"] == "skipped"  # planned, no record yet: missing


def test_the_runs_iperf3_ports_decide_who_can_serve() -> None:
    """t accepts TCP on 5000-6000: with the run's ports elsewhere it cannot serve."""
    planned = bandwidth_cells(_run(iperf3_ports="7000-7063"))
    assert ("i", "t") not in planned and ("a", "t") in planned  # a serves instead
    assert _cells(_run(iperf3_ports="7000-7063"))["i", "t"]["bw_reason"] == (
        "neither i nor t can be the iperf3 server: i accepts no inbound TCP; "
        "t accepts inbound TCP on 5000-6000, not on its iperf3 ports 7000-7063"
    )


def test_not_measurable_cells_are_never_counted_missing() -> None:
    run = _run()
    frame = build_matrix(run, RECORDS)
    counts = unmeasured(run, frame)
    assert counts.rtt_cells == 12 - 2  # t ↔ n
    assert counts.bw_cells == 12 - 2  # n ↔ i
    # a→i, a→t, i→t (from_reverse: t→i), t→i … are missing; n → i, n → a are not
    assert counts.rtt == int((frame["status"] == "skipped").sum())


def test_anchors_mark_a_reverse_rtt_and_carry_the_reverse_samples() -> None:
    """a → n's RTT is n's ping of a: anchors say so (``from_reverse: true``, written only then)
    and hold n → a's samples, so calc's Monte-Carlo has them; files without the key read false."""
    run = _run()
    builder = MatrixBuilder(run)
    builder.add_all(RECORDS)
    anchors = to_anchors(run, builder.frame(), builder.samples())
    a_n, n_a = anchors.pair("a", "n"), anchors.pair("n", "a")
    assert a_n is not None and n_a is not None
    a_n_rtts, n_a_rtts = anchors.rtt_samples(a_n), anchors.rtt_samples(n_a)
    assert a_n_rtts is not None and n_a_rtts is not None
    assert a_n.from_reverse and a_n_rtts.rtt_ms.tolist() == n_a_rtts.rtt_ms.tolist() == [10, 12]
    assert not n_a.from_reverse
    assert parse_anchors(dump_anchors(anchors)) == anchors
    doc = json.loads(dump_anchors(anchors))
    marked = {(p["src"], p["dst"]) for p in doc["pairs"] if "from_reverse" in p}
    assert marked == {(p.src, p.dst) for p in anchors.pairs if p.from_reverse}
    assert all(p["from_reverse"] is True for p in doc["pairs"] if "from_reverse" in p)
    for p in doc["pairs"]:
        p.pop("from_reverse", None)
    assert not any(p.from_reverse for p in parse_anchors(json.dumps(doc)).pairs)
