"""A real results file of ours: only metrics in it, lmms-eval's ``make_table`` and W&B logger work on it.

One lmms-eval run (``sttm_oracle``, the synthetic task and a tiny VNBench) with
``--wandb_args mode=offline``: lmms-eval swallows W&B errors, so the test looks for the results
table in the offline run folder. (``--wandb_log_samples`` fails inside lmms-eval 0.7.3 for every
task: its tracker pops ``arguments`` from the samples before the W&B logger reads them.)
"""

from __future__ import annotations

import copy
import glob
from pathlib import Path

import pytest
from lmms_eval.utils import make_table

from lmms_sttm.report.breakdowns import breakdown_records
from tests.conftest import run_lmms_eval
from tests.tasks import tiny_benchmarks as tiny

pytestmark = pytest.mark.e2e
TASKS = ("synthetic_needle_sttm", "vnbench_sttm")
# sttm_oracle hands lmms-eval plain text (no per-answer statistics): no efficiency metrics; the
# breakdown groups of the tiny VNBench file are metrics of their own
METRICS = {
    "synthetic_needle_sttm": {"sttm_acc"},
    "vnbench_sttm": {"sttm_acc", "official_acc", "unparsed"}
    | {f"acc_{field}={r[field]}" for r in tiny.vnbench_records() for field in ("duration", "task_type")}
    | {f"circular_task_type={r['task_type']}" for r in tiny.vnbench_records()},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, offline_env):
    root = tiny.build(tmp_path_factory.mktemp("tiny_root"))
    work = tmp_path_factory.mktemp("wandb")
    out = work / "out"
    env = dict(offline_env, LMMS_STTM_DATA_ROOT=str(root), WANDB_MODE="offline", WANDB_DIR=str(work))
    env.update(WANDB_SILENT="true", WANDB_DISABLE_GIT="true")
    args = ["--model", "sttm_oracle", "--model_args", "fallback=A", "--tasks", ",".join(TASKS)]
    args += ["--wandb_args", f"project=sttm_test,mode=offline,dir={work}"]
    results, samples = run_lmms_eval(args, out, env)
    return results, samples, work


def test_results_hold_only_metrics(run):
    results = run[0]
    for task, metrics in METRICS.items():
        names = {key.split(",")[0] for key in results["results"][task] if key != "alias"}
        names = {
            n.removesuffix("_stderr_clt").removesuffix("_stderr_clustered").removesuffix("_stderr")
            for n in names
        }
        assert names == metrics, task


def test_make_table_renders_every_metric(run):
    results = copy.deepcopy(run[0])
    table = make_table(results)
    for task, metrics in METRICS.items():
        for metric in metrics:
            assert any(task in line and f"|{metric}" in line for line in table.splitlines()), (task, metric)


def test_wandb_logger_writes_table_results_and_samples_offline(run):
    work = run[2]
    (run_dir,) = glob.glob(str(work / "wandb" / "offline-run-*"))
    files = [str(Path(p).relative_to(run_dir)) for p in glob.glob(f"{run_dir}/**/*", recursive=True)]
    tables = [f for f in files if f.endswith(".table.json")]
    assert any("evaluation/eval_results" in f for f in tables), files  # the results table


def test_samples_keep_the_record_for_the_report(run):
    samples = run[1]["vnbench_sttm"]
    record = samples[0]["sttm_acc"]
    assert {"question_id", "video_id", "task_type", "duration", "correct", "try"} <= set(record)
    assert "question_id" not in samples[0]  # not a metric any more
    task = type(
        "T", (), {"samples": samples, "column": type("C", (), {"key": "vnbench", "label": "VNBench"})()}
    )()
    rows = breakdown_records([type("R", (), {"label": "r", "tasks": {"v": task}})()])
    assert {(r["field"], r["value"]) for r in rows} >= {("duration", "short"), ("task_type", "cnt_edit1")}
    assert sum(r["questions"] for r in rows if r["field"] == "task_type") == len(samples)
