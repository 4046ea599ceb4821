"""Non-root accounts and smaller tools (issue 13): what preflight finds of them, what a run makes
of it, and what ``probe check`` says. Real shells and real busybox where the machine has them;
the refusals are real captures (tests/fixtures/ping/local/denied)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from probe.cli.measure import render_check
from probe.measure.check import HostCheck, account_findings, check_hosts
from probe.measure.connect import PREFLIGHT_SCRIPT, TOOL_DEADLINE_S, parse_preflight
from probe.measure.remote import GATED_SPAWN_SCRIPT, KILL_SCRIPT, SPAWN_SCRIPT
from probe.model import CellStatus
from probe.tools.iperf3 import iperf3_client_argv, iperf3_server_argv
from probe.tools.ping import FANOUT_SCRIPT
from tests.measure.test_check import ANSWERS, PREFLIGHT, FakeConnector, _inventory
from tests.measure.test_measurement import inventory
from tests.measure.test_preflight import Fleet, cells, hosts, measure

DENIED = Path(__file__).parent.parent / "fixtures" / "ping" / "local" / "denied"
IPUTILS_DENIED = (DENIED / "iputils-20221126.stderr").read_text()
BUSYBOX_DENIED = (DENIED / "busybox-1.35.stderr").read_text()
FPING_DENIED = "fping: can't create socket (must run as root?)\n"  # fping 5.1, uid 65534, no cap
BUSYBOX_V = (  # busybox 1.35's ping -V, stderr
    "ping: invalid option -- 'V'\n"
    "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n"
)


def said(tool: str, stderr: str) -> str:
    """What preflight prints of ``tool``'s ICMP probe that wrote ``stderr``."""
    return "".join(f"icmp-said {tool} {line}\n" for line in stderr.splitlines())


# --- preflight ----------------------------------------------------------------------------------


def test_parse_preflight_keeps_the_line_that_says_the_account_may_not() -> None:
    found = parse_preflight(
        "have ping\nhave fping\nversion ping ping from iputils 20221126\n"
        + said("ping", IPUTILS_DENIED)
        + said("fping", FPING_DENIED)
        + "ping_group_range 1\t0\ngroups 1000 27\n"
    )
    assert found.icmp_denied == {
        "ping": "ping: socket: Operation not permitted",
        "fping": "fping: can't create socket (must run as root?)",
    }
    assert found.tools["groups"] == "1000 27"
    allowed = parse_preflight(
        "have ping\n" + said("ping", "ping: sendmsg: Operation not permitted")
    )
    assert allowed.icmp_denied == {}  # a firewall refusing the packet: the account may ping


def _run_preflight(bin_dir: Path, shell: Sequence[str] = ("sh",)) -> str:
    deadline = f"timeout -k 1 {TOOL_DEADLINE_S} "
    assert deadline in PREFLIGHT_SCRIPT
    return subprocess.run(
        [*shell, "-c", PREFLIGHT_SCRIPT.replace(deadline, "timeout -k 1 2 ")],
        capture_output=True, text=True, timeout=30, check=True,
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
    ).stdout  # fmt: skip


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


SHELLS = [
    pytest.param(argv, id=argv[0], marks=pytest.mark.skipif(
        shutil.which(argv[0]) is None, reason=f"{argv[0]} not installed"))
    for argv in (("sh",), ("busybox", "sh"))
]  # fmt: skip


@pytest.mark.parametrize("shell", SHELLS)
def test_preflight_names_busybox_ping_and_finds_an_account_refused_icmp(
    tmp_path: Path, shell: tuple[str, ...]
) -> None:
    """A ping that complains about -V before naming itself (busybox) and refuses this account
    its socket, as busybox 1.35 does as uid 65534; an fping that does the same."""
    (tmp_path / "denied").write_text(BUSYBOX_DENIED)
    (tmp_path / "busybox_v").write_text(BUSYBOX_V)
    _script(
        tmp_path / "ping",
        f"""#!/bin/sh
[ "$1" = -V ] && {{ cat {tmp_path}/busybox_v >&2; exit 1; }}
echo 'PING 127.0.0.1 (127.0.0.1): 56 data bytes'; cat {tmp_path}/denied >&2; exit 1
""",
    )
    _script(
        tmp_path / "fping",
        f"""#!/bin/sh
[ "$1" = -v ] && {{ echo 'fping: Version 5.1'; exit 0; }}
printf '%s\\n' "{FPING_DENIED.strip()}" >&2; exit 4
""",
    )
    found = parse_preflight(_run_preflight(tmp_path, shell))
    assert found.tools["ping"] == BUSYBOX_V.splitlines()[1]
    assert found.tools["fping"] == "fping: Version 5.1"
    assert found.icmp_denied == {
        "ping": "ping: permission denied (are you root?)",
        "fping": FPING_DENIED.strip(),
    }
    groups = subprocess.run(["id", "-G"], capture_output=True, text=True, check=True).stdout
    assert found.tools["groups"] == groups.strip()


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
def test_preflight_with_busybox_applets_for_ping_and_timeout(tmp_path: Path) -> None:
    """The real thing: ping and timeout are busybox (its timeout execs the tool in its own
    PID, so a tool it kills exits 143, not 124)."""
    busybox = shutil.which("busybox")
    assert busybox is not None
    for applet in ("ping", "timeout"):
        (tmp_path / applet).symlink_to(busybox)
    found = parse_preflight(_run_preflight(tmp_path, ("busybox", "sh")))
    assert found.tools["ping"] is not None and found.tools["ping"].startswith("BusyBox v")
    if not _busybox_may_ping(busybox):
        assert found.icmp_denied["ping"] == "ping: permission denied (are you root?)"
    else:
        assert "ping" not in found.icmp_denied


def _busybox_may_ping(busybox: str) -> bool:
    probe = [busybox, "ping", "-c", "1", "-W", "1", "127.0.0.1"]
    return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0


# --- the run ------------------------------------------------------------------------------------


class Accounts(Fleet):
    """Fleet whose hosts have fping too (``fping``) and whose accounts may not use ping or fping
    (``denied``: host → tools)."""

    def __init__(
        self, n: int, *, fping: Sequence[str] = (), denied: dict[str, tuple[str, ...]]
    ) -> None:
        super().__init__(inventory(n).hosts)
        self.fping, self.denied = set(fping), denied

    def preflight(self, host: str) -> str:
        text = super().preflight(host)
        if host in self.fping:
            text += "have fping\nversion fping fping: Version 5.1\n"
        refusals = {"ping": IPUTILS_DENIED, "fping": FPING_DENIED}
        return text + "".join(said(t, refusals[t]) for t in self.denied.get(host, ()))


def test_a_source_refused_icmp_has_no_rtt_cells_and_says_why() -> None:
    pool = Accounts(3, denied={"h0": ("ping",)})
    records, _, _ = measure(pool, 3, bandwidth=False)
    assert hosts(records)["h0"].status is CellStatus.OK  # the host is fine: only ICMP is not
    for rec in cells(records, "ping"):
        if rec.src == "h0":
            assert rec.status is CellStatus.ERROR and rec.reason is not None
            assert rec.reason.startswith(
                "source h0: ping may not send ICMP as this account "
                "(ping: socket: Operation not permitted)"
            )
        else:
            assert rec.status is CellStatus.OK  # towards h0 too
    assert not [argv for host, argv in pool.spawned if host == "h0" and argv[0] != "iperf3"]


def test_an_fping_refused_its_socket_falls_back_to_ping() -> None:
    pool = Accounts(3, fping=["h0", "h1"], denied={"h0": ("fping",)})
    records, _, _ = measure(pool, 3, bandwidth=False)
    tools = {host: argv[0] for host, argv in pool.spawned if argv[0] != "iperf3"}
    assert tools["h0"] == "sh" and tools["h1"] == "fping"  # the fan-out script pings from h0
    assert {r.status for r in cells(records, "ping") if r.src == "h0"} == {CellStatus.OK}


# --- probe check --------------------------------------------------------------------------------

DENIED_PREFLIGHT = (
    PREFLIGHT["full"].replace("ping_group_range 0\t2147483647", "ping_group_range 1\t0")
    + "groups 1000 27\n"
    + said("ping", IPUTILS_DENIED)
)


def _checks(**answers: str) -> tuple[HostCheck, ...]:
    return asyncio.run(check_hosts(_inventory("a", "b"), FakeConnector(set(), dict(answers))))


def test_check_says_what_the_account_lacks_and_what_it_costs() -> None:
    a, b = _checks(a=DENIED_PREFLIGHT, b=str(ANSWERS["a"]))
    assert not a.ready and a.usable and b.ready
    assert account_findings(a) == (
        'no ICMP for this account: ping says "ping: socket: Operation not permitted"; '
        "ping_group_range 1 0 excludes gids 1000 27 and ping has neither setuid nor "
        "cap_net_raw → no RTT cells from this host (bandwidth tests still run)",
    )
    assert account_findings(b) == ()
    lines = render_check((a, b)).splitlines()
    assert lines[-1].startswith("a: no ICMP for this account") and len(lines) == 5


def test_check_says_fping_falls_back_to_ping_and_names_a_busybox_ping() -> None:
    fping = "have fping\nversion fping fping: Version 5.1\n" + said("fping", FPING_DENIED)
    busybox = PREFLIGHT["full"].replace(
        "version ping ping from iputils 20221126", f"version ping {BUSYBOX_V.splitlines()[1]}"
    )
    a, b = _checks(a=PREFLIGHT["full"] + fping, b=busybox)
    assert a.ready and b.ready and b.ping_flavor == "busybox" and a.ping_flavor == "iputils"
    assert account_findings(a) == (
        'fping may not open its ICMP socket ("fping: can\'t create socket (must run as root?)"; '
        "not setuid, no cap_net_raw) → falls back to ping",
    )
    notes = render_check((a, b)).splitlines()[4:]
    assert notes == [
        "a: fping may not open its ICMP socket (\"fping: can't create socket (must run as "
        'root?)"; not setuid, no cap_net_raw) → falls back to ping',
        "b: ping is busybox",
    ]


def test_a_ping_that_needs_setuid_inside_the_range() -> None:
    """In the range but refused: this ping opens raw sockets only (busybox, old iputils)."""
    text = DENIED_PREFLIGHT.replace("ping_group_range 1\t0", "ping_group_range 0\t2147483647")
    (a, _) = _checks(a=text, b=text)
    assert "includes gid 1000" in account_findings(a)[0]


# --- what an account may write -----------------------------------------------------------------


def test_every_remote_file_is_under_the_accounts_tmpdir() -> None:
    """An unprivileged account may write little more than ``$TMPDIR`` (default /tmp): the one
    remote temp directory (the ping fan-out's) is made there, no command names another path,
    and iperf3 writes no file (no --logfile, --pidfile, -F)."""
    scripts = {
        "fan-out": FANOUT_SCRIPT, "preflight": PREFLIGHT_SCRIPT, "spawn": SPAWN_SCRIPT,
        "gated spawn": GATED_SPAWN_SCRIPT, "kill": KILL_SCRIPT,
    }  # fmt: skip
    assert 'mktemp -d "${TMPDIR:-/tmp}/probe-ping.XXXXXX"' in FANOUT_SCRIPT
    for name, script in scripts.items():
        elsewhere = script.replace("${TMPDIR:-/tmp}", "$TMPDIR")
        assert not re.search(r"/tmp|/var/|/home|\$HOME|~/|/run/", elsewhere), name
        assert "mktemp" not in script or name == "fan-out"
    iperf3 = [
        *iperf3_server_argv(5201, idle_timeout_s=30),
        *iperf3_client_argv("10.0.0.1", 5201, duration_s=10, omit_s=1, reverse=True, streams=4),
    ]
    assert not {"--logfile", "--pidfile", "-F", "--file"} & set(iperf3)
