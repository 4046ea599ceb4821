"""Hints for the statuses with their own wording: ``tool-hung`` points at the hanging tool,
``not-planned`` cells (left out by a sampled plan on purpose) and ``not-measurable`` ones are
never bad, ``blocked`` says which port to open on which host."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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


def test_not_measurable_cells_are_never_bad() -> None:
    """eu1 sits behind NAT with a peer that does too: every cell of its row and column that
    was ok is not-measurable instead, for ping and bandwidth alike; no hint blames eu1."""
    frame, doc = load_matrix(FIXTURE), read_run(FIXTURE)
    before = diagnose(frame, host_order(doc), {"ap2": "x"})
    eu1 = (frame.src == "eu1") | (frame.dst == "eu1")
    for status, reason in (("status", "reason"), ("bw_status", "bw_reason")):
        cells = eu1 & (frame[status] == "ok")
        frame.loc[cells, status] = "not-measurable"
        frame.loc[cells, reason] = "neither eu1 nor its peer accepts inbound traffic"
    assert diagnose(frame, host_order(doc), {"ap2": "x"}) == before


def _blocked(frame: pd.DataFrame, cells: pd.Series, server: str, ports: list[int]) -> None:
    frame.loc[cells, "bw_status"] = "blocked"
    frame.loc[cells, "bw_reason"] = [
        f"iperf3 client on {src} → 198.18.1.9:{port} on {server}: Connection timed out while "
        "ping between them works (a firewall drops or rejects the port)"
        for src, port in zip(frame.loc[cells, "src"], ports, strict=True)
    ]


def test_blocked_bandwidth_is_a_failure_whose_hint_says_what_to_do() -> None:
    """Tests into eu2 (its firewall drops the iperf3 ports, undeclared) are blocked: an ingress
    hint on eu2 naming the ports to open or the inventory key to declare; one blocked path
    alone gets the same advice for its server."""
    frame, doc = load_matrix(FIXTURE), read_run(FIXTURE)
    into = (frame.dst == "eu2") & (frame.bw_status == "ok")
    _blocked(frame, into, "eu2", [5201, 5203, 5202, 5201, 5201])
    _blocked(frame, (frame.src == "us1") & (frame.dst == "eu3"), "eu3", [5207])
    hints = diagnose(frame, host_order(doc), {"ap2": "x"})
    (host,) = [h for h in hints if h.subject == "eu2" and h.aspect.startswith("bandwidth")]
    assert (host.scope, host.aspect, host.bad_cells) == ("ingress", "bandwidth blocked", 5)
    assert "→ suspect a firewall dropping or rejecting the iperf3 port" in host.text
    assert host.text.endswith(
        " → open TCP 5201-5203 on eu2 or declare `inbound:` in the inventory so eu2 is the "
        "iperf3 client"
    ), host.text
    (path,) = [h for h in hints if h.subject == "us1 → eu3"]
    assert (path.scope, path.aspect) == ("pair", "bandwidth blocked")
    assert path.text.endswith(
        " → open TCP 5207 on eu3 or declare `inbound:` in the inventory so eu3 is the iperf3 client"
    ), path.text
    assert not [h for h in hints if h.aspect == "bandwidth failed" and "blocked" in h.text]
