"""Synthetic run directories in the runner's format (run.json + samples.jsonl), seeded.

``python -m tests.report.runs`` rewrites ``tests/fixtures/runs/lab8/``, the fixed run of the
golden report test. It writes the records as dicts in the shape of probe's first files, which
every later probe must still read (``typed`` reads them back as probe does). Its faults, each
meant to show up in the report:

- ap2 is unreachable (host record; no ping or iperf3 record touches it);
- eu3 → us2 ping is ``all-lost`` (ICMP dropped on that path);
- us3 has no iperf3: every bandwidth cell with us3 at either end is ``tool-missing``;
- eu2 answers slowly as a source (+6 ms on every eu2 → * ping): a bad row;
- eu1 receives at 180 Mbit/s from everyone (ingress shaping): a bad bandwidth column;
- us1 → ap1 loses 2 of 20 probes.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from probe.model import CellStatus
from probe.store.records import SampleRecord, TornMark, UnknownRecord, decode_record
from probe.store.rundoc import (
    ConnectOutcome,
    InventoryRef,
    RunDoc,
    RunHost,
    RunOptionsDoc,
    RunPhases,
    SshRoute,
    decode_run,
    encode_run,
)

HOSTS = {"eu": ["eu1", "eu2", "eu3"], "us": ["us1", "us2", "us3"], "ap": ["ap1", "ap2"]}
BASE_RTT_MS = {
    frozenset({"eu"}): 0.45, frozenset({"us"}): 0.55, frozenset({"ap"}): 0.6,
    frozenset({"eu", "us"}): 78.0, frozenset({"eu", "ap"}): 160.0, frozenset({"us", "ap"}): 110.0,
}  # fmt: skip
T0 = 1_795_424_400.0  # 2026-11-23T09:00:00Z
PROBES = 20

Pair = tuple[str, str]
Tweak = Callable[[Pair, dict[str, Any]], dict[str, Any] | None]


def region_of(host: str) -> str:
    return next((r for r, names in HOSTS.items() if host in names), "other")


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _host(name: str, i: int, down: bool) -> RunHost:
    region, address = region_of(name), f"198.18.{i // 200 + 1}.{i % 200 + 11}"
    connection = (
        ConnectOutcome(CellStatus.UNREACHABLE, "connect to 198.18.1.18:22: connection timed out")
        if down else
        ConnectOutcome(CellStatus.OK, None, 0.4,
                       {"ping": "iputils 20221126", "iperf3": None if name == "us3" else "3.12"})
    )  # fmt: skip
    return RunHost(name, address, region, f"{region}-a", "lab", ssh=SshRoute(address, user="root"),
                   connection=connection)  # fmt: skip


def ping_record(
    src: str, dst: str, t: float, rtts: list[float | None], status: str = "ok"
) -> dict[str, Any]:
    got = [r for r in rtts if r is not None]
    summary = (
        {"rtt_min_ms": min(got), "rtt_avg_ms": round(statistics.fmean(got), 3),
         "rtt_max_ms": max(got), "rtt_mdev_ms": round(statistics.pstdev(got), 3)}
        if got else None
    )  # fmt: skip
    return {
        "kind": "ping", "src": src, "dst": dst, "t": t, "status": status,
        "reason": "100% packet loss" if status == "all-lost" else None,
        "argv": ["env", "LC_ALL=C", "ping", "-n", "-c", str(len(rtts)), "-i", "0.2", dst],
        "exit_status": 0 if got else 1, "sent": len(rtts), "received": len(got),
        "duplicates": 0, "probes": [[i + 1, r] for i, r in enumerate(rtts)], "summary": summary,
    }  # fmt: skip


def iperf3_record(
    src: str, dst: str, t: float, bps: float | None, reason: str | None
) -> dict[str, Any]:
    result = (
        None if bps is None else
        {"receiver_bps": bps, "sender_bps": bps * 1.01, "retransmits": 3,
         "max_snd_cwnd_bytes": 3_145_728, "mean_rtt_ms": 1.2, "cpu_local_pct": 12.0,
         "cpu_remote_pct": 20.0, "cpu_bound": False, "version": "iperf 3.12", "reverse": False,
         "streams": 1, "duration_s": 5.0, "omit_s": 1.0, "bytes_received": bps * 5 / 8}
    )  # fmt: skip
    return {
        "kind": "iperf3", "src": src, "dst": dst, "client": src, "server": dst, "reverse": False,
        "t": t, "status": "ok" if bps is not None else "tool-missing", "reason": reason,
        "argv": ["iperf3", "-c", dst, "-J", "-t", "5", "-O", "1"], "result": result,
    }  # fmt: skip


def lab8_records(
    rng: random.Random, tweak: Tweak | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """(names, records) of the lab8 fleet; ``tweak(pair, ping_record)`` may replace a ping."""
    names = [h for hosts in HOSTS.values() for h in hosts]
    down = {"ap2"}
    records: list[dict[str, Any]] = []
    t = T0 + 2.0
    for name in names:
        status = "unreachable" if name in down else "ok"
        reason = "connect to 198.18.1.18:22: connection timed out" if name in down else None
        records.append({"kind": "host", "host": name, "status": status, "reason": reason, "t": t})
    live = [n for n in names if n not in down]
    for src in live:
        for dst in live:
            if src == dst:
                continue
            t += 0.05
            base = BASE_RTT_MS[frozenset({region_of(src), region_of(dst)})]
            base += 6.0 if src == "eu2" else 0.0
            rtts: list[float | None] = [
                round(
                    base * (1 + 0.02 * rng.random()) + rng.expovariate(1 / (0.02 * base + 0.05)), 3
                )
                for _ in range(PROBES)
            ]
            if (src, dst) == ("us1", "ap1"):
                rtts[4] = rtts[11] = None
            rec = ping_record(src, dst, t, rtts)
            if (src, dst) == ("eu3", "us2"):
                rec = ping_record(src, dst, t, [None] * PROBES, status="all-lost")
            if tweak is not None:
                rec = tweak((src, dst), rec) or rec
            records.append(rec)
    for src in live:
        for dst in live:
            if src == dst:
                continue
            t += 6.0
            if "us3" in (src, dst):
                records.append(iperf3_record(src, dst, t, None, "us3: iperf3: command not found"))
                continue
            same = region_of(src) == region_of(dst)
            bps = (9.41e9 if same else 0.94e9) * (1 - 0.03 * rng.random())
            if dst == "eu1":
                bps = 1.8e8 * (1 - 0.03 * rng.random())
            records.append(iperf3_record(src, dst, t, round(bps), None))
    return names, records


def run_doc(names: list[str], run_id: str, t_end: float) -> RunDoc:
    return RunDoc(
        run_id=run_id, probe_version="0.1.0",
        inventory=InventoryRef("inventory/lab-3regions.yaml", "0" * 64),
        options=RunOptionsDoc(count=PROBES, interval_s=0.2, duration_s=5, omit_s=1),
        started_utc=_iso(T0), ended_utc=_iso(t_end),
        phases=RunPhases(connect_s=1.2, ping_s=4.1, bandwidth_s=252.0),
        hosts=tuple(_host(n, i, n == "ap2") for i, n in enumerate(names)),
        complete=True,
    )  # fmt: skip


def typed(records: Iterable[dict[str, Any]]) -> list[SampleRecord]:
    """The records as probe reads them from samples.jsonl."""
    out = []
    for n, rec in enumerate(records, 1):
        decoded = decode_record(json.dumps(rec), f"record {n}")
        assert decoded is not None and not isinstance(decoded, UnknownRecord | TornMark), rec
        out.append(decoded)
    return out


def write_run(run_dir: Path, run: RunDoc, records: list[dict[str, Any]]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(encode_run(run))
    lines = (json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    (run_dir / "samples.jsonl").write_text("".join(lines))
    return run_dir


def cut_short(run_dir: Path, records: int, *, interrupted: bool = True) -> Path:
    """The run as if stopped before its last ``records`` records: Ctrl-C (``interrupted``), or
    a kill (run.json as written after the ping mesh: no end, no cell counts)."""
    path = run_dir / "samples.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-records]))
    doc = decode_run((run_dir / "run.json").read_text(), run_dir / "run.json")
    if interrupted:
        doc = replace(doc, complete=False, interrupted=True)
    else:
        doc = replace(doc, complete=False, ended_utc=None, cells=None)
    (run_dir / "run.json").write_text(encode_run(doc))
    return run_dir


def make_lab8(run_dir: Path, *, seed: int = 8, tweak: Tweak | None = None) -> Path:
    names, records = lab8_records(random.Random(seed), tweak)
    return write_run(run_dir, run_doc(names, run_dir.name, records[-1]["t"] + 1.0), records)


if __name__ == "__main__":
    make_lab8(Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z")
