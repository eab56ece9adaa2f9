"""Seeded synthetic token grids for the parity drivers (written for them; no model needed).

A video is ``[T, H, W, C]`` float32: a few smooth spatial waves that drift from frame to frame,
a per-video offset, local detail blocks that appear at some frame and persist, and noise. The
``similarity`` knob scales the noise and detail: "high" grids merge a lot, "low" grids little,
so both outcomes of every threshold and link decision occur.
"""

from __future__ import annotations

import math

import torch

#: (name, T, H, W) of the token grids the drivers sweep: the paper's models' layouts and odd shapes
LAYOUTS = (
    ("llava_video", 64, 13, 13),
    ("llava_ov", 32, 14, 14),
    ("qwen2vl_like", 16, 10, 14),
    ("qwen2vl_like_9x16", 16, 9, 16),
    ("odd_frames", 63, 14, 14),
    ("odd_tokens", 63, 13, 13),
)
NOISE = {"high": 0.15, "mid": 0.4, "low": 1.2, "fair": 1.5, "lower": 2.5}


def video(t: int, h: int, w: int, channels: int, seed: int, similarity: str = "mid") -> torch.Tensor:
    """``[T, H, W, C]`` float32 grid (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    noise = NOISE[similarity]
    ty = torch.arange(t, dtype=torch.float32)[:, None, None]
    yy = torch.arange(h, dtype=torch.float32)[None, :, None] / h
    xx = torch.arange(w, dtype=torch.float32)[None, None, :] / w
    out = torch.randn(channels, generator=gen).expand(t, h, w, channels).clone()
    for _ in range(3):
        ky, kx, drift, phase = (float(v) for v in torch.rand(4, generator=gen))
        wave = torch.sin(2 * math.pi * (ky * 2 * yy + kx * 2 * xx) + phase * 6.3 + drift * 0.4 * ty)
        out += wave[..., None] * torch.randn(channels, generator=gen)
    for _ in range(max(1, h * w // 30)):
        y0 = int(torch.randint(0, h, (1,), generator=gen))
        x0 = int(torch.randint(0, w, (1,), generator=gen))
        t0 = int(torch.randint(0, t, (1,), generator=gen))
        size = int(torch.randint(1, 4, (1,), generator=gen))
        block = torch.randn(channels, generator=gen) * 2 * noise / NOISE["mid"]
        out[t0:, y0 : y0 + size, x0 : x0 + size] += block
    return out + noise * torch.randn(t, h, w, channels, generator=gen)
