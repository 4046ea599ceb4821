"""run.json: one writer, one reader, equal after a round trip; files of older probes stay readable.

``fixtures/store/run-*.json`` are files written by probe 0.1.0 before run.json was typed: a
complete run, a resumed run with a host down and one not measured, a run stopped by SIGTERM
during the ping phase (all three from ``probe run`` on the loopback fleet of ``tests/sshfleet``),
and the golden run as ``tests/report/runs.py`` wrote it then (fewer options, no ``ssh``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import StoreError
from probe.model import CellStatus
from probe.stats import RttStats
from probe.store.rundir import read_run
from probe.store.rundoc import (
    CellCounts,
    ConnectOutcome,
    ControllerVantage,
    InventoryRef,
    RunAttempt,
    RunDoc,
    RunHost,
    RunOptionsDoc,
    RunPhases,
    SshRoute,
    decode_run,
    encode_run,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "store"
WRITTEN_BY_0_1_0 = sorted(FIXTURES.glob("run-*.json"))


@pytest.mark.parametrize("path", WRITTEN_BY_0_1_0, ids=lambda p: p.stem)
def test_files_of_probe_0_1_0_read_and_round_trip(path: Path) -> None:
    doc = decode_run(path.read_text(), path)
    assert decode_run(encode_run(doc), path) == doc
    old = json.loads(path.read_text())
    if "ssh" in old["hosts"][0]:  # written by `probe run`: the writer keeps every value
        assert json.loads(encode_run(doc)) == old


def test_what_the_fixtures_hold() -> None:
    resumed = decode_run((FIXTURES / "run-resumed.json").read_text(), "run.json")
    a, _, c, d = resumed.hosts
    assert resumed.resumed_utc and resumed.cells == CellCounts(6, 4, 0, 0, ())
    assert a.tags == {"gpu": "h100"} and a.ssh == SshRoute("127.0.0.1", 42561, "probe", ())
    assert a.connection is not None and a.connection.tools["timeout"] == "present"
    assert not c.measure and c.connection is None and c.ssh is not None and c.ssh.via == ("a",)
    assert d.connection == ConnectOutcome(CellStatus.UNREACHABLE, "connection refused", None, {})
    assert resumed.controller is not None and isinstance(resumed.controller.rtt["d"], RttStats)
    assert resumed.phases is not None and resumed.phases.bandwidth_s is None
    stopped = decode_run((FIXTURES / "run-interrupted.json").read_text(), "run.json")
    assert stopped.interrupted and not stopped.complete and stopped.phases is not None
    assert stopped.phases.ping_s is None and dict(stopped.phases.items()).keys() == {"connect_s"}
    old = decode_run((FIXTURES / "run-lab8-generated.json").read_text(), "run.json")
    assert old.options == RunOptionsDoc(count=20, interval_s=0.2, bandwidth=True, duration_s=5)
    assert old.hosts[0].ssh is None and old.hosts[0].tags == {}


def test_a_file_without_attempts_reads_as_the_one_its_top_level_fields_describe() -> None:
    resumed = decode_run((FIXTURES / "run-resumed.json").read_text(), "run.json")
    assert resumed.attempts == ()
    (latest,) = resumed.history
    assert latest == RunAttempt(
        resumed.resumed_utc or "", resumed.probe_version, resumed.inventory,
        resumed.ended_utc, resumed.interrupted, resumed.phases,
    )  # fmt: skip
    complete = decode_run((FIXTURES / "run-complete.json").read_text(), "run.json")
    assert complete.history[0].started_utc == complete.started_utc


def test_every_attempt_is_written_the_latest_also_on_top() -> None:
    first = decode_run((FIXTURES / "run-interrupted.json").read_text(), "run.json")
    again = RunAttempt("2026-12-01T00:00:00.000Z", "0.2.0", InventoryRef("b.yaml", "b" * 64))
    doc = first.with_attempts((*first.history, again))
    assert doc.resumed_utc == again.started_utc and not doc.interrupted
    assert doc.phases is None and doc.ended_utc is None  # this attempt's, not the first's
    assert doc.started_utc == first.started_utc and doc.inventory == first.inventory
    text = encode_run(doc)
    assert decode_run(text, "run.json") == doc
    written = json.loads(text)["attempts"]
    assert [a["started_utc"] for a in written] == [first.started_utc, again.started_utc]
    assert first.phases is not None and written[0]["phases"] == dict(first.phases.items())
    assert written[0]["interrupted"] is True and "ended_utc" not in written[1]
    assert doc.with_attempts(doc.attempts[:1]).resumed_utc is None  # one attempt: not resumed


# --- damage: one line naming the file and the key ----------------------------------------------


def _edit(doc: dict[str, Any], path: str, value: object) -> None:
    """Set (or, for ``...``, delete) the value at a dotted path; ``hosts.1`` indexes a list."""
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value


DAMAGE = [
    ("hosts.1.measure", "yes", "'hosts[1].measure' must be true or false, not 'yes'"),
    ("hosts.3.status", "fine", "'hosts[3].status' must be a cell status, not 'fine'"),
    ("hosts.0.tags.gpu", 100, "'hosts[0].tags.gpu' must be a string, not 100"),
    ("hosts.2.ssh.via", "a", "'hosts[2].ssh.via' must be a list, not 'a'"),
    ("hosts.0.ssh.port", 22.5, "'hosts[0].ssh.port' must be an integer, not 22.5"),
    ("hosts.1.name", "a", "hosts[1]: host 'a' is listed twice"),
    ("hosts.0.address", ..., "'hosts[0].address' is missing"),
    ("inventory.sha256", ..., "'inventory.sha256' is missing"),
    ("options.count", "20", "'options.count' must be an integer, not '20'"),
    ("options.interval_s", True, "'options.interval_s' must be a number, not True"),
    ("controller.rtt.d.sent", 1.5, "'controller.rtt.d.sent' must be an integer, not 1.5"),
    ("controller.rtt.d", 3, "'controller.rtt.d' must be an object, not 3"),
    ("phases.ping_s", "fast", "'phases.ping_s' must be a number, not 'fast'"),
    ("phases.connect_s", 10**400, "'phases.connect_s' must be a number in range, not 1000"),
    ("cells.torn_sample_lines", [1, "x"], "'cells.torn_sample_lines[1]' must be an integer"),
    ("complete", ..., "'complete' is missing"),
    ("interrupted", None, "'interrupted' must be true or false, not None"),
    ("started_utc", 1795424400, "'started_utc' must be a string, not 1795424400"),
]


ATTEMPT_DAMAGE = [
    ("attempts", {}, "'attempts' must be a list, not {}"),
    ("attempts.0", 3, "'attempts[0]' must be an object, not 3"),
    ("attempts.0.interrupted", "no", "'attempts[0].interrupted' must be true or false, not 'no'"),
    ("attempts.0.inventory.sha256", ..., "'attempts[0].inventory.sha256' is missing"),
    ("attempts.0.phases.ping_s", "1s", "'attempts[0].phases.ping_s' must be a number, not '1s'"),
]


@pytest.mark.parametrize(("key", "value", "message"), ATTEMPT_DAMAGE, ids=lambda d: str(d))
def test_a_damaged_attempt_is_one_line_naming_file_and_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    run = decode_run((FIXTURES / "run-interrupted.json").read_text(), "run.json")
    doc = json.loads(encode_run(run.with_attempts(run.history)))
    _edit(doc, key, value)
    (tmp_path / "run.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError) as err:
        read_run(tmp_path)
    assert str(err.value) == f"{tmp_path / 'run.json'}: {message}"


@pytest.mark.parametrize(("key", "value", "message"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_field_is_one_line_naming_file_and_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    doc = json.loads((FIXTURES / "run-resumed.json").read_text())
    _edit(doc, key, value)
    (tmp_path / "run.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError) as err:
        read_run(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'run.json'}: {message}")
    assert "\n" not in str(err.value)


# --- round trip --------------------------------------------------------------------------------

TEXT = st.text(max_size=8)
NUMBER = st.floats(allow_nan=False, allow_infinity=False)
OPT_NUMBER = st.none() | NUMBER
COUNT = st.integers(min_value=0, max_value=10**6)

RTT_STATS = st.builds(RttStats, COUNT, COUNT, NUMBER, *([OPT_NUMBER] * 9))
CONNECTION = st.builds(
    ConnectOutcome,
    st.sampled_from(CellStatus),
    st.none() | TEXT,
    OPT_NUMBER,
    st.dictionaries(TEXT, st.none() | TEXT, max_size=3),
)
HOST = st.builds(
    RunHost,
    name=TEXT,
    address=TEXT,
    region=TEXT,
    zone=st.none() | TEXT,
    provider=st.none() | TEXT,
    tags=st.dictionaries(TEXT, TEXT, max_size=3),
    measure=st.booleans(),
    ssh=st.none() | st.builds(SshRoute, TEXT, COUNT, st.none() | TEXT, st.tuples(TEXT)),
    connection=st.none() | CONNECTION,
)
RUN = st.builds(
    RunDoc,
    run_id=TEXT,
    probe_version=TEXT,
    inventory=st.builds(InventoryRef, TEXT, TEXT),
    started_utc=TEXT,
    hosts=st.lists(HOST, max_size=4, unique_by=lambda h: h.name).map(tuple),
    options=st.builds(
        RunOptionsDoc,
        count=COUNT,
        interval_s=NUMBER,
        exclusive_by=st.none() | TEXT,
        under_load=st.booleans(),
    ),
    complete=st.booleans(),
    interrupted=st.booleans(),
    controller=st.none()
    | st.builds(
        ControllerVantage,
        TEXT,
        st.dictionaries(TEXT, TEXT | RTT_STATS, max_size=3),
        st.none() | TEXT,
    ),
    phases=st.none() | st.builds(RunPhases, OPT_NUMBER, OPT_NUMBER, OPT_NUMBER),
    ended_utc=st.none() | TEXT,
    resumed_utc=st.none() | TEXT,
    cells=st.none()
    | st.builds(CellCounts, COUNT, COUNT, COUNT, COUNT, st.lists(COUNT, max_size=3).map(tuple)),
    attempts=st.lists(
        st.builds(
            RunAttempt,
            TEXT,
            TEXT,
            st.builds(InventoryRef, TEXT, TEXT),
            st.none() | TEXT,
            st.booleans(),
            st.none() | st.builds(RunPhases, OPT_NUMBER, OPT_NUMBER, OPT_NUMBER),
        ),
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(RUN)
def test_encode_then_decode_gives_the_same_run(doc: RunDoc) -> None:
    assert decode_run(encode_run(doc), "run.json") == doc


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key path of a decoded JSON document (the root excluded)."""
    if isinstance(node, dict):
        items: list[tuple[str | int, object]] = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return []
    out = []
    for key, value in items:
        out.append((*prefix, key))
        out += _paths(value, (*prefix, key))
    return out


FUZZ_DOC = json.loads((FIXTURES / "run-resumed.json").read_text())
FUZZ_PATHS = _paths(FUZZ_DOC)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FUZZ_PATHS), JSON)
def test_any_value_anywhere_is_read_or_one_line_of_store_error(
    path: tuple[str | int, ...], value: object
) -> None:
    doc = json.loads(json.dumps(FUZZ_DOC))
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        run = decode_run(json.dumps(doc), "run.json")
    except StoreError as exc:
        assert str(exc).startswith("run.json: ") and "\n" not in str(exc)
        return
    text = encode_run(run)  # what was accepted is written back and read again alike
    assert encode_run(decode_run(text, "run.json")) == text


def test_a_key_holding_a_newline_is_escaped_in_the_one_line_error() -> None:
    """hypothesis found it: a controller.rtt host named "\\n" made a two-line message."""
    doc = json.loads(json.dumps(FUZZ_DOC))
    doc["controller"]["rtt"] = {"\n": {"sent": "x"}}
    with pytest.raises(StoreError) as err:
        decode_run(json.dumps(doc), "run.json")
    assert "\n" not in str(err.value) and "'controller.rtt.\\n." in str(err.value), err.value


def test_the_pinger_and_the_ping_plan_are_kept_and_older_files_read_what_probe_did() -> None:
    old = decode_run((FIXTURES / "run-complete.json").read_text(), "run.json")
    assert (old.options.pinger, old.options.ping_pairs) == ("ping", "all")
    assert old.cells is not None and old.cells.rtt_not_planned == 0
    new = replace(
        old,
        options=replace(old.options, pinger="auto", ping_pairs="sample:2"),
        cells=replace(old.cells, rtt_not_planned=3),
    )
    text = encode_run(new)
    written = json.loads(text)
    assert written["options"]["pinger"] == "auto"
    assert written["options"]["ping_pairs"] == "sample:2"
    assert written["cells"]["rtt_not_planned"] == 3
    assert decode_run(text, "run.json") == new


def test_not_measurable_cells_are_counted_apart_and_older_files_write_back_unchanged() -> None:
    text = (FIXTURES / "run-complete.json").read_text()
    old = decode_run(text, "run.json")
    assert old.cells is not None and old.cells.rtt_not_measurable == 0
    # the key is written only when some cell is not measurable: the file is written back as it was
    assert encode_run(old).rstrip("\n") == text.rstrip("\n")
    new = replace(old, cells=replace(old.cells, rtt_not_measurable=2))
    written = encode_run(new)
    assert json.loads(written)["cells"]["rtt_not_measurable"] == 2
    assert decode_run(written, "run.json") == new
