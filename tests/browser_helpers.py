"""Open an HTML report in headless Chromium (Debian's ``chromium``): what the page does in a real browser.

``check_page`` loads a copy of the page with tests/report_probe.js injected first in <head> and reads
back what the probe found (console errors, images that did not load, the page's width, the bokeh
map's hover tooltip and colour selector); ``screenshot`` keeps what a laptop screen shows first.
Where Chromium is missing the tests skip, unless MMNEURO_REQUIRE_BROWSER is set (CI: .ci/run
installs it), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("report_probe.js")
LAPTOP = (1366, 768)  # a common laptop screen, CSS pixels
ARTIFACTS = Path(os.environ.get("MMNEURO_TEST_ARTIFACTS", ROOT / "test-artifacts"))  # git-ignored


def chromium() -> str:
    """The Chromium executable; skips the test where there is none (fails where CI requires one)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("MMNEURO_REQUIRE_BROWSER"):
        pytest.fail("MMNEURO_REQUIRE_BROWSER is set but chromium is not installed (.ci/run installs it)")
    pytest.skip("chromium not installed (apt-get install chromium)")


def _run(*args: str, timeout: float = 120) -> str:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={LAPTOP[0]},{LAPTOP[1]}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def check_page(html: Path, tmp_path: Path) -> dict:
    """What the probe found on ``html`` at a laptop's width (see tests/report_probe.js for the keys)."""
    text = html.read_text(encoding="utf-8")
    probed = tmp_path / f"probed_{html.name}"
    # first in <head>, so it sees every error of the page's own scripts
    probed.write_text(text.replace("<head>", f"<head><script>{PROBE.read_text()}</script>", 1), encoding="utf-8")
    # virtual time: the page's timers run at once, and the dump waits until they have
    dom = _run("--virtual-time-budget=30000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="browser-check"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, f"the probe wrote no result into {probed}"
    return json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def screenshot(html: Path, name: str) -> Path:
    """The first screen of ``html`` at a laptop's size as ARTIFACTS/name (PNG); returns the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    _run("--virtual-time-budget=10000", f"--screenshot={out}", html.as_uri())
    assert out.is_file() and out.stat().st_size > 0
    print(f"screenshot of the first screen: {out}")
    return out


def assert_works_in_a_browser(found: dict, maps: int = 1) -> None:
    """No console error, every image loaded, nothing wider than the screen, and each map's hover shows
    a spectrogram and its colour selector recolours the points."""
    assert found["errors"] == [], found["errors"]
    assert found["broken"] == [], f"images that did not load: {found['broken']}"
    assert found["scroll_width"] <= found["client_width"], f"page wider than a {LAPTOP[0]} px screen: {found}"
    assert found["maps"] == maps
    if maps:
        assert found["hover"]["tooltip"] and found["hover"]["thumb_width"] > 0, found["hover"]
        assert found["recolour"] is True, found
