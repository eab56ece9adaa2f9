"""``sttm_oracle``: a model-free lmms-eval model that answers needle-colour questions from pixels.

It exercises everything around a video LLM — registration, request handling, video decoding,
sharding over ranks, the tasks' parsing and metrics — without any network weights: it decodes
every frame, finds the frame that is closest to one of the needle colours of
:mod:`lmms_sttm.data.synthetic` and answers the option letter naming that colour. Used by the
harness tests and as a sanity row of the demo leaderboard; it is not a reduction method.
"""

from __future__ import annotations

import re

import numpy as np
from lmms_eval.api.instance import Instance
from loguru import logger

from lmms_sttm.data.synthetic import NEEDLE_COLOURS
from lmms_sttm.models.generate_only import GenerateOnlyLmms
from lmms_sttm.video import VideoError, load_video

_OPTION = re.compile(r"^\(?([A-F])[.)]\s*(.+?)\s*$", re.MULTILINE)


def needle_colour(frames: np.ndarray, max_distance: float = 60.0) -> str | None:
    """The needle colour shown by one of ``frames`` ``[F, H, W, 3]`` uint8, or None.

    A needle frame is a solid colour with a darker checker; its brightest half is the colour.
    """
    best, best_d = None, max_distance
    for frame in frames.reshape(frames.shape[0], -1, 3).astype(np.float32):
        bright = frame[frame.sum(1) >= np.median(frame.sum(1))]
        if bright.std(0).max() > 25:  # not a flat colour
            continue
        mean = bright.mean(0)
        for name, rgb in NEEDLE_COLOURS.items():
            d = float(np.abs(mean - np.asarray(rgb, np.float32)).max())
            if d < best_d:
                best, best_d = name, d
    return best


class NeedleOracle(GenerateOnlyLmms):
    """Answers from the decoded video; ``fallback`` when no needle is seen."""

    model_name = "sttm_oracle"

    def __init__(self, fallback: str = "", max_frames: int = 64, batch_size=1, max_batch_size=None, **kwargs):
        super().__init__()
        kwargs.pop("device", None)
        if kwargs:
            raise ValueError(
                f"sttm_oracle: unknown model_args {sorted(kwargs)}; accepted: fallback, max_frames"
            )
        if int(batch_size) != 1:
            raise ValueError(f"sttm_oracle: batch_size must be 1, got {batch_size}")
        self.fallback = fallback
        self.max_frames = int(max_frames)
        self.failures: list[dict] = []

    @property
    def device(self) -> str:
        return "cpu"

    def _answer(self, request: Instance) -> str:
        ctx, _gen_kwargs, doc_to_visual, doc_id, task, split = request.args
        paths = doc_to_visual(self.task_dict[task][split][doc_id])
        try:
            frames, _, _ = load_video(paths[0], target_fps=1e6, max_frames=self.max_frames)
        except VideoError as e:
            self.failures.append({"task": task, "doc_id": doc_id, "reason": str(e)})
            logger.error(f"sttm_oracle: {task} doc {doc_id}: {e}")
            return ""
        colour = needle_colour(frames)
        for letter, text in _OPTION.findall(ctx):
            if colour is not None and text.strip().rstrip(".").lower() == colour:
                return letter
        return self.fallback

    def generate_until(self, requests: list[Instance]) -> list[str]:
        return ["" if r.metadata.get("__padding_only__") else self._answer(r) for r in requests]
