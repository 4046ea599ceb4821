"""Lab fidelity, and the ping and bandwidth phases of ``probe run`` on real labs (needs root).

* ``lab``: per configured link class of the default lab — RTT median error, RTT std vs the
  configured jitter, loss vs configured, single-stream iperf3 goodput vs the TCP maximum of the
  configured rate, emulator CPU. RTTs are taken with icmplib *inside* the source namespace
  (microsecond floats): iputils prints whole milliseconds above 100 ms, which would hide a
  sub-millisecond median error on the 240 ms class.
* ``phases``: ``probe run`` on the default lab and a 16-host lab; ping phase / one train
  (count × interval) — goal ≤ 1.3 — and bandwidth phase / (rounds × per-test time) — goal ≤ 1.15,
  where the per-test time is measured in the same run: iperf3 alone (no SSH, no scheduler) on the
  lab's slowest path. Also reported: the phase against rounds × (duration + omit), whose floor is
  set by iperf3's own round trips, and against the busiest host's own tests back to back (a
  lower bound for any schedule that keeps one test per host).

Run: ``python -m bench.bench_lab [--quick]`` (``make bench`` runs it when root).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, print_table, write_report
from probe.lab import control
from probe.lab.topology import load_topology
from probe.lab.truth import pair_truth
from probe.store.rundir import read_run
from probe.store.rundoc import RunDoc

DEFAULT = ROOT / "inventory" / "lab-3regions.yaml"
LAB16 = ROOT / "inventory" / "lab-16hosts.yaml"
PROBE = str(ROOT / ".venv" / "bin" / "probe")

#: (class, src, dst) of the default lab: one representative pair per configured link class.
CLASSES = [
    ("intra 0.5 ms", "eu1", "eu2"),
    ("continental 40 ms, 100 Mbit/s", "eu2", "us1"),
    ("intercontinental 240 ms, 20 Mbit/s", "us2", "ap1"),
    ("residential up 10 / down 50 Mbit/s", "home1", "us2"),
    ("lossy intra (1 %/dir)", "ap1", "ap2"),
]

ICMP_SCRIPT = """
import json, sys, icmplib
h = icmplib.ping(sys.argv[1], count=int(sys.argv[2]), interval=float(sys.argv[3]),
                 timeout=2, privileged=True)
print(json.dumps({"sent": h.packets_sent, "received": h.packets_received, "rtts": h.rtts}))
"""


def _ns(lab: control.LabInfo, host: str, *argv: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        lab.exec_argv(host, *argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return proc.stdout


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return math.nan
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def _iperf_timed(
    lab: control.LabInfo, src: str, dst: str, addr: str, seconds: int, omit: int = 2
) -> tuple[float, float]:
    """(receiver goodput bit/s, the client's wall seconds): iperf3 alone, no SSH, no scheduler."""
    server = subprocess.Popen(
        lab.exec_argv(dst, "iperf3", "-s", "-1", "-p", "5399"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        started = time.monotonic()
        out = _ns(
            lab, src, "iperf3", "-c", addr, "-p", "5399", "-t", str(seconds), "-O", str(omit), "-J"
        )
        wall = time.monotonic() - started
    finally:
        server.kill()
        server.wait()
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]), wall


def _iperf(lab: control.LabInfo, src: str, dst: str, addr: str, seconds: int) -> float:
    return _iperf_timed(lab, src, dst, addr, seconds)[0]


def fidelity(quick: bool) -> dict[str, Any]:
    topo = load_topology(str(DEFAULT))
    lab = control.up(str(DEFAULT), echo=False)
    rows = []
    try:
        for name, src, dst in CLASSES:
            truth = pair_truth(topo, src, dst)
            addr = topo.host(dst).address
            count = 200 if quick else 1000
            pid = control.emulator_pid(lab)
            cpu0, t0 = _cpu_s(pid), time.monotonic()
            doc = json.loads(
                _ns(lab, src, sys.executable, "-c", ICMP_SCRIPT, addr, str(count), "0.01")
            )
            cpu = (_cpu_s(pid) - cpu0) / (time.monotonic() - t0)
            rtts = doc["rtts"]
            loss = 100.0 * (1 - doc["received"] / doc["sent"])
            rate_fwd = (
                _iperf(lab, src, dst, addr, 4 if quick else 8) if truth.rate_fwd_bps else math.nan
            )
            rows.append(
                {
                    "class": name,
                    "pair": f"{src}>{dst}",
                    "samples": len(rtts),
                    "rtt_cfg_ms": truth.rtt_ms,
                    "rtt_median_ms": statistics.median(rtts),
                    "rtt_median_err_ms": statistics.median(rtts) - truth.rtt_ms,
                    "rtt_std_cfg_ms": truth.rtt_std_ms,
                    "rtt_std_ms": statistics.pstdev(rtts),
                    "rtt_std_ratio": statistics.pstdev(rtts) / truth.rtt_std_ms
                    if truth.rtt_std_ms
                    else None,
                    "loss_cfg_pct": truth.loss_pct,
                    "loss_pct": loss,
                    "rate_cfg_mbps": truth.rate_fwd_bps / 1e6,
                    "tcp_max_mbps": truth.tcp_max_fwd_bps / 1e6,
                    "goodput_mbps": rate_fwd / 1e6,
                    "goodput_vs_tcp_max": rate_fwd / truth.tcp_max_fwd_bps,
                    "emulator_cpu_during_ping": cpu,
                }
            )
        late_max = max(p.late_max_us for p in control.emulator_stats(lab).pairs.values())
    finally:
        control.down(lab.name, echo=False)
    return {
        "classes": rows,
        "emulator_late_max_us": late_max,
        "goals": {
            "rtt_median_err_ms": 0.5,
            "jitter_std_ratio": [0.9, 1.1],
            "goodput_vs_tcp_max": [0.95, 1.05],
        },
    }


def _probe_run(inventory: Path, out: Path, *args: str) -> RunDoc:
    proc = subprocess.run(
        [PROBE, "run", str(inventory), "-o", str(out), *args],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode not in (0, 4):
        raise RuntimeError(proc.stderr[-2000:])
    return read_run(Path(proc.stdout.strip().splitlines()[-1]))


def _phase_s(run: RunDoc, name: str) -> float:
    """A phase that must have run (the run finished)."""
    seconds = dict(run.phases.items() if run.phases else ()).get(name)
    if seconds is None:
        raise RuntimeError(f"run {run.run_id} has no {name} phase")
    return seconds


def _alone_per_class(
    lab: control.LabInfo, topology: Path, tests: list[tuple[str, str]], duration: int, omit: int
) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """Each test's own cost, measured alone: one iperf3 run per RTT class (rounded to 1 ms).

    A test costs duration + omit + iperf3's own ~7 round trips of handshake and result
    exchange, whatever schedules it: this is the per-test time the phase is compared with.
    """
    topo = load_topology(str(topology))
    key = {t: f"{round(pair_truth(topo, *t).rtt_ms)} ms" for t in tests}
    alone: dict[str, float] = {}
    for test, cls in key.items():
        if cls not in alone:
            alone[cls] = _iperf_timed(lab, *test, topo.host(test[1]).address, duration, omit)[1]
    return {t: alone[c] for t, c in key.items()}, alone


def phases(topology: Path, quick: bool) -> dict[str, Any]:
    """Ping phase / one train and bandwidth phase / (rounds × per-test) on one lab."""
    from probe.inventory import load_inventory
    from probe.plan import parse_pair_mode, schedule_rounds, select_pairs

    lab = control.up(str(topology), echo=False)
    count, interval = 20, 0.2
    duration, omit = (3, 1) if quick else (10, 2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ping_run = _probe_run(
                lab.inventory, Path(tmp), "--count", str(count), "--interval", str(interval),
                "--no-bandwidth",
            )  # fmt: skip
            bw_run = _probe_run(
                lab.inventory, Path(tmp), "--count", "3", "--interval", "0.05",
                "--duration", str(duration), "--omit", str(omit),
            )  # fmt: skip
        inv = load_inventory(str(lab.inventory))
        bw_plan = schedule_rounds(select_pairs(inv.measured, parse_pair_mode("all")))
        tests = [(t.client, t.server) for r in bw_plan.rounds for t in r]
        per_test, alone = _alone_per_class(lab, topology, tests, duration, omit)
    finally:
        control.down(lab.name, echo=False)
    train = count * interval
    nominal = duration + omit
    rounds = len(bw_plan.rounds)
    phase = _phase_s(bw_run, "bandwidth_s")
    # the busiest host's own tests back to back: no schedule with one test per host beats it
    per_host: dict[str, float] = {}
    for (client, server), seconds in per_test.items():
        for host in (client, server):
            per_host[host] = per_host.get(host, 0.0) + seconds
    bound = max(per_host.values())
    slowest = max(alone.values())
    hosts = len(ping_run.measured_hosts)
    return {
        "lab": topology.name,
        "hosts": hosts,
        "ping": {
            "phase_s": _phase_s(ping_run, "ping_s"),
            "connect_s": _phase_s(ping_run, "connect_s"),
            "train_s": train,
            "ratio": _phase_s(ping_run, "ping_s") / train,
            "goal": 1.3,
        },
        "bandwidth": {
            "phase_s": phase,
            "rounds": rounds,
            "tests": bw_run.cells.bw_planned if bw_run.cells else None,
            "nominal_test_s": nominal,
            "ratio_nominal": phase / (rounds * nominal),
            "alone_test_s_by_rtt_class": alone,
            "slowest_test_alone_s": slowest,
            "ratio": phase / (rounds * slowest),
            "busiest_host_bound_s": bound,
            "ratio_vs_busiest_host_bound": phase / bound,
            "floor_nominal": bound / (rounds * nominal),
            "goal": 1.15,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter tests")
    parser.add_argument("--only", choices=["lab", "phases"], default=None)
    args = parser.parse_args()
    if args.only in (None, "lab"):
        fid = fidelity(args.quick)
        write_report("lab", fid)
        print_table(
            [
                [
                    r["class"],
                    r["rtt_cfg_ms"],
                    r["rtt_median_err_ms"],
                    r["rtt_std_cfg_ms"],
                    r["rtt_std_ms"],
                    r["loss_cfg_pct"],
                    r["loss_pct"],
                    r["tcp_max_mbps"],
                    r["goodput_mbps"],
                    100 * r["emulator_cpu_during_ping"],
                ]
                for r in fid["classes"]
            ],
            [
                "link class",
                "RTT cfg",
                "median err",
                "std cfg",
                "std",
                "loss cfg %",
                "loss %",
                "TCP max",
                "goodput",
                "emu CPU %",
            ],
        )
    if args.only in (None, "phases"):
        results = [phases(DEFAULT, args.quick), phases(LAB16, args.quick)]
        write_report("phases", {"labs": results})
        print_table(
            [
                [
                    r["lab"], r["hosts"], r["ping"]["phase_s"], r["ping"]["ratio"],
                    r["bandwidth"]["rounds"], r["bandwidth"]["phase_s"],
                    r["bandwidth"]["slowest_test_alone_s"], r["bandwidth"]["ratio"],
                    r["bandwidth"]["ratio_nominal"], r["bandwidth"]["floor_nominal"],
                    r["bandwidth"]["ratio_vs_busiest_host_bound"],
                ]
                for r in results
            ],
            [
                "lab", "hosts", "ping phase s", "ping / train", "bw rounds", "bw phase s",
                "slowest test alone s", "bw / (rounds × slowest)", "bw / (rounds × (d+O))",
                "floor of that", "bw / busiest host",
            ],
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
