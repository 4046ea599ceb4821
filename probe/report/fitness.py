"""The report's "Pipeline fitness" section as table cells, shared by Markdown and HTML: one row
per host (``decide.fitness.HostFitness``) and one per stage count (``StageChoice``)."""

from __future__ import annotations

from probe.decide.fitness import (
    ASYMMETRY,
    LOSSY_PCT,
    RESIDENTIAL_EXCESS_MS,
    HostFitness,
    PipelineFitness,
    StageChoice,
)
from probe.report import fmt

HOST_HEADERS = ("host", "region", "RTT p50 region ms", "RTT p50 other ms", "loss out %",
                "loss in %", "goodput out Mbit/s", "goodput in Mbit/s", "out/in", "flags",
                "fitness", "why")  # fmt: skip
BEST_HEADERS = ("stages", "order (fit hosts)", "regions", "decode ms/token p50", "p99",
                "prefill ms p50", "note")  # fmt: skip


def note(f: PipelineFitness) -> str:
    """What the section rests on: the rules, in one paragraph."""
    return (
        "No policy needed: RTT per peer is the worse direction's p50; residential-like = "
        f"≥ {RESIDENTIAL_EXCESS_MS:g} ms over its region's other hosts to the same peers "
        f"(unfit); lossy = loss above {LOSSY_PCT:g} % with 95 % confidence (unfit); asymmetric = "
        f"goodput out/in beyond {ASYMMETRY:g}× either way (caution); inbound-restricted = cells "
        "toward it measured only from its end, blocked or not measurable (caution). Best orders: "
        f"{f.model} {f.dtype} auto-placed on fit hosts only, network only, no compute; "
        "≥ marks a lower bound."
    )


def host_cells(h: HostFitness) -> list[str]:
    return [
        h.host, h.region, fmt(h.rtt_region_p50_ms), fmt(h.rtt_other_p50_ms),
        fmt(h.loss_out_pct, 1), fmt(h.loss_in_pct, 1), fmt(h.bw_out_mbps, 0),
        fmt(h.bw_in_mbps, 0), fmt(h.out_in_ratio), ", ".join(h.flags) or "–", h.fitness.value,
        h.reason or "–",
    ]  # fmt: skip


def best_cells(f: PipelineFitness, c: StageChoice) -> list[str]:
    if c.decode is None or c.prefill is None:
        return [str(c.stages), "–", "–", "–", "–", "–", c.note]
    at = "≥ " if c.lower_bound else ""
    per = c.decode.per_step
    region = {h.host: h.region for h in f.hosts}
    where = ", ".join(dict.fromkeys(region[h] for h in c.path))
    return [
        str(c.stages), " → ".join(c.path), where, at + fmt(per.network_p50_ms),
        at + fmt(per.network_p99_ms), at + fmt(c.prefill.total.network_p50_ms, 1), c.note or "–",
    ]  # fmt: skip
