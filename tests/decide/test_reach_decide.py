"""calc and groups on a fleet with hosts behind NAT, from the matrix probe builds of its samples.

n and m accept nothing (``nat: true``): a → n's RTT is n's own ping of a (``from_reverse``, the
same round trip: used as measured, its samples included), and n ↔ m is ``not-measurable``: never
a link to place stages on, never a good pair, a reason where a figure needs it.
"""

from __future__ import annotations

from probe.decide.calc import calc
from probe.decide.groups import group_run
from probe.decide.options import CalcOptions, Draws, Limits, PipelineOptions, SpecOptions
from probe.matrix.anchors import Anchors
from probe.matrix.build import MatrixBuilder, bandwidth_cells, to_anchors
from probe.model import INBOUND_ALL, INBOUND_NONE
from probe.store.rundoc import InventoryRef, RunDoc, RunHost
from tests.report.runs import iperf3_record, ping_record, typed

NAT = ("n", "m")
HOSTS = tuple(
    RunHost(name, f"10.0.0.{i + 1}", inbound=INBOUND_NONE if name in NAT else INBOUND_ALL)
    for i, name in enumerate(("a", "b", "n", "m"))
)
#: RTT of each pinged pair (every host pings a and b, the hosts that accept ICMP)
RTT_MS = {"a": 2.0, "b": 3.0}


def _anchors() -> Anchors:
    run = RunDoc(
        run_id="nat", probe_version="0", inventory=InventoryRef("inventory.yaml", "0" * 64),
        started_utc="2026-11-30T00:00:00Z", hosts=HOSTS,
    )  # fmt: skip
    pings = [
        ping_record(s.name, d, 1.0, [RTT_MS[d] + 0.1 * (i % 5) for i in range(20)])
        for s in HOSTS
        for d in RTT_MS
        if s.name != d
    ]
    tests = [iperf3_record(s, d, 2.0, 1e9, None) for s, d in sorted(bandwidth_cells(run))]
    builder = MatrixBuilder(run)
    builder.add_all(typed(pings + tests))
    return to_anchors(run, builder.frame(), builder.samples())


def test_calc_uses_reverse_rtts_as_measured_and_never_places_on_a_not_measurable_link() -> None:
    anchors = _anchors()
    a_n = anchors.pair("a", "n")
    assert a_n is not None and a_n.from_reverse and a_n.rtt is not None
    res = calc(anchors, CalcOptions(path=("a", "n"), draws=Draws(trials=50)))
    assert res.decode is not None and res.decode.hops[0].rtt_p50_ms == a_n.rtt.p50_ms
    assert res.decode.tail is not None  # the reverse cell's samples feed the Monte-Carlo
    placed = calc(anchors, CalcOptions(pipeline=PipelineOptions(stages=4), draws=Draws(0)))
    assert set(placed.path) == {"a", "b", "n", "m"}
    hops = set(zip(placed.path, placed.path[1:], strict=False))
    assert not hops & {("n", "m"), ("m", "n")}, placed.path
    spec = calc(
        anchors,
        CalcOptions(
            path=("a", "n", "m"),
            scenarios=frozenset({"spec"}),
            spec=SpecOptions(3.0, 40.0, 30.0, proposers=("n", "a"), verifiers=("m",)),
        ),
    )
    assert spec.spec is not None and [r.proposer for r in spec.spec.rows] == ["a"]
    (why,) = spec.spec_skipped
    assert why.startswith("no RTT for hop n→m (n→m not-measurable: ") and "m→n" in why


def test_groups_count_a_reverse_rtt_as_good_and_a_not_measurable_pair_never() -> None:
    grouping = group_run(_anchors(), Limits(10.0, 1e8), PipelineOptions(stages=2))
    # n and m are alike (both behind NAT): the largest group takes one of them with a and b, the
    # other has no good link to it (not-measurable both ways) and stays apart
    first, second = (set(g.members) for g in grouping.groups)
    assert first - {"n", "m"} == {"a", "b"} and len(first) == 3 and second == {"n", "m"} - first
    assert grouping.groups[0].max_rtt_ms == 3.2  # a ↔ b and b ↔ the NAT host (its own pings)
