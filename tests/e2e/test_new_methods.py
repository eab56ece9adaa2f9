"""EVS, VidCom2 and FastVID through ``python -m lmms_eval`` on the tiny checkpoints: exact 30%
retention in one and two processes with identical results on a frame-block family (Qwen3-VL with
DeepStack, InternVL3.5; the methods alternate between them), and each method's ``budget=30``
setting once on an older family (Qwen2.5-VL, LLaVA-Video, Qwen2-VL), so the position rules of five
families are exercised. Every method x family x setting, each exact one also in two processes:
``scripts/methods_matrix.py``."""

from __future__ import annotations

import pytest

from tests.conftest import by_question, run_lmms_eval, stats_rows, torchrun, untimed

pytestmark = pytest.mark.e2e
TASK = "synthetic_needle_sttm"
#: method -> (model, tiny architecture) of its exact 30% run in one and two processes
FRAME_BLOCK = {
    "evs": ("qwen3_vl_sttm", "qwen3_vl"),
    "vidcom2": ("internvl3_5_sttm", "internvl3_5"),
    "fastvid": ("qwen3_vl_sttm", "qwen3_vl"),
}
#: method -> (model, tiny architecture, the budget=30 knob and value it records) of its native run
NATIVE = {
    "evs": ("qwen2_5_vl_sttm", "qwen2_5_vl", ("video_pruning_rate", 0.7)),
    "vidcom2": ("llava_video_sttm", "llava_video", ("r_ratio", 0.3)),
    "fastvid": ("qwen2_vl_sttm", "qwen2_vl", ("fastvid_ratio", 0.3)),
}


@pytest.mark.parametrize("method", sorted(FRAME_BLOCK))
def test_exact_30_in_one_and_two_processes(method, tiny_checkpoints, tmp_path, offline_env):
    model, arch = FRAME_BLOCK[method]
    margs = f"pretrained={tiny_checkpoints(arch)},method={method},budget_mode=exact,retention=0.3"
    args = ["--model", model, "--model_args", margs, "--tasks", TASK]
    one, one_samples = run_lmms_eval(args, tmp_path / "one", offline_env)
    two, two_samples = run_lmms_eval(args, tmp_path / "two", offline_env, torchrun())
    one_stats, two_stats = stats_rows(tmp_path / "one"), stats_rows(tmp_path / "two")
    # the aggregated means may differ in the last place (the ranks' rows are summed in another order)
    a, b = untimed(one["results"])[TASK], untimed(two["results"])[TASK]
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert b[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    assert by_question(one_samples, one_stats, TASK) == by_question(two_samples, two_stats, TASK)
    assert {s["rank"] for s in two_stats} == {0, 1} and len(one_stats) == 16
    for s in one_stats:
        assert s["error"] is None and s["method"] == method
        assert abs(s["visual_tokens_kept"] / s["visual_tokens"] - 0.3) <= 0.01
        assert s["params"]["budget_mode"] == "exact" and s["params"]["retention"] == 0.3
    # query-agnostic: the second question on each clip is answered from the reused prefix
    assert sum(s["prefix_reused"] for s in one_stats) == 8


@pytest.mark.parametrize("method", sorted(NATIVE))
def test_budget_30_records_the_authors_setting(method, tiny_checkpoints, tmp_path, offline_env):
    """One native run per method on an older family; the budget binding itself is covered without
    a model by ``tests/merging/test_token_pruning_2025.py``."""
    model, arch, (knob, value) = NATIVE[method]
    margs = f"pretrained={tiny_checkpoints(arch)},method={method},budget=30"
    run_lmms_eval(["--model", model, "--model_args", margs, "--tasks", TASK], tmp_path / "out", offline_env)
    stats = stats_rows(tmp_path / "out")
    assert len(stats) == 16
    for s in stats:
        assert s["error"] is None and s["params"][knob] == value and s["params"]["budget"] == 30
        assert 0 < s["visual_tokens_kept"] < s["visual_tokens"]
