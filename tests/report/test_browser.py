"""report.html in headless Chromium: it renders, and every heatmap image decodes.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped when it is absent.
The report has no script of its own; the DOM check runs on a copy with one probe script added,
which writes each image's decoded size into a data attribute that ``--dump-dom`` then shows.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from probe.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "20261123T090000Z"
METRICS = ["rtt_p50", "rtt_p99", "ipdv", "loss", "bandwidth"]
PROBE_SCRIPT = """<script>
window.addEventListener("load", () => {
  const seen = [...document.querySelectorAll("figure.heatmap img")].map((img) => ({
    metric: img.closest("figure").dataset.metric, complete: img.complete,
    width: img.naturalWidth, height: img.naturalHeight }));
  document.body.setAttribute("data-heatmaps", JSON.stringify(seen));
});
</script></body>"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}", *args]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = Path(shutil.copytree(FIXTURE, tmp_path_factory.mktemp("b") / FIXTURE.name))
    _, page = write_report(run_dir)
    return page


def test_heatmaps_decode_in_the_dom(report_html: Path) -> None:
    probe = report_html.with_name("probe.html")
    probe.write_text(report_html.read_text(encoding="utf-8").replace("</body>", PROBE_SCRIPT))
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri()).stdout
    start = dom.index('data-heatmaps="') + len('data-heatmaps="')
    seen = json.loads(html.unescape(dom[start : dom.index('"', start)]))
    assert [s["metric"] for s in seen] == METRICS
    for s in seen:
        assert s["complete"] and s["width"] > 300 and s["height"] > 300, s


def test_screenshot_is_not_blank(report_html: Path) -> None:
    from PIL import Image

    shot = report_html.with_name("shot.png")
    _chromium("--window-size=1400,2000", f"--screenshot={shot}", report_html.as_uri())
    with Image.open(shot) as img:
        assert img.size == (1400, 2000)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    # text alone gives a handful of greys; the heatmaps bring hundreds of viridis shades
    assert colours is not None and len(colours) > 200
