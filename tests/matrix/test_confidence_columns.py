"""The matrix's confidence columns: interval bounds beside each loss / p50 / p99, the few-samples
flag of p99, and bandwidth tests too short for their path's RTT."""

from __future__ import annotations

import math
import random
from typing import Any

import pandas as pd

from probe.matrix.build import COLUMNS, build_matrix
from probe.stats import rtt_confidence, rtt_stats
from probe.tools.ping import PingProbe
from tests.matrix.test_reach_cells import RECORDS, _run
from tests.report.runs import lab8_records, run_doc, typed


def _lab8(durations: dict[tuple[str, str], float] | None = None) -> pd.DataFrame:
    names, records = lab8_records(random.Random(8))
    for rec in records:
        if (
            rec["kind"] == "iperf3"
            and rec["result"]
            and (rec["src"], rec["dst"]) in (durations or {})
        ):
            rec["result"]["duration_s"] = (durations or {})[rec["src"], rec["dst"]]
    return build_matrix(run_doc(names, "r", records[-1]["t"] + 1), typed(records))


def _row(frame: pd.DataFrame, src: str, dst: str) -> dict[str, Any]:
    rows = frame[(frame.src == src) & (frame.dst == dst)].to_dict("records")
    return {str(k): v for k, v in rows[0].items()}


def test_each_ok_cell_has_its_intervals() -> None:
    frame = _lab8()
    assert frame["p99_few_samples"].dtype == "boolean"
    assert frame["bw_short_for_rtt"].dtype == "boolean"
    ok = frame[frame.status == "ok"]
    assert (ok.loss_lo_pct <= ok.loss_pct).all() and (ok.loss_pct <= ok.loss_hi_pct).all()
    assert (ok.rtt_p50_lo_ms <= ok.rtt_p50_ms).all() and (ok.rtt_p50_ms <= ok.rtt_p50_hi_ms).all()
    assert (ok.rtt_p99_lo_ms <= ok.rtt_p99_ms).all()
    assert ok.rtt_p99_hi_ms.isna().all()  # 20 probes cannot bound a p99 from above
    assert ok.p99_few_samples.all()
    lossy = _row(frame, "us1", "ap1")  # 2 of 20 lost
    assert lossy["loss_pct"] == 10.0
    assert round(lossy["loss_lo_pct"], 1) == 2.8 and round(lossy["loss_hi_pct"], 1) == 30.1


def test_cells_without_a_measurement_have_no_intervals() -> None:
    frame = _lab8()
    down = _row(frame, "eu1", "ap2")  # ap2 never came up
    assert math.isnan(down["loss_lo_pct"]) and math.isnan(down["rtt_p50_hi_ms"])
    assert down["p99_few_samples"] is None and down["bw_short_for_rtt"] is None  # NA
    lost = _row(frame, "eu3", "us2")  # all-lost: the loss is known, bounded below
    assert lost["loss_hi_pct"] == 100.0 and 80.0 < lost["loss_lo_pct"] < 100.0
    assert math.isnan(lost["rtt_p50_lo_ms"]) and lost["p99_few_samples"] is None


def test_a_short_test_on_a_long_path_is_flagged() -> None:
    frame = _lab8({("eu1", "ap1"): 2.0, ("eu1", "eu2"): 2.0})
    long_path = _row(frame, "eu1", "ap1")  # 165 ms: 20 RTT = 3.3 s > 2 s
    assert long_path["bw_duration_s"] == 2.0 and long_path["bw_short_for_rtt"] is True
    assert _row(frame, "eu1", "eu2")["bw_short_for_rtt"] is False  # 2 s is plenty at 0.5 ms
    assert _row(frame, "eu2", "ap1")["bw_short_for_rtt"] is False  # 5 s on 171 ms
    missing = _row(frame, "us3", "eu1")  # no iperf3 on us3: nothing to judge
    assert math.isnan(missing["bw_duration_s"]) and missing["bw_short_for_rtt"] is None


def test_a_from_reverse_cell_copies_the_reverse_intervals() -> None:
    frame = build_matrix(_run(), RECORDS)
    a_n, n_a = _row(frame, "a", "n"), _row(frame, "n", "a")
    assert a_n["from_reverse"]
    for col in ("loss_lo_pct", "loss_hi_pct", "rtt_p99_lo_ms", "p99_few_samples"):
        assert a_n[col] == n_a[col]
    expected = rtt_confidence(rtt_stats([PingProbe(1, 10.0), PingProbe(2, 12.0)]), [10.0, 12.0])
    # rank 2 of 2 is 12 ms, widened to hold the interpolated p99 itself
    assert n_a["rtt_p99_lo_ms"] == expected.rtt_p99_lo_ms == n_a["rtt_p99_ms"] == 11.98


def test_the_columns_come_after_every_older_one() -> None:
    # old readers index by name; appended columns keep matrix.csv's older column order
    assert COLUMNS[-9:] == [
        "loss_lo_pct", "loss_hi_pct", "rtt_p50_lo_ms", "rtt_p50_hi_ms", "rtt_p99_lo_ms",
        "rtt_p99_hi_ms", "p99_few_samples", "bw_duration_s", "bw_short_for_rtt",
    ]  # fmt: skip
