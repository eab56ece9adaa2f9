"""The fidelity options as model_args: validation, the plan's parameters, and the Qwen model layer
(released M-RoPE ids by default, ``rope_index=transformers`` leaves them to the model; Qwen2.5-VL's
time scale from the frames actually sampled)."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.merging.sttm import merge_video
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.mrope import mrope_position_ids
from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm, Qwen25VLSttm
from lmms_sttm.models.settings import ModelSettings
from lmms_sttm.report.model_args import is_method_key
from tests.models.method_helpers import plan_for


def _settings(**kw):
    return ModelSettings.from_model_args(pretrained="/c", **kw)


def test_defaults_are_the_authors_and_options_reach_the_reducers():
    s = _settings(budget=50)
    assert (s.method_settings.union_find, s.method_settings.merge_dtype, s.rope_index) == (
        "authors",
        "input",
        "original",
    )
    plan = plan_for(s, "llava_video_7b", "videomme_sttm")
    assert plan.params["union_find"] == "authors" and plan.params["merge_dtype"] == "input"
    exact = _settings(tau_s=0.9, tau_t=0.8, union_find="components", merge_dtype="float32")
    plan = plan_for(exact, "llava_video_7b", "videomme_sttm")
    assert (plan.prefill.union_find, plan.prefill.merge_dtype) == ("components", "float32")
    assert plan.params["union_find"] == "components" and plan.params["merge_dtype"] == "float32"
    budget = plan_for(
        _settings(budget_mode="exact", retention=0.3, union_find="components"),
        "llava_video_7b",
        "videomme_sttm",
    )
    assert budget.prefill.merge_options == {"union_find": "components", "merge_dtype": "input"}
    assert budget.params["union_find"] == "components"
    # the reducers run merge_video with those options
    x = torch.randn(6, 14, 14, 32, generator=torch.Generator().manual_seed(0)).cumsum(0).to(torch.bfloat16)
    ours = plan_for(_settings(tau_s=0.9, tau_t=0.8), "llava_video_7b", "t").prefill(
        x.reshape(-1, 32), (6, 14, 14)
    )
    theirs = plan_for(exact, "llava_video_7b", "t").prefill(x.reshape(-1, 32), (6, 14, 14))
    assert torch.equal(ours.token_map, merge_video(x, 0.9, 0.8).token_map)
    want = merge_video(x, 0.9, 0.8, union_find="components", merge_dtype="float32")
    assert torch.equal(theirs.token_map, want.token_map)
    assert is_method_key("union_find") and is_method_key("merge_dtype") and not is_method_key("rope_index")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"budget": 50, "union_find": "exact"},
            r"union_find='exact' is not accepted; use one of \['authors', 'components'\]",
        ),
        (
            {"budget": 50, "merge_dtype": "bf16"},
            r"merge_dtype='bf16' is not accepted; use one of \['input', 'float32'\]",
        ),
        (
            {"budget": 50, "rope_index": "hf"},
            r"rope_index='hf' is not accepted; use one of \['original', 'transformers'\]",
        ),
        ({"method": "tome", "budget": 50, "union_find": "components"}, "applies to method=sttm, not tome"),
        ({"method": "none", "merge_dtype": "float32"}, "applies to method=sttm, not none"),
    ],
)
def test_bad_fidelity_options_fail_naming_the_accepted_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _settings(**kwargs)


@pytest.fixture(scope="module")
def minute_clip(tmp_path_factory):
    """60 frames at 1 fps: a 60 s clip."""
    spec = ClipSpec(num_frames=60, height=64, width=96, fps=1.0, seed=3)
    return str(ensure_clip(spec, tmp_path_factory.mktemp("minute") / "minute.mp4"))


def test_qwen2_5_time_scale_comes_from_the_sampled_frames(tiny_checkpoints, minute_clip):
    m = Qwen25VLSttm(pretrained=tiny_checkpoints("qwen2_5_vl"), method="none", max_frames=8)
    video, _, facts = m.encode(minute_clip, "probe_sttm")
    assert facts["frames"] == 8
    # 8 frames over 60 s: 2/15 fps, two frames per temporal grid step -> 15 s (not 2 / target fps = 1)
    assert video.extra["second_per_grid_ts"].tolist() == [15.0]


@pytest.mark.parametrize(("cls", "arch"), [(Qwen2VLSttm, "qwen2_vl"), (Qwen25VLSttm, "qwen2_5_vl")])
def test_qwen_prefix_carries_the_released_ids_unless_transformers_is_asked(
    cls, arch, tiny_checkpoints, minute_clip
):
    ckpt = tiny_checkpoints(arch)
    m = cls(pretrained=ckpt, method="none", max_frames=16)
    video, _, _ = m.encode(minute_clip, "probe_sttm")
    inputs, ids = m.prefix_inputs(m.prompt("Q?", None).prefix, video)
    cfg = m.model.config
    t, h, w = (int(v) for v in video.extra["video_grid_thw"][0])
    merge = cfg.vision_config.spatial_merge_size
    scale = None
    if arch == "qwen2_5_vl":
        scale = (float(video.extra["second_per_grid_ts"][0]), cfg.vision_config.tokens_per_second)
    expected = mrope_position_ids(ids, cfg.video_token_id, (t, h // merge, w // merge), scale)
    assert torch.equal(inputs["position_ids"], expected)
    after = int((ids[0] == cfg.video_token_id).nonzero()[-1]) + 1
    assert int(inputs["position_ids"][0, 0, after]) == int(expected[..., :after].max()) + 1
    plain = cls(pretrained=ckpt, method="none", max_frames=16, rope_index="transformers")
    inputs_tf, _ = plain.prefix_inputs(plain.prompt("Q?", None).prefix, video)
    assert "position_ids" not in inputs_tf


def test_rope_index_is_a_qwen_option(tiny_checkpoints):
    with pytest.raises(ValueError, match="rope_index applies to Qwen2-VL / Qwen2.5-VL"):
        LlavaVideoSttm(pretrained=tiny_checkpoints("llava_video"), method="none", rope_index="transformers")
