"""The committed demo report (``results/demo/``): relative paths only; in a real headless browser
the leaderboard shows accuracy and R.TTFT intervals and the speed control, and both plots load and
draw one distinct curve per (method, budget mode), with error bars (``scripts/setup_browser.sh``)."""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lmms_sttm.demo as demo
from tests.report.test_browser import CHECK, _run, find_chromium

DEMO = Path(__file__).resolve().parents[2] / "results" / "demo"
BOARD = DEMO / "leaderboard"
# the plot's colours in the order it assigns them to methods: matplotlib's tab10, then tab20's lighter shades
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
TAB20_LIGHT = [
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
]


def _series() -> list[str]:
    """The plots' series, from the leaderboard's rows: one per method and budget mode, sorted."""
    with open(BOARD / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = set()
    for r in rows:
        mode = "exact budget" if "budget_mode=exact" in r["setting"] else "paper settings"
        names.add("none (unreduced)" if r["method"] == "none" else f"{r['method']}, {mode}")
    return sorted(names)


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
    series = _series()
    # none, STTM twice (paper settings, exact budget), every baseline and the out-of-tree l2keep
    assert {"sttm, exact budget", "sttm, paper settings", "l2keep, exact budget"} <= set(series)
    assert len(series) == 4 + len(demo.BASELINES)
    colours = (TAB10 + TAB20_LIGHT)[: len(series)]  # each series its own colour
    missing = [m for m, c in zip(series, colours, strict=True) if not _colour_present(pixels, c)]
    assert not missing, f"no curve drawn in the screenshot for {missing}"
    # the leaderboard as the browser shows it: intervals, the speed control, the kept-share flag
    table = re.search(r'<table id="table-leaderboard-our-runs">(.*?)</table>', dom, re.S)[1]
    heads = [unescape(h) for h in re.findall(r"<th>(.*?)</th>", table)]
    assert "R.TTFT [90%]" in heads and "Speed control" in heads
    rows = [
        [unescape(c) for c in re.findall(r"<td>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]
    rows = {(r[2], r[3]): dict(zip(heads, r, strict=True)) for r in rows if r}
    interval = re.compile(r"^\d+\.\d \[\d+\.\d, \d+\.\d\]$")
    assert all(interval.match(r["VNBench"]) for r in rows.values())
    exact = rows[("sttm", "budget_mode=exact,retention=0.3")]
    assert re.match(r"^\d+ \[\d+, \d+\]$", exact["R.TTFT [90%]"]) and exact["Speed control"].isdigit()
    assert rows[("sttm", "budget=50")]["R.NV"].endswith("(!)") and not exact["R.NV"].endswith("(!)")
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


def test_plots_have_a_series_per_method_and_budget_mode_with_error_bars():
    """The plotted data of the committed runs: STTM's paper-setting and exact-budget rows are two
    series, every reduced point carries its interval, and the TTFT plot is relative."""
    from lmms_sttm.report.build import collect
    from lmms_sttm.report.plots import accuracy_series, panels, ttft_series

    report = collect([DEMO / "runs"], paper="none")
    (members,) = panels(report.rows).values()
    acc, _ = accuracy_series(members)
    assert sorted(acc) == _series()
    assert [p[4] for p in acc["sttm, exact budget"]] == [
        "budget_mode=exact,retention=0.15",
        "budget_mode=exact,retention=0.3",
        "budget_mode=exact,retention=0.5",
    ]
    assert all(low > 0 and high >= 0 for pts in acc.values() for (_, y, low, high, _) in pts if 0 < y < 100)
    ttft = ttft_series(members, report.rels)
    assert ttft["none (unreduced)"] == [(100.0, 100.0, 0.0, 0.0, "unreduced")]
    with open(BOARD / "leaderboard.csv", newline="") as f:
        board = {(r["method"], r["setting"]): r for r in csv.DictReader(f)}
    for x, y, low, high, setting in ttft["sttm, exact budget"]:
        row = board[("sttm", setting)]
        assert y == pytest.approx(float(row["r_ttft"])) and x == pytest.approx(float(row["r_nv"]))
        assert y - low == pytest.approx(float(row["r_ttft_ci90_low"])) and y + high == pytest.approx(
            float(row["r_ttft_ci90_high"])
        )
