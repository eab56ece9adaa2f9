"""The frame-block models' written-out prompts equal what the stock processors make of the same
frames and question: the chat template, Qwen3-VL's per-block ``<t seconds>`` text (the processor's
own timestamps) and InternVL's ``Frame{i}: <img>...</img>`` lines, token for token, and the same
pixel values reach the vision tower."""

from __future__ import annotations

import os

import pytest
import torch
from torchvision.transforms.functional import InterpolationMode, resize

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmms_sttm.data.synthetic import ClipSpec, render_frames  # noqa: E402
from lmms_sttm.models.qwen3_vl_sttm import InternVL35Sttm, Qwen3VLSttm  # noqa: E402
from lmms_sttm.models.video_blocks import encode_internvl, encode_qwen3_vl  # noqa: E402
from lmms_sttm.models.video_inputs import qwen_frame_size, qwen_pixels  # noqa: E402

CLIP_FPS = 8.0
FRAME_INDICES = [1, 5, 10, 14, 19, 23, 28, 31]  # uneven steps: timestamps are no plain progression
QUESTION = "How many red frames are there?\nA. 1\nB. 2\nAnswer with the option's letter."


@pytest.fixture(scope="module")
def frames():
    clip = render_frames(ClipSpec(num_frames=32, height=112, width=176, fps=CLIP_FPS, cut_at=16))
    return clip[FRAME_INDICES]


def stock(processor, frames, **kwargs) -> dict:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=text, videos=[frames], return_tensors="pt", **kwargs)


def ours(model, video) -> torch.Tensor:
    prompt = model.prompt(QUESTION, None)
    _, prefix = model.prefix_inputs(prompt.prefix, video)
    return torch.cat([prefix[0].cpu(), model._ids(prompt.question)])


@pytest.mark.parametrize("arch", ["qwen3_vl", "qwen3_vl_moe"])
def test_qwen3_vl_prompt_equals_the_processor(arch, tiny_checkpoints, frames):
    model = Qwen3VLSttm(pretrained=tiny_checkpoints(arch), method="none")
    vp = model.processor.video_processor
    # the frame size is qwen-vl-utils' pixel budget (the protocol), not the processor's own resize:
    # the stock processor gets the frames at that size, resized as qwen_pixels resizes them
    h, w = qwen_frame_size(112, 176, len(FRAME_INDICES), vp.patch_size * vp.merge_size)
    assert (h, w) != (112, 176)
    video_tensor = resize(
        torch.from_numpy(frames).permute(0, 3, 1, 2), [h, w], InterpolationMode.BICUBIC, antialias=True
    )
    metadata = {"fps": CLIP_FPS, "total_num_frames": 32, "frames_indices": FRAME_INDICES}
    want = stock(
        model.processor, video_tensor, video_metadata=[metadata], do_sample_frames=False, do_resize=False
    )
    pixels = qwen_pixels(model.processor, frames)
    assert torch.equal(pixels["pixel_values_videos"], want["pixel_values_videos"])
    video = encode_qwen3_vl(model._model, model.processor, frames, FRAME_INDICES, CLIP_FPS)
    got = ours(model, video)
    assert got.tolist() == want["input_ids"][0].tolist()
    # the third block holds frames 19 and 23 of the 8 fps clip: (19 + 23) / 2 / 8 = 2.625 s, printed .1f
    assert "<2.6 seconds>" in model.tokenizer.decode(got)
    assert torch.equal(video.extra["video_grid_thw"].cpu(), want["video_grid_thw"])


def test_internvl_prompt_equals_the_processor(tiny_checkpoints, frames):
    model = InternVL35Sttm(pretrained=tiny_checkpoints("internvl3_5"), method="none")
    want = stock(model.processor, frames)
    video = encode_internvl(model._model, model.processor, frames)
    got = ours(model, video)
    assert got.tolist() == want["input_ids"][0].tolist()
    text = model.tokenizer.decode(got)
    assert text.count("<img>") == len(FRAME_INDICES) and f"Frame{len(FRAME_INDICES)}: <img>" in text


@pytest.mark.parametrize(("cls", "arch"), [(Qwen3VLSttm, "qwen3_vl"), (InternVL35Sttm, "internvl3_5")])
def test_two_stage_features_are_refused_with_the_reason(cls, arch, tiny_checkpoints, tmp_path):
    with pytest.raises(ValueError, match=r"features= \(two-stage runs\) is not supported for .* yet"):
        cls(pretrained=tiny_checkpoints(arch), method="none", features=str(tmp_path))
