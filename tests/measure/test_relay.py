"""The rehearsal relay run as it runs on a host (``python3 -u -c BOOTSTRAP``, source and config on
stdin), here as local subprocesses on 127.0.0.x with real sockets: each loopback address plays a
host, each relay has its own ``$TMPDIR``."""

from __future__ import annotations

import contextlib
import json
import secrets
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.measure import relay

SOURCE = Path(relay.__file__).read_bytes()
PORTS = (23100, 23199)


class Local:
    """One relay subprocess and its control channel."""

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", relay.BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"TMPDIR": str(tmp), "PATH": "/usr/bin:/bin"},
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"%d\n" % len(SOURCE) + SOURCE)
        self.events: list[dict[str, Any]] = []
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""
        self.send({"kind": "config", **config})

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def until(self, event: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Read events up to the first ``event`` (or ``error``) and return it."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            for seen in self.events:
                if seen["event"] in (event, "error") and not seen.get("_taken"):
                    seen["_taken"] = True
                    return seen
            left = deadline - time.monotonic()
            assert left > 0, f"no {event} in {self.events}"
            if self._sel.select(left):
                chunk = self.proc.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    assert self.proc.wait(5) is not None
                    raise AssertionError(f"relay exited {self.proc.returncode}: {self.events}")
                self._buf += chunk
                *lines, self._buf = self._buf.split(b"\n")
                self.events += [json.loads(line) for line in lines if line]

    def finish(self, timeout_s: float = 20.0) -> int:
        """Wait for ``done`` (or ``error``), then close stdin (the lease) and reap it."""
        if not any(e["event"] in ("done", "error") for e in self.events):
            self.until("done", timeout_s)
        assert self.proc.stdout is not None
        out, _ = self.proc.communicate(timeout=timeout_s)
        for line in (self._buf + out).split(b"\n"):
            if line:
                self.events.append(json.loads(line))
        return self.proc.returncode

    def close(self) -> None:
        self._sel.close()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


def config(index: int, hosts: int, mechanism: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "token": TOKEN,
        "index": index,
        "hosts": hosts,
        "bind": f"127.0.0.{index + 1}",
        "source": f"127.0.0.{index + 1}",
        "prev": f"127.0.0.{(index - 1) % hosts + 1}",
        "port_low": PORTS[0],
        "port_high": PORTS[1],
        "mechanism": mechanism,
        "rounds": 5,
        "warmup": 0,
        "send_bytes": 8192,
        "recv_max": 8192,
        "max_in_bytes": 10_000_000,
        "deadline_s": 30,
        "compute_ms": 0,
        "idle_s": 0,
        "pings": 0,
    }
    return {**base, **extra}


TOKEN = secrets.token_hex(16)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Local]]:
    relays: list[Local] = []
    yield relays
    for r in relays:
        if r.proc.poll() is None:
            r.proc.kill()
        r.proc.wait()
        r.close()


def wire(relays: list[Local]) -> None:
    """Tell each relay its next stage's port, wait until all are connected, then go."""
    ports = [r.until("listening")["port"] for r in relays]
    for i, r in enumerate(relays):
        nxt = (i + 1) % len(relays)
        r.send({"kind": "peer", "address": f"127.0.0.{nxt + 1}", "port": ports[nxt]})
    for r in relays:
        assert r.until("ready")["event"] == "ready"
    for r in relays:
        r.send({"kind": "go"})


def start(started: list[Local], tmp: Path, configs: list[dict[str, Any]]) -> list[Local]:
    for i, c in enumerate(configs):
        started.append(Local(tmp / f"host{i}", c))
    return started


def test_decode_loop_times_every_token_on_the_first_stage(
    started: list[Local], tmp_path: Path
) -> None:
    relays = start(started, tmp_path, [config(i, 3, "loop", rounds=7) for i in range(3)])
    wire(relays)
    assert [r.finish() for r in relays] == [0, 0, 0]
    assert [t["round"] for t in relays[0].of("t")] == list(range(7))
    assert all(t["ms"] > 0 for t in relays[0].of("t"))
    assert not relays[1].of("t") and not relays[2].of("t")
    assert relays[1].of("done")[0]["received_bytes"] == 7 * (8192 + relay.HEADER.size)


def test_compute_delay_is_spent_on_every_stage(started: list[Local], tmp_path: Path) -> None:
    relays = start(
        started, tmp_path, [config(i, 2, "loop", rounds=3, compute_ms=20) for i in range(2)]
    )
    wire(relays)
    assert [r.finish() for r in relays] == [0, 0]
    assert min(t["ms"] for t in relays[0].of("t")) >= 40


def test_transfer_pings_then_sends_each_hop_its_payload(
    started: list[Local], tmp_path: Path
) -> None:
    size = 1_000_000
    configs = [
        config(i, 3, "transfer", rounds=2, pings=3, idle_s=0.05,
               send_bytes=size if i < 2 else 0, recv_max=size)
        for i in range(3)
    ]  # fmt: skip
    relays = start(started, tmp_path, configs)
    wire(relays)
    assert [r.finish() for r in relays] == [0, 0, 0]
    for hop in (0, 1):
        assert [p["hop"] for p in relays[hop].of("ping")] == [hop] * 3
        xfers = relays[hop].of("t")
        assert [(t["hop"], t["round"], t["bytes"]) for t in xfers] == [
            (hop, 0, size),
            (hop, 1, size),
        ]
    assert not relays[2].of("t")


def test_ring_allreduce_runs_2n_minus_2_steps_per_repetition(
    started: list[Local], tmp_path: Path
) -> None:
    configs = [config(i, 4, "ring", rounds=3, warmup=1, send_bytes=2048) for i in range(4)]
    relays = start(started, tmp_path, configs)
    wire(relays)
    assert [r.finish() for r in relays] == [0, 0, 0, 0]
    assert [t["warmup"] for t in relays[0].of("t")] == [True, False, False, False]
    # every host received 2(N-1) chunks per repetition, 4 repetitions
    assert relays[2].of("done")[0]["received_bytes"] == 4 * 6 * (2048 + relay.HEADER.size)


def _listen(address: str) -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind((address, 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


def _peer(relay_: Local, next_address: str = "127.0.0.2") -> tuple[int, socket.socket]:
    """Point a lone relay (index 0 of 2) at a listener of ours; its port and our listener."""
    port = relay_.until("listening")["port"]
    listener, ours = _listen(next_address)
    relay_.send({"kind": "peer", "address": next_address, "port": ours})
    return port, listener


def _dial(source: str, port: int, token: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(token.encode())
    return sock


def test_wrong_token_and_wrong_peer_are_refused_then_the_right_one_accepted(
    started: list[Local], tmp_path: Path
) -> None:
    (r,) = start(started, tmp_path, [config(0, 2, "loop", rounds=1)])
    port, listener = _peer(r)
    with _dial("127.0.0.2", port, secrets.token_hex(16)):
        assert r.until("refused") == {"event": "refused", "peer": "127.0.0.2",
                                      "why": "wrong token", "_taken": True}  # fmt: skip
    with _dial("127.0.0.9", port, TOKEN):
        assert r.until("refused")["why"] == "not the previous stage"
    with _dial("127.0.0.2", port, TOKEN):
        assert r.until("ready")["event"] == "ready"
    listener.close()


def test_a_message_above_the_largest_expected_ends_the_relay(
    started: list[Local], tmp_path: Path
) -> None:
    (r,) = start(started, tmp_path, [config(0, 2, "loop", rounds=1)])
    port, listener = _peer(r)
    with _dial("127.0.0.2", port, TOKEN) as sock:
        r.until("ready")
        r.send({"kind": "go"})
        (sock_down, _) = listener.accept()
        sock.sendall(relay.HEADER.pack(relay.DATA, 0, 9000) + bytes(9000))
        assert "message exceeds" in r.until("error")["reason"]
        assert r.finish() == relay.EXIT_BYTES
        sock_down.close()
    listener.close()


def test_the_byte_budget_counts_across_messages(started: list[Local], tmp_path: Path) -> None:
    (r,) = start(started, tmp_path, [config(0, 2, "loop", rounds=3, max_in_bytes=10_000)])
    port, listener = _peer(r)
    with _dial("127.0.0.2", port, TOKEN) as sock:
        r.until("ready")
        r.send({"kind": "go"})
        (down, _) = listener.accept()
        for seq in range(3):
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):  # it may end first
                down.recv(65536)
                sock.sendall(relay.HEADER.pack(relay.DATA, seq, 8192) + bytes(8192))
        assert "byte budget" in r.until("error")["reason"]
        assert r.finish() == relay.EXIT_BYTES
        down.close()
    listener.close()


def test_stdin_closed_ends_the_relay_within_a_second(started: list[Local], tmp_path: Path) -> None:
    (r,) = start(started, tmp_path, [config(0, 2, "loop")])
    r.until("listening")
    assert r.proc.stdin is not None
    began = time.monotonic()
    r.proc.stdin.close()
    r.proc.wait(timeout=5)
    assert time.monotonic() - began < 1.0
    assert not list((tmp_path / "host0").iterdir())  # its lock file went with it


def test_a_second_relay_on_the_same_host_refuses(started: list[Local], tmp_path: Path) -> None:
    first = Local(tmp_path / "host", config(0, 2, "loop"))
    started.append(first)
    first.until("listening")
    second = Local(tmp_path / "host", config(0, 2, "loop"))
    started.append(second)
    assert "another rehearsal" in second.until("error")["reason"]
    assert second.finish() == relay.EXIT_LOCKED


def test_the_deadline_ends_a_relay_nobody_talks_to(started: list[Local], tmp_path: Path) -> None:
    (r,) = start(started, tmp_path, [config(0, 2, "loop", deadline_s=0.5)])
    r.until("listening")
    assert r.finish(timeout_s=5) == relay.EXIT_DEADLINE
    assert r.of("error")


def test_a_bad_config_is_an_error_line(started: list[Local], tmp_path: Path) -> None:
    (r,) = start(started, tmp_path, [config(0, 2, "shell", rounds=1)])
    assert r.until("error")["reason"] == "bad config: mechanism"
    assert r.finish() == relay.EXIT_CONFIG


def test_a_terminated_relay_removes_its_lock_file(started: list[Local], tmp_path: Path) -> None:
    (r,) = start(started, tmp_path, [config(0, 2, "loop")])
    r.until("listening")
    assert list((tmp_path / "host0").iterdir())
    r.proc.terminate()
    assert r.proc.wait(timeout=5) == relay.EXIT_TERM
    assert not list((tmp_path / "host0").iterdir())
