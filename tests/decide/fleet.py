"""Synthetic anchors for tests: hosts ``<region>-<i>``, every ordered pair measured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from probe.matrix.anchors import (
    Anchors,
    Bandwidth,
    HostInfo,
    PairAnchor,
    RttAnchor,
)
from probe.matrix.pairs import PairTable
from probe.matrix.regions import roll_up
from probe.matrix.samples import Probes
from probe.model import CellStatus

INTRA_RTT_MS = 0.5


def pair(
    src: HostInfo,
    dst: HostInfo,
    rtt_ms: float,
    bw_mbps: float | None = 10_000.0,
    *,
    p99_factor: float = 1.5,
    status: CellStatus = CellStatus.OK,
) -> PairAnchor:
    ok = status is CellStatus.OK
    return PairAnchor(
        src=src.name,
        dst=dst.name,
        src_region=src.region,
        dst_region=dst.region,
        status=status,
        reason=None if ok else f"synthetic {status.value}",
        rtt=RttAnchor(rtt_ms, rtt_ms, rtt_ms, rtt_ms * 1.2, rtt_ms * p99_factor, rtt_ms * 2)
        if ok
        else None,
        rtt_mdev_ms=0.1 if ok else None,
        ipdv_ms=0.05 if ok else None,
        pdv_p99_ms=0.2 if ok else None,
        loss_pct=0.0 if ok else (100.0 if status is CellStatus.ALL_LOST else None),
        sent=20 if ok or status is CellStatus.ALL_LOST else 0,
        received=20 if ok else 0,
        bw=Bandwidth(bw_mbps, bw_mbps) if ok else Bandwidth(),
        bw_status="ok" if ok and bw_mbps is not None else None,
    )


def make_anchors(
    sizes: Mapping[str, int],
    cross_rtt_ms: Mapping[frozenset[str], float] | float = 80.0,
    *,
    bw_mbps: float | None = 10_000.0,
    overrides: Mapping[tuple[str, str], PairAnchor] | None = None,
    samples: bool = False,
    down: tuple[str, ...] = (),
) -> Anchors:
    """Regions of ``sizes`` hosts; intra-region RTT 0.5 ms, cross-region from ``cross_rtt_ms``.
    The hosts of the ``down`` regions are in the run but none could be measured."""
    hosts = [HostInfo(f"{r}-{i}", r) for r, n in sizes.items() for i in range(n)]
    pairs = []
    rtts: dict[tuple[str, str], Probes] = {}
    for a in hosts:
        for b in hosts:
            if a is b:
                continue
            if overrides and (a.name, b.name) in overrides:
                pairs.append(overrides[a.name, b.name])
                continue
            if a.region in down or b.region in down:
                pairs.append(pair(a, b, 0.0, status=CellStatus.UNREACHABLE))
                continue
            if a.region == b.region:
                rtt = INTRA_RTT_MS
            elif isinstance(cross_rtt_ms, float | int):
                rtt = float(cross_rtt_ms)
            else:
                rtt = cross_rtt_ms[frozenset((a.region, b.region))]
            if samples:
                seq = np.arange(1, 6, dtype=np.int32)
                rtts[a.name, b.name] = Probes(rtt * np.array([0.9, 1.0, 1.0, 1.1, 1.5]), seq)
            pairs.append(pair(a, b, rtt, bw_mbps))
    return Anchors(
        run_id="synthetic",
        created_utc="2026-11-23T08:00:00Z",
        probe_version="0.1.0",
        hosts=tuple(hosts),
        pairs=PairTable.of(pairs),
        regions=roll_up(pairs),
        samples=rtts,
    )


def with_stalled_bw(
    anchors: Anchors, src: str, dst: str, reason: str, mbps: float | None = 0.0
) -> Anchors:
    """``anchors`` with the bandwidth test ``src → dst`` stalled, laid out as the matrix builder
    does: status and reason on ``(src, dst)``, the rate iperf3 still reported (``mbps``) as its
    forward figure and as the reverse figure of ``(dst, src)``."""
    pairs = []
    for p in anchors.pairs:
        if (p.src, p.dst) == (src, dst):
            p = replace(
                p,
                bw=replace(p.bw, forward_mbps=mbps),
                bw_status=CellStatus.STALLED.value,
                bw_reason=reason,
            )
        elif (p.src, p.dst) == (dst, src):
            p = replace(p, bw=replace(p.bw, reverse_mbps=mbps))
        pairs.append(p)
    return replace(anchors, pairs=PairTable.of(pairs), regions=roll_up(pairs))


def from_rtt_matrix(
    rtt_ms: NDArray[np.float64],
    regions: Sequence[str],
    *,
    bw_mbps: float | None = None,
    one_way: bool = False,
) -> Anchors:
    """Hosts ``h0``…; ``rtt_ms[i, j]`` for ``i → j`` (NaN: the cell timed out); ``one_way``: only
    ``i < j`` is in the run, as a table measured in one direction only."""
    hosts = [HostInfo(f"h{i}", r) for i, r in enumerate(regions)]
    pairs = [
        pair(a, b, float(rtt_ms[i, j]), bw_mbps)
        if not np.isnan(rtt_ms[i, j])
        else pair(a, b, 0.0, status=CellStatus.TIMEOUT)
        for i, a in enumerate(hosts)
        for j, b in enumerate(hosts)
        if i < j or (i > j and not one_way)
    ]
    return Anchors("matrix", "2026-11-30T08:00:00Z", "0.1.0", tuple(hosts), PairTable.of(pairs), ())
