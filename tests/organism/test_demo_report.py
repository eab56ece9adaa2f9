"""The committed demo report (``results/demo/``): relative paths only, and in a real headless
browser both plots load and draw one distinct curve per method (``scripts/setup_browser.sh``)."""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.report.test_browser import CHECK, _run, find_chromium

DEMO = Path(__file__).resolve().parents[2] / "results" / "demo"
BOARD = DEMO / "leaderboard"
# matplotlib's default colour cycle (tab10), in the order the plot assigns it to methods
TAB10 = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _methods() -> list[str]:
    with open(BOARD / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    key = next(k for k in rows[0] if k.lower() == "method")
    return sorted({r[key] for r in rows if r[key]})


def _machine_paths() -> re.Pattern:
    """This machine's own absolute folders (checkout, its parent, home, temp) and Windows drives."""
    repo = DEMO.parents[1]
    roots = {str(repo), str(repo.parent), str(Path.home()), tempfile.gettempdir()}
    roots = sorted((r for r in roots if r not in ("", "/")), key=len, reverse=True)
    return re.compile("|".join([*(re.escape(r) for r in roots), r"[A-Z]:\\\\"]))


def test_committed_results_have_no_machine_paths():
    pattern = _machine_paths()
    offenders = []
    texts = (".json", ".jsonl", ".log", ".md", ".csv", ".html", ".txt")
    for path in DEMO.rglob("*"):
        if path.is_file() and path.suffix in texts and pattern.search(path.read_text(errors="replace")):
            offenders.append(str(path.relative_to(DEMO)))
    assert not offenders, offenders


def _colour_present(pixels: np.ndarray, hex_colour: str, min_pixels: int = 30) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - rgb).max(-1) <= 12).sum()) >= min_pixels


def test_report_in_browser_shows_both_plots_with_a_curve_per_method(tmp_path):
    chromium = find_chromium()
    page = tmp_path / "page"
    shutil.copytree(BOARD, page)
    html = (page / "index.html").read_text()
    (page / "index.html").write_text(html.replace("</body>", CHECK + "</body>"))
    dom = _run(chromium, tmp_path, "--dump-dom", (page / "index.html").as_uri()).stdout
    widths = re.search(r'data-img-widths="([^"]*)"', dom)
    assert widths is not None and [int(w) > 0 for w in widths.group(1).split(",")] == [True, True]

    shot = tmp_path / "shot.png"
    _run(
        chromium, tmp_path, f"--screenshot={shot}", "--window-size=1400,4000", (BOARD / "index.html").as_uri()
    )
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"))
    methods = _methods()
    assert len(methods) >= 7  # none, sttm and the six baselines
    colours = TAB10[: len(methods)]
    missing = [m for m, c in zip(methods, colours, strict=True) if not _colour_present(pixels, c)]
    assert not missing, f"no curve drawn in the screenshot for {missing}"
    for name in ("acc_vs_retained.png", "ttft_vs_retained.png"):  # each plot on its own, too
        with Image.open(BOARD / name) as img:
            plot = np.asarray(img.convert("RGB"))
        assert all(_colour_present(plot, c) for c in colours), name


@pytest.mark.parametrize("family", ["ret_insert1", "ord_insert1", "cnt_insert1"])
def test_leaderboard_readme_reports_each_family(family):
    text = (BOARD / "README.md").read_text()
    assert family in text and "circular" in text and "real video LLMs" in text


def test_leaderboard_readme_gives_the_ttft_spread_of_the_committed_runs():
    """The README's timing table is what the committed statistics give, and its ratio of means
    is the leaderboard's R.TTFT (two computations of one number)."""
    from lmms_sttm.demo import demo_runs, timing_table

    table = timing_table(DEMO / "runs", [t for t, _ in demo_runs()])
    text = (BOARD / "README.md").read_text()
    assert table and table in text
    with open(BOARD / "leaderboard.csv", newline="") as f:
        board = {(r["method"], r["setting"]): float(r["r_ttft"]) for r in csv.DictReader(f) if r["r_ttft"]}
    row = next(line for line in table.splitlines() if line.startswith("| sttm_exact30 |"))
    assert abs(float(row.split("|")[3]) - board[("sttm", "budget_mode=exact,retention=0.3")]) <= 0.5
