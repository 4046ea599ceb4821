"""The ``probe calc`` use case: one run's anchors and ``CalcOptions`` in, typed figures out.

Loads the model shape, builds the workload, places the stages (unless a path is given) and runs
the chosen scenarios. Inputs a scenario needs are checked before anything is computed; the CLI
renders the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from probe.decide import scenarios as sc
from probe.decide.options import TOKEN_ID_BYTES, CalcOptions, PoolOptions, SpecOptions
from probe.matrix.anchors import Anchors


@dataclass(frozen=True, slots=True)
class Calculation:
    """The figures of each scenario asked for (None: not asked for, or fewer than two stages)."""

    run_id: str
    hosts: int  # hosts in the run
    workload: sc.Workload
    path: tuple[str, ...]  # the stage hosts in order
    auto_placed: bool
    decode: sc.PipelineResult | None = None
    prefill: sc.PipelineResult | None = None
    tp: sc.TpResult | None = None
    spec: sc.SpecResult | None = None
    spec_skipped: tuple[str, ...] = ()  # why a proposer → verifier hop has no figure
    pool: sc.PoolResult | None = None


def calc(anchors: Anchors, options: CalcOptions) -> Calculation:
    """Run the scenarios of ``options`` over the links measured in ``anchors``."""
    p = options.pipeline
    w = replace(
        sc.Workload.of(p),
        decode_compute_ms_per_stage=options.decode_compute_ms,
        prefill_compute_ms_per_stage=options.prefill_compute_ms,
        tp_compute_ms_per_token=options.tp_compute_ms,
    )
    wanted = options.wanted()
    links = sc.Links.from_anchors(anchors)
    path = options.path or sc.place(links, p.stages, w.activation_bytes(1, 1), p.ring)
    decode = prefill = tp = None
    draws = options.draws
    if len(path) >= 2 and {"decode", "prefill"} & wanted:
        hops = links.hops(path, p.ring)
        if "decode" in wanted:
            decode = sc.decode(hops, w, trials=draws.trials, seed=draws.seed)
        if "prefill" in wanted:
            prefill = sc.prefill(hops, w, trials=draws.trials, seed=draws.seed)
    if "tp" in wanted and len(path) >= 2:
        tp = sc.tensor_parallel(links.hops(path, ring=True), w)
    spec, skipped = _speculative(links, path, options.spec) if "spec" in wanted else (None, ())
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
        pool=_pool(links, path, w, options.pool) if "pool" in wanted else None,
    )


def _speculative(
    links: sc.Links, path: tuple[str, ...], o: SpecOptions
) -> tuple[sc.SpecResult, tuple[str, ...]]:
    """Every proposer → verifier hop the run measured; the others are reasons, not errors."""
    assert o.accepted_per_block is not None and o.block_ms is not None  # CalcOptions.wanted
    assert o.ar_tokens_per_s is not None
    hops, skipped = [], []
    for proposer in o.proposers or path:
        for verifier in o.verifiers or path:
            if proposer != verifier:
                try:
                    hops.append(links.hop(proposer, verifier))
                except sc.UnmeasuredHop as exc:
                    skipped.append(str(exc))
    res = sc.speculative(hops, o.accepted_per_block, o.block_ms, o.ar_tokens_per_s)
    return res, tuple(skipped)


def _pool(links: sc.Links, path: tuple[str, ...], w: sc.Workload, o: PoolOptions) -> sc.PoolResult:
    assert o.service_ms is not None  # CalcOptions.wanted
    hosts = o.hosts or path
    capability = {h: 1.0 for h in hosts} | dict(o.capability)
    service = [o.service_ms / capability[h] for h in hosts]
    payload = o.payload_bytes if o.payload_bytes is not None else w.seq * TOKEN_ID_BYTES
    return sc.pool(hosts[0], links, hosts, o.requests, service, payload)
