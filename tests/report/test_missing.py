"""Missing, partial and incomparable runs are shown as such, and bad inputs fail loudly."""

from __future__ import annotations

import json

import pytest

from lmms_sttm.report import ReportError
from lmms_sttm.report.__main__ import main
from lmms_sttm.report.build import collect
from tests.report.fixture_runs import (
    NONE_ARGS,
    PRETRAINED,
    STTM_ARGS,
    STTM_PARAMS,
    Q,
    TaskSpec,
    sttm_tasks,
    write_run,
)


def _rel(report, **match):
    row = next(r for r in report.rows if all(getattr(r, k) == v for k, v in match.items()))
    return row, report.rels[row.key]


def test_other_frames_are_not_compared(runs_root):
    write_run(runs_root / "f64", STTM_ARGS + ",max_frames=64", sttm_tasks(), timestamp="20250101_120000")
    report = collect([runs_root])
    row, rel = _rel(report, setting={"max_frames": "64", "tau_s": "0.9", "tau_t": "0.8"})
    assert rel.reference is None and rel.per_task == {}
    assert "other frames" in rel.reason and "max_frames=64" in rel.reason
    assert rel.average("r_acc") == (None, 0)


def test_other_checkpoint_has_no_reference(runs_root):
    write_run(
        runs_root / "other", "pretrained=/ckpt/x/Other-7B,method=sttm,tau_s=0.9,tau_t=0.8", sttm_tasks()
    )
    report = collect([runs_root])
    _, rel = _rel(report, pretrained="/ckpt/x/Other-7B")
    assert rel.reference is None
    assert rel.reason == "no unreduced (method=none) run of llava_video_sttm with pretrained=/ckpt/x/Other-7B"


def test_other_model_same_checkpoint_is_not_compared(runs_root):
    write_run(
        runs_root / "ov",
        f"pretrained={PRETRAINED},method=sttm,budget=50",
        sttm_tasks(),
        model="llava_onevision_sttm",
    )
    report = collect([runs_root])
    _, rel = _rel(report, model="llava_onevision_sttm")
    assert rel.reference is None and "another model (llava_video_sttm)" in rel.reason


def test_limited_run_is_partial_and_not_compared(tmp_path):
    from tests.report.fixture_runs import unreduced_tasks

    tasks = sttm_tasks()
    tasks["vnbench_sttm"] = TaskSpec(tasks["vnbench_sttm"].questions[:2], n_original=4, params=STTM_PARAMS)
    write_run(tmp_path / "runs" / "none", NONE_ARGS, unreduced_tasks())
    write_run(tmp_path / "runs" / "limited", STTM_ARGS, tasks, limit=2, timestamp="20250101_130000")
    report = collect([tmp_path / "runs"])
    _, rel = _rel(report, method="sttm")
    vnb = rel.per_task["vnbench_sttm"]
    assert vnb.r_acc is None and vnb.reasons == ["different questions (2 vs 4 in the unreduced run)"]
    assert rel.per_task["videomme_sttm"].r_acc == pytest.approx(100.0)
    assert rel.average("r_acc") == (pytest.approx(100.0), 1)

    from lmms_sttm.report.build import write

    write(report, tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    board = md.split("### Leaderboard (our runs)")[1].split("###")[0]
    header = [c.strip() for c in board.splitlines()[2].strip("|").split("|")]
    line = next(s for s in board.splitlines() if s.startswith("| llava_video_sttm |") and "| sttm |" in s)
    row = dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True))
    assert row["VNBench"] == "50.0 (2/4)"  # 1 of the 2 questions asked (of 4) answered right
    assert row["R.Acc"] == "100.0 (1/2)"
    assert "VNBench: partial, 2 of 4 questions" in row["Notes"]
    assert "VNBench: different questions (2 vs 4 in the unreduced run)" in row["Notes"]


def test_frames_differing_per_question_are_not_compared(runs_root):
    tasks = sttm_tasks()
    q = tasks["vnbench_sttm"].questions[0]
    q.frames, q.visual_tokens = 8, 800
    write_run(runs_root / "sttm", STTM_ARGS, tasks, timestamp="20250101_110000")
    report = collect([runs_root])
    _, rel = _rel(report, method="sttm")
    reasons = rel.per_task["vnbench_sttm"].reasons
    assert len(reasons) == 1 and reasons[0].startswith("frames or visual tokens differ on 1 questions (doc 0")
    assert rel.per_task["videomme_sttm"].r_acc == pytest.approx(100.0)


def test_statistics_of_another_run_are_ignored(runs_root):
    stats = runs_root / "sttm" / "sttm_stats"
    for f in stats.glob("*.jsonl"):
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        for r in lines:
            r["method"] = "none" if r.get("error") is None else None
        f.write_text("".join(json.dumps(r) + "\n" for r in lines))
    report = collect([runs_root])
    row, rel = _rel(report, method="sttm")
    assert "vnbench_sttm" not in row.measures  # NV and TTFT unknown, not zero
    # with none of its records left, a task's failure records cannot be trusted either
    assert row.tasks["videomme_sttm"].failures == [] and "videomme_sttm" not in row.measures
    assert rel.per_task["vnbench_sttm"].r_nv is None
    assert any("ignored statistics records" in w and "method=none" in w for w in report.warnings)


def test_same_task_rerun_uses_the_newer_run(runs_root):
    tasks = {"vnbench_sttm": sttm_tasks()["vnbench_sttm"]}
    tasks["vnbench_sttm"].questions[1].correct = True  # 3 of 4 now
    write_run(runs_root / "sttm2", STTM_ARGS, tasks, timestamp="20250102_090000")
    report = collect([runs_root])
    row, rel = _rel(report, method="sttm")
    assert len(row.runs) == 2 and row.tasks["vnbench_sttm"].accuracy == 75.0
    assert row.tasks["videomme_sttm"].accuracy == 50.0  # still from the first run
    assert any("replaces the older 20250101_110000_results.json" in n for n in row.notes)
    assert rel.per_task["vnbench_sttm"].r_acc == pytest.approx(100.0)


def test_missing_statistics_leave_nv_and_ttft_empty(tmp_path):
    write_run(tmp_path / "none", NONE_ARGS, {"vnbench_sttm": sttm_tasks()["vnbench_sttm"]}, with_stats=False)
    report = collect([tmp_path])
    row = report.rows[0]
    assert row.measures == {}
    assert any("no sttm_stats files found" in w for w in report.warnings)


def test_directory_without_results_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"empty: no lmms-eval results file \(\*_results.json\)"):
        collect([tmp_path / "empty"])
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no lmms-eval results file" in capsys.readouterr().err
    with pytest.raises(ReportError, match="no such file or directory"):
        collect([tmp_path / "absent"])


def test_unreadable_results_file_names_the_file(tmp_path):
    bad = tmp_path / "run" / "x" / "20250101_000000_results.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(
        ReportError, match="20250101_000000_results.json: not a readable lmms-eval results file"
    ):
        collect([tmp_path / "run"])


def test_failed_answer_without_reference_is_still_counted(tmp_path):
    tasks = {"vnbench_sttm": TaskSpec([Q(0, True), Q(1, False, error="boom")], params=STTM_PARAMS)}
    write_run(tmp_path / "s", STTM_ARGS, tasks)
    report = collect([tmp_path])
    row = report.rows[0]
    assert row.measures["vnbench_sttm"].failed == 1 and row.measures["vnbench_sttm"].answers == 1


def test_model_without_method_is_not_a_reduction_row(runs_root):
    tasks = {"vnbench_sttm": TaskSpec([Q(0, True), Q(1, True)])}
    write_run(runs_root / "oracle", "", tasks, model="sttm_oracle", with_stats=False)
    report = collect([runs_root])
    row, rel = _rel(report, model="sttm_oracle")
    assert (row.method, row.pretrained, row.checkpoint) == ("n/a", "", "—")
    assert row.tasks["vnbench_sttm"].accuracy == 100.0 and row.measures == {}
    assert rel.reason == "sttm_oracle is not a token-reduction run (no method= argument)"
    # the unreduced row of the real model is still the STTM row's reference
    _, sttm_rel = _rel(report, method="sttm")
    assert sttm_rel.reference is not None and sttm_rel.reference.model == "llava_video_sttm"


def test_metric_override_reads_another_key(runs_root, tmp_path):
    for path in runs_root.rglob("*_results.json"):
        data = json.loads(path.read_text())
        data["results"]["vnbench_sttm"]["official_acc,none"] = (
            40.0 if "none" in str(path.parent.parent.name) else 20.0
        )
        path.write_text(json.dumps(data))
    report = collect([runs_root], metric_overrides={"vnbench_sttm": "official_acc"})
    none = next(r for r in report.rows if r.method == "none")
    _, rel = _rel(report, method="sttm")
    assert none.tasks["vnbench_sttm"].accuracy == 40.0 and none.tasks["videomme_sttm"].accuracy == 50.0
    assert rel.per_task["vnbench_sttm"].r_acc == pytest.approx(50.0)
    assert main([str(runs_root), "--out", str(tmp_path / "o"), "--metric", "vnbench_sttm=missing_key"]) == 0
    md = (tmp_path / "o" / "leaderboard.md").read_text()
    assert "vnbench_sttm: no numeric 'missing_key,none'" in md


def test_reference_is_the_unreduced_run_with_the_same_other_settings(runs_root):
    from tests.report.fixture_runs import unreduced_tasks

    write_run(
        runs_root / "none_bf16", NONE_ARGS + ",dtype=bfloat16", unreduced_tasks(), timestamp="20250101_090000"
    )
    write_run(
        runs_root / "sttm_fp16", STTM_ARGS + ",dtype=float16", sttm_tasks(), timestamp="20250101_140000"
    )
    report = collect([runs_root])
    _, rel = _rel(report, method="sttm", setting={"tau_s": "0.9", "tau_t": "0.8"})
    assert rel.reference is not None and rel.reference.setting == {}
    _, rel16 = _rel(report, method="sttm", setting={"dtype": "float16", "tau_s": "0.9", "tau_t": "0.8"})
    assert rel16.reference is None
    assert (
        rel16.reason
        == "several unreduced runs could be the reference (default; dtype=bfloat16); report them separately"
    )
