"""Qwen3.5's frame protocol, prompt and thinking switch against lmms-eval's own ``qwen3_5`` path:
the frames qwen-vl-utils samples and resizes for lmms-eval's video element are the frames and
pixel values the model family makes; the prompt is the chat template's; the answer is what follows
``</think>``; the model arguments are checked at start-up."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmms_sttm.data.synthetic import write_frames  # noqa: E402
from lmms_sttm.methods.spec import method_family  # noqa: E402
from lmms_sttm.models.families import MODEL_FAMILIES  # noqa: E402
from lmms_sttm.models.prompts import qwen3_5_prompt  # noqa: E402
from lmms_sttm.models.thinking import split_thinking, think_end_id  # noqa: E402
from lmms_sttm.models.video_blocks import qwen3_5_frame_size, qwen3_5_pixels  # noqa: E402
from lmms_sttm.video import load_video, qwen_vl_utils_indices  # noqa: E402

#: lmms-eval 0.7.3's qwen3_5 defaults, in tokens of (patch * merge)^2 px
MIN_TOKENS, TOTAL_TOKENS, MAX_FRAMES = 64, 224 * 1024, 768


def lmms_eval_element(path: str, factor: int) -> dict:
    """The video item lmms-eval's ``qwen3_5`` wrapper builds (``_build_video_kwargs`` with its
    defaults: ``total_pixels`` set, so ``max_frames`` and no ``max_pixels``), for a ``factor`` px unit."""
    unit = factor * factor
    return {
        "type": "video",
        "video": path,
        "min_pixels": MIN_TOKENS * unit,
        "max_frames": MAX_FRAMES,
        "total_pixels": TOTAL_TOKENS * unit,
    }


def smooth_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``[n, height, width, 3]`` uint8: gradients and a moving square (compresses well, not flat)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        base = (x * 255 // max(width - 1, 1) + y * 128 // max(height - 1, 1) + 7 * i) % 256
        out[i] = np.stack([base, (base + 85) % 256, (255 - base)], axis=-1)
        r, c = rng.integers(0, height // 2), rng.integers(0, width // 2)
        out[i, r : r + height // 4, c : c + width // 4] = 255
    return out


@pytest.mark.parametrize(
    ("num_frames", "fps"),
    [(10, 10.0), (30, 10.0), (31, 7.5), (97, 30.0), (1000, 30.0), (3000, 1.0), (40000, 25.0), (5, 30.0)],
)
def test_sampler_equals_qwen_vl_utils(num_frames, fps):
    """Short (the 4-frame floor), odd, fractional-rate and long videos (the 768 cap)."""
    from qwen_vl_utils.vision_process import smart_nframes

    ele = {"fps": 2.0, "max_frames": MAX_FRAMES}
    n = smart_nframes(ele, total_frames=num_frames, video_fps=fps)
    want = torch.linspace(0, num_frames - 1, n).round().long().tolist()
    got = qwen_vl_utils_indices(num_frames, fps, 2.0, MAX_FRAMES)
    assert got == want
    assert len(got) % 2 == 0 and len(got) <= MAX_FRAMES


@pytest.mark.parametrize(
    ("height", "width", "frames"),
    [(360, 640, 8), (720, 1280, 40), (720, 1280, 700), (96, 128, 4), (1080, 1920, 768), (333, 500, 17)],
)
def test_frame_size_equals_qwen_vl_utils_budget(height, width, frames):
    """qwen-vl-utils' own ``smart_resize`` with the ``max_pixels`` its ``fetch_video`` derives."""
    from qwen_vl_utils.vision_process import VIDEO_MAX_TOKEN_NUM, smart_resize

    factor = 32
    min_px = MIN_TOKENS * factor**2
    max_px = max(
        min(VIDEO_MAX_TOKEN_NUM * factor**2, TOTAL_TOKENS * factor**2 / frames * 2), int(min_px * 1.05)
    )
    want = smart_resize(height, width, factor=factor, min_pixels=min_px, max_pixels=max_px)
    assert qwen3_5_frame_size(height, width, frames, factor) == want


@pytest.mark.parametrize(("height", "width"), [(360, 640), (96, 128), (144, 176)])
def test_frames_and_pixels_equal_lmms_eval_fetch_video(height, width, tiny_checkpoints, tmp_path):
    """End to end on a written video: qwen-vl-utils' ``fetch_video`` (lmms-eval's element, decord)
    and the family's sampler + ``qwen3_5_pixels`` give the same frame indices, the same resized
    size and, through the checkpoint's processor (``do_resize=False`` as lmms-eval), the same pixels.
    The tiny processor's unit is 16 px (patch 8): the budgets are lmms-eval's in those units."""
    from qwen_vl_utils.vision_process import fetch_video
    from transformers import AutoProcessor

    path = str(write_frames(smooth_frames(23, height, width), tmp_path / "v.mp4", fps=6.0))
    processor = AutoProcessor.from_pretrained(tiny_checkpoints("qwen3_5"))
    (video, meta), _ = fetch_video(
        lmms_eval_element(path, 16),
        image_patch_size=8,
        return_video_sample_fps=True,
        return_video_metadata=True,
    )
    fam = MODEL_FAMILIES["qwen3_5"]
    fps, cap, _ = fam.frames
    frames, idx, info = load_video(
        path, target_fps=fps, max_frames=cap, backend="decord", sampler=fam.sampler
    )
    assert idx == meta["frames_indices"] and info.fps == pytest.approx(meta["fps"])
    pixels = fam.pixels(processor, frames)
    want = processor.video_processor(
        videos=[video], do_resize=False, do_sample_frames=False, return_tensors="pt"
    )
    assert pixels["video_grid_thw"].tolist() == want["video_grid_thw"].tolist()
    assert torch.equal(pixels["pixel_values_videos"], want["pixel_values_videos"])
    assert pixels is not None and qwen3_5_pixels is fam.pixels


@pytest.mark.parametrize("thinking", [True, False])
def test_prompt_equals_the_chat_template(thinking, tiny_checkpoints):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_checkpoints("qwen3_5"))
    ctx = "Which colour?\nA. red\nB. blue\nAnswer with the option's letter."
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": ctx}]},
    ]
    want = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False, enable_thinking=thinking
    )
    prompt = MODEL_FAMILIES["qwen3_5"].prompt(ctx, None, thinking)
    assert prompt == qwen3_5_prompt(ctx, thinking) and prompt.text == want
    assert (
        prompt.prefix.endswith("<|vision_end|>") and ctx not in prompt.prefix
    )  # the question is not in the prefix


def test_answer_is_what_follows_the_thinking_block(tiny_checkpoints):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_checkpoints("qwen3_5"))
    end = think_end_id(tok)
    reasoning = tok("the needle is red\n", add_special_tokens=False)["input_ids"]
    answer = tok("\n\nA", add_special_tokens=False)["input_ids"]
    tokens, thinking = split_thinking([*reasoning, end, *answer], end)
    assert tokens == answer and thinking.tokens == len(reasoning) + 1 and thinking.closed
    assert tok.decode(tokens, skip_special_tokens=True).strip() == "A"
    # only the first </think> closes the block; a block that never closes leaves no answer
    tokens, thinking = split_thinking([*reasoning, end, *answer, end, *answer], end)
    assert tokens == [*answer, end, *answer]
    tokens, thinking = split_thinking(reasoning, end)
    assert tokens == [] and thinking.record() == {"thinking_tokens": len(reasoning), "thinking_closed": False}


def test_a_tokenizer_without_think_tokens_is_refused(tiny_checkpoints):
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match="no '</think>' token"):
        think_end_id(AutoTokenizer.from_pretrained(tiny_checkpoints("qwen3_vl")))


def test_methods_run_as_on_qwen3_vl():
    assert method_family("qwen3_5") == "qwen3_vl" and method_family("qwen") == "qwen"
    with pytest.raises(ValueError, match="unknown model family"):
        method_family("qwen4")
    from lmms_sttm.methods import registry

    for name in registry.BUILTIN:  # every built-in's position rule on Qwen3.5 is its Qwen3-VL one
        spec = registry.get(name)
        assert spec.position_rule_for(method_family("qwen3_5")) == spec.position_rule_for("qwen3_vl")


def test_thinking_arguments_are_checked(tiny_checkpoints, tmp_path):
    from lmms_sttm.models.qwen3_vl_sttm import Qwen3VLSttm
    from lmms_sttm.models.settings import ModelSettings

    with pytest.raises(ValueError, match="enable_thinking='yes' must be true or false"):
        ModelSettings.from_model_args(pretrained="x", method="none", enable_thinking="yes")
    with pytest.raises(ValueError, match="max_thinking_tokens=-1 must be a non-negative integer"):
        ModelSettings.from_model_args(pretrained="x", method="none", max_thinking_tokens=-1)
    assert (
        ModelSettings.from_model_args(pretrained="x", method="none", enable_thinking="None").enable_thinking
        is None
    )
    with pytest.raises(ValueError, match="enable_thinking applies to models with a thinking switch"):
        Qwen3VLSttm(pretrained=tiny_checkpoints("qwen3_vl"), method="none", enable_thinking=False)
