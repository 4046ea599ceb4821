"""anchors.json: round trip, strict loading, lookups, region aggregation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from probe.decide.calc import calc
from probe.decide.options import CalcOptions
from probe.errors import InputError, ParseError
from probe.matrix.anchors import (
    SCHEMA,
    Anchors,
    dump_anchors,
    load_anchors,
    parse_anchors,
    write_anchors,
)
from probe.matrix.pairs import PairTable
from probe.matrix.regions import roll_up
from probe.matrix.samples import SIDECAR, SidecarSamples
from probe.model import CellStatus
from tests.decide.fleet import make_anchors, pair


def _doc() -> dict[str, Any]:
    a = make_anchors({"us-east": 2, "eu-west": 1}, 75.0, samples=True)
    doc: dict[str, Any] = json.loads(dump_anchors(a))
    return doc


def _samples(a: Anchors) -> dict[tuple[str, str], tuple[list[float], list[int] | None]]:
    out = {}
    for p in a.pairs:
        probes = a.rtt_samples(p)
        if probes is not None:
            seq = None if probes.seq is None else probes.seq.tolist()
            out[p.src, p.dst] = (probes.rtt_ms.tolist(), seq)
    return out


def test_round_trip_is_exact(tmp_path: Path) -> None:
    a = make_anchors({"us-east": 3, "eu-west": 2}, 75.0, samples=True)
    path = tmp_path / "anchors.json"
    write_anchors(path, a)
    b = load_anchors(path)
    assert b == a
    assert dump_anchors(b) == dump_anchors(a)
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA == "probe.anchors/2"
    assert doc["samples"] == {"file": SIDECAR, "format": "parquet", "pairs": 20, "rows": 100}
    assert all("rtt_samples_ms" not in p for p in doc["pairs"])
    assert _samples(b) == _samples(a) and len(_samples(a)) == 20
    lines = path.read_text().splitlines()  # one pair a line (json's C encoder, no indent)
    assert [json.loads(line.rstrip(",")) for line in lines if '"dst": ' in line] == doc["pairs"]


def test_the_sidecar_is_one_row_per_probe_sorted_for_any_engine(tmp_path: Path) -> None:
    """The documented columns, sorted by src then dst (a reader fetches one source's rows
    alone), read back here with plain pyarrow as DuckDB or Spark would."""
    import pyarrow.parquet as pq

    a = make_anchors({"us-east": 3, "eu-west": 2}, 75.0, samples=True)
    write_anchors(tmp_path / "anchors.json", a)
    table = pq.read_table(tmp_path / SIDECAR)
    assert table.column_names == ["src", "dst", "network", "seq", "rtt_ms"]
    rows = table.to_pylist()
    keys = [(r["src"], r["dst"]) for r in rows]
    assert keys == sorted(keys) and len(rows) == 100
    first = [r for r in rows if (r["src"], r["dst"]) == ("eu-west-0", "eu-west-1")]
    assert [r["seq"] for r in first] == [1, 2, 3, 4, 5]
    assert [r["rtt_ms"] for r in first] == [0.5 * x for x in (0.9, 1.0, 1.0, 1.1, 1.5)]


def test_a_sidecar_is_read_one_source_at_a_time(tmp_path: Path) -> None:
    a = make_anchors({"r": 40}, samples=True)  # 1,560 pairs × 5 rows: several row groups
    path = tmp_path / "anchors.json"
    write_anchors(path, a)
    b = load_anchors(path)
    assert isinstance(b.samples, SidecarSamples)
    pair = b.pair("r-7", "r-3")
    assert pair is not None
    probes = b.rtt_samples(pair)
    assert probes is not None and probes.rtt_ms.tolist() == [0.5 * x for x in (0.9, 1, 1, 1.1, 1.5)]
    assert list(b.samples._by_src) == ["r-7"]  # only that source was read
    assert _samples(b) == _samples(a)


V1 = Path(__file__).parents[1] / "fixtures" / "anchors" / "v1-inline-samples.json"


def test_a_v1_file_with_inline_samples_is_still_read() -> None:
    """probe.anchors/1 (written by probe before the sidecar) from the golden run: the same
    pairs and samples as anchors built from the run today."""
    from probe.matrix.build import build_matrix, rtt_samples, to_anchors
    from probe.store.rundir import read_run, read_samples

    old = load_anchors(V1)
    run_dir = Path(__file__).parents[1] / "fixtures" / "runs" / "20261123T090000Z"
    run, records = read_run(run_dir), read_samples(run_dir).records
    now = to_anchors(run, build_matrix(run, records), rtt_samples(records))
    assert json.loads(V1.read_text())["schema"] == "probe.anchors/1"
    assert old.pairs == now.pairs and old.regions == now.regions
    inline = _samples(old)
    assert len(inline) == 41
    assert inline == {k: (rtts, None) for k, (rtts, _) in _samples(now).items()}


def test_a_v1_pair_must_still_say_its_samples() -> None:
    doc = json.loads(V1.read_text())
    doc["pairs"][0].pop("rtt_samples_ms")
    with pytest.raises(InputError) as exc:
        parse_anchors(json.dumps(doc), file="x.json")
    assert str(exc.value) == "x.json: $.pairs[0].rtt_samples_ms: missing key"


def _written(tmp_path: Path) -> Path:
    path = tmp_path / "anchors.json"
    write_anchors(path, make_anchors({"r": 3}, samples=True))
    return path


def _monte_carlo(a: Anchors) -> object:
    options = CalcOptions(stages=3, scenarios=frozenset({"decode"}))
    return calc(a, options).decode


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.unlink(), "file not found (anchors.json points at it)"),
        (lambda p: p.write_bytes(b"PAR1 not really"), "not a Parquet file"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a Parquet file"),
    ],
)
def test_a_missing_or_corrupt_sidecar_is_one_line_naming_it(
    tmp_path: Path, damage: Callable[[Path], object], message: str
) -> None:
    path = _written(tmp_path)
    damage(tmp_path / SIDECAR)
    a = load_anchors(path)  # groups and gate never read the samples: loading still works
    assert a.pairs
    with pytest.raises(InputError) as exc:
        _monte_carlo(a)
    text = str(exc.value)
    assert text.startswith(f"{tmp_path / SIDECAR}: RTT samples sidecar: ") and message in text
    assert "\n" not in text


def test_a_sidecar_of_another_run_is_refused(tmp_path: Path) -> None:
    path = _written(tmp_path)
    doc = json.loads(path.read_text())
    doc["samples"]["rows"] = 7
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"30 rows, anchors\.json says 7"):
        _monte_carlo(load_anchors(path))


@pytest.mark.parametrize("name", ["../elsewhere.parquet", "/etc/passwd", ""])
def test_the_sidecar_must_sit_beside_the_file(tmp_path: Path, name: str) -> None:
    doc = json.loads(_written(tmp_path).read_text())
    doc["samples"]["file"] = name
    with pytest.raises(InputError, match=r"x.json: \$\.samples\.file: expected a file name"):
        parse_anchors(json.dumps(doc), file="x.json")


def test_monte_carlo_is_identical_from_either_layout(tmp_path: Path) -> None:
    """The same seed gives the same figures from a /1 file (samples inline) as from the /2
    file and sidecar written from it."""
    old = load_anchors(V1)
    write_anchors(tmp_path / "anchors.json", old)
    new = load_anchors(tmp_path / "anchors.json")
    assert isinstance(new.samples, SidecarSamples)
    options = CalcOptions(stages=3, scenarios=frozenset({"decode", "prefill"}))
    a, b = calc(old, options), calc(new, options)
    assert a.decode is not None and a.decode.tail is not None
    assert a == b


def test_round_trip_keeps_failed_cells_and_nulls() -> None:
    a = make_anchors({"r": 2})
    h0, h1 = a.hosts
    dead = pair(h0, h1, 1.0, status=CellStatus.TIMEOUT)
    lost = pair(h1, h0, 1.0, status=CellStatus.ALL_LOST)
    b = make_anchors({"r": 2}, overrides={("r-0", "r-1"): dead, ("r-1", "r-0"): lost})
    c = parse_anchors(dump_anchors(b))
    assert c == b
    assert c.pair("r-0", "r-1") == dead
    back = c.pair("r-1", "r-0")
    assert back is not None and back.loss_pct == 100.0
    assert c.measured_regions == ()


def test_newer_schema_major_is_one_clear_line(tmp_path: Path) -> None:
    doc = _doc()
    doc["schema"] = "probe.anchors/4"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as exc:
        load_anchors(path)
    msg = str(exc.value)
    assert str(path) in msg and "probe.anchors/4" in msg and "\n" not in msg


def test_minor_schema_version_is_accepted() -> None:
    doc = _doc()
    doc["schema"] = "probe.anchors/2.3"
    doc["future_key"] = {"ignored": True}
    assert parse_anchors(json.dumps(doc)).run_id == "synthetic"


@pytest.mark.parametrize(
    ("drop", "path"),
    [
        (lambda d: d["pairs"][1]["rtt_ms"].pop("p99"), "$.pairs[1].rtt_ms.p99"),
        (lambda d: d["hosts"][0].pop("region"), "$.hosts[0].region"),
        (lambda d: d["regions"][0]["bw_mbps"].pop("reverse"), "$.regions[0].bw_mbps.reverse"),
        (lambda d: d.pop("run_id"), "$.run_id"),
        (lambda d: d.pop("samples"), "$.samples"),
        (lambda d: d["samples"].pop("rows"), "$.samples.rows"),
    ],
)
def test_missing_key_names_the_json_path(drop: Callable[[Any], object], path: str) -> None:
    doc = _doc()
    drop(doc)
    with pytest.raises(InputError) as exc:
        parse_anchors(json.dumps(doc), file="x.json")
    assert str(exc.value) == f"x.json: {path}: missing key"


def test_wrong_types_and_values_are_refused() -> None:
    doc = _doc()
    doc["pairs"][0]["sent"] = "twenty"
    with pytest.raises(InputError, match=r"\$\.pairs\[0\]\.sent: expected an integer"):
        parse_anchors(json.dumps(doc))
    doc = _doc()
    doc["pairs"][0]["status"] = "fine"
    with pytest.raises(InputError, match="unknown status 'fine'"):
        parse_anchors(json.dumps(doc))
    doc = _doc()
    doc["pairs"][0]["rtt_ms"] = None
    with pytest.raises(InputError, match="status is ok but rtt_ms is null"):
        parse_anchors(json.dumps(doc))
    doc = _doc()
    doc["pairs"][0]["dst"] = "ghost"
    with pytest.raises(InputError, match="'ghost' is not listed"):
        parse_anchors(json.dumps(doc))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": NaN}', "x.json: $.schema: expected a string, got nan"),
        ('{"a": 1, "a": 2}', "x.json: duplicate key 'a' in one object"),
        ("[" + "1" * 5000 + "]", "x.json: not JSON probe reads: Exceeds the limit"),
    ],
)
def test_json_follows_the_input_rules(text: str, message: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_anchors(text, file="x.json")
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_must_be_finite(bad: str) -> None:
    doc = _doc()
    doc["pairs"][0]["rtt_ms"]["p50"] = 0.0
    text = json.dumps(doc).replace('"p50": 0.0', f'"p50": {bad}', 1)
    with pytest.raises(InputError, match=r"\$\.pairs\[0\]\.rtt_ms\.p50: expected a number"):
        parse_anchors(text)


def test_bad_json_names_file_and_line() -> None:
    with pytest.raises(ParseError, match=r"^a\.json:3: not JSON"):
        parse_anchors('{\n "schema": "probe.anchors/1",\n oops\n}', file="a.json")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read anchors"):
        load_anchors(tmp_path / "missing.json")


def test_lookups() -> None:
    a = make_anchors({"us-east": 2, "eu-west": 1}, 75.0)
    p = a.pair("us-east-0", "eu-west-0")
    assert p is not None and p.rtt is not None and p.rtt.p50_ms == 75.0
    assert a.pair("us-east-0", "nowhere") is None
    assert [h.name for h in a.hosts_in("us-east")] == ["us-east-0", "us-east-1"]
    assert a.host("eu-west-0").region == "eu-west"
    with pytest.raises(InputError):
        a.host("nowhere")
    assert a.measured_regions == ("eu-west", "us-east")
    row = a.region("us-east", "eu-west")
    assert row is not None and row.pairs == 2 and row.pairs_ok == 2


def test_region_rows_are_medians_and_pooled_loss() -> None:
    a = make_anchors({"a": 1, "b": 3})
    src = a.host("a-0")
    pairs = [
        pair(src, a.host("b-0"), 10.0, 100.0),
        pair(src, a.host("b-1"), 30.0, 300.0),
        pair(src, a.host("b-2"), 20.0, None),
    ]
    pairs[2] = pair(src, a.host("b-2"), 20.0, None, status=CellStatus.ALL_LOST)
    (row,) = roll_up(pairs)
    # ok pairs: p50 10 and 30 → median 20; p99 = 1.5 × p50 → median 30
    assert row.rtt is not None and row.rtt.p50_ms == 20.0 and row.rtt.p99_ms == 30.0
    assert (row.pairs, row.pairs_ok) == (3, 2)
    # 60 probes sent, 40 received → 33.3 % loss pooled
    assert row.loss_pct == pytest.approx(100 * 20 / 60)
    assert row.bw.forward_mbps == 200.0


def test_region_counts_round_trip_and_older_files_load_without_them() -> None:
    doc = _doc()
    region = doc["regions"][0]
    assert region["pairs_bw"] == {"forward": 2, "reverse": 2}
    assert (region["pairs_probed"], region["sent"], region["received"]) == (2, 40, 40)
    for key in ("pairs_probed", "pairs_ipdv", "pairs_bw", "sent", "received"):
        del region[key]  # as written before probe recorded them
    row = parse_anchors(json.dumps(doc)).regions[0]
    assert row.pairs_ok == 2 and row.loss_pct == 0.0
    assert (row.pairs_probed, row.pairs_ipdv, row.pairs_bw_forward, row.sent) == (None,) * 4
    doc["regions"][0]["sent"] = 4.5
    with pytest.raises(InputError, match=r"\$\.regions\[0\]\.sent: expected an integer"):
        parse_anchors(json.dumps(doc))


def test_congestion_controls_round_trip_and_say_each_hosts_own(tmp_path: Path) -> None:
    from dataclasses import replace

    from probe.decide.scenarios import Links

    a = make_anchors({"eu": 1, "ap": 1}, 240.0)
    plain = a.pair("eu-0", "ap-0")
    assert plain is not None
    eu_ap = replace(plain, sender_cc="bbr", receiver_cc="cubic")
    a = replace(a, pairs=PairTable.of(eu_ap if p.src == "eu-0" else p for p in a.pairs))
    doc = json.loads(dump_anchors(a))
    assert [(p.get("sender_cc"), p.get("receiver_cc")) for p in doc["pairs"]] == [
        ("bbr", "cubic") if p["src"] == "eu-0" else (None, None) for p in doc["pairs"]
    ]  # written only when known: older readers and files see no new key
    write_anchors(tmp_path / "anchors.json", a)
    b = load_anchors(tmp_path / "anchors.json")
    back = b.pair("ap-0", "eu-0")
    assert b.pair("eu-0", "ap-0") == eu_ap and back is not None and back.sender_cc is None
    links = Links.from_anchors(b)  # ap-0's is known only as the receiver of eu-0's test
    assert links.hop("eu-0", "ap-0").sender_cc == "bbr"
    assert links.hop("ap-0", "eu-0").sender_cc == "cubic"
