"""The HTML page in a real headless browser (Debian chromium; ``scripts/setup_browser.sh``).

The page has no scripts; the test loads a copy with a tiny load-time check appended that writes
each image's natural width into the DOM, dumps the DOM, and takes a screenshot of the original.
Without chromium the test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import unescape

import numpy as np
import pytest
from PIL import Image

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHECK = (
    '<script>window.addEventListener("load", () => {'
    'document.body.setAttribute("data-img-widths",'
    ' [...document.images].map(i => i.complete ? i.naturalWidth : -1).join(","));'
    "});</script>"
)


def find_chromium() -> str:
    """The browser's path; skips without one, fails under ``CI=true``."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "chromium is not installed: enable this test with `sudo bash scripts/setup_browser.sh`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _run(chromium: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_page_renders_tables_and_loads_plots(built_report, tmp_path):
    chromium = find_chromium()
    out, _ = built_report
    page = tmp_path / "page"
    shutil.copytree(out, page)
    html = (page / "index.html").read_text()
    (page / "index.html").write_text(html.replace("</body>", CHECK + "</body>"))

    dom = _run(chromium, tmp_path, "--dump-dom", (page / "index.html").as_uri()).stdout
    widths = re.search(r'data-img-widths="([^"]*)"', dom)
    assert widths is not None, "the load check did not run"
    values = [int(w) for w in widths.group(1).split(",")]
    assert len(values) == 2 and all(w > 0 for w in values), values

    table = re.search(r'<table id="table-leaderboard-our-runs">(.*?)</table>', dom, re.S)
    assert table is not None
    rows = [
        [unescape(c) for c in re.findall(r"<td>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", table[1], re.S)
    ]
    rows = [r for r in rows if r]
    assert [r[2] for r in rows] == ["none", "sttm"]
    assert {
        "50.0 [21.7, 78.3]",
        "50.0 [0.0, 100.0] (1 failed)",
        "50.0 [0.0, 100.0] (2/3)",
        "83.3",
        "31.2",
        "—",
    } <= set(rows[1])
    assert "Paper (reference, not our runs): LLaVA-Video-7B (Video-Only)" in dom


def test_screenshot_is_not_blank(built_report, tmp_path):
    chromium = find_chromium()
    out, _ = built_report
    shot = tmp_path / "shot.png"
    _run(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", (out / "index.html").as_uri())
    with Image.open(shot) as img:
        assert img.size == (1280, 2400)
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 10
    # the plots sit below the two tables: the lower half of the page is not blank either
    assert pixels[1200:].std() > 10
