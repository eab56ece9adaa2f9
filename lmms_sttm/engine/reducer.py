"""The reducer interface: a video span's hidden states and grid in, a ``Reduction`` plan out.

A reducer knows nothing about transformers. The engine calls it once per video, in prefill, on
the hidden states entering decoder layer k:

    reducer(hidden [T*H*W, C], grid (T, H, W)) -> Reduction

``hidden`` rows are in raster order ``t*H*W + y*W + x`` and in the model's dtype. The returned
plan's ``features [N', C]`` replace the span (cast to the model's dtype) and enter the LLM in the
plan's row order (raster order of the representatives for most methods; the authors' ToMe lists
its own order); ``rep_index [N']`` must name distinct original tokens, which is what makes
original-id positions of the reduced sequence well defined.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from lmms_sttm.merging.reduction import Reduction

Grid = tuple[int, int, int]


@runtime_checkable
class Reducer(Protocol):
    """``(hidden [T*H*W, C], grid) -> Reduction`` with ``features [N', C]``."""

    def __call__(self, hidden: torch.Tensor, grid: Grid) -> Reduction: ...


def identity_reducer(hidden: torch.Tensor, grid: Grid) -> Reduction:
    """Keeps every token: ``[T*H*W, C] -> Reduction`` with ``N' = N``."""
    t, h, w = grid
    return Reduction.identity(hidden.reshape(t, h, w, hidden.shape[-1]))


def check_reduction(plan: Reduction, hidden: torch.Tensor, grid: Grid) -> None:
    """Raises ``ValueError`` unless ``plan`` is a valid reduction of ``hidden [T*H*W, C]`` on ``grid``."""
    if not isinstance(plan, Reduction):
        raise ValueError(f"reducer returned {type(plan).__name__}, expected Reduction")
    n, c = hidden.shape
    if tuple(plan.grid) != tuple(grid):
        raise ValueError(f"reduction grid {plan.grid} != span grid {grid}")
    kept = plan.num_kept
    if plan.features.dim() != 2 or plan.features.shape[1] != c or not 0 < kept <= n:
        raise ValueError(f"reduction features {tuple(plan.features.shape)} do not fit [N'<= {n}, {c}]")
    rep = plan.rep_index
    if rep.shape != (kept,):
        raise ValueError(f"rep_index shape {tuple(rep.shape)} != ({kept},)")
    if int(rep.min()) < 0 or int(rep.max()) >= n:
        raise ValueError(f"rep_index out of range [0, {n})")
    if kept > 1 and not bool((rep[1:] > rep[:-1]).all()) and torch.unique(rep).numel() != kept:
        raise ValueError("rep_index must name distinct original tokens (one representative per kept token)")
    if plan.token_map.shape != (n,):
        raise ValueError(f"token_map shape {tuple(plan.token_map.shape)} != ({n},)")
    source = plan.position_index
    if source is not None and (source.shape != (kept,) or int(source.min()) < 0 or int(source.max()) >= n):
        raise ValueError(f"position_index must be [{kept}] indices in [0, {n})")
