"""The model families of the lmms-eval models: one table of how each turns frames into model inputs.

A row says everything the shared model (``models/base.py``) needs of a family: the frame protocol,
whether frames come in pairs (Qwen's 2-frame temporal patches), the CPU preprocessing, the vision
encoding, how many sampled frames make one grid frame, the prompt's chat framing, the prompt
options it takes, and whether stored features (``features=``) serve it. The engine's own table
(``engine/families.py``) says how its decoder is patched. Adding a family is one row here, one there.

Keys are the method families of ``methods/spec.FAMILIES`` (the position rule a method gets), or a
model family that takes another's method family (``methods/spec.METHOD_FAMILY_OF``: Qwen3.5 runs
its methods as Qwen3-VL's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lmms_sttm.models.paper_settings import FRAMES
from lmms_sttm.models.prompts import (
    Prompt,
    internvl_prompt,
    llava_prompt,
    qwen3_5_prompt,
    qwen3_vl_prompt,
    qwen_prompt,
)
from lmms_sttm.models.video_blocks import (
    encode_internvl,
    encode_qwen3_5,
    encode_qwen3_vl,
    internvl_pixels,
    qwen3_5_pixels,
)
from lmms_sttm.models.video_inputs import (
    VideoInputs,
    encode_llava,
    encode_qwen,
    llava_pixels,
    qwen_pixels,
    sampled_fps,
)


@dataclass(frozen=True)
class ModelFamily:
    """One family's video pipeline.

    Attributes:
        name: the model family (``llava``, ``qwen``, ``qwen3_vl``, ``qwen3_5``, ``internvl``).
        frames: ``(target fps, frame cap, frame cap on VNBench)`` of its protocol.
        pairs: frames are padded to an even count (temporal patches of two frames).
        pixels: ``(processor, frames [F, H, W, 3]) -> preprocessed`` (CPU, decode-ahead).
        encode: ``(model, processor, frames, indices, info, pixels, settings, vision_attention) ->
            VideoInputs``; ``vision_attention``: also the vision tower's received attention on the
            grid (``VideoInputs.vision_scores``, for a method whose stage reads ``vision_attention``).
        per_grid: ``processor -> sampled frames per grid frame``.
        prompt: ``(ctx, time_text, thinking) -> Prompt``; ``thinking``: the model's ``enable_thinking``
            (None for a family without a thinking switch).
        token_types: the model needs ``mm_token_type_ids`` (2 at video placeholders).
        llava_options: ``newline=`` and the time instruction apply (LLaVA only).
        stored_features: ``features=`` two-stage runs are supported.
        sampler: the frame sampler (``lmms_sttm.video.SAMPLERS``): the STTM protocol's, or
            qwen-vl-utils' (lmms-eval's ``qwen3_5`` wrapper).
        thinking: the chat template has a thinking switch (``enable_thinking=``; Qwen3.5): with it
            on, the answer is what follows the generated ``</think>``.
    """

    name: str
    frames: tuple[float, int, int]
    pairs: bool
    pixels: Callable
    encode: Callable[..., VideoInputs]
    per_grid: Callable[[object], int]
    prompt: Callable[[str, str | None, bool | None], Prompt]
    token_types: bool = False
    llava_options: bool = False
    stored_features: bool = True
    sampler: str = "sttm"
    thinking: bool = False


def _temporal_patch(processor) -> int:
    return processor.video_processor.temporal_patch_size


def _one(processor) -> int:
    return 1


MODEL_FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily(
            "llava",
            FRAMES["llava"],
            pairs=False,
            pixels=llava_pixels,
            encode=lambda m, p, f, idx, info, px, s, va: encode_llava(m, p, f, s.newline, px, va),
            per_grid=_one,
            prompt=lambda ctx, time_text, thinking: llava_prompt(ctx, "<video>", time_text),
            llava_options=True,
        ),
        ModelFamily(
            "qwen",
            FRAMES["qwen"],
            pairs=True,
            pixels=qwen_pixels,
            # Qwen2.5-VL's time scale: the rate of the frames actually sampled
            encode=lambda m, p, f, idx, info, px, s, va: encode_qwen(
                m, p, f, sampled_fps(len(idx), info), px, va
            ),
            per_grid=_temporal_patch,
            prompt=lambda ctx, time_text, thinking: qwen_prompt(ctx),
            token_types=True,
        ),
        # not in the paper: lmms-eval's own qwen3_vl / internvl3_5 wrappers sample 32 frames
        ModelFamily(
            "qwen3_vl",
            (2.0, 32, 32),
            pairs=True,
            pixels=qwen_pixels,
            encode=lambda m, p, f, idx, info, px, s, va: encode_qwen3_vl(m, p, f, idx, info.fps, px, va),
            per_grid=_temporal_patch,
            prompt=lambda ctx, time_text, thinking: qwen3_vl_prompt(ctx),
            token_types=True,
            stored_features=False,
        ),
        # lmms-eval's qwen3_5 wrapper: 2 fps, at most 768 frames, its pixel budgets, a system turn,
        # thinking on by default (models/qwen3_5_sttm.py says where this differs)
        ModelFamily(
            "qwen3_5",
            (2.0, 768, 768),
            pairs=True,
            pixels=qwen3_5_pixels,
            encode=lambda m, p, f, idx, info, px, s, va: encode_qwen3_5(m, p, f, idx, info.fps, px, va),
            per_grid=_temporal_patch,
            prompt=lambda ctx, time_text, thinking: qwen3_5_prompt(ctx, thinking),
            token_types=True,
            stored_features=False,
            sampler="qwen_vl_utils",
            thinking=True,
        ),
        ModelFamily(
            "internvl",
            (1.0, 32, 32),
            pairs=False,
            pixels=internvl_pixels,
            encode=lambda m, p, f, idx, info, px, s, va: encode_internvl(m, p, f, px, va),
            per_grid=_one,
            prompt=lambda ctx, time_text, thinking: internvl_prompt(ctx),
            stored_features=False,
        ),
    )
}
