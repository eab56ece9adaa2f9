"""Structured random videos for the merging tests: smooth scene + detail patches + noise."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids scheduler stalls when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def structured_video(
    frames: int,
    height: int,
    width: int,
    channels: int,
    seed: int,
    detail: float = 0.6,
    noise: float = 0.4,
    motion: float = 0.5,
) -> torch.Tensor:
    """``[T, H, W, C]`` float32: low-frequency field drifting over time, sharp detail patches, noise.

    Neighbouring tokens are similar where the field is smooth and dissimilar inside detail
    patches, so both outcomes of every stop/merge test occur.
    """
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y = torch.arange(height, dtype=torch.float32)[None, :, None] / max(height, 1)
    x = torch.arange(width, dtype=torch.float32)[None, None, :] / max(width, 1)
    video = torch.zeros(frames, height, width, channels)
    for _ in range(4):  # smooth scene: a few waves (wavelength >= 5 tokens), each with its own direction
        fy = float(torch.rand(1, generator=gen)) * max(1.0, height / 5)
        fx = float(torch.rand(1, generator=gen)) * max(1.0, width / 5)
        phase = float(torch.rand(1, generator=gen)) * 2 * math.pi
        wave = torch.cos(2 * math.pi * (fy * y + fx * x) + phase + motion * t)
        video += wave[..., None] * torch.randn(channels, generator=gen)
    video += torch.randn(channels, generator=gen) * 0.8  # common offset
    for _ in range(max(1, (height * width) // 40)):  # detail patches: independent vectors per token
        h0 = int(torch.randint(0, height, (1,), generator=gen))
        w0 = int(torch.randint(0, width, (1,), generator=gen))
        hs = int(torch.randint(1, max(2, height // 3), (1,), generator=gen))
        ws = int(torch.randint(1, max(2, width // 3), (1,), generator=gen))
        t0 = int(torch.randint(0, frames, (1,), generator=gen))
        patch = torch.randn(frames - t0, min(hs, height - h0), min(ws, width - w0), channels, generator=gen)
        video[t0:, h0 : h0 + hs, w0 : w0 + ws] += detail * 3 * patch
    video += noise * torch.randn(frames, height, width, channels, generator=gen)
    return video
