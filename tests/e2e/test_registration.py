"""lmms-eval resolves the plugin's model and tasks as users call it: no --include_path, 1 or 2 processes."""

from __future__ import annotations

import shutil
import sys

import pytest

from lmms_sttm._task_path import TASKS_DIR
from tests.conftest import free_port, run_lmms_eval, torchrun

pytestmark = pytest.mark.e2e

ARGS = ["--model", "sttm_oracle", "--tasks", "synthetic_needle_sttm"]


def _comparable(results: dict, samples: dict):
    # doc_ids depend on the world size (video-major order under several ranks): compare by question
    per_doc = {
        t: sorted((s["sttm_acc"]["question_id"], s["filtered_resps"], s["sttm_acc"]["score"]) for s in rows)
        for t, rows in samples.items()
    }
    return results["results"], results["n-samples"], per_doc


@pytest.fixture(scope="module")
def single(tmp_path_factory, offline_env):
    out = tmp_path_factory.mktemp("single") / "out"
    return run_lmms_eval(ARGS, out, offline_env)


def test_single_process_finds_model_and_task(single):
    results, samples = single
    assert results["n-samples"]["synthetic_needle_sttm"] == {"original": 16, "effective": 16}
    # The oracle reads the needle colour from the decoded pixels: every answer is right.
    assert results["results"]["synthetic_needle_sttm"]["sttm_acc,none"] == 100.0
    assert [s["doc_id"] for s in samples["synthetic_needle_sttm"]] == list(range(16))
    assert results["config"]["model"] == "sttm_oracle"


def test_two_processes_accelerate_equal_single(single, tmp_path, offline_env):
    env = dict(offline_env, ACCELERATE_USE_CPU="1")
    accelerate = shutil.which("accelerate", path=str(__import__("pathlib").Path(sys.executable).parent))
    launcher = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
    ]
    two = run_lmms_eval(ARGS, tmp_path / "out", env, launcher=launcher)
    assert _comparable(*two) == _comparable(*single)


def test_two_processes_torchrun_equal_single(single, tmp_path, offline_env):
    launcher = torchrun()
    two = run_lmms_eval(ARGS, tmp_path / "out", offline_env, launcher=launcher)
    assert _comparable(*two) == _comparable(*single)


def test_explicit_include_path_still_works(single, tmp_path, offline_env):
    again = run_lmms_eval([*ARGS, "--include_path", TASKS_DIR], tmp_path / "out", offline_env)
    assert _comparable(*again) == _comparable(*single)
