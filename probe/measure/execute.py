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
from dataclasses import dataclass, replace
from pathlib import Path

from probe import __version__
from probe.errors import StoreError, Terminated
from probe.matrix import build as matrix
from probe.matrix.anchors import dump_anchors
from probe.measure.context import Done, HostState, RunOptions, Say
from probe.measure.measurement import Measurement
from probe.measure.ssh import SshPool
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, Inventory
from probe.store.lock import RunLock
from probe.store.rundir import RunStore, read_run, scan_samples, utc_iso
from probe.store.rundoc import (
    CellCounts,
    ControllerVantage,
    HostConnection,
    InventoryRef,
    RunDoc,
    RunHost,
    RunPhases,
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """``rtt_not_planned`` of the ``pairs`` were left out by a sampled ping plan: never missing."""

    run_dir: Path
    pairs: int
    rtt_ok: int
    bw_ok: int
    bw_planned: int
    interrupted: bool
    rtt_not_planned: int = 0

    @property
    def rtt_planned(self) -> int:
        return self.pairs - self.rtt_not_planned

    @property
    def complete(self) -> bool:
        return (
            not self.interrupted
            and self.rtt_ok == self.rtt_planned
            and self.bw_ok == self.bw_planned
        )


async def controller_vantage(inventory: Inventory, count: int) -> ControllerVantage:
    """RTT from this machine to the hosts it reaches directly (no jump host), with icmplib."""
    from probe.measure.vantage import controller_rtt, icmp_mode

    mode = icmp_mode()
    direct = {h.ssh.host: h.name for h in inventory.hosts if not h.ssh.via}
    if mode == "unavailable" or not direct:
        return ControllerVantage(mode)
    try:
        results = await controller_rtt(list(direct), count=count, interval_s=0.05, timeout_s=1.0)
    except Exception as exc:
        return ControllerVantage(mode, error=str(exc))
    return ControllerVantage(mode, {direct[a]: r for a, r in results.items()})


async def execute(
    inventory: Inventory,
    *,
    out_root: Path,
    options: RunOptions,
    ssh: SshOptions,
    say: Say,
    resume: Path | None = None,
) -> RunSummary:
    """Measure the fleet; on any exit (Ctrl-C included) the run directory is left consistent.

    The output folder is locked for the whole run (:class:`RunLock`): a second run or resume
    there stops with a one-line error before it connects to anything.
    """
    root = resume.parent if resume is not None else out_root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{root}: cannot create the output folder ({exc.strerror})") from exc
    with RunLock(root):
        return await _execute(
            inventory, out_root=out_root, options=options, ssh=ssh, say=say, resume=resume
        )


async def _execute(
    inventory: Inventory,
    *,
    out_root: Path,
    options: RunOptions,
    ssh: SshOptions,
    say: Say,
    resume: Path | None,
) -> RunSummary:
    if resume is not None:
        store = RunStore.reopen(resume)
        doc = replace(read_run(resume), resumed_utc=utc_iso())
        done = Done.from_records(scan_samples(resume, []))
        say(f"resuming {store.run_id}: {len(done.cells)} cells already measured")
        # the matrix marks not-planned cells from run.json's plan: measure the same plan
        options = replace(options, ping_pairs=doc.options.ping_pairs)
    else:
        store = RunStore.create(out_root)
        done = Done()
        doc = RunDoc(
            run_id=store.run_id,
            probe_version=__version__,
            inventory=InventoryRef(inventory.source, inventory.sha256),
            started_utc=utc_iso(),
            hosts=tuple(RunHost.of(h) for h in inventory.hosts),
            options=options.as_doc(),
        )
    doc = replace(doc, complete=False, interrupted=False)
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
                doc = replace(doc, controller=await vantage, hosts=_connected(doc.hosts, m))
                store.write_run(replace(doc, phases=_phases(m)))
                await m.ping_mesh()
                store.write_run(replace(doc, phases=_phases(m)))
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
        doc = replace(doc, phases=_phases(m), ended_utc=utc_iso(), interrupted=interrupted)
        store.close()
        summary = finish(store, doc, bw_planned=m.bandwidth_plan().tests * (options.bandwidth))
        unplanned = summary.rtt_not_planned
        say(
            f"run {store.run_id}: {summary.rtt_ok}/{summary.rtt_planned} RTT cells"
            + (f" ({unplanned} of {summary.pairs} not planned)" if unplanned else "")
            + f", {summary.bw_ok}/{summary.bw_planned} bandwidth cells"
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


def _connected(hosts: tuple[RunHost, ...], m: Measurement) -> tuple[RunHost, ...]:
    """The hosts with what connecting found (a host the run did not try keeps what it had)."""
    return tuple(_with_connection(h, m.hosts.get(h.name)) for h in hosts)


def _with_connection(host: RunHost, state: HostState | None) -> RunHost:
    if state is None:
        return host
    reason = None if state.usable else state.reason
    found = HostConnection(state.status, reason, state.connect_s, dict(state.tools))
    return replace(host, connection=found)


def _phases(m: Measurement) -> RunPhases:
    p = m.phases
    return RunPhases(p.get("connect_s"), p.get("ping_s"), p.get("bandwidth_s"))


def finish(store: RunStore, doc: RunDoc, *, bw_planned: int) -> RunSummary:
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
    unplanned = int((frame["status"] == CellStatus.NOT_PLANNED).sum())
    bw_ok = int((frame["bw_status"] == CellStatus.OK).sum())
    cells = CellCounts(len(frame), rtt_ok, bw_ok, bw_planned, tuple(torn), unplanned)
    summary = RunSummary(
        store.dir, len(frame), rtt_ok, bw_ok, bw_planned, doc.interrupted, unplanned
    )
    store.write_run(replace(doc, complete=summary.complete, cells=cells))
    store.point_latest()
    return summary
