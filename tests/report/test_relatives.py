"""Every number of the two-run leaderboard, recomputed by hand from the fixture literals."""

from __future__ import annotations

import csv

import pytest

from lmms_sttm.report.build import collect
from tests.report.fixture_runs import PRETRAINED

# By hand from tests/report/fixture_runs.py:
# unreduced: VNBench 3/4 right, cold prefills 1000 and 1400 ms, 400/600 tokens; VideoMME 1/2, 2000/2600 ms,
#            800/1000 tokens; MLVU 2/2, 1500/1700 ms, 500 tokens.
# STTM:      VNBench 2/4, cold 400 and 600 ms, kept 100/400 and 300/600; VideoMME doc 0 right (700 ms,
#            200/800 kept), doc 1 failed (wrong); no MLVU. R.TTFT compares the questions prefilled on
#            both sides.
R_ACC = {"vnbench_sttm": 100 * 50.0 / 75.0, "videomme_sttm": 100 * 50.0 / 50.0}
R_TTFT = {
    "vnbench_sttm": 100 * ((0.4 + 0.6) / 2) / ((1.0 + 1.4) / 2),
    "videomme_sttm": 100 * 0.7 / 2.0,  # doc 1 failed in the STTM run: doc 0 on both sides
}
R_NV = {"vnbench_sttm": (25.0 + 25.0 + 50.0 + 50.0) / 4, "videomme_sttm": 25.0}


def _rows(runs_root):
    report = collect([runs_root / "none", runs_root / "sttm"])
    by_method = {r.method: r for r in report.rows}
    return report, by_method["none"], by_method["sttm"]


def test_per_benchmark_relatives_are_ratios_to_the_unreduced_run(runs_root):
    report, none, sttm = _rows(runs_root)
    rel = report.rels[sttm.key]
    assert rel.reference is none
    assert set(rel.per_task) == {"vnbench_sttm", "videomme_sttm"}
    for task in R_ACC:
        b = rel.per_task[task]
        assert b.r_acc == pytest.approx(R_ACC[task], rel=1e-12)
        assert b.r_ttft == pytest.approx(R_TTFT[task], rel=1e-12)
        assert b.r_nv == pytest.approx(R_NV[task], rel=1e-12)


def test_row_relatives_are_means_of_per_benchmark_ratios(runs_root):
    report, _, sttm = _rows(runs_root)
    rel = report.rels[sttm.key]
    assert rel.average("r_acc") == (pytest.approx((R_ACC["vnbench_sttm"] + R_ACC["videomme_sttm"]) / 2), 2)
    assert rel.average("r_ttft") == (pytest.approx((R_TTFT["vnbench_sttm"] + R_TTFT["videomme_sttm"]) / 2), 2)
    assert rel.average("r_nv") == (pytest.approx((37.5 + 25.0) / 2), 2)
    # a mean of ratios, not a ratio of means: the pooled token ratio would be (200+200)/(500+900)
    assert rel.average("r_nv")[0] != pytest.approx(100 * 400 / 1400)


def test_absolute_columns_and_csv(runs_root, tmp_path):
    from lmms_sttm.report import build_report

    build_report([runs_root], tmp_path / "out")
    with (tmp_path / "out" / "leaderboard.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"none", "sttm"}
    none, sttm = rows["none"], rows["sttm"]
    assert none["pretrained"] == sttm["pretrained"] == PRETRAINED
    assert sttm["setting"] == "tau_s=0.9,tau_t=0.8"
    assert float(none["acc_vnbench"]) == 75.0 and float(none["acc_mlvu"]) == 100.0
    assert float(none["avg_acc"]) == pytest.approx((75.0 + 50.0 + 100.0) / 3)
    assert float(none["nv"]) == pytest.approx((500.0 + 900.0 + 500.0) / 3)
    assert float(none["ttft_s"]) == pytest.approx((1.2 + 2.3 + 1.6) / 3)
    assert none["r_acc"] == none["r_ttft"] == none["r_nv"] == ""
    assert sttm["acc_mlvu"] == "" and sttm["failed_mlvu"] == ""  # missing, never 0
    assert float(sttm["avg_acc"]) == 50.0 and sttm["avg_acc_benchmarks"] == "2"
    assert float(sttm["nv"]) == pytest.approx((200.0 + 200.0) / 2)
    assert float(sttm["ttft_s"]) == pytest.approx((0.5 + 0.7) / 2)
    assert sttm["failed_videomme"] == "1" and sttm["failed_vnbench"] == "0"
    assert float(sttm["r_acc"]) == pytest.approx(sum(R_ACC.values()) / 2, rel=1e-12)
    assert float(sttm["r_ttft"]) == pytest.approx(sum(R_TTFT.values()) / 2, rel=1e-12)
    assert float(sttm["r_nv"]) == pytest.approx(31.25, rel=1e-12)
    assert "none" in sttm["reference"]


def test_markdown_cells(built_report):
    out, _ = built_report
    md = (out / "leaderboard.md").read_text()
    board = md.split("### Leaderboard (our runs)")[1].split("###")[0]
    lines = [line for line in board.splitlines() if line.startswith("| llava_video_sttm")]
    assert len(lines) == 2
    cells = [c.strip() for c in lines[1].strip("|").split("|")]
    header = [c.strip() for c in board.splitlines()[2].strip("|").split("|")]
    row = dict(zip(header, cells, strict=True))
    assert row["Method"] == "sttm"
    # clustered standard error by hand (videos v0, v1 each: one right, one wrong; scores 100/0, mean 50):
    # CLT part var(ddof=1)/n = (4 * 50**2 / 3) / 4; within-video cross terms 2 * (50 * -50) per video / n**2
    se = (4 * 50**2 / 3 / 4 + 2 * 2 * (50 * -50) / 16) ** 0.5
    assert se == pytest.approx(14.4338, abs=1e-4)
    assert (
        row["VNBench"] == f"50.0 [{50 - 1.959964 * se:.1f}, {50 + 1.959964 * se:.1f}]" == "50.0 [21.7, 78.3]"
    )
    # VideoMME: w0 right, w1 failed (wrong): two one-question videos, standard error sqrt(var / n) = 50
    assert row["VideoMME"] == "50.0 [0.0, 100.0] (1 failed)"  # 50 -/+ 98, clipped to 0..100
    assert row["MLVU"] == "—"
    avg_se = (se**2 + 50**2) ** 0.5 / 2  # the mean of two independent benchmarks
    assert 50 - 1.959964 * avg_se < 0 and row["Avg"] == "50.0 [0.0, 100.0] (2/3)"
    assert row["NV"] == "200"
    assert row["TTFT (s)"] == "0.600"
    assert row["R.Acc"] == f"{sum(R_ACC.values()) / 2:.1f}" == "83.3"
    value, interval = row["R.TTFT [90%]"].split(" ", 1)
    assert value == f"{sum(R_TTFT.values()) / 2:.0f}"
    low, high = (float(v) for v in interval.strip("[]").split(", "))
    assert low <= sum(R_TTFT.values()) / 2 <= high
    assert row["Speed control"] == "100"  # the fixture's vision-tower times are 50 ms in both runs
    assert row["R.NV"] == "31.2"
    assert "VideoMME: 1 failed answers" in row["Notes"]


def test_query_aware_ttft_compares_the_questions_the_reference_prefilled(tmp_path):
    """A FastV-like row prefills every question; the unreduced run (kv_reuse) only each video's first.

    Headline TTFT and R.TTFT use docs 0 and 2 on both sides; TTFT all keeps every answer."""
    from tests.report.fixture_runs import NONE_ARGS, Q, TaskSpec, unreduced_tasks, write_run

    write_run(tmp_path / "none", NONE_ARGS, {"vnbench_sttm": unreduced_tasks()["vnbench_sttm"]})
    fastv = [
        Q(0, True, "v0", 400, 200, 600.0, False, 4),
        Q(1, True, "v0", 400, 200, 500.0, False, 4),
        Q(2, True, "v1", 600, 300, 800.0, False, 6),
        Q(3, True, "v1", 600, 300, 700.0, False, 6),
    ]
    args = f"pretrained={PRETRAINED},method=fastv,budget=50"
    write_run(tmp_path / "fastv", args, {"vnbench_sttm": TaskSpec(fastv)}, timestamp="20250101_110000")
    report = collect([tmp_path])
    row = next(r for r in report.rows if r.method == "fastv")
    b = report.rels[row.key].per_task["vnbench_sttm"]
    assert b.ttft_questions == 2 and b.ttft_s == pytest.approx((0.6 + 0.8) / 2)
    assert b.r_ttft == pytest.approx(100 * ((0.6 + 0.8) / 2) / ((1.0 + 1.4) / 2), rel=1e-12)
    m = row.measures["vnbench_sttm"]
    assert m.ttft_s == b.ttft_s and m.ttft_all_s == pytest.approx((0.6 + 0.5 + 0.8 + 0.7) / 4)
    assert m.ttft_questions == 2 and not b.reasons
    none = next(r for r in report.rows if r.method == "none").measures["vnbench_sttm"]
    assert none.ttft_s == pytest.approx(1.2) and none.ttft_questions == 2
    assert 100 * m.ttft_s / none.ttft_s == pytest.approx(b.r_ttft, rel=1e-12)  # the columns agree
