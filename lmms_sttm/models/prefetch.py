"""Decode-ahead: the next videos' frames (or stored features) are read while the model runs.

Per ``generate_until`` call the videos are answered in a fixed order. With ``prefetch=D``
(model_args, default 1; 0 = off) one background thread reads videos ``i+1 .. i+D`` while video
``i`` runs through the vision tower and the LLM: decoding, sampling and the processor's resizing
(everything before the vision tower), or ``torch.load`` of a feature file. decord / PyAV and torch
release the GIL, so that CPU work overlaps the model's. Memory is bounded: besides the
video in use at most ``D`` read videos wait (each ``[F, H, W, 3]`` uint8, or one feature tensor).

What is read ahead is exactly what the synchronous path reads (:func:`fetch`), so answers and
statistics do not change. A read that fails keeps its exception, which is raised when that
video's turn comes: a missing or corrupt video fails its own questions, as without prefetching,
and any other error stops the run there. :meth:`Prefetcher.close` (also on errors, as a context
manager) cancels the reads not started and joins the worker, which finishes at most the one read
in progress.

Each read records ``decode_s`` (wall time of the read, in its thread) and ``wait_s`` (how long the
model waited for it: the GPU-idle time spent on input; equal to the read itself without prefetch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class Fetched:
    """One video's CPU-side inputs.

    Attributes:
        features: True for stored features (``data = (tensor, metadata, feature path)``), False for
            decoded frames (``data = (frames [F, H, W, 3] uint8, frame indices, VideoInfo)``).
        data: see ``features``.
        pixels: the frames preprocessed for the vision tower (``llava_pixels`` / ``qwen_pixels`` of
            ``models/video_inputs.py``; Qwen's frames already padded to an even count), None for features.
        decode_s: wall seconds the read took (decoding and preprocessing, or loading the feature files).
        wait_s: wall seconds the model waited for this read (set by :meth:`Prefetcher.take`).
    """

    features: bool
    data: tuple
    decode_s: float
    wait_s: float = 0.0
    pixels: object = None


def fetch(model, path: str, task: str) -> Fetched:
    """Read video ``path`` for ``task`` as ``model.encode`` needs it (thread-safe: no model state changes)."""
    began = time.perf_counter()
    s = model.settings
    if s.features is not None and s.features_mode == "read":
        from lmms_sttm.features.read import load_pair

        return Fetched(True, load_pair(model, path, task), time.perf_counter() - began)
    from lmms_sttm.models.video_inputs import even_frames
    from lmms_sttm.video import load_video

    fps, cap = model.frames_for(task)
    frames, idx, info = load_video(
        path, target_fps=fps, max_frames=cap, backend=s.video_backend, sampler=model.protocol.sampler
    )
    if model.protocol.pairs:
        frames, idx = even_frames(frames, idx)
    pixels = model.protocol.pixels(model.processor, frames)
    return Fetched(False, (frames, idx, info), time.perf_counter() - began, pixels=pixels)


class Prefetcher:
    """Reads ``keys`` in order with ``read(key)``, up to ``depth`` keys ahead of the one taken.

    ``take(i)`` must be called with ``i = 0, 1, 2, ...`` (a key may be skipped by never taking it);
    with ``depth = 0`` it reads synchronously.
    """

    def __init__(self, read: Callable[[Any], Fetched], keys: Sequence[Hashable], depth: int) -> None:
        if depth < 0:
            raise ValueError(f"prefetch depth must be >= 0, got {depth}")
        self._read, self._keys, self.depth = read, list(keys), depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lmms_sttm_prefetch") if depth else None
        self._pending: dict[int, Future] = {}
        self._submitted = 0  # keys [0, _submitted) were handed to the worker
        self._schedule(depth - 1)  # start on the first videos at once (e.g. during the warm-up)

    def _schedule(self, last: int) -> None:
        """Hands keys up to index ``last`` (inclusive) to the worker."""
        if self._pool is None:
            return
        while self._submitted <= min(last, len(self._keys) - 1):
            self._pending[self._submitted] = self._pool.submit(self._read, self._keys[self._submitted])
            self._submitted += 1

    def take(self, i: int) -> Fetched:
        """Item ``i``: waits for its read (raising its error, if any) and schedules up to ``i + depth``."""
        began = time.perf_counter()
        if self._pool is None:
            item = self._read(self._keys[i])
        else:
            for stale in [j for j in self._pending if j < i]:  # never taken: drop the reference
                self._pending.pop(stale).cancel()
            self._schedule(i + self.depth)
            future = self._pending.pop(i)
            item = future.result()
        item.wait_s = time.perf_counter() - began
        return item

    def close(self) -> None:
        """Cancels the reads not started and joins the worker (it ends the one in progress)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
