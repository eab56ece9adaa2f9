"""A one-stage method whose stage also reads the vision tower's scores (FastVID's saliency).

A plain reducer is called as ``reducer(hidden, grid)`` and never sees ``context.vision_scores``; a
method that reads them (``StageSpec.reads`` holds ``vision_attention``) runs as this staged method
instead: one stage at the run's layer k, ``reduce(hidden [T*H*W, C], grid, vision_scores)`` with
``vision_scores [T, H*W]`` (``models/vision_attention.py``, the kind the spec declares) or None
when the run has none (stored features, or a caller without a model).
"""

from __future__ import annotations

from lmms_sttm.merging.stage import Stage


class VisionStage:
    """``reduce(hidden, grid, vision_scores) -> Reduction`` as a staged method (positions by
    ``position_rule``, None: the family's default)."""

    needs_attention = False

    def __init__(self, reduce, position_rule: str | None = None, name: str = "") -> None:
        self.reduce, self.position_rule, self.name = reduce, position_rule, name

    def start(self, grid, num_layers: int, layer: int) -> VisionStageRun:
        return VisionStageRun(self, layer)

    def __repr__(self) -> str:
        return f"VisionStage({self.name or self.reduce!r})"


class VisionStageRun:
    """One prefill: the single stage at ``layer``."""

    def __init__(self, method: VisionStage, layer: int) -> None:
        self.method, self.layer, self.done = method, layer, False

    def next_stage(self) -> Stage | None:
        return None if self.done else Stage(self.layer, position_rule=self.method.position_rule)

    def run(self, hidden, grid, context):
        self.done = True
        return self.method.reduce(hidden, tuple(grid), getattr(context, "vision_scores", None))
