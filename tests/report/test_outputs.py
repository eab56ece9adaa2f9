"""The files the report writes: Markdown, CSV, HTML with its PNG plots, breakdowns, provenance."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.report.fixture_runs import STTM_ARGS


def test_all_files_are_written(built_report):
    out, files = built_report
    expected = {
        "leaderboard.md", "leaderboard.csv", "per_benchmark.csv", "runs.csv", "paper_reference.csv",
        "acc_vs_retained.png", "ttft_vs_retained.png", "index.html", "breakdowns.md", "breakdowns.csv",
    }  # fmt: skip
    assert set(files) == expected
    assert all(p.parent == out and p.stat().st_size > 0 for p in files.values())


def test_png_plots_are_real_images(built_report):
    out, _ = built_report
    for name in ("acc_vs_retained.png", "ttft_vs_retained.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > 200 and img.height > 200
            pixels = np.asarray(img.convert("L"))
        assert pixels.std() > 5  # not blank


def test_html_embeds_the_plots_and_tables(built_report):
    out, _ = built_report
    html = (out / "index.html").read_text()
    assert '<img src="acc_vs_retained.png"' in html and '<img src="ttft_vs_retained.png"' in html
    assert '<table id="table-leaderboard-our-runs">' in html
    assert "<td>83.3</td>" in html and "<td>50.0 [0.0, 100.0] (1 failed)</td>" in html
    assert "<script" not in html
    assert "Paper (reference, not our runs)" in html


def test_per_benchmark_csv(built_report):
    out, _ = built_report
    with (out / "per_benchmark.csv").open() as f:
        rows = {(r["method"], r["task"]): r for r in csv.DictReader(f)}
    assert set(rows) == {
        ("none", "vnbench_sttm"), ("none", "videomme_sttm"), ("none", "mlvu_sttm"),
        ("sttm", "vnbench_sttm"), ("sttm", "videomme_sttm"),
    }  # fmt: skip
    vnb = rows[("sttm", "vnbench_sttm")]
    assert float(vnb["ttft_s"]) == (0.4 + 0.6) / 2
    assert float(vnb["ttft_all_s"]) == (0.4 + 0.08 + 0.6 + 0.09) / 4
    assert float(vnb["retained_pct"]) == 37.5 and float(vnb["nv"]) == 200.0 and float(vnb["frames"]) == 5.0
    vmme = rows[("sttm", "videomme_sttm")]
    assert vmme["answers"] == "1" and vmme["failed"] == "1" and vmme["n_effective"] == "2"


def test_breakdowns_from_the_samples_logs(built_report):
    out, _ = built_report
    with (out / "breakdowns.csv").open() as f:
        got = {
            (r["row"].split()[2], r["benchmark"], r["field"], r["value"]): float(r["acc"])
            for r in csv.DictReader(f)
        }
    # unreduced VNBench: short docs 0, 1 right; long doc 2 right, 3 wrong; count 0, 2 right; order 1 right, 3 wrong
    assert got[("none", "VNBench", "duration", "short")] == 100.0
    assert got[("none", "VNBench", "duration", "long")] == 50.0
    assert got[("none", "VNBench", "task_type", "order")] == 50.0
    assert got[("sttm", "VNBench", "task_type", "count")] == 100.0
    assert got[("sttm", "VNBench", "task_type", "order")] == 0.0
    md = (out / "breakdowns.md").read_text()
    assert "### VNBench: accuracy by duration" in md and "| short | long |" in md


def test_provenance_lists_versions_settings_and_command(built_report):
    out, _ = built_report
    with (out / "runs.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert [r["model_args"] for r in runs][1] == STTM_ARGS
    # the fixture runs carry no provenance record: no versions are made up; lmms-eval's own field
    # (the git commit of the directory it ran in) is shown as such
    assert all(r["lmms_eval_version"] == "" and r["cwd_commit"] == "abc1234" for r in runs)
    assert runs[0]["date"] == "2025-01-01 10:00:00"
    assert runs[1]["tasks"] == "videomme_sttm vnbench_sttm" and runs[1]["failed"] == "1"
    assert runs[1]["command"].startswith("python -m lmms_eval --model llava_video_sttm --model_args ")
    assert "--log_samples --output_path" in runs[1]["command"]


def test_cli_entry_point(runs_root, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "lmms_sttm.report", str(runs_root), "--out", str(out), "--paper", "none"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"leaderboard.md: {out / 'leaderboard.md'}" in proc.stdout
    assert not (out / "paper_reference.csv").exists()
    assert "Paper (reference" not in (out / "leaderboard.md").read_text()
