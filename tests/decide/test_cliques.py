"""Largest cliques: exact search against brute force, greedy answers against their bound."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from probe.decide.cliques import (
    EXACT_HOSTS,
    bitsets,
    colour_bound,
    components,
    largest_clique,
    maximum_cliques,
    nodes_of,
)


@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 11) -> NDArray[np.bool_]:
    n = draw(st.integers(1, max_nodes))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    upper = np.triu(np.random.default_rng(seed).random((n, n)) < density, 1)
    adj: NDArray[np.bool_] = upper | upper.T
    return adj


def _is_clique(adj: NDArray[np.bool_], nodes: tuple[int, ...] | list[int]) -> bool:
    return all(adj[a, b] for a, b in itertools.combinations(nodes, 2))


def _clique_number(adj: NDArray[np.bool_]) -> int:
    n = adj.shape[0]
    for k in range(n, 0, -1):
        if any(_is_clique(adj, c) for c in itertools.combinations(range(n), k)):
            return k
    return 0


def _names(c: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(c))


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_exact_search_finds_every_maximum_clique(adj: NDArray[np.bool_]) -> None:
    n = adj.shape[0]
    omega = _clique_number(adj)
    found = [tuple(nodes_of(c)) for c in maximum_cliques(bitsets(adj), (1 << n) - 1)]
    every = {c for c in itertools.combinations(range(n), omega) if _is_clique(adj, c)}
    assert set(found) == every
    assert colour_bound(bitsets(adj), (1 << n) - 1) >= omega


@settings(max_examples=100, deadline=None)
@given(graphs())
def test_largest_clique_of_a_component_is_maximum_and_exact(adj: NDArray[np.bool_]) -> None:
    n = adj.shape[0]
    rows = bitsets(adj)
    comps = components(rows, (1 << n) - 1)
    assert sum(c.bit_count() for c in comps) == n
    for comp in comps:
        nodes = list(nodes_of(comp))
        sub = adj[np.ix_(nodes, nodes)]
        c = largest_clique(adj, rows, comp, nodes[:1], np.zeros((n, n)), _names)
        assert c.exact and c.bound == len(c.nodes) == _clique_number(sub)
        assert set(c.nodes) <= set(nodes) and _is_clique(adj, c.nodes)


def test_beyond_the_exact_size_greedy_says_how_far_from_the_bound() -> None:
    n = EXACT_HOSTS + 11  # an odd ring: largest clique 2, yet any colouring needs 3 colours
    adj = np.zeros((n, n), dtype=bool)
    for i in range(n):
        adj[i, (i + 1) % n] = adj[(i + 1) % n, i] = True
    rows = bitsets(adj)
    c = largest_clique(adj, rows, (1 << n) - 1, [0], np.zeros((n, n)), _names)
    assert len(c.nodes) == 2 and _is_clique(adj, c.nodes)
    assert not c.exact and c.bound == 3


def test_beyond_the_exact_size_a_greedy_answer_meeting_the_bound_is_exact() -> None:
    n = EXACT_HOSTS + 40
    adj = ~np.eye(n, dtype=bool)
    adj[0, 1] = adj[1, 0] = False
    c = largest_clique(adj, bitsets(adj), (1 << n) - 1, [5], np.zeros((n, n)), _names)
    assert len(c.nodes) == n - 1 and c.exact and c.bound == n - 1
