"""The emulator's pair-table reload (pure parts: no TUN, no namespaces)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from probe.lab.emulator import Emulator
from probe.lab.state import EmulatedHost, EmulatorConfig
from probe.lab.topology import MESH, EmulatorSettings, Network, RateImpl
from probe.textio import write_atomic


def _emulator(pairs: Path, rate_impl: RateImpl = "userspace") -> Emulator:
    settings = EmulatorSettings(rate_impl=rate_impl)
    hosts = (
        EmulatedHost("a", "pt-a", {MESH: "198.18.0.1"}),
        EmulatedHost("b", "pt-b", {MESH: "198.18.0.2"}),
    )
    networks = (Network(MESH, "198.18.0.0/15"),)
    return Emulator(EmulatorConfig(hosts, networks, settings, str(pairs), "", ""))


def _table(delay_ms: float, rate_bps: float = 0.0) -> str:
    link = {"delay_ms": delay_ms, "rate_bps": rate_bps}
    return json.dumps({"pairs": {"a>b": link, "b>a": link}})


def test_reload_applies_a_changed_table(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.json"
    pairs.write_text(_table(40))
    emu = _emulator(pairs)
    emu.load_pairs()
    pairs.write_text(_table(80))
    assert emu.reload()
    assert emu.links["a", "b", MESH].delay_s == pytest.approx(0.080)


@pytest.mark.parametrize("rate_impl", ["htb", "userspace"])
def test_reload_runs_no_tc(
    tmp_path: Path, rate_impl: RateImpl, tc_calls: list[tuple[str, ...]]
) -> None:
    """Its one forwarding thread re-ran ``tc`` for every pair on each SIGHUP (the other links
    froze ~0.3 s): a reload is a parse and an update in memory; ``lab link`` runs the ``tc``."""
    pairs = tmp_path / "pairs.json"
    pairs.write_text(_table(40, 100e6))
    emu = _emulator(pairs, rate_impl)
    emu.load_pairs()
    pairs.write_text(_table(40, 20e6))
    assert emu.reload()
    assert tc_calls == []
    assert emu.links["a", "b", MESH].rate_bps == 20e6  # userspace shapes with it; htb ignores it


@pytest.mark.parametrize(
    "torn",
    [
        "",
        _table(80)[:25],
        '{"pairs": {"a>b": {"delay_ms": 80}, "ab": {}}}',
        '{"pairs": {"a>b": {"delay_ms": 80}, "b>a": {"delay_ms": "x"}}}',
    ],
)
def test_a_table_that_cannot_be_read_changes_nothing(tmp_path: Path, torn: str) -> None:
    """A reload that died here once took the whole lab down (the supervisor stops the lab when
    the emulator exits); a bad table must leave every link, even the valid first entry, as is."""
    pairs = tmp_path / "pairs.json"
    pairs.write_text(_table(40))
    emu = _emulator(pairs)
    emu.load_pairs()
    pairs.write_text(torn)
    assert not emu.reload()
    assert emu.links["a", "b", MESH].delay_s == pytest.approx(0.040)
    assert emu.links["b", "a", MESH].delay_s == pytest.approx(0.040)


def test_readers_never_see_a_torn_table(tmp_path: Path) -> None:
    """What the emulator reads on SIGHUP while ``lab link`` rewrites the table."""
    pairs = tmp_path / "pairs.json"
    write_atomic(pairs, _table(0))
    stop = threading.Event()
    torn: list[str] = []
    reads = 0

    def read() -> None:
        nonlocal reads
        while not stop.is_set():
            text = pairs.read_text()
            reads += 1
            try:
                json.loads(text)
            except ValueError:
                torn.append(text)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for delay in range(300):
            write_atomic(pairs, _table(delay) + " " * 4096)
    finally:
        stop.set()
        reader.join()
    assert reads > 0 and torn == []
    assert json.loads(pairs.read_text())["pairs"]["a>b"]["delay_ms"] == 299
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.json"]  # no temporary file left
