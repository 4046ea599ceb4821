"""Security: hostile inventory values, quoted remote commands, no secrets anywhere. Loopback only.

Host keys (unknown or changed: refused, with the fingerprint and how to accept) are tested in
``test_ssh.py``; this file does not repeat them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import InputError
from probe.measure.remote import KILL_AFTER_S, remote_command
from probe.tools.iperf3 import iperf3_client_argv, iperf3_server_argv
from probe.tools.ping import ping_argv, ping_fanout_argv
from tests.sshfleet import LOOPBACK, Fleet

PROBE = Path(sys.executable).with_name("probe")
HOSTILE = ["a;reboot", "$(reboot)", "`id`", "a\nb", "-oProxyCommand=x", "a b", "a|b", "a&b", ">x"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # only our key is offered
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"))
    return env


# --- 1. hostile inventory values are rejected at validation, through the CLI ------------------

FIELDS: dict[str, Callable[[str], dict[str, object]]] = {
    "name": lambda v: {"name": v, "address": "10.0.0.1"},
    "address": lambda v: {"name": "a", "address": v},
    "ssh.host": lambda v: {"name": "a", "address": "10.0.0.1", "ssh": {"host": v}},
    "ssh.user": lambda v: {"name": "a", "address": "10.0.0.1", "ssh": {"user": v}},
}
CLI_CASES = [
    ("check", "name", "$(reboot)"),
    ("run", "name", "`id`"),
    ("check", "address", "a;reboot"),
    ("run", "address", "-oProxyCommand=x"),
    ("check", "address", "a\nb"),
    ("run", "ssh.host", "$(reboot)"),
    ("check", "ssh.user", "-oProxyCommand=x"),
]


@pytest.mark.parametrize(("command", "field", "value"), CLI_CASES)
def test_hostile_inventory_value_is_one_line_and_exit_2(
    tmp_path: Path, command: str, field: str, value: str
) -> None:
    inventory = tmp_path / "inv.yaml"
    host = FIELDS[field](value)
    inventory.write_text(yaml.safe_dump({"hosts": [host, {"name": "z", "address": "10.0.0.9"}]}))
    out = tmp_path / "reports"
    extra = ["-o", str(out)] if command == "run" else []
    proc = subprocess.run(
        [str(PROBE), command, str(inventory), *extra],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"probe: error: {inventory}:")
    assert "bad " in line
    assert not out.exists()  # nothing was run


# --- 2. even if one got through: builders refuse it, and every argv is quoted -----------------


@pytest.mark.parametrize("value", HOSTILE)
def test_argv_builders_refuse_hostile_addresses(value: str) -> None:
    with pytest.raises(InputError):
        ping_argv(value, count=3, interval_s=0.2)
    with pytest.raises(InputError):
        ping_fanout_argv(["10.0.0.1", value], count=3, interval_s=0.2)
    with pytest.raises(InputError):
        iperf3_client_argv(value, 5201, duration_s=5, omit_s=1)


def _wrapper(deadline_s: int) -> list[str]:
    return ["env", "LC_ALL=C", "timeout", "-k", str(KILL_AFTER_S), str(deadline_s)]


@pytest.mark.parametrize(
    "argv",
    [
        ping_argv("10.0.0.1", count=3, interval_s=0.2),
        ping_fanout_argv(["10.0.0.1", "db-1.example"], count=3, interval_s=0.2),
        iperf3_client_argv("10.0.0.1", 5201, duration_s=5, omit_s=1, reverse=True),
        iperf3_server_argv(5201, idle_timeout_s=30),
        ["echo-argv", *HOSTILE],
    ],
)
def test_built_commands_split_back_into_their_argv(argv: list[str]) -> None:
    assert shlex.split(remote_command(argv, 9.5)) == [*_wrapper(10), *argv]


@settings(max_examples=200)
@given(st.lists(st.text(st.characters(exclude_characters="\x00")), min_size=1, max_size=6))
def test_any_argv_survives_the_remote_command_line(argv: list[str]) -> None:
    assert shlex.split(remote_command(argv, 5)) == [*_wrapper(5), *argv]


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
def test_a_real_shell_interprets_nothing(tmp_path: Path) -> None:
    """The line that reaches the remote sshd, run by /bin/sh here: every value arrives verbatim."""
    canary = tmp_path / "canary"
    values = [f"$(touch {canary})", f"`touch {canary}`", f"; touch {canary}", "a\nb", "*", "~"]
    line = remote_command(["printf", r"%s\0", *values], 5)
    out = subprocess.run(["/bin/sh", "-c", line], capture_output=True, cwd=tmp_path, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split("\0")[:-1] == values
    assert not canary.exists()


# --- 3. no secrets: a real `probe run` against the in-process fleet -------------------------


def _secrets(key_path: Path, key_der: bytes) -> list[str]:
    """Fragments of the private key as they could leak: its file's base64 lines, the raw seed."""
    body = [
        line.strip()
        for line in key_path.read_text().splitlines()
        if line.strip() and not line.startswith("-----")
    ]
    seed = key_der[-32:]  # PKCS#8 Ed25519: the 32-byte private seed closes the DER
    fragments = [line for line in body if len(line) >= 16]
    fragments += ["".join(body)[10:60], seed.hex(), base64.b64encode(seed).decode()[:40]]
    return fragments


def _read_cmdlines(seen: set[bytes]) -> None:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # the process has gone
                seen.add(Path(entry.path, "cmdline").read_bytes())


async def _sample_cmdlines(seen: set[bytes], stop: asyncio.Event) -> None:
    """Every process's command line, every 20 ms, until ``stop``."""
    while not stop.is_set():
        _read_cmdlines(seen)
        await asyncio.sleep(0.02)


@pytest.mark.skipif(
    shutil.which("iperf3") is None or shutil.which("ping") is None, reason="needs ping, iperf3"
)
async def test_probe_run_leaks_no_private_key(tmp_path: Path) -> None:
    async with Fleet(tmp_path, real_shell=True) as fleet:
        a, b = await fleet.sshd("a"), await fleet.sshd("b")
        key_path = fleet.client_key_path
        secrets = _secrets(key_path, fleet.client_key.export_private_key("pkcs8-der"))
        assert secrets[0].encode() in key_path.read_bytes()  # the search can find a key
        inventory = tmp_path / "inv.yaml"
        inventory.write_text(
            yaml.safe_dump(
                {
                    "known_hosts": str(fleet.write_known_hosts()),
                    "hosts": [
                        {
                            "name": name,
                            "address": address,  # peers ping and iperf3 each other on loopback
                            "ssh": {
                                "host": LOOPBACK,
                                "port": sshd.port,
                                "user": "probe",
                                "identity": str(key_path),
                            },
                        }
                        for name, address, sshd in (("a", "127.0.0.1", a), ("b", "127.0.0.2", b))
                    ],
                }
            )
        )
        out = tmp_path / "reports"
        seen: set[bytes] = set()
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_cmdlines(seen, stop))
        try:
            proc = await asyncio.create_subprocess_exec(
                str(PROBE), "run", str(inventory), "-o", str(out), "--count", "3",
                "--duration", "1", "--omit", "0", "--connect-timeout", "5",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=_env(tmp_path), cwd=tmp_path,
            )  # fmt: skip
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
        finally:
            stop.set()
            await sampler
        remote_lines = [*a.stats.commands, *b.stats.commands]

    assert proc.returncode in (0, 4), stderr.decode()  # 4: a cell could not be measured
    (run_dir,) = (p for p in out.iterdir() if p.is_dir() and p.name != "latest")
    run_json = (run_dir / "run.json").read_text()
    assert '"status": "ok"' in run_json  # the key was used: the hosts were reached
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert {(r["kind"], r.get("status")) for r in samples} >= {("ping", "ok"), ("iperf3", "ok")}
    assert any(b"iperf3" in c for c in seen) and remote_lines  # the run really ran commands

    places: dict[str, bytes] = {
        "stdout": stdout,
        "stderr": stderr,
        "remote command lines": "\n".join(remote_lines).encode(),
        "process command lines": b"\n".join(seen),
    }
    for path in run_dir.rglob("*"):
        if path.is_file():
            places[path.name] = path.read_bytes()
    assert {"run.json", "samples.jsonl", "matrix.csv", "matrix.parquet", "anchors.json"} <= set(
        places
    )
    for where, data in places.items():
        for secret in secrets:
            assert secret.encode() not in data, f"private key material in {where}"
