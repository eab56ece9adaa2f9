"""``qwen3_5_sttm`` through lmms-eval on the tiny hybrid checkpoints (Gated DeltaNet layers with full
attention at layers 3 and 7): ``method=none``, every built-in method at an exact 30% and the MoE
checkpoint in one process; STTM, FastV (reading the full-attention layer), DyCoke (pruning the
full-attention layers' KV at decode time), FlashVID (two stages) and the MoE's STTM again in two
processes with identical answers; and one run with thinking on, whose answers follow ``</think>``.

To keep the suite short the runs share processes (``tests/e2e/many_runs.py``: lmms-eval's start-up
once for all one-process runs, once for all two-process runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmms_sttm.methods import registry
from tests.conftest import by_question, read_run, stats_rows, torchrun, untimed

pytestmark = pytest.mark.e2e

TASK = "synthetic_needle_sttm"
ROOT = Path(__file__).resolve().parents[2]
METHODS = sorted(registry.BUILTIN)
#: the 8-layer tiny hybrid's full-attention layers are 3 and 7: HoliTom's and FlashVID's inner
#: stages (18 and 20 of 28 layers, scaled: 5 and 6) would read layer 7, with no layer after it to
#: reduce (refused: tests/models/test_qwen3_5_model.py); here they run at layer 4, reading layer 3
LAYERS = {"holitom": ",inner_layer=4", "flashvid": ",prune_layer=4"}
TWO_PROCESSES = ("dense/sttm", "dense/fastv", "dense/dycoke", "dense/flashvid", "moe/sttm")
THINKING_BUDGET = 6


def model_args(ckpt: str, method: str, thinking: bool = False) -> str:
    budget = "" if method == "none" else ",budget_mode=exact,retention=0.3"
    think = f",max_thinking_tokens={THINKING_BUDGET}" if thinking else ",enable_thinking=false"
    # warmup=false: the untimed warm-up question is timing only (tests/gpu/test_warmup.py)
    return f"pretrained={ckpt},method={method}{budget}{LAYERS.get(method, '')}{think},warmup=false"


def run_many(runs: dict[str, str], out: Path, env: dict, launcher: list[str] | None = None) -> dict:
    """``{label: model_args}`` run one after another in one launch -> ``{label: (results, samples, stats)}``."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [
        ["--model", "qwen3_5_sttm", "--model_args", margs, "--tasks", TASK, "--batch_size", "1"]
        + ["--log_samples", "--output_path", str(out / label), "--verbosity", "WARNING"]
        for label, margs in runs.items()
    ]
    (out / "runs.json").write_text(json.dumps(argv))
    cmd = [*(launcher or [sys.executable]), "-m", "tests.e2e.many_runs", str(out / "runs.json")]
    proc = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=1200)
    log = f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    found = {}
    for label in runs:
        results, samples = read_run(out / label, proc.returncode, log)
        found[label] = (results, samples, stats_rows(out / label))
    return found


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints) -> dict[str, str]:
    return {"dense": tiny_checkpoints("qwen3_5"), "moe": tiny_checkpoints("qwen3_5_moe")}


@pytest.fixture(scope="module")
def one(checkpoints, tmp_path_factory, offline_env) -> dict:
    runs = {f"dense/{m}": model_args(checkpoints["dense"], m) for m in METHODS}
    runs.update({f"moe/{m}": model_args(checkpoints["moe"], m) for m in ("none", "sttm")})
    runs["thinking/sttm"] = model_args(checkpoints["dense"], "sttm", thinking=True)
    return run_many(runs, tmp_path_factory.mktemp("q35_one"), offline_env)


def test_every_method_in_one_process(one):
    assert sorted(label for label in one if label.startswith("dense/")) == [f"dense/{m}" for m in METHODS]
    for label, (results, _samples, stats) in one.items():
        method = label.split("/")[1]
        assert results["n-samples"][TASK]["effective"] == 16, label
        assert len(stats) == 16 and all(s["error"] is None for s in stats), label
        assert {s["method"] for s in stats} == {method} and {s["model"] for s in stats} == {"qwen3_5_sttm"}
        for s in stats:
            if method == "none":
                assert s["visual_tokens_kept"] == s["visual_tokens"], label
            else:  # exact budget: 30% of every video's tokens, within one point
                assert abs(s["visual_tokens_kept"] / s["visual_tokens"] - 0.3) <= 0.01, label
        # a method that reads no question prefills each clip once: the second question reuses it
        reused = sum(s["prefix_reused"] for s in stats)
        assert reused == (8 if registry.get(method).query_agnostic else 0), label
    # the MoE and the dense checkpoint see the same videos; their models differ
    dense, moe = one["dense/sttm"][2], one["moe/sttm"][2]
    assert sorted(s["visual_tokens"] for s in dense) == sorted(s["visual_tokens"] for s in moe)
    assert [s["answer"] for s in dense] != [s["answer"] for s in moe]


def test_two_processes_equal_one(one, checkpoints, tmp_path, offline_env):
    runs = {
        label: model_args(checkpoints[label.split("/")[0]], label.split("/")[1]) for label in TWO_PROCESSES
    }
    two = run_many(runs, tmp_path / "two", offline_env, torchrun())
    for label in TWO_PROCESSES:
        (a, a_samples, a_stats), (b, b_samples, b_stats) = one[label], two[label]
        assert {s["rank"] for s in b_stats} == {0, 1}, label
        assert by_question(b_samples, b_stats, TASK) == by_question(a_samples, a_stats, TASK), label
        # the aggregated means may differ in the last place (the ranks' rows are summed in another order)
        got, want = untimed(b["results"])[TASK], untimed(a["results"])[TASK]
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


def test_thinking_on_answers_after_the_block(one, checkpoints):
    """lmms-eval's default (thinking on) with a small thinking budget: every answer records its
    thinking block; one that never closed is empty; the budget comes on top of the task's 8 tokens."""
    results, samples, stats = one["thinking/sttm"]
    off = one["dense/sttm"][2]
    # the same reduced prefix (the prompt differs only after the question)
    assert sorted(s["visual_tokens_kept"] for s in stats) == sorted(s["visual_tokens_kept"] for s in off)
    for s in stats:
        assert s["enable_thinking"] is True and 1 <= s["new_tokens"] <= 8 + THINKING_BUDGET
        if not s["thinking_closed"]:
            assert s["answer"] == "" and s["thinking_tokens"] == s["new_tokens"]
        else:
            assert s["thinking_tokens"] <= s["new_tokens"]
    assert all("thinking_tokens" not in s for s in off)
    answers = {r["doc_id"]: r["filtered_resps"] for r in samples[TASK]}
    assert sorted(a[0] if isinstance(a, list) else a for a in answers.values()) == sorted(
        s["answer"] for s in stats
    )
