"""``diff_runs`` and ``probe diff``: thresholds, broken and vanished pairs, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probe.cli import run
from probe.decide.regression import Thresholds
from probe.matrix.build import load_matrix
from probe.report.diff import compare, diff_runs, render_diff
from tests.report.runs import make_lab8, ping_record

T = Thresholds()


def _slower(pair: tuple[str, str], rec: dict[str, Any]) -> dict[str, Any] | None:
    if pair != ("eu1", "us1"):
        return None
    rtts = [None if r is None else r + 30.0 for _, r in rec["probes"]]
    return ping_record(*pair, rec["t"], rtts)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    a = make_lab8(root / "20261123T090000Z", seed=8)
    same = make_lab8(root / "20261123T100000Z", seed=9)  # other noise, same links
    slower = make_lab8(root / "20261123T110000Z", seed=9, tweak=_slower)
    return a, same, slower


def test_noise_between_runs_is_not_a_regression(runs: tuple[Path, Path, Path]) -> None:
    result = diff_runs(load_matrix(runs[0]), load_matrix(runs[1]))
    assert result.regressed_pairs == () and result.regressed_regions == ()
    assert not result.failed() and result.appeared == result.vanished == ()


def test_a_changed_link_flags_exactly_that_pair(runs: tuple[Path, Path, Path]) -> None:
    result = diff_runs(load_matrix(runs[0]), load_matrix(runs[2]))
    assert [(p.src, p.dst) for p in result.regressed_pairs] == [("eu1", "us1")]
    (pair,) = result.regressed_pairs
    assert pair.regressions == {"rtt_p50"}  # p99 +30 ms on ~85 ms stays under +50 %
    assert result.failed() and not result.failed({"bw", "loss"})


@pytest.mark.parametrize(
    ("kind", "before", "after", "regressed", "improved"),
    [
        ("rtt_p50", 0.4, 0.8, False, False),  # +100 % but only +0.4 ms
        ("rtt_p50", 10.0, 12.0, False, False),  # +2 ms but only +20 %
        ("rtt_p50", 10.0, 13.0, True, False),
        ("rtt_p50", 13.0, 9.0, False, True),
        ("rtt_p99", 80.0, 110.0, False, False),
        ("rtt_p99", 80.0, 130.0, True, False),
        ("loss", 0.0, 5.0, False, False),  # one probe of 20
        ("loss", 0.0, 10.0, True, False),
        ("bw", 900.0, 800.0, False, False),
        ("bw", 900.0, 700.0, True, False),
        ("bw", 700.0, 900.0, False, True),
        ("bw", None, 900.0, False, False),
    ],
)
def test_thresholds(
    kind: Any, before: float | None, after: float | None, regressed: bool, improved: bool
) -> None:
    change = compare(kind, before, after, T)
    assert (change.regressed, change.improved) == (regressed, improved)


def test_broken_fixed_appeared_vanished(runs: tuple[Path, Path, Path]) -> None:
    a, b = load_matrix(runs[0]), load_matrix(runs[1])
    b = b.copy()
    broken = (b.src == "eu1") & (b.dst == "eu2")
    b.loc[broken, "status"] = "timeout"
    b.loc[broken, ["rtt_p50_ms", "rtt_p99_ms", "loss_pct"]] = float("nan")
    fixed = (b.src == "eu3") & (b.dst == "us2")  # all-lost in A
    b.loc[fixed, "status"] = "ok"
    b = b[b.src != "us2"]
    result = diff_runs(a, b)
    by_pair = {(p.src, p.dst): p for p in result.pairs}
    assert by_pair["eu1", "eu2"].regressions == {"broken"}
    assert "broken" in by_pair["eu3", "us2"].improvements
    assert {s for s, _ in result.vanished} == {"us2"} and result.appeared == ()
    assert result.failed({"vanished"}) and result.failed({"broken"})


def test_a_goodput_change_under_another_congestion_control_is_not_a_path_regression(
    runs: tuple[Path, Path, Path],
) -> None:
    a, b = load_matrix(runs[0]).copy(), load_matrix(runs[1]).copy()
    a["sender_cc"], b["sender_cc"] = "cubic", "cubic"
    for pair in (("eu1", "eu2"), ("eu2", "eu1")):  # a third of the goodput in run B
        row = (b.src == pair[0]) & (b.dst == pair[1])
        b.loc[row, "bw_fwd_mbps"] = b.loc[row, "bw_fwd_mbps"] / 3
    b.loc[(b.src == "eu2") & (b.dst == "eu1"), "sender_cc"] = "bbr"
    by_pair = {(p.src, p.dst): p for p in diff_runs(a, b).pairs}
    same_cc, other_cc = by_pair["eu1", "eu2"], by_pair["eu2", "eu1"]
    assert same_cc.regressions == {"bw"} and same_cc.cc_change is None
    assert other_cc.regressions == frozenset() and other_cc.improvements == frozenset()
    assert other_cc.cc_change == "cubic→bbr"
    assert "cc changed: cubic→bbr" in render_diff(diff_runs(a, b))
    old = a.drop(columns=["sender_cc"])  # a matrix from before the column: nothing to compare
    assert not any(p.cc_change for p in diff_runs(old, b).pairs)


def test_cli_exit_codes(runs: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, same, slower = (str(p) for p in runs)
    assert run(["diff", a, same]) == 0
    assert "## probe diff: OK" in capsys.readouterr().out
    assert run(["diff", a, slower]) == 1
    out = capsys.readouterr().out
    assert "## probe diff: REGRESSED" in out and "eu1 → us1" in out and "▲ regressed" in out
    assert run(["diff", a, slower, "--fail-on", "none"]) == 0
    assert run(["diff", a, slower, "--rtt-p50-pct", "50"]) == 0
    assert run(["diff", a, slower, "--fail-on", "bogus"]) == 2
