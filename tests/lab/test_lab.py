"""The lab with real sshd, ping and iperf3: what the rest of probe is tested against."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from probe.lab import control, netns
from probe.lab.state import LabTruth, load
from tests.conftest import ROOT, RUN_TAG, Truth, unique_topology

pytestmark = pytest.mark.lab
TINY = ROOT / "tests" / "fixtures" / "lab" / "tiny.yaml"


def ns_run(lab: control.LabInfo, host: str, *argv: str, timeout: float = 60) -> str:
    proc = subprocess.run(
        lab.exec_argv(host, *argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.stdout + proc.stderr


def address(lab: control.LabInfo, host: str) -> str:
    return next(h.address for h in load(lab.paths.truth, LabTruth).hosts if h.name == host)


def test_controller_reaches_only_the_jump_host(lab: control.LabInfo) -> None:
    get = subprocess.run(
        ["ip", "route", "get", address(lab, "eu1")], capture_output=True, text=True
    )
    assert (get.returncode != 0 and "unreachable" in get.stderr.lower() + get.stdout.lower()) or (
        "No route" in get.stderr
    )
    assert "default" not in ns_run(lab, "eu1", "ip", "route", "show")
    assert "default" not in ns_run(lab, "bastion", "ip", "route", "show")


async def test_asyncssh_reaches_every_host_through_one_jump_connection(
    lab: control.LabInfo,
) -> None:
    kw = {
        "username": "root",
        "client_keys": [str(lab.paths.client_key)],
        "known_hosts": str(lab.paths.known_hosts),
    }
    jump_addr = json.loads(lab.paths.state.read_text())
    del jump_addr
    ssh_config = lab.paths.ssh_config.read_text()
    bastion = re.search(r"Host bastion\n\s+HostName (\S+)", ssh_config)
    assert bastion is not None, ssh_config
    jump_host = bastion.group(1)
    async with asyncssh.connect(jump_host, **kw) as jump:
        names = {}
        for host in lab.hosts:
            if host == lab.jump:
                continue
            async with asyncssh.connect(address(lab, host), tunnel=jump, **kw) as conn:
                hostname = (await conn.run("hostname", check=True)).stdout
                assert isinstance(hostname, str), hostname
                names[host] = hostname.strip()
            # the controller holds exactly one TCP connection to the jump host's sshd
            established = ns_run(
                lab, "bastion", "ss", "-Htn", "state", "established", "sport", "= :22"
            )
            assert len(established.strip().splitlines()) == 1
    assert names == {h: h for h in lab.hosts if h != lab.jump}


def _ping(lab: control.LabInfo, src: str, dst: str, count: int, interval: str) -> dict[str, float]:
    out = ns_run(lab, src, "ping", "-n", "-q", "-c", str(count), "-i", interval, address(lab, dst))
    m = re.search(r"(\d+) received.*?([\d.]+)% packet loss", out)
    r = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    assert m, out
    stats = {"received": float(m.group(1)), "loss_pct": float(m.group(2))}
    if r:
        stats |= {"avg": float(r.group(2)), "mdev": float(r.group(4))}
    return stats


@pytest.mark.parametrize(
    ("src", "dst"), [("eu1", "eu2"), ("eu1", "us1"), ("us2", "ap1"), ("home1", "us1")]
)
def test_ping_matches_truth(lab: control.LabInfo, truth: Truth, src: str, dst: str) -> None:
    want = truth[src, dst]
    got = _ping(lab, src, dst, count=60, interval="0.05")
    se = want["rtt_std_ms"] / 60**0.5  # the mean of 60 jittered samples is itself random
    assert abs(got["avg"] - want["rtt_ms"]) <= 0.5 + 0.02 * want["rtt_ms"] + 4 * se, (got, want)
    if want["rtt_std_ms"] >= 1.0:  # std of 60 samples: ~10 % sampling error; allow 30 %
        assert got["mdev"] == pytest.approx(want["rtt_std_ms"], rel=0.3), (got, want)


def test_loss_matches_truth(lab: control.LabInfo, truth: Truth) -> None:
    want = truth["ap1", "ap2"]["loss_pct"]  # 1 % each way: 1.99 % round trip
    got = _ping(lab, "ap1", "ap2", count=1000, interval="0.005")
    sd = 100 * (want / 100 * (1 - want / 100) / 1000) ** 0.5
    assert abs(got["loss_pct"] - want) <= 4 * sd + 0.1, (got, want)
    assert _ping(lab, "ap1", "eu1", count=20, interval="0.01")["loss_pct"] == 0.0


@pytest.mark.parametrize(("src", "dst", "seconds"), [("eu2", "us2", 4), ("us1", "ap2", 6)])
def test_iperf3_rate_matches_truth(
    lab: control.LabInfo, truth: Truth, src: str, dst: str, seconds: int
) -> None:
    want = truth[src, dst]["tcp_max_fwd_bps"]
    server = subprocess.Popen(
        lab.exec_argv(dst, "iperf3", "-s", "-1", "-p", "5301"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        out = ns_run(
            lab,
            src,
            "iperf3",
            "-c",
            address(lab, dst),
            "-p",
            "5301",
            "-t",
            str(seconds),
            "-O",
            "2",
            "-R",
            "-J",
            timeout=seconds + 20,
        )
    finally:
        server.kill()
        server.wait()
    doc = json.loads(out)
    # -R: data flows dst -> src, so compare with the reverse rate of (src, dst)
    got = doc["end"]["sum_received"]["bits_per_second"]
    want = truth[src, dst]["tcp_max_rev_bps"]
    assert got == pytest.approx(want, rel=0.05), (got / 1e6, want / 1e6)


def test_emulator_reports_counters(lab: control.LabInfo) -> None:
    _ping(lab, "eu1", "us1", count=3, interval="0.01")
    pairs = control.emulator_stats(lab).pairs
    assert len(pairs) == len(lab.hosts) * (len(lab.hosts) - 1)
    assert pairs["eu1", "us1"].packets >= 3 and pairs["us1", "eu1"].packets >= 3


def _leftovers(prefix: str, marker: str) -> list[str]:
    left = [f"netns {n}" for n in netns.list_netns(prefix)]
    left += [f"link {n}" for n in netns.list_links(prefix)]
    left += [f"pid {p}" for p in netns.processes_with_marker(marker)]
    return left


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """The 3-host life-cycle lab under this test run's own name and prefix."""
    return unique_topology(TINY, tmp_path, slot=1)


def test_down_leaves_nothing_even_after_the_supervisor_was_killed(
    lab: control.LabInfo, tiny: Path
) -> None:
    info = control.up(str(tiny), echo=False)
    marker = str(info.paths.root)
    assert len(netns.list_netns(info.prefix)) == 3
    # a stray process started "over SSH" inside a host, then a SIGKILLed supervisor
    stray = subprocess.Popen(["ip", "netns", "exec", info.netns("ta"), "sleep", "300"])
    os.kill(json.loads(info.paths.state.read_text())["supervisor_pid"], signal.SIGKILL)
    control.down(info.name, echo=False)
    stray.wait(timeout=5)
    assert _leftovers(info.prefix, marker) == []
    assert not Path(marker).exists()
    control.down(info.name, echo=False)  # idempotent
    # the session lab is untouched
    assert len(netns.list_netns(lab.prefix)) == len(lab.hosts)


def test_second_up_replaces_the_first(lab: control.LabInfo, tiny: Path) -> None:
    first = control.up(str(tiny), echo=False)
    first_pid = json.loads(first.paths.state.read_text())["supervisor_pid"]
    second = control.up(str(tiny), echo=False)
    try:
        assert not Path(f"/proc/{first_pid}").exists()
        assert len(netns.list_netns(second.prefix)) == 3
    finally:
        control.down(second.name, echo=False)
    assert _leftovers(second.prefix, str(second.paths.root)) == []


def test_without_root_the_cli_says_so_in_one_line() -> None:
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(ROOT / ".venv" / "bin" / "probe"),
            "lab",
            "up",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "needs root" in proc.stderr


def test_down_of_a_lab_that_is_gone_touches_no_other_lab(lab: control.LabInfo) -> None:
    control.down("no-such-lab", echo=False)
    control.down(f"tiny-{RUN_TAG}", echo=False)
    assert len(netns.list_netns(lab.prefix)) == len(lab.hosts)
