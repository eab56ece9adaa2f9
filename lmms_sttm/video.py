"""Frame sampling (the STTM protocol's sampler; qwen-vl-utils' for Qwen3.5) and video decoding
(decord, PyAV fallback).

Decoding returns ``[F, H, W, 3]`` uint8 RGB arrays. decord is used when installed (the
``decord`` extra); otherwise PyAV, which lmms-eval always installs. Both return the same
frames for the same indices (tested on the synthetic clips).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np


class VideoError(RuntimeError):
    """A video that cannot be read: missing, corrupt, empty, or asked for frames it lacks."""


@dataclass(frozen=True)
class VideoInfo:
    """Container facts: frame count and average frame rate."""

    num_frames: int
    fps: float

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def sample_indices(
    num_frames: int, video_fps: float, target_fps: float = 1.0, max_frames: int = 128
) -> list[int]:
    """The STTM sampler: frame indices at ``target_fps``, the last frame appended, capped.

    Indices ``ceil(k * interval)`` for ``k = 0 .. ceil((N-1)/interval)-1`` with
    ``interval = video_fps / target_fps``; the last frame ``N-1`` is appended when missing; if
    more than ``max_frames`` remain, ``linspace(0, N-1, max_frames)`` truncated to int instead.
    """
    if num_frames <= 0:
        raise VideoError(f"video has no frames (num_frames={num_frames})")
    if video_fps <= 0 or target_fps <= 0:
        raise ValueError(f"fps must be positive (video_fps={video_fps}, target_fps={target_fps})")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    interval = video_fps / target_fps
    count = max(1, math.ceil((num_frames - 1) / interval))
    idx = [min(math.ceil(k * interval), num_frames - 1) for k in range(count)]
    if idx[-1] != num_frames - 1:
        idx.append(num_frames - 1)
    if len(idx) > max_frames:
        idx = np.linspace(0, num_frames - 1, max_frames).astype(int).tolist()
    return idx


def backend_available(name: str) -> bool:
    if name == "pyav":
        return True
    if name == "decord":
        try:
            import decord  # noqa: F401
        except ImportError:
            return False
        return True
    raise ValueError(f"unknown video backend {name!r}; accepted: 'decord', 'pyav', 'auto'")


def _resolve(backend: str) -> str:
    if backend == "auto":
        return "decord" if backend_available("decord") else "pyav"
    backend_available(backend)
    return backend


def _check_path(path: str) -> None:
    if not os.path.isfile(path):
        raise VideoError(f"video file not found: {path}")
    if os.path.getsize(path) == 0:
        raise VideoError(f"video file is empty: {path}")


def probe(path: str, backend: str = "auto") -> VideoInfo:
    """Frame count and average fps of the video at ``path``."""
    _check_path(path)
    backend = _resolve(backend)
    try:
        if backend == "decord":
            import decord

            vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            return VideoInfo(len(vr), float(vr.get_avg_fps()))
        return _probe_pyav(path)
    except VideoError:
        raise
    except Exception as e:  # decoder libraries raise many unrelated types
        raise VideoError(f"cannot read video {path}: {type(e).__name__}: {e}") from e


def _probe_pyav(path: str) -> VideoInfo:
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise VideoError(f"no video stream in {path}")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        n = stream.frames
        if n <= 0:  # container without a frame count: count by decoding
            n = sum(1 for _ in container.decode(stream))
    if n <= 0 or fps <= 0:
        raise VideoError(f"video {path} has no decodable frames (frames={n}, fps={fps})")
    return VideoInfo(int(n), fps)


def read_frames(path: str, indices: list[int], backend: str = "auto") -> np.ndarray:
    """Decode the frames at ``indices`` (sorted or not, repeats allowed): ``[F, H, W, 3]`` uint8."""
    _check_path(path)
    if len(indices) == 0:
        raise ValueError("no frame indices requested")
    backend = _resolve(backend)
    try:
        if backend == "decord":
            import decord

            vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            bad = [i for i in indices if not 0 <= i < len(vr)]
            if bad:
                raise VideoError(f"frame indices {bad[:5]} outside 0..{len(vr) - 1} in {path}")
            return vr.get_batch(list(indices)).asnumpy()
        return _read_pyav(path, indices)
    except VideoError:
        raise
    except Exception as e:
        raise VideoError(f"cannot decode video {path}: {type(e).__name__}: {e}") from e


def _read_pyav(path: str, indices: list[int]) -> np.ndarray:
    """Sequential decode keeping only the wanted frames (memory bounded by the selection)."""
    import av

    wanted = set(indices)
    last = max(indices)
    got: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    missing = sorted(wanted - got.keys())
    if missing:
        raise VideoError(
            f"frame indices {missing[:5]} not found in {path} (decoded {len(got)} wanted frames)"
        )
    return np.stack([got[i] for i in indices])


def qwen_vl_utils_indices(
    num_frames: int, video_fps: float, target_fps: float = 2.0, max_frames: int = 768, min_frames: int = 4
) -> list[int]:
    """qwen-vl-utils 0.0.14's sampler as lmms-eval's ``qwen3_vl`` / ``qwen3_5`` wrappers call it with
    ``fps``/``max_frames`` (``smart_nframes``, then its decord reader's indices).

    ``n = N / video_fps * target_fps`` clamped to ``[min_frames, max_frames]`` (rounded up / down to
    even) and to ``N``, then rounded down to even; indices ``linspace(0, N-1, n)`` rounded (float32,
    half to even, as ``torch.linspace(...).round()``). Fewer than 2 frames is an error there and here.
    """
    import torch

    if num_frames <= 0:
        raise VideoError(f"video has no frames (num_frames={num_frames})")
    if video_fps <= 0 or target_fps <= 0:
        raise ValueError(f"fps must be positive (video_fps={video_fps}, target_fps={target_fps})")
    lowest = math.ceil(min_frames / 2) * 2
    highest = math.floor(max_frames / 2) * 2
    n = min(max(num_frames / video_fps * target_fps, lowest), highest, num_frames)
    n = math.floor(n / 2) * 2
    if not 2 <= n <= num_frames:
        raise VideoError(
            f"qwen-vl-utils sampling needs 2..{num_frames} frames, got {n} (a {num_frames}-frame video)"
        )
    return torch.linspace(0, num_frames - 1, n).round().long().tolist()


#: frame samplers by name: the STTM protocol's, and qwen-vl-utils' (lmms-eval's Qwen3.5 wrapper)
SAMPLERS = {"sttm": sample_indices, "qwen_vl_utils": qwen_vl_utils_indices}


def load_video(
    path: str, target_fps: float = 1.0, max_frames: int = 128, backend: str = "auto", sampler: str = "sttm"
) -> tuple[np.ndarray, list[int], VideoInfo]:
    """Probe, sample (``sampler``: a key of :data:`SAMPLERS`) and decode: ``(frames [F,H,W,3] uint8,
    indices, info)``."""
    info = probe(path, backend)
    idx = SAMPLERS[sampler](info.num_frames, info.fps, target_fps, max_frames)
    return read_frames(path, idx, backend), idx, info
