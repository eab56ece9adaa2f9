"""The vision tower's scores for the conformance check: a method whose stage reads
``vision_attention`` runs with the scores of the tiny model's own vision tower, of the kind its
spec declares (``MethodSpec.vision_score``), computed by the hook the lmms-eval models use
(``models/vision_attention.py``) on the prompt's pixels and mapped to the LLM's grid the same way.
"""

from __future__ import annotations

import dataclasses

import torch

from lmms_sttm.models import vision_attention as va

#: the hook's family of each tiny model of the check (a family not listed gets no scores; Qwen3.5's
#: vision tower is Qwen3-VL's)
HOOK_FAMILY = {"llava_onevision": "llava", "qwen2_vl": "qwen", "qwen2_5_vl": "qwen", "qwen3_vl": "qwen3_vl",
               "qwen3_vl_moe": "qwen3_vl", "internvl": "internvl", "qwen3_5": "qwen3_vl",
               "qwen3_5_moe": "qwen3_vl"}  # fmt: skip


@torch.no_grad()
def tower_scores(model, family: str, inputs: dict, kind: str) -> torch.Tensor | None:
    """``[T, H*W]`` float32 scores of kind ``kind`` for the video of ``inputs`` (the check's prompt of
    ``family``), or None when the family has no scoring hook."""
    hook_family = HOOK_FAMILY.get(family)
    if hook_family is None:
        return None
    with va.recorder(model, hook_family, kind) as hook:
        if hook_family == "llava":
            pixels = inputs["pixel_values_videos"][0]  # [F, 3, S, S]
            model.model.vision_tower(pixels.to(model.dtype))
        elif hook_family == "internvl":
            config = model.config
            model.model.get_image_features(
                pixel_values=inputs["pixel_values"].to(model.dtype),
                vision_feature_layer=config.vision_feature_layer,
                vision_feature_select_strategy=config.vision_feature_select_strategy,
            )
        else:
            thw = inputs["video_grid_thw"]
            model.model.get_video_features(inputs["pixel_values_videos"].to(model.dtype), thw)
    if hook_family == "llava":
        return va.llava_grid_scores(model, hook.scores).float()
    if hook_family == "internvl":
        return va.internvl_grid_scores(model, hook.scores).float()
    return va.qwen_grid_scores(model, hook.scores, inputs["video_grid_thw"]).float()


class WithVisionScores:
    """``method`` (a reducer or staged method) whose first stage gets ``scores`` as
    ``context.vision_scores``, for callers that build the stages' contexts without them (the
    by-hand run)."""

    needs_attention = False

    def __init__(self, method, scores: torch.Tensor) -> None:
        self.method, self.scores = method, scores
        self.needs_attention = bool(getattr(method, "needs_attention", False))

    def start(self, grid, num_layers: int, layer: int):
        from lmms_sttm.engine.stages import start_run

        return _FirstStageScores(start_run(self.method, grid, num_layers, layer), self.scores)


class _FirstStageScores:
    def __init__(self, run, scores: torch.Tensor) -> None:
        self.inner, self.scores, self.first = run, scores, True

    def next_stage(self):
        return self.inner.next_stage()

    def run(self, hidden, grid, context):
        if self.first:
            context = dataclasses.replace(context, vision_scores=self.scores)
            self.first = False
        return self.inner.run(hidden, grid, context)
