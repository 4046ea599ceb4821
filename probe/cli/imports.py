"""``probe import matrix | captures``: measurements taken elsewhere → a run directory.

The directory is the one ``probe run`` writes (run.json, samples.jsonl, matrix.csv/.parquet,
anchors.json; its folder's ``latest`` points at it), so show, calc, groups, gate and report read
it unchanged; run.json's ``imported`` and every cell's reason say where the figures came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import click

from probe.cli import EXIT_OK, main
from probe.cli.options import field_option
from probe.errors import InputError, StoreError
from probe.store.imports import RTT_UNITS, ImportedRun, MatrixOptions, imported_run_doc


def _warn(message: str) -> None:
    click.echo(f"probe: warning: {message}", err=True)


def _columns(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, str]:
    """``src=from_region,dst=to_region,…``: probe's column name = the file's."""
    out = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        name, sep, source = item.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=COLUMN, e.g. rtt_ms=avgrtt")
        out[name.strip()] = source.strip()
    return out


@main.group("import")
def import_group() -> None:
    """Build a run directory from measurements taken elsewhere (marked as imported)."""


_output = click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="The run directory to create (new, or empty).",
)
_regions = click.option(
    "--regions",
    "regions_file",
    type=click.Path(dir_okay=False),
    help="host,region CSV labelling the hosts (a region column of the matrix does too).",
)


@import_group.command("matrix")
@click.argument("file", type=click.Path(dir_okay=False))
@_output
@_regions
@field_option(
    "--unit",
    type=click.Choice(list(RTT_UNITS)),
    default_from=(MatrixOptions, "unit"),
    help="Unit of a square matrix's figures and of a bare 'rtt' column.",
)
@click.option(
    "--columns",
    callback=_columns,
    help="Rename a long matrix's columns: NAME=COLUMN,… (src, dst, rtt_ms, bw_mbps, loss_pct, "
    "src_region, dst_region).",
)
def import_matrix(
    file: str, out: str, regions_file: str | None, unit: str, columns: dict[str, str]
) -> int:
    """An RTT matrix (square CSV, or long CSV/JSON with src,dst,rtt_ms[,bw_mbps][,loss_pct])."""
    from probe.store.imports import parse_matrix
    from probe.textio import read_text

    text, data = read_text(file)
    run = parse_matrix(text, file, MatrixOptions(unit, columns))
    _write(Path(out), _labelled(run, regions_file), file, hashlib.sha256(data).hexdigest())
    return EXIT_OK


@import_group.command("captures")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@_output
@_regions
def import_captures(folder: str, out: str, regions_file: str | None) -> int:
    """ping, fping -C and iperf3 -J outputs named SRC__DST.ping.txt, SRC__DST.iperf3.json,
    SRC.fping.txt (or listed in DIR/manifest.csv: file,src,dst,tool)."""
    from probe.store.imports import MANIFEST, find_captures, parse_captures
    from probe.textio import read_text

    root = Path(folder)
    try:
        names = sorted(p.name for p in root.iterdir() if p.is_file())
    except OSError as exc:
        raise InputError(f"cannot list the folder ({exc.strerror or exc})", where=folder) from exc
    manifest = read_text(root / MANIFEST)[0] if MANIFEST in names else None
    captures, left_out = find_captures(names, manifest, str(root / MANIFEST))
    if left_out:
        _warn(f"{folder}: not a capture, left out: {', '.join(left_out)}")
    captures = [replace(c, file=str(root / c.file)) for c in captures]  # messages name paths
    digest = hashlib.sha256()
    texts = {}
    for c in captures:
        texts[c.file], data = read_text(c.file)
        digest.update(Path(c.file).name.encode() + b"\0" + data)
    run = parse_captures(captures, texts)
    _write(Path(out), _labelled(run, regions_file), folder, digest.hexdigest())
    return EXIT_OK


def _labelled(run: ImportedRun, regions_file: str | None) -> ImportedRun:
    if regions_file is None:
        return run
    from probe.store.imports import with_regions
    from probe.textio import read_text

    return with_regions(run, read_text(regions_file)[0], regions_file)


def _write(out: Path, run: ImportedRun, source: str, sha256: str) -> None:
    """The run directory, derived as ``probe run`` finishes one."""
    from probe.measure.execute import finish
    from probe.store.rundir import RunStore, utc_iso

    if out.exists() and any(out.iterdir()):
        raise StoreError(f"{out}: not empty (an import creates a new run directory)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{out}: cannot create ({exc.strerror or exc})") from exc
    store = RunStore(out.parent, out.name)
    doc = imported_run_doc(run, run_id=out.name, source=source, sha256=sha256, now_utc=utc_iso())
    store.write_run(doc)
    try:
        for rec in run.records:
            store.append(rec)
    finally:
        store.close()
    summary = finish(store, doc, bw_planned=0)
    click.echo(
        f"imported {len(run.records)} records of {len(run.hosts)} hosts from {source} "
        f"({run.format}): {summary.rtt_ok} of {summary.pairs} pairs with an RTT, "
        f"{summary.bw_ok} with bandwidth"
    )
    click.echo(str(out))
