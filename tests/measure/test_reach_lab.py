"""Inbound-restricted hosts on the lab (``tests/fixtures/lab/reach.yaml``): real NAT, a real
firewall, real ping and iperf3.

What the lab must provide (topology keys ``nat: GATEWAY_HOST`` and ``firewall: {drop_tcp:
PORTS}``):

- ``home1`` and ``home2`` sit behind ``gw``'s nftables masquerade: they connect out, nothing
  connects in (no ICMP echo, no TCP) except the controller's SSH, however the lab arranges it.
  The inventory the lab writes says ``nat: true`` for them (and nothing for the others).
- ``fw``'s firewall drops TCP to 5201-5299 and lets ICMP through; the inventory does not say so.

Expected: toward home1/home2 every RTT cell is their own ping (``from_reverse``), their
bandwidth runs with them as the iperf3 client both ways (``-R`` for their download), home1 ↔
home2 is ``not-measurable`` both ways; toward ``fw`` bandwidth is ``blocked`` naming fw's
address and port, the other direction measures; nothing is ``error`` or ``timeout``; nothing
is left on the hosts.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from probe.lab import control
from probe.plan import BandwidthTest
from tests.conftest import ROOT, module_lab
from tests.measure.test_faults_lab import FAST, assert_clean, matrix, probe, run_dir

pytestmark = pytest.mark.lab
REACH_TOPOLOGY = ROOT / "tests" / "fixtures" / "lab" / "reach.yaml"
BW = ["--duration", "1", "--omit", "0"]  # the figures checked are > 0: no need for longer
HOMES = ("home1", "home2")
OPEN = ("a1", "gw", "a2", "fw")


reach_lab = module_lab(REACH_TOPOLOGY, "reach", slot=3)


@pytest.fixture(scope="module")
def full_run(
    reach_lab: control.LabInfo, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """One run of every pair with bandwidth, read by the NAT and the firewall tests (the same
    command for both: measured once)."""
    out = tmp_path_factory.mktemp("reach-run")
    return probe("run", str(reach_lab.inventory), "-o", str(out), *FAST, *BW, "--pairs", "all")


def _address(lab: control.LabInfo, host: str) -> str:
    hosts = yaml.safe_load(lab.inventory.read_text())["hosts"]
    return str(next(h["address"] for h in hosts if h["name"] == host))


def _iperf3_records(run: Path) -> list[dict[str, object]]:
    lines = (run / "samples.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "iperf3"]


def test_nat_hosts_are_measured_from_their_side_only(
    reach_lab: control.LabInfo, full_run: subprocess.CompletedProcess[str]
) -> None:
    declared = {h["name"]: h for h in yaml.safe_load(reach_lab.inventory.read_text())["hosts"]}
    assert all(declared[h].get("nat") is True for h in HOMES)
    proc = full_run
    frame = matrix(proc)
    homes = frame[frame.src.isin(HOMES) | frame.dst.isin(HOMES)]
    assert not {"error", "timeout"} & (set(homes.status) | set(homes.bw_status))
    for home in HOMES:
        toward = frame[(frame.dst == home) & frame.src.isin(OPEN)]
        assert len(toward) == len(OPEN) and set(toward.status) == {"ok"}
        assert toward.from_reverse.all() and toward.rtt_p50_ms.notna().all()
        assert set(toward.reason) == {f"from the reverse direction: {home} accepts no inbound ICMP"}
        outward = frame[(frame.src == home) & frame.dst.isin(OPEN)]
        assert set(outward.status) == {"ok"} and not outward.from_reverse.any()
        # a round trip is one whichever end starts it: the copy is the reverse's own figures
        for row in toward.itertuples():
            back = frame[(frame.src == home) & (frame.dst == row.src)].iloc[0]
            assert row.rtt_p50_ms == back.rtt_p50_ms
    between = frame[frame.src.isin(HOMES) & frame.dst.isin(HOMES)]
    assert len(between) == 2 and set(between.status) == {"not-measurable"}
    assert set(between.bw_status) == {"not-measurable"}
    assert all("home1" in r and "home2" in r for r in [*between.reason, *between.bw_reason])
    others = frame[~frame.src.isin(HOMES) & ~frame.dst.isin(HOMES) & (frame.dst != "fw")]
    assert set(others.status) == {"ok"} and set(others.bw_status) == {"ok"}

    records = _iperf3_records(run_dir(proc))
    assert not [r for r in records if r["server"] in HOMES]  # never a server behind NAT
    for home in HOMES:
        upload = frame[(frame.src == home) & frame.dst.isin(OPEN) & (frame.dst != "fw")]
        download = frame[frame.src.isin(OPEN) & (frame.src != "fw") & (frame.dst == home)]
        assert set(upload.bw_status) == set(download.bw_status) == {"ok"}
        assert download.bw_fwd_mbps.gt(0).all() and upload.bw_fwd_mbps.gt(0).all()
        # -R: the sender is the server, whose cwnd and TCP RTT iperf3 keeps; its retransmits
        # come back in iperf3's results exchange
        assert download.bw_fwd_tcp_rtt_ms.isna().all()
        assert download.bw_fwd_retransmits.notna().all()
        assert set(download.bw_reason) == {BandwidthTest.REVERSE_NOTE}
        for r in records:
            if r["dst"] == home and r["status"] == "ok":
                argv = r["argv"]
                assert isinstance(argv, list) and "-R" in argv
                assert r["client"] == home and r["reverse"] is True
    assert_clean(reach_lab)


def test_a_firewall_dropping_the_iperf3_ports_is_blocked_naming_the_port(
    reach_lab: control.LabInfo, full_run: subprocess.CompletedProcess[str]
) -> None:
    fw = _address(reach_lab, "fw")
    proc = full_run
    assert proc.returncode == 4, proc.stderr  # blocked cells are failures with a reason
    frame = matrix(proc)
    assert set(frame[(frame.src == "fw") | (frame.dst == "fw")].status) == {"ok"}  # ping passes
    into = frame[(frame.dst == "fw") & frame.src.isin(("a1", "gw", "a2"))]
    assert set(into.bw_status) == {"blocked"}
    for reason in into.bw_reason:
        assert f"→ {fw}:52" in reason and "on fw: Connection timed out" in reason, reason
        assert "while ping between them works" in reason
    out = frame[(frame.src == "fw") & frame.dst.isin(("a1", "gw", "a2"))]
    assert set(out.bw_status) == {"ok"}  # fw as the client: its upload passes the firewall
    assert not {"error", "timeout"} & (set(frame.status) | set(frame.bw_status))
    assert_clean(reach_lab)


def test_a_declared_firewall_makes_the_host_the_client_both_ways(
    reach_lab: control.LabInfo, tmp_path: Path
) -> None:
    """The same firewall, declared (``inbound: [icmp, "tcp:22"]``): nothing is blocked, fw's
    download runs with -R from its side."""
    doc = yaml.safe_load(reach_lab.inventory.read_text())
    for host in doc["hosts"]:
        if host["name"] == "fw":
            host["inbound"] = ["icmp", "tcp:22"]
    inventory = reach_lab.inventory.with_name("reach-declared.yaml")
    inventory.write_text(yaml.safe_dump(doc))
    proc = probe("run", str(inventory), "-o", str(tmp_path), *FAST, *BW, "--pairs", "all")
    frame = matrix(proc)
    pairs = frame[((frame.src == "fw") | (frame.dst == "fw")) & ~frame.src.isin(HOMES)
                  & ~frame.dst.isin(HOMES)]  # fmt: skip
    assert set(pairs.bw_status) == {"ok"}, pairs[["src", "dst", "bw_status", "bw_reason"]]
    records = _iperf3_records(run_dir(proc))
    assert not [r for r in records if r["server"] == "fw"]
    assert proc.returncode == 0, proc.stderr
    assert_clean(reach_lab)


def test_the_matrix_columns_say_how_each_cell_was_had(
    reach_lab: control.LabInfo, tmp_path: Path
) -> None:
    proc = probe("run", str(reach_lab.inventory), "-o", str(tmp_path), *FAST, "--no-bandwidth")
    frame = pd.read_parquet(run_dir(proc) / "matrix.parquet")
    assert frame.from_reverse.dtype == bool
    assert set(frame[frame.from_reverse].dst) == set(HOMES)
    assert proc.returncode == 0, proc.stderr  # not-measurable cells are never missing
