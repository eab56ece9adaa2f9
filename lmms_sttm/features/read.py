"""Stage two: a video's model inputs from its stored features instead of its frames.

The rest of the pipeline is the one of the video path: LLaVA runs the stored tower output through
projector -> bilinear pooling -> newline layout (:func:`llava_from_tower`) and rebuilds the time
instruction from the metadata; Qwen flattens the stored merger output in raster order and
rebuilds ``video_grid_thw`` from its shape (:func:`qwen_from_features`), checked against the
metadata's ``video_grid_thw`` (``[[t, h, w]]`` in the authors' files and ours, ``[t, h, w]`` in our
older ones). The video's duration is ``video_time`` when the metadata has it (LLaVA, our older
Qwen files), else frames / ``video_sample_fps`` (the authors' Qwen files, whose fps is the frame
count over the container's duration).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from lmms_sttm.features.errors import FeatureMismatchError, MissingFeatures
from lmms_sttm.features.extract import layout_for
from lmms_sttm.features.layout import video_id
from lmms_sttm.features.store import load_metadata, load_tensor
from lmms_sttm.models.prompts import time_instruction
from lmms_sttm.models.video_inputs import (
    VideoInputs,
    grid_seconds,
    llava_from_tower,
    llava_tower_shape,
    qwen_feature_dim,
    qwen_from_features,
)


def frame_seconds(frame_time) -> list[float]:
    """Metadata ``frame_time`` (``"0.00s,1.00s"`` or a list of numbers) -> seconds."""
    if isinstance(frame_time, str):
        return [float(s.strip().rstrip("s")) for s in frame_time.split(",") if s.strip()]
    return [float(s) for s in frame_time]


def video_seconds(meta: dict, frames: int) -> float | None:
    """The video's duration from the metadata (``video_time``, else ``frames / video_sample_fps``)."""
    if meta.get("video_time") is not None:
        return round(float(meta["video_time"]), 3)
    fps = meta.get("video_sample_fps")
    return round(frames / float(fps), 3) if fps else None


def _check_grid(meta: dict, stored: torch.Tensor, merge: int, fpath: str) -> None:
    """The metadata's ``video_grid_thw`` (if any) must be the stored ``[t, h/2, w/2]`` times the merge."""
    shown = grid = meta.get("video_grid_thw")
    if grid is None:
        return
    if len(grid) == 1 and isinstance(grid[0], (list, tuple)):
        grid = grid[0]
    t, h2, w2, _ = stored.shape
    if [int(v) for v in grid] != [t, h2 * merge, w2 * merge]:
        raise FeatureMismatchError(
            f"{fpath}: shape {tuple(stored.shape)} does not fit the metadata's video_grid_thw {shown}"
        )


def load_pair(model, path: str, task: str) -> tuple[torch.Tensor, dict, str]:
    """The stored tensor, metadata and feature file path of the video at ``path``."""
    layout = layout_for(model, task)
    vid = video_id(path)
    fpath, mpath = layout.feature_path(vid), layout.metadata_path(vid)
    for p in (fpath, mpath):
        if not p.is_file():
            raise MissingFeatures(f"feature file not found: {p} (video {path})")
    try:
        return load_tensor(fpath), load_metadata(mpath), str(fpath)
    except Exception as e:  # torch/pickle raise many types; the sample fails, naming the file
        raise MissingFeatures(f"cannot read features {fpath} / {mpath}: {type(e).__name__}: {e}") from e


def _check(stored: torch.Tensor, want: tuple, what: str, fpath: str) -> None:
    got = tuple(stored.shape)
    if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want, strict=True)):
        shown = tuple("*" if w is None else w for w in want)
        raise FeatureMismatchError(f"{fpath}: shape {got} does not fit this model ({what} {shown})")


def encode_from_features(
    model, path: str, task: str, loaded: tuple | None = None
) -> tuple[VideoInputs, str | None, dict]:
    """``SttmVideoModel.encode`` from stored features: ``(VideoInputs, time text, facts)``.

    ``loaded``: :func:`load_pair`'s result when already read (decode-ahead, ``models/prefetch.py``).
    """
    stored, meta, fpath = loaded if loaded is not None else load_pair(model, path, task)
    facts = {"features": fpath}
    time_text = None
    if model.family == "qwen":
        _check(
            stored, (None, None, None, qwen_feature_dim(model.model)), "merger output [t, h/2, w/2, D]", fpath
        )
        _check_grid(meta, stored, model.processor.video_processor.merge_size, fpath)
        fps, _ = model.frames_for(task)
        fps = float(meta.get("video_sample_fps", fps))  # the sampled rate sets Qwen2.5-VL's time scale
        video = qwen_from_features(model.model, model.processor, stored, fps)
        facts["frames"] = stored.shape[0] * model.processor.video_processor.temporal_patch_size
    else:
        _check(stored, (None, *llava_tower_shape(model.model)), "tower output [T, N, C]", fpath)
        video = llava_from_tower(model.model, stored, model.settings.newline)
        facts["frames"] = stored.shape[0]
        if model.use_time_instruction:
            if "video_time" not in meta or "frame_time" not in meta:
                raise MissingFeatures(
                    f"metadata of {fpath} lacks video_time/frame_time for the time instruction"
                )
            stamps = frame_seconds(meta["frame_time"])
            if len(stamps) != stored.shape[0]:
                raise FeatureMismatchError(f"{fpath}: {stored.shape[0]} frames but {len(stamps)} frame times")
            time_text = time_instruction(float(meta["video_time"]), stamps)
    facts["video_seconds"] = video_seconds(meta, facts["frames"])
    if video.grid is not None and "frame_time" in meta:  # the stored frame times, when the metadata has them
        stamps = frame_seconds(meta["frame_time"])
        per_grid = facts["frames"] // stored.shape[0]
        if len(stamps) == facts["frames"]:
            video = replace(video, timestamps=grid_seconds(stamps, per_grid))
    return video, time_text, facts
