"""``prometheus_text`` checked by a strict parser of the exposition format."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from probe.matrix.build import build_matrix, load_matrix
from probe.report.prometheus import escape_label, prometheus_text
from probe.store.rundir import read_run
from tests.report import promparse
from tests.report.runs import ping_record, run_doc, typed

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"


@pytest.fixture(scope="module")
def parsed() -> tuple[pd.DataFrame, dict[str, promparse.Family]]:
    frame = load_matrix(FIXTURE)
    return frame, promparse.parse(prometheus_text(read_run(FIXTURE), frame))


def _series(fam: promparse.Family, **labels: str) -> list[float]:
    return [v for _, lab, v in fam.samples if all(lab.get(k) == x for k, x in labels.items())]


def test_families_and_types(parsed: tuple[pd.DataFrame, dict[str, promparse.Family]]) -> None:
    _, fams = parsed
    assert fams["probe_rtt_seconds"].type == "summary"
    for name in (
        "probe_loss_ratio",
        "probe_bandwidth_bits_per_second",
        "probe_run_timestamp_seconds",
    ):
        assert fams[name].type == "gauge"
    (stamp,) = _series(fams["probe_run_timestamp_seconds"], run_id="20261123T090000Z")
    assert stamp == pytest.approx(1_795_424_400 + 257.1, abs=1)


def test_values_match_the_matrix(parsed: tuple[pd.DataFrame, dict[str, promparse.Family]]) -> None:
    frame, fams = parsed
    row = frame[(frame.src == "eu1") & (frame.dst == "us1")].iloc[0]
    rtt = fams["probe_rtt_seconds"]
    (p50,) = _series(rtt, src="eu1", dst="us1", quantile="0.5")
    assert p50 == pytest.approx(row.rtt_p50_ms / 1e3)
    (count,) = [v for n, lab, v in rtt.samples if n.endswith("_count") and lab["src"] == "eu1"
                and lab["dst"] == "us1"]  # fmt: skip
    assert count == 20
    (labels,) = [lab for _, lab, _ in rtt.samples if lab.get("quantile") == "0.5"
                 and lab["src"] == "eu1" and lab["dst"] == "us1"]  # fmt: skip
    assert labels["src_region"] == "eu" and labels["dst_region"] == "us"
    fwd = _series(
        fams["probe_bandwidth_bits_per_second"], src="eu1", dst="us1", direction="forward"
    )
    rev = _series(
        fams["probe_bandwidth_bits_per_second"], src="us1", dst="eu1", direction="reverse"
    )
    assert fwd == rev == [pytest.approx(row.bw_fwd_mbps * 1e6)]


def test_failed_cells_are_absent_never_zero(
    parsed: tuple[pd.DataFrame, dict[str, promparse.Family]],
) -> None:
    _, fams = parsed
    assert _series(fams["probe_rtt_seconds"], src="eu3", dst="us2") == []
    assert _series(fams["probe_loss_ratio"], src="eu3", dst="us2") == [1.0]  # all lost: measured
    assert _series(fams["probe_loss_ratio"], src="ap2") == []  # host down: unknown
    assert _series(fams["probe_bandwidth_bits_per_second"], src="us3") == []
    assert _series(fams["probe_pair_ok"], src="us3", dst="eu1", test="bandwidth") == [0.0]


def test_label_values_are_escaped() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    odd = 'we"ird\\host\nname'
    hosts = ["plain", odd]
    run = run_doc(hosts, "20261123T090000Z", 1_795_424_500.0)
    run = replace(run, hosts=tuple(replace(h, region='r"1') for h in run.hosts))
    records = typed([ping_record("plain", odd, 1.0, [1.0, 2.0, None]),
               ping_record(odd, "plain", 1.0, [1.5, 1.5, 1.5])])  # fmt: skip
    text = prometheus_text(run, build_matrix(run, records))
    fams = promparse.parse(text)
    (loss,) = _series(fams["probe_loss_ratio"], src="plain", dst=odd, src_region='r"1')
    assert math.isclose(loss, 1 / 3)


@pytest.mark.parametrize(
    "bad",
    [
        'x{a="1"} 1\n',  # no HELP/TYPE
        '# HELP x h\n# TYPE x gauge\nx{a="\\t"} 1\n',  # bad escape
        "# HELP x h\n# TYPE x gauge\nx 1 1700000000\n",  # timestamp
        "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",  # duplicate series
        "# HELP x h\n# TYPE x summary\nx 1\n",  # summary without quantile
    ],
)
def test_the_parser_is_strict(bad: str) -> None:
    with pytest.raises(promparse.ExpositionError):
        promparse.parse(bad)
