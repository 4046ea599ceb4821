"""Hosts unlike the others, on a running lab (tests/fixtures/lab/field-hosts.yaml): a firewall
dropping the iperf3 ports, a non-root login with and without unprivileged ICMP, busybox ping
and timeout, CUBIC beside BBR — and nothing of it left after ``lab down``.

The lab keeps its file's own name, prefix and controller link (fb, fb-, 198.19.249.0/30), which
no other lab file uses; it comes up once for this module and its last test takes it down.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from probe.inventory import load_inventory
from probe.lab import control, hostsetup
from probe.lab.state import LabState, LabTruth, load
from tests.conftest import lab_up
from tests.lab.conftest import FIELD_HOSTS
from tests.lab.test_lab import _leftovers, address

pytestmark = pytest.mark.lab
USER = "probefb"  # field-hosts.yaml's login on nonroot and noicmp


@pytest.fixture(scope="module")
def allowed_before() -> str:
    """The machine's allowed congestion controls before the lab (it adds cubic while up)."""
    return hostsetup.ALLOWED_CC.read_text()


@pytest.fixture(scope="module")
def field(allowed_before: str) -> Iterator[control.LabInfo]:
    with lab_up(FIELD_HOSTS) as info:
        yield info


def _as_host(lab: control.LabInfo, host: str, *argv: str, timeout: float = 30) -> str:
    """``argv`` as ``lab exec`` runs it (the host's network and mount namespaces, no SSH)."""
    proc = subprocess.run(
        control.host_command(lab, host, list(argv)).argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.stdout + proc.stderr


async def _over_ssh(lab: control.LabInfo, host: str, command: str) -> asyncssh.SSHCompletedProcess:
    """``command`` over SSH as the rendered inventory says: its user, key, known hosts, jump."""
    inventory = load_inventory(lab.inventory)
    target, jump = inventory.host(host).ssh, inventory.host(lab.jump).ssh
    assert target.via == (lab.jump,)
    kw = {"client_keys": list(target.identity), "known_hosts": inventory.known_hosts}
    async with (
        asyncssh.connect(jump.host, username=jump.user, **kw) as hop,
        asyncssh.connect(target.host, username=target.user, tunnel=hop, **kw) as conn,
    ):
        return await conn.run(command, check=False)


def _iperf3(lab: control.LabInfo, client: str, server: str, port: int) -> dict[str, object]:
    """A 1 s test, iperf3 -J's document; its client gives up connecting after 3 s."""
    listener = subprocess.Popen(
        lab.exec_argv(server, "iperf3", "-s", "-1", "-p", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        out = subprocess.run(
            lab.exec_argv(client, "iperf3", "-c", address(lab, server), "-p", str(port),
                          "-t", "1", "--connect-timeout", "3000", "-J"),
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout  # fmt: skip
    finally:
        listener.kill()
        listener.wait()
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


def test_the_firewall_drops_the_iperf3_ports_while_ping_and_ssh_pass(
    field: control.LabInfo,
) -> None:
    """fw drops inbound TCP to 5201-5299: a client's connect times out (no reset); a port
    outside the range, ping, SSH and fw's own outbound tests all pass; truth.json expects the
    tests into fw blocked."""
    blocked = _iperf3(field, "nonroot", "fw", 5201)
    assert "Connection timed out" in str(blocked.get("error")), blocked.get("error")
    assert "error" not in _iperf3(field, "nonroot", "fw", 5301)
    assert "error" not in _iperf3(field, "fw", "bbox", 5201)  # outbound: replies pass
    ping = _as_host(field, "nonroot", "ping", "-n", "-c", "3", "-i", "0.2", address(field, "fw"))
    assert " 0% packet loss" in ping, ping
    assert "tcp dport 5201-5299 drop" in _as_host(field, "fw", "nft", "list", "ruleset")
    truth = load(field.paths.truth, LabTruth)
    status = {(p.src, p.dst): p.bw_status for p in truth.pairs}
    assert status["nonroot", "fw"] == "blocked" and status["fw", "nonroot"] is None


async def test_a_user_host_logs_in_as_its_account_with_a_home_of_its_own(
    field: control.LabInfo,
) -> None:
    """The lab added the account (recorded in state.json, marked in its GECOS field); the
    rendered inventory logs in as it; its home is a tmpfs of that host only."""
    entry = pwd.getpwnam(USER)
    assert entry.pw_gecos == hostsetup.account_marker(field.paths)
    assert load(field.paths.state, LabState).created_users == (USER,)
    result = await _over_ssh(field, "nonroot", "id -u; id -un; cd && pwd && touch x && echo ok")
    uid, name, home, ok = str(result.stdout).split()
    assert (int(uid), name, home, ok) == (entry.pw_uid, USER, f"/home/{USER}", "ok")
    assert int(uid) != 0 and not await asyncio.to_thread(Path(home).exists)  # the host's only
    ping = await _over_ssh(field, "nonroot", f"ping -n -c 2 -i 0.2 {address(field, 'fw')}")
    assert ping.exit_status == 0, ping.stderr  # unprivileged ICMP, as on most cloud images


async def test_a_host_without_unprivileged_icmp_cannot_ping_as_its_account(
    field: control.LabInfo,
) -> None:
    """noicmp: probe check's "this account lacks ICMP" case. Root there still pings."""
    denied = await _over_ssh(field, "noicmp", f"ping -n -c 1 -W 2 {address(field, 'fw')}")
    assert denied.exit_status != 0 and "Operation not permitted" in str(denied.stderr)
    groups = _as_host(field, "noicmp", "cat", "/proc/sys/net/ipv4/ping_group_range")
    assert groups.split() == ["1", "0"]
    root = _as_host(field, "noicmp", "ping", "-n", "-c", "1", address(field, "fw"))
    assert " 0% packet loss" in root, root


async def test_the_busybox_host_runs_busybox_ping_and_timeout(field: control.LabInfo) -> None:
    for tool in ("ping", "timeout"):
        assert "BusyBox v1." in _as_host(field, "bbox", tool, "--help")
    assert "iputils" in _as_host(field, "fw", "ping", "-V")  # the other hosts keep theirs
    result = await _over_ssh(
        field, "bbox", f"ping --help 2>&1 | head -1; timeout 5 ping -c 2 {address(field, 'fw')}"
    )
    assert result.exit_status == 0, result.stderr
    assert str(result.stdout).startswith("BusyBox v1.") and "2 packets received" in str(
        result.stdout
    )


def test_each_host_has_its_congestion_control(field: control.LabInfo) -> None:
    """Per namespace: fw cubic, nonroot bbr; iperf3 names both ends' algorithms."""
    for host, cc in (("fw", "cubic"), ("nonroot", "bbr")):
        got = _as_host(field, host, "cat", "/proc/sys/net/ipv4/tcp_congestion_control")
        assert got.strip() == cc
    end = _iperf3(field, "fw", "nonroot", 5201)["end"]
    assert isinstance(end, dict)
    assert (end["sender_tcp_congestion"], end["receiver_tcp_congestion"]) == ("cubic", "bbr")
    truth = {h.name: h.cc for h in load(field.paths.truth, LabTruth).hosts}
    assert truth == {"fbj": None, "fw": "cubic", "nonroot": "bbr", "noicmp": None, "bbox": None}


def test_down_leaves_no_namespace_account_or_process(
    field: control.LabInfo, allowed_before: str
) -> None:
    """Last: nft tables and sysctls went with the namespaces, the tool mounts with the mount
    namespaces; the account and the machine's allowed congestion controls are as before."""
    marker = str(field.paths.root)
    control.down(field.name, echo=False)
    assert _leftovers(field.prefix, marker) == []
    assert not Path(marker).exists()
    with pytest.raises(KeyError):
        pwd.getpwnam(USER)
    assert hostsetup.ALLOWED_CC.read_text() == allowed_before
