"""Per-call settings (which video grid, which reducer) and the record of one reduction."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmms_sttm.engine.reducer import Grid, Reducer
from lmms_sttm.merging.reduction import Reduction


@dataclass(frozen=True)
class VideoSpec:
    """The video of the next prefill: its token grid ``(T, H, W)`` as the decoder sees it and the reducer.

    ``span_start``: index of the first grid token in the chunk, when it cannot be found from
    ``input_ids`` (text-only decoders, calls with ``inputs_embeds``). ``reducer``: a one-stage
    reducer or a staged method (``stages.py``). ``prompt_ends``: the reducing chunk is the whole
    prompt (``model.generate``), so the next forwards decode (the engine's ``decode_positions``);
    a prefix prefill sets False: the prompt then ends after the next chunk (the question) or at
    ``cache.end_prompt``. ``timestamps``: seconds of each grid frame, given to every stage.
    ``vision_scores``: ``[T, H*W]``, the vision tower's received attention of each grid token
    (``models/vision_attention.py``), given to the first stage (it is over the original grid).
    """

    grid: Grid
    reducer: Reducer
    span_start: int | None = None
    prompt_ends: bool = True
    timestamps: tuple[float, ...] | None = None
    vision_scores: torch.Tensor | None = None

    def __post_init__(self) -> None:
        grid = tuple(self.grid)
        if len(grid) != 3 or not all(isinstance(v, int) and v > 0 for v in grid):
            raise ValueError(f"grid must be three positive ints (T, H, W), got {self.grid!r}")
        object.__setattr__(self, "grid", grid)
        if not callable(self.reducer) and not callable(getattr(self.reducer, "start", None)):
            raise TypeError(
                "reducer must be callable (hidden [N, C], grid) -> Reduction or a staged method "
                f"(start(grid, num_layers, layer) -> StageRun), got {self.reducer!r}"
            )
        if self.span_start is not None and self.span_start < 0:
            raise ValueError(f"span_start must be >= 0, got {self.span_start}")
        if self.timestamps is not None:
            stamps = tuple(float(t) for t in self.timestamps)
            if len(stamps) != grid[0]:
                raise ValueError(f"{len(stamps)} timestamps for a grid of {grid[0]} frames")
            object.__setattr__(self, "timestamps", stamps)
        if self.vision_scores is not None and tuple(self.vision_scores.shape) != (grid[0], grid[1] * grid[2]):
            raise ValueError(
                f"vision_scores of shape {tuple(self.vision_scores.shape)} for a grid of {grid}: expected "
                f"[T, H*W] = [{grid[0]}, {grid[1] * grid[2]}]"
            )

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w


@dataclass(frozen=True)
class ReductionRecord:
    """What the stages did in the last reducing prefill.

    Attributes:
        visual_tokens: N, grid tokens entering the first stage.
        visual_tokens_kept: N', tokens left after the last stage (the final kept count).
        seconds: wall time of all stage calls (synchronised on CUDA).
        span_start: index of the first grid token in the chunk.
        plan: the stages' plans composed over the original tokens (``stages.compose``); for one
            stage, the reducer's ``Reduction``.
        video_rows: ``[N']`` rows of the kept video tokens in the last segment's chunk (one run
            from ``span_start``, or spread over frame blocks).
    """

    visual_tokens: int
    visual_tokens_kept: int
    seconds: float
    span_start: int
    plan: Reduction
    video_rows: torch.Tensor | None = None
