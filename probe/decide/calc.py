"""The ``probe calc`` use case: one run's anchors and ``CalcOptions`` in, typed figures out.

Loads the model shape, builds the workload, places the stages (unless a path is given) and runs
the chosen scenarios. Inputs a scenario needs are checked before anything is computed; the CLI
renders the answer.

Without ``--stages`` each scenario gets its own host count, and the answer says which: decode,
prefill and tp ``PipelineOptions.stages`` (capped at the measured hosts), spec two (one proposer,
one verifier), pool every host reachable from its dispatcher (one per request at most). A run
without goodput is placed on RTT alone: its figures are lower bounds, and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from probe.decide import scenarios as sc
from probe.decide.options import (
    SPEC_STAGES,
    TOKEN_ID_BYTES,
    CalcOptions,
    PoolOptions,
    SpecCalibration,
    SpecOptions,
)
from probe.errors import InputError
from probe.matrix.anchors import Anchors


@dataclass(frozen=True, slots=True)
class Calculation:
    """The figures of each scenario asked for (None: not asked for, or fewer than two stages)."""

    run_id: str
    hosts: int  # hosts in the run
    workload: sc.Workload
    path: tuple[str, ...]  # the decode, prefill and tp stage hosts in order (): none asked for
    auto_placed: bool
    decode: sc.PipelineResult | None = None
    prefill: sc.PipelineResult | None = None
    tp: sc.TpResult | None = None
    spec: sc.SpecResult | None = None
    spec_skipped: tuple[str, ...] = ()  # why a proposer → verifier hop has no figure
    pool: sc.PoolResult | None = None
    rtt_only: bool = False  # placed on RTT alone: no goodput measured, figures are lower bounds
    choices: tuple[str, ...] = ()  # host counts calc chose without --stages, said once each
    spec_hosts: tuple[str, ...] = ()  # paired by spec when neither end was named


def calc(anchors: Anchors, options: CalcOptions, links: sc.Links | None = None) -> Calculation:
    """Run the scenarios of ``options`` over the links measured in ``anchors`` (or over
    ``links``, the same hosts with other figures: one point of a sweep)."""
    p = options.pipeline
    w = replace(
        sc.Workload.of(p),
        decode_compute_ms_per_stage=options.decode_compute_ms,
        prefill_compute_ms_per_stage=options.prefill_compute_ms,
        tp_compute_ms_per_token=options.tp_compute_ms,
        transport=options.transport,
    )
    wanted = options.wanted()
    links = sc.Links.from_anchors(anchors) if links is None else links
    hosts = _Hosts(links, options, w.activation_bytes(1, 1))
    pipeline = ", ".join(s for s in ("decode", "prefill", "tp") if s in wanted)
    path = hosts.stages(p.stages, p.ring, pipeline) if pipeline else options.path
    decode = prefill = tp = None
    draws = options.draws
    if len(path) >= 2 and {"decode", "prefill"} & wanted:
        hops = links.hops(path, p.ring)
        if "decode" in wanted:
            decode = sc.decode(hops, w, trials=draws.trials, seed=draws.seed)
        if "prefill" in wanted:
            prefill = sc.prefill(hops, w, trials=draws.trials, seed=draws.seed)
    if "tp" in wanted and len(path) >= 2:
        tp = sc.tensor_parallel(links.hops(path, ring=True), w, options.allreduce)
    spec: sc.SpecResult | None = None
    skipped: tuple[str, ...] = ()
    spec_hosts: tuple[str, ...] = ()
    if "spec" in wanted:
        o = options.spec
        if not (o.proposers and o.verifiers):
            spec_hosts = hosts.stages(SPEC_STAGES, False, "spec (proposer + verifier)")
        spec, skipped = _speculative(links, spec_hosts, o)
    pool = _pool(links, hosts, w, options.pool) if "pool" in wanted else None
    return Calculation(
        run_id=anchors.run_id,
        hosts=len(anchors.hosts),
        workload=w,
        path=path,
        auto_placed=not options.path,
        decode=decode,
        prefill=prefill,
        tp=tp,
        spec=spec,
        spec_skipped=skipped,
        pool=pool,
        rtt_only=hosts.rtt_only,
        choices=tuple(hosts.choices),
        spec_hosts=spec_hosts,
    )


class _Hosts:
    """Which hosts each scenario runs on: ``--path``, else ``--stages`` placed, else the
    scenario's own default count; each placement once, each default choice said once."""

    def __init__(self, links: sc.Links, options: CalcOptions, payload_bytes: float) -> None:
        self.links, self.options, self.payload_bytes = links, options, payload_bytes
        self.placed: dict[tuple[int, bool], sc.Placed] = {}
        self.choices: list[str] = []

    @property
    def rtt_only(self) -> bool:
        return any(p.rtt_only for p in self.placed.values())

    def stages(self, default: int, ring: bool, who: str) -> tuple[str, ...]:
        """``who``'s hosts in order: ``--path``, ``--stages`` placed, or ``default`` placed."""
        o = self.options
        if o.path:
            return o.path
        if o.stages is not None:
            k, ring = o.stages, o.pipeline.ring
        else:
            measured = len(self.links.hosts)
            k = min(default, measured)
            capped = f", capped at the {measured} measured hosts" if k < default else ""
            self.choices.append(f"{who}: {k} hosts (default {default}{capped}; --stages to change)")
        if (k, ring) not in self.placed:
            self.placed[k, ring] = sc.place(self.links, k, self.payload_bytes, ring)
        return self.placed[k, ring].path

    def pool(self, requests: int) -> tuple[str, ...]:
        o = self.options
        if o.path or o.stages is not None:
            return self.stages(o.pipeline.stages, o.pipeline.ring, "pool")
        hosts = sc.pool_hosts(self.links, requests)
        self.choices.append(
            f"pool: {len(hosts)} of {len(self.links.hosts)} measured hosts, {hosts[0]} dispatching "
            f"(every host it reaches, one per request at most; --pool-hosts to change)"
        )
        return hosts


def _speculative(
    links: sc.Links, hosts: tuple[str, ...], o: SpecOptions
) -> tuple[sc.SpecResult, tuple[str, ...]]:
    """Every proposer → verifier hop the run measured; the others are reasons, not errors."""
    proposers, verifiers = o.proposers or hosts, o.verifiers or hosts
    cal = None if o.calibration is None else _calibrate(links, o.calibration, proposers, verifiers)
    e, block, ar = o.accepted_per_block, o.block_ms, o.ar_tokens_per_s
    if cal is not None:
        e, block, ar = cal.accepted_per_block, cal.block_ms, cal.rates.ar_tokens_per_s
    assert e is not None and block is not None and ar is not None  # CalcOptions.wanted
    hops, skipped = [], []
    for proposer in proposers:
        for verifier in verifiers:
            if proposer != verifier:
                try:
                    hops.append(links.hop(proposer, verifier))
                except sc.UnmeasuredHop as exc:
                    skipped.append(str(exc))
    return sc.speculative(hops, e, block, ar, cal), tuple(skipped)


def _calibrate(
    links: sc.Links,
    rates: SpecCalibration,
    proposers: tuple[str, ...],
    verifiers: tuple[str, ...],
) -> sc.Calibrated:
    """The remote point at its given RTT, else at the run's RTT p50 between its proposer and
    verifier: those of ``remote=RATE@P>V``, else the one proposer and one verifier named."""
    if rates.remote_rtt_ms is not None:
        return sc.calibrate(rates, rates.remote_rtt_ms)
    pair = rates.remote_pair
    if pair is None:
        if len(proposers) != 1 or len(verifiers) != 1:
            raise InputError(
                "spec calibration: remote=RATE without @RTT needs one proposer and one verifier "
                f"(got {len(proposers)} and {len(verifiers)}): write remote=RATE@RTT or "
                "remote=RATE@PROPOSER>VERIFIER"
            )
        pair = (proposers[0], verifiers[0])
    return sc.calibrate(rates, links.hop(*pair).rtt_p50_ms, pair)


def _pool(links: sc.Links, chooser: _Hosts, w: sc.Workload, o: PoolOptions) -> sc.PoolResult:
    assert o.service_ms is not None  # CalcOptions.wanted
    hosts = o.hosts or chooser.pool(o.requests)
    capability = {h: 1.0 for h in hosts} | dict(o.capability)
    service = [o.service_ms / capability[h] for h in hosts]
    payload = o.payload_bytes if o.payload_bytes is not None else w.seq * TOKEN_ID_BYTES
    return sc.pool(hosts[0], links, hosts, o.requests, service, payload)
