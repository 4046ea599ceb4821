"""``probe report``: golden report.md on a fixed run, a self-contained report.html, the hints."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from probe.cli import main, run
from probe.matrix.build import host_order, load_matrix
from probe.report import build_report
from probe.report.hints import diagnose
from probe.store.rundir import read_run
from tests.report.runs import cut_short, make_lab8

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"
GOLDEN = Path(__file__).resolve().parent / "golden" / "20261123T090000Z.md"
POLICIES = Path(__file__).resolve().parents[2] / "inventory" / "policies"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))


def test_report_md_is_golden(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["report", str(run_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    text = (run_dir / "report.md").read_text(encoding="utf-8")
    if os.environ.get("PROBE_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "set PROBE_UPDATE_GOLDEN=1 to accept"


def test_fixture_is_what_the_generator_writes(tmp_path: Path) -> None:
    fresh = make_lab8(tmp_path / FIXTURE.name)
    for name in ("run.json", "samples.jsonl"):
        assert (fresh / name).read_text() == (FIXTURE / name).read_text()


def test_report_html_is_self_contained(run_dir: Path) -> None:
    assert run(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<script" not in page and "<link" not in page
    metrics = re.findall(
        r'<figure class="heatmap" data-metric="([a-z_0-9]+)"><img src="data:image/png;base64,', page
    )
    assert metrics == ["rtt_p50", "rtt_p99", "ipdv", "loss", "bandwidth"]


def test_report_says_which_hosts_can_serve_a_pipeline(run_dir: Path) -> None:
    assert run(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    section = page.split('<h2 id="fitness">Pipeline fitness</h2>')[1].split("<h2")[0]
    assert "<td>eu2</td>" in section and "<td>residential-like</td><td>unfit</td>" in section
    assert "<td>eu3 → us1 → us2 → ap1</td>" in section
    assert "not enough fit hosts (5 of 8)" in section
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "Left out as unfit for a stage: eu2 (residential-like)" in md


def test_report_with_policy_shows_verdicts(run_dir: Path) -> None:
    policy = POLICIES / "coverage.yaml"
    assert run(["report", str(run_dir), "--policy", str(policy)]) == 0
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Gate: ❌ FAIL" in md and "worst eu3→us2: 100% > 1%" in md
    assert '<span class="verdict FAIL">FAIL</span>' in (run_dir / "report.html").read_text()


def test_html_escapes_run_text(tmp_path: Path) -> None:
    import json

    d = Path(shutil.copytree(FIXTURE, tmp_path / "x"))
    doc = json.loads((d / "run.json").read_text())
    doc["hosts"][-1]["reason"] = "<script>alert(1)</script>"
    (d / "run.json").write_text(json.dumps(doc))
    from probe.report import html

    page = html.render(build_report(d))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["report", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_headline_says_why_when_it_cannot_be_computed(tmp_path: Path) -> None:
    import json

    d = Path(shutil.copytree(FIXTURE, tmp_path / "one"))
    doc = json.loads((d / "run.json").read_text())
    doc["hosts"] = doc["hosts"][:1]
    (d / "run.json").write_text(json.dumps(doc))
    assert build_report(d).headline.text.startswith("no calculator headline")


@pytest.mark.parametrize("command", ["report", "diff"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([command, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out and main.commands[command].help
    for param in main.commands[command].params:
        if param.param_type_name == "option":
            assert param.help, f"{command} {param.name} has no help"


def test_hints_name_the_faults_of_the_fixture() -> None:
    frame, doc = load_matrix(FIXTURE), read_run(FIXTURE)
    hints = diagnose(frame, host_order(doc), {"ap2": "unreachable"})
    found = {(h.scope, h.subject, h.aspect) for h in hints}
    assert found == {
        ("host-down", "ap2", "host down"),
        ("egress", "eu2", "slow"),
        ("host", "us3", "bandwidth failed"),
        ("ingress", "eu1", "low bandwidth"),
        ("pair", "eu3 → us2", "ping failed"),
    }


def test_no_hints_on_a_clean_fleet() -> None:
    frame, doc = load_matrix(FIXTURE), read_run(FIXTURE)
    clean = frame[(frame.status == "ok") & (frame.bw_status == "ok")]
    clean = clean[~clean.src.isin(["eu2"]) & ~clean.dst.isin(["eu1"])]
    assert diagnose(clean, [h for h in host_order(doc) if h not in ("eu1", "eu2")]) == ()


def test_an_interrupted_run_says_so_at_the_top(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notice = (
        "incomplete: 12 of 56 bandwidth cells and 0 of 56 RTT cells not measured (interrupted; "
        f"resume with probe run inventory/lab-3regions.yaml --resume {run_dir.name})"
    )
    assert run(["report", str(cut_short(run_dir, 12))]) == 0
    assert capsys.readouterr().out.splitlines()[0] == notice
    md = (run_dir / "report.md").read_text(encoding="utf-8").splitlines()
    assert md[:4] == [f"# probe report — run {run_dir.name}", "", f"> **{notice}**", ""]
    assert any("(4 min 17 s; incomplete, interrupted)" in line for line in md)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f'</h1><p class="incomplete" role="alert">{notice}</p>' in page


def test_a_complete_run_with_failures_is_not_called_incomplete(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    doc = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**doc, "complete": False}))  # as probe writes
    assert run(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.startswith("wrote ")
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "incomplete" not in md and "(4 min 17 s; complete)" in md
    assert 'class="incomplete"' not in (run_dir / "report.html").read_text(encoding="utf-8")


def test_the_senders_congestion_control_is_in_the_matrix_and_a_mix_is_said(
    tmp_path: Path,
) -> None:
    import json

    from probe.report import markdown

    d = Path(shutil.copytree(FIXTURE, tmp_path / "x"))
    assert markdown.congestion_line(build_report(d).frame) is None  # iperf3 named none
    lines = (d / "samples.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        rec = json.loads(line)
        if rec.get("kind") == "iperf3" and rec.get("result"):
            sender = "bbr" if rec["src"] == "eu1" else "cubic"
            rec["result"].update(sender_cc=sender, receiver_cc="cubic")
        out.append(json.dumps(rec))
    (d / "samples.jsonl").write_text("\n".join(out) + "\n")
    report = build_report(d)
    frame = report.frame
    row = frame[(frame.src == "eu1") & (frame.dst == "eu2")]
    assert (row.sender_cc.item(), row.receiver_cc.item()) == ("bbr", "cubic")
    cc = markdown.congestion_line(report.frame)
    assert cc is not None and "bbr 5, cubic 25" in cc and "mixed" in cc  # eu1 → 5 measured
    assert cc in markdown.render(report)
