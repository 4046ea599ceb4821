"""Issue 16's acceptance on the default lab: ``probe rehearse`` against calc's prediction from a
run of the same lab, and nothing left on any host after a run or a SIGKILLed controller.

The default lab's hosts run this machine's default congestion control, BBR (the matrix's
``sender_cc`` says so). Over BBR the intercontinental decode is ~10 % over today's formula
(CI measured +10.04 %): BBR paces decode's sparse 8 KiB messages at its start-up rate, ~25 ms
per message on a 240 ms hop. The corrected prediction models that pacing
(``formulas.bbr_sparse_extra_ms``) and is held to the issue's 10 %; today's keeps a 15 % bound.
A prefill under BBR has no slow start after idle (BBR keeps its window), so the corrected
prefill is today's; under CUBIC (a lab of its own, below) the slow-start term is what the
corrected prediction adds, and the corrected one is held to 10 %. The machine is shared, so
the p99 gets a wide one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from probe.lab import control, netns
from tests.conftest import ROOT, module_lab
from tests.measure.test_faults_lab import PROBE, assert_clean, probe, run_dir
from tests.measure.watch import IperfWatcher

pytestmark = pytest.mark.lab
CUBIC_WAN = ROOT / "tests" / "fixtures" / "lab" / "cubic-wan.yaml"


@pytest.fixture(scope="module")
def run(lab_run: tuple[Path, IperfWatcher]) -> Path:
    """The session's full run of the default lab (tests/conftest.py), shared with test_run_lab."""
    return lab_run[0]


def rehearse(run: Path, *args: str) -> dict[str, Any]:
    proc = probe("rehearse", str(run), *args, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return dict(json.loads(proc.stdout))


def _sender_cc(run: Path, src: str, dst: str) -> str:
    rows = pd.read_csv(run / "matrix.csv").to_dict("records")
    (row,) = [r for r in rows if (r["src"], r["dst"]) == (src, dst)]
    return str(row["sender_cc"])


def test_decode_across_continents_is_within_10_percent_at_p50(
    lab: control.LabInfo, run: Path
) -> None:
    doc = rehearse(run, "--pattern", "decode", "--path", "eu1,us1,ap1", "--tokens", "64")
    (fig,) = doc["figures"]
    assert fig["samples"] == 64
    assert abs(fig["corrected_error_p50_pct"]) <= 10.0, fig
    assert abs(fig["error_p50_pct"]) <= 15.0, fig
    if _sender_cc(run, "us1", "ap1") == "bbr":  # the pacing term is there, and ~25 ms a hop
        assert fig["corrected_p50_ms"] - fig["predicted_p50_ms"] > 15.0, fig
    timings = Path(doc["timings"])
    assert timings.parent.parent == run and len(timings.read_text().splitlines()) == 64
    assert (timings.parent / "summary.json").exists()
    assert_clean(lab)


def test_decode_inside_a_region(lab: control.LabInfo, run: Path) -> None:
    doc = rehearse(run, "--pattern", "decode", "--path", "eu1,eu2,home1")
    (fig,) = doc["figures"]
    assert fig["samples"] == 128
    assert abs(fig["error_p50_pct"]) <= 10.0, fig
    assert_clean(lab)


def test_prefill_across_the_240ms_20mbit_path(lab: control.LabInfo, run: Path) -> None:
    doc = rehearse(
        run, "--pattern", "prefill", "--path", "eu1,ap1", "--batch", "1", "--seq", "2048",
        "--rounds", "3",
    )  # fmt: skip
    (fig,) = doc["figures"]
    assert fig["name"] == "eu1→ap1" and fig["samples"] == 3
    # 16 MiB at ~20 Mbit/s: the serialisation dominates (measured under BBR: -3.0 %, and the
    # corrected prediction is today's: BBR keeps its window over the idle gap)
    assert abs(fig["error_p50_pct"]) <= 15.0, fig
    assert abs(fig["corrected_error_p50_pct"]) <= 10.0, fig
    if _sender_cc(run, "eu1", "ap1") == "bbr":
        assert fig["corrected_p50_ms"] == fig["predicted_p50_ms"], fig
    assert_clean(lab)


cubic = module_lab(CUBIC_WAN, "cubic-wan", slot=1)


def test_prefill_after_idle_under_cubic_is_within_10_percent(
    cubic: control.LabInfo, tmp_path: Path
) -> None:
    """CUBIC restarts from the initial window after the idle gap: the slow-start term (~1 s on
    this path) is what brings the corrected prediction within 10 %."""
    proc = probe(
        "run", str(cubic.inventory), "-o", str(tmp_path), "--count", "20", "--interval", "0.05",
        "--connect-timeout", "4", "--duration", "4", "--omit", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cubic_run = run_dir(proc)
    assert _sender_cc(cubic_run, "e1", "a1") == "cubic"
    doc = rehearse(
        cubic_run, "--pattern", "prefill", "--path", "e1,a1", "--batch", "1", "--seq", "2048",
        "--rounds", "2",
    )  # fmt: skip
    (fig,) = doc["figures"]
    assert fig["corrected_p50_ms"] - fig["predicted_p50_ms"] > 500.0, fig  # the stalls
    assert abs(fig["corrected_error_p50_pct"]) <= 10.0, fig
    assert_clean(cubic)


def test_ring_allreduce_over_four_hosts(lab: control.LabInfo, run: Path) -> None:
    doc = rehearse(run, "--pattern", "allreduce", "--path", "eu1,eu2,us1,us2", "--rounds", "10")
    (fig,) = doc["figures"]
    assert fig["samples"] == 10
    # the ring's steps wait for each link in turn, not all for the slowest: below the formula
    assert 0 < fig["measured_p50_ms"] < fig["predicted_p50_ms"], fig
    assert_clean(lab)


def _relays(lab: control.LabInfo) -> list[str]:
    found = []
    for host in lab.hosts:
        for pid in netns.netns_pids(lab.netns(host)):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "python3":
                    found.append(f"{host}:{pid}")
            except OSError:
                continue
    return found


def test_a_sigkilled_controller_leaves_no_relay(lab: control.LabInfo, run: Path) -> None:
    proc = subprocess.Popen(
        [PROBE, "rehearse", str(run), "--pattern", "decode", "--path", "eu1,us1,ap1",
         "--tokens", "2000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_relays(lab)) < 3:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        deadline = time.monotonic() + 10
        while _relays(lab) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _relays(lab) == []
        assert not list(Path("/tmp").glob("probe-relay-*.lock"))
        assert_clean(lab)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
