"""``probe import``: measurements taken elsewhere → the records and run.json of a run directory.

Pure: every function reads text it is given and names what is wrong as ``FILE:LINE``; the CLI
reads the files and writes the directory the way ``probe run`` does.

- **A matrix** (``parse_matrix``): one RTT figure per ordered pair, from a square CSV (header and
  first column are host names; an empty cell, ``-`` or ``nan`` has no figure; the diagonal is
  ignored) or a long CSV or JSON list of objects with ``src``, ``dst``, an RTT column and
  optionally ``bw_*``, ``loss_pct``, ``src_region`` and ``dst_region``. Units are in the column
  names (``rtt_ms``, ``rtt_us``, ``rtt_s``; ``bw_mbps``, ``bw_gbps``, ``bw_kbps``, ``bw_bps``);
  a bare ``rtt`` column and a square matrix are in ``unit``. Each pair becomes an
  ``ImportedRecord``: one figure, no probes behind it.
- **Captures** (``parse_captures``): ping, fping ``-C`` and iperf3 ``-J`` outputs, read by probe's
  own parsers into ``ping`` and ``iperf3`` records exactly like a run's (every probe's RTT), their
  reason naming the file. A file says its pair by name (``SRC__DST.ping.txt``,
  ``SRC__DST.iperf3.json``: data flowed SRC→DST, ``SRC.fping.txt``: one ``-C`` line per target
  host) or by a line of ``manifest.csv`` (``file,src,dst,tool``; dst empty for fping).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from probe import __version__
from probe.errors import InputError, ParseError, require
from probe.model import CellStatus, CommandResult
from probe.store.records import (
    CellRecord,
    ImportedRecord,
    Iperf3Record,
    PingRecord,
    PingTrain,
)
from probe.store.rundoc import Imported, InventoryRef, RunDoc, RunHost, RunOptionsDoc
from probe.tools.fping import parse_fping
from probe.tools.iperf3 import IperfReportedError, iperf3_outcome, parse_iperf3, stall_reason
from probe.tools.ping import PingReport, parse_ping

#: Milliseconds per unit of an RTT figure (``--unit``, column suffixes).
RTT_UNITS = {"ms": 1.0, "us": 1e-3, "s": 1e3}
#: Mbit/s per unit of a goodput figure (column suffixes).
BW_UNITS = {"mbps": 1.0, "gbps": 1e3, "kbps": 1e-3, "bps": 1e-6}
#: The columns a long matrix may have (after ``columns`` renamed the source's).
_RTT = re.compile(r"^rtt(?:_(ms|us|s))?$")
_BW = re.compile(r"^bw_(mbps|gbps|kbps|bps)$")
_NO_FIGURE = frozenset({"", "-", "nan", "na", "n/a", "null", "none"})
TOOLS = ("ping", "fping", "iperf3")
_PAIR_FILE = re.compile(
    r"^(?P<src>[^/]+?)__(?P<dst>[^/]+?)\.(?P<tool>ping|iperf3)\.(?:txt|out|json)$"
)
_FPING_FILE = re.compile(r"^(?P<src>[^/_][^/]*?)\.fping\.(?:txt|out)$")
MANIFEST = "manifest.csv"


@dataclass(frozen=True, slots=True)
class MatrixOptions:
    """How to read a matrix: the unit of figures whose column names none (a square matrix, a
    bare ``rtt`` column), and probe's column names for the source's (``{"src": "from_region"}``)."""

    unit: str = "ms"
    columns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(self, "unit", self.unit in RTT_UNITS, f"one of {', '.join(RTT_UNITS)}")


@dataclass(frozen=True, slots=True)
class ImportedRun:
    """What an import found: the hosts (name → region, in first-seen order) and the records."""

    hosts: Mapping[str, str]
    records: tuple[CellRecord, ...]
    format: str
    count: int = 0  # the probes of the commonest ping train (0: no train)


# --- matrices --------------------------------------------------------------------------------


def parse_matrix(text: str, where: str, options: MatrixOptions | None = None) -> ImportedRun:
    """A square or long matrix (see the module); ``where`` is the file's name in messages."""
    unit, columns = (options or MatrixOptions()).unit, (options or MatrixOptions()).columns
    if text.lstrip().startswith("["):
        return _long(_json_rows(text, where), where, unit, columns, "long-json")
    rows = _csv_rows(text, where)
    header = next(rows, None)
    if header is None:
        raise InputError("empty matrix file", where=where)
    names = [_renamed(c, columns) for c in header[1]]
    if "src" in names and "dst" in names:
        return _long(_objects(names, rows, where), where, unit, {}, "long-csv")
    if columns:
        raise InputError("--columns names the columns of a long matrix (src, dst, …)", where=where)
    return _square(header, rows, where, RTT_UNITS[unit])


def _objects(
    names: list[str], rows: Iterator[tuple[int, list[str]]], where: str
) -> Iterator[tuple[int, dict[str, str]]]:
    for line, cells in rows:
        if len(cells) != len(names):
            raise InputError(
                f"{len(cells)} fields, the header has {len(names)}", where=f"{where}:{line}"
            )
        yield line, dict(zip(names, cells, strict=True))


def _renamed(column: str, columns: Mapping[str, str]) -> str:
    by_source = {source: name for name, source in columns.items()}
    return by_source.get(column.strip(), column.strip())


def _csv_rows(text: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each non-empty CSV row."""
    reader = csv.reader(io.StringIO(text))
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise ParseError(f"not CSV: {exc}", where=f"{where}:{reader.line_num}") from None


def _json_rows(text: str, where: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, object) of each element of a JSON list, values as text."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        line = text.count("\n", 0, pos) + 1
        if pos >= len(text):
            raise ParseError("JSON list not closed", where=f"{where}:{line}")
        if text[pos] == "]":
            if text[pos + 1 :].strip():
                raise ParseError("text after the JSON list", where=f"{where}:{line}")
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise ParseError(f"not JSON: {exc.args[0]}", where=f"{where}:{line}") from None
        if not isinstance(value, dict):
            raise ParseError("expected an object per pair", where=f"{where}:{line}")
        yield line, {str(k): "" if v is None else str(v) for k, v in value.items()}


def _long(
    rows: Iterator[tuple[int, dict[str, str]]],
    where: str,
    unit: str,
    columns: Mapping[str, str],
    fmt: str,
) -> ImportedRun:
    hosts: dict[str, str] = {}
    region_at: dict[str, int] = {}
    seen: dict[tuple[str, str], int] = {}
    records: list[CellRecord] = []
    for line, raw in rows:
        at = f"{where}:{line}"
        row = {_renamed(k, columns): v.strip() for k, v in raw.items() if k is not None}
        src, dst = row.get("src", ""), row.get("dst", "")
        if not src or not dst:
            raise InputError("a row without src or dst", where=at)
        if src == dst:
            raise InputError(f"{src} → {src}: a host to itself", where=at)
        if (src, dst) in seen:
            raise InputError(f"{src} → {dst} again (first on line {seen[src, dst]})", where=at)
        seen[src, dst] = line
        for host, key in ((src, "src_region"), (dst, "dst_region")):
            region = row.get(key) or None
            _label(hosts, region_at, host, region, line, at)
        records.append(_pair(row, src, dst, where, line, unit))
    if not records:
        raise InputError("no pairs in the matrix", where=where)
    return ImportedRun(hosts, tuple(records), fmt)


def _label(
    hosts: dict[str, str], at_line: dict[str, int], host: str, region: str | None, line: int,
    at: str,
) -> None:  # fmt: skip
    """Record ``host``'s region (``default`` until a row labels it); two labels are an error."""
    if region is None:
        hosts.setdefault(host, "default")
    elif host in at_line and hosts[host] != region:
        raise InputError(
            f"{host} is in region {hosts[host]!r} on line {at_line[host]}, {region!r} here",
            where=at,
        )
    else:
        hosts[host], at_line[host] = region, line


def _pair(
    row: Mapping[str, str], src: str, dst: str, where: str, line: int, unit: str
) -> ImportedRecord:
    at = f"{where}:{line}"
    rtt_keys = [k for k in row if _RTT.match(k)]
    if len(rtt_keys) != 1:
        raise InputError(
            "expected one RTT column (rtt_ms, rtt_us, rtt_s or rtt with --unit), "
            f"found {', '.join(rtt_keys) or 'none'}",
            where=at,
        )
    m = _RTT.match(rtt_keys[0])
    rtt = _figure(row[rtt_keys[0]], rtt_keys[0], at, RTT_UNITS[(m and m[1]) or unit])
    loss = _figure(row.get("loss_pct", ""), "loss_pct", at, 1.0)
    if loss is not None and loss > 100:
        raise InputError(f"loss_pct {loss:g} is over 100", where=at)
    bw_keys = [k for k in row if _BW.match(k)]
    if len(bw_keys) > 1:
        raise InputError(f"more than one bandwidth column: {', '.join(bw_keys)}", where=at)
    bw = None
    if bw_keys:
        m = _BW.match(bw_keys[0])
        bw = _figure(row[bw_keys[0]], bw_keys[0], at, BW_UNITS[m[1] if m else "mbps"])
    status = CellStatus.OK
    if rtt is None:
        if loss != 100:
            raise InputError(
                f"{src} → {dst}: no RTT (only a loss of 100 % may have none)", where=at
            )
        status = CellStatus.ALL_LOST
    return ImportedRecord(src, dst, status, where, line, rtt, loss, bw)


def _figure(text: str, column: str, at: str, scale: float) -> float | None:
    """A figure ≥ 0 in probe's unit, or None for an empty cell."""
    if text.strip().lower() in _NO_FIGURE:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{column}: not a number: {text!r}", where=at) from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{column}: {text} is not a figure ≥ 0", where=at)
    return value * scale


def _square(
    header: tuple[int, list[str]],
    rows: Iterator[tuple[int, list[str]]],
    where: str,
    scale: float,
) -> ImportedRun:
    names = [c.strip() for c in header[1][1:]]
    if not names or any(not n for n in names):
        raise InputError(
            "a square matrix's header names every host (or a long one has src and dst columns)",
            where=f"{where}:{header[0]}",
        )
    if len(set(names)) != len(names):
        twice = next(n for n, c in Counter(names).items() if c > 1)
        raise InputError(f"host {twice} names two columns", where=f"{where}:{header[0]}")
    records: list[CellRecord] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        at = f"{where}:{line}"
        src = cells[0].strip()
        if len(cells) != len(names) + 1:
            raise InputError(
                f"not square: {len(cells) - 1} figures, {len(names)} hosts in the header",
                where=at,
            )
        if src not in names:
            raise InputError(f"not square: row {src!r} is not a column of the header", where=at)
        if src in seen:
            raise InputError(f"{src}: a second row (first on line {seen[src]})", where=at)
        seen[src] = line
        for dst, cell in zip(names, cells[1:], strict=True):
            rtt = _figure(cell, f"{src} → {dst}", at, scale)
            if dst != src and rtt is not None:
                records.append(ImportedRecord(src, dst, CellStatus.OK, where, line, rtt))
    if missing := [n for n in names if n not in seen]:
        raise InputError(f"not square: no row for {', '.join(missing)}", where=where)
    return ImportedRun(dict.fromkeys(names, "default"), tuple(records), "square-csv")


# --- regions ---------------------------------------------------------------------------------


def with_regions(run: ImportedRun, text: str, where: str) -> ImportedRun:
    """``run`` with the regions of a ``host,region`` CSV (a ``host,region`` header is optional);
    a host the import does not have is an error at its line."""
    hosts = dict(run.hosts)
    seen: dict[str, int] = {}
    for line, cells in _csv_rows(text, where):
        at = f"{where}:{line}"
        host, region = (c.strip() for c in [*cells, "", ""][:2])
        if (host, region) == ("host", "region") and not seen:
            continue
        if len(cells) != 2 or not host or not region:
            raise InputError("expected host,region", where=at)
        if host not in hosts:
            raise InputError(f"unknown host {host!r}: not in the imported data", where=at)
        if host in seen:
            raise InputError(f"{host} again (first on line {seen[host]})", where=at)
        hosts[host], seen[host] = region, line
    return ImportedRun(hosts, run.records, run.format, run.count)


# --- captures --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capture:
    """One capture file and the pair it is for (``dst`` None: fping, one line per target)."""

    file: str
    src: str
    dst: str | None
    tool: str


def find_captures(
    names: Sequence[str], manifest: str | None, where: str = MANIFEST
) -> tuple[list[Capture], list[str]]:
    """The captures among the folder's file ``names`` (by their names, or the ``manifest.csv``
    text when there is one; ``where`` names it in messages) and the names left out."""
    if manifest is not None:
        found = list(_manifest(manifest, set(names), where))
        listed = {c.file for c in found} | {MANIFEST}
        return found, sorted(n for n in names if n not in listed)
    found, other = [], []
    for name in sorted(names):
        if m := _PAIR_FILE.match(name):
            found.append(Capture(name, m["src"], m["dst"], m["tool"]))
        elif m := _FPING_FILE.match(name):
            found.append(Capture(name, m["src"], None, "fping"))
        else:
            other.append(name)
    return found, other


def _manifest(text: str, names: set[str], where: str) -> Iterator[Capture]:
    for line, cells in _csv_rows(text, where):
        at = f"{where}:{line}"
        file, src, dst, tool = (c.strip() for c in [*cells, "", "", ""][:4])
        if (file, src, dst, tool) == ("file", "src", "dst", "tool"):
            continue
        if len(cells) != 4 or tool not in TOOLS or not src or (not dst) != (tool == "fping"):
            raise InputError(
                "expected file,src,dst,tool (tool ping, fping or iperf3; dst empty for fping)",
                where=at,
            )
        if file not in names:
            raise InputError(f"{file}: no such file in the folder", where=at)
        yield Capture(file, src, dst or None, tool)


def parse_captures(captures: Sequence[Capture], texts: Mapping[str, str]) -> ImportedRun:
    """The records of ``captures`` (``texts``: file → its text). A capture no parser can read is
    an error naming its file; one in which the tool reported a failure is that failed cell."""
    records: list[CellRecord] = []
    hosts: dict[str, str] = {}
    seen: dict[tuple[str, str, str], str] = {}
    for c in captures:
        text = texts[c.file]
        for rec in _capture(c, text):
            hosts.setdefault(rec.src, "default")
            hosts.setdefault(rec.dst, "default")
            key = (rec.kind, rec.src, rec.dst)
            if key in seen:
                raise InputError(
                    f"{rec.src} → {rec.dst}: {rec.kind} again (also {seen[key]})", where=c.file
                )
            seen[key] = c.file
            records.append(rec)
    if not records:
        raise InputError("no ping, fping or iperf3 capture found (see manifest.csv)")
    sent = Counter(r.train.sent for r in records if isinstance(r, PingRecord) and r.train)
    return ImportedRun(hosts, tuple(records), "captures", sent.most_common(1)[0][0] if sent else 0)


def _capture(c: Capture, text: str) -> Iterator[CellRecord]:
    reason = f"imported from {c.file}"
    if c.tool == "ping" and c.dst is not None:
        try:
            report = parse_ping(text)
        except ParseError as exc:
            raise ParseError(f"not ping output: {exc}", where=c.file) from None
        yield _ping_record(c.src, c.dst, report, reason, c.file)
    elif c.tool == "fping":
        run = parse_fping(text)
        if not run.reports:
            said = (run.errors or ("empty",))[0]
            raise ParseError(f"no fping -C result line ({said})", where=c.file)
        for target, report in run.reports.items():
            yield _ping_record(c.src, target, report, reason, c.file)
    elif c.dst is not None:
        yield _iperf3_record(c.src, c.dst, text, reason, c.file)


def _ping_record(src: str, dst: str, report: PingReport, reason: str, file: str) -> PingRecord:
    if src == dst:
        raise InputError(f"{src} → {src}: a host to itself", where=file)
    if report.sent == 0:
        raise ParseError("ping sent no probe", where=file)
    status = CellStatus.OK if report.received else CellStatus.ALL_LOST
    return PingRecord(
        src, dst, status, reason, train=PingTrain.from_report(report),
        address=report.destination or None,
    )  # fmt: skip


def _iperf3_record(src: str, dst: str, text: str, reason: str, file: str) -> Iperf3Record:
    """src → dst is the data's direction: with ``-R`` the client was dst."""
    if src == dst:
        raise InputError(f"{src} → {src}: a host to itself", where=file)
    try:
        result = parse_iperf3(text)
    except IperfReportedError:
        failed = iperf3_outcome(CommandResult((), 1, text, "", 0.0))
        status, why = failed if isinstance(failed, tuple) else (CellStatus.ERROR, reason)
        return Iperf3Record(src, dst, src, dst, False, status, f"{why} ({reason})")
    except ParseError as exc:
        raise ParseError(f"not iperf3 -J output: {exc}", where=file) from None
    client, server = (dst, src) if result.reverse else (src, dst)
    stalled = stall_reason(result)
    status = CellStatus.OK if stalled is None else CellStatus.STALLED
    why = reason if stalled is None else f"{stalled} ({reason})"
    return Iperf3Record(
        src, dst, client, server, result.reverse, status, why, result=result,
        test_s=result.duration_s,
    )  # fmt: skip


# --- the run ---------------------------------------------------------------------------------


def imported_run_doc(
    run: ImportedRun, *, run_id: str, source: str, sha256: str, now_utc: str
) -> RunDoc:
    """run.json of an import: the hosts as found (their name stands for their address), no
    bandwidth plan (the matrix says which pairs have a figure) and ``imported`` saying whence."""
    return RunDoc(
        run_id=run_id,
        probe_version=__version__,
        inventory=InventoryRef(source, sha256),
        started_utc=now_utc,
        ended_utc=now_utc,
        hosts=tuple(RunHost(name, name, region) for name, region in run.hosts.items()),
        options=RunOptionsDoc(count=run.count, bandwidth=False),  # count 0: no probes
        imported=Imported(source, run.format),
    )
