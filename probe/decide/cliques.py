"""Largest cliques of an undirected graph: exact search when small, greedy with a bound beyond.

Maximum clique is NP-hard. Up to ``EXACT_HOSTS`` nodes (and ``EXACT_STEPS`` search nodes) the
answer is exact: Bron–Kerbosch with Tomita pivoting, pruned by a greedy colouring bound, which
returns every maximum clique so the caller can break ties. Beyond that a greedy growth answers,
together with the colouring bound (a clique needs one colour per member, so no clique is larger
than the number of colours of any proper colouring); the greedy answer is proven maximum when it
reaches the bound. Node sets are Python ints used as bitsets (bit ``i`` = node ``i``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Mask = NDArray[np.bool_]
#: Largest component searched exactly; 60 nodes keep the bitset search well under a second.
EXACT_HOSTS = 60
#: Search nodes the exact search may visit before it gives up and the greedy answer stands.
EXACT_STEPS = 200_000


@dataclass(frozen=True, slots=True)
class Clique:
    """Nodes chosen among the nodes still free; ``bound`` caps the largest clique among them."""

    nodes: tuple[int, ...]
    exact: bool  # proven a largest clique among the free nodes (search completed or bound met)
    bound: int  # upper bound on the largest clique among the free nodes (== size when exact)


def bitsets(adj: Mask) -> list[int]:
    """Row ``i`` of a boolean adjacency matrix as an int whose bit ``j`` is ``adj[i, j]``."""
    packed = np.packbits(adj, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def nodes_of(bits: int) -> Iterator[int]:
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def components(adj: Sequence[int], pool: int) -> list[int]:
    """The connected components of the subgraph induced by ``pool``."""
    out = []
    while pool:
        seen = frontier = pool & -pool
        while frontier:
            reach = 0
            for v in nodes_of(frontier):
                reach |= adj[v]
            frontier = reach & pool & ~seen
            seen |= frontier
        out.append(seen)
        pool &= ~seen
    return out


def colour_bound(adj: Sequence[int], pool: int) -> int:
    """Colours of a greedy colouring of ``pool`` (highest degree first): ≥ its clique number."""
    order = sorted(nodes_of(pool), key=lambda v: -(adj[v] & pool).bit_count())
    classes: list[int] = []  # per colour, the union of its members' neighbourhoods
    for v in order:
        bit = 1 << v
        for c, blocked in enumerate(classes):
            if not blocked & bit:
                classes[c] = blocked | adj[v]
                break
        else:
            classes.append(adj[v])
    return len(classes)


def _colours(adj: Sequence[int], pool: int) -> int:
    """A cheaper colouring bound for the search's inner nodes (no sort)."""
    colours = 0
    while pool:
        colours += 1
        free = pool
        while free:
            v = (free & -free).bit_length() - 1
            pool &= ~(1 << v)
            free &= ~adj[v] & ~(1 << v)
    return colours


class _OutOfSteps(Exception):
    pass


def maximum_cliques(adj: Sequence[int], pool: int, steps: int = EXACT_STEPS) -> list[int]:
    """Every maximum clique inside ``pool``; raises ``_OutOfSteps`` past ``steps`` search nodes."""
    best: list[int] = []
    size = 0
    left = steps

    def expand(r: int, r_size: int, p: int, x: int) -> None:
        nonlocal size, left
        left -= 1
        if left < 0:
            raise _OutOfSteps
        if not p:
            if not x and r_size >= size:
                if r_size > size:
                    best.clear()
                    size = r_size
                best.append(r)
            return
        if r_size + _colours(adj, p) < size:
            return  # ties are kept: the caller chooses among equal sizes
        pivot = max(nodes_of(p | x), key=lambda u: (p & adj[u]).bit_count())
        for v in nodes_of(p & ~adj[pivot]):
            bit = 1 << v
            expand(r | bit, r_size + 1, p & adj[v], x & adj[v])
            p &= ~bit
            x |= bit

    expand(0, 0, pool, 0)
    return best


def greedy_clique(
    adj: Mask, closeness: NDArray[np.float64], pool: Sequence[int], seed: int
) -> list[int]:
    """Grow a clique from ``seed``: add the candidate with the most candidate neighbours (ties:
    the smallest worst ``closeness`` to the members) until no candidate is left."""
    idx = np.asarray(pool, dtype=np.intp)
    sub = adj[np.ix_(idx, idx)]
    s = int(np.flatnonzero(idx == seed)[0])
    members = [s]
    cand = sub[s].copy()
    worst = closeness[seed, idx].copy()
    while cand.any():
        inner = sub[np.ix_(cand, cand)]
        degree = inner.sum(axis=1)
        left = np.flatnonzero(cand)
        if (degree == left.size - 1).all():  # the candidates are a clique: take them all
            members.extend(int(j) for j in left)
            break
        top = left[degree == degree.max()]
        j = int(top[np.argmin(worst[top])])
        members.append(j)
        cand &= sub[j]
        worst = np.fmax(worst, closeness[idx[j], idx])
    return [int(idx[m]) for m in members]


def largest_clique(
    adj: Mask,
    rows: Sequence[int],
    pool: int,
    seeds: Sequence[int],
    closeness: NDArray[np.float64],
    prefer: Callable[[Sequence[int]], tuple[object, ...]],
) -> Clique:
    """A largest clique of the connected ``pool`` (``rows`` = ``bitsets(adj)``), ties broken by
    the smallest ``prefer`` key; greedy from ``seeds`` when the pool is too large to search."""
    nodes = list(nodes_of(pool))
    if len(nodes) <= EXACT_HOSTS:
        try:
            found = [list(nodes_of(c)) for c in maximum_cliques(rows, pool)]
        except _OutOfSteps:
            pass
        else:
            chosen = min(found, key=prefer)
            return Clique(tuple(chosen), True, len(chosen))
    greedy = min(
        (greedy_clique(adj, closeness, nodes, s) for s in seeds),
        key=lambda c: (-len(c), prefer(c)),
    )
    bound = colour_bound(rows, pool)
    return Clique(tuple(greedy), len(greedy) >= bound, max(bound, len(greedy)))
