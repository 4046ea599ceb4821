"""The ``probe run`` use case: inventory in, a complete run directory out.

The run directory is written as the run goes (run.json at every phase, samples.jsonl per result)
and finished even when the run is interrupted: the matrix, anchors and ``latest`` link are
rebuilt from whatever samples exist, so every cell is a measurement or a reason. A write the
disk refuses (full, read-only) stops the run instead, the same way, and nothing more is written:
what is on disk stays whole for ``--resume`` (see ``_unsaved``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from probe import __version__
from probe.errors import PartialRunError, StoreError, Terminated
from probe.matrix import build as matrix
from probe.matrix.anchors import write_anchors
from probe.matrix.engine import part_stats
from probe.matrix.stored import save_matrix, stamp_of
from probe.measure.context import Done, Emit, EmitMany, HostState, RunOptions, Say
from probe.measure.measurement import Measurement
from probe.measure.resume import check_inventory, check_network, resume_options, resumed_hosts
from probe.measure.ssh import SshPool
from probe.measure.sshoptions import SshOptions
from probe.model import CellStatus, Inventory
from probe.store.lock import RunLock
from probe.store.records import SampleRecord
from probe.store.rundir import RunStore, read_run, scan_samples, utc_iso
from probe.store.rundoc import (
    CellCounts,
    ConnectOutcome,
    ControllerVantage,
    InventoryRef,
    RunAttempt,
    RunDoc,
    RunHost,
    RunPhases,
    encode_run,
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """``rtt_not_planned`` of the ``pairs`` were left out by a sampled ping plan and
    ``rtt_not_measurable`` cannot be measured (``probe.reach``): never missing."""

    run_dir: Path
    pairs: int
    rtt_ok: int
    bw_ok: int
    bw_planned: int
    interrupted: bool
    rtt_not_planned: int = 0
    rtt_not_measurable: int = 0  # neither host accepts ICMP (probe.reach): never missing

    @property
    def rtt_planned(self) -> int:
        return self.pairs - self.rtt_not_planned - self.rtt_not_measurable

    @property
    def complete(self) -> bool:
        return (
            not self.interrupted
            and self.rtt_ok == self.rtt_planned
            and self.bw_ok == self.bw_planned
        )

    def line(self, run_id: str) -> str:
        """The end-of-run line: cells measured of those planned, and the pairs left out apart
        (never missing)."""
        apart = [
            f"{n} {why}"
            for n, why in (
                (self.rtt_not_planned, "not planned"),
                (self.rtt_not_measurable, "not measurable"),
            )
            if n
        ]
        return (
            f"run {run_id}: {self.rtt_ok}/{self.rtt_planned} RTT cells"
            + (f" ({', '.join(apart)} of {self.pairs} pairs)" if apart else "")
            + f", {self.bw_ok}/{self.bw_planned} bandwidth cells"
            + (" (interrupted)" if self.interrupted else "")
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
    given: Mapping[str, str] | None = None,
) -> RunSummary:
    """Measure the fleet; on any exit (Ctrl-C included) the run directory is left consistent.

    The output folder is locked for the whole run (:class:`RunLock`): a second run or resume
    there stops with a one-line error before it connects to anything. A resume measures with
    the run's recorded options on the run's fleet (:mod:`probe.measure.resume`); ``given`` names
    the options the command line set explicitly, each as written.
    """
    check_network(inventory, options.network)
    root = resume.parent if resume is not None else out_root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{root}: cannot create the output folder ({exc.strerror})") from exc
    with RunLock(root):
        if resume is None:
            store = RunStore.create(out_root, summarize=part_stats)
            doc = RunDoc(
                run_id=store.run_id,
                probe_version=__version__,
                inventory=InventoryRef(inventory.source, inventory.sha256),
                started_utc=utc_iso(),
                hosts=tuple(RunHost.of(h) for h in inventory.hosts),
                options=options.as_doc(),
                networks=inventory.networks,
            )
            return await _execute(inventory, store, doc, (), Done(), options, ssh, say)
        store = RunStore.reopen(resume, part_stats)
        doc = read_run(resume)
        note = check_inventory(doc, inventory, resume)
        options = resume_options(doc.options, options, given, resume)
        if note is not None:
            say(note)
        done = Done.from_records(scan_samples(resume, []))
        doc = replace(doc, hosts=resumed_hosts(doc, inventory))
        return await _execute(inventory, store, doc, doc.history, done, options, ssh, say)


async def _execute(
    inventory: Inventory,
    store: RunStore,
    doc: RunDoc,
    earlier: tuple[RunAttempt, ...],
    done: Done,
    options: RunOptions,
    ssh: SshOptions,
    say: Say,
) -> RunSummary:
    # a new run's first attempt starts when the run does: one clock reading, not two that a
    # loaded machine puts a millisecond apart
    started = utc_iso() if earlier else doc.started_utc
    attempt = RunAttempt(started, __version__, InventoryRef(inventory.source, inventory.sha256))
    doc = replace(doc.with_attempts((*earlier, attempt)), complete=False)
    new = not earlier  # a new run's directory is removed again if nothing could be saved
    try:
        store.write_run(doc)
    except StoreError as exc:
        raise _unsaved(store, exc, new=new) from exc
    say(f"run {store.run_id} → {store.dir}")
    pool = SshPool(inventory, ssh)
    stop = _Stop()
    emit, emit_many = stop.saving(store, say)
    m = Measurement(inventory, pool, options, emit, say, done, emit_many=emit_many)
    if earlier:
        left = m.remaining()
        if left.nothing:  # nothing to ask of the hosts: the run is finished without them
            say(f"nothing left to measure: {left}")
            return _end(store, _so_far(doc, m, ended=True), m, options, say, new=new)
        say(f"resuming {store.run_id}: {left}")
    interrupted = False
    try:
        with stop.armed():
            async with pool:
                vantage = asyncio.create_task(controller_vantage(inventory, 5))
                await m.connect()
                doc = replace(doc, controller=await vantage, hosts=_connected(doc.hosts, m))
                store.write_run(_so_far(doc, m))
                await m.ping_mesh()
                store.write_run(_so_far(doc, m))
                if options.bandwidth:
                    await m.bandwidth()
    except StoreError as exc:  # run.json between phases: the run stops there
        stop.failed = stop.failed or exc
    except (asyncio.CancelledError, KeyboardInterrupt):
        if stop.failed is None:  # Ctrl-C or SIGTERM, not a write that failed
            interrupted = True
            if stop.terminated:
                raise Terminated(
                    f"terminated (SIGTERM): partial results are in {store.dir} "
                    "(resume with --resume)"
                ) from None
            raise
    finally:
        if stop.failed is None:  # else the disk refused: write nothing more, keep what is there
            ended = _so_far(doc, m, ended=True, interrupted=interrupted)
            summary = _end(store, ended, m, options, say, new=new)
        else:
            store.close()
    if stop.failed is not None:
        raise _unsaved(store, stop.failed, new=new) from stop.failed
    return summary


def _end(
    store: RunStore, doc: RunDoc, m: Measurement, options: RunOptions, say: Say, *, new: bool
) -> RunSummary:
    """Finish the run directory from its samples and say what it holds."""
    store.close(warn=say)  # the bandwidth store's last part
    try:
        summary = finish(store, doc, bw_planned=m.bandwidth_plan().tests * (options.bandwidth))
    except StoreError as exc:
        raise _unsaved(store, exc, new=new) from exc
    say(summary.line(store.run_id))
    return summary


class _Stop:
    """Why probe itself stopped the measuring task — SIGTERM, or a write to the run directory
    that failed — rather than Ctrl-C. Either way the task is cancelled, as Ctrl-C cancels it, so
    remote processes are stopped and connections closed on the way out."""

    def __init__(self) -> None:
        self.terminated = False
        self.failed: StoreError | None = None
        self._task: asyncio.Task[object] | None = None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def saving(self, store: RunStore, say: Say) -> tuple[Emit, EmitMany]:
        """``store.append`` and ``store.append_many`` that stop the run when a record cannot be
        written (a full disk): measuring on would only lose the results, and ``--resume`` can
        finish the run later. A probe-store part that cannot be written is only said (``say``):
        samples.jsonl holds its records."""

        def saved(write: Callable[[], None]) -> None:
            if self.failed is not None:  # stopping already: the disk refused a record
                return
            try:
                write()
            except StoreError as exc:
                self.failed = exc
                self.cancel()

        def emit(record: SampleRecord) -> None:
            saved(lambda: store.append(record, warn=say))

        def emit_many(records: Sequence[SampleRecord]) -> None:
            saved(lambda: store.append_many(records, warn=say))

        return emit, emit_many

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """While inside: SIGTERM (a CI job's timeout, systemd, ``kill``) and a failed write
        cancel the running task. Python's default on SIGTERM would die on the spot, leaving only
        the remote leases to clean up."""
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def on_term() -> None:
            self.terminated = True
            self.cancel()

        try:
            loop.add_signal_handler(signal.SIGTERM, on_term)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            handler = False
        else:
            handler = True
        try:
            yield
        finally:
            self._task = None
            if handler:
                loop.remove_signal_handler(signal.SIGTERM)


def _unsaved(store: RunStore, exc: StoreError, *, new: bool) -> StoreError:
    """The one line a run ends with when its directory refused a write. Results already in
    samples.jsonl (whole lines only: a failed append is cut back) make it a partial run that
    ``--resume`` finishes (exit 4); otherwise nothing was measured (exit 2) and a new run's
    directory is removed, so ``latest`` and the output folder are as before."""
    if store.has_samples():
        return PartialRunError(
            f"{exc}; the run stopped partial: samples.jsonl is intact, finish it with "
            f"--resume {store.dir}"
        )
    if new:
        store.discard()
    return StoreError(f"{exc}; nothing was measured")


def _connected(hosts: tuple[RunHost, ...], m: Measurement) -> tuple[RunHost, ...]:
    """The hosts with what connecting found (a host the run did not try keeps what it had)."""
    return tuple(_with_connection(h, m.hosts.get(h.name)) for h in hosts)


def _with_connection(host: RunHost, state: HostState | None) -> RunHost:
    if state is None:
        return host
    reason = None if state.usable else state.reason
    found = ConnectOutcome(state.status, reason, state.connect_s, dict(state.tools))
    return replace(host, connection=found)


def _so_far(
    doc: RunDoc, m: Measurement, *, ended: bool = False, interrupted: bool = False
) -> RunDoc:
    """The run with its latest attempt as it stands: the phases so far, and its end."""
    p = m.phases
    latest = replace(
        doc.attempts[-1],
        phases=RunPhases(p.get("connect_s"), p.get("ping_s"), p.get("bandwidth_s")) if p else None,
        ended_utc=utc_iso() if ended else None,
        interrupted=interrupted,
    )
    return doc.with_attempts((*doc.attempts[:-1], latest))


def finish(store: RunStore, doc: RunDoc, *, bw_planned: int) -> RunSummary:
    """Derive matrix.csv/.parquet and anchors.json (+ its samples sidecar) from the samples;
    point ``latest`` here. The matrix is stamped with its inputs as they are once run.json is
    written last (``matrix.stored``): every later reader takes it as it is."""
    torn: list[int] = []
    builder, stored = matrix.prepared(doc, lambda: matrix.stored_run(store.dir, torn))
    builder.add_store(stored)
    del stored  # its records go when the builder is done with them
    frame = builder.frame()
    rtt_ok = int(
        (frame["status"] == CellStatus.OK).sum() + (frame["status"] == CellStatus.ALL_LOST).sum()
    )
    implied = matrix.implied_rows(frame, doc)  # not-planned pairs without a row
    unplanned = int((frame["status"] == CellStatus.NOT_PLANNED).sum()) + implied
    unmeasurable = int((frame["status"] == CellStatus.NOT_MEASURABLE).sum())
    bw_ok = int((frame["bw_status"] == CellStatus.OK).sum())
    rows = len(frame) + implied
    cells = CellCounts(rows, rtt_ok, bw_ok, bw_planned, tuple(torn), unplanned, unmeasurable)
    summary = RunSummary(
        store.dir, rows, rtt_ok, bw_ok, bw_planned, doc.interrupted, unplanned, unmeasurable
    )
    done = replace(doc, complete=summary.complete, cells=cells)
    stamp = stamp_of(store.dir, run_json=encode_run(done))
    # the matrix files and the anchors each spend most of their time in Arrow and numpy, which
    # leave the GIL: side by side they share the cores
    with ThreadPoolExecutor(1) as pool:
        saved = pool.submit(save_matrix, store.dir, frame, stamp, torn)
        write_anchors(store.dir / "anchors.json", matrix.to_anchors(doc, frame, builder.samples()))
        saved.result()
    store.write_run(done)
    store.point_latest()
    return summary
