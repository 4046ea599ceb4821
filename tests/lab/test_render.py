"""``lab status`` without root: the text it prints for a faked state directory."""

from __future__ import annotations

import os
import re

import pytest

from probe.lab import control, netns
from probe.lab.render import LINK_LEGEND, render_status


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No namespace to look into, no emulator to signal."""
    monkeypatch.setattr(netns, "netns_pids", lambda name: [])
    monkeypatch.setattr(os, "kill", lambda pid, sig: None)


def _cells(text: str) -> dict[tuple[str, str], str]:
    """The link grid as (row, column) → cell, the columns where tabulate's rule puts them."""
    lines = text.splitlines()
    header, rule, *rows = lines[lines.index(LINK_LEGEND) + 1 :]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]
    names = [header[a:b].strip() for a, b in spans]
    cells = {}
    for line in rows:
        row = [line[a:b].strip() for a, b in spans]
        cells.update({(row[0], col): cell for col, cell in zip(names[1:], row[1:], strict=True)})
    return cells


def test_status_shows_the_live_links_with_jitter_and_loss(
    tiny_lab: control.LabInfo, tc_calls: list[tuple[str, ...]], quiet: None
) -> None:
    """`lab status` read the topology file: a `lab link` change never showed, nor any loss or
    jitter."""
    tiny_lab.paths.emulator_ready.write_text("4242")
    before = _cells(render_status(tiny_lab))
    assert before["ta", "tb"] == "10/0" and before["tb", "tj"] == "10/0"
    changes = {"delay_ms": 40.0, "jitter_ms": 1.5, "loss_pct": 2.0, "rate_bps": 20e6}
    control.set_link(tiny_lab, "ta", "tb", changes, both=False)
    after = _cells(render_status(tiny_lab))
    # RTT 40 + 5; jitter of one way only (1.5 ms); loss of one way only; ta→tb rate 20 Mbit/s
    assert after["ta", "tb"] == "45±1.5/20 2%"
    assert after["tb", "ta"] == "45±1.5/0 2%"  # the round trip seen from tb: same path
    assert after["ta", "tj"] == before["ta", "tj"] == "10/0"
    assert after["ta", "ta"] == "—"
