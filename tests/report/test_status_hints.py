"""Hints for the statuses with their own wording: ``tool-hung`` points at the hanging tool,
``not-planned`` cells (left out by a sampled plan on purpose) are never bad."""

from __future__ import annotations

from pathlib import Path

from probe.matrix.build import host_order, load_matrix
from probe.report.heatmap import STATUS_CODE
from probe.report.hints import diagnose
from probe.store.rundir import read_run

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"


def test_a_host_whose_iperf3_hangs_is_named_with_the_tool() -> None:
    frame, doc = load_matrix(FIXTURE), read_run(FIXTURE)
    us3 = (frame.src == "us3") | (frame.dst == "us3")
    frame.loc[us3, "bw_status"] = "tool-hung"
    frame.loc[us3, "bw_reason"] = "iperf3 hangs on us3 (no answer to --version within 5 s)"
    (hint,) = [h for h in diagnose(frame, host_order(doc), {"ap2": "x"}) if h.subject == "us3"]
    assert (hint.scope, hint.aspect) == ("host", "bandwidth failed")
    assert "→ suspect a tool that hangs on us3 (no answer to its version probe at preflight)" in (
        hint.text
    )
    assert "most common: tool-hung: iperf3 hangs on us3" in hint.text


def test_not_planned_cells_are_never_bad() -> None:
    frame, doc = load_matrix(FIXTURE), read_run(FIXTURE)
    before = diagnose(frame, host_order(doc), {"ap2": "x"})
    eu1_out = (frame.src == "eu1") & (frame.status == "ok")
    frame.loc[eu1_out, "status"] = "not-planned"
    frame.loc[eu1_out, "reason"] = "left out by the sampled ping plan"
    assert diagnose(frame, host_order(doc), {"ap2": "x"}) == before


def test_every_status_but_ok_has_a_heatmap_code() -> None:
    from probe.model import CellStatus

    assert set(STATUS_CODE) == {s.value for s in CellStatus} - {"ok"}
    assert len(set(STATUS_CODE.values())) == len(STATUS_CODE)
