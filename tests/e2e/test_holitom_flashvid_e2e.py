"""``method=holitom`` and ``method=flashvid`` through ``python -m lmms_eval`` on the tiny checkpoints:
exact 30% (within one point) and the authors' budgets on the four older families, and exact 30% in
one and two processes with identical results on a frame-block family each (HoliTom on InternVL3.5,
FlashVID on Qwen3-VL with DeepStack; the whole matrix: ``scripts/methods_matrix.py``). Both methods
read the last prompt token's attention (their inner stage), so every question is prefilled on its
own: no prefix is reused."""

from __future__ import annotations

import pytest

from tests.conftest import by_question, run_lmms_eval, stats_rows, torchrun, untimed

pytestmark = pytest.mark.e2e
TASK = "synthetic_needle_sttm"
MODELS = {
    "llava_video_sttm": "llava_video",
    "llava_onevision_sttm": "llava_onevision",
    "qwen2_vl_sttm": "qwen2_vl",
    "qwen2_5_vl_sttm": "qwen2_5_vl",
    "qwen3_vl_sttm": "qwen3_vl",
    "internvl3_5_sttm": "internvl3_5",
}
#: (model, method args): both methods on three families each (six families in all), exact 30% and
#: the authors' budgets 50 / 30; ``python -m lmms_sttm.check_method holitom|flashvid`` runs both on
#: every tiny family through the engine (tests/methods/test_conformance.py)
RUNS = [
    ("llava_video_sttm", "method=holitom,budget_mode=exact,retention=0.3"),
    ("qwen2_5_vl_sttm", "method=holitom,budget=30"),
    ("qwen2_vl_sttm", "method=flashvid,budget_mode=exact,retention=0.3"),
    ("llava_onevision_sttm", "method=flashvid,budget=50"),
    ("internvl3_5_sttm", "method=holitom,budget_mode=exact,retention=0.3"),
    ("qwen3_vl_sttm", "method=flashvid,budget_mode=exact,retention=0.3"),
]
#: the configurations also run in two processes (the frame-block families)
TWO_PROCESSES = {RUNS[4], RUNS[5]}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    """``checkpoint(model)``: the tiny checkpoint of ``model`` (built once per session)."""
    return lambda name: tiny_checkpoints(MODELS[name])


@pytest.mark.parametrize(
    ("model", "margs"), RUNS, ids=[f"{m}-{a.split(',', 1)[0][7:]}-{a.split(',')[1]}" for m, a in RUNS]
)
def test_method_runs_through_lmms_eval(model, margs, checkpoint, tmp_path, offline_env):
    args = ["--model", model, "--model_args", f"pretrained={checkpoint(model)},{margs}", "--tasks", TASK]
    results, samples = run_lmms_eval(args, tmp_path / "one", offline_env)
    stats = stats_rows(tmp_path / "one")
    method = margs.split(",")[0].removeprefix("method=")
    assert results["n-samples"][TASK]["effective"] == 16 and len(stats) == 16
    for s in stats:
        assert s["error"] is None and s["method"] == method
        assert 0 < s["visual_tokens_kept"] < s["visual_tokens"]
        if "exact" in margs:
            assert abs(s["visual_tokens_kept"] / s["visual_tokens"] - 0.3) <= 0.01
    assert sum(s["prefix_reused"] for s in stats) == 0  # query-aware: a prefill per question
    if (model, margs) in TWO_PROCESSES:
        two, two_samples = run_lmms_eval(args, tmp_path / "two", offline_env, torchrun())
        two_stats = stats_rows(tmp_path / "two")
        assert {s["rank"] for s in two_stats} == {0, 1}
        assert untimed(results["results"]) == untimed(two["results"])
        assert by_question(samples, stats, TASK) == by_question(two_samples, two_stats, TASK)
