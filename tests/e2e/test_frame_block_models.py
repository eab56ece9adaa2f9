"""The frame-block models (Qwen3-VL with DeepStack, InternVL3.5) through `python -m lmms_eval` on tiny
checkpoints: unreduced and STTM at an exact 30%, one and two processes with identical answers.

Every baseline on these families is held to the conformance rules (by-hand logits, plans, exact
budgets, query-agnosticism) by `tests/methods/test_conformance_blocks.py`."""

from __future__ import annotations

import pytest

from tests.conftest import by_question, run_lmms_eval, stats_rows, torchrun, untimed

pytestmark = pytest.mark.e2e

TASK = "synthetic_needle_sttm"
MODELS = {"qwen3_vl_sttm": "qwen3_vl", "internvl3_5_sttm": "internvl3_5"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_frame_block_model_one_and_two_processes(name, tiny_checkpoints, tmp_path, offline_env):
    ckpt = tiny_checkpoints(MODELS[name])
    runs = {}
    for label, extra, launcher in (
        ("none", "method=none", None),
        ("sttm", "budget_mode=exact,retention=0.3", None),
        ("sttm2", "budget_mode=exact,retention=0.3", torchrun()),
    ):
        out = tmp_path / label
        args = ["--model", name, "--model_args", f"pretrained={ckpt},{extra}", "--tasks", TASK]
        results, samples = run_lmms_eval(args, out, offline_env, launcher)
        runs[label] = (results, samples, stats_rows(out))
    for results, _samples, stats in runs.values():
        assert results["n-samples"][TASK]["effective"] == 16
        assert len(stats) == 16 and all(s["error"] is None for s in stats)
    none = runs["none"][2]
    assert all(s["visual_tokens_kept"] == s["visual_tokens"] for s in none)
    sttm = runs["sttm"][2]
    for s in sttm:  # exact budget: 30% of every video's tokens, within one point
        assert abs(s["visual_tokens_kept"] / s["visual_tokens"] - 0.3) <= 0.01
    assert sum(s["prefix_reused"] for s in sttm) == 8  # query-agnostic: the second question reuses
    one, two = runs["sttm"], runs["sttm2"]
    assert {s["rank"] for s in two[2]} == {0, 1}
    # metric means are summed in another order over two ranks: equal up to float rounding
    got, want = untimed(two[0]["results"])[TASK], untimed(one[0]["results"])[TASK]
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    assert by_question(two[1], two[2], TASK) == by_question(one[1], one[2], TASK)
