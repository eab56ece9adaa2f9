"""Stage one: sample and encode a video once, write its features and metadata (authors' formats).

- LLaVA: the SigLIP tower output ``[T, N, C]`` (``[T, 729, 1152]`` for the 7B models) before the
  projector, in the model's dtype (bf16 on GPU, like the authors'); metadata ``vid``,
  ``video_time`` (s), ``frame_time`` (``"0.00s,1.00s,..."``), ``num_frames`` (sampled frames).
- Qwen2-VL / 2.5-VL: the merger output ``[t, h/2, w/2, D]`` (D = 3584 for 7B); metadata with the
  keys and types of the authors' files (their dataset dict after the DataLoader's default collate
  and their save lines), so their reader (``video_grid_thw[0].prod()``) accepts ours: ``vid``
  (str), ``video_sample_fps`` (float: padded frame count / container frames x container fps),
  ``frame_time`` (float64 tensor ``[1]``: the collate keeps only the first frame's time) and
  ``video_grid_thw`` (int64 tensor ``[1, 3]``: ``[[t, h, w]]``); no ``video_time``/``num_frames``
  (the reader recovers the duration as frames / ``video_sample_fps``).

Driven by the lmms-eval model in ``features_mode=extract`` (one call per video of the task, so
sharding and multi-process come from lmms-eval/accelerate); finished videos are skipped.
"""

from __future__ import annotations

import torch
from loguru import logger

from lmms_sttm.features.layout import FeatureLayout, video_id
from lmms_sttm.features.store import save_metadata, save_tensor
from lmms_sttm.models.video_inputs import encode_qwen, even_frames, llava_tower, sampled_fps
from lmms_sttm.video import VideoInfo, load_video


def layout_for(model, task: str) -> FeatureLayout:
    """The feature set of an ``SttmVideoModel`` (its ``features`` root, checkpoint, sampling) for ``task``."""
    fps, cap = model.frames_for(task)
    s = model.settings
    return FeatureLayout.for_run(s.features, s.pretrained, task, fps, cap, s.features_ckpt)


def llava_metadata(vid: str, info: VideoInfo, indices: list[int]) -> dict:
    return {
        "vid": vid,
        "video_time": float(info.duration),
        "frame_time": ",".join(f"{i / info.fps:.2f}s" for i in indices),
        "num_frames": len(indices),
    }


def qwen_metadata(vid: str, info: VideoInfo, indices: list[int], thw: list[int]) -> dict:
    """The authors' Qwen2-VL metadata; ``indices`` after the even-count padding, ``thw`` ``[t, h, w]``."""
    return {
        "vid": vid,
        "video_sample_fps": sampled_fps(len(indices), info),
        "frame_time": torch.tensor([indices[0] / info.fps], dtype=torch.float64),
        "video_grid_thw": torch.tensor([[int(v) for v in thw]], dtype=torch.int64),
    }


def extract_video(model, path: str, task: str) -> bool:
    """Write the features of one video unless present; True when written. Raises ``VideoError``."""
    layout = layout_for(model, task)
    vid = video_id(path)
    if layout.complete(vid):
        return False
    fps, cap = model.frames_for(task)
    frames, idx, info = load_video(path, target_fps=fps, max_frames=cap, backend=model.settings.video_backend)
    if model.family == "qwen":
        frames, idx = even_frames(frames, idx)
        video = encode_qwen(model.model, model.processor, frames, fps=sampled_fps(len(idx), info))
        t, h2, w2 = video.grid
        tensor = video.features.reshape(t, h2, w2, -1)
        meta = qwen_metadata(vid, info, idx, video.extra["video_grid_thw"][0].tolist())
    else:
        tensor, _ = llava_tower(model.model, model.processor, frames)
        meta = llava_metadata(vid, info, idx)
    save_tensor(layout.feature_path(vid), tensor)
    save_metadata(layout.metadata_path(vid), meta)
    logger.debug(f"features: {vid} {tuple(tensor.shape)} {tensor.dtype} -> {layout.feature_path(vid)}")
    return True
