"""The field lab's networks and NAT with real packets: each network carries its own RTT, a private
network is not routed across, a host behind NAT reaches out and nothing reaches in, and
``lab down`` leaves nothing (inventory/lab-field.yaml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.lab import control, netns
from probe.lab.state import LabTruth, load
from probe.lab.truth import PairTruth
from tests.conftest import ROOT, module_lab, unique_topology

pytestmark = pytest.mark.lab
FIELD = ROOT / "inventory" / "lab-field.yaml"
#: "NAME PREFIX CONTROLLER_LINK": run the field lab under that identity instead of this test
#: run's own (a session sharing the machine is given one).
IDENTITY = os.environ.get("PROBE_TEST_LAB_IDENTITY")


def _topology(out_dir: Path) -> Path:
    if IDENTITY is None:
        return unique_topology(FIELD, out_dir, slot=3)
    name, prefix, link = IDENTITY.split()
    text = FIELD.read_text(encoding="utf-8")
    for pattern, value in (
        (r"^name: *\S+", f"name: {name}"),
        (r"^prefix: *\S+", f"prefix: {prefix}"),
        (r"controller_link: *\S+", f"controller_link: {link}"),
    ):
        text = re.sub(pattern, value, text, count=1, flags=re.MULTILINE)
    out = out_dir / f"{name}.yaml"
    out.write_text(text, encoding="utf-8")
    return out


field = module_lab(_topology, "field")


def _truth(lab: control.LabInfo, src: str, dst: str, network: str) -> PairTruth:
    pairs = load(lab.paths.truth, LabTruth).pairs
    return next(p for p in pairs if (p.src, p.dst, p.network) == (src, dst, network))


def _run(lab: control.LabInfo, host: str, *argv: str, timeout: float = 30) -> str:
    proc = subprocess.run(
        lab.exec_argv(host, *argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.stdout + proc.stderr


def _ping(lab: control.LabInfo, src: str, address: str, *extra: str) -> dict[str, float]:
    out = _run(lab, src, "ping", "-n", "-q", "-c", "30", "-i", "0.05", "-W", "1", *extra, address)
    sent = re.search(r"(\d+) received", out)
    assert sent is not None, out
    stats = {"received": float(sent.group(1))}
    if rtt := re.search(r"= [\d.]+/([\d.]+)/", out):
        stats["avg"] = float(rtt.group(1))
    return stats


@pytest.mark.parametrize(
    ("src", "dst", "network"),
    [
        ("eu1", "eu2", "eu"),  # a private network: 0.5 ms
        ("eu1", "eu2", "public"),  # the same pair over public: +2 ms each way
        ("eu1", "us1", "public"),
        ("eu1", "us1", "mesh"),  # the overlay: its own extra, not public's
        ("home1", "us1", "public"),  # out through gw1's masquerade and access link
    ],
)
def test_each_network_carries_its_own_rtt(
    field: control.LabInfo, src: str, dst: str, network: str
) -> None:
    want = _truth(field, src, dst, network)
    got = _ping(field, src, want.address)
    se = want.rtt_std_ms / 30**0.5
    assert got["received"] == 30
    assert abs(got["avg"] - want.rtt_ms) <= 0.5 + 0.02 * want.rtt_ms + 4 * se, (got, want)


def test_a_private_network_is_not_routed_across(field: control.LabInfo) -> None:
    eu2_public = _truth(field, "eu1", "eu2", "public").address
    eu1_private = _truth(field, "eu2", "eu1", "eu").address
    before = control.emulator_stats(field).dropped_cross_network
    # from eu1's private address to eu2's public one: the emulator drops every packet
    assert _ping(field, "eu1", eu2_public, "-I", eu1_private)["received"] == 0
    assert control.emulator_stats(field).dropped_cross_network >= before + 30
    # a region's private network does not exist for the other region's hosts
    us1_private = next(
        a for h in load(field.paths.truth, LabTruth).hosts if h.name == "us1"
        for n, a in h.addresses.items() if n == "us"
    )  # fmt: skip
    assert "unreachable" in _run(field, "eu1", "ping", "-n", "-c", "1", "-W", "1", us1_private)


LISTEN = (
    "import socket, sys\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(); s.settimeout(float(sys.argv[2]))\n"
    "print('ready', flush=True)\n"
    "try:\n    print('from', s.accept()[1][0], flush=True)\n"
    "except TimeoutError:\n    print('nobody', flush=True)\n"
)
CONNECT = (
    "import socket, sys\n"
    "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "    print('connected')\n"
    "except OSError as exc:\n    print('failed', exc)\n"
)


def _listen(lab: control.LabInfo, host: str, port: int, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        lab.exec_argv(host, sys.executable, "-c", LISTEN, str(port), str(seconds)),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_host_behind_nat_connects_out_and_nothing_connects_in(field: control.LabInfo) -> None:
    hosts = {h.name: h for h in load(field.paths.truth, LabTruth).hosts}
    gw1_public, eu1_public = hosts["gw1"].addresses["public"], hosts["eu1"].addresses["public"]
    assert hosts["home1"].addresses == {"public": gw1_public} and hosts["home1"].nat == "gw1"
    # out: ping and TCP work, and the peer sees the gateway's public address
    assert _ping(field, "home1", eu1_public)["received"] == 30
    server = _listen(field, "eu1", 5301, 10)
    assert "connected" in _run(field, "home1", sys.executable, "-c", CONNECT, eu1_public, "5301")
    out, _ = server.communicate(timeout=15)
    assert out.split() == ["from", gw1_public]
    # in: a listener on home1 is reached neither through the gateway's address nor its own
    server = _listen(field, "home1", 5302, 4)
    for target in (gw1_public, hosts["home1"].address):
        assert "failed" in _run(field, "eu1", sys.executable, "-c", CONNECT, target, "5302")
    out, _ = server.communicate(timeout=10)
    assert out.split() == ["nobody"]
    lan_ping = _run(field, "eu1", "ping", "-n", "-c", "1", "-W", "1", hosts["home1"].address)
    assert "unreachable" in lan_ping  # no peer has a route into a NAT LAN
    # SSH reaches it through its gateway, as the inventory says
    ssh = subprocess.run(
        ["ssh", "-F", str(field.paths.ssh_config), "home1", "hostname"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert ssh.stdout.strip() == "home1", ssh.stderr


def test_lab_down_leaves_nothing(field: control.LabInfo) -> None:
    """Runs last: the veths and the gateways' nftables rules live inside the namespaces."""
    marker = str(field.paths.root)
    control.down(field.name, echo=False)
    deadline = time.monotonic() + 5
    while netns.processes_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert netns.list_netns(field.prefix) == []
    assert netns.list_links(field.prefix) == []
    assert netns.processes_with_marker(marker) == []
    assert not Path(marker).exists()
