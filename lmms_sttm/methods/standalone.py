"""A method's prefill stages run on video features alone, without a model (benchmarks, timing).

Every stage gets the tokens the previous stage left (grid ``(T, H, W)`` first, ``(1, 1, n)``
after); a stage that reads the last prompt token's attention gets seeded random scores instead.
"""

from __future__ import annotations

import torch

from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.engine.stages import compose, start_run
from lmms_sttm.merging.reduction import Reduction


def run_without_model(
    method,
    hidden: torch.Tensor,
    grid: tuple[int, int, int],
    layer: int = 2,
    num_layers: int = 28,
    seed: int = 1,
) -> Reduction:
    """``method`` (reducer or staged) on ``hidden [T*H*W, C]``: the plan composed over the original tokens."""
    gen = torch.Generator().manual_seed(seed)
    run = start_run(method, grid, num_layers, layer)
    current, stage_grid, composed = hidden, tuple(grid), None
    while (stage := run.next_stage()) is not None:
        scores = None
        if stage.needs_attention:
            scores = torch.rand(current.shape[0], generator=gen).to(current.device)
        plan = run.run(
            current, stage_grid, AttentionContext(scores, stage.layer, num_layers, tokens=composed)
        )
        composed = compose(composed, plan)
        current, stage_grid = plan.features, (1, 1, plan.num_kept)
    if composed is None:
        raise ValueError(f"{method!r} ran no stage")
    return composed
