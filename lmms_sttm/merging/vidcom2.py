"""VidCom2 (Liu et al., EMNLP 2025; github.com/xuyang-liu16/VidCom2): per-frame budgets from how
distinct each frame is, then the most distinct tokens inside each frame.

For ``hidden [T*H*W, C]`` (``F = H*W`` tokens per frame) and base retention ``r``:

1. Channels: the ``int(C / 2)`` channels of lowest variance over all ``N`` tokens (population
   variance; ``topk``, whose choice among equal variances the authors' code also leaves to it); every token is restricted to them and L2-normalised: ``x [T, F, C/2]``.
2. Scores: ``g(x, c) = sum_{a in 1/8, 1/4, 1/2, 1, 2} exp(-|x - c|^2 / (2a))`` against the video
   centre (mean of all ``x``) -> ``v [T, F]`` and against the frame's own centre -> ``f [T, F]``.
3. Frame budgets: ``s_t = -mean_F v[t]``; ``p = softmax((s - max s) / 0.01)``;
   ``scale_t = min(1, r * (1 + p_t - mean p))``; ``k_t = max(1, round(scale_t * F))`` (round half
   to even, as ``torch.round``).
4. In frame ``t`` the ``k_t`` tokens of lowest ``v + f`` are kept (ties: lower index first; the
   authors' unsorted ``topk`` leaves exact ties implementation-defined).

Every score is computed in the input's dtype, as the authors' code does (in bfloat16 the scores
tie often). Kept tokens keep their own features, in raster order; a dropped token is counted with the nearest
kept token before it (``from_keep_mask``). The authors run it on the projector's output, before the
LLM, on every model family (on LLaVA-Video they also keep each row's newline token; this harness's
LLaVA-Video span has no newline tokens, so the grid is the frames' tokens only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmms_sttm.merging.groups import Grid, from_keep, previous_kept_parent
from lmms_sttm.merging.reduction import Reduction

ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)
TEMPERATURE = 0.01
CHANNEL_SHARE = 0.5


def _gaussian(x: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    d2 = ((x - centre) ** 2).sum(dim=-1)
    return sum(torch.exp(-d2 / (2 * a)) for a in ALPHAS)


def vidcom2_scores(hidden: torch.Tensor, grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v [T, F], f [T, F])`` in the input's dtype (as the authors compute): similarity to the video centre and to the frame centre."""
    t, h, w = grid
    x = hidden
    k = int(x.shape[1] * CHANNEL_SHARE)
    var = x.var(dim=0, unbiased=False)
    channels = torch.topk(var, k, largest=False).indices  # ties: topk's own order, as the authors
    x = F.normalize(x.index_select(1, channels).reshape(t, h * w, k), dim=-1)
    video_centre = x.mean(dim=(0, 1), keepdim=True)
    frame_centre = x.mean(dim=1, keepdim=True)
    return _gaussian(x, video_centre), _gaussian(x, frame_centre)


def frame_budgets(v: torch.Tensor, retention: float) -> torch.Tensor:
    """``v [T, F]`` -> ``[T]`` int64 tokens to keep per frame."""
    tpf = v.shape[1]
    s = -v.mean(dim=-1)
    p = torch.softmax((s - s.max()) / TEMPERATURE, dim=0)
    scale = (retention * (1 + p - p.mean())).clamp(max=1.0)
    return (scale * tpf).round().long().clamp(min=1)


def vidcom2_keep(hidden: torch.Tensor, grid: Grid, retention: float) -> torch.Tensor:
    """``[N]`` bool keep mask of VidCom2 at base retention ``retention``."""
    v, f = vidcom2_scores(hidden, grid)
    budgets = frame_budgets(v, retention)
    score = v + f
    rank = torch.argsort(torch.argsort(score, dim=1, stable=True), dim=1)  # 0 = least similar
    return (rank < budgets[:, None]).reshape(-1)


class Vidcom2Reducer:
    """Engine reducer: VidCom2 at base retention ``retention`` (the authors' ``R_RATIO``)."""

    needs_attention = False

    def __init__(self, retention: float) -> None:
        if not 0 < retention <= 1:
            raise ValueError(f"VidCom2 retention must be in (0, 1], got {retention}")
        self.retention = float(retention)

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction:
        keep = vidcom2_keep(hidden, grid, self.retention)
        return from_keep(hidden, keep, previous_kept_parent(keep), grid)

    def __repr__(self) -> str:
        return f"Vidcom2Reducer(retention={self.retention})"
