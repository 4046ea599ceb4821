"""The gate's verdicts as Markdown, for CI logs and the report."""

from __future__ import annotations

from probe.decide.gate import GateReport, Verdict


def render_markdown(report: GateReport) -> str:
    """A summary for CI logs (GitHub step summary, GitLab job log)."""
    icon = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.INCONCLUSIVE: "⚠️"}
    lines = [
        f"## probe gate: {icon[report.verdict]} {report.verdict.value}",
        "",
        f"Policy `{report.policy}` on run `{report.run_id}`.",
        "",
        "| check | verdict | value | limit | reason |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for r in report.results:
        value = "–" if r.value is None else f"{r.value:.2f} {r.unit}"
        limit = "–" if r.limit is None else f"{r.limit:g} {r.unit}"
        reason = r.reason.replace("|", "\\|")
        lines.append(
            f"| {r.name} | {icon[r.verdict]} {r.verdict.value} | {value} | {limit} | {reason} |"
        )
    return "\n".join(lines) + "\n"
