"""index.html in real headless Chromium: every figure loads (naturalWidth > 0), and a screenshot is taken.

Chromium is Debian's ``chromium`` package, driven from the command line: no WebDriver, no downloaded
browser. Without it the test skips locally and fails in CI (``CI=true``), where the set-up installs it.
Set ``REGIMEN_TEST_ARTIFACTS=DIR`` to keep the screenshot and the report.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from report_fixtures import suite_store

from jobs.report import write_report

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

#: Appended to a copy of the page: once everything has loaded, writes what the images did into the DOM,
#: where ``--dump-dom`` prints it.
PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const out = document.createElement("pre");
  out.id = "regimen-probe";
  out.textContent = JSON.stringify({
    widths: images.map((i) => (i.complete ? i.naturalWidth : -1)),
    banner: document.querySelector(".banner") !== null,
    headings: Array.from(document.querySelectorAll("h2")).map((h) => h.textContent),
  });
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI: the test set-up must `apt-get install -y chromium`")
    pytest.skip(f"{CHROMIUM} not installed (Debian: apt-get install -y chromium); CI=true makes this a failure")


def run_chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    return Path(write_report(suite_store(root / "results", seeds=3), root / "report")["index.html"])


def test_every_figure_loads_in_chromium(report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    done = run_chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "profile")
    found = re.search(r'<pre id="regimen-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not run; Chromium printed:\n{done.stdout[:2000]}\n{done.stderr[-2000:]}"
    page = json.loads(html.unescape(found.group(1)))
    assert len(page["widths"]) == 6, "one figure per experiment"
    assert all(width > 0 for width in page["widths"]), f"figures that did not load: {page['widths']}"
    assert page["banner"], "the SYNTHETIC banner is missing"
    assert page["headings"][:3] == ["Overview", "Run", "Failed or missing jobs"]


def test_a_screenshot_of_the_report(report, tmp_path):
    shot = tmp_path / "report.png"
    run_chromium("--window-size=1280,3000", f"--screenshot={shot}", report.as_uri(), profile=tmp_path / "profile")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (1280, 3000)
    assert len(data) > 50_000, "the screenshot is (nearly) blank"
    keep = os.environ.get("REGIMEN_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report-screenshot.png")
        shutil.copy(report, Path(keep) / "index.html")
