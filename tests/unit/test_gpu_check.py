"""``scripts/gpu_check.py``: the shipped configs are the real 7B architectures, and ``--tiny`` runs the
whole measurement path on CPU with the token counts, retentions and FLOP ratios worked by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402


@pytest.mark.parametrize(("name", "billions"), [("llava_video_7b", 8.03), ("qwen2_vl_7b", 8.29)])
def test_shipped_configs_build_the_real_size_models(name, billions):
    """Parameter counts of the published checkpoints (hub model cards: 8.03B and 8.29B)."""
    (case,) = [c for c in gpu_check.cases(tiny=False) if c["name"] == name]
    with torch.device("meta"):
        model = case["cls"]._from_config(case["config"])
    text = case["config"].get_text_config()
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads) == (3584, 28, 4)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.01)


def _layer_flops(n: int) -> float:
    """Tiny decoder by hand: D=64, 4 heads of 16, 2 kv heads, ffn 128 -> a = 2*(4096+4096+4096+24576)."""
    return n * 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128) + 4 * 64 * n * (n + 1) / 2


@pytest.fixture(scope="module")
def tiny_run(offline_env):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--tiny"],
        env=offline_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout)


def test_tiny_mode_measures_every_model_frame_count_and_budget(tiny_run):
    assert (tiny_run["device"], tiny_run["dtype"], tiny_run["attention"]) == ("cpu", "float32", ["sdpa"])
    llava, qwen = tiny_run["models"]["llava_video_7b"], tiny_run["models"]["qwen2_vl_7b"]
    assert [r["frames"] for r in llava["runs"]] == [8, 12] and [r["frames"] for r in qwen["runs"]] == [8]
    for name, model in tiny_run["models"].items():
        assert model["merge_layer"] == 2
        for run in model["runs"]:
            n_vis = run["visual_tokens"]
            t, h, w = run["grid"]
            assert n_vis == t * h * w
            if name == "llava_video_7b":  # 104 px, patch 8 -> 13x13 -> pooled 7x7 per frame
                assert run["grid"] == [run["frames"], 7, 7]
                assert run["prefix_tokens"] == 20 + n_vis + 12
            else:  # frame pairs; <|vision_start|> and <|vision_end|> around the video
                assert t == run["frames"] // 2 and run["prefix_tokens"] == 20 + 1 + n_vis + 1 + 12
            assert run["vision_ms"] > 0 and run["unreduced"]["prefill_ms"] > 0
            assert run["unreduced"]["peak_memory_gib"] is None  # CPU
            for key, target in (("sttm_50", 50), ("sttm_30", 30)):
                r = run[key]
                assert abs(r["retained_pct"] - target) <= 1.0  # exact budget: +-1 point
                assert r["visual_tokens_kept"] == round(r["retained_pct"] * n_vis / 100)
                n, kept = run["prefix_tokens"], r["prefix_tokens_reduced"]
                assert kept == n - n_vis + r["visual_tokens_kept"]
                ratio = (2 * _layer_flops(n) + 2 * _layer_flops(kept)) / (4 * _layer_flops(n))
                assert r["flop_model_pct"] == pytest.approx(100 * ratio, abs=0.01)
                assert r["merge_ms"] > 0 and r["second_question_ms"] > 0
                assert r["r_ttft_pct"] == pytest.approx(
                    100 * r["prefill_ms"] / run["unreduced"]["prefill_ms"], rel=2e-3
                )
                paper = {"sttm_50": 48.4, "sttm_30": 33.1}[key] if name == "llava_video_7b" else None
                assert r["paper_r_ttft_pct"] == paper
