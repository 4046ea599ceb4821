"""Bad input: every malformed file gives one line naming it, exit 2, never a traceback.

The corpus runs through the real CLI in subprocesses (all at once, in a module fixture; each case
is then one test). It is made of

* the bad inventories of ``fixtures/inventory/bad`` (their ``# expect:`` header says the message),
* the committed files of ``fixtures/bad/{policy,topology,model,anchors}``,
* run directories damaged in a temporary copy of the golden run ``fixtures/runs/20261123T090000Z``.

Then Hypothesis throws garbage at each parser that has no fuzz test of its own elsewhere: only
``ProbeError`` may come out (ping, iperf3 and inventory parsers are fuzzed in their own tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import units
from probe.decide.policy import load_policy
from probe.errors import InputError, ProbeError, StoreError
from probe.inventory import load_inventory
from probe.lab.topology import load_topology, parse_topology
from probe.matrix.anchors import parse_anchors
from probe.matrix.build import build_matrix, rtt_samples, to_anchors
from probe.sshconfig import parse_ssh_config
from probe.store.rundir import read_run, read_samples

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(sys.executable).with_name("probe")
FIXTURES = ROOT / "tests" / "fixtures"
BAD = FIXTURES / "bad"
GOLDEN = FIXTURES / "runs" / "20261123T090000Z"
GOOD_POLICY = ROOT / "inventory" / "policies" / "coverage.yaml"
BAD_INVENTORIES = sorted((FIXTURES / "inventory" / "bad").glob("*.yaml"))
TRACEBACK = "Traceback"


@dataclass(frozen=True, slots=True)
class Case:
    """``argv`` after ``probe``; the one stderr line must contain ``names`` and ``what``.

    Placeholders: ``{bad}`` fixtures/bad, ``{runs}`` the damaged runs, ``{good}`` an intact run.
    """

    argv: tuple[str, ...]
    names: str
    what: str


# --- run directories: the golden run, then one damage each ------------------------------------

Damage = Callable[[Path], object]


def _edit_line(number: int, edit: Callable[[dict[str, Any]], None]) -> Damage:
    def damage(run: Path) -> None:
        path = run / "samples.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        rec = json.loads(lines[number - 1])
        edit(rec)
        lines[number - 1] = json.dumps(rec) + "\n"
        path.write_text("".join(lines))

    return damage


def _replace_line(number: int, text: str) -> Damage:
    def damage(run: Path) -> None:
        path = run / "samples.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        lines[number - 1] = text + "\n"
        path.write_text("".join(lines))

    return damage


def _cut_line(number: int) -> Damage:
    """Line ``number`` cut short, as a kill would cut the last line, but in the middle."""

    def damage(run: Path) -> None:
        path = run / "samples.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        lines[number - 1] = lines[number - 1][:60] + "\n"
        path.write_text("".join(lines))

    return damage


def _edit_run(edit: Callable[[dict[str, Any]], object]) -> Damage:
    def damage(run: Path) -> None:
        doc = json.loads((run / "run.json").read_text())
        edit(doc)
        (run / "run.json").write_text(json.dumps(doc))

    return damage


def _write(name: str, data: bytes) -> Damage:
    return lambda run: (run / name).write_bytes(data)


def _remove(*names: str) -> Damage:
    def remove(run: Path) -> None:
        for name in names:
            (run / name).unlink()

    return remove


PING_LINE, IPERF_LINE = 20, 51  # an ok ping record and an ok iperf3 record of the golden run

DAMAGE: dict[str, Damage] = {
    "samples-garbage": _write("samples.jsonl", b"this is not\nJSON at all\n"),
    "samples-binary": _write("samples.jsonl", bytes(range(256)) * 4),
    "samples-no-src": _edit_line(PING_LINE, lambda r: r.pop("src")),
    "samples-no-kind": _edit_line(3, lambda r: r.pop("kind")),
    "samples-not-object": _replace_line(5, "[1, 2, 3]"),
    "samples-bad-status": _edit_line(10, lambda r: r.update(status="fine")),
    "samples-probes-not-list": _edit_line(PING_LINE, lambda r: r.update(probes="lots")),
    "samples-received-gt-sent": _edit_line(PING_LINE, lambda r: r.update(received=99)),
    "samples-summary-min-gt-max": _edit_line(
        PING_LINE, lambda r: r["summary"].update(rtt_min_ms=1e9)
    ),
    "samples-iperf3-no-bps": _edit_line(IPERF_LINE, lambda r: r["result"].pop("receiver_bps")),
    "samples-iperf3-retransmits-float": _edit_line(
        IPERF_LINE, lambda r: r["result"].update(retransmits=1.5)
    ),
    "samples-iperf3-negative-bps": _edit_line(
        IPERF_LINE, lambda r: r["result"].update(receiver_bps=-9.4e8)
    ),
    "samples-torn-in-the-middle": _cut_line(PING_LINE),
    "run-json-newer": _edit_run(lambda d: d.update(schema="probe.run/2")),
    "run-json-no-schema": _edit_run(lambda d: d.pop("schema")),
    "run-json-host-without-name": _edit_run(lambda d: d["hosts"][2].pop("name")),
    "run-json-hosts-not-list": _edit_run(lambda d: d.update(hosts={"eu1": {}})),
    "run-json-host-measure-not-bool": _edit_run(lambda d: d["hosts"][1].update(measure="yes")),
    "run-json-options-count-text": _edit_run(lambda d: d["options"].update(count="20")),
    "run-json-not-json": lambda run: (run / "run.json").write_text(
        (GOLDEN / "run.json").read_text()[:100]
    ),
    "run-json-not-object": _write("run.json", b"[]\n"),
    "run-json-not-utf8": _write("run.json", b'{"schema": "probe.run/1", "x": "\xff"}\n'),
    "run-json-nested-deep": _write("run.json", b"[" * 100_000),
    "run-json-missing": lambda run: (run / "run.json").unlink(),
    "anchors-schema-4": lambda run: shutil.copy(BAD / "anchors" / "schema-4.json",
                                                run / "anchors.json"),
    # calc reads a run directory's stored matrix: this one holds neither run.json nor anchors.json
    "anchors-missing": _remove("anchors.json", "run.json"),
}  # fmt: skip

RUN_CASES: dict[str, Case] = {
    "samples-garbage": Case(
        ("show", "{runs}/samples-garbage"),
        "{runs}/samples-garbage/samples.jsonl:1",
        "not a JSON record",
    ),
    "samples-binary": Case(
        ("export", "{runs}/samples-binary"),
        "{runs}/samples-binary/samples.jsonl:1",
        "not a JSON record",
    ),
    "samples-no-src": Case(
        ("export", "{runs}/samples-no-src", "--format", "json"),
        f"{{runs}}/samples-no-src/samples.jsonl:{PING_LINE}",
        "record without 'src'",
    ),
    "samples-no-kind": Case(
        ("show", "{runs}/samples-no-kind"),
        "{runs}/samples-no-kind/samples.jsonl:3",
        "record without 'kind'",
    ),
    "samples-not-object": Case(
        ("show", "{runs}/samples-not-object", "--by", "region"),
        "{runs}/samples-not-object/samples.jsonl:5",
        "expected a JSON object",
    ),
    "samples-bad-status": Case(
        ("report", "{runs}/samples-bad-status"),
        "{runs}/samples-bad-status/samples.jsonl:10",
        "unknown status 'fine'",
    ),
    "samples-probes-not-list": Case(
        ("show", "{runs}/samples-probes-not-list"),
        f"{{runs}}/samples-probes-not-list/samples.jsonl:{PING_LINE}",
        "'probes' is not a list",
    ),
    "samples-received-gt-sent": Case(
        ("export", "{runs}/samples-received-gt-sent", "--format", "prometheus"),
        f"{{runs}}/samples-received-gt-sent/samples.jsonl:{PING_LINE}",
        "received 99 of 20 sent",
    ),
    "samples-summary-min-gt-max": Case(
        ("show", "{runs}/samples-summary-min-gt-max"),
        f"{{runs}}/samples-summary-min-gt-max/samples.jsonl:{PING_LINE}",
        "rtt_min_ms > rtt_max_ms",
    ),
    "samples-iperf3-no-bps": Case(
        ("show", "{runs}/samples-iperf3-no-bps", "--metric", "bw_mbps"),
        f"{{runs}}/samples-iperf3-no-bps/samples.jsonl:{IPERF_LINE}",
        "record without 'result.receiver_bps'",
    ),
    "samples-iperf3-retransmits-float": Case(
        ("diff", "{good}", "{runs}/samples-iperf3-retransmits-float"),
        f"{{runs}}/samples-iperf3-retransmits-float/samples.jsonl:{IPERF_LINE}",
        "'result.retransmits' is not an integer",
    ),
    "samples-iperf3-negative-bps": Case(
        ("export", "{runs}/samples-iperf3-negative-bps", "--format", "csv"),
        f"{{runs}}/samples-iperf3-negative-bps/samples.jsonl:{IPERF_LINE}",
        "'result.receiver_bps' must be a rate ≥ 0 bit/s, not -940000000.0",
    ),
    "samples-torn-in-the-middle": Case(
        ("report", "{runs}/samples-torn-in-the-middle"),
        f"{{runs}}/samples-torn-in-the-middle/samples.jsonl:{PING_LINE}",
        "a record cut short in the middle of the file (only the last line may be torn by a kill)",
    ),
    "run-json-newer": Case(
        ("show", "{runs}/run-json-newer"),
        "{runs}/run-json-newer/run.json",
        "schema probe.run/2 is newer than this probe",
    ),
    "run-json-no-schema": Case(
        ("report", "{runs}/run-json-no-schema"),
        "{runs}/run-json-no-schema/run.json",
        "not a probe run file",
    ),
    "run-json-host-without-name": Case(
        ("show", "{runs}/run-json-host-without-name"),
        "{runs}/run-json-host-without-name/run.json",
        "hosts[2] must be an object with a string 'name'",
    ),
    "run-json-hosts-not-list": Case(
        ("export", "{runs}/run-json-hosts-not-list"),
        "{runs}/run-json-hosts-not-list/run.json",
        "'hosts' must be a list",
    ),
    "run-json-host-measure-not-bool": Case(
        ("report", "{runs}/run-json-host-measure-not-bool"),
        "{runs}/run-json-host-measure-not-bool/run.json",
        "'hosts[1].measure' must be true or false, not 'yes'",
    ),
    "run-json-options-count-text": Case(
        ("show", "{runs}/run-json-options-count-text"),
        "{runs}/run-json-options-count-text/run.json",
        "'options.count' must be an integer, not '20'",
    ),
    "run-json-not-json": Case(
        ("export", "{runs}/run-json-not-json"),
        "{runs}/run-json-not-json/run.json",
        "not valid JSON",
    ),
    "run-json-not-object": Case(
        ("show", "{runs}/run-json-not-object"),
        "{runs}/run-json-not-object/run.json",
        "expected a JSON object",
    ),
    "run-json-not-utf8": Case(
        ("show", "{runs}/run-json-not-utf8"),
        "{runs}/run-json-not-utf8/run.json",
        "not UTF-8",
    ),
    "run-json-nested-deep": Case(
        ("show", "{runs}/run-json-nested-deep"),
        "{runs}/run-json-nested-deep/run.json",
        "JSON",
    ),
    "run-json-missing": Case(
        ("show", "{runs}/run-json-missing"), "{runs}/run-json-missing", "not a run directory"
    ),
    "anchors-schema-4": Case(
        # an anchors file given: a run directory's gate reads its stored matrix instead
        ("gate", "{runs}/anchors-schema-4/anchors.json", "--policy", str(GOOD_POLICY)),
        "{runs}/anchors-schema-4/anchors.json",
        "anchors schema 'probe.anchors/4' is not supported",
    ),
    "anchors-missing": Case(
        ("calc", "{runs}/anchors-missing"),
        "{runs}/anchors-missing/anchors.json",
        "no anchors.json here",
    ),
}

# --- committed bad files ---------------------------------------------------------------------

POLICY_CASES = {
    "unknown-key": ("5", "unknown key 'checks[0].colour'"),
    "bare-number-budget": ("5", "'checks[0].budget': duration '100' needs a unit"),
    "rate-as-percent": ("3", "percentage '0.5 percent' needs a unit"),
    "percent-over-100": ("3", "is above 100%"),
    "bad-yaml": ("4", "not valid YAML"),
    "control-char": ("", "not valid YAML: unacceptable character"),
    "custom-tag": ("1", "unsupported YAML tag '!python/object'"),
    "bad-int-tag": ("3", "'checks[0].min_regions' must be an integer, got the string 'many'"),
    "schema-2": ("1", "policy schema 'probe.policy/2'"),
    "empty": ("1", "the file is empty"),
    "no-checks": ("1", "non-empty list 'checks'"),
    "checks-not-a-list": ("2", "'checks' must be a list, got a mapping"),
    "unknown-kind": ("2", "'checks[0].kind' must be one of decode, prefill, tp, pool, spec, "
                          "coverage, max_loss, got 'telepathy'"),
    "path-of-mappings": ("4", "'checks[0].path[0]' must be a string, got a mapping"),
    "not-utf8": ("1", "not UTF-8 text"),
    # the one YAML dialect (tests/test_input_rules.py runs it through every reader)
    "int-underscores": ("3", "'checks[0].min_samples' must be an integer written in decimal "
                             "digits, got '1_000'"),
    "int-hex": ("5", "'checks[0].tokens' must be an integer written in decimal digits, got '0x10'"),
    "bool-yes": ("5", "'checks[0].ring' must be true or false, got the string 'yes'"),
    "bool-quoted": ("5", "'checks[0].ring' must be true or false, got the string 'false'"),
    "duplicate-key": ("5", "duplicate key 'max' (first at line 3)"),
}  # fmt: skip
TOPOLOGY_CASES = {
    "bad-yaml": ("3", "not valid YAML"),
    "control-char": ("", "not valid YAML: unacceptable character"),
    "not-a-mapping": ("1", "the document must be a mapping, got a list"),
    "not-utf8": ("1", "not UTF-8 text"),
    "one-host": ("5", "a lab needs at least two hosts"),
    "outside-lab-range": ("5", "10.0.0.2 is outside 198.18.0.0/15"),
    "unknown-key": ("4", "unknown key 'regoins' (did you mean 'regions'?)"),
    "bare-number-delay": ("7", "'links.default.delay': duration '5' needs a unit"),
    "hostile-host-name": ("5", "host name 'hb;reboot' must match"),
    "hostile-prefix": ("2", "prefix '$(id)-' must be"),
    "jump-not-a-host": ("3", "jump host 'nowhere' is not a host"),
    "duplicate-address": ("5", "address 198.18.9.1 already used by ja"),
    "unknown-link-region": ("7", "unknown key 'links.r1-mars': expected 'region-region'"),
    "int-underscores": ("5", "'emulator.timing.guard_us' must be an integer written in decimal "
                             "digits, got '1_000'"),
    "int-hex": ("4", "'ssh.port' must be an integer written in decimal digits, got '0x16'"),
    "bool-yes": ("5", "'emulator.gso' must be true or false, got the string 'yes'"),
    "bool-quoted": ("7", "'regions.r1.hosts.ja.measure' must be true or false, got the string "
                         "'false'"),
    "duplicate-key": ("9", "duplicate key 'ja' (first at line 7)"),
}  # fmt: skip
MODEL_CASES = {
    "not-json": ("{bad}/model/not-json.json:3", "not JSON"),
    "not-an-object": ("{bad}/model/not-an-object.json", "not a JSON object"),
    "missing-hidden-size": ("{bad}/model/missing-hidden-size.json", "missing key 'hidden_size'"),
    "negative-layers": ("{bad}/model/negative-layers.json", "num_hidden_layers must be a posi"),
    "string-hidden-size": ("{bad}/model/string-hidden-size.json", "hidden_size must be a posi"),
}
ANCHORS_CASES = {
    "schema-4": ("", "anchors schema 'probe.anchors/4' is not supported"),
    "missing-hosts": ("", "$.hosts: missing key"),
    "unknown-status": ("", "$.pairs[0].status: unknown status 'great'"),
    "ok-without-rtt": ("", "status is ok but rtt_ms is null"),
    "pair-unknown-host": ("", "host 'c' is not listed in $.hosts"),
    "sent-not-integer": ("", "$.pairs[0].sent: expected an integer"),
    "rtt-missing-p99": ("", "$.pairs[0].rtt_ms.p99: missing key"),
    "not-json": (":18", "not JSON"),
    "not-utf8": ("", "not UTF-8 text"),
    "top-level-list": ("", "$: expected an object, got list"),
    "nan-rtt": ("", "$.pairs[0].rtt_ms.p99: expected a number, got nan"),
    "duplicate-key": ("", "duplicate key 'sent' in one object"),
}


def _inventory_case(path: Path, command: str) -> Case:
    header = path.read_text(errors="replace").splitlines()[0]
    m = re.fullmatch(r"# expect: (?:(\S+):)?(\d+): (.*)", header)
    assert m, f"{path.name}: no '# expect:' header"
    named = str(path.parent / m.group(1)) if m.group(1) else str(path)
    return Case(
        (command, str(path)), f"{named}:{m.group(2)}", m.group(3).replace("{path}", str(path))
    )


def _corpus() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for i, path in enumerate(BAD_INVENTORIES):  # `check` and `run` read inventories alike
        cases[f"inventory/{path.stem}"] = _inventory_case(path, "run" if i % 4 == 0 else "check")
    for name, (line, what) in POLICY_CASES.items():
        file = f"{{bad}}/policy/{name}.yaml"
        cases[f"policy/{name}"] = Case(
            ("gate", "{good}", "--policy", file), f"{file}:{line}" if line else file, what
        )
    for name, (line, what) in TOPOLOGY_CASES.items():
        file = f"{{bad}}/topology/{name}.yaml"
        cases[f"topology/{name}"] = Case(
            ("lab", "up", file), f"{file}:{line}" if line else file, what
        )
    for name, (names, what) in MODEL_CASES.items():
        file = f"{{bad}}/model/{name}.json"
        cases[f"model/{name}"] = Case(("calc", "{good}", "--model-config", file), names, what)
    cases["model/via-policy"] = Case(
        ("gate", "{good}", "--policy", "{bad}/policy/model-config-not-json.yaml"),
        "not-json.json:3",
        "not JSON",
    )
    for i, (name, (line, what)) in enumerate(ANCHORS_CASES.items()):
        file = f"{{bad}}/anchors/{name}.json"
        argv = ("calc", file) if i % 2 else ("groups", file, "--max-rtt", "5ms")
        cases[f"anchors/{name}"] = Case(argv, file + line, what)
    cases.update({f"run/{name}": case for name, case in RUN_CASES.items()})
    return cases


CORPUS = _corpus()


def test_the_corpus_is_big_and_every_damage_has_a_case() -> None:
    assert len(CORPUS) >= 30
    assert set(DAMAGE) == set(RUN_CASES)


# --- running it -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ran:
    case: Case
    places: dict[str, str]
    returncode: int
    stdout: str
    stderr: str


def _good_run(tmp: Path) -> Path:
    """The golden run plus the anchors.json ``probe run`` would have written."""
    from probe.matrix.anchors import write_anchors

    run = tmp / "good"
    shutil.copytree(GOLDEN, run)
    doc, samples = read_run(run), read_samples(run)
    frame = build_matrix(doc, samples.records)
    anchors = to_anchors(doc, frame, rtt_samples(samples.records))
    write_anchors(run / "anchors.json", anchors)
    return run


def _guard(case: Case, places: dict[str, str]) -> None:
    """Never hand ``lab up`` a topology (or ``run`` an inventory) that might be valid."""
    if case.argv[:2] == ("lab", "up"):
        with pytest.raises(InputError):
            load_topology(case.argv[2].format(**places))
    if case.argv[0] in ("check", "run"):
        with pytest.raises(InputError):
            load_inventory(case.argv[1])


def _probe(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HOME=str(cwd), XDG_STATE_HOME=str(cwd / "state"), COLUMNS="200")
    return subprocess.run(
        [str(PROBE), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    tmp = tmp_path_factory.mktemp("bad-input")
    good = _good_run(tmp)
    runs = tmp / "runs"
    for name, damage in DAMAGE.items():
        shutil.copytree(good, runs / name)
        damage(runs / name)
    places = {"bad": str(BAD), "runs": str(runs), "good": str(good)}
    for case in CORPUS.values():
        _guard(case, places)
    work = tmp / "cwd"
    work.mkdir()

    def one(case: Case) -> Ran:
        argv = [a.format(**places) for a in case.argv]
        if argv[0] == "run":
            argv += ["-o", str(work / "reports")]
        proc = _probe(argv, work)
        return Ran(case, places, proc.returncode, proc.stdout, proc.stderr)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = dict(zip(CORPUS, pool.map(one, CORPUS.values()), strict=True))
    assert not (work / "reports").exists()  # no run started
    return results


@pytest.mark.parametrize("name", list(CORPUS))
def test_bad_input_is_one_line_and_exit_2(ran: dict[str, Ran], name: str) -> None:
    r = ran[name]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert TRACEBACK not in r.stderr + r.stdout
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    (line,) = lines
    assert line.startswith("probe: error: ")
    assert r.case.names.format(**r.places) in line
    assert r.case.what in line


# --- a torn last line is tolerated, with one warning -----------------------------------------


@pytest.fixture
def torn_run(tmp_path: Path) -> Path:
    run = tmp_path / "torn"
    shutil.copytree(GOLDEN, run)
    data = (GOLDEN / "samples.jsonl").read_bytes()
    (run / "samples.jsonl").write_bytes(data[: len(data) - 40])  # killed mid-write
    return run


@pytest.mark.parametrize(("command", "says"), [("show", "rtt_p50_ms"), ("report", "report.html")])
def test_torn_last_line_is_skipped_with_one_warning(
    torn_run: Path, command: str, says: str
) -> None:
    proc = _probe([command, str(torn_run)], torn_run.parent)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    n = len((GOLDEN / "samples.jsonl").read_text().splitlines())
    assert lines == [
        f"probe: warning: {torn_run}/samples.jsonl: skipped 1 torn line(s) (line {n}); "
        "the cells they held count as not measured"
    ]
    assert says in proc.stdout


def test_torn_lines_stay_out_of_the_records(torn_run: Path) -> None:
    samples = read_samples(torn_run)
    n = len((GOLDEN / "samples.jsonl").read_text().splitlines())
    assert samples.torn_lines == (n,)
    assert len(samples.records) == n - 1


def test_appending_after_a_torn_tail_starts_a_new_line(torn_run: Path) -> None:
    from probe.model import CellStatus
    from probe.store.records import HostRecord
    from probe.store.rundir import RunStore

    store = RunStore.reopen(torn_run)
    store.append(HostRecord("eu1", CellStatus.OK))
    store.close()
    samples = read_samples(torn_run)
    assert len(samples.torn_lines) == 1  # the torn line stays torn; the new record is whole
    assert samples.records[-1] == HostRecord("eu1", CellStatus.OK)


# --- Hypothesis: parsers raise nothing but ProbeError ----------------------------------------

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "5ms", "1%", "10mbit", "198.18.9.1", "198.18.0.0/16", "r1-r2", "a>b"]),
    st.text(max_size=12),
)


def _tree(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.one_of(st.sampled_from(keys), st.text(max_size=6)), inner, max_size=5
            ),
        ),
        max_leaves=25,
    )


TOPO_KEYS = ["name", "prefix", "jump", "ssh", "port", "addressing", "mesh", "controller_link",
             "emulator", "gso", "timing", "rate_impl", "guard_us", "regions", "hosts", "address",
             "zone", "measure", "access", "up", "down", "links", "pairs", "default", "intra",
             "delay", "jitter", "jitter_dist", "loss", "rate", "queue", "reorder", "r1", "r2",
             "a", "b", "r1-r2", "a>b"]  # fmt: skip


def _valid_topology_doc() -> dict[str, Any]:
    return {
        "name": "fz",
        "prefix": "fz-",
        "jump": "a",
        "regions": {"r1": {"hosts": {"a": "198.18.9.1"}}, "r2": {"hosts": {"b": "198.18.10.1"}}},
        "links": {"default": {"delay": "5ms"}},
    }


@FUZZ
@given(st.one_of(_tree(TOPO_KEYS), st.builds(dict, st.just(_valid_topology_doc()))))
def test_fuzz_parse_topology(doc: object) -> None:
    with contextlib.suppress(ProbeError):
        parse_topology(yaml.safe_dump(doc), source="t.yaml")


@FUZZ
@given(
    st.sampled_from(sorted(_valid_topology_doc())),
    st.sampled_from(TOPO_KEYS),
    _tree(TOPO_KEYS),
)
def test_fuzz_parse_topology_near_valid(top: str, key: str, value: object) -> None:
    doc = _valid_topology_doc()
    doc[top] = value if key == top else {key: value}
    with contextlib.suppress(ProbeError):
        parse_topology(yaml.safe_dump(doc), source="t.yaml")


POLICY_KEYS = ["schema", "name", "checks", "kind", "decode", "prefill", "spec", "coverage",
               "max_loss", "model", "model_config", "dtype", "path", "regions", "stages",
               "tokens", "budget", "budget_per_hop", "at", "min_pairs_ok", "compute_per_stage",
               "proposer", "verifier_region", "accepted_tokens", "block", "ar_tokens_per_s",
               "min_regions", "min_ok", "max", "scope", "ring", "seq", "batch"]  # fmt: skip
YAMLISH = st.text(alphabet=st.sampled_from(list("ab1:-[]{},&*!|>'\"#%@`\n\t ?.<%sm")), max_size=80)


@FUZZ
@given(st.one_of(_tree(POLICY_KEYS).map(yaml.safe_dump), YAMLISH))
def test_fuzz_load_policy(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-policy.yaml"
    path.write_text(text)
    try:
        load_policy(path)
    except ProbeError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(
    st.one_of(st.text(max_size=200), _tree(["schema", "hosts", "pairs", "regions"]).map(json.dumps))
)
def test_fuzz_parse_anchors(text: str) -> None:
    with contextlib.suppress(ProbeError):
        parse_anchors(text)


def _near_valid_anchors() -> st.SearchStrategy[str]:
    base = json.loads((BAD / "anchors" / "schema-4.json").read_text())
    base["schema"] = "probe.anchors/1"
    paths = [("pairs", 0, k) for k in base["pairs"][0]] + [
        ("hosts", 0, k) for k in base["hosts"][0]
    ]

    def mutate(path: tuple[str, int, str], value: object) -> str:
        doc = json.loads(json.dumps(base))
        doc[path[0]][path[1]][path[2]] = value
        return json.dumps(doc)

    return st.builds(mutate, st.sampled_from(paths), _tree(["min", "p50", "forward"]))


@FUZZ
@given(_near_valid_anchors())
def test_fuzz_parse_anchors_near_valid(text: str) -> None:
    with contextlib.suppress(ProbeError):
        parse_anchors(text)


SAMPLE_KEYS = ["kind", "host", "src", "dst", "status", "reason", "probes", "sent", "received",
               "summary", "duplicates", "result", "receiver_bps", "retransmits", "mean_rtt_ms",
               "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_mdev_ms", "cpu_bound", "client",
               "server", "reverse", "argv", "fanout", "tools", "flavor", "errors"]  # fmt: skip
KINDS = st.sampled_from(["host", "ping", "ping_load", "ping_fanout", "iperf3", "iperf3_multi",
                         "future"])  # fmt: skip
STATUSES = st.sampled_from(["ok", "all-lost", "error", "nonsense"])
NAMES = st.sampled_from(["eu1", "us1", "nobody"])


def _record() -> st.SearchStrategy[dict[str, Any]]:
    """Records that look much like the real ones, with any field replaced or dropped."""
    probes = st.lists(st.one_of(st.tuples(st.integers(-2, 30), st.one_of(st.none(), SCALARS)),
                                SCALARS), max_size=5)  # fmt: skip
    whole_probes = st.lists(
        st.tuples(st.integers(1, 30), st.one_of(st.none(), st.floats(0, 500))), max_size=5
    )
    base = st.fixed_dictionaries(
        {"kind": KINDS, "host": NAMES, "src": NAMES, "dst": NAMES, "status": STATUSES,
         "client": NAMES, "server": NAMES, "reverse": st.one_of(st.booleans(), SCALARS)},
        optional={
            "reason": SCALARS,
            "sent": st.one_of(st.integers(-1, 30), SCALARS),
            "received": st.one_of(st.integers(-1, 30), SCALARS),
            "probes": st.one_of(whole_probes, probes, SCALARS),
            "duplicates": SCALARS,
            "summary": st.one_of(_tree(SAMPLE_KEYS), st.fixed_dictionaries(
                {k: st.one_of(st.floats(0, 500), SCALARS)
                 for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_mdev_ms")})),
            "result": st.one_of(_tree(SAMPLE_KEYS), st.fixed_dictionaries(
                {"receiver_bps": st.one_of(st.floats(0, 1e11), SCALARS),
                 "sender_bps": st.floats(0, 1e11), "cpu_bound": st.one_of(st.booleans(), SCALARS),
                 "reverse": st.booleans(), "streams": st.integers(1, 8),
                 "duration_s": st.floats(1, 60), "omit_s": st.floats(0, 5),
                 "bytes_received": st.integers(0, 2**40)},
                optional={"retransmits": st.one_of(st.integers(0, 99), SCALARS),
                          "mean_rtt_ms": st.one_of(st.floats(0, 500), SCALARS),
                          "version": st.one_of(st.text(max_size=6), SCALARS)})),
            "argv": st.one_of(st.lists(st.text(max_size=5), max_size=3), SCALARS),
            "tools": _tree(SAMPLE_KEYS),
            "flavor": st.one_of(st.sampled_from(["iputils", "busybox", "bsd"]), SCALARS),
            "errors": st.one_of(st.lists(st.text(max_size=5), max_size=2), SCALARS),
        },
    )  # fmt: skip
    return base


def _near_valid_record() -> st.SearchStrategy[str]:
    """A record of the golden run (one of each kind) with one key replaced or dropped."""
    golden = (GOLDEN / "samples.jsonl").read_text().splitlines()
    host, ping, iperf = (json.loads(golden[n - 1]) for n in (1, PING_LINE, IPERF_LINE))
    fanout = {"kind": "ping_fanout", "id": "f1", "src": "eu1", "argv": ["sh", "-c", "x"],
              "t": 1.0, "exit_status": 0, "elapsed_s": 4.5}  # fmt: skip
    bases = [host, ping, {**ping, "kind": "ping_load", "pinger": "eu1"}, iperf,
             {**iperf, "kind": "iperf3_multi"}, fanout]  # fmt: skip
    paths: list[tuple[int, tuple[str, ...]]] = [
        (i, (key,)) for i, base in enumerate(bases) for key in base
    ]
    paths += [(1, ("summary", key)) for key in ping["summary"]]
    paths += [(3, ("result", key)) for key in iperf["result"]]

    def mutate(where: tuple[int, tuple[str, ...]], value: object, drop: bool) -> str:
        i, keys = where
        doc = json.loads(json.dumps(bases[i]))
        parent = doc[keys[0]] if len(keys) == 2 else doc
        if drop:
            parent.pop(keys[-1])
        else:
            parent[keys[-1]] = value
        return json.dumps(doc)

    return st.builds(mutate, st.sampled_from(paths), _tree(SAMPLE_KEYS), st.booleans())


LINES = st.one_of(
    _near_valid_record(),
    _record().map(json.dumps),
    _tree(SAMPLE_KEYS).map(json.dumps),
    _record().map(lambda r: json.dumps(r)[: len(json.dumps(r)) // 2]),  # torn
    st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t),
)


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run = tmp_path_factory.mktemp("fuzz-run")
    shutil.copy(GOLDEN / "run.json", run / "run.json")
    yield run


@FUZZ
@given(st.lists(LINES, max_size=8))
def test_fuzz_samples_read_then_trusted(fuzz_run: Path, lines: list[str]) -> None:
    """read_samples raises only StoreError; what it accepts, the matrix and anchors can use."""
    (fuzz_run / "samples.jsonl").write_text("".join(line + "\n" for line in lines))
    try:
        samples = read_samples(fuzz_run)
    except StoreError as exc:
        assert "samples.jsonl:" in str(exc) and "\n" not in str(exc)
        return
    doc = read_run(fuzz_run)
    frame = build_matrix(doc, samples.records)
    to_anchors(doc, frame, rtt_samples(samples.records))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_run_json(fuzz_run: Path, data: bytes) -> None:
    run = fuzz_run / "r"
    run.mkdir(exist_ok=True)
    (run / "run.json").write_bytes(data)
    with contextlib.suppress(StoreError):
        read_run(run)


SSH_WORDS = ["Host", "Match", "HostName", "User", "Port", "IdentityFile", "ProxyJump", "Include",
             "host", "all", "exec", "originalhost", "*", "!", "%h", "%d", "%%", "~", "=", "\"",
             "a", "b,c", "22", "70000", "none", "#", "\t", " "]  # fmt: skip


@FUZZ
@given(
    st.lists(
        st.lists(st.one_of(st.sampled_from(SSH_WORDS), st.text(max_size=5)), max_size=5).map(
            " ".join
        ),
        max_size=8,
    ).map("\n".join),
    st.sampled_from(["a", "b", "x.y", "*"]),
)
def test_fuzz_ssh_config(text: str, alias: str) -> None:
    try:
        parse_ssh_config(text, source="cfg").lookup(alias)
    except ProbeError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(
    st.sampled_from(
        [units.parse_duration_ms, units.parse_rate_bps, units.parse_percent, units.parse_size_bytes]
    ),
    st.one_of(
        SCALARS,
        st.from_regex(r"\s*[0-9.]{0,6}\s*(us|µs|ms|s|%|mbit|Gbps|KiB|mb|x)?\s*", fullmatch=True),
    ),
)
def test_fuzz_units(parse: Callable[[object], float], value: object) -> None:
    with contextlib.suppress(InputError):
        assert parse(value) >= 0


def test_an_unknown_key_with_a_newline_is_named_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("? '\n\n  '\n: null\n", encoding="utf-8")
    with pytest.raises(ProbeError) as info:
        load_policy(path)
    assert "\n" not in str(info.value) and "unknown key" in str(info.value)
