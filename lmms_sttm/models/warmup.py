"""One untimed warm-up per rank before its first timed video.

The first video on a GPU pays CUDA context, cuBLAS/cuDNN handles, kernel selection and the
allocator's first growth inside its time to first token; the authors run one untimed
``generate`` first. :func:`warm_up` answers one question on a short synthetic clip through the
model's own path (decode, vision tower, prompt, prefill with the task's reduction, decoding) with
the statistics switched off, and returns its wall time; the model writes that time into every
statistics record of the rank as ``warmup_ms`` (null: no warm-up). ``warmup=false`` in
``--model_args`` turns it off. With ``features=`` it is skipped (no stored features exist for
the clip, and extraction must not write any).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lmms_eval.api.instance import Instance
from loguru import logger

from lmms_sttm.data.synthetic import ClipSpec, write_clip
from lmms_sttm.engine.timing import clock, model_devices
from lmms_sttm.models.stats import StatsWriter

#: 8 frames of 64x64 at 4 fps (2 s): one or two sampled frames, every stage of the pipeline runs
WARMUP_CLIP = ClipSpec(num_frames=8, height=64, width=64, fps=4, seed=0)
WARMUP_QUESTION = "What colour is the frame?\nA. red\nB. blue\nAnswer with the option's letter."


def warm_up(model, task: str) -> float | None:
    """Runs one synthetic question through ``model._answer_video`` for ``task``; seconds, or None if skipped."""
    if model.settings.features is not None:
        logger.info(f"{model.model_name}: no warm-up with features= (the clip has no stored features)")
        return None
    stats, model.stats = model.stats, StatsWriter(None, model.model_name, model.rank)
    devices = model_devices(model.model)
    began = clock(devices)
    try:
        with tempfile.TemporaryDirectory(prefix="lmms_sttm_warmup_") as tmp:
            path = str(write_clip(WARMUP_CLIP, Path(tmp) / "warmup.mp4"))
            # two new tokens, no thinking budget: the warm-up runs the path, not a reasoning
            gen = {"max_new_tokens": 2, "max_thinking_tokens": 0}
            args = (WARMUP_QUESTION, gen, None, -1, task, "warmup")
            request = Instance("generate_until", args, -1, {"task": task, "doc_id": -1, "repeats": 1})
            model._answer_video(task, path, [request], [0], [""])
    finally:
        model.stats = stats
    seconds = clock(devices) - began
    logger.info(f"{model.model_name} rank {model.rank}: warm-up {1000 * seconds:.0f} ms (untimed)")
    return seconds
