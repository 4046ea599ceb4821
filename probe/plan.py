"""Which pairs to measure, and the bandwidth rounds: pure, it knows nothing of SSH or files.

A bandwidth test saturates both hosts' NICs (and, with ``site_of``, the site's shared uplink), so
tests run in rounds of disjoint pairs: a proper edge colouring of the pair graph, one colour per
round and direction. Full mesh: the circle method, optimal (N−1 colours for even N, N for odd N).
Other graphs: the better of Misra–Gries (≤ Δ+1, Vizing's bound) and a busiest-first greedy. With
``site_of`` the site graph has parallel edges and loops, where greedy guarantees ≤ 2L−1 (L: the
most tests one site takes part in; L itself is a lower bound).

Reverse direction = swapped roles by default: the data sender is then always the iperf3 client,
whose JSON carries the sender's cwnd and TCP RTT (with ``-R`` iperf 3.12 reports them as 0).
``reverse_flag=True`` uses ``-R`` instead; ``reverse_for`` does so for the pairs where only one
side accepts connections (``probe.reach``: the other is the client both ways).

Ping pairs are ordered (each direction is its own probe train). A full mesh is N(N−1) trains,
which thousands of hosts cannot afford every run; ``select_ping_pairs`` samples in the words of
``--pairs`` (plus ``intra-zone``) and says which pairs it left out.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from probe.errors import InputError
from probe.networks import DEFAULT_NETWORK

PairKind = Literal["all", "cross-region", "intra-region", "intra-zone", "sample"]
ExclusiveBy = Literal["region", "zone"]
Pair = tuple[str, str]


class PlanHost(Protocol):
    """What a plan reads of a host: an inventory ``Host``, or a ``RunHost`` of run.json (the
    matrix redraws a run's ping plan from it)."""

    @property
    def name(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def zone(self) -> str | None: ...
    @property
    def measure(self) -> bool: ...


_H = TypeVar("_H", bound=PlanHost)

_FIXED_KINDS: tuple[PairKind, ...] = ("all", "cross-region", "intra-region")
_PING_FIXED_KINDS: tuple[PairKind, ...] = ("all", "intra-region", "intra-zone")
_SAMPLE = re.compile(r"^sample:([1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class PairMode:
    """``--pairs``. ``sample_k``: representatives per region for cross-region pairs."""

    kind: PairKind
    sample_k: int | None = None

    def __str__(self) -> str:
        return f"sample:{self.sample_k}" if self.kind == "sample" else self.kind


def parse_pair_mode(text: str) -> PairMode:
    """``all`` | ``cross-region`` | ``intra-region`` | ``sample:K`` (K ≥ 1)."""
    return _parse_mode(text, _FIXED_KINDS, "--pairs")


def parse_ping_pairs(text: str) -> PairMode:
    """Ping pairs: ``all`` | ``intra-region`` | ``intra-zone`` | ``sample:K`` (K ≥ 1)."""
    return _parse_mode(text, _PING_FIXED_KINDS, "ping pairs")


def _parse_mode(text: str, kinds: tuple[PairKind, ...], what: str) -> PairMode:
    value = text.strip()
    for kind in kinds:
        if value == kind:
            return PairMode(kind)
    if m := _SAMPLE.match(value):
        return PairMode("sample", int(m.group(1)))
    raise InputError(f"{what} {text!r}: expected {', '.join(kinds)} or sample:K")


def _measured(hosts: Sequence[_H]) -> list[_H]:
    measured = [h for h in hosts if h.measure]
    names = [h.name for h in measured]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"host name {dup!r} appears twice")
    return measured


def select_pairs(hosts: Sequence[PlanHost], mode: PairMode, *, seed: int = 0) -> list[Pair]:
    """Unordered pairs ``(a, b)``, ``a`` before ``b`` in input order; same input → same output."""
    measured = _measured(hosts)
    reps = _representatives(measured, mode.sample_k or 1, seed) if mode.kind == "sample" else set()
    return [
        (a.name, b.name)
        for i, a in enumerate(measured)
        for b in measured[i + 1 :]
        if _wanted(a, b, mode.kind, reps)
    ]


def _wanted(a: PlanHost, b: PlanHost, kind: PairKind, reps: set[str]) -> bool:
    same_region = a.region == b.region
    if kind == "cross-region":
        return not same_region
    if kind == "intra-region":
        return same_region
    if kind == "intra-zone":
        return same_region and a.zone == b.zone
    if kind == "sample":  # full mesh inside a region, representatives across regions
        return same_region or (a.name in reps and b.name in reps)
    return True


def _representatives(hosts: Sequence[PlanHost], k: int, seed: int) -> set[str]:
    """``k`` hosts per region (all if fewer), drawn reproducibly from ``seed``."""
    rng = random.Random(seed)
    by_region: dict[str, list[str]] = defaultdict(list)
    for h in hosts:
        by_region[h.region].append(h.name)
    reps: set[str] = set()
    for names in by_region.values():
        reps.update(names if len(names) <= k else rng.sample(names, k))
    return reps


def ping_mesh_pairs(hosts: Sequence[PlanHost]) -> list[Pair]:
    """Every ordered pair of measured hosts: ping is light enough to run the full mesh."""
    return list(select_ping_pairs(hosts, PairMode("all")).pairs)


@dataclass(frozen=True, slots=True)
class PingPlan:
    """The ordered pairs to ping, grouped by source, in inventory order.

    ``hosts`` are the measured hosts; every other ordered pair of them is ``not_planned`` (a cell
    the matrix marks ``not-planned``, never a failure). Sizes, with n_g hosts in region (zone) g
    and k_r = min(K, n_r): ``all`` N(N−1); ``intra-region`` / ``intra-zone`` Σ n_g(n_g−1);
    ``sample:K`` Σ n_r(n_r−1) + (Σ k_r)² − Σ k_r².
    """

    mode: PairMode
    hosts: tuple[str, ...]
    pairs: tuple[Pair, ...]

    def not_planned(self) -> Iterator[Pair]:
        """The other ordered pairs, lazily: for thousands of hosts there are millions."""
        planned = set(self.pairs)
        return ((a, b) for a in self.hosts for b in self.hosts if a != b and (a, b) not in planned)

    @property
    def reason(self) -> str:
        """Why a pair the plan left out has no measurement (its cell's reason)."""
        return left_out_reason(self.mode)


def left_out_reason(mode: PairMode) -> str:
    """The reason of a pair a ping plan of ``mode`` left out: known without drawing the plan."""
    return f"not in the {mode} plan"


def select_ping_pairs(hosts: Sequence[PlanHost], mode: PairMode, *, seed: int = 0) -> PingPlan:
    """Ordered pairs to ping; same input and seed → same plan.

    ``intra-zone``: a host without a zone shares one with its region's others (as
    ``--exclusive-by zone`` does). ``sample:K`` draws the same representatives as
    ``select_pairs`` for the same seed, so a region pair's RTT and bandwidth come from the same
    hosts; between representatives of different regions both directions are planned.
    """
    measured = _measured(hosts)
    if mode.kind in ("all", "cross-region"):
        pairs = [(a.name, b.name) for a in measured for b in measured
                 if a is not b and _wanted(a, b, mode.kind, set())]  # fmt: skip
        return PingPlan(mode, tuple(h.name for h in measured), tuple(pairs))
    groups: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for h in measured:
        groups[(h.region, h.zone if mode.kind == "intra-zone" else None)].append(h.name)
    wanted = {(a, b) for names in groups.values() for a in names for b in names if a != b}
    if mode.kind == "sample":
        reps = _representatives(measured, mode.sample_k or 1, seed)
        ends = [h for h in measured if h.name in reps]
        wanted.update((a.name, b.name) for a in ends for b in ends if a.region != b.region)
    order = {h.name: i for i, h in enumerate(measured)}
    pairs = sorted(wanted, key=lambda p: (order[p[0]], order[p[1]]))
    return PingPlan(mode, tuple(order), tuple(pairs))


def site_of_hosts(hosts: Sequence[PlanHost], by: ExclusiveBy) -> Callable[[str], str]:
    """``--exclusive-by``: a host without a zone shares one site with its region's others."""
    sites = {h.name: h.region if by == "region" else f"{h.region}/{h.zone or '?'}" for h in hosts}
    return sites.__getitem__


@dataclass(frozen=True, slots=True)
class BandwidthTest:
    """iperf3 client on ``client``, server on ``server``; ``reverse`` is ``-R``; over
    ``network`` (the client dials the server's address on it, ``probe.networks``)."""

    client: str
    server: str
    reverse: bool = False
    network: str = DEFAULT_NETWORK

    #: What a ``-R`` test's record says of itself: its sender is the server, whose cwnd and TCP
    #: RTT iperf3 does not send back (its retransmits it does: the results exchange has them).
    REVERSE_NOTE = "iperf3 -R: sender-side cwnd and TCP RTT not available (the server sent)"

    @property
    def direction(self) -> Pair:
        """(src, dst) of the data: client→server, or server→client under ``-R``."""
        return (self.server, self.client) if self.reverse else (self.client, self.server)


@dataclass(frozen=True, slots=True)
class BandwidthPlan:
    """Rounds run one after another; the tests of a round run at the same time."""

    rounds: tuple[tuple[BandwidthTest, ...], ...]

    @property
    def tests(self) -> int:
        return sum(len(r) for r in self.rounds)

    @property
    def all_tests(self) -> tuple[BandwidthTest, ...]:
        return tuple(t for r in self.rounds for t in r)

    def only(self, tests: Iterable[BandwidthTest]) -> BandwidthPlan:
        """This plan with only ``tests`` (what a resumed run has left), empty rounds dropped."""
        keep = set(tests)
        rounds = (tuple(t for t in r if t in keep) for r in self.rounds)
        return BandwidthPlan(tuple(r for r in rounds if r))

    def estimated_duration_s(self, per_test_s: float) -> float:
        return len(self.rounds) * per_test_s

    def summary(self, per_test_s: float) -> str:
        """The line printed before starting: rounds, tests, estimated duration."""
        minutes, seconds = divmod(round(self.estimated_duration_s(per_test_s)), 60)
        return (
            f"bandwidth plan: {len(self.rounds)} rounds, {self.tests} tests, "
            f"~{minutes} min {seconds:02d} s at {per_test_s:g} s per round"
        )


def per_test_wall_s(duration_s: float, omit_s: float, *, setup_s: float = 3.0) -> float:
    """One round's wall time: warm-up + measured seconds + server start, connect and teardown."""
    return omit_s + duration_s + setup_s


def schedule_rounds(
    pairs: Sequence[Pair],
    *,
    site_of: Callable[[str], str] | None = None,
    directions: Literal["both", "forward"] = "both",
    reverse_flag: bool = False,
    networks: Callable[[str, str], Sequence[str]] | None = None,
    reverse_for: Collection[Pair] = (),
) -> BandwidthPlan:
    """Rounds where no host (no site, with ``site_of``) appears twice; the backward test of a
    pair in ``reverse_for`` (or of every pair, ``reverse_flag``) is ``-R`` on its client.

    A pair's reverse runs in the round right after its forward: both directions are then
    measured under the same conditions, and an interrupted run keeps whole pairs. ``networks``
    (data sender, receiver) → the networks to test that direction over (``default`` alone when
    not given): a pair tested over two networks takes two forward/reverse round pairs, the n-th
    network of each pair of a colour class in the n-th.
    """
    _check_pairs(pairs)
    resource = site_of or (lambda name: name)
    colours = _edge_colouring([(resource(a), resource(b)) for a, b in pairs])
    classes: dict[int, list[Pair]] = defaultdict(list)
    for pair, colour in zip(pairs, colours, strict=True):
        classes[colour].append(pair)
    over = networks or (lambda a, b: (DEFAULT_NETWORK,))
    rounds: list[tuple[BandwidthTest, ...]] = []
    for colour in sorted(classes):
        pairs_of = [(a, b, over(a, b), over(b, a)) for a, b in classes[colour]]
        for n in range(max(len(fwd) for _, _, fwd, _ in pairs_of)):
            rounds.append(tuple(BandwidthTest(a, b, network=fwd[n])
                                for a, b, fwd, _ in pairs_of if n < len(fwd)))  # fmt: skip
            if directions == "both":
                rounds.append(tuple(_backward(a, b, reverse_flag or (a, b) in reverse_for, back[n])
                                    for a, b, _, back in pairs_of if n < len(back)))  # fmt: skip
    return BandwidthPlan(tuple(r for r in rounds if r))


def _backward(a: str, b: str, reverse_flag: bool, network: str) -> BandwidthTest:
    """b→a: ``-R`` on the same client and server, or the roles swapped."""
    if reverse_flag:
        return BandwidthTest(a, b, reverse=True, network=network)
    return BandwidthTest(b, a, network=network)


def _check_pairs(pairs: Sequence[Pair]) -> None:
    seen: set[frozenset[str]] = set()
    for a, b in pairs:
        key = frozenset((a, b))
        if a == b or key in seen:
            raise InputError(f"pair ({a}, {b}) is a self-pair or listed twice")
        seen.add(key)


def _edge_colouring(edges: list[Pair]) -> list[int]:
    """A colour per edge; edges sharing an endpoint differ. Loops and parallel edges allowed."""
    if not edges:
        return []
    simple = all(u != v for u, v in edges) and len({frozenset(e) for e in edges}) == len(edges)
    if not simple:
        return _greedy_colouring(edges)
    vertices = list(dict.fromkeys(v for e in edges for v in e))
    if len(edges) == len(vertices) * (len(vertices) - 1) // 2:
        return _circle_colouring(edges, vertices)
    greedy, misra_gries = _greedy_colouring(edges), _misra_gries_colouring(edges)
    return greedy if max(greedy) <= max(misra_gries) else misra_gries


def _circle_colouring(edges: list[Pair], vertices: list[str]) -> list[int]:
    """Round-robin: fix one vertex, rotate the rest; a dummy "bye" vertex makes N even."""
    ring: list[str | None] = [*vertices, None] if len(vertices) % 2 else list(vertices)
    n = len(ring)
    colour_of: dict[frozenset[str | None], int] = {}
    for r in range(n - 1):
        colour_of[frozenset((ring[n - 1], ring[r]))] = r
        for k in range(1, n // 2):
            colour_of[frozenset((ring[(r + k) % (n - 1)], ring[(r - k) % (n - 1)]))] = r
    return [colour_of[frozenset(e)] for e in edges]


def _greedy_colouring(edges: list[Pair]) -> list[int]:
    """Smallest colour free at both ends, busiest endpoints first: ≤ 2L−1 colours."""
    load: dict[str, int] = defaultdict(int)
    for u, v in edges:
        for x in {u, v}:
            load[x] += 1
    order = sorted(range(len(edges)), key=lambda i: -(load[edges[i][0]] + load[edges[i][1]]))
    used: dict[str, set[int]] = defaultdict(set)
    colours = [0] * len(edges)
    for i in order:
        u, v = edges[i]
        c = next(c for c in range(len(edges)) if c not in used[u] and c not in used[v])
        used[u].add(c)
        used[v].add(c)
        colours[i] = c
    return colours


def _misra_gries_colouring(edges: list[Pair]) -> list[int]:
    """Misra & Gries (1992) for simple graphs: at most Δ+1 colours, O(E·(Δ+V))."""
    degree: Counter[str] = Counter(v for e in edges for v in e)
    state = _EdgeColours(max(degree.values()) + 1)
    for x, f in edges:
        fan = state.fan(x, f)
        c, d = state.free(x), state.free(fan[-1])
        state.invert_path(x, c, d)
        w = state.fan_end(x, fan, d)
        for j in range(w):  # rotate: (x, fan[j]) takes the colour of (x, fan[j+1])
            shift = state.scrape(x, fan[j + 1])
            state.paint(x, fan[j], shift)
        state.paint(x, fan[w], d)
    return [state.nb[u][v] for u, v in edges]


class _EdgeColours:
    """A partial proper edge colouring, indexed both ways for O(1) lookups."""

    def __init__(self, colours: int) -> None:
        self.palette = range(colours)
        self.at: dict[str, dict[int, str]] = defaultdict(dict)  # vertex → colour → neighbour
        self.nb: dict[str, dict[str, int]] = defaultdict(dict)  # vertex → neighbour → colour

    def free(self, v: str) -> int:
        return next(c for c in self.palette if c not in self.at[v])

    def paint(self, u: str, v: str, c: int) -> None:
        self.at[u][c], self.at[v][c] = v, u
        self.nb[u][v] = self.nb[v][u] = c

    def scrape(self, u: str, v: str) -> int:
        c = self.nb[u].pop(v)
        del self.nb[v][u], self.at[u][c], self.at[v][c]
        return c

    def fan(self, x: str, f: str) -> list[str]:
        """[f, …]: the next vertex is x's neighbour by a colour free at the previous one.

        Extending by *the* free colour d of the last vertex until that edge is missing or
        returns into the fan is all the Misra–Gries proof needs of maximality.
        """
        fan, members = [f], {f}
        while (v := self.at[x].get(self.free(fan[-1]))) is not None and v not in members:
            fan.append(v)
            members.add(v)
        return fan

    def invert_path(self, x: str, c: int, d: int) -> None:
        """Swap c and d on the c/d path from x (c is free at x, so x is an end)."""
        path: list[tuple[str, str, int]] = []
        u, colour = x, d
        while (v := self.at[u].get(colour)) is not None:
            path.append((u, v, colour))
            u, colour = v, (c if colour == d else d)
        for u, v, _ in path:
            self.scrape(u, v)
        for u, v, colour in path:
            self.paint(u, v, c if colour == d else d)

    def fan_end(self, x: str, fan: list[str], d: int) -> int:
        """First w with d free such that fan[:w+1] is still a fan (the proof says it exists)."""
        for w, vertex in enumerate(fan):
            if w and self.nb[x].get(vertex) in self.at[fan[w - 1]]:
                break  # the prefix stopped being a fan
            if d not in self.at[vertex]:
                return w
        raise AssertionError("Misra–Gries: no fan end with a free colour")  # a bug, not input
