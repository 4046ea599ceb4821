"""Shared fixtures. The lab comes up once per test session and always goes down."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # annotations only: the lab fixtures import them when they run
    from probe.lab import control
    from tests.measure.watch import IperfWatcher

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "inventory" / "lab-3regions.yaml"
#: truth.json's pairs keyed by (src, dst): each pair's expected figures by name.
Truth = dict[tuple[str, str], dict[str, float]]
#: This test run's lab identity. Two test runs on one machine (two clones, CI beside a developer)
#: bring up labs that share no namespace, interface, state directory or controller address, so
#: neither can sweep the other's lab away.
RUN_TAG = secrets.token_hex(2)


SLOTS = "tuvw"  # the prefix letter of each of a test run's labs that may be up at once


def unique_topology(topology: Path, out_dir: Path, *, slot: int = 0) -> Path:
    """A copy of ``topology`` renamed for this test run: name ``<name>-<tag>``, prefix
    ``t<tag>-``, ``u<tag>-``, ``v<tag>-`` or ``w<tag>-`` (by ``slot``) and a controller link of
    its own (198.19.N.0/30)."""
    text = topology.read_text(encoding="utf-8")
    name = re.search(r"^name: *([a-z0-9-]+)", text, re.MULTILINE)
    assert name is not None, f"{topology}: no top-level name"
    octet = 1 + (int(RUN_TAG, 16) % 60) * len(SLOTS) + slot  # at most 240: below 253..255
    for pattern, value in (
        (r"^name: *[a-z0-9-]+", f"name: {name.group(1)[:7]}-{RUN_TAG}"),
        (r"^prefix: *[a-z0-9-]+", f"prefix: {SLOTS[slot]}{RUN_TAG}-"),
        (r"controller_link: *[0-9./]+", f"controller_link: 198.19.{octet}.0/30"),
    ):
        text, n = re.subn(pattern, value, text, count=1, flags=re.MULTILINE)
        assert n == 1, f"{topology}: {pattern} not found"
    out = out_dir / f"{RUN_TAG}-{topology.name}"
    out.write_text(text, encoding="utf-8")
    return out


@contextlib.contextmanager
def lab_up(topology: Path) -> Iterator[control.LabInfo]:
    """The lab of ``topology`` up inside, and down after it whatever happened."""
    from probe.lab import control

    info = control.up(str(topology), echo=False)
    try:
        yield info
    finally:
        control.down(info.name, echo=False)


def module_lab(
    topology: Path | Callable[[Path], Path], folder: str, *, slot: int = 0
) -> Callable[[pytest.TempPathFactory], Iterator[control.LabInfo]]:
    """A module-scoped fixture: a lab of the module's own, up for its first test that asks and
    down after its last (``big = module_lab(BIG, "big-topo", slot=2)``). ``topology`` is a file,
    brought up under this test run's identity in ``slot`` (``unique_topology``), or a function
    writing the topology into the fresh temporary ``folder`` it is given and returning it."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[control.LabInfo]:
        out = tmp_path_factory.mktemp(folder)
        path = topology(out) if callable(topology) else unique_topology(topology, out, slot=slot)
        with lab_up(path) as info:
            yield info

    return fixture


def _lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, sshd); run `sudo make test`"
    for tool in ("/usr/sbin/sshd", "/usr/bin/iperf3", "/usr/bin/ping"):
        if not Path(tool).exists():
            return f"lab tests need {tool}; `make test` installs it"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _lab_skip_reason()
    if reason is None:
        return
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[control.LabInfo]:
    """The default 3-region lab (8 hosts behind a bastion), shared by every lab test, under
    this test run's own name and prefix (``unique_topology``)."""
    topology = unique_topology(DEFAULT_TOPOLOGY, tmp_path_factory.mktemp("topology"))
    with lab_up(topology) as info:
        yield info


@pytest.fixture(autouse=True)
def _healthy_lab(request: pytest.FixtureRequest) -> None:
    """Lab tests start from a lab whose every sshd runs, whatever an earlier fault test did."""
    if "lab" in request.fixturenames and "lab" in request.keywords:
        from probe.lab import control

        control.heal(request.getfixturevalue("lab"))


@pytest.fixture(scope="session")
def lab_run(
    lab: control.LabInfo, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, IperfWatcher]:
    """One full ``probe run`` of the session lab (ping and iperf3, every ordered pair) and the
    watcher that sampled the hosts' iperf3 processes meanwhile: the run test checks it against
    the truth, the rehearsal predicts from it. Measured once: it takes ~2 minutes."""
    import subprocess

    from tests.measure.watch import PINGS, IperfWatcher

    out = tmp_path_factory.mktemp("runs")
    watcher = IperfWatcher(lab)
    watcher.start()
    try:
        proc = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "probe"), "run", str(lab.inventory), "-o", str(out),
             "--count", str(PINGS), "--interval", "0.05", "--duration", "4", "--omit", "2"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        watcher.stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1]), watcher


@pytest.fixture(scope="session")
def truth(lab: control.LabInfo) -> Truth:
    """truth.json of the session lab, keyed by (src, dst)."""
    doc = json.loads(lab.paths.truth.read_text())
    return {(p["src"], p["dst"]): p for p in doc["pairs"]}


@pytest.fixture
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the fleet's client key is offered, whatever agent the caller runs."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[object]:
    """Real asyncssh servers on 127.0.0.1 (tests/sshfleet.py), closed after the test."""
    from tests.sshfleet import Fleet

    async with Fleet(tmp_path) as f:
        yield f
