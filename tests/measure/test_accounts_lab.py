"""A busybox-tools host and a non-root SSH login on the lab (issue 13, "Older and smaller tools",
"Non-root accounts"). Written for the lab's topology keys ``tools: busybox`` (ping and timeout
are busybox applets on that host) and ``user: NAME`` (its SSH login is that non-root account);
the lead wires the same expectations to ``inventory/lab-field.yaml``.

What each expects:
- the busybox host ``bb1``: preflight names its ping "BusyBox v…" (``probe check`` notes "bb1:
  ping is busybox"); every ping record from it parses per probe (flavor "busybox", seqs from 0,
  every probe answered on a lossless lab link), and its cells are ``ok`` with an RTT;
- the non-root host ``usr1`` (login ``probe``): ``probe check`` finds it ready, with the
  account's groups (not root's "0") and no ICMP refusal (the lab's ping has cap_net_raw, and a
  fresh namespace's ping_group_range is "1 0"); its ping and bandwidth cells are ``ok``; the run
  leaves nothing in its /tmp.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from probe.inventory import load_inventory
from probe.lab import control
from probe.measure.check import account_findings, check
from probe.measure.sshoptions import SshOptions
from tests.conftest import module_lab, unique_topology
from tests.measure.test_faults_lab import FAST, assert_clean, assert_every_cell_explained, probe

pytestmark = pytest.mark.lab

TOPOLOGY = """\
# issue 13: a busybox-tools host and a non-root login beside an ordinary host, one region
name: labacct
prefix: pa-
jump: bastion
ssh: {port: 22}
addressing:
  mesh: 198.18.0.0/16
  controller_link: 198.19.254.0/30
regions:
  eu:
    hosts:
      bastion: {address: 198.18.1.1, zone: eu-a, measure: false}
      eu1: {address: 198.18.1.11, zone: eu-a}
      bb1: {address: 198.18.1.21, zone: eu-a, tools: busybox}
      usr1: {address: 198.18.1.31, zone: eu-b, user: probe}
links:
  default: {delay: 0.25ms, rate: 200mbit, queue: 20ms}
pairs: {}
"""
BW = ["--duration", "2", "--omit", "0"]


def _topology(folder: Path) -> Path:
    source = folder / "lab-accounts.yaml"
    source.write_text(TOPOLOGY, encoding="utf-8")
    return unique_topology(source, folder, slot=1)


acct_lab = module_lab(_topology, "acct-topology")


def _records(run: Path) -> list[dict[str, object]]:
    lines = (run / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_busybox_and_non_root_hosts_measure_per_probe(
    acct_lab: control.LabInfo, tmp_path: Path
) -> None:
    done = probe("run", str(acct_lab.inventory), "-o", str(tmp_path), *FAST, *BW)
    assert done.returncode == 0, done.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    records = _records(run)
    host = {r["host"]: r for r in records if r["kind"] == "host"}
    tools = host["bb1"]["tools"]
    assert isinstance(tools, dict) and str(tools["ping"]).startswith("BusyBox v")
    from_bb1 = [r for r in records if r["kind"] == "ping" and r["src"] == "bb1"]
    assert len(from_bb1) == 2  # eu1, usr1
    for rec in from_bb1:
        assert rec["status"] == "ok" and rec["flavor"] == "busybox", rec
        probes = rec["probes"]
        assert isinstance(probes, list)
        assert [seq for seq, _ in probes] == list(range(len(probes)))  # busybox: from 0
        assert all(rtt is not None for _, rtt in probes), rec  # a lossless link
    frame = pd.read_csv(run / "matrix.csv")
    assert_every_cell_explained(frame)
    assert set(frame.status) == {"ok"} and set(frame.bw_status) == {"ok"}
    assert frame.loc[frame.src == "usr1", "rtt_p50_ms"].notna().all()
    assert_clean(acct_lab)
    ls = control.host_command(acct_lab, "usr1", ["sh", "-c", "ls -A /tmp | grep '^probe-ping'"])
    left = subprocess.run(ls.argv, capture_output=True, text=True, timeout=30, check=False)
    assert left.stdout == ""  # the fan-out's temp directory went with it


def test_check_reports_the_non_root_account_and_the_busybox_ping(
    acct_lab: control.LabInfo,
) -> None:
    inventory = load_inventory(str(acct_lab.inventory))
    rows = {c.host: c for c in asyncio.run(check(inventory, SshOptions(connect_timeout_s=4)))}
    assert all(c.ready for c in rows.values()), rows
    usr1, bb1, eu1 = rows["usr1"], rows["bb1"], rows["eu1"]
    assert usr1.groups is not None and usr1.groups.split()[0] != "0"  # not root
    assert eu1.groups == "0"
    assert usr1.icmp_denied == {} and account_findings(usr1) == ()
    assert bb1.ping_flavor == "busybox" and eu1.ping_flavor == "iputils"
    out = probe("check", str(acct_lab.inventory), "--connect-timeout", "4")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bb1: ping is busybox" in out.stdout.splitlines()
