"""The rehearsal relay: a Python 3 standard-library program sent to a host over SSH and run there.

It is started as ``python3 -u -c BOOTSTRAP``: the bootstrap reads one line with the length of the
source, then the source, from stdin, and runs it; nothing is installed and nothing of probe is
imported (this module imports only the standard library, so its text is the program). The rest of
stdin is the control channel, one JSON object a line, and stdin is the lease: at its end (the
controller, its connection or its SSH channel is gone) the relay exits at once, so a SIGKILLed
controller leaves nothing running. A hard deadline ends it too.

Control, in order: ``config`` (this relay's part of the rehearsal, the per-run token included:
never on a command line), then ``peer`` (the next stage's address and port, once every relay
listens), then ``go``. stdout answers with JSON lines: ``listening`` (the port it got),
``refused`` (a connection turned away), ``ready``, the raw timings (``t``, ``ping``), ``done``, or
one ``error`` before a non-zero exit.

Safety: it listens only on the address its path uses, on the first free port of the range given,
and accepts only the previous stage's address presenting the run's token (each wrong attempt is
reported and closed; a few of them end the relay). What it receives is read into one reused buffer
and dropped: never executed, never stored. Every message is bounded by the largest the pattern
sends, and all of them by a byte budget. At most one relay runs per host: a lock file under
``$TMPDIR``, held with ``flock`` for the relay's life and removed when it exits.

Three mechanisms cover the patterns (the controller turns a pattern into each relay's config):

- ``loop``: stage 0 times each round trip around the ring of stages (decode tokens, speculative
  blocks), each stage sleeping its compute time before forwarding;
- ``transfer``: each stage times small echoed pings on its connection, waits the idle gap, then
  sends its payload, timed until the next stage's ack (prefill activations, a KV-cache);
- ``ring``: ring all-reduce, 2(N−1) steps per repetition, each step sending one chunk to the next
  host while receiving one from the previous; host 0 times each repetition.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hmac
import ipaddress
import json
import os
import queue
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

#: What ``python3 -u -c`` runs: the source's length on one line, then the source, from stdin.
BOOTSTRAP = (
    "import sys;b=sys.stdin.buffer;n=int(b.readline());"
    "exec(compile(b.read(n),'probe-relay','exec'),{'__name__':'__main__'})"
)
HEADER = struct.Struct("!BII")  # kind, sequence number, payload length
DATA, PING, PONG, ACK = 1, 2, 3, 4
TOKEN_CHARS = 32  # the run's token: 16 random bytes in hex
HANDSHAKE_TIMEOUT_S = 5.0
MAX_REFUSED = 8  # wrong peers or tokens before the relay gives up
LOCK_PREFIX = "probe-relay-"
EXIT_OK, EXIT_CONFIG, EXIT_LOCKED, EXIT_PEER, EXIT_BYTES, EXIT_DEADLINE = 0, 2, 3, 4, 5, 124
EXIT_TERM = 143

_print_lock = threading.Lock()
_held_lock: list[Path] = []  # the lock file's path while this relay holds it
_outcome = [EXIT_OK]  # the exit code an end of stdin exits with, once the relay knows it


class RelayError(Exception):
    """Ends the relay with one ``error`` line and the exit code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def emit(event: str, **fields: object) -> None:
    line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
    with _print_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def quit_now(code: int) -> None:
    """Exit at once from any thread, removing the lock file first."""
    for path in _held_lock:
        with contextlib.suppress(OSError):
            path.unlink()
    os._exit(code)


def take_lock() -> Path | None:
    """The host's rehearsal lock (one per host name: hosts sharing a /tmp still count apart);
    None when another relay holds it."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    path = Path(tempfile.gettempdir()) / f"{LOCK_PREFIX}{name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None  # another account's lock file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != path.stat().st_ino:  # unlinked by its holder meanwhile
            raise OSError(errno.EAGAIN, "lock file replaced")
    except OSError:
        os.close(fd)
        return None
    _held_lock.append(path)
    return path  # the descriptor stays open (and locked) until the process ends


class Control:
    """The control channel: stdin lines, parsed; its end ends the relay."""

    def __init__(self) -> None:
        self.messages: queue.Queue[dict[str, object]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdin = sys.stdin.buffer
        while True:
            line = stdin.readline()
            if not line:
                quit_now(_outcome[0])  # the lease: the controller is gone
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict):
                self.messages.put(message)

    def expect(self, kind: str, deadline: float) -> dict[str, object]:
        try:
            message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise RelayError(EXIT_DEADLINE, f"no {kind} from the controller in time") from None
        if message.get("kind") != kind:
            raise RelayError(EXIT_CONFIG, f"expected {kind}, got {message.get('kind')!r}")
        return message


class Budget:
    """Bytes every connection together may still receive."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            self.left -= n
            if self.left < 0:
                raise RelayError(EXIT_BYTES, "received more than the byte budget")


class Conn:
    """One persistent TCP connection: whole messages out, bounded messages in (dropped)."""

    def __init__(self, sock: socket.socket, budget: Budget, max_in: int, max_out: int) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self.sock, self.budget, self.max_in = sock, budget, max_in
        self._out = bytearray(HEADER.size + max_out)
        self._in = memoryview(bytearray(max(max_in, HEADER.size)))

    def send(self, kind: int, seq: int, size: int) -> None:
        HEADER.pack_into(self._out, 0, kind, seq, size)
        self.sock.sendall(memoryview(self._out)[: HEADER.size + size])

    def recv(self, *kinds: int) -> tuple[int, int, int]:
        """(kind, seq, size) of the next message, its payload read and dropped."""
        self._fill(HEADER.size)
        kind, seq, size = HEADER.unpack_from(self._in, 0)
        if kind not in kinds:
            raise RelayError(EXIT_PEER, f"unexpected message kind {kind}")
        if size > self.max_in:
            raise RelayError(EXIT_BYTES, f"a {size}-byte message exceeds {self.max_in}")
        self._fill(size)
        return kind, seq, size

    def _fill(self, n: int) -> None:
        self.budget.take(n)
        got = 0
        while got < n:
            k = self.sock.recv_into(self._in[got:n])
            if k == 0:
                raise RelayError(EXIT_PEER, "the peer closed the connection")
            got += k


class Writer:
    """Sends queued messages on its own thread: a ring step sends while it receives."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.jobs: queue.Queue[tuple[int, int, int] | None] = queue.Queue()
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self.conn.send(*job)
            except BaseException as exc:  # reported by close()
                self.failed = exc
                return

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        if self.failed is not None:
            raise RelayError(EXIT_PEER, f"send failed: {self.failed}")


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def listen(address: str, low: int, high: int) -> tuple[socket.socket, int]:
    """A listening socket on ``address`` at the first free port of ``low``–``high``."""
    for port in range(low, high + 1):
        sock = socket.socket(_family(address), socket.SOCK_STREAM)
        try:
            sock.bind((address, port))
            sock.listen(4)
        except OSError:
            sock.close()
            continue
        return sock, port
    raise RelayError(EXIT_CONFIG, f"no free port in {low}-{high} on {address}")


def accept(listener: socket.socket, prev: str, token: bytes, deadline: float) -> socket.socket:
    """The previous stage's connection: its address and the token, or it is refused."""
    refused = 0
    want = ipaddress.ip_address(prev)
    while True:
        listener.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock, peer = listener.accept()
        except OSError:  # socket.timeout: not TimeoutError before Python 3.10
            raise RelayError(EXIT_DEADLINE, "the previous stage never connected") from None
        why = None
        if ipaddress.ip_address(peer[0]) != want:
            why = "not the previous stage"
        else:
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            got = b""
            try:
                while len(got) < TOKEN_CHARS:
                    chunk = sock.recv(TOKEN_CHARS - len(got))
                    if not chunk:
                        break
                    got += chunk
            except OSError:
                pass
            if not hmac.compare_digest(got, token):
                why = "wrong token"
        if why is None:
            return sock
        sock.close()
        refused += 1
        emit("refused", peer=peer[0], why=why)
        if refused >= MAX_REFUSED:
            raise RelayError(EXIT_PEER, f"{refused} connections refused")


def connect(own: str, address: str, port: int, token: bytes) -> socket.socket:
    """To the next stage, from ``own``: this host's address on the network toward it (what the
    next stage expects of us)."""
    sock = socket.socket(_family(address), socket.SOCK_STREAM)
    sock.bind((own, 0))
    sock.settimeout(HANDSHAKE_TIMEOUT_S * 2)
    try:
        sock.connect((address, port))
        sock.sendall(token)
    except OSError as exc:
        sock.close()
        raise RelayError(EXIT_PEER, f"cannot reach {address}:{port}: {exc}") from None
    return sock


def now_ms() -> float:
    return time.perf_counter() * 1e3


class Config:
    """This relay's part, from the controller's ``config`` line (checked: a bad one is an
    error line, never a traceback)."""

    def __init__(self, doc: dict[str, object]) -> None:
        def num(key: str) -> float:
            value = doc.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise RelayError(EXIT_CONFIG, f"bad config: {key}")
            return float(value)

        def text(key: str) -> str:
            value = doc.get(key)
            if not isinstance(value, str):
                raise RelayError(EXIT_CONFIG, f"bad config: {key}")
            return value

        self.token = text("token").encode()
        if len(self.token) != TOKEN_CHARS:
            raise RelayError(EXIT_CONFIG, "bad config: token")
        self.mechanism = text("mechanism")
        if self.mechanism not in MECHANISMS:
            raise RelayError(EXIT_CONFIG, "bad config: mechanism")
        self.bind, self.source, self.prev = text("bind"), text("source"), text("prev")
        self.index, self.hosts = int(num("index")), int(num("hosts"))
        self.port_low, self.port_high = int(num("port_low")), int(num("port_high"))
        self.rounds, self.warmup = int(num("rounds")), int(num("warmup"))
        self.send_bytes, self.recv_max = int(num("send_bytes")), int(num("recv_max"))
        self.max_in_bytes, self.deadline_s = int(num("max_in_bytes")), num("deadline_s")
        self.compute_s, self.idle_s = num("compute_ms") / 1e3, num("idle_s")
        self.pings = int(num("pings"))


def loop(c: Config, down: Conn, up: Conn) -> None:
    """Rounds around the ring of stages; stage 0 times each."""
    for r in range(c.rounds):
        if c.index == 0:
            t0 = now_ms()
            time.sleep(c.compute_s)
            down.send(DATA, r, c.send_bytes)
            up.recv(DATA)
            emit("t", round=r, ms=round(now_ms() - t0, 4))
        else:
            up.recv(DATA)
            time.sleep(c.compute_s)
            down.send(DATA, r, c.send_bytes)


def transfer(c: Config, down: Conn, up: Conn) -> None:
    """Echoed pings, the idle gap, then each round's payload to the next stage, timed to its
    ack; a stage forwards once its own round has arrived."""
    arrived = [threading.Event() for _ in range(c.rounds)]
    failed: list[BaseException] = []

    def serve() -> None:  # the previous stage's pings and payloads
        try:
            r = 0
            while r < c.rounds:
                kind, seq, _ = up.recv(PING, DATA)
                up.send(PONG if kind == PING else ACK, seq, 0)
                if kind == DATA:
                    arrived[r].set()
                    r += 1
        except BaseException as exc:
            failed.append(exc)
            for event in arrived:
                event.set()

    server = threading.Thread(target=serve, daemon=True)
    if c.index > 0:
        server.start()
    if c.send_bytes > 0:
        for p in range(c.pings):
            t0 = now_ms()
            down.send(PING, p, 0)
            down.recv(PONG)
            emit("ping", hop=c.index, ms=round(now_ms() - t0, 4))
        last = time.monotonic()
        for r in range(c.rounds):
            if c.index > 0:
                arrived[r].wait()
                if failed:
                    break
            time.sleep(max(0.0, c.idle_s - (time.monotonic() - last)) + c.compute_s)
            t0 = now_ms()
            down.send(DATA, r, c.send_bytes)
            down.recv(ACK)
            emit("t", hop=c.index, round=r, bytes=c.send_bytes, ms=round(now_ms() - t0, 4))
            last = time.monotonic()
    if c.index > 0:
        server.join()
    if failed:
        raise failed[0]


def ring(c: Config, down: Conn, up: Conn) -> None:
    """Ring all-reduce: 2(N−1) steps per repetition, each step's send after the previous
    step's receive (its data depends on it); host 0 times each repetition."""
    writer = Writer(down)
    try:
        for rep in range(c.warmup + c.rounds):
            t0 = now_ms()
            for step in range(2 * (c.hosts - 1)):
                writer.jobs.put((DATA, step, c.send_bytes))
                up.recv(DATA)
            if c.index == 0:
                emit("t", round=rep - c.warmup, warmup=rep < c.warmup, ms=round(now_ms() - t0, 4))
    finally:
        writer.close()


MECHANISMS = {"loop": loop, "transfer": transfer, "ring": ring}


def run(control: Control) -> int:
    c = Config(control.expect("config", time.monotonic() + 30))
    deadline = time.monotonic() + c.deadline_s
    timer = threading.Timer(c.deadline_s, _expired)
    timer.daemon = True
    timer.start()
    if take_lock() is None:
        raise RelayError(EXIT_LOCKED, "another rehearsal runs on this host")
    listener, port = listen(c.bind, c.port_low, c.port_high)
    emit("listening", port=port)
    peer = control.expect("peer", deadline)
    address, peer_port = peer.get("address"), peer.get("port")
    if not isinstance(address, str) or not isinstance(peer_port, int):
        raise RelayError(EXIT_CONFIG, "bad peer")
    out = connect(c.source, address, peer_port, c.token)
    inbound = accept(listener, c.prev, c.token, deadline)
    listener.close()
    budget = Budget(c.max_in_bytes)
    down, up = Conn(out, budget, 0, c.send_bytes), Conn(inbound, budget, c.recv_max, 0)
    emit("ready")
    control.expect("go", deadline)
    try:
        MECHANISMS[c.mechanism](c, down, up)
    except OSError as exc:
        raise RelayError(EXIT_PEER, f"connection failed: {exc}") from None
    emit("done", received_bytes=c.max_in_bytes - budget.left)
    return EXIT_OK


def _expired() -> None:
    _outcome[0] = EXIT_DEADLINE
    emit("error", reason="deadline reached")
    quit_now(EXIT_DEADLINE)


def main() -> None:
    # a TERM (the controller stopping it by PID) still removes the lock file
    signal.signal(signal.SIGTERM, lambda _sig, _frame: quit_now(EXIT_TERM))
    control = Control()
    try:
        code = run(control)
    except RelayError as exc:
        code = _outcome[0] = exc.code
        emit("error", reason=str(exc))
    except Exception as exc:  # a bug or a host's oddity: said, never a traceback on the wire
        code = _outcome[0] = EXIT_PEER
        emit("error", reason=f"{type(exc).__name__}: {exc}")
    quit_now(code)


if __name__ == "__main__":
    main()
