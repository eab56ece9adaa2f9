"""The demo stops with a non-zero status and the failing run's last log lines when a run leaves no
results file (lmms-eval itself exits 0 after many failures)."""

from __future__ import annotations

import subprocess

import pytest

import lmms_sttm.demo as demo


def test_missing_results_file_fails_the_demo_with_the_log_tail(tmp_path, monkeypatch, capsys):
    def fake_run(cmd, env=None, stdout=None, stderr=None, **kw):
        if stdout is not None:  # the lmms-eval run: writes a log, exits 0, leaves no results file
            stdout.write("".join(f"line {i}\n" for i in range(100)) + "Traceback: boom\n")
            return subprocess.CompletedProcess(cmd, 0)
        raise AssertionError("the report must not run after a failed run")

    monkeypatch.setattr(demo.subprocess, "run", fake_run)
    monkeypatch.setattr(demo, "write_benchmark", lambda root, n: None)
    rc = demo.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--runs", "none"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "none FAILED" in err and "results file missing" in err
    assert "Traceback: boom" in err and "line 99" in err and "line 10\n" not in err  # the tail only


def test_demo_runs_cover_every_method_and_setting():
    tags = [t for t, _ in demo.demo_runs()]
    assert tags[:6] == [
        "none",
        "sttm_budget50",
        "sttm_budget30",
        "sttm_exact50",
        "sttm_exact30",
        "sttm_exact15",
    ]
    assert {t.rsplit("_", 1)[0] for t in tags[6:]} == {*demo.BASELINES, demo.EXAMPLE_METHOD}
    assert all("pretrained=lmms_sttm/organism/weights" in a for _, a in demo.demo_runs())


def test_side_sections_cover_every_method_at_exact_30():
    """Qwen3-VL and Qwen3.5 sections: unreduced, then STTM and every baseline at an exact 30%; the
    tiny hybrid runs with thinking off and HoliTom / FlashVID reading its first full-attention layer."""
    assert [s.name for s in demo.SIDES] == ["qwen3_vl", "qwen3_5"]
    for side in demo.SIDES:
        runs = side.runs("ckpt")
        prefix = {"qwen3_vl": "qwen3vl", "qwen3_5": "qwen35"}[side.name]
        assert [t for t, _ in runs] == [
            f"{prefix}_none",
            *(f"{prefix}_{m}_exact30" for m in ("sttm", *demo.BASELINES)),
        ]
        for _tag, args in runs[1:]:
            assert "budget_mode=exact,retention=0.3" in args and args.startswith("pretrained=ckpt")
    hybrid = dict(demo.qwen3_5_runs("ckpt"))
    assert all("enable_thinking=false" in a for a in hybrid.values())
    assert hybrid["qwen35_holitom_exact30"].endswith("inner_layer=4")
    assert hybrid["qwen35_flashvid_exact30"].endswith("prune_layer=4")


def _board(path, rows):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "setting", "avg_acc", "r_acc", "r_ttft", "r_nv"])
        w.writerows(rows)
    return path


def test_findings_paragraph_lists_each_band_in_tag_order_not_ranked(tmp_path):
    from lmms_sttm.demo import findings

    board = _board(
        tmp_path / "leaderboard.csv",
        [
            ["none", "default", "80.0", "", "", ""],
            ["tome", "budget=30", "75.0", "93.8", "55.0", "30.1"],
            ["sttm", "budget_mode=exact,retention=0.3", "70.0", "87.5", "65.0", "30.0"],
            ["pool", "budget=50", "78.0", "97.5", "60.0", "51.0"],
        ],
    )
    text = findings(board)
    assert "answers 80.0% of the tries" in text
    band30 = text.split("Keeping about 30% of the tokens: ")[1]
    # tag order (sttm_exact30 before tome_budget30), although tome scored higher in this run
    assert band30.index("sttm [budget_mode=exact,retention=0.3] 70.0%") < band30.index("tome")
    assert "tome [budget=30] 75.0% (R.Acc 94, R.TTFT 55)" in band30
    assert "Keeping about 50% of the tokens: pool [budget=50] 78.0%" in text
    assert "no order between rows is stated" in text and "scores above" not in text  # no draws given
    assert (
        findings(_board(tmp_path / "noref.csv", [["tome", "budget=30", "60.0", "75.0", "55.0", "30.1"]]))
        == ""
    )


def test_side_runs_alone_need_main_runs_for_the_leaderboard(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "write_benchmark", lambda root, n: None)
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    argv = ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--runs", "qwen3vl_none"]
    with pytest.raises(SystemExit) as stop:
        demo.main(argv)
    assert stop.value.code == 2
    assert "the leaderboard needs main runs" in capsys.readouterr().err
