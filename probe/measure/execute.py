"""The ``probe run`` use case: inventory in, a complete run directory out.

The run directory is written as the run goes (run.json at every phase, samples.jsonl per result)
and finished even when the run is interrupted: the matrix, anchors and ``latest`` link are
rebuilt from whatever samples exist, so every cell is a measurement or a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from probe import __version__
from probe.errors import Terminated
from probe.matrix import build as matrix
from probe.matrix.anchors import dump_anchors
from probe.measure.context import Done, RunOptions, Say
from probe.measure.measurement import Measurement
from probe.measure.ssh import SshOptions, SshPool
from probe.model import CellStatus, Inventory
from probe.store.rundir import RunStore, read_run, scan_samples, utc_iso


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_dir: Path
    pairs: int
    rtt_ok: int
    bw_ok: int
    bw_planned: int
    interrupted: bool

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.rtt_ok == self.pairs and self.bw_ok == self.bw_planned


def _host_doc(inventory: Inventory) -> list[dict[str, Any]]:
    return [
        {
            "name": h.name,
            "address": h.address,
            "region": h.region,
            "zone": h.zone,
            "provider": h.provider,
            "tags": dict(h.tags),
            "measure": h.measure,
            "ssh": {
                "host": h.ssh.host,
                "port": h.ssh.port,
                "user": h.ssh.user,
                "via": list(h.ssh.via),
            },
        }
        for h in inventory.hosts
    ]


async def controller_vantage(inventory: Inventory, count: int) -> dict[str, Any]:
    """RTT from this machine to the hosts it reaches directly (no jump host), with icmplib."""
    from probe.measure.vantage import controller_rtt, icmp_mode

    mode = icmp_mode()
    direct = {h.ssh.host: h.name for h in inventory.hosts if not h.ssh.via}
    if mode == "unavailable" or not direct:
        return {"icmp_mode": mode, "rtt": {}}
    try:
        results = await controller_rtt(list(direct), count=count, interval_s=0.05, timeout_s=1.0)
    except Exception as exc:
        return {"icmp_mode": mode, "error": str(exc), "rtt": {}}
    return {
        "icmp_mode": mode,
        "rtt": {direct[a]: (r if isinstance(r, str) else asdict(r)) for a, r in results.items()},
    }


async def execute(
    inventory: Inventory,
    *,
    out_root: Path,
    options: RunOptions,
    ssh: SshOptions,
    say: Say,
    resume: Path | None = None,
) -> RunSummary:
    """Measure the fleet; on any exit (Ctrl-C included) the run directory is left consistent."""
    if resume is not None:
        store = RunStore.reopen(resume)
        previous = read_run(resume)
        done = Done.from_records(scan_samples(resume, []))
        doc: dict[str, Any] = {**previous, "resumed_utc": utc_iso()}
        say(f"resuming {store.run_id}: {len(done.cells)} cells already measured")
    else:
        store = RunStore.create(out_root)
        done = Done()
        doc = {
            "run_id": store.run_id,
            "probe_version": __version__,
            "inventory": {"path": inventory.source, "sha256": inventory.sha256},
            "options": options.as_dict(),
            "started_utc": utc_iso(),
            "hosts": _host_doc(inventory),
        }
    doc.update(complete=False, interrupted=False)
    store.write_run(doc)
    say(f"run {store.run_id} → {store.dir}")
    pool = SshPool(inventory, ssh)
    m = Measurement(inventory, pool, options, store.append, say, done)
    interrupted = False
    terminated: list[int] = []
    try:
        with _cancel_on_sigterm(terminated):
            async with pool:
                vantage = asyncio.create_task(controller_vantage(inventory, 5))
                await m.connect()
                doc["controller"] = await vantage
                _merge_hosts(doc, m)
                store.write_run({**doc, "phases": m.phases})
                await m.ping_mesh()
                store.write_run({**doc, "phases": m.phases})
                if options.bandwidth:
                    await m.bandwidth()
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
        if terminated:
            raise Terminated(
                f"terminated (SIGTERM): partial results are in {store.dir} (resume with --resume)"
            ) from None
        raise
    finally:
        doc.update(phases=m.phases, ended_utc=utc_iso(), interrupted=interrupted)
        store.close()
        summary = finish(store, doc, bw_planned=m.bandwidth_plan().tests * (options.bandwidth))
        say(
            f"run {store.run_id}: {summary.rtt_ok}/{summary.pairs} RTT cells, "
            f"{summary.bw_ok}/{summary.bw_planned} bandwidth cells"
            + (" (interrupted)" if interrupted else "")
        )
    return summary


@contextlib.contextmanager
def _cancel_on_sigterm(terminated: list[int]) -> Iterator[None]:
    """SIGTERM (a CI job's timeout, systemd, ``kill``) stops the run the way Ctrl-C does: the
    running task is cancelled, so remote processes are stopped and the run directory finished.
    Python's default would die on the spot, leaving only the remote leases to clean up."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_term() -> None:
        terminated.append(signal.SIGTERM)
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_term)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _merge_hosts(doc: dict[str, Any], m: Measurement) -> None:
    for h in doc["hosts"]:
        state = m.hosts.get(h["name"])
        if state is not None:
            h.update(
                status=str(state.status),
                reason=None if state.usable else state.reason,
                connect_s=state.connect_s,
                tools=state.tools,
            )


def finish(store: RunStore, doc: dict[str, Any], *, bw_planned: int) -> RunSummary:
    """Derive matrix.csv/.parquet and anchors.json from the samples; point ``latest`` here."""
    torn: list[int] = []
    builder = matrix.MatrixBuilder(doc)
    builder.add_all(scan_samples(store.dir, torn))
    frame = builder.frame()
    matrix.write_matrix(store.dir, frame)
    anchors = matrix.to_anchors(doc, frame, builder.samples())
    (store.dir / "anchors.json").write_text(dump_anchors(anchors))
    rtt_ok = int(
        (frame["status"] == CellStatus.OK).sum() + (frame["status"] == CellStatus.ALL_LOST).sum()
    )
    bw_ok = int((frame["bw_status"] == CellStatus.OK).sum())
    doc["complete"] = not doc.get("interrupted") and rtt_ok == len(frame) and bw_ok == bw_planned
    doc["cells"] = {
        "pairs": len(frame),
        "rtt_measured": rtt_ok,
        "bw_measured": bw_ok,
        "bw_planned": bw_planned,
        "torn_sample_lines": torn,
    }
    store.write_run(doc)
    store.point_latest()
    return RunSummary(
        store.dir, len(frame), rtt_ok, bw_ok, bw_planned, bool(doc.get("interrupted"))
    )
