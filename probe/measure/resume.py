"""What ``probe run --resume`` may continue: the run's own options, on the run's own fleet.

The cells a resume measures join those measured before, in one matrix under one ``run.json``,
so they must be measured the same way between the same hosts:

* **options**: every option run.json records (``options``: ping count, interval and reply
  timeout, pinger, ping pairs; bandwidth on or off, pairs, exclusive-by, duration, omit,
  streams, under-load, compare-streams) changes what a cell means or which cells there are
  (the matrix draws the ping plan again from run.json: a resume must measure that plan). A
  resume uses the recorded values; one given again with another value is refused, naming it.
  Options run.json does not record (connect timeout, known_hosts, accept-new, output folder)
  only change how the controller works, and apply.
* **inventory**: the measured hosts must be the same, with the same address and labels (region,
  zone, provider, tags, ``measure``). How the controller reaches them (ssh host, port, user,
  jump hosts, relay-only hosts) may change: it is no part of a measurement.

Both are checked before anything connects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path

from probe.errors import InputError
from probe.measure.context import RunOptions
from probe.model import Inventory
from probe.networks import host_networks
from probe.store.rundoc import RunDoc, RunHost, RunOptionsDoc

#: The labels of a measured host that must not change: what its cells are grouped and read by.
LABELS = (
    "measure", "address", "addresses", "region", "zone", "provider", "tags", "inbound",
    "iperf3_ports",
)  # fmt: skip
_RECORDED = tuple(f.name for f in fields(RunOptionsDoc))
_MAX_NAMES = 10


def resume_options(
    recorded: RunOptionsDoc, asked: RunOptions, given: Mapping[str, str] | None, run_dir: Path
) -> RunOptions:
    """The options a resume measures with: the run's.

    ``given`` maps each option the command line set explicitly (a field of
    :class:`RunOptionsDoc`) to how it was written (``{"duration_s": "--duration 2"}``); an
    explicit value equal to the run's is fine. ``None`` counts every option of ``asked`` as
    given (a caller without a command line).
    """
    mine = asked.as_doc()
    names = _RECORDED if given is None else [n for n in _RECORDED if n in given]
    clashes = []
    for name in names:
        theirs, ours = getattr(recorded, name), getattr(mine, name)
        if ours != theirs:
            shown = f"options.{name} {_text(ours)}" if given is None else given[name]
            clashes.append(
                f"{shown} differs from the run's {_text(theirs)} (run.json options.{name})"
            )
    if clashes:
        raise InputError(
            "; ".join(clashes) + "; resume with the run's options or start a new run",
            where=str(run_dir),
        )
    return asked.following(recorded)


def check_inventory(run: RunDoc, inventory: Inventory, run_dir: Path) -> str | None:
    """Refuse an inventory of another fleet, saying what differs; a note (or None) when the
    file is not the one the run recorded but its measured hosts are the same. An imported run
    is refused whatever the inventory: its figures are another tool's, and probe's own beside
    them would make a matrix that mixes two methods without saying which cell has which."""
    if run.imported is not None:
        raise InputError(
            f"run {run.run_id} was imported from {run.imported.source} ({run.imported.format}):"
            " --resume adds probe's measurements only to probe's own runs; start a new run",
            where=str(run_dir),
        )
    differences = fleet_differences(run.hosts, [RunHost.of(h) for h in inventory.hosts])
    if inventory.networks != run.networks:
        differences.append("networks or network_order differ")
    if differences:
        raise InputError(
            f"the inventory differs from run {run.run_id} ({run_dir}): "
            + "; ".join(differences)
            + f"; resume with the run's inventory ({run.inventory.path}) or start a new run",
            where=inventory.source,
        )
    if inventory.sha256 == run.inventory.sha256:
        return None
    return (
        f"note: {inventory.source} is not the file run {run.run_id} recorded "
        f"({run.inventory.path}, sha256 {run.inventory.sha256[:12]}…), "
        "but its measured hosts, addresses and labels are the same"
    )


def fleet_differences(before: Sequence[RunHost], after: Sequence[RunHost]) -> list[str]:
    """What differs between two fleets' measured hosts, e.g. ``hosts added: x, y``, ``removed:
    z``, ``eu1 address 198.18.1.11 → 198.18.1.99``. Relay-only hosts and routes are ignored."""
    old = {h.name: h for h in before}
    new = {h.name: h for h in after}
    added = [n for n, h in new.items() if h.measure and n not in old]
    removed = [n for n, h in old.items() if h.measure and n not in new]
    out = []
    if added:
        out.append(f"hosts added: {_names(added)}")
    if removed:
        out.append(f"{'' if added else 'hosts '}removed: {_names(removed)}")
    for name, was in old.items():
        now = new.get(name)
        if now is None or not (was.measure or now.measure):
            continue
        for label in LABELS:
            a, b = getattr(was, label), getattr(now, label)
            if a != b:
                out.append(f"{name} {label} {_text(a)} → {_text(b)}")
    return out


def check_network(inventory: Inventory, network: str | None) -> None:
    """``--network NAME`` must name a network of the inventory's measured hosts."""
    known = {n for h in inventory.measured for n in host_networks(h)}
    if network is not None and network not in known:
        names = ", ".join(sorted(known))
        message = f"--network {network}: no measured host is on it (networks: {names})"
        raise InputError(message, where=inventory.source)


def resumed_hosts(run: RunDoc, inventory: Inventory) -> tuple[RunHost, ...]:
    """The hosts as this attempt reaches them (the inventory's routes and relay hosts), each
    keeping what connecting found before until this attempt connects again."""
    found = {h.name: h.connection for h in run.hosts}
    return tuple(replace(RunHost.of(h), connection=found.get(h.name)) for h in inventory.hosts)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES])
    more = len(names) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _text(value: object) -> str:
    """A value as the user wrote it: ``true``, ``none``, ``{gpu: a100}``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)
