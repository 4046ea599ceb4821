"""``probe run --networks all`` on a lab with two networks (not run by the unit suite).

Topology ``tests/fixtures/lab/two-networks.yaml``: na and nb are on the mesh and on an overlay
that adds 10 ms each way; nc is on the mesh only. Expected: na↔nb has a row per network (the
mesh first: the inventory's `networks:` order, or `default`-then-name order which puts mesh
before overlay), each at that network's address, the overlay's RTT ~20 ms above the mesh's;
nc's pairs have one row, over the mesh; every cell ok; nothing left on the hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from probe.lab import control
from tests.cells import as_float
from tests.conftest import ROOT, lab_up, unique_topology
from tests.measure.test_faults_lab import FAST, assert_clean, probe, run_dir

pytestmark = pytest.mark.lab
TOPOLOGY = ROOT / "tests" / "fixtures" / "lab" / "two-networks.yaml"


@pytest.fixture
def twonet(tmp_path: Path) -> Iterator[control.LabInfo]:
    with lab_up(unique_topology(TOPOLOGY, tmp_path, slot=3)) as info:
        yield info


def test_networks_all_measures_each_pair_over_every_shared_network(
    twonet: control.LabInfo, tmp_path: Path
) -> None:
    ran = probe("run", str(twonet.inventory), "-o", str(tmp_path), *FAST, "--networks", "all",
                "--duration", "2", "--omit", "0")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    frame = pd.read_csv(run_dir(ran) / "matrix.csv")
    assert set(frame.status) == {"ok"} and set(frame.bw_status) == {"ok"}, frame
    keys = set(zip(frame.src, frame.dst, frame.network, strict=True))
    assert keys == {
        ("na", "nb", "mesh"), ("nb", "na", "mesh"), ("na", "nb", "overlay"),
        ("nb", "na", "overlay"), ("na", "nc", "mesh"), ("nc", "na", "mesh"),
        ("nb", "nc", "mesh"), ("nc", "nb", "mesh"),
    }  # fmt: skip
    ab = frame[(frame.src == "na") & (frame.dst == "nb")]
    assert list(ab.network) == ["mesh", "overlay"]  # the preferred network's row first
    assert list(ab.address) == ["198.18.18.1", "198.18.30.1"]
    mesh, overlay = (as_float(v) for v in ab.rtt_p50_ms)
    assert 15 < overlay - mesh < 30, (mesh, overlay)  # 10 ms each way (loose: a loaded box)
    assert_clean(twonet)
