"""``probe diff`` ignores changes inside the 95 % intervals: a one-probe spike, a lost probe of
20, a region median jumping between the clusters of a multi-modal region. Matrices from before
the interval columns are judged on thresholds alone, as before."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from probe.matrix.build import RTT_CONFIDENCE_COLUMNS, build_matrix
from probe.model import CellStatus
from probe.report.diff import Change, diff_runs, overlap, render_diff
from probe.store.records import HostRecord, PingRecord, PingTrain, SampleRecord
from probe.store.rundoc import InventoryRef, RunDoc, RunHost, RunOptionsDoc

Rtts = Callable[[str, str], list[float | None]]
EU = ("e1", "e2", "e3", "e4")


def _steady(base_ms: float, n: int = 20) -> list[float | None]:
    """n replies spread evenly over ±2 % of ``base_ms`` (deterministic)."""
    return [base_ms * (0.98 + 0.04 * i / (n - 1)) for i in range(n)]


def _frame(rtts: Rtts, hosts: tuple[str, ...] = EU, skip: frozenset[tuple[str, str]] = frozenset()
           ) -> pd.DataFrame:  # fmt: skip
    run = RunDoc(
        run_id="r", probe_version="0", inventory=InventoryRef("inventory.yaml", "0" * 64),
        started_utc="2026-11-30T00:00:00Z", options=RunOptionsDoc(bandwidth=False),
        hosts=tuple(RunHost(h, f"10.0.0.{i + 1}", region="eu") for i, h in enumerate(hosts)),
    )  # fmt: skip
    records: list[SampleRecord] = [HostRecord(h, CellStatus.OK) for h in hosts]
    for src in hosts:
        for dst in hosts:
            if src == dst or (src, dst) in skip:
                continue
            got = rtts(src, dst)
            train = PingTrain(
                sent=len(got), received=sum(r is not None for r in got), duplicates=0,
                probes=tuple((i + 1, r) for i, r in enumerate(got)),
            )  # fmt: skip
            status = CellStatus.OK if train.received else CellStatus.ALL_LOST
            records.append(PingRecord(src=src, dst=dst, status=status, train=train))
    return build_matrix(run, records)


def _lan(src: str, dst: str) -> list[float | None]:
    return _steady(10.0)


def test_intervals_overlap() -> None:
    assert overlap((1.0, 2.0), (2.0, 3.0)) and not overlap((1.0, 2.0), (2.5, 3.0))
    assert overlap((1.0, None), (50.0, 60.0)) and overlap((None, 2.0), (None, 1.0))
    assert not overlap((None, 2.0), (3.0, None))


def test_a_one_probe_spike_is_within_noise() -> None:
    def spiked(src: str, dst: str) -> list[float | None]:
        rtts = _steady(10.0)
        if (src, dst) == ("e1", "e2"):
            rtts[7] = 60.0  # one slow reply of 20: the p99 of 20 is nearly the maximum
        return rtts

    before, after = _frame(_lan), _frame(spiked)
    result = diff_runs(before, after)
    (pair,) = [p for p in result.pairs if (p.src, p.dst) == ("e1", "e2")]
    (p99,) = [c for c in pair.changes if c.kind == "rtt_p99"]
    assert p99.after is not None and p99.after > 50.0  # +400 %: past the threshold …
    assert p99.within_noise and not p99.regressed and pair.regressions == frozenset()
    assert pair.noise == {"rtt_p99"} and not result.failed()
    text = render_diff(result)
    assert "≈ within noise" in text and "1 changed within noise" in text
    # the same matrices without the interval columns: judged as before, a regression
    old_a, old_b = (
        before.drop(columns=RTT_CONFIDENCE_COLUMNS),
        after.drop(columns=RTT_CONFIDENCE_COLUMNS),
    )
    old = next(p for p in diff_runs(old_a, old_b).pairs if (p.src, p.dst) == ("e1", "e2"))
    assert old.regressions == {"rtt_p99"} and old.noise == frozenset()
    # one old matrix is enough to compute nothing
    assert diff_runs(old_a, after).failed() and diff_runs(before, old_b).failed()


def test_two_lost_probes_of_twenty_are_within_noise() -> None:
    def lossy(src: str, dst: str) -> list[float | None]:
        rtts = _steady(10.0)
        if (src, dst) == ("e1", "e2"):
            rtts[3] = rtts[9] = None  # 10 % of 20: Wilson [2.8, 30.1] holds 0 % … [0, 16.1]
        return rtts

    before, after = _frame(_lan), _frame(lossy)
    (loss,) = [c for c in _pair_changes(before, after, "e1", "e2") if c.kind == "loss"]
    assert (loss.before, loss.after) == (0.0, 10.0)
    assert loss.within_noise and not loss.regressed
    old_a = before.drop(columns=RTT_CONFIDENCE_COLUMNS)
    old_b = after.drop(columns=RTT_CONFIDENCE_COLUMNS)
    (old,) = [c for c in _pair_changes(old_a, old_b, "e1", "e2") if c.kind == "loss"]
    assert old.regressed


def test_a_real_shift_still_regresses() -> None:
    def slower(src: str, dst: str) -> list[float | None]:
        return _steady(20.0 if (src, dst) == ("e1", "e2") else 10.0)

    result = diff_runs(_frame(_lan), _frame(slower))
    assert [(p.src, p.dst, p.regressions) for p in result.regressed_pairs] == [
        ("e1", "e2", frozenset({"rtt_p50"}))  # p99 has no upper bound from 20 probes: within noise
    ]


def test_a_multi_modal_region_median_jumping_clusters_is_within_noise() -> None:
    # eu with a residential host e4: e*→e4 and e4→e* near 16 ms, the rest near 0.5 ms
    def mixed(src: str, dst: str) -> list[float | None]:
        return _steady(16.0 if "e4" in (src, dst) else 0.5)

    five = (*EU, "e5")  # e5 is a datacentre host too
    # 20 ordered pairs: 8 with e4 (16 ms), 12 without: the median is a 0.5 ms pair
    before = _frame(mixed, five)
    # e5's links to e1 … e3 were not measured this time: 14 pairs, 8 with e4, the median 16 ms
    gone = frozenset((a, b) for a in ("e1", "e2", "e3") for b in ("e5",)) | frozenset(
        (b, a) for a in ("e1", "e2", "e3") for b in ("e5",)
    )
    after = _frame(mixed, five, skip=gone)
    result = diff_runs(before, after)
    (eu,) = result.regions
    p50 = next(c for c in eu.changes if c.kind == "rtt_p50")
    assert p50.before is not None and p50.before < 1.0 and p50.after is not None
    assert p50.after > 8.0  # the median moved into the other cluster: past the threshold …
    assert p50.within_noise and eu.regressions == frozenset()  # … no eu link changed
    assert not any({"rtt_p50", "rtt_p99"} & p.regressions for p in result.pairs)
    old = diff_runs(before.drop(columns=RTT_CONFIDENCE_COLUMNS), after)
    assert old.regions[0].regressions == {"rtt_p50", "rtt_p99"}  # as before the intervals


def _pair_changes(a: pd.DataFrame, b: pd.DataFrame, src: str, dst: str) -> tuple[Change, ...]:
    return next(p for p in diff_runs(a, b).pairs if (p.src, p.dst) == (src, dst)).changes
