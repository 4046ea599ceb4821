"""Pairs a sampled ping plan left out: implied by run.json, never stored.

The long form holds a row for every pair that has a measurement or a reason of its own. A pair
of the run's measured hosts with neither — outside the ping plan (``--ping-pairs``) and without
a bandwidth cell — is *implied* ``not-planned`` and has no row: at 3,000 hosts with ``sample:2``
that is 8.1 M of the 9 M ordered pairs, every figure empty. Pingmesh and RIPE Atlas store only
what was measured; so does probe. What such a pair reads is known from run.json alone (its
hosts, ``options.ping_pairs``, the bandwidth options): ``Implied`` says it once, every view that
shows every cell puts it back (``build.with_implied``, the grids), and every count adds the
implied pairs from the hosts (``region_sizes``) rather than from rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from probe.errors import InputError, StoreError
from probe.matrix.anchors import Implied as Implied  # what an implied pair reads (anchors too)
from probe.model import CellStatus
from probe.plan import PairMode, left_out_reason, parse_ping_pairs
from probe.store.rundoc import RunDoc

#: The RTT and bandwidth status of an implied pair.
STATUS = CellStatus.NOT_PLANNED


def ping_mode(run: RunDoc) -> PairMode:
    """run.json's ``options.ping_pairs``."""
    try:
        return parse_ping_pairs(run.options.ping_pairs)
    except InputError as exc:
        raise StoreError(f"run.json: 'options.ping_pairs': {exc}") from None


def bw_unplanned_reason(run: RunDoc) -> str:
    """The reason of a bandwidth cell the run did not plan a test for."""
    if run.imported is not None:
        return f"no bandwidth figure for this pair in the imported {run.imported.source}"
    if run.options.bandwidth:
        return f"not in the --pairs {run.options.pairs} plan"
    return "no bandwidth tests in this run (--no-bandwidth)"


def implied_of(run: RunDoc) -> Implied | None:
    """What ``run``'s implied pairs read; None when it has none: the full mesh, or figures
    imported (a pair without one reads the import's reason, and keeps its row)."""
    if run.imported is not None:
        return None
    mode = ping_mode(run)
    if mode.kind == "all":
        return None
    return Implied(left_out_reason(mode), bw_unplanned_reason(run))


def region_sizes(regions: Iterable[str]) -> dict[tuple[str, str], int]:
    """Ordered pairs of hosts per (source region, destination region), given each measured
    host's region: n_a·n_b across, n_a·(n_a − 1) within (a region of one host has none). What a
    region row's ``pairs`` counts."""
    n = Counter(regions)
    sizes = {(a, b): n[a] * n[b] - (n[a] if a == b else 0) for a in n for b in n}
    return {key: size for key, size in sizes.items() if size}
