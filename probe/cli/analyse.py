"""``probe calc``, ``probe groups`` and ``probe gate``: offline analysis of one run's anchors.

RUN is a run directory holding ``anchors.json`` or the path of an anchors file. numpy and the
calculator are imported inside the commands so that ``probe --help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import click
from tabulate import tabulate

from probe import units
from probe.cli import main
from probe.errors import InputError

if TYPE_CHECKING:
    from probe.decide.formulas import Dtype
    from probe.decide.scenarios import Estimate, Hop, PipelineResult, Tail, Workload
    from probe.decide.shapes import ModelShape
    from probe.matrix.anchors import Anchors

_F = TypeVar("_F", bound=Callable[..., Any])
DTYPES = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")


def _load_run(run: str) -> Anchors:
    from probe.matrix.anchors import load_anchors

    p = Path(run)
    if p.is_dir():
        p = p / "anchors.json"
    if not p.exists():
        raise InputError(
            "no anchors.json here (give a run directory or an anchors file)", where=str(p)
        )
    return load_anchors(p)


def _unit(parse: Callable[[object], float]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except InputError as exc:
            raise click.BadParameter(str(exc), param=param) from exc

    return callback


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def _model_options(fn: _F) -> _F:
    """Model and workload options shared by ``calc`` and ``groups``."""
    for opt in reversed(
        [
            click.option(
                "--model",
                default="llama-3-8b",
                show_default=True,
                help="Preset model shape (see --help of calc for the list).",
            ),
            click.option(
                "--model-config",
                type=click.Path(dir_okay=False),
                help="Hugging Face config.json for any other model (overrides --model).",
            ),
            click.option(
                "--dtype",
                type=click.Choice(DTYPES),
                default="bf16",
                show_default=True,
                help="Activation dtype on the wire (int8/fp8 halve, int4 quarters).",
            ),
            click.option(
                "--tokens",
                type=click.IntRange(min=1),
                default=128,
                show_default=True,
                help="Tokens generated in interactive decode.",
            ),
            click.option(
                "--batch",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Prefill batch size B.",
            ),
            click.option(
                "--seq",
                type=click.IntRange(min=1),
                default=2048,
                show_default=True,
                help="Prefill sequence length S (tokens).",
            ),
            click.option(
                "--ring/--open",
                default=False,
                show_default=True,
                help="Ring: the token travels back to stage 1 (K hops, not K−1).",
            ),
            click.option(
                "--stages",
                type=click.IntRange(min=1),
                default=4,
                show_default=True,
                help="Pipeline stages K (placed automatically unless --path).",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


def _shape(model: str, model_config: str | None) -> ModelShape:
    from probe.decide.shapes import load_hf_config, preset

    return load_hf_config(model_config) if model_config else preset(model)


def _fmt(x: float | None, digits: int = 2) -> float | None:
    """A cell value; ``_table`` renders floats with 2 decimals and None as a dash."""
    return None if x is None else round(x, digits)


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    return tabulate(rows, list(headers), floatfmt=",.2f", intfmt=",", missingval="–")


def _bytes(b: float) -> str:
    return f"{b:,.0f} B ({b / 2**20:.4g} MiB)"


def _estimate_row(label: str, e: Estimate, tail: Tail | None = None) -> list[object]:
    flag = " (lower bound)" if e.lower_bound else ""
    return [
        label + flag,
        _fmt(e.network_p50_ms),
        _fmt(e.network_p99_ms),
        _fmt(e.full_p50_ms),
        _fmt(e.full_p99_ms),
        _fmt(tail.p50_ms if tail else None),
        _fmt(tail.p99_ms if tail else None),
    ]


_EST_HEAD = [
    "figure",
    "network p50 ms",
    "network p99 ms",
    "full p50 ms",
    "full p99 ms",
    "MC p50 ms",
    "MC p99 ms",
]


def _hop_table(hops: Sequence[Hop]) -> str:
    rows = [
        [
            f"{h.src}→{h.dst}",
            _fmt(h.rtt_p50_ms),
            _fmt(h.rtt_p99_ms),
            _fmt(h.bw_bps / 1e6 if h.bw_bps else None, 1),
            len(h.samples_ms) if h.samples_ms else 0,
        ]
        for h in hops
    ]
    return _table(rows, ["hop", "RTT p50 ms", "RTT p99 ms", "goodput Mbit/s", "samples"])


def _echo_pipeline(title: str, res: PipelineResult, step: str, total: str) -> None:
    click.echo(f"\n== {title}: {' → '.join(res.path)}; payload {_bytes(res.payload_bytes)} per hop")
    click.echo(_hop_table(res.hops))
    rows = [_estimate_row(step, res.per_step), _estimate_row(total, res.total, res.tail)]
    click.echo(_table(rows, _EST_HEAD))


@main.command()
@click.argument("run")
@_model_options
@click.option(
    "--path", "path_", help="Stage hosts in order, comma separated (else auto placement)."
)
@click.option(
    "--decode-compute",
    callback=_unit(units.parse_duration_ms),
    help="Compute per stage per decoded token, e.g. 4ms (default 0: network only).",
)
@click.option(
    "--prefill-compute",
    callback=_unit(units.parse_duration_ms),
    help="Compute per stage per prefill request, e.g. 120ms.",
)
@click.option(
    "--tp-compute",
    callback=_unit(units.parse_duration_ms),
    help="Compute per token of the tensor-parallel group, e.g. 8ms.",
)
@click.option(
    "--scenario",
    "scenarios",
    default="auto",
    show_default=True,
    help="Comma list of decode,prefill,tp,spec,pool; auto = decode,prefill,tp plus spec "
    "and pool when their inputs are given.",
)
@click.option(
    "--spec-accepted",
    type=click.FloatRange(min=0, min_open=True),
    help="spec: accepted tokens per block E.",
)
@click.option(
    "--spec-block",
    callback=_unit(units.parse_duration_ms),
    help="spec: co-located draft+verify block time, e.g. 45ms.",
)
@click.option(
    "--spec-ar-tps",
    type=click.FloatRange(min=0, min_open=True),
    help="spec: autoregressive tokens/s of the verifier alone.",
)
@click.option("--proposers", help="spec: proposer hosts (default: the stage hosts).")
@click.option("--verifiers", help="spec: verifier hosts (default: the stage hosts).")
@click.option(
    "--pool-service",
    callback=_unit(units.parse_duration_ms),
    help="pool: service time of one request on a capability-1.0 host, e.g. 800ms.",
)
@click.option(
    "--pool-requests",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="pool: number of requests.",
)
@click.option("--pool-hosts", help="pool: hosts (default: the stage hosts); the first dispatches.")
@click.option("--capability", help="pool: relative speed per host, e.g. a=1,b=0.5 (default 1).")
@click.option(
    "--payload",
    callback=_unit(units.parse_size_bytes),
    help="pool: bytes moved per request, e.g. 64KiB (default seq × 4 B of token ids).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=0),
    default=2000,
    show_default=True,
    help="Monte-Carlo trials (0: off).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Monte-Carlo RNG seed.")
def calc(
    run: str,
    model: str,
    model_config: str | None,
    dtype: str,
    tokens: int,
    batch: int,
    seq: int,
    ring: bool,
    stages: int,
    path_: str | None,
    decode_compute: float | None,
    prefill_compute: float | None,
    tp_compute: float | None,
    scenarios: str,
    spec_accepted: float | None,
    spec_block: float | None,
    spec_ar_tps: float | None,
    proposers: str | None,
    verifiers: str | None,
    pool_service: float | None,
    pool_requests: int,
    pool_hosts: str | None,
    capability: str | None,
    payload: float | None,
    trials: int,
    seed: int,
) -> int:
    """Predict decode, prefill, tensor-parallel, speculative and pooling times over RUN."""
    anchors = _load_run(run)  # the inputs first: a bad file fails before numpy is imported
    shape = _shape(model, model_config)

    from probe.decide import scenarios as sc

    w = sc.Workload(
        shape,
        cast("Dtype", dtype),
        tokens,
        batch,
        seq,
        ring,
        decode_compute or 0.0,
        prefill_compute or 0.0,
        tp_compute or 0.0,
    )
    wanted = _wanted(scenarios, spec_accepted is not None, pool_service is not None)
    links = sc.Links.from_anchors(anchors)
    path = _names(path_) or sc.place(links, stages, w.activation_bytes(1, 1), ring)
    click.echo(
        f"run {anchors.run_id}: {len(anchors.hosts)} hosts; model {shape.name} "
        f"(hidden {shape.hidden_size}, {shape.num_hidden_layers} layers), {dtype}, "
        f"{'ring' if ring else 'open chain'}, {len(path)} stages"
        f"{'' if path_ else ' (auto placement)'}"
    )
    if shape.note:
        click.echo(f"note: {shape.note}")
    if len(path) >= 2 and {"decode", "prefill"} & wanted:
        hops = links.hops(path, ring)
        if "decode" in wanted:
            res = sc.decode(hops, w, trials=trials, seed=seed)
            _echo_pipeline("decode", res, "per token", f"{tokens} tokens")
        if "prefill" in wanted:
            res = sc.prefill(hops, w, trials=trials, seed=seed)
            _echo_pipeline(f"prefill B={batch} S={seq}", res, "per hop", "per request")
    if "tp" in wanted and len(path) >= 2:
        tp = sc.tensor_parallel(links.hops(path, ring=True), w)
        click.echo(
            f"\n== tensor parallel over {len(path)} hosts (ring {' → '.join(tp.hosts)}); "
            f"worst link RTT p50 {tp.worst_hop.rtt_p50_ms:.2f} ms, goodput "
            f"{_fmt(tp.worst_hop.bw_bps / 1e6 if tp.worst_hop.bw_bps else None, 1)} Mbit/s"
        )
        click.echo(
            _table(
                [
                    _estimate_row(
                        f"decode per token (2×{shape.num_hidden_layers} all-reduces of "
                        f"{tp.decode_payload_bytes:,.0f} B)",
                        tp.decode_token,
                    ),
                    _estimate_row(f"decode {tokens} tokens", tp.decode_total),
                    _estimate_row(
                        f"prefill per request ({_bytes(tp.prefill_payload_bytes)})",
                        tp.prefill_request,
                    ),
                ],
                _EST_HEAD,
            )
        )
    if "spec" in wanted:
        _spec(links, path, proposers, verifiers, spec_accepted, spec_block, spec_ar_tps)
    if "pool" in wanted:
        _pool(links, path, w, pool_hosts, pool_requests, pool_service, capability, payload)
    return 0


def _wanted(scenarios: str, has_spec: bool, has_pool: bool) -> set[str]:
    known = {"decode", "prefill", "tp", "spec", "pool"}
    if scenarios == "auto":
        return (
            {"decode", "prefill", "tp"}
            | ({"spec"} if has_spec else set())
            | ({"pool"} if has_pool else set())
        )
    wanted = set(_names(scenarios))
    if wanted - known:
        raise click.BadParameter(
            f"unknown {', '.join(sorted(wanted - known))}", param_hint="--scenario"
        )
    return wanted


def _spec(
    links: Any,
    path: Sequence[str],
    proposers: str | None,
    verifiers: str | None,
    e: float | None,
    block: float | None,
    ar: float | None,
) -> None:
    from probe.decide import scenarios as sc

    if e is None or block is None or ar is None:
        raise click.UsageError("spec needs --spec-accepted, --spec-block and --spec-ar-tps")
    hops, skipped = [], []
    for p in _names(proposers) or path:
        for v in _names(verifiers) or path:
            if p != v:
                try:
                    hops.append(links.hop(p, v))
                except sc.UnmeasuredHop as exc:
                    skipped.append(str(exc))
    res = sc.speculative(hops, e, block, ar)
    click.echo(
        f"\n== speculative decoding: E={e:g} tokens/block, block {block:g} ms, AR {ar:g} tok/s; "
        f"break-even RTT {res.breakeven_rtt_ms:.1f} ms"
    )
    rows = [
        [
            f"{r.proposer}→{r.verifier}",
            _fmt(r.rtt_p50_ms),
            _fmt(r.rtt_p99_ms),
            _fmt(r.tokens_per_s_p50, 1),
            _fmt(r.tokens_per_s_p99, 1),
            f"{r.speedup_p50:.2f}×",
            f"{r.speedup_p99:.2f}×",
            "yes" if r.rtt_p99_ms < res.breakeven_rtt_ms else "no",
        ]
        for r in res.rows
    ]
    click.echo(
        _table(
            rows,
            [
                "proposer→verifier",
                "RTT p50 ms",
                "RTT p99 ms",
                "tok/s p50",
                "tok/s p99",
                "speed-up p50",
                "speed-up p99",
                "pays at p99",
            ],
        )
    )
    for s in skipped:
        click.echo(f"skipped: {s}")


def _pool(
    links: Any,
    path: Sequence[str],
    w: Workload,
    hosts_opt: str | None,
    requests: int,
    service: float | None,
    capability: str | None,
    payload: float | None,
) -> None:
    from probe.decide import scenarios as sc

    if service is None:
        raise click.UsageError("pool needs --pool-service (e.g. 800ms)")
    hosts = _names(hosts_opt) or tuple(path)
    caps = {h: 1.0 for h in hosts}
    for item in _names(capability):
        name, _, value = item.partition("=")
        try:
            caps[name] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"{item!r} is not host=factor", param_hint="--capability"
            ) from None
    size = payload if payload is not None else w.seq * 4.0
    res = sc.pool(hosts[0], links, hosts, requests, [service / caps[h] for h in hosts], size)
    click.echo(
        f"\n== pool: {requests} requests from {hosts[0]} over {len(hosts)} hosts, "
        f"payload {_bytes(size)} each, served serially per host"
    )
    click.echo(
        _table(
            [
                [m.host, _fmt(m.rtt_p50_ms), _fmt(m.service_ms, 1), n_even, n_aware]
                for m, n_even, n_aware in zip(
                    res.hosts, res.even_counts, res.aware_counts, strict=True
                )
            ],
            ["host", "RTT p50 ms", "service ms", "even split", "capability-aware"],
        )
    )
    rows = [[*_estimate_row("fastest host alone", res.alone)[:5], "1.00", "1.00"]]
    splits: tuple[tuple[str, Estimate, Literal["even", "aware"]], ...] = (
        ("even split", res.even, "even"),
        ("capability-aware", res.aware, "aware"),
    )
    for label, est, split in splits:
        ratios = [f"{res.overhead(split, at):.2f}" for at in ("p50", "p99")]
        rows.append([*_estimate_row(label, est)[:5], *ratios])
    click.echo(_table(rows, [*_EST_HEAD[:5], "overhead p50", "overhead p99"]))


@main.command()
@click.argument("run")
@click.option(
    "--max-rtt",
    required=True,
    callback=_unit(units.parse_duration_ms),
    help="Highest RTT allowed between two members, both directions, e.g. 5ms.",
)
@click.option(
    "--min-bw",
    callback=_unit(units.parse_rate_bps),
    help="Lowest goodput allowed between two members, both directions, e.g. 10gbit.",
)
@click.option(
    "--rtt-stat",
    type=click.Choice(["p50", "p99"]),
    default="p50",
    show_default=True,
    help="Which RTT statistic is held to --max-rtt.",
)
@_model_options
def groups(
    run: str,
    max_rtt: float,
    min_bw: float | None,
    rtt_stat: str,
    model: str,
    model_config: str | None,
    dtype: str,
    tokens: int,
    batch: int,
    seq: int,
    ring: bool,
    stages: int,
) -> int:
    """Network-local groups of RUN, each with its best stage order and predicted figures."""
    anchors = _load_run(run)  # the inputs first: a bad file fails before numpy is imported
    shape = _shape(model, model_config)

    from probe.decide.groups import Limits, find_groups
    from probe.decide.scenarios import Links, Workload

    w = Workload(shape, cast("Dtype", dtype), tokens, batch, seq, ring)
    limits = Limits(max_rtt, min_bw, "p99" if rtt_stat == "p99" else "p50")
    found = find_groups(Links.from_anchors(anchors), limits, stages, w)
    bw_text = "any goodput" if min_bw is None else f"goodput ≥ {min_bw / 1e6:g} Mbit/s"
    click.echo(
        f"run {anchors.run_id}: {len(found)} group(s) with RTT {rtt_stat} ≤ {max_rtt:g} ms "
        f"and {bw_text} both ways; {stages} stages of {w.model.name} {dtype}"
    )
    rows = []
    for i, g in enumerate(found, 1):
        order = " → ".join(g.order) if len(g.order) <= 6 else f"{g.order[0]} → … ({len(g.order)})"
        rows.append(
            [
                i,
                len(g.hosts),
                ",".join(g.regions),
                _fmt(g.max_rtt_ms),
                _fmt(g.min_bw_bps / 1e6 if g.min_bw_bps else None, 0),
                order or "(too small)",
                _fmt(g.decode.per_step.full_p50_ms if g.decode else None),
                _fmt(g.decode.per_step.full_p99_ms if g.decode else None),
                _fmt(g.prefill.total.full_p50_ms if g.prefill else None),
            ]
        )
    click.echo(
        _table(
            rows,
            [
                "#",
                "hosts",
                "regions",
                "max RTT ms",
                "min Mbit/s",
                "stage order",
                "decode ms/token p50",
                "p99",
                "prefill ms/request p50",
            ],
        )
    )
    return 0


@main.command()
@click.argument("run")
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Policy YAML (see inventory/policies/).",
)
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False),
    help="Also write a Markdown summary here (for CI logs).",
)
def gate(run: str, policy_file: str, markdown_file: str | None) -> int:
    """Judge RUN against a policy. Exit 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 2 usage or input error."""
    from probe.decide.gate import evaluate
    from probe.decide.policy import load_policy
    from probe.report.gate import render_markdown

    policy = load_policy(policy_file)
    report = evaluate(policy, _load_run(run))
    rows = [
        [
            r.name,
            r.verdict.value,
            _fmt(r.value),
            r.limit,
            r.unit,
            r.reason,
        ]
        for r in report.results
    ]
    click.echo(_table(rows, ["check", "verdict", "value", "limit", "unit", "reason"]))
    click.echo(f"gate: {report.verdict.value} ({policy.name})")
    if markdown_file:
        Path(markdown_file).write_text(render_markdown(report), encoding="utf-8")
    return report.exit_code
