"""``probe run`` and ``probe check`` refuse a bad option value in one line naming the option,
exit 2, before anything connects: no run directory, ``latest`` untouched, not one TCP connection.

The inventory points at a socket of ours that listens but never accepts: the kernel would queue
any connection probe opened, so an empty queue proves none was tried.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from probe.cli import run

BAD = [
    ("--count", "0"),
    ("--count", "-1"),
    ("--interval", "0"),
    ("--interval", "0.001"),
    ("--interval", "-0.5"),
    ("--interval", "nan"),
    ("--interval", "inf"),
    ("--duration", "0"),
    ("--omit", "-1"),
    ("--streams", "0"),
    ("--streams", "129"),
    ("--congestion", "BBR"),
    ("--congestion", "cubic;id"),
    ("--compare-streams", "1"),
    ("--compare-streams", "-1"),
    ("--pairs", "most"),
    ("--pairs", "sample:0"),
    ("--ping-pairs", "cross-region"),
    ("--ping-pairs", "sample:0"),
    ("--iperf3-ports", "0-5201"),
    ("--iperf3-ports", "5299-5201"),
    ("--iperf3-ports", "65535-65536"),
    ("--connect-timeout", "0"),
    ("--connect-timeout", "-1"),
    ("--connect-timeout", "nan"),
]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def inventory(tmp_path: Path, listener: socket.socket) -> Path:
    port = listener.getsockname()[1]
    path = tmp_path / "inv.yaml"
    hosts = [
        {"name": name, "address": address,
         "ssh": {"host": "127.0.0.1", "port": port, "user": "probe"}}
        for name, address in (("a", "127.0.0.1"), ("b", "127.0.0.2"))
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"hosts": hosts}))
    return path


def _nobody_connected(listener: socket.socket) -> bool:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


@pytest.mark.parametrize(("option", "value"), BAD)
def test_run_refuses_a_bad_value_before_anything_connects(
    option: str,
    value: str,
    inventory: Path,
    listener: socket.socket,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "reports"
    (out / "old-run").mkdir(parents=True)
    (out / "latest").symlink_to("old-run")
    args = ["run", str(inventory), "-o", str(out), "--connect-timeout", "1", option, value]
    assert run(args) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"probe: error: {option} must be "), line
    assert sorted(p.name for p in out.iterdir()) == ["latest", "old-run"]
    assert (out / "latest").readlink() == Path("old-run")
    assert _nobody_connected(listener)


def test_run_checks_options_before_it_creates_the_output_folder(
    inventory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["run", str(inventory), "-o", str(tmp_path / "new"), "--count", "0"]) == 2
    assert not (tmp_path / "new").exists()
    assert capsys.readouterr().err == "probe: error: --count must be ≥ 1, not 0\n"


@pytest.mark.parametrize("value", ["0", "-2", "nan"])
def test_check_refuses_a_bad_connect_timeout_before_connecting(
    value: str, inventory: Path, listener: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["check", str(inventory), "--connect-timeout", value]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("probe: error: --connect-timeout must be > 0 s, not "), line
    assert _nobody_connected(listener)


def test_a_short_interval_is_a_warning_said_before_anything_runs(
    inventory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.1 s is fine for iputils ≥ 20210202 and for root; older iputils refuse it to users."""
    args = ["run", str(inventory), "--interval", "0.1", "--resume", str(tmp_path / "no-run")]
    assert run(args) == 2  # stopped by the missing run directory, after the warning
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith("probe: warning: ping interval 0.1 s: a, b log in as a user other")
    assert error.startswith("probe: error: ") and "not a run directory" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pinger", "fping", "--interval", "0.0025"],
         "--pinger must be auto or ping for this train (fping interval must be whole "
         "milliseconds ≥ 10 ms, not 0.0025 s), not 'fping'"),
        (["--ping-pairs", "cross-region"],
         "--ping-pairs must be all, intra-region, intra-zone or sample:K (K ≥ 1), "
         "not 'cross-region'"),
        (["--ping-pairs", "sample:0"], "--ping-pairs must be "),
    ],
)  # fmt: skip
def test_a_ping_option_probe_cannot_run_is_refused_before_connecting(
    args: list[str],
    message: str,
    inventory: Path,
    listener: socket.socket,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "reports"
    assert run(["run", str(inventory), "-o", str(out), "--connect-timeout", "1", *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("probe: error: ") and message in line, line
    assert not out.exists()  # no run directory: nothing started
    assert _nobody_connected(listener)
