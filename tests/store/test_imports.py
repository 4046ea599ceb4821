"""``probe.store.imports``: matrices and captures taken elsewhere → records, file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import InputError
from probe.model import CellStatus
from probe.store.imports import (
    Capture,
    MatrixOptions,
    find_captures,
    imported_run_doc,
    parse_captures,
    parse_matrix,
    with_regions,
)
from probe.store.records import (
    ImportedRecord,
    Iperf3Record,
    PingRecord,
    decode_record,
    encode_record,
)
from probe.store.rundoc import Imported, decode_run, encode_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DOIT = FIXTURES / "matrices" / "doit" / "results_subset.csv"
DOIT_COLUMNS = {
    "src": "from_region",
    "dst": "to_region",
    "rtt_ms": "avgrtt",
    "src_region": "from_cloud",
    "dst_region": "to_cloud",
}


def imported(records: object) -> dict[tuple[str, str], ImportedRecord]:
    assert isinstance(records, tuple)
    return {(r.src, r.dst): r for r in records if isinstance(r, ImportedRecord)}


def test_square_csv_in_microseconds() -> None:
    text = "host,a,b,c\na,0,1500,2500\nb,1400,,-\nc,2600,3000,0\n"
    run = parse_matrix(text, "m.csv", MatrixOptions(unit="us"))
    assert run.format == "square-csv" and list(run.hosts) == ["a", "b", "c"]
    cells = imported(run.records)
    assert set(cells) == {("a", "b"), ("a", "c"), ("b", "a"), ("c", "a"), ("c", "b")}
    assert cells["a", "b"].rtt_ms == pytest.approx(1.5)
    assert (cells["c", "b"].source, cells["c", "b"].line) == ("m.csv", 4)


def test_long_csv_units_in_column_names() -> None:
    text = "src,dst,rtt_s,bw_gbps,loss_pct\na,b,0.012,2.5,0.5\nb,a,0.013,,\nb,c,,,100\n"
    cells = imported(parse_matrix(text, "l.csv").records)
    assert cells["a", "b"].rtt_ms == pytest.approx(12.0)
    assert cells["a", "b"].bw_mbps == pytest.approx(2500.0)
    assert cells["a", "b"].loss_pct == 0.5
    assert cells["b", "a"].bw_mbps is None and cells["b", "a"].loss_pct is None
    assert cells["b", "c"].status is CellStatus.ALL_LOST and cells["b", "c"].rtt_ms is None


def test_bare_rtt_column_takes_the_unit() -> None:
    cells = imported(parse_matrix("src,dst,rtt\na,b,2\n", "l.csv", MatrixOptions(unit="s")).records)
    assert cells["a", "b"].rtt_ms == 2000.0


def test_long_json_with_regions_as_columns() -> None:
    text = """[
 {"src": "a", "dst": "b", "rtt_ms": 10, "src_region": "eu", "dst_region": "us"},
 {"src": "b", "dst": "a", "rtt_ms": 11.5, "bw_mbps": 900}
]"""
    run = parse_matrix(text, "m.json")
    assert run.format == "long-json" and dict(run.hosts) == {"a": "eu", "b": "us"}
    cells = imported(run.records)
    assert cells["b", "a"].line == 3 and cells["b", "a"].bw_mbps == 900.0


def test_real_doit_matrix_with_renamed_columns() -> None:
    """45-region cloud measurements (doitintl/intercloud-throughput): 8 regions' 56 pairs."""
    run = parse_matrix(DOIT.read_text(), str(DOIT), MatrixOptions(columns=DOIT_COLUMNS))
    cells = imported(run.records)
    assert len(cells) == 56 and len(run.hosts) == 8
    assert run.hosts["eu-west-1"] == "AWS" and run.hosts["europe-west3"] == "GCP"
    assert cells["eu-west-1", "eu-central-1"].rtt_ms == 23.541  # the file's second line
    assert cells["eu-west-1", "eu-central-1"].line == 2


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("host,a,b\na,0,1\nb,1\n", "m.csv:3", "not square"),
        ("host,a,b\na,0,1\nc,1,0\n", "m.csv:3", "not square"),
        ("host,a,b\na,0,1\n", "m.csv", "no row for b"),
        ("host,a,b\na,0,-3\nb,1,0\n", "m.csv:2", "not a figure ≥ 0"),
        ("src,dst,rtt_ms\na,b,-1\n", "m.csv:2", "not a figure ≥ 0"),
        ("src,dst,rtt_ms\na,b,1\nb,a,2\na,b,3\n", "m.csv:4", "again (first on line 2)"),
        ("src,dst,rtt_ms\na,b,fast\n", "m.csv:2", "not a number"),
        ("src,dst,rtt_ms\na,a,1\n", "m.csv:2", "a host to itself"),
        ("src,dst,rtt_ms\na,b,\n", "m.csv:2", "no RTT"),
        ("src,dst,rtt_ms,rtt_us\na,b,1,2\n", "m.csv:2", "one RTT column"),
        ("src,dst,rtt_ms,loss_pct\na,b,1,120\n", "m.csv:2", "over 100"),
        ("src,dst,rtt_ms\na,b,1,2\n", "m.csv:2", "4 fields, the header has 3"),
        (
            "src,dst,rtt_ms,src_region\na,b,1,eu\na,c,1,us\n",
            "m.csv:3",
            "'eu' on line 2, 'us' here",
        ),
        ('[\n {"src": "a", "dst": "b", "rtt_ms": 1},\n {"src": "a", "dst": "b"', "m.csv:3", "JSON"),
    ],
)
def test_bad_matrix_is_one_line_naming_file_and_line(text: str, where: str, says: str) -> None:
    with pytest.raises(InputError) as err:
        parse_matrix(text, "m.csv")
    message = str(err.value)
    assert message.startswith(f"{where}: ") and says in message and "\n" not in message


def test_an_unknown_unit_is_refused() -> None:
    with pytest.raises(InputError, match="unit must be one of ms, us, s, not 'min'"):
        MatrixOptions(unit="min")


def test_regions_file_labels_hosts_and_refuses_unknown_ones() -> None:
    run = parse_matrix("src,dst,rtt_ms\na,b,1\nb,a,1\n", "m.csv")
    labelled = with_regions(run, "host,region\na,eu\nb,us\n", "r.csv")
    assert dict(labelled.hosts) == {"a": "eu", "b": "us"}
    with pytest.raises(InputError, match=r"^r\.csv:3: unknown host 'c'"):
        with_regions(run, "host,region\na,eu\nc,us\n", "r.csv")
    with pytest.raises(InputError, match=r"^r\.csv:2: a again \(first on line 1\)"):
        with_regions(run, "a,eu\na,us\n", "r.csv")


def test_imported_record_round_trips_through_samples_jsonl() -> None:
    rec = ImportedRecord("a", "b", CellStatus.OK, "m.csv", 7, 12.5, None, 940.0)
    assert decode_record(encode_record(rec), "samples.jsonl:1") == rec


def test_run_json_says_imported_and_reads_back_equal() -> None:
    run = parse_matrix("src,dst,rtt_ms\na,b,1\n", "m.csv")
    doc = imported_run_doc(run, run_id="r", source="m.csv", sha256="0" * 64, now_utc="T")
    assert doc.imported == Imported("m.csv", "long-csv")
    assert [h.name for h in doc.hosts] == ["a", "b"] and not doc.options.bandwidth
    assert decode_run(encode_run(doc), "run.json") == doc


# --- captures --------------------------------------------------------------------------------

PING = FIXTURES / "ping" / "local" / "debian-iputils-20221126__ping-ip-i0.01-w5.out"
BUSYBOX = FIXTURES / "ping" / "local" / "debian-busybox-1.35__ping-ip-i0.2.out"
FPING = FIXTURES / "fping" / "upstream" / "fping_C5_q_with_loss_manpage.stderr.txt"
IPERF = FIXTURES / "iperf3" / "loopback" / "iperf3.12_tcp_forward_t2_O1.json"
IPERF_R = FIXTURES / "iperf3" / "loopback" / "iperf3.12_tcp_reverse_R_t2_O1.json"
IPERF_REFUSED = FIXTURES / "iperf3" / "loopback" / "iperf3.12_error_connection_refused.json"


def test_captures_found_by_their_names() -> None:
    names = ["a__b.ping.txt", "a.fping.txt", "b__a.iperf3.json", "notes.md"]
    found, left_out = find_captures(names, None)
    assert found == [
        Capture("a.fping.txt", "a", None, "fping"),
        Capture("a__b.ping.txt", "a", "b", "ping"),
        Capture("b__a.iperf3.json", "b", "a", "iperf3"),
    ]
    assert left_out == ["notes.md"]


def test_captures_listed_in_a_manifest() -> None:
    manifest = "file,src,dst,tool\nx.out,a,b,ping\ny.txt,c,,fping\n"
    found, left_out = find_captures(["manifest.csv", "x.out", "y.txt", "z"], manifest)
    assert found == [Capture("x.out", "a", "b", "ping"), Capture("y.txt", "c", None, "fping")]
    assert left_out == ["z"]
    with pytest.raises(InputError, match=r"^manifest\.csv:1: expected file,src,dst,tool"):
        find_captures(["x.out"], "x.out,a,b,traceroute\n")
    with pytest.raises(InputError, match=r"^manifest\.csv:1: nope: no such file"):
        find_captures(["x.out"], "nope,a,b,ping\n")


def test_captures_parse_like_probe_s_own_records() -> None:
    captures = [
        Capture("a__b.ping.txt", "a", "b", "ping"),
        Capture("b__a.ping.txt", "b", "a", "ping"),
        Capture("a.fping.txt", "a", None, "fping"),
        Capture("a__b.iperf3.json", "a", "b", "iperf3"),
        Capture("b__a.iperf3.json", "b", "a", "iperf3"),
        Capture("c__a.iperf3.json", "c", "a", "iperf3"),
    ]
    texts = {
        "a__b.ping.txt": PING.read_text(),
        "b__a.ping.txt": BUSYBOX.read_text(),
        "a.fping.txt": FPING.read_text(),
        "a__b.iperf3.json": IPERF.read_text(),
        "b__a.iperf3.json": IPERF_R.read_text(),
        "c__a.iperf3.json": IPERF_REFUSED.read_text(),
    }
    run = parse_captures(captures, texts)
    assert run.format == "captures" and set(run.hosts) == {"a", "b", "somehost", "c"}
    assert run.count == 10  # the commonest train
    pings = {(r.src, r.dst): r for r in run.records if isinstance(r, PingRecord)}
    ab = pings["a", "b"]
    assert ab.status is CellStatus.OK and ab.reason == "imported from a__b.ping.txt"
    assert ab.train is not None and ab.train.sent == 10 and len(ab.train.probes) == 10
    fping = pings["a", "somehost"].train
    assert fping is not None and fping.flavor == "fping"
    assert [rtt for _, rtt in fping.probes] == [91.7, 37.0, 29.2, None, 36.8]
    tests = {(r.src, r.dst): r for r in run.records if isinstance(r, Iperf3Record)}
    forward, reverse = tests["a", "b"], tests["b", "a"]
    assert (forward.client, forward.server, forward.reverse) == ("a", "b", False)
    assert (reverse.client, reverse.server, reverse.reverse) == ("a", "b", True)  # -R: dst ran it
    assert forward.result is not None and forward.status is CellStatus.OK
    refused = tests["c", "a"]
    assert refused.status is CellStatus.ERROR and refused.result is None
    assert refused.reason is not None and "c__a.iperf3.json" in refused.reason


@pytest.mark.parametrize(
    ("capture", "text", "says"),
    [
        (Capture("x.ping.txt", "a", "b", "ping"), "PING 10.0.0.2\n", "not ping output"),
        (Capture("x.fping.txt", "a", None, "fping"), "garbage\n", "no fping -C result line"),
        (Capture("x.json", "a", "b", "iperf3"), '{"start": {', "not iperf3 -J output"),
    ],
)
def test_unparseable_capture_names_its_file(capture: Capture, text: str, says: str) -> None:
    with pytest.raises(InputError) as err:
        parse_captures([capture], {capture.file: text})
    assert str(err.value).startswith(f"{capture.file}: ") and says in str(err.value)


def test_a_pair_captured_twice_is_an_error() -> None:
    captures = [Capture("1.txt", "a", "b", "ping"), Capture("2.txt", "a", "b", "ping")]
    with pytest.raises(InputError, match=r"^2\.txt: a → b: ping again \(also 1\.txt\)"):
        parse_captures(captures, dict.fromkeys(["1.txt", "2.txt"], PING.read_text()))
