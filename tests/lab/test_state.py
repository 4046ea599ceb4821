"""The lab's state files: written whole, read back equal, damage is one line naming file and key.

No root and no namespaces: the files are written and read the way ``lab up``, ``lab link``, the
emulator and the supervisor do, in a temporary state directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.errors import InputError, LabError
from probe.lab import control, files, htb
from probe.lab.files import LabPaths
from probe.lab.state import (
    ChildPids,
    ChildSpec,
    EmulatedHost,
    EmulatorConfig,
    EmulatorStats,
    LabFile,
    LabState,
    LabTruth,
    LinkCounters,
    PairTable,
    SuperviseSpec,
    TruthHost,
    load,
    save,
)
from probe.lab.topology import MESH, EmulatorSettings, LinkParams, Network, load_topology
from probe.lab.truth import PairStatus, PairTruth
from tests.conftest import ROOT
from tests.lab.conftest import FIELD_HOSTS, TINY

# --- round trip --------------------------------------------------------------------------------

NAME = st.text(st.characters(blacklist_characters=">", blacklist_categories=["Cs"]), min_size=1)
TEXT = st.text(max_size=8)
NUMBER = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
PID = st.integers(min_value=1, max_value=2**22)
PAIR = st.tuples(NAME, NAME)

LINK = st.builds(
    LinkParams, NUMBER, NUMBER, st.sampled_from(["normal", "uniform"]), NUMBER, NUMBER, NUMBER,
    st.booleans(),
)  # fmt: skip
RECORDS: st.SearchStrategy[LabFile] = st.one_of(
    st.builds(LabState, TEXT, TEXT, TEXT, st.lists(TEXT).map(tuple), TEXT, st.booleans(),
              st.none() | PID, st.lists(TEXT).map(tuple), st.lists(TEXT).map(tuple)),
    st.builds(PairTable, st.dictionaries(PAIR, LINK, max_size=4), st.none() | NUMBER),
    st.builds(
        EmulatorConfig,
        st.lists(
            st.builds(EmulatedHost, TEXT, TEXT, st.dictionaries(TEXT, TEXT, max_size=2)),
            max_size=3,
        ).map(tuple),
        st.lists(st.builds(Network, TEXT, TEXT, st.none() | LINK), max_size=3).map(tuple),
        st.builds(EmulatorSettings, st.booleans(), st.sampled_from(["htb", "userspace"]),
                  PID, PID, PID, NUMBER),
        TEXT, TEXT, TEXT,
        st.none() | PID,
    ),
    st.builds(
        EmulatorStats, NUMBER, NUMBER, PID, NUMBER,
        st.dictionaries(PAIR, st.builds(LinkCounters, *[NUMBER] * 6), max_size=4), PID,
    ),
    st.builds(
        LabTruth, TEXT, TEXT,
        st.lists(st.builds(TruthHost, TEXT, TEXT, TEXT, st.dictionaries(TEXT, TEXT, max_size=2),
                           st.none() | TEXT), max_size=3).map(tuple),
        st.lists(st.builds(PairTruth, TEXT, TEXT, *[NUMBER] * 6, TEXT, TEXT,
                           st.sampled_from(["ok", "from_reverse"]), TEXT), max_size=3).map(tuple),
        st.lists(st.builds(PairStatus, TEXT, TEXT, TEXT, st.just("not-measurable"), TEXT),
                 max_size=3).map(tuple),
    ),
    st.builds(
        SuperviseSpec,
        st.dictionaries(TEXT, st.builds(ChildSpec, st.lists(TEXT).map(tuple), TEXT), max_size=3),
    ),
    st.builds(ChildPids, st.dictionaries(TEXT, PID, max_size=4)),
)  # fmt: skip


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-state")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_every_state_file_reads_back_equal(state_dir: Path, record: LabFile) -> None:
    path = state_dir / "file.json"
    save(path, record)
    assert load(path, type(record)) == record


def test_what_lab_up_writes_reads_back_equal(tmp_path: Path) -> None:
    topo = load_topology(str(TINY))
    paths = LabPaths(tmp_path)
    config, pairs = files.emulator_files(topo, paths)
    truth = files.lab_truth(topo)
    for path, record in (
        (paths.emulator_config, config),
        (paths.pairs, pairs),
        (paths.truth, truth),
    ):
        save(path, record)
        assert load(path, type(record)) == record
    doc = json.loads(paths.truth.read_text())  # tests and benchmarks read truth.json as JSON
    assert doc["schema"] == "probe.lab-truth/1"
    assert [h["name"] for h in doc["hosts"]] == [h.name for h in topo.hosts]
    assert doc["pairs"][0]["tcp_max_fwd_bps"] == pytest.approx(truth.pairs[0].tcp_max_fwd_bps)
    assert set(json.loads(paths.pairs.read_text())["pairs"]) == {f"{a}>{b}" for a, b in topo.links}


def test_the_truth_of_hosts_unlike_the_others_reads_back_equal(tmp_path: Path) -> None:
    """truth.json names the expected ``blocked`` of every test into the firewalled host and each
    host's congestion control."""
    truth = files.lab_truth(load_topology(str(FIELD_HOSTS)))
    save(tmp_path / "truth.json", truth)
    assert load(tmp_path / "truth.json", LabTruth) == truth
    blocked = {(p.src, p.dst) for p in truth.pairs if p.bw_status is not None}
    assert blocked == {(src, "fw") for src in ("fbj", "nonroot", "noicmp", "bbox")}
    assert {p.bw_status for p in truth.pairs} == {"blocked", None}
    assert {h.name: h.cc for h in truth.hosts if h.cc} == {"fw": "cubic", "nonroot": "bbr"}


# --- damage -------------------------------------------------------------------------------------

DAMAGE = [
    (LabState, '{"name": "x", "prefix": "p-", "topology": "t", "hosts": "eu1", "jump": "eu1"}',
     "'hosts' must be a list, not 'eu1'"),
    (LabState, '{"name": "x", "prefix": "p-", "topology": "t", "hosts": [], "jump": "j", '
     '"supervisor_pid": "12"}', "'supervisor_pid' must be an integer, not '12'"),
    (PairTable, '{"pairs": {"a>b": {"jitter_dist": "pareto"}}}',
     "'pairs.a>b.jitter_dist' must be 'normal' or 'uniform', not 'pareto'"),
    (PairTable, '{"pairs": {"a>b": {"delay_ms": "40ms"}}}',
     "'pairs.a>b.delay_ms' must be a number, not '40ms'"),
    (PairTable, '{"pairs": {"ab": {}}}', "'pairs.ab' must name a directed pair as SRC>DST"),
    (EmulatorConfig, '{"hosts": [], "networks": [], "rate_impl": "tc", "pairs_path": "p", '
     '"stats_path": "s", "ready_path": "r"}', "'rate_impl' must be 'htb' or 'userspace', not 'tc'"),
    (EmulatorConfig, '{"hosts": [{"name": "a", "netns": "n"}], "networks": []}',
     "'hosts[0].addresses' is missing"),
    (LabTruth, '{"schema": "probe.lab-truth/2"}', "schema 'probe.lab-truth/2' is not"),
    (SuperviseSpec, '{"children": {}, "critical": ["emulator"]}',
     "critical child 'emulator' is not one of 'children'"),
    (SuperviseSpec, '{"children": {"e": {"argv": ["x", 1], "log": "l"}}}',
     "'children.e.argv[1]' must be a string, not 1"),
    (ChildPids, '{"sshd_a": 12.5}', "'sshd_a' must be an integer, not 12.5"),
    (EmulatorStats, '{"time_monotonic_s": 1, "cpu_s": 1, "dropped_unroutable": 0, '
     '"comp_us": 90, "pairs": {"a>b": {"packets": null, "bytes": "x"}}}',
     "'pairs.a>b.bytes' must be a number, not 'x'"),
    (ChildPids, '{"sshd_a": 12', "not valid JSON"),
    (ChildPids, "[1, 2]", "expected a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "text", "message"), DAMAGE)
def test_a_damaged_state_file_is_one_line_naming_file_and_key(
    tmp_path: Path, kind: type[LabFile], text: str, message: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(LabError) as err:
        load(path, kind)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)


def test_a_missing_state_file_is_a_lab_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=f"{tmp_path / 'children.json'}: file not found"):
        load(tmp_path / "children.json", ChildPids)


# --- the control paths that need no root ---------------------------------------------------------


def test_running_reads_the_state_file(tiny_lab: control.LabInfo) -> None:
    assert (tiny_lab.name, tiny_lab.prefix, tiny_lab.topology) == ("tiny", "pt-", str(TINY))
    assert tiny_lab.hosts == ("tj", "ta", "tb") and tiny_lab.jump == "tj"


def test_a_damaged_lab_state_names_the_file_and_key(tiny_lab: control.LabInfo) -> None:
    doc = json.loads(tiny_lab.paths.state.read_text())
    doc["jump"] = 7
    tiny_lab.paths.state.write_text(json.dumps(doc))
    with pytest.raises(LabError, match=r"state\.json: 'jump' must be a string, not 7$"):
        control.running()


def test_lab_link_rewrites_the_pair_table_and_the_truth(
    tiny_lab: control.LabInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: signalled.append((pid, sig)))
    tiny_lab.paths.emulator_ready.write_text("4242")
    a, b, c = tiny_lab.hosts
    before = load(tiny_lab.paths.pairs, PairTable)
    control.set_link(tiny_lab, a, b, {"delay_ms": 40.0, "loss_pct": 1.0}, both=False)
    after = load(tiny_lab.paths.pairs, PairTable)
    assert signalled == [(4242, signal.SIGHUP)]
    changed = after.pairs[a, b]
    assert (changed.delay_ms, changed.loss_pct) == (40.0, 1.0)
    assert changed.rate_bps == before.pairs[a, b].rate_bps and after.comp_us == before.comp_us
    assert after.pairs[b, a] == before.pairs[b, a] and after.pairs[a, c] == before.pairs[a, c]
    truth = {(p.src, p.dst): p for p in load(tiny_lab.paths.truth, LabTruth).pairs}
    assert truth[a, b].rtt_ms == pytest.approx(40.0 + before.pairs[b, a].delay_ms)
    with pytest.raises(InputError, match=f"has no pair {a}>nowhere"):
        control.set_link(tiny_lab, a, "nowhere", {"delay_ms": 1.0}, both=True)


def test_lab_link_sets_the_rate_class_of_the_changed_pairs_only(
    tiny_lab: control.LabInfo, tc_calls: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator once re-ran ``tc`` for every pair on each SIGHUP and its forwarding thread
    froze ~0.3 s: ``lab link`` changes only what changed, from its own process."""
    monkeypatch.setattr(os, "kill", lambda pid, sig: None)
    tiny_lab.paths.emulator_ready.write_text("4242")
    _, a, b = tiny_lab.hosts
    control.set_link(tiny_lab, a, b, {"delay_ms": 40.0}, both=True)
    assert tc_calls == []  # no rate changed
    control.set_link(tiny_lab, a, b, {"rate_bps": 20e6}, both=True)
    config = load(tiny_lab.paths.emulator_config, EmulatorConfig)
    address = {h.name: h.addresses[MESH] for h in config.hosts}
    for netns, dst in (("pt-ta", b), ("pt-tb", a)):  # the class lab up made for that destination
        cid = htb.class_id(config, address[dst])
        rate = ("rate", "20000000bit", "ceil", "20000000bit", "quantum", "1514")
        assert (netns, "class", "change", "dev", "tun0", "parent", "1:", "classid", cid, "htb",
                *rate) in tc_calls  # fmt: skip
    assert len(tc_calls) == 2
    tc_calls.clear()
    control.set_link(tiny_lab, a, b, {"rate_bps": 20e6, "loss_pct": 1.0}, both=False)
    assert tc_calls == []  # the rate is what it was


def test_lab_link_leaves_a_userspace_rate_to_the_emulator(
    tiny_lab: control.LabInfo, tc_calls: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "kill", lambda pid, sig: None)
    tiny_lab.paths.emulator_ready.write_text("4242")
    config = load(tiny_lab.paths.emulator_config, EmulatorConfig)
    userspace = replace(config, settings=replace(config.settings, rate_impl="userspace"))
    save(tiny_lab.paths.emulator_config, userspace)
    control.set_link(tiny_lab, "ta", "tb", {"rate_bps": 20e6}, both=True)
    assert tc_calls == []
    assert load(tiny_lab.paths.pairs, PairTable).pairs["ta", "tb"].rate_bps == 20e6


def test_lab_link_without_an_emulator_changes_nothing(tiny_lab: control.LabInfo) -> None:
    before = tiny_lab.paths.pairs.read_text()
    with pytest.raises(LabError, match="the emulator is not running"):
        control.set_link(tiny_lab, "ta", "tb", {"rate_bps": 20e6}, both=True)
    assert tiny_lab.paths.pairs.read_text() == before


def _wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_supervisor_reads_its_spec_and_records_its_children(tmp_path: Path) -> None:
    """The supervisor is a process of its own: it reads supervise.json and writes children.json
    through probe.lab.state, restarts a dead child on SIGUSR2 and stops them all on SIGTERM."""
    sleep = ChildSpec(("sleep", "60"), str(tmp_path / "sleep.log"))
    save(tmp_path / "supervise.json", SuperviseSpec({"main": sleep, "side": sleep}, ("main",)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "probe.lab.supervisor", str(tmp_path)], env=env
    )
    record = tmp_path / "children.json"
    try:
        _wait_for(record.exists)
        first = load(record, ChildPids).pids
        assert set(first) == {"main", "side"} and all(_alive(p) for p in first.values())
        os.kill(first["side"], signal.SIGKILL)
        _wait_for(lambda: not _alive(first["side"]))
        supervisor.send_signal(signal.SIGUSR2)
        _wait_for(lambda: load(record, ChildPids).pids["side"] != first["side"])
        again = load(record, ChildPids).pids
        assert again["main"] == first["main"] and _alive(again["side"])
        supervisor.terminate()
        assert supervisor.wait(timeout=10) == 0
        assert not any(_alive(p) for p in again.values())
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
