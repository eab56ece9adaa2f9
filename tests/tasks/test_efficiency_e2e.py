"""Efficiency metrics and run provenance in lmms-eval's own outputs, from one real run.

A tiny LLaVA-Video checkpoint answers ``synthetic_needle_sttm`` and ``vnbench_sttm`` (the tiny
data root's VNBench file and clips) through ``accelerate launch --num_processes 2 -m lmms_eval``
with ``--wandb_args`` in offline mode. Checked against the per-answer statistics files written by
the same run (computed here by hand): the results JSON carries every efficiency metric per task;
the offline W&B run's summary holds the same values; each breakdown group is a number of its own;
the leaderboard's ``runs.csv`` names the installed versions, this checkout's commit, the device,
the thread count and the launcher's exact command line.
"""

from __future__ import annotations

import csv
import glob
import json
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from lmms_sttm.report import build_report
from lmms_sttm.tasks.common.efficiency import EFFICIENCY_METRICS
from tests.conftest import REPO, free_port
from tests.tasks import tiny_benchmarks as tiny

pytestmark = pytest.mark.e2e
TASKS = ("synthetic_needle_sttm", "vnbench_sttm")


@pytest.fixture(scope="module")
def run(tmp_path_factory, offline_env, tiny_checkpoints):
    base = tmp_path_factory.mktemp("eff")
    root = tiny.build(base / "root")
    out = base / "out"
    env = dict(offline_env, LMMS_STTM_DATA_ROOT=str(root), WANDB_MODE="offline", WANDB_DIR=str(base),
               WANDB_SILENT="true", ACCELERATE_USE_CPU="1")  # fmt: skip
    ckpt = tiny_checkpoints("llava_video")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--main_process_port", str(free_port())]  # fmt: skip
    args = ["-m", "lmms_eval", "--model", "llava_video_sttm", "--model_args",
            f"pretrained={ckpt},method=sttm,tau_s=0.9,tau_t=0.8", "--tasks", ",".join(TASKS),
            "--batch_size", "1", "--log_samples", "--output_path", str(out),
            "--wandb_args", "project=lmms_sttm_test,mode=offline"]  # fmt: skip
    proc = subprocess.run(
        [*launch, *args], env=env, cwd=str(base), capture_output=True, text=True, timeout=900
    )
    files = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    assert proc.returncode == 0 and len(files) == 1, proc.stderr[-6000:]
    stats = [json.loads(line) for f in sorted((out / "sttm_stats").glob("*_rank*.jsonl"))
             for line in f.read_text().splitlines()]  # fmt: skip
    return json.loads(Path(files[0]).read_text()), stats, base, out, [*launch, *args]


def expected(stats: list[dict], task: str) -> dict[str, float]:
    """The efficiency metrics of one task, by hand from the statistics records."""
    recs = [r for r in stats if r["task"] == task and r["error"] is None]
    cold = [r for r in recs if not r["prefix_reused"]]

    def avg(rows, key):
        return sum(float(r[key]) for r in rows) / len(rows)

    return {
        "visual_tokens": avg(recs, "visual_tokens"),
        "visual_tokens_kept": avg(recs, "visual_tokens_kept"),
        "retained_pct": avg(recs, "retained_pct"),
        "ttft_ms": avg(cold, "prefill_ms"),
        "merge_ms": avg(cold, "merge_ms"),
    }


def test_results_json_has_efficiency_metrics_per_task(run):
    results, stats, *_ = run
    for task in TASKS:
        want = expected(stats, task)
        got = {name: results["results"][task][f"{name},none"] for name, _ in EFFICIENCY_METRICS}
        assert got == pytest.approx(want, rel=1e-9), task
        assert want["visual_tokens_kept"] < want["visual_tokens"]  # the run did reduce
        assert isinstance(results["results"][task]["ttft_ms_stderr_clt,none"], float)
        assert all(not isinstance(v, dict) for v in results["results"][task].values())


def test_breakdown_groups_are_metrics_with_clustered_stderr(run):
    results, *_ = run
    res = results["results"]["vnbench_sttm"]
    types = {r["task_type"] for r in tiny.vnbench_records()}
    assert {k.split(",")[0] for k in res if k.startswith("acc_task_type=") and "_stderr" not in k} == {
        f"acc_task_type={t}" for t in types
    }
    assert isinstance(res["sttm_acc_stderr_clustered,none"], float)


def wandb_history(base: Path) -> dict:
    """Every ``key: value`` logged as history in the offline W&B runs under ``base`` (the ``.wandb`` logs)."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    logged = {}
    for path in glob.glob(str(base / "wandb" / "offline-run-*" / "run-*.wandb")):
        store = datastore.DataStore()
        store.open_for_scan(path)
        while (data := store.scan_data()) is not None:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "history":
                for item in record.history.item:
                    logged[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return logged


def test_offline_wandb_run_logs_the_efficiency_metrics(run):
    results, _, base, *_ = run
    logged = wandb_history(base)
    for task in TASKS:
        for name, _ in EFFICIENCY_METRICS:
            assert logged[f"{task}/{name}"] == pytest.approx(results["results"][task][f"{name},none"]), name


def test_runs_csv_has_the_versions_device_and_launcher_command(run, tmp_path):
    _, _, _, out, cmd = run
    build_report([out], tmp_path / "board")
    with (tmp_path / "board" / "runs.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["lmms_eval_version"] == metadata.version("lmms-eval") == "0.7.3"
    assert row["transformers_version"] == metadata.version("transformers")
    assert row["torch_version"] == metadata.version("torch")
    assert row["accelerate_version"] == metadata.version("accelerate")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert row["lmms_sttm_commit"].removesuffix("-dirty") == head.stdout.strip()[:12]
    code = ["lmms_sttm", "scripts", "pyproject.toml", "setup.py", "requirements.lock"]  # the code that runs
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", *code],
                           capture_output=True, text=True).stdout.strip() != ""  # fmt: skip
    assert row["lmms_sttm_commit"].endswith("-dirty") == dirty
    assert row["device"].startswith("CPU: ") and torch.backends.cpu.get_cpu_capability() in row["device"]
    assert row["threads"] == "1"  # OMP_NUM_THREADS=1 in the run
    assert row["processes"] == "2"
    assert row["command"] == shlex.join(["python", *cmd[1:]])  # the launcher's line, as run
