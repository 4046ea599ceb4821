"""``probe report``: one run directory → ``report.md`` and ``report.html`` beside its samples.

``build_report`` gathers everything the renderers print (pure but for reading the run and the
optional policy); ``markdown.render`` and ``html.render`` turn it into text; ``write_report``
writes both files atomically. Everything is rebuilt from ``samples.jsonl``, the source of truth,
so a report can be regenerated offline at any time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from probe.errors import ProbeError
from probe.matrix.build import host_order, implied_pairs, networks_of, preferred, with_implied
from probe.matrix.implied import implied_of
from probe.matrix.regions import Spread, figure, p50_spreads
from probe.matrix.stored import kept_samples, read_matrix
from probe.matrix.unmeasured import unmeasured
from probe.model import CellStatus
from probe.report.confidence import confidence_notes
from probe.report.hints import Hint, diagnose
from probe.store.rundir import read_run, torn_warning
from probe.store.rundoc import Imported, RunDoc
from probe.textio import save

if TYPE_CHECKING:
    from probe.decide.fitness import HostFitness, PipelineFitness
    from probe.decide.gate import GateReport
    from probe.matrix.anchors import Anchors, RegionAnchor
    from probe.report.rehearsals import RehearsalSummary

EXAMPLES = 3  # example cells quoted per failure group


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Cells of one test that failed with the same status and reason."""

    test: Literal["ping", "bandwidth"]
    status: str
    reason: str
    cells: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Coverage:
    hosts: int
    down: tuple[tuple[str, str], ...]  # (host, "status: reason") of hosts that never came up
    regions: tuple[tuple[str, int], ...]  # (region, hosts) in report order
    pairs: int  # ordered pairs of measured hosts
    ping_ok: int
    ping_all_lost: int
    bw_ok: int
    ping_not_planned: int  # left out by a sampled ping plan: not failures
    # the hosts share no network or neither accepts the test (probe.reach): not failures either
    ping_not_measurable: int
    bw_not_measurable: int
    failures: tuple[FailureGroup, ...]
    started_utc: str
    ended_utc: str
    duration_s: float | None
    phases: tuple[tuple[str, float], ...]
    complete: bool  # every cell the run meant to measure has a record (ok or a reason)
    interrupted: bool
    torn_lines: int
    incomplete: str | None  # the "incomplete: N of M … cells not measured" line, if it is
    imported: Imported | None = None  # figures taken elsewhere (probe import), not measured


@dataclass(frozen=True, slots=True)
class Headline:
    """The calculator's headline figure and the caveats of what it rests on (a stalled test):
    printed with it, never dropped."""

    text: str
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    run_id: str
    probe_version: str
    frame: pd.DataFrame
    order: tuple[str, ...]
    regions: Mapping[str, str]  # host → region
    coverage: Coverage
    rollup: tuple[RegionAnchor, ...]  # the anchors' region rows, in report order
    hints: tuple[Hint, ...]
    headline: Headline
    gate: GateReport | None = None
    networks: tuple[tuple[str, ...], ...] = ()  # network_rows: () for a one-network run
    spreads: Mapping[tuple[str, str], Spread] = field(default_factory=dict)  # region pair → p50s
    confidence: tuple[str, ...] = ()  # ``confidence_notes``: figures resting on too little
    fitness: PipelineFitness | None = None  # which hosts can serve a stage; the best orders
    rehearsals: tuple[RehearsalSummary, ...] = ()  # the run's ``probe rehearse``, newest first
    implied: bool = False  # a sampled plan: a cell without a row reads not-planned (grids)


def _seconds(start: str, end: str) -> float | None:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (b - a).total_seconds()


def _failures(
    frame: pd.DataFrame, test: Literal["ping", "bandwidth"], run: RunDoc | None = None
) -> list[FailureGroup]:
    """Cells without a measurement by status and reason; ``run``'s implied pairs (it is the
    frame's) join their group, as their rows would."""
    status, reason = ("status", "reason") if test == "ping" else ("bw_status", "bw_reason")
    done = [CellStatus.OK.value] + ([CellStatus.ALL_LOST.value] if test == "bandwidth" else [])
    bad = frame[~frame[status].isin(done)]
    extra: dict[tuple[str, str], list[tuple[int, int]]] = {}
    if run is not None and (implied := implied_of(run)) is not None:
        src, dst = implied_pairs(frame, run)
        left_out = implied.reason if test == "ping" else implied.bw_reason
        extra[CellStatus.NOT_PLANNED.value, left_out] = list(
            zip(src.tolist(), dst.tolist(), strict=True)
        )
    rank = {h.name: i for i, h in enumerate(run.measured_hosts)} if run is not None else {}
    names = [h.name for h in run.measured_hosts] if run is not None else []
    groups = []
    keys = bad.assign(_r=bad[reason].fillna("-").astype(str)).groupby([status, "_r"], sort=False)
    for (st, why), cells in keys:
        first = cells.head(EXAMPLES)  # only the first few are quoted
        pairs = list(zip(first["src"], first["dst"], strict=True))
        count, more = len(cells), extra.pop((str(st), str(why)), [])
        if more:  # the first pairs in host order, of the rows and the implied ones
            pairs = sorted([*pairs[:EXAMPLES], *((names[i], names[j]) for i, j in more[:EXAMPLES])],
                           key=lambda p: (rank[p[0]], rank[p[1]]))  # fmt: skip
            count += len(more)
        examples = tuple(f"{s}→{d}" for s, d in pairs[:EXAMPLES])
        groups.append(FailureGroup(test, str(st), str(why), count, examples))
    for (st, why), more in extra.items():
        if more:
            examples = tuple(f"{names[i]}→{names[j]}" for i, j in more[:EXAMPLES])
            groups.append(FailureGroup(test, st, why, len(more), examples))
    return sorted(groups, key=lambda g: (-g.cells, g.status, g.reason))


def coverage(run: RunDoc, frame: pd.DataFrame, torn_lines: int = 0) -> Coverage:
    """``frame``: each pair's preferred row; ``run``'s implied pairs are counted in."""
    hosts = run.measured_hosts
    implied = len(implied_pairs(frame, run)[0])
    missing = unmeasured(run, frame)
    down = tuple(
        (h.name, f"{c.status}: {c.reason or '-'}")
        for h in hosts
        if (c := h.connection) is not None and c.status is not CellStatus.OK
    )
    regions: dict[str, int] = {}
    for name in host_order(run):
        region = next(h.region for h in hosts if h.name == name)
        regions[region] = regions.get(region, 0) + 1
    start, end = run.started_utc, run.ended_utc or ""
    return Coverage(
        hosts=len(hosts),
        down=down,
        regions=tuple(regions.items()),
        pairs=len(frame) + implied,
        ping_ok=int((frame["status"] == CellStatus.OK.value).sum()),
        ping_all_lost=int((frame["status"] == CellStatus.ALL_LOST.value).sum()),
        bw_ok=int((frame["bw_status"] == CellStatus.OK.value).sum()),
        ping_not_planned=int((frame["status"] == CellStatus.NOT_PLANNED.value).sum()) + implied,
        ping_not_measurable=int((frame["status"] == CellStatus.NOT_MEASURABLE.value).sum()),
        bw_not_measurable=int((frame["bw_status"] == CellStatus.NOT_MEASURABLE.value).sum()),
        failures=tuple(_failures(frame, "ping", run) + _failures(frame, "bandwidth", run)),
        started_utc=start,
        ended_utc=end,
        duration_s=_seconds(start, end) if start and end else None,
        phases=tuple(run.phases.items()) if run.phases else (),
        complete=not missing.incomplete,
        interrupted=run.interrupted,
        torn_lines=torn_lines,
        incomplete=missing.notice(run.run_id, run.inventory.path),
        imported=run.imported,
    )


def rollup(
    rows: Sequence[RegionAnchor], order: Sequence[str], regions: Mapping[str, str]
) -> tuple[RegionAnchor, ...]:
    """The region rows in report order: regions as their hosts first appear in ``order``."""
    rank = {r: i for i, r in enumerate(dict.fromkeys(regions[h] for h in order))}
    return tuple(sorted(rows, key=lambda r: (rank[r.src_region], rank[r.dst_region])))


#: The region table of the report (Markdown and HTML alike).
ROLLUP_HEADERS = ("regions", "ping ok", "RTT p50 ms", "pair p50s ms", "RTT p99 ms", "IPDV ms",
                  "loss %", "bw ok", "bw Mbit/s")  # fmt: skip


#: Where a fleet too large for per-host labels or grids keeps its cells (Markdown and HTML).
CELLS_ELSEWHERE = (
    "every pair's figures are in matrix.csv and matrix.parquet in the run directory "
    "(or `probe export RUN --format prometheus`)"
)


NETWORK_HEADERS = ("network", "pairs", "ping ok", "RTT p50 ms", "bw ok", "bw Mbit/s")
NETWORKS_NOTE = (
    "Each pair measured over every network both hosts are on; the grids, region rows and "
    "calculator use each pair's preferred network (the first in the inventory's order)."
)


def network_rows(frame: pd.DataFrame) -> tuple[tuple[str, ...], ...]:
    """Per network of a run measured over several (``--networks all``): its pairs, how many
    answered and the medians over those of RTT p50 and goodput (cells of ``NETWORK_HEADERS``);
    () when the run has one network (the grids and the region table say it all)."""
    if not several_networks(frame):
        return ()
    rows = []
    for name in networks_of(frame):
        part = frame[frame["network"] == name]
        ok = part[part["status"] == CellStatus.OK.value]
        bw_ok = part[part["bw_status"] == CellStatus.OK.value]
        rows.append((
            name, str(len(part)), str(len(ok)), fmt(_median(ok["rtt_p50_ms"])),
            str(len(bw_ok)), fmt(_median(bw_ok["bw_fwd_mbps"]), 0),
        ))  # fmt: skip
    return tuple(rows)


def several_networks(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` has rows of more than one network (``networks_of`` names them, in a
    Python pass over every row: this is a hashed count)."""
    return int(frame["network"].nunique()) > 1


def _median(values: pd.Series) -> float | None:
    return float(values.median()) if values.notna().any() else None


def rollup_cells(row: RegionAnchor, spread: Spread | None = None) -> list[str]:
    """One region row as the cells of ``ROLLUP_HEADERS``; ``spread``: of its pairs' p50s."""

    def value(metric: str, digits: int) -> str:
        return fmt(figure(metric).value(row), digits)

    return [
        f"{row.src_region} → {row.dst_region}", f"{row.pairs_ok}/{row.pairs}",
        value("rtt_p50_ms", 2), spread_cell(spread), value("rtt_p99_ms", 2), value("ipdv_ms", 3),
        value("loss_pct", 1), f"{fmt(row.pairs_bw_forward, 0)}/{row.pairs}", value("bw_mbps", 0),
    ]  # fmt: skip


def spread_cell(spread: Spread | None) -> str:
    """``0.45–16.3 multi-modal``: the range of a region pair's pair p50s, and its flag."""
    if spread is None:
        return "–"
    text = f"{fmt(spread.low_ms)}–{fmt(spread.high_ms)}"
    return text + " multi-modal" if spread.multimodal else text


def headline(anchors: Anchors, hosts_up: int, hosts: Sequence[HostFitness] = ()) -> Headline:
    """The calculator's figure for its default scenario (``PipelineOptions()``, the defaults of
    ``probe calc``): decode and prefill on auto-placed stages, with the caveats of its hops.

    Unfit ``hosts`` (``decide.fitness``) are left out of the placement; only when the others
    cannot make the stages is one placed, and then it is named with its reason, as is a placed
    host to use with caution. Expected gaps
    (too few measured hosts, an unmeasured hop) become a sentence, not an error.
    """
    from probe.decide.fitness import among
    from probe.decide.options import PipelineOptions
    from probe.decide.scenarios import Links, Workload, decode, place, prefill

    p = PipelineOptions()
    stages = min(p.stages, hosts_up)
    if stages < 2:
        return Headline("no calculator headline: fewer than two hosts were measured")
    w = Workload.of(p)
    try:
        links = Links.from_anchors(anchors)
        payload, unfit = w.activation_bytes(1, 1), {h.host for h in hosts if h.fitness == "unfit"}
        try:
            fit = among(anchors, [h.name for h in anchors.hosts if h.name not in unfit])
            path = place(Links.from_anchors(fit), stages, payload, p.ring).path
        except ProbeError:  # too few fit hosts, or none joined: use the unfit ones, named
            path = place(links, stages, payload, p.ring).path
        hops = links.hops(path, p.ring)
        dec, pre = decode(hops, w), prefill(hops, w)
    except ProbeError as exc:
        return Headline(f"no calculator headline for {p.model} in {stages} stages: {exc}")
    tok, total = dec.per_step, dec.total
    caveats = tuple(dict.fromkeys((*total.caveats, *pre.total.caveats)))
    tail = f", Monte-Carlo p99 {dec.tail.p99_ms / 1e3:.2f} s" if dec.tail else ""
    unknown = "some goodput unmeasured" + (" or stalled, see the caveats" if caveats else "")
    bound = f" (lower bound: {unknown})" if total.lower_bound else ""
    return Headline(
        f"{p.model} {p.dtype} in {stages} pipeline stages, auto-placed on "
        f"{' → '.join(dec.path)}: decode {tok.network_p50_ms:.2f} ms/token at RTT p50 "
        f"({tok.network_p99_ms:.2f} at p99); {p.tokens} tokens "
        f"{total.network_p50_ms / 1e3:.2f} s at p50, {total.network_p99_ms / 1e3:.2f} s at p99"
        f"{tail}; prefill of one {p.seq}-token prompt {pre.total.network_p50_ms:.1f} ms "
        f"at p50. Network only, no compute{bound}.{_fitness_sentence(dec.path, hosts)}",
        caveats,
    )


def _fitness_sentence(path: Sequence[str], hosts: Sequence[HostFitness]) -> str:
    """The unfit hosts the placement left out; any unfit or caution host it placed, and why."""
    left = [f"{h.host} ({', '.join(h.flags)})" for h in hosts
            if h.fitness == "unfit" and h.host not in path]  # fmt: skip
    out = f" Left out as unfit for a stage: {', '.join(left)}." if left else ""
    for verdict, words in (("unfit", "Placed for want of fit hosts, though unfit"),
                           ("caution", "Placed with caution")):  # fmt: skip
        if used := [f"{h.host} ({h.reason})" for h in hosts
                    if h.fitness == verdict and h.host in path]:  # fmt: skip
            out += f" {words}: {'; '.join(used)}."
    return out


def build_report(
    run_dir: Path, policy_file: Path | None = None, *, warn: Callable[[str], None] | None = None
) -> Report:
    """Everything the report shows, from a run directory (and a policy, for gate verdicts).

    ``warn`` hears about torn lines of samples.jsonl, which are skipped (see store.py), and
    about rehearsal summaries that cannot be read, which are left out."""
    from probe.decide.fitness import pipeline_fitness
    from probe.matrix.build import to_anchors
    from probe.report.rehearsals import read_rehearsals

    run = read_run(run_dir)
    stored = read_matrix(run_dir, run=run)
    if warn is not None and (message := torn_warning(run_dir, stored.torn_lines)) is not None:
        warn(message)
    frame = stored.frame
    first = preferred(frame)  # what single-figure views read
    order = tuple(host_order(run))
    regions = {h.name: h.region for h in run.hosts}
    cov = coverage(run, first, len(stored.torn_lines))
    anchors = to_anchors(run, frame, kept_samples(run_dir, run))
    spreads = p50_spreads(anchors.pairs)
    fitness = pipeline_fitness(anchors)
    gate = None
    if policy_file is not None:
        from probe.decide.gate import evaluate
        from probe.decide.policy import load_policy

        gate = evaluate(load_policy(policy_file), anchors)
    return Report(
        run_id=run.run_id,
        probe_version=run.probe_version,
        frame=frame,
        order=order,
        regions=regions,
        coverage=cov,
        rollup=rollup(anchors.regions, order, regions),
        hints=diagnose(first, order, dict(cov.down)),
        headline=headline(anchors, len(order) - len(cov.down), fitness.hosts),
        gate=gate,
        networks=network_rows(with_implied(frame, run) if several_networks(frame) else frame),
        spreads=spreads,
        confidence=confidence_notes(first, spreads),
        fitness=fitness,
        rehearsals=read_rehearsals(run_dir, warn, run_id=run.run_id),
        implied=implied_of(run) is not None,
    )


def write_report(
    run_dir: Path, policy_file: Path | None = None, *, warn: Callable[[str], None] | None = None
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; return their paths."""
    return save_report(run_dir, build_report(run_dir, policy_file, warn=warn))


def save_report(run_dir: Path, report: Report) -> tuple[Path, Path]:
    """Write ``report`` as ``report.md`` and ``report.html`` into ``run_dir``."""
    from probe.report import html, markdown

    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    save(md_path, markdown.render(report))
    save(html_path, html.render(report))
    return md_path, html_path


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    """A figure for a table; a dash when absent (never 0 for unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}{unit}"
