"""A run as Prometheus text exposition (format 0.0.4) for node_exporter's textfile collector.

Pure: no I/O.

Write the text to ``<dir>/probe.prom.$$`` and rename it to ``probe.prom`` so the collector never
reads half a file. The textfile collector rejects sample timestamps, so none are written; the run
time is the value of ``probe_run_timestamp_seconds`` instead. Only measured cells produce series:
a failed cell is absent (plus ``probe_pair_ok 0``), never a 0 that reads as "perfect".

``probe_rtt_seconds`` is a summary (quantiles 0, 0.5, 0.9, 0.99, 1 = min … max, with ``_sum`` and
``_count`` of the replies). ``probe_bandwidth_bits_per_second{direction="reverse"}`` of (a, b) is
the data direction b → a, i.e. the ``forward`` series of (b, a), repeated for easy queries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, cast

import pandas as pd

from probe.matrix.build import preferred
from probe.model import CellStatus
from probe.store.rundoc import RunDoc

_QUANTILES = (("0", "rtt_min_ms"), ("0.5", "rtt_p50_ms"), ("0.9", "rtt_p90_ms"),
              ("0.99", "rtt_p99_ms"), ("1", "rtt_max_ms"))  # fmt: skip
Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]


def escape_label(value: str) -> str:
    """Backslash, double quote and line feed escaped, as the exposition format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _line(name: str, labels: Labels, value: float) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
    return f"{name}{{{inner}}} {number(value)}" if inner else f"{name} {number(value)}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]
    lines += [_line(n, labels, value) for n, labels, value in samples]
    return lines


def _value(row: Mapping[str, Any], col: str) -> float | None:
    v = row.get(col)
    if v is None or v is pd.NA:
        return None
    x = float(v)
    return None if math.isnan(x) else x


def _epoch(stamp: object) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def prometheus_text(run: RunDoc, frame: pd.DataFrame) -> str:
    """The exposition text of one run (its ``run.json``, the long-form matrix): each pair over
    its preferred network (one series per pair)."""
    rows = cast("list[dict[str, Any]]", preferred(frame).to_dict("records"))
    run_id = run.run_id

    def base(r: Mapping[str, Any]) -> Labels:
        return tuple((k, str(r[k])) for k in ("src", "dst", "src_region", "dst_region"))

    rtt: list[Sample] = []
    loss: list[Sample] = []
    ipdv: list[Sample] = []
    bw: list[Sample] = []
    ok: list[Sample] = []
    for r in rows:
        labels = base(r)
        if r["status"] == CellStatus.OK.value:
            for q, col in _QUANTILES:
                v = _value(r, col)
                if v is not None:
                    rtt.append(("probe_rtt_seconds", (*labels, ("quantile", q)), v / 1e3))
            mean, received = _value(r, "rtt_mean_ms"), _value(r, "received")
            if mean is not None and received is not None:
                rtt.append(("probe_rtt_seconds_sum", labels, mean * received / 1e3))
                rtt.append(("probe_rtt_seconds_count", labels, received))
            if (jitter := _value(r, "ipdv_ms")) is not None:
                ipdv.append(("probe_ipdv_seconds", labels, jitter / 1e3))
        if (lost := _value(r, "loss_pct")) is not None:
            loss.append(("probe_loss_ratio", labels, lost / 100.0))
        for direction, col in (("forward", "bw_fwd_mbps"), ("reverse", "bw_rev_mbps")):
            if (mbps := _value(r, col)) is not None:
                bw.append(("probe_bandwidth_bits_per_second",
                           (*labels, ("direction", direction)), mbps * 1e6))  # fmt: skip
        for test, col in (("ping", "status"), ("bandwidth", "bw_status")):
            status = str(r[col])
            ok.append(("probe_pair_ok", (*labels, ("test", test), ("status", status)),
                       1.0 if status == CellStatus.OK.value else 0.0))  # fmt: skip
    when = _epoch(run.ended_utc or run.started_utc)
    run_labels: Labels = (("run_id", run_id), ("probe_version", run.probe_version))
    lines = _family("probe_run_info", "gauge", "The run these series come from.",
                    [("probe_run_info", run_labels, 1.0)])  # fmt: skip
    if when is not None:
        lines += _family(
            "probe_run_timestamp_seconds", "gauge", "End of the run, Unix time.",
            [("probe_run_timestamp_seconds", (("run_id", run_id),), when)],
        )  # fmt: skip
    lines += _family(
        "probe_rtt_seconds",
        "summary",
        "ICMP round-trip time measured from src; quantile 0 is min, 1 is max.",
        rtt,
    )
    lines += _family("probe_loss_ratio", "gauge", "Share of ping probes without a reply.", loss)
    lines += _family(
        "probe_ipdv_seconds",
        "gauge",
        "Mean |RTT difference| of consecutive replies (RFC 3393 IPDV).",
        ipdv,
    )
    lines += _family(
        "probe_bandwidth_bits_per_second",
        "gauge",
        "iperf3 TCP receiver goodput; forward is src to dst, reverse dst to src.",
        bw,
    )
    lines += _family(
        "probe_pair_ok", "gauge", "1 when the test of the pair measured ok, else 0.", ok
    )
    return "\n".join(lines) + "\n"
