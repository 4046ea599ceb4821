"""What preflight finds and what the run makes of it (issue 12, cases 4–6), with the fake
connector of ``test_measurement``: a tool that hangs skips its tests at once (``tool-hung``),
iperf3 already running on a host is a loud warning, a stalled iperf3 test is ``stalled`` (its
result kept, never a goodput), and every reason a cell gets names its host and tool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.errors import StoreError
from probe.matrix.build import build_matrix
from probe.measure.bandwidth import BandwidthOptions
from probe.measure.connect import PREFLIGHT_SCRIPT, TOOL_DEADLINE_S, parse_preflight
from probe.measure.context import RunOptions
from probe.measure.measurement import Measurement
from probe.measure.remote import Secret
from probe.model import CellStatus, CommandResult, Host
from probe.store.records import (
    CellRecord,
    HostRecord,
    Iperf3MultiRecord,
    Iperf3Record,
    SampleRecord,
    decode_record,
    encode_record,
)
from probe.store.rundoc import InventoryRef, RunDoc, RunHost
from probe.tools.iperf3 import parse_iperf3
from tests.measure.test_measurement import (
    FIXTURES,
    FakePool,
    FakeProcess,
    inventory,
    ping_output,
)

STALLS = sorted((FIXTURES / "iperf3" / "loopback").glob("iperf3.12_stall_*.json"))
HUNG_IPERF3 = f"iperf3 hangs on h1 (no answer to --version within {TOOL_DEADLINE_S} s)"

#: What an iperf3 client prints on a host: (exit status, stdout), or None for a good result.
ClientAnswer = Callable[[str, Sequence[str]], tuple[int | None, str] | None]


class AnsweringProcess(FakeProcess):
    """A fake process whose output is the ``Fleet``'s: its ping fan-outs and iperf3 clients."""

    def __init__(self, pool: Fleet, host: str, argv: Sequence[str], gated: bool) -> None:
        super().__init__(pool, host, argv, gated)
        self.fleet = pool

    async def wait(self, timeout_s: float) -> CommandResult:
        res = await super().wait(timeout_s)
        if self.argv[0] != "iperf3":
            return replace(res, stdout=self.fleet.fanout(self.argv))
        given = self.fleet.client(self.host, self.argv)
        if given is None:
            return res
        status, stdout = given
        return replace(res, exit_status=status, stdout=stdout, elapsed_s=1.0)


class Fleet(FakePool):
    """FakePool with more faults: ``hung`` tools and iperf3 processes already ``running`` per
    host (in its preflight answer), ping targets whose train was killed (``killed``) or lost
    every probe (``lost``), and iperf3 clients answering as ``client`` says. Every spawn is
    kept with its host in ``spawned``."""

    def __init__(
        self,
        hosts: Sequence[Host],
        broken: dict[str, str] | None = None,
        *,
        hung: dict[str, tuple[str, ...]] | None = None,
        running: dict[str, int] | None = None,
        killed: Sequence[str] = (),
        lost: Sequence[str] = (),
        client: ClientAnswer = lambda _host, _argv: None,
    ) -> None:
        super().__init__(hosts, broken)
        self.hung, self.running = hung or {}, running or {}
        self.killed, self.lost, self.client = set(killed), set(lost), client
        self.spawned: list[tuple[str, tuple[str, ...]]] = []

    def preflight(self, host: str) -> str:
        lines = ["have ping", "have timeout", "ping_group_range 0\t2147483647"]
        if self.broken.get(host) != "no-iperf3":
            lines.append("have iperf3")
        for tool, version in (("ping", "ping from iputils 20221126"), ("iperf3", "iperf 3.12")):
            hangs = tool in self.hung.get(host, ())
            lines.append(f"hung {tool}" if hangs else f"version {tool} {version}")
        if "fping" in self.hung.get(host, ()):  # fping is optional: only where it hangs here
            lines += ["have fping", "hung fping"]
        lines.append(f"running iperf3 {self.running.get(host, 0)}")
        return "\n".join(lines) + "\n"

    def fanout(self, argv: Sequence[str]) -> str:
        out = []
        for k, address in enumerate(argv[8:], 1):  # sh -c SCRIPT sh COUNT INTERVAL TIMEOUT MAX
            if address in self.killed:
                continue  # no frame: the script was killed before printing it
            rc, text = (
                (1, lost_output(address)) if address in self.lost else (0, ping_output(address))
            )
            out.append(f"@@probe-ping {k} {rc}\n{text}@@probe-ping-stderr {k}\n")
        return "".join(out)

    async def run(
        self, host: str, argv: Sequence[str], *, timeout_s: float | None = None
    ) -> CommandResult:
        if argv[0] == "sh" and "have" in argv[2]:
            self.commands.append(tuple(argv))
            return CommandResult(tuple(argv), 0, self.preflight(host), "", 0.1)
        return await super().run(host, argv, timeout_s=timeout_s)

    async def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        max_lifetime_s: float,
        gated: bool = False,
        secrets: Sequence[Secret] = (),
    ) -> FakeProcess:
        self.commands.append(tuple(argv))
        self.spawned.append((host, tuple(argv)))
        self.gated += gated
        return AnsweringProcess(self, host, argv, gated)


def lost_output(address: str) -> str:
    return (
        f"PING {address} ({address}) 56(84) bytes of data.\n\n--- {address} ping statistics ---\n"
        "3 packets transmitted, 0 received, 100% packet loss, time 2003ms\n"
    )


def measure(pool: Fleet, n: int, **opts: Any) -> tuple[list[SampleRecord], list[str], RunDoc]:
    """Run every phase over ``pool``; the records, what was said, and a run.json for them."""
    inv = inventory(n)
    records: list[SampleRecord] = []
    said: list[str] = []
    options = RunOptions(**{"count": 3, "bw": BandwidthOptions(duration_s=1, omit_s=0), **opts})

    async def go() -> None:
        m = Measurement(inv, pool, options, records.append, said.append)
        await m.connect()
        await m.ping_mesh()
        await m.bandwidth()

    asyncio.run(go())
    run = RunDoc(
        run_id="r", probe_version="0", inventory=InventoryRef("fake.yaml", "0"),
        started_utc="2026-11-30T00:00:00Z", hosts=tuple(RunHost.of(h) for h in inv.hosts),
    )  # fmt: skip
    return records, said, run


def fleet(n: int, **faults: Any) -> Fleet:
    return Fleet(inventory(n).hosts, **faults)


def cells(records: list[SampleRecord], kind: str) -> list[CellRecord]:
    return [r for r in records if isinstance(r, CellRecord) and r.kind == kind]


def hosts(records: list[SampleRecord]) -> dict[str, HostRecord]:
    return {r.host: r for r in records if isinstance(r, HostRecord)}


# --- preflight's own answer ---------------------------------------------------------------------


def test_parse_preflight_finds_hung_tools_and_iperf3_already_running() -> None:
    found = parse_preflight(
        "have ping\nhave iperf3\nhave fping\nhave timeout\n"
        "version ping ping from iputils 20221126\nhung iperf3\nversion fping fping: Version 5.1\n"
        "ping_group_range 1\t0\nrunning iperf3 2\n"
    )
    assert found.tools["iperf3"] is None and found.tools["fping"] == "fping: Version 5.1"
    assert found.tools["ping"] == "ping from iputils 20221126"
    assert found.hung == {"iperf3": f"no answer to --version within {TOOL_DEADLINE_S} s"}
    assert found.already_running == {"iperf3": 2}
    quiet = parse_preflight("have ping\nhave iperf3\nversion iperf3 iperf 3.12\nrunning iperf3 0\n")
    assert quiet.hung == {} and quiet.already_running == {} and quiet.tools["iperf3"]
    assert "iperf3_features" not in quiet.tools  # an iperf3 that lists none


def test_parse_preflight_keeps_iperf3s_optional_features() -> None:
    """They say whether iperf3 can authenticate (``--auth``)."""
    found = parse_preflight(
        "have iperf3\nversion iperf3 iperf 3.12 (cJSON 1.7.15)\n"
        "features iperf3 CPU affinity setting, authentication, bind to device\n"
    )
    assert found.tools["iperf3_features"] == "CPU affinity setting, authentication, bind to device"
    gone = parse_preflight("missing iperf3\nfeatures iperf3 authentication\n")
    assert "iperf3_features" not in gone.tools


def test_the_script_calls_a_hanging_tool_hung_and_counts_iperf3_processes(
    tmp_path: Path,
) -> None:
    """The real script under /bin/sh: a hanging ``iperf3`` (first on PATH) and a process named
    iperf3 already running. The deadline is cut to 1 s to keep the test short."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "iperf3").write_text("#!/bin/sh\nexec sleep 60\n")
    (bin_dir / "ping").write_text("#!/bin/sh\necho 'ping from iputils 20221126'\n")
    for tool in ("iperf3", "ping"):
        (bin_dir / tool).chmod(0o755)
    other = tmp_path / "other" / "iperf3"  # comm "iperf3": what /proc shows for a real one
    other.parent.mkdir()
    sleep = shutil.which("sleep")
    assert sleep is not None
    shutil.copy(sleep, other)
    deadline = f"timeout -k 1 {TOOL_DEADLINE_S} "
    assert deadline in PREFLIGHT_SCRIPT
    script = PREFLIGHT_SCRIPT.replace(deadline, "timeout -k 1 1 ")
    running = subprocess.Popen([str(other), "60"])
    try:
        out = subprocess.run(
            ["sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        ).stdout
    finally:
        running.kill()
        running.wait()
    found = parse_preflight(out)
    assert "hung iperf3" in out.splitlines(), out
    assert found.hung.keys() == {"iperf3"} and found.tools["iperf3"] is None
    assert found.tools["ping"] == "ping from iputils 20221126"
    assert found.already_running["iperf3"] >= 1  # ours; the hung one was stopped before


# --- case 6: a tool that hangs --------------------------------------------------------------


def test_a_hung_iperf3_skips_its_tests_without_running_any() -> None:
    pool = fleet(4, hung={"h1": ("iperf3",)})
    records, _, _ = measure(pool, 4)
    h1 = hosts(records)["h1"]
    assert h1.status is CellStatus.OK and h1.tools["iperf3"] is None
    assert h1.hung == {"iperf3": f"no answer to --version within {TOOL_DEADLINE_S} s"}
    tests = cells(records, "iperf3")
    assert len(tests) == 12
    for rec in tests:
        if "h1" in (rec.src, rec.dst):
            assert (rec.status, rec.reason) == (CellStatus.TOOL_HUNG, HUNG_IPERF3)
        else:
            assert rec.status is CellStatus.OK
    assert not [argv for host, argv in pool.spawned if host == "h1" and argv[0] == "iperf3"]
    assert not [argv for _, argv in pool.spawned if "10.0.0.2" in argv and argv[0] == "iperf3"]
    assert all(r.status is CellStatus.OK for r in cells(records, "ping"))


def test_a_hung_ping_fails_its_source_row_only() -> None:
    records, _, _ = measure(fleet(3, hung={"h2": ("ping",)}), 3, bandwidth=False)
    for rec in cells(records, "ping"):
        if rec.src == "h2":
            assert rec.status is CellStatus.TOOL_HUNG
            assert rec.reason == f"ping hangs on h2 (no answer to -V within {TOOL_DEADLINE_S} s)"
        else:
            assert rec.status is CellStatus.OK  # towards h2 too


def test_a_hung_fping_is_never_run_auto_pings_with_ping_and_fping_says_hung() -> None:
    """fping's version probe is preflight's too (one detection): ``--pinger auto`` pings with
    ping from a host whose fping hangs, ``--pinger fping`` makes that host's row tool-hung."""
    records, _, _ = measure(fleet(3, hung={"h0": ("fping",)}), 3, bandwidth=False)
    assert hosts(records)["h0"].hung == {"fping": f"no answer to -v within {TOOL_DEADLINE_S} s"}
    pings = cells(records, "ping")
    assert {r.status for r in pings} == {CellStatus.OK}
    assert all(r.argv[0] == "ping" for r in pings if r.src == "h0")
    records, _, _ = measure(fleet(3, hung={"h0": ("fping",)}), 3, bandwidth=False, pinger="fping")
    for rec in cells(records, "ping"):
        if rec.src == "h0":
            assert rec.status is CellStatus.TOOL_HUNG
            assert rec.reason == f"fping hangs on h0 (no answer to -v within {TOOL_DEADLINE_S} s)"
        else:
            assert (rec.status, rec.reason) == (
                CellStatus.TOOL_MISSING,
                f"fping missing on {rec.src}",
            )


def test_every_reason_names_its_host_and_tool() -> None:
    """Issue 12: five reasons of a hung-tool run named no host. Each fault here gives its own
    status; each reason names a host of its cell, and the tool when the tool failed."""
    stall = STALLS[0].read_text()

    def client(host: str, argv: Sequence[str]) -> tuple[int | None, str] | None:
        return {"h5": (None, ""), "h6": (0, stall)}.get(host)

    pool = fleet(
        8,
        broken={"h1": "unreachable", "h4": "no-iperf3"},
        hung={"h2": ("iperf3",), "h3": ("ping",)},
        killed=["10.0.0.6"],  # h5
        lost=["10.0.0.8"],  # h7
        client=client,
    )
    records, _, _ = measure(pool, 8)
    seen = set()
    for rec in records:
        if not isinstance(rec, CellRecord) or rec.reason is None:
            continue
        seen.add(rec.status)
        assert rec.src in rec.reason or rec.dst in rec.reason, rec
        if rec.status not in (CellStatus.UNREACHABLE, CellStatus.OK):
            tool = "ping" if rec.kind.startswith("ping") else "iperf3"
            assert tool in rec.reason, rec
    assert seen >= {
        CellStatus.UNREACHABLE, CellStatus.TOOL_HUNG, CellStatus.TOOL_MISSING, CellStatus.TIMEOUT,
        CellStatus.STALLED, CellStatus.ALL_LOST,
    }  # fmt: skip
    timeouts = {r.reason for r in cells(records, "iperf3") if r.status is CellStatus.TIMEOUT}
    assert "iperf3 client on h5 → server h6: no result within 1 s" in timeouts


# --- case 5: a stalled test -----------------------------------------------------------------


@pytest.mark.parametrize("capture", STALLS, ids=lambda p: p.stem)
def test_a_stalled_test_is_recorded_stalled_with_its_result(capture: Path) -> None:
    out = capture.read_text()
    records, _, run = measure(fleet(2, client=lambda _h, _a: (0, out)), 2)
    tests = [r for r in records if isinstance(r, Iperf3Record)]
    assert len(tests) == 2
    for rec in tests:
        assert rec.status is CellStatus.STALLED and rec.reason is not None
        assert rec.reason.startswith(f"iperf3 client on {rec.client} → server {rec.server}: ")
        assert "stalled for" in rec.reason or "no bytes received" in rec.reason
        assert rec.result == parse_iperf3(out)  # kept, figures inspectable
        assert decode_record(encode_record(rec), "samples.jsonl:1") == rec
    frame = build_matrix(run, records)
    assert set(frame.bw_status) == {"stalled"}
    assert frame.bw_fwd_mbps.isna().all() and frame.bw_rev_mbps.isna().all()


def test_a_stalled_multi_stream_repeat_is_stalled_too() -> None:
    out = STALLS[1].read_text()

    def client(_host: str, argv: Sequence[str]) -> tuple[int | None, str] | None:
        return (0, out) if "-P" in argv else None

    records, _, run = measure(fleet(2, client=client), 2, compare_streams=4)
    single = [r for r in records if isinstance(r, Iperf3Record)]
    multi = [r for r in records if isinstance(r, Iperf3MultiRecord)]
    assert {r.status for r in single} == {CellStatus.OK}
    assert len(multi) == 2 and {r.status for r in multi} == {CellStatus.STALLED}
    assert all(r.result is not None and "stalled for" in str(r.reason) for r in multi)
    frame = build_matrix(run, records)
    assert frame.bw_fwd_mbps.notna().all() and frame.bw_fwd_multi_mbps.isna().all()


# --- case 4: another measurement on the host ------------------------------------------------


def test_iperf3_already_running_is_a_loud_warning_and_recorded() -> None:
    records, said, _ = measure(fleet(4, running={"h1": 1, "h3": 1, "h2": 2}), 4, bandwidth=False)
    warnings = [line for line in said if line.startswith("WARNING:")]
    assert warnings == [
        "WARNING: h1, h3: 1 iperf3 already running (another probe run, or another tool?): "
        "bandwidth figures from these hosts may be cut",
        "WARNING: h2: 2 iperf3 already running (another probe run, or another tool?): "
        "bandwidth figures from these hosts may be cut",
    ]
    found = {name: rec.already_running for name, rec in hosts(records).items()}
    assert found == {"h0": {}, "h1": {"iperf3": 1}, "h2": {"iperf3": 2}, "h3": {"iperf3": 1}}


def test_a_quiet_fleet_gets_no_warning() -> None:
    _, said, _ = measure(fleet(3), 3, bandwidth=False)
    assert not [line for line in said if "WARNING" in line]


def test_the_host_record_keeps_hung_tools_and_running_iperf3() -> None:
    rec = HostRecord(
        "h1", CellStatus.OK, None, 1.0, 0.1, 0.2, {"ping": "iputils", "iperf3": None},
        hung={"iperf3": "no answer to --version within 5 s"}, already_running={"iperf3": 1},
    )  # fmt: skip
    line = encode_record(rec)
    assert decode_record(line, "samples.jsonl:1") == rec
    old = '{"kind":"host","host":"h1","status":"ok"}'  # before the keys: read as empty
    assert decode_record(old, "x:1") == HostRecord("h1", CellStatus.OK)
    damaged = line.replace('"already_running":{"iperf3":1}', '"already_running":{"iperf3":"1"}')
    with pytest.raises(StoreError, match=r"^samples.jsonl:3: 'already_running' must map"):
        decode_record(damaged, "samples.jsonl:3")


def test_a_zombie_iperf3_is_not_one_already_running() -> None:
    """A zombie has no namespace to read, so it counted as running on every host that looked
    while it lingered (the lab saw "eu1, us2: 1 iperf3 already running" for one foreign server
    on us2). It runs nothing: preflight passes it over."""
    name = f"zomb{os.getpid() % 100000}"  # a name of its own: a real iperf3 may run beside
    script = PREFLIGHT_SCRIPT.replace("for t in iperf3; do", f"for t in {name}; do")
    assert script != PREFLIGHT_SCRIPT
    pid = os.fork()
    if pid == 0:  # the child takes that name and exits unreaped: a zombie
        Path("/proc/self/comm").write_text(name)
        os._exit(0)
    try:
        for _ in range(100):
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert f"running {name} 0" in out.stdout.splitlines(), out.stdout
    finally:
        os.waitpid(pid, 0)


def test_an_iperf3_that_ends_while_the_list_is_read_is_not_one_already_running() -> None:
    """A process listed by name that is gone when its namespace is read (its namespace cannot
    be read then) ran nothing this host shares: the lab saw "us2: 2 iperf3 already running" for
    one foreign server, another host's short-lived ``iperf3 --version`` counted with it."""
    name = f"gone{os.getpid() % 100000}"
    script = PREFLIGHT_SCRIPT.replace("for t in iperf3; do", f"for t in {name}; do")
    pid = os.fork()
    if pid == 0:  # the child takes that name and lives until the script kills it
        Path("/proc/self/comm").write_text(name)
        time.sleep(60)
        os._exit(0)
    reaper = threading.Thread(target=os.waitpid, args=(pid, 0))  # reaped at once: gone
    reaper.start()
    try:
        read_ns = 'ns=$(readlink "${c%comm}ns/net" 2>/dev/null)'
        assert read_ns in script
        ending = f"kill -9 {pid}; while [ -e /proc/{pid} ]; do sleep 0.01; done; {read_ns}"
        out = subprocess.run(
            ["sh", "-c", script.replace(read_ns, ending)], capture_output=True, text=True
        )
        assert f"running {name} 0" in out.stdout.splitlines(), out.stdout
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        reaper.join()
