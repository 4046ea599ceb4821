"""Named networks: which address a source uses for a destination. Pure: no SSH, no files.

A host is on one or more networks, each with its own address (``addresses: {vpc-use1: 10.0.1.5,
public: 203.0.113.7}``; ``address: X`` is the one network named ``default``). **The rule**: a
source reaches a destination at the destination's address on the *first network both hosts are
on*, in the preference order for their regions:

1. ``network_order["src_region>dst_region"]`` (one way), else ``network_order`` for the unordered
   region pair (``"ra-rb"``, both directions), else the top-level ``networks:`` list;
2. networks that list does not name come after it, ``default`` first, then by name.

No network in common: the pair is not measurable (:class:`NoRoute` says why). The order only
ranks, it never excludes: a pair sharing only an unlisted network is still measured over it.
``--network NAME`` measures only over NAME; ``--networks all`` over every shared network, the
rule's choice first (the one production traffic would use, which every single-figure view reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_NETWORK = "default"
#: ``--networks all``: every shared network (the only value ``--networks`` takes).
ALL_NETWORKS = "all"


class NetHost(Protocol):
    """What the rule reads of a host: an inventory ``Host`` or a run.json ``RunHost``."""

    @property
    def name(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def addresses(self) -> Mapping[str, str]: ...


def host_networks(host: NetHost) -> Mapping[str, str]:
    """Network → address; a host written with ``address:`` only is on ``default``."""
    return host.addresses or {DEFAULT_NETWORK: host.address}


def ranked(networks: Iterable[str], listed: Sequence[str]) -> list[str]:
    """``networks`` in preference order: those ``listed``, in its order, then the others,
    ``default`` first, then by name."""
    position = {name: i for i, name in enumerate(listed)}
    return sorted(
        set(networks),
        key=lambda n: (position.get(n, len(position)), n != DEFAULT_NETWORK, n),
    )


@dataclass(frozen=True, slots=True)
class NetworkOrder:
    """The inventory's ``networks:`` and ``network_order:``; ``pairs`` is directed: ``(src
    region, dst region)`` → its list (an unordered ``ra-rb`` entry is here both ways, under any
    one-way ``ra>rb`` entry)."""

    networks: tuple[str, ...] = ()
    pairs: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    def listed(self, src_region: str, dst_region: str) -> tuple[str, ...]:
        """The list that ranks networks from ``src_region`` to ``dst_region``."""
        return self.pairs.get((src_region, dst_region), self.networks)

    @property
    def empty(self) -> bool:
        return not self.networks and not self.pairs


@dataclass(frozen=True, slots=True)
class Route:
    """How a source reaches a destination: over ``network``, at ``address`` (the destination's)."""

    network: str
    address: str


@dataclass(frozen=True, slots=True)
class NoRoute:
    """A pair the plan cannot measure, and why (its cells' reason)."""

    reason: str


@dataclass(frozen=True, slots=True)
class NetworkChoice:
    """``--network NAME`` (``only``) or ``--networks all`` (``every``); neither: the rule's."""

    only: str | None = None
    every: bool = False


def shared_networks(src: NetHost, dst: NetHost, order: NetworkOrder) -> list[str]:
    """The networks both hosts are on, in the preference order from ``src`` to ``dst``."""
    mine, theirs = host_networks(src), host_networks(dst)
    return ranked((n for n in mine if n in theirs), order.listed(src.region, dst.region))


def route(src: NetHost, dst: NetHost, order: NetworkOrder) -> Route | NoRoute:
    """The rule: ``dst``'s address on the first network both are on, in the preference order."""
    found = routes(src, dst, order, NetworkChoice())
    return found if isinstance(found, NoRoute) else found[0]


def routes(
    src: NetHost, dst: NetHost, order: NetworkOrder, choice: NetworkChoice
) -> tuple[Route, ...] | NoRoute:
    """What the run measures from ``src`` to ``dst``: the rule's route first, then (``every``)
    the other shared networks; never empty."""
    shared = shared_networks(src, dst, order)
    theirs = host_networks(dst)
    if choice.only is not None:
        if choice.only in shared:
            return (Route(choice.only, theirs[choice.only]),)
        off = [h.name for h in (src, dst) if choice.only not in host_networks(h)]
        return NoRoute(f"{' and '.join(off)} not on network {choice.only} (--network)")
    if not shared:
        return NoRoute(
            f"no network in common: {src.name} on {_names(host_networks(src))}, "
            f"{dst.name} on {_names(theirs)}"
        )
    picked = shared if choice.every else shared[:1]
    return tuple(Route(n, theirs[n]) for n in picked)


def _names(networks: Iterable[str]) -> str:
    return ", ".join(sorted(networks))
