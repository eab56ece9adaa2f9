"""Each registered model name through `python -m lmms_eval` on tiny checkpoints and synthetic clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmms_sttm.data.tiny import build_tiny
from tests.conftest import run_lmms_eval, torchrun

pytestmark = pytest.mark.e2e

MODELS = {
    "llava_video_sttm": "llava_video",
    "llava_onevision_sttm": "llava_onevision",
    "qwen2_vl_sttm": "qwen2_vl",
    "qwen2_5_vl_sttm": "qwen2_5_vl",
}
TASK = "synthetic_needle_sttm"
GOLD = Path(__file__).resolve().parents[2] / "lmms_sttm" / "tasks" / "synthetic" / "synthetic_needle.json"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {name: str(build_tiny(arch, root / arch)) for name, arch in MODELS.items()}


def _args(name: str, ckpt: str) -> list[str]:
    return ["--model", name, "--model_args", f"pretrained={ckpt},tau_s=0.9,tau_t=0.8", "--tasks", TASK]


def _stats(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "sttm_stats").glob("*_rank*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines()]
    return sorted(rows, key=lambda r: r["doc_id"])


@pytest.fixture(scope="module")
def single_runs(checkpoints, tmp_path_factory, offline_env):
    runs = {}
    for name, ckpt in checkpoints.items():
        out = tmp_path_factory.mktemp(name) / "out"
        runs[name] = (*run_lmms_eval(_args(name, ckpt), out, offline_env), _stats(out))
    return runs


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_runs_end_to_end_with_statistics(name, single_runs):
    results, samples, stats = single_runs[name]
    assert results["n-samples"][TASK]["effective"] == 16
    rows = samples[TASK]
    # the accuracy is the share of questions whose parsed letter is the gold one of the task's
    # file, recounted here from the logged letters
    gold = {q["question_id"]: q["answer"] for q in json.loads(GOLD.read_text())}
    correct = [r["sttm_acc"]["pred"] == gold[r["sttm_acc"]["question_id"]] for r in rows]
    assert all(r["sttm_acc"]["pred"] in ("", "A", "B", "C", "D") for r in rows)
    assert results["results"][TASK]["sttm_acc,none"] == pytest.approx(100.0 * sum(correct) / len(rows))
    assert [r["doc_id"] for r in rows] == list(range(16))
    assert all(r["token_counts"][0]["input_tokens"] > 0 for r in rows)
    assert [s["doc_id"] for s in stats] == list(range(16))
    assert all(s["error"] is None for s in stats)
    assert all(0 < s["visual_tokens_kept"] <= s["visual_tokens"] for s in stats)
    # two questions per clip, one process: every second question reuses its video's prefix
    assert sum(s["prefix_reused"] for s in stats) == 8
    assert [s["answer"] for s in stats] == [r["filtered_resps"] for r in rows]


def _by_question(samples: dict, stats: list[dict]) -> dict:
    """question_id -> (answer, visual tokens, kept): doc_ids differ between world sizes."""
    qid = {r["doc_id"]: r["sttm_acc"]["question_id"] for r in samples[TASK]}
    return {qid[s["doc_id"]]: (s["answer"], s["visual_tokens"], s["visual_tokens_kept"]) for s in stats}


def test_two_processes_equal_one(single_runs, checkpoints, tmp_path, offline_env):
    name = "llava_video_sttm"
    launcher = torchrun()
    results, samples = run_lmms_eval(_args(name, checkpoints[name]), tmp_path / "out", offline_env, launcher)
    stats = _stats(tmp_path / "out")
    one_results, one_samples, one_stats = single_runs[name]
    assert results["results"] == one_results["results"]
    assert sorted((r["sttm_acc"]["question_id"], r["filtered_resps"]) for r in samples[TASK]) == sorted(
        (r["sttm_acc"]["question_id"], r["filtered_resps"]) for r in one_samples[TASK]
    )
    assert {s["rank"] for s in stats} == {0, 1}
    assert _by_question(samples, stats) == _by_question(one_samples, one_stats)
    # the video-major document order keeps both questions of a clip on one rank: reuse survives sharding
    assert sum(s["prefix_reused"] for s in stats) == 8
