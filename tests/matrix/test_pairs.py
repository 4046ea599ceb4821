"""The columnar pairs: every vectorised reading equals the per-pair one it replaced.

The oracles below are the per-pair code probe had before ``PairTable`` (a dict per pair through
``json.dumps``, ``statistics.median`` per region, a sort per spread), kept here only as oracles.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Sequence

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.matrix.anchors import Anchors, HostInfo, dump_anchors, pairs_text, parse_anchors
from probe.matrix.build import pair_table, to_anchors
from probe.matrix.pairs import Bandwidth, PairAnchor, PairTable, RttAnchor
from probe.matrix.regions import p50_spreads, roll_up, spread
from probe.model import CellStatus
from probe.store.rundoc import RunDoc
from tests.matrix.test_build import RUN, records

HOSTS = ("a-0", "a-1", "b-0", "b-é", 'c-"q"')
TEXT = st.one_of(st.none(), st.text(max_size=6))
FIGURE = st.one_of(
    st.none(),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e300, 0.1, 1e16]),
)


@st.composite
def pairs(draw: st.DrawFn) -> PairAnchor:
    src, dst = draw(st.sampled_from(HOSTS)), draw(st.sampled_from(HOSTS))
    status = draw(st.sampled_from(list(CellStatus)))
    has_rtt = status is CellStatus.OK or draw(st.integers(0, 9)) == 0
    figures = st.floats(0.0, 1e4, allow_nan=False)
    rtt = RttAnchor(*(draw(figures) for _ in range(6))) if has_rtt else None
    sent = draw(st.integers(0, 500))
    return PairAnchor(
        src=src,
        dst=dst,
        src_region=src[0],
        dst_region=draw(st.sampled_from([dst[0], "z"])),
        status=status,
        reason=draw(TEXT),
        rtt=rtt,
        rtt_mdev_ms=draw(FIGURE),
        ipdv_ms=draw(FIGURE),
        pdv_p99_ms=draw(FIGURE),
        loss_pct=draw(FIGURE),
        sent=sent,
        received=draw(st.integers(0, sent)),
        bw=Bandwidth(draw(FIGURE), draw(FIGURE)),
        bw_status=draw(st.one_of(st.none(), st.sampled_from([s.value for s in CellStatus]))),
        bw_reason=draw(TEXT),
        network=draw(TEXT),
        address=draw(TEXT),
        from_reverse=draw(st.booleans()),
        sender_cc=draw(st.one_of(st.none(), st.sampled_from(["bbr", "cubic", ""]))),
        receiver_cc=draw(st.one_of(st.none(), st.sampled_from(["bbr", "cubic"]))),
    )


RUNS = st.lists(pairs(), max_size=20)
#: Each example draws ~20 fields per pair: slow to generate on a busy machine, not a fault.
PROPERTY = settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- oracles


def oracle_pair_dict(p: PairAnchor) -> dict[str, object]:
    r = p.rtt
    out: dict[str, object] = {
        "src": p.src, "dst": p.dst, "src_region": p.src_region, "dst_region": p.dst_region,
        "status": p.status.value, "reason": p.reason,
        "rtt_ms": None if r is None else {"min": r.min_ms, "mean": r.mean_ms, "p50": r.p50_ms,
                                          "p90": r.p90_ms, "p99": r.p99_ms, "max": r.max_ms},
        "rtt_mdev_ms": p.rtt_mdev_ms, "ipdv_ms": p.ipdv_ms, "pdv_p99_ms": p.pdv_p99_ms,
        "loss_pct": p.loss_pct, "sent": p.sent, "received": p.received,
        "bw_mbps": {"forward": p.bw.forward_mbps, "reverse": p.bw.reverse_mbps},
        "bw_status": p.bw_status, "bw_reason": p.bw_reason,
        "network": p.network, "address": p.address,
    }  # fmt: skip
    if p.from_reverse:
        out["from_reverse"] = True
    for key, cc in (("sender_cc", p.sender_cc), ("receiver_cc", p.receiver_cc)):
        if cc is not None:
            out[key] = cc
    return out


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def oracle_roll_up(ps: Sequence[PairAnchor]) -> list[tuple[object, ...]]:
    groups: dict[tuple[str, str], list[PairAnchor]] = {}
    for p in ps:
        groups.setdefault((p.src_region, p.dst_region), []).append(p)
    rows: list[tuple[object, ...]] = []
    for (src, dst), group in sorted(groups.items()):
        ok = [p.rtt for p in group if p.rtt is not None and p.ok]
        ipdv = [p.ipdv_ms for p in group if p.ipdv_ms is not None and p.ok]
        fwd = [p.bw.forward_mbps for p in group if p.bw.forward_mbps is not None]
        rev = [p.bw.reverse_mbps for p in group if p.bw.reverse_mbps is not None]
        sent, received = sum(p.sent for p in group), sum(p.received for p in group)
        rtt = (
            tuple(statistics.median(getattr(r, k) for r in ok)
                  for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"))
            if ok else None
        )  # fmt: skip
        rows.append((
            src, dst, len(group), len(ok), rtt, _median(ipdv),
            100.0 * (sent - received) / sent if sent else None, _median(fwd), _median(rev),
            sum(1 for p in group if p.sent), len(ipdv), len(fwd), len(rev), sent, received,
        ))  # fmt: skip
    return rows


def _row(r: object) -> tuple[object, ...]:
    from probe.matrix.anchors import RegionAnchor

    assert isinstance(r, RegionAnchor)
    rtt = None if r.rtt is None else (r.rtt.p50_ms, r.rtt.p90_ms, r.rtt.p99_ms, r.rtt.mean_ms)
    return (
        r.src_region, r.dst_region, r.pairs, r.pairs_ok, rtt, r.ipdv_ms, r.loss_pct,
        r.bw.forward_mbps, r.bw.reverse_mbps, r.pairs_probed, r.pairs_ipdv, r.pairs_bw_forward,
        r.pairs_bw_reverse, r.sent, r.received,
    )  # fmt: skip


def oracle_spread(values: list[float]) -> tuple[float, float, int, bool] | None:
    if not values:
        return None
    ranked = sorted(values)
    split = False
    if len(ranked) >= 2:
        i = max(range(len(ranked) - 1), key=lambda k: ranked[k + 1] - ranked[k])
        gap = ranked[i + 1] - ranked[i]
        widths = (ranked[i] - ranked[0], ranked[-1] - ranked[i + 1])
        split = gap >= 1.0 and gap >= 0.1 * ranked[i + 1] and gap > 2 * max(widths)
    return ranked[0], ranked[-1], len(ranked), split


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(RUNS)
def test_the_table_gives_back_every_pair_as_it_was(ps: list[PairAnchor]) -> None:
    table = PairTable.of(ps)
    assert list(table) == ps
    assert len(table) == len(ps)
    assert [table[i] for i in range(-len(ps), 0)] == ps
    assert table.take(np.arange(len(ps))[::-1]) == PairTable.of(ps[::-1])
    last = {(p.src, p.dst): p for p in ps}
    for src in (*HOSTS, "nobody"):
        for dst in HOSTS:
            assert table.pair(src, dst) == last.get((src, dst))
    ok = [p for p in ps if p.ok]
    assert table.hosts_of(table.ok) == {p.src for p in ok} | {p.dst for p in ok}
    assert table.same_region().tolist() == [p.src_region == p.dst_region for p in ps]


@PROPERTY
@given(RUNS)
def test_pairs_text_is_what_json_dumps_wrote_for_each_pair(ps: list[PairAnchor]) -> None:
    text = ",\n  ".join(json.dumps(oracle_pair_dict(p), allow_nan=False) for p in ps)
    assert pairs_text(PairTable.of(ps)) == text


@PROPERTY
@given(RUNS)
def test_the_anchors_text_reads_back_as_the_same_pairs(ps: list[PairAnchor]) -> None:
    hosts = tuple(HostInfo(h, h[0]) for h in HOSTS)
    a = Anchors("r", "t", "v", hosts, PairTable.of(ps), roll_up(ps))
    back = parse_anchors(dump_anchors(a))
    assert back == a
    assert dump_anchors(dataclasses.replace(back, samples={})) == dump_anchors(a)


@PROPERTY
@given(RUNS)
def test_the_roll_up_is_the_per_pair_medians_exactly(ps: list[PairAnchor]) -> None:
    assert [_row(r) for r in roll_up(PairTable.of(ps))] == oracle_roll_up(ps)


@PROPERTY
@given(RUNS)
def test_p50_spreads_are_the_per_pair_ones(ps: list[PairAnchor]) -> None:
    values: dict[tuple[str, str], list[float]] = {}
    for p in ps:
        if p.rtt is not None and p.ok:
            values.setdefault((p.src_region, p.dst_region), []).append(p.rtt.p50_ms)
    got = p50_spreads(PairTable.of(ps))
    assert list(got) == list(values)
    for key, s in got.items():
        assert (s.low_ms, s.high_ms, s.pairs, s.multimodal) == oracle_spread(values[key])


@settings(max_examples=300)
@given(st.lists(st.floats(0.0, 100.0, allow_nan=False), max_size=30))
def test_spread_is_the_per_value_one(values: list[float]) -> None:
    s = spread(values)
    expected = oracle_spread(values)
    assert (None if s is None else (s.low_ms, s.high_ms, s.pairs, s.multimodal)) == expected


def test_a_two_cluster_region_is_still_multimodal() -> None:
    s = spread([0.5, 0.6, 16.0, 16.2])
    assert s is not None and s.multimodal
    one = spread([0.4, 0.8, 1.2])
    assert one is not None and not one.multimodal


# --------------------------------------------------------------------------- from the matrix


def _oracle_from_frame(frame: pd.DataFrame) -> list[PairAnchor]:
    """The matrix rows one by one, as probe read them before the table."""

    def val(v: object) -> object:
        return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v

    out = []
    for row in frame.drop_duplicates(["src", "dst"]).to_dict("records"):
        g: dict[str, object] = {str(k): val(v) for k, v in row.items()}
        status = CellStatus(str(g["status"]))

        def num(k: str, g: dict[str, object] = g) -> float | None:
            v = g.get(k)
            return None if v is None else float(v)  # type: ignore[arg-type]

        def text(k: str, g: dict[str, object] = g) -> str | None:
            v = g.get(k)
            return v if isinstance(v, str) else None

        rtt_keys = ("rtt_min_ms", "rtt_mean_ms", "rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms")
        out.append(
            PairAnchor(
                str(g["src"]), str(g["dst"]), str(g["src_region"]), str(g["dst_region"]), status,
                text("reason"),
                RttAnchor(*(float(row[k]) for k in (*rtt_keys, "rtt_max_ms")))
                if status is CellStatus.OK else None,
                num("rtt_mdev_ms"), num("ipdv_ms"), num("pdv_p99_ms"), num("loss_pct"),
                int(g["sent"] or 0), int(g["received"] or 0),  # type: ignore[call-overload]
                Bandwidth(num("bw_fwd_mbps"), num("bw_rev_mbps")), text("bw_status"),
                text("bw_reason"), text("network"), text("address"), bool(g["from_reverse"]),
                text("sender_cc"), text("receiver_cc"),
            )
        )  # fmt: skip
    return out


def test_the_table_of_a_matrix_is_its_rows_one_by_one() -> None:
    from probe.matrix.build import build_matrix

    run: RunDoc = RUN
    frame = build_matrix(run, records())
    assert list(pair_table(frame)) == _oracle_from_frame(frame)
    anchors = to_anchors(run, frame)
    assert anchors.regions == roll_up(_oracle_from_frame(frame))
    # a status the matrix holds as text, whatever its dtype, reads the same
    as_category = frame.assign(status=frame["status"].astype("category"))
    assert pair_table(as_category) == pair_table(frame)


def test_a_matrix_without_cc_columns_reads_them_as_unknown() -> None:
    from probe.matrix.build import build_matrix

    frame = build_matrix(RUN, records()).drop(columns=["sender_cc", "receiver_cc"])
    assert all(p.sender_cc is None and p.receiver_cc is None for p in pair_table(frame))


def test_an_ok_pair_keeps_its_figures_and_others_none() -> None:
    p = PairAnchor("a", "b", "x", "y", CellStatus.OK, rtt=RttAnchor(1, 2, 3, 4, 5, 6))
    q = dataclasses.replace(p, status=CellStatus.TIMEOUT, rtt=None, reason="t")
    t = PairTable.of([p, q])
    assert t.rtt("p50").tolist()[0] == 3.0 and np.isnan(t.rtt("p50")[1])
    assert t.region_counts(np.array([True, True])) == {("x", "y"): 2}
