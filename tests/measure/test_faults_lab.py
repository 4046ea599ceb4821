"""The fault matrix on the lab: every cell ends measured or with its reason, nothing left behind.

Each test breaks one thing on the shared session lab, runs the real CLI, and mends it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from probe.lab import control, netns
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
PROBE = str(ROOT / ".venv" / "bin" / "probe")
FAST = ["--count", "5", "--interval", "0.05", "--connect-timeout", "4"]
BW_FAST = ["--pairs", "intra-region", "--duration", "1", "--omit", "0"]
LEFTOVER = ("iperf3", "ping", "fping", "timeout", "sleep", "hang.sh")


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROBE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def run_dir(proc: subprocess.CompletedProcess[str]) -> Path:
    return Path(proc.stdout.strip().splitlines()[-1])


def matrix(proc: subprocess.CompletedProcess[str]) -> pd.DataFrame:
    return pd.read_csv(run_dir(proc) / "matrix.csv")


def leftovers(lab: control.LabInfo) -> list[str]:
    found = []
    for host in lab.hosts:
        for pid in netns.netns_pids(lab.netns(host)):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm in LEFTOVER:
                found.append(f"{host}:{comm}:{pid}")
    return found


def assert_clean(lab: control.LabInfo, within_s: float = 8.0) -> None:
    """No probe-started process on any host (remote deadlines may need a few seconds)."""
    deadline = time.monotonic() + within_s
    while leftovers(lab) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(lab) == []


def assert_every_cell_explained(frame: pd.DataFrame) -> None:
    for row in frame.itertuples():
        assert row.status == "ok" or (isinstance(row.reason, str) and row.reason), row
        assert row.bw_status == "ok" or isinstance(row.bw_reason, str), row
    assert frame.loc[frame.status == "ok", "rtt_p50_ms"].notna().all()  # ok: an RTT, not NaN


@pytest.fixture
def mended(lab: control.LabInfo) -> Iterator[control.LabInfo]:
    yield lab
    for host in lab.hosts:  # whatever a test broke comes back
        for tool in ("ping", "iperf3"):
            control.restore_tool(lab, host, tool)


def test_iperf3_missing_on_one_host(mended: control.LabInfo, tmp_path: Path) -> None:
    control.break_tool(mended, "us1", "iperf3", "missing")
    proc = probe("run", str(mended.inventory), "-o", str(tmp_path), *FAST, *BW_FAST)
    assert proc.returncode == 4, proc.stderr
    frame = matrix(proc)
    assert_every_cell_explained(frame)
    us = frame[(frame.src_region == "us") & (frame.dst_region == "us")]
    assert set(us.bw_status) == {"tool-missing"} and all("us1" in r for r in us.bw_reason)
    others = frame[(frame.src_region == frame.dst_region) & (frame.src_region != "us")]
    assert set(others.bw_status) == {"ok"}
    assert set(frame.status) == {"ok"}
    assert_clean(mended)


def test_a_hanging_ping_is_caught_at_preflight_without_stalling_the_run(
    mended: control.LabInfo, tmp_path: Path
) -> None:
    control.break_tool(mended, "ap2", "ping", "hang")
    started = time.monotonic()
    ping_only = ["--no-bandwidth", "--pinger", "ping"]  # auto: fping, where the host has it
    proc = probe("run", str(mended.inventory), "-o", str(tmp_path), *FAST, *ping_only)
    assert time.monotonic() - started < 60
    assert proc.returncode == 4, proc.stderr
    frame = matrix(proc)
    assert set(frame[frame.src == "ap2"].status) == {"tool-hung"}  # was a timeout per cell
    assert all(r.startswith("ping hangs on ap2") for r in frame[frame.src == "ap2"].reason)
    assert set(frame[frame.src != "ap2"].status) == {"ok"}
    assert_clean(mended)


def test_a_foreign_iperf3_server_on_our_port_is_sidestepped(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    foreign = [
        subprocess.Popen(
            lab.exec_argv(h, "iperf3", "-s", "-p", "5201"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for h in lab.hosts
    ]
    try:
        time.sleep(0.5)
        proc = probe("run", str(lab.inventory), "-o", str(tmp_path), *FAST, *BW_FAST)
    finally:
        for p in foreign:
            p.kill()
            p.wait()
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in (run_dir(proc) / "samples.jsonl").read_text().splitlines()]
    bw = [r for r in records if r["kind"] == "iperf3"]
    assert bw and all(r["status"] == "ok" for r in bw)
    assert any(r["attempts"] > 1 for r in bw)  # slot 0 met the foreign server and moved on
    assert_clean(lab)


def test_jump_host_down_makes_every_host_behind_it_unreachable(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    control.stop_sshd(lab, lab.jump)
    try:
        proc = probe("run", str(lab.inventory), "-o", str(tmp_path), *FAST, "--no-bandwidth")
    finally:
        control.start_sshd(lab, lab.jump)
    assert proc.returncode == 4, proc.stderr
    frame = matrix(proc)
    assert set(frame.status) == {"unreachable"}
    assert all(lab.jump in r for r in frame.reason)


def _inventory_with(lab: control.LabInfo, tmp_path: Path, host: str, **ssh: object) -> Path:
    doc = yaml.safe_load(lab.inventory.read_text())
    for h in doc["hosts"]:
        if h["name"] == host:
            h["ssh"].update(ssh)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_wrong_key_is_auth_failed(lab: control.LabInfo, tmp_path: Path) -> None:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inv = _inventory_with(lab, tmp_path, "eu2", identity=str(key))
    proc = probe("run", str(inv), "-o", str(tmp_path / "runs"), *FAST, "--no-bandwidth")
    assert proc.returncode == 4, proc.stderr
    frame = matrix(proc)
    assert set(frame[frame.src == "eu2"].status) == {"auth-failed"}
    assert set(frame[frame.src != "eu2"].status) == {"ok"}


def test_unknown_host_key_refused_then_accepted_on_request(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    us2 = next(h for h in yaml.safe_load(lab.inventory.read_text())["hosts"] if h["name"] == "us2")
    lines = lab.paths.known_hosts.read_text().splitlines()
    known.write_text(
        "\n".join(ln for ln in lines if not ln.startswith(us2["address"] + " ")) + "\n"
    )
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    args = ["run", str(lab.inventory), "-o", str(tmp_path / "runs"), *FAST, "--no-bandwidth",
            "--known-hosts", str(known)]  # fmt: skip
    refused = probe(*args, env=env)
    frame = matrix(refused)
    from_us2 = frame[frame.src == "us2"]
    assert set(from_us2.status) == {"host-key-rejected"}
    assert all("SHA256:" in r and "--accept-new" in r for r in from_us2.reason)
    accepted = probe(*args, "--accept-new", env=env)
    assert accepted.returncode == 0, accepted.stderr
    stored = (tmp_path / "state" / "probe" / "known_hosts").read_text()
    assert us2["address"] in stored


def test_total_loss_toward_one_host(lab: control.LabInfo, tmp_path: Path) -> None:
    others = [h for h in lab.hosts if h != "ap1"]
    for src in others:
        control.set_link(lab, src, "ap1", {"loss_pct": 100.0}, both=False)
    try:
        proc = probe("run", str(lab.inventory), "-o", str(tmp_path), *FAST, "--no-bandwidth")
    finally:
        for src in others:
            control.set_link(lab, src, "ap1", {"loss_pct": 0.0}, both=False)
    assert proc.returncode == 4, proc.stderr
    frame = matrix(proc)
    assert set(frame[frame.src == "ap1"].status) == {"unreachable"}
    to_ap1 = frame[(frame.dst == "ap1") & (frame.src != "ap1")]
    assert set(to_ap1.status) == {"all-lost"} and set(to_ap1.loss_pct) == {100.0}
    assert set(frame[(frame.src != "ap1") & (frame.dst != "ap1")].status) == {"ok"}
    assert_clean(lab)


def _start(lab: control.LabInfo, out: Path, *args: str) -> subprocess.Popen[str]:
    """``probe run`` with Ctrl-C armed: a non-interactive shell starts background jobs with
    SIGINT ignored (POSIX), and that disposition survives exec — `make test &` would otherwise
    make every SIGINT here a no-op."""
    return subprocess.Popen(
        [PROBE, "run", str(lab.inventory), "-o", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )


@contextlib.contextmanager
def _killed_at_exit(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """A failed test must not leave its probe running into the next test."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait_for(path: Path, kind: str, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if sum(f'"kind":"{kind}"' in ln for ln in lines) >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"no {count} {kind} records in {path}")


def _only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    return run


@pytest.mark.parametrize(
    ("phase", "sig", "code"),
    [
        ("ping", signal.SIGINT, 130),
        ("bandwidth", signal.SIGINT, 130),
        ("bandwidth", signal.SIGTERM, 143),
    ],
)
def test_ctrl_c_stops_cleanly_and_keeps_what_was_measured(
    lab: control.LabInfo, tmp_path: Path, phase: str, sig: signal.Signals, code: int
) -> None:
    args = ["--count", "60", "--interval", "0.1"] if phase == "ping" else [*FAST, "--duration", "6"]
    with _killed_at_exit(_start(lab, tmp_path, *args)) as proc:
        if phase == "ping":
            _wait_for_file(tmp_path)
            _wait_for(_only_run(tmp_path) / "samples.jsonl", "host", 7)
            time.sleep(2.0)
        else:
            _wait_for_file(tmp_path)
            _wait_for(_only_run(tmp_path) / "samples.jsonl", "ping", 42)
            time.sleep(3.0)  # inside the first bandwidth round
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "resume with --resume" in err
    assert "Traceback" not in err
    run = _only_run(tmp_path)
    doc = json.loads((run / "run.json").read_text())
    assert doc["interrupted"] is True and doc["complete"] is False
    frame = pd.read_csv(run / "matrix.csv")
    assert len(frame) == 42
    if phase == "bandwidth":
        assert set(frame.status) == {"ok"}  # the ping phase had finished: nothing lost
    assert_clean(lab)


def _wait_for_file(out: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(p.is_dir() for p in out.iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sigkill_then_resume_measures_only_the_missing_cells(
    lab: control.LabInfo, tmp_path: Path
) -> None:
    with _killed_at_exit(_start(lab, tmp_path, *FAST, "--duration", "1", "--omit", "0")):
        _wait_for_file(tmp_path)
        run = _only_run(tmp_path)
        _wait_for(run / "samples.jsonl", "iperf3", 9)
    before = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines() if x.strip()]
    done_bw = {
        (r["src"], r["dst"]) for r in before if r["kind"] == "iperf3" and r["status"] == "ok"
    }
    assert 9 <= len(done_bw) < 42
    resumed = probe("run", str(lab.inventory), "--resume", str(run), *FAST, "--duration", "1",
                    "--omit", "0")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    after = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()[len(before) :]]
    new_bw = [(r["src"], r["dst"]) for r in after if r["kind"] == "iperf3"]
    assert not done_bw & set(new_bw)  # nothing measured twice
    assert len(new_bw) == 42 - len(done_bw)
    assert not [r for r in after if r["kind"] == "ping"]  # the ping phase was complete
    frame = pd.read_csv(run / "matrix.csv")
    assert set(frame.status) == {"ok"} and set(frame.bw_status) == {"ok"}
    assert json.loads((run / "run.json").read_text())["complete"] is True
    assert_clean(lab)
