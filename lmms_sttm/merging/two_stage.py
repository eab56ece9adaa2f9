"""A staged method of two stages: an outer stage on the LLM's input embeddings (layer 0), then an
inner stage at the input of layer ``k`` that reads the last prompt token's attention of layer
``k - 1`` (HoliTom's inner merge, FlashVID's inner prune).

The outer stage is ``outer(hidden [T*H*W, C], grid, vision_scores) -> Reduction``; the inner one
``inner(hidden [n, C], scores [n], grid (1, 1, n), n_original) -> Reduction`` over the ``n`` tokens
the outer stage left. ``vision_scores [T, H*W]`` is the vision tower's per-token attention on the
LLM's token grid, read from ``context.vision_scores`` (the model computes it while encoding the
video for a method that declares the read ``vision_attention``; None otherwise). Positions: the outer stage takes the model family's rule (LLaVA renumbers the reduced
sequence, Qwen keeps M-RoPE ids), the inner stage keeps the positions the tokens have (both
authors index their position ids with the kept rows).

``inner_layer``: the authors' layer of a 28-layer 7B model, scaled to the model's depth
(``round(layer * L / 28)``, at least 1, below ``L``) unless given.
"""

from __future__ import annotations

from lmms_sttm.merging.budget import target_count
from lmms_sttm.merging.stage import Stage

AUTHORS_DEPTH = 28


def scaled_layer(layer: int, num_layers: int) -> int:
    """The authors' ``layer`` of 28 on a model of ``num_layers`` layers, in ``[1, num_layers - 1]``."""
    if num_layers < 2:
        raise ValueError(f"an inner stage needs a model of at least 2 layers, got {num_layers}")
    return max(1, min(num_layers - 1, round(layer * num_layers / AUTHORS_DEPTH)))


class Inner:
    """An inner stage keeping ``count(n, ratio)`` of the ``n`` current tokens, or (``exact`` set)
    ``round(exact * N)`` of the video's ``N``: ``reduce(hidden [n, C], scores [n], count, grid)``
    makes the plan (HoliTom's merge, FlashVID's prune)."""

    def __init__(self, name: str, count, reduce, ratio: float, exact: float | None = None) -> None:
        self.name, self.count, self.reduce = name, count, reduce
        self.ratio, self.exact = ratio, exact

    def __call__(self, hidden, scores, grid, original: int):
        n = hidden.shape[0]
        count = (
            self.count(n, self.ratio) if self.exact is None else min(n, target_count(self.exact, original))
        )
        return self.reduce(hidden, scores, count, grid)

    def __repr__(self) -> str:
        return f"{self.name}(ratio={self.ratio}, exact={self.exact})"


class TwoStage:
    """``outer`` at layer 0, then (unless ``inner`` is None) ``inner`` at ``layer`` (None: the
    authors' ``authors_layer`` of 28, scaled to the model's depth)."""

    needs_attention = True

    def __init__(self, outer, inner, authors_layer: int, layer: int | None = None, name: str = "") -> None:
        self.outer, self.inner = outer, inner
        self.authors_layer, self.layer, self.name = authors_layer, layer, name
        if inner is None:
            self.needs_attention = False

    def inner_layer(self, num_layers: int) -> int:
        if self.layer is None:
            return scaled_layer(self.authors_layer, num_layers)
        if not 1 <= self.layer < num_layers:
            raise ValueError(f"{self.name} inner layer {self.layer} outside [1, {num_layers - 1}]")
        return self.layer

    def planned_stages(self, num_layers: int, layer: int) -> list[Stage]:
        """The stages every run takes (known before it runs: checked at start-up on hybrids)."""
        stages = [Stage(0)]
        if self.inner is not None:
            stages.append(Stage(self.inner_layer(num_layers), needs_attention=True, position_rule="original"))
        return stages

    def start(self, grid, num_layers: int, layer: int) -> TwoStageRun:
        return TwoStageRun(self, tuple(grid), self.planned_stages(num_layers, layer))

    def __repr__(self) -> str:
        return f"TwoStage({self.name}, outer={self.outer!r}, inner={self.inner!r}, layer={self.layer})"


class TwoStageRun:
    """One prefill: the outer stage, then the inner one."""

    def __init__(self, method: TwoStage, grid, stages: list[Stage]) -> None:
        self.method, self.grid, self.stages = method, grid, stages
        self.done = 0
        self.original = grid[0] * grid[1] * grid[2]

    def next_stage(self) -> Stage | None:
        return self.stages[self.done] if self.done < len(self.stages) else None

    def run(self, hidden, grid, context):
        self.done += 1
        if self.done == 1:
            return self.method.outer(hidden, tuple(grid), getattr(context, "vision_scores", None))
        return self.method.inner(hidden, context.scores, tuple(grid), self.original)
