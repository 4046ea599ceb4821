"""The rehearsal controller end to end without SSH: relays as local processes on 127.0.0.x (each
"host" its own ``$TMPDIR``), started by a runner that behaves like ``SshPool.spawn(keep_stdin)``:
PID first, the command's stdin is the session's, stop by PID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from probe.decide.options import CalcOptions, PipelineOptions, RehearseOptions, SpecOptions
from probe.decide.rehearse import Timing, figures, traffic
from probe.matrix.pairs import PairTable
from probe.measure.rehearsal import legs, rehearse, write_timings
from probe.measure.remote import STDIN_SPAWN_SCRIPT, Ready
from probe.model import CellStatus, CommandResult, Host, Inventory, SshTarget


@dataclass
class Conn:
    host: str
    ok: bool = True
    status: CellStatus = CellStatus.OK
    reason: str = ""


class LocalProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc, self.output, self._err = proc, "", ""

    @property
    def ended(self) -> bool:
        return self.proc.returncode is not None

    def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(text.encode())

    async def read_until(self, ready: Ready, timeout_s: float) -> bool:
        assert callable(ready) and self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout_s):
                while not ready(self.output):
                    chunk = await self.proc.stdout.read(4096)
                    if not chunk:
                        return False
                    self.output += chunk.decode()
        except TimeoutError:
            return False
        return True

    async def stop(self, grace_s: float = 2.0) -> CommandResult:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        out, err = await self.proc.communicate()
        self.output += out.decode()
        return CommandResult((), self.proc.returncode, self.output, err.decode(), 0.0)


PYTHON3 = os.path.realpath("/usr/bin/python3")


class LocalRunner:
    """Every host on this machine, each with its own TMPDIR; ``no_python``: hosts whose PATH has
    no python3; ``down``: hosts that cannot be reached."""

    def __init__(self, tmp: Path, no_python: Sequence[str] = (), down: Sequence[str] = ()) -> None:
        self.tmp, self.no_python, self.down = tmp, set(no_python), set(down)
        self.started: list[LocalProcess] = []

    async def connect(
        self, names: Sequence[str] | None = None, *, on_connected: Callable[[Any], None] | None
    ) -> Mapping[str, Any]:
        return {
            n: Conn(n, False, CellStatus.UNREACHABLE, "connect timed out") if n in self.down
            else Conn(n)
            for n in names or ()
        }  # fmt: skip

    async def spawn(
        self, host: str, argv: Sequence[str], *, max_lifetime_s: float, keep_stdin: bool
    ) -> LocalProcess:
        assert keep_stdin
        tmp = self.tmp / host
        tmp.mkdir(parents=True, exist_ok=True)
        bindir = self.tmp / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        python = bindir / "python3"
        if not python.exists():
            python.symlink_to(PYTHON3)
        path = "/nonexistent" if host in self.no_python else str(bindir)
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", STDIN_SPAWN_SCRIPT, "sh", *argv,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={"TMPDIR": str(tmp), "PATH": path},
        )  # fmt: skip
        local = LocalProcess(proc)
        assert await local.read_until(lambda out: "\n" in out, 5)
        local.output = local.output.split("\n", 1)[1]  # the PID line, as SshPool.spawn reads it
        self.started.append(local)
        return local


def inventory(n: int) -> Inventory:
    hosts = tuple(
        Host(name=f"h{i}", address=f"127.0.0.{i + 1}", ssh=SshTarget(f"127.0.0.{i + 1}"))
        for i in range(n)
    )
    return Inventory("inventory.yaml", "0" * 64, hosts)


CALC = CalcOptions(pipeline=PipelineOptions(model="llama3.2-1b", tokens=6, seq=64))


def _run(tmp: Path, n: int, o: RehearseOptions, runner: LocalRunner | None = None) -> Any:
    t = traffic([f"h{i}" for i in range(n)], CALC, o)
    return asyncio.run(rehearse(inventory(n), t, o, runner or LocalRunner(tmp), lambda _s: None))


def test_legs_listen_on_the_path_address_and_accept_only_the_previous_stage() -> None:
    ring = legs(inventory(3), ["h0", "h1", "h2"])
    assert [(x.listen, x.source, x.prev) for x in ring] == [
        ("127.0.0.1", "127.0.0.1", "127.0.0.3"),
        ("127.0.0.2", "127.0.0.2", "127.0.0.1"),
        ("127.0.0.3", "127.0.0.3", "127.0.0.2"),
    ]
    assert ring[0].ports == (5201, 5264)  # the run's iperf3 ports


def test_decode_over_three_local_hosts(tmp_path: Path) -> None:
    done = _run(tmp_path, 3, RehearseOptions("decode"))
    assert done.ok, done.hosts
    assert [x.round for x in done.timings] == list(range(6))
    assert {h.port for h in done.hosts} <= set(range(5201, 5265))
    (fig,) = figures(done.traffic, done.timings, None, RehearseOptions())
    assert fig.name == "per token" and fig.samples == 6 and fig.predicted_p50 is None
    path = write_timings(tmp_path / "out", done)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 6 and lines[0]["host"] == "h0" and lines[0]["kind"] == "t"


def test_prefill_allreduce_spec_and_kv_each_return_their_timings(tmp_path: Path) -> None:
    prefill = _run(tmp_path / "p", 3, RehearseOptions("prefill", rounds=2, idle_s=0.0, pings=2))
    assert prefill.ok, prefill.hosts
    assert sorted((x.kind, x.hop) for x in prefill.timings) == sorted(
        [("ping", 0)] * 2 + [("ping", 1)] * 2 + [("t", 0)] * 2 + [("t", 1)] * 2
    )
    ring = _run(tmp_path / "a", 4, RehearseOptions("allreduce", rounds=3, warmup=1))
    assert ring.ok and [x.warmup for x in ring.timings] == [True, False, False, False]
    calc = CalcOptions(pipeline=CALC.pipeline, spec=SpecOptions(3.0, 5.0))
    o = RehearseOptions("spec", rounds=4)
    t = traffic(["h0", "h1"], calc, o)
    spec = asyncio.run(rehearse(inventory(2), t, o, LocalRunner(tmp_path), lambda _s: None))
    assert spec.ok and min(x.ms for x in spec.timings) >= 5.0  # the verifier's block time
    (rate,) = figures(t, spec.timings, None, o)
    assert rate.unit == "tokens/s" and rate.measured_p50 <= 3.0 / 5.0 * 1e3
    kv = _run(tmp_path / "k", 2, RehearseOptions("kv", rounds=1, idle_s=0.0, pings=1))
    assert kv.ok and [x.bytes for x in kv.timings if x.kind == "t"] == [t_kv_bytes()]


def t_kv_bytes() -> int:
    # llama3.2-1b: 16 layers, 8 of 32 heads are KV heads, hidden 2048, bf16, S = 64, B = 1
    return 2 * 16 * 64 * 1 * (8 * 2048 // 32) * 2


def test_a_host_without_python3_says_so_and_nothing_keeps_running(tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path, no_python=["h1"])
    done = _run(tmp_path, 3, RehearseOptions("decode"), runner)
    assert not done.ok and done.timings == ()
    bad = {h.host: h for h in done.hosts}["h1"]
    assert bad.status is CellStatus.ERROR and "python3 not found on h1" in (bad.reason or "")
    assert all(p.ended for p in runner.started)


def test_an_unreachable_host_starts_no_relay(tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path, down=["h2"])
    done = _run(tmp_path, 3, RehearseOptions("decode"), runner)
    assert {h.host: h.status for h in done.hosts}["h2"] is CellStatus.UNREACHABLE
    assert runner.started == []


def test_relays_end_when_the_rehearsal_does(tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path)
    began = time.monotonic()
    done = _run(tmp_path, 2, RehearseOptions("decode"), runner)
    assert done.ok and all(p.ended for p in runner.started)
    assert not [p for p in tmp_path.rglob("probe-relay-*")]  # lock files removed
    assert time.monotonic() - began < 30


def test_traffic_sizes_follow_the_model() -> None:
    t = traffic(["a", "b", "c"], CALC, RehearseOptions("decode"))
    assert t.send_bytes == (4096, 4096, 4) and t.rounds == 6  # hidden 2048 × bf16; token id
    pre = traffic(["a", "b", "c"], CALC, RehearseOptions("prefill"))
    assert pre.send_bytes == (64 * 4096, 64 * 4096, 0) and pre.rounds == 3
    ar = traffic(["a", "b", "c", "d"], CALC, RehearseOptions("allreduce"))
    assert ar.send_bytes == (1024,) * 4 and ar.warmup == 2
    with pytest.raises(Exception, match="kv needs 2 hosts"):
        traffic(["a", "b", "c"], CALC, RehearseOptions("kv"))
    with pytest.raises(Exception, match="exceeds --max-bytes"):
        traffic(["a", "b"], CALC, RehearseOptions("prefill", max_bytes=1000))


def test_figures_compare_with_the_prediction_and_the_corrected_formula() -> None:
    from probe.decide import scenarios as sc
    from tests.decide.fleet import make_anchors

    links = sc.Links.from_anchors(make_anchors(sizes={"us-east": 2, "eu-west": 1}))
    path = list(links.hosts)
    big = CalcOptions(pipeline=PipelineOptions(model="llama-3-8b", seq=2048))
    o = RehearseOptions("prefill")
    t = traffic(path, big, o)
    hop = links.hop(path[0], path[1])
    rtt = hop.rtt_p50_ms
    timings = [Timing(path[0], "ping", rtt, hop=0), Timing(path[0], "t", 1000.0 + rtt, 0, 0)]
    timings += [Timing(path[1], "ping", 2.0, hop=1), Timing(path[1], "t", 500.0, 0, 1)]
    first, _ = figures(t, timings, links, o)
    assert first.measured_p50 == pytest.approx(1000.0 + rtt / 2)
    assert first.predicted_p50 is not None and first.corrected_p50 is not None
    assert first.corrected_p50 >= first.predicted_p50  # slow start only adds
    assert first.error_p50_pct == pytest.approx(
        (first.measured_p50 - first.predicted_p50) / first.predicted_p50 * 100
    )


def test_a_ring_all_reduce_is_predicted_by_its_schedule_not_its_worst_link_each_step() -> None:
    """One slow link in a ring of four: today's formula pays its RTT on each of the 6 steps;
    the relay's schedule (each host sends once it has received) pays each link in turn."""
    from probe.decide import scenarios as sc
    from tests.decide.fleet import make_anchors

    links = sc.Links.from_anchors(make_anchors(sizes={"us-east": 3, "eu-west": 1}))
    path = list(links.hosts)
    o = RehearseOptions("allreduce")
    t = traffic(path, CALC, o)
    timings = [Timing(path[0], "t", 100.0, 0)]
    (fig,) = figures(t, timings, links, o)
    hops = links.hops(path, ring=True)
    worst = max(h.rtt_p50_ms for h in hops)
    assert fig.predicted_p50 is not None and fig.corrected_p50 is not None
    assert fig.predicted_p50 >= 6 * worst / 2  # every step at the worst half-RTT
    assert fig.corrected_p50 < fig.predicted_p50
    assert fig.corrected_p50 >= sum(h.rtt_p50_ms for h in hops) / 2  # at least once round


def test_the_corrected_prediction_follows_each_senders_congestion_control() -> None:
    """Over BBR senders: decode's corrected figure adds BBR's pacing of its sparse messages and a
    prefill's none of slow start (BBR keeps its window); over CUBIC the reverse."""
    from dataclasses import replace

    from probe.decide import formulas as f
    from probe.decide import scenarios as sc
    from tests.decide.fleet import make_anchors

    base = make_anchors(sizes={"eu": 1, "ap": 1}, cross_rtt_ms=240.0, bw_mbps=20.0)
    path = ["eu-0", "ap-0"]
    big = CalcOptions(pipeline=PipelineOptions(model="llama-3-8b", seq=2048))

    def predicted(cc: str, pattern: str) -> tuple[float, float]:
        pairs = PairTable.of(replace(p, sender_cc=cc, receiver_cc=cc) for p in base.pairs)
        links = sc.Links.from_anchors(replace(base, pairs=pairs))
        o = RehearseOptions(pattern)  # type: ignore[arg-type]
        t = traffic(path, big, o)
        timings = [Timing("eu-0", "t", 300.0, 0, 0), Timing("eu-0", "ping", 240.0, hop=0)]
        fig = figures(t, timings, links, o)[0]
        assert fig.predicted_p50 is not None and fig.corrected_p50 is not None
        return fig.predicted_p50, fig.corrected_p50

    today, bbr = predicted("bbr", "decode")  # eu-0 → ap-0 carries 8,192 B, the way back 4 B
    assert bbr - today == pytest.approx(f.bbr_sparse_extra_ms(240.0, 8192, 20e6))
    assert predicted("cubic", "decode") == (today, today)
    today, bbr = predicted("bbr", "prefill")
    assert bbr == today
    _, cubic = predicted("cubic", "prefill")
    assert cubic - today == pytest.approx(f.slow_start_stall_ms(240.0, 2048 * 4096 * 2, 20e6))
