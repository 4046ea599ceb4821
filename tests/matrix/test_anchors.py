"""anchors.json: round trip, strict loading, lookups, region aggregation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from probe.errors import InputError, ParseError
from probe.matrix.anchors import (
    SCHEMA,
    dump_anchors,
    load_anchors,
    parse_anchors,
)
from probe.matrix.regions import roll_up
from probe.model import CellStatus
from tests.decide.fleet import make_anchors, pair


def _doc() -> dict[str, Any]:
    a = make_anchors({"us-east": 2, "eu-west": 1}, 75.0, samples=True)
    doc: dict[str, Any] = json.loads(dump_anchors(a))
    return doc


def test_round_trip_is_exact(tmp_path: Path) -> None:
    a = make_anchors({"us-east": 3, "eu-west": 2}, 75.0, samples=True)
    path = tmp_path / "anchors.json"
    path.write_text(dump_anchors(a))
    b = load_anchors(path)
    assert b == a
    assert dump_anchors(b) == dump_anchors(a)
    assert json.loads(dump_anchors(a))["schema"] == SCHEMA


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
    doc["schema"] = "probe.anchors/2"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as exc:
        load_anchors(path)
    msg = str(exc.value)
    assert str(path) in msg and "probe.anchors/2" in msg and "\n" not in msg


def test_minor_schema_version_is_accepted() -> None:
    doc = _doc()
    doc["schema"] = "probe.anchors/1.3"
    doc["future_key"] = {"ignored": True}
    assert parse_anchors(json.dumps(doc)).run_id == "synthetic"


@pytest.mark.parametrize(
    ("drop", "path"),
    [
        (lambda d: d["pairs"][1]["rtt_ms"].pop("p99"), "$.pairs[1].rtt_ms.p99"),
        (lambda d: d["hosts"][0].pop("region"), "$.hosts[0].region"),
        (lambda d: d["regions"][0]["bw_mbps"].pop("reverse"), "$.regions[0].bw_mbps.reverse"),
        (lambda d: d.pop("run_id"), "$.run_id"),
        (lambda d: d["pairs"][0].pop("rtt_samples_ms"), "$.pairs[0].rtt_samples_ms"),
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
