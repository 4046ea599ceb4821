"""The emulator's pair-table reload (pure parts: no TUN, no namespaces)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from probe.lab.emulator import Emulator
from probe.lab.state import EmulatorConfig
from probe.lab.topology import EmulatorSettings
from probe.textio import write_atomic


def _emulator(pairs: Path) -> Emulator:
    settings = EmulatorSettings(rate_impl="userspace")
    return Emulator(EmulatorConfig((), "198.18.0.0/15", settings, str(pairs), "", ""))


def _table(delay_ms: float) -> str:
    return json.dumps({"pairs": {"a>b": {"delay_ms": delay_ms}, "b>a": {"delay_ms": delay_ms}}})


def test_reload_applies_a_changed_table(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.json"
    pairs.write_text(_table(40))
    emu = _emulator(pairs)
    emu.load_pairs()
    pairs.write_text(_table(80))
    assert emu.reload()
    assert emu.links["a", "b"].delay_s == pytest.approx(0.080)


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
    assert emu.links["a", "b"].delay_s == pytest.approx(0.040)
    assert emu.links["b", "a"].delay_s == pytest.approx(0.040)


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
