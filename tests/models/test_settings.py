"""model_args -> ModelSettings: defaults, validation with named keys/values, paper tables."""

from __future__ import annotations

import pytest

from lmms_sttm.models.paper_settings import benchmark_of, frame_protocol, paper_thresholds
from lmms_sttm.models.settings import ModelSettings


def test_defaults_and_lmms_eval_style_values():
    s = ModelSettings.from_model_args(pretrained="/ckpt", budget=50, batch_size="1", max_batch_size=None)
    assert s.method == "sttm" and s.budget == 50 and s.newline == "no_token" and s.kv_reuse is True
    assert s.method_settings.root_level == 1 and s.merge_layer is None and s.attn_implementation == "auto"
    s = ModelSettings.from_model_args(
        pretrained="/ckpt", tau_s=1, tau_t=0.5, stats_dir="None", kv_reuse=False
    )
    assert (
        s.method_settings.tau_s == 1.0
        and isinstance(s.method_settings.tau_s, float)
        and s.stats_dir is None
        and s.kv_reuse is False
    )
    assert ModelSettings.from_model_args(pretrained="/c", method="none").as_dict()["method"] == "none"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pretrained": "/c", "budget": 50, "tau_sx": 1}, r"unknown model_args \['tau_sx'\]; accepted keys"),
        (
            {"pretrained": "/c", "method": "visionzip"},
            r"method='visionzip' is not accepted; use one of \['none', 'sttm', ",
        ),
        ({"pretrained": "/c", "budget": 40}, r"budget=40 is not accepted; use one of \[50, 30\]"),
        ({"pretrained": "/c"}, "needs budget="),
        ({"pretrained": "/c", "tau_s": 0.8}, "needs budget="),
        ({"pretrained": "/c", "budget": 50, "tau_s": 0.8, "tau_t": 0.5}, "not both"),
        ({"pretrained": "/c", "method": "none", "budget": 50}, "method=none keeps every token"),
        ({"pretrained": "/c", "budget": 50, "newline": "row"}, "newline='row'"),
        ({"pretrained": "/c", "budget": 50, "max_frames": 0}, "max_frames=0"),
        ({"pretrained": "/c", "budget": 50, "merge_layer": -1}, "merge_layer=-1"),
        ({"pretrained": "/c", "budget": 50, "fps": -1}, "fps=-1"),
        ({"pretrained": "/c", "budget": 50, "kv_reuse": "yes"}, "kv_reuse='yes'"),
        ({"pretrained": "/c", "budget": 50, "batch_size": 2}, "batch_size must be 1"),
        ({"pretrained": "", "budget": 50}, "pretrained= is required"),
        ({"pretrained": "/c", "budget": 50, "attn_implementation": "flash"}, "attn_implementation='flash'"),
    ],
)
def test_bad_model_args_fail_naming_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelSettings.from_model_args(**kwargs)


def test_paper_tables():
    assert benchmark_of("vnbench_sttm") == "vnbench" and benchmark_of("egoschema_subset_sttm") == "egoschema"
    assert benchmark_of("synthetic_needle_sttm") is None
    assert paper_thresholds("llava_video_7b", 50, "videomme_sttm") == (0.85, 0.55)
    assert paper_thresholds("llava_video_7b", 30, "vnbench_sttm") == (0.80, 0.60)
    assert paper_thresholds("qwen2_vl_7b", 30, "longvideobench_sttm") == (0.80, 0.60)
    assert paper_thresholds("llava_video_72b", 30, "videomme_sttm") == (0.90, 0.90)
    with pytest.raises(ValueError, match="no 50% thresholds for qwen2_vl_7b on task 'mlvu_sttm'"):
        paper_thresholds("qwen2_vl_7b", 50, "mlvu_sttm")
    with pytest.raises(ValueError, match="budget=10"):
        paper_thresholds("llava_video_7b", 10, "mlvu_sttm")
    assert frame_protocol("llava", "vnbench_sttm") == (1.0, 180)
    assert frame_protocol("llava", "videomme_sttm") == (1.0, 128)
    assert frame_protocol("qwen", "vnbench_sttm") == (2.0, 360)
