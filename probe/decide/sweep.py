"""``probe calc --sweep``: the calculator's figures as one link variable sweeps a range.

The hosts are chosen once, on the run as measured; each point then sets the swept variable on
every measured hop of the same hosts (``Links.with_rtt`` / ``with_bw``) and computes again,
without Monte-Carlo draws (spec calibrated from measured rates keeps the E and block time solved
on the run as measured). A curve answers "from which RTT (goodput) on does this stop paying?".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from probe.decide.calc import Calculation, calc
from probe.decide.options import CalcOptions, Draws, Sweep
from probe.decide.scenarios import Links
from probe.matrix.anchors import Anchors


@dataclass(frozen=True, slots=True)
class Series:
    """One figure (network and compute, RTT p50) at every point of the sweep."""

    label: str
    unit: str
    values: tuple[float | None, ...]
    lower_bound: bool  # some point misses a transfer term (goodput unmeasured)


@dataclass(frozen=True, slots=True)
class SweepResult:
    sweep: Sweep
    x_label: str  # "RTT ms" or "goodput Mbit/s": what ``x`` holds
    x: tuple[float, ...]
    series: tuple[Series, ...]
    base: Calculation  # the run as measured: its hosts are those of every point


def _figures(c: Calculation) -> list[tuple[str, str, float | None, bool]]:
    """(label, unit, value, lower bound) of each scenario's headline figure in ``c``."""
    out: list[tuple[str, str, float | None, bool]] = []
    if c.decode:
        est = c.decode.per_step
        out.append(("decode", "ms/token", est.full_p50_ms, est.lower_bound))
    if c.prefill:
        est = c.prefill.total
        out.append(("prefill", "ms/request", est.full_p50_ms, est.lower_bound))
    if c.tp:
        est = c.tp.decode_token
        out.append((f"tp ({c.tp.allreduce})", "ms/token", est.full_p50_ms, est.lower_bound))
    if c.spec:
        best = max((r.speedup_p50 for r in c.spec.rows), default=None)
        out.append(("spec best hop", "× speed-up", best, False))
        fastest = max((r.tokens_per_s_p50 for r in c.spec.rows), default=None)
        out.append(("spec best hop", "tokens/s", fastest, False))
    if c.pool:
        est = c.pool.aware
        out.append(("pool capability-aware", "ms makespan", est.full_p50_ms, est.lower_bound))
    return out


def sweep(anchors: Anchors, options: CalcOptions, s: Sweep) -> SweepResult:
    """The figures of ``options`` at every point of ``s``, on the hosts the run places them."""
    base = calc(anchors, options)
    spec = replace(
        options.spec,
        proposers=options.spec.proposers or base.spec_hosts,
        verifiers=options.spec.verifiers or base.spec_hosts,
    )
    cal = base.spec.calibration if base.spec else None
    if cal is not None:  # calibrated once, on the run as measured
        spec = replace(
            spec,
            calibration=None,
            accepted_per_block=cal.accepted_per_block,
            block_ms=cal.block_ms,
            ar_tokens_per_s=cal.rates.ar_tokens_per_s,
        )
    fixed = replace(
        options,
        path=base.path,
        spec=spec,
        pool=replace(options.pool, hosts=tuple(m.host for m in base.pool.hosts))
        if base.pool
        else options.pool,
        draws=Draws(trials=0),
    )
    links = Links.from_anchors(anchors)
    points = [
        calc(anchors, fixed, links.with_rtt(x) if s.variable == "rtt" else links.with_bw(x))
        for x in s.points()
    ]
    columns = [_figures(c) for c in points]
    series = tuple(
        Series(
            label,
            unit,
            tuple(col[i][2] for col in columns),
            any(col[i][3] for col in columns),
        )
        for i, (label, unit, _, _) in enumerate(_figures(base))
    )
    rtt = s.variable == "rtt"
    x = s.points() if rtt else tuple(v / 1e6 for v in s.points())
    return SweepResult(s, "RTT ms" if rtt else "goodput Mbit/s", x, series, base)
