"""Each registered model name through `python -m lmms_eval` on tiny checkpoints and synthetic clips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmms_sttm.data.tiny import build_tiny
from tests.conftest import by_question, free_port, read_run, run_lmms_eval, stats_rows, torchrun, untimed

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
    return sorted(stats_rows(out), key=lambda r: r["doc_id"])


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


def test_two_processes_equal_one(single_runs, checkpoints, tmp_path, offline_env):
    name = "llava_video_sttm"
    launcher = torchrun()
    results, samples = run_lmms_eval(_args(name, checkpoints[name]), tmp_path / "out", offline_env, launcher)
    stats = _stats(tmp_path / "out")
    one_results, one_samples, one_stats = single_runs[name]
    assert untimed(results["results"]) == untimed(one_results["results"])
    assert sorted((r["sttm_acc"]["question_id"], r["filtered_resps"]) for r in samples[TASK]) == sorted(
        (r["sttm_acc"]["question_id"], r["filtered_resps"]) for r in one_samples[TASK]
    )
    assert {s["rank"] for s in stats} == {0, 1}
    assert by_question(samples, stats, TASK) == by_question(one_samples, one_stats, TASK)
    # the video-major document order keeps both questions of a clip on one rank: reuse survives sharding
    assert sum(s["prefix_reused"] for s in stats) == 8


def two_nodes(port: int) -> list[str]:
    """One "node" of a 2-node torchrun on localhost: 1 process, c10d rendezvous on 127.0.0.1."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "sttm-two-nodes",
        "--local_addr", "127.0.0.1",
    ]  # fmt: skip


def test_two_nodes_equal_one(single_runs, checkpoints, tmp_path, offline_env):
    """Two torchrun agents ("nodes") sharing one output folder, as on a cluster's shared filesystem."""
    name, out = "llava_video_sttm", tmp_path / "out"
    cmd = [*two_nodes(free_port()), "-m", "lmms_eval", *_args(name, checkpoints[name])]
    cmd += ["--batch_size", "1", "--log_samples", "--output_path", str(out)]
    nodes = [
        subprocess.Popen(
            cmd,
            env=offline_env,
            cwd=str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    rc = max(node.returncode for node in nodes)
    results, samples = read_run(out, rc, "\n".join(log[-4000:] for log in logs))
    stats = _stats(out)
    one_results, one_samples, one_stats = single_runs[name]
    assert untimed(results["results"]) == untimed(one_results["results"])
    assert sorted((r["sttm_acc"]["question_id"], r["filtered_resps"]) for r in samples[TASK]) == sorted(
        (r["sttm_acc"]["question_id"], r["filtered_resps"]) for r in one_samples[TASK]
    )
    # statistics per global rank: one file each, every record naming its file's rank
    files = sorted(p.name for p in (out / "sttm_stats").glob("*.jsonl"))
    assert files == [f"{name}_rank0.jsonl", f"{name}_rank1.jsonl"]
    for r in (0, 1):
        rows = (out / "sttm_stats" / f"{name}_rank{r}.jsonl").read_text().splitlines()
        assert rows and {json.loads(line)["rank"] for line in rows} == {r}
    assert by_question(samples, stats, TASK) == by_question(one_samples, one_stats, TASK)
    # video-major sharding across the nodes: each clip's questions on one rank, its prefix reused
    qid = {r["doc_id"]: r["sttm_acc"]["question_id"] for r in samples[TASK]}
    rank_of_clip: dict[str, set] = {}
    for s in stats:
        rank_of_clip.setdefault(qid[s["doc_id"]].rsplit("-", 1)[0], set()).add(s["rank"])
    assert len(rank_of_clip) == 8 and all(len(ranks) == 1 for ranks in rank_of_clip.values())
    assert sum(s["prefix_reused"] for s in stats) == 8
