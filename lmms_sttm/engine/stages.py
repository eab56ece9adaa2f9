"""A method is a sequence of stages: reductions at chosen decoder layers of one prefill.

A stage (``merging/stage.py``) reduces the video tokens entering decoder layer ``layer``
(``point="input"``; layer 0: the input embeddings) or inside it, after its attention and before
its MLP (``point="attention"``). Each stage sees the tokens the previous stages left,
``hidden [n, C]`` in the order they enter the LLM (grid ``(T, H, W)`` at the first stage,
``(1, 1, n)`` later; ``context.tokens`` maps them to the original tokens), and returns a
``Reduction`` over those ``n`` tokens; the engine opens a new segment where the stage's tokens
start (its own positions, masks and cache length) and composes the plans into one map over the
original ``T*H*W`` tokens (``compose``) for statistics. Examples: FrameFusion (merges at layer 0's
input and after each attention, then a prune), HoliTom (outer merge at layer 0's input + inner
merge at layer k), FlashVID (input-embedding stage + a prune at layer 20).

Two kinds of method objects:

- a plain reducer ``(hidden [N, C], grid) -> Reduction`` (optionally query-aware,
  ``engine/query_aware.py``) is the one-stage case: one stage at the engine's layer k;
- a staged method has ``start(grid, num_layers, layer) -> StageRun``; the run says which stage
  comes next (``next_stage()``, decided after the previous one ran, so a method can stop or go on
  depending on the data, as FrameFusion does) and runs it (``run(hidden, grid, context)``).

A stage's ``position_rule`` is the method's: ``"renumber"`` (the reduced sequence is numbered
``0..N'-1``; 1-D RoPE only) or ``"original"`` (every kept token keeps the position id of
``Reduction.position_source``, text keeps its own); ``None`` takes the model family's default.
M-RoPE families always keep original ids.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from lmms_sttm.engine.hybrid import HybridRun, is_hybrid
from lmms_sttm.engine.query_aware import AttentionContext, needs_attention
from lmms_sttm.merging.reduction import Reduction
from lmms_sttm.merging.stage import POINTS, POSITION_RULES, Stage

__all__ = ["POINTS", "POSITION_RULES", "OneStage", "Stage", "StageRun", "compose", "is_staged", "start_run"]


@runtime_checkable
class StageRun(Protocol):
    """One prefill's stages. ``next_stage()`` -> the next ``Stage`` or None (done);
    ``run(hidden [n, C], grid, context) -> Reduction`` over the ``n`` current video tokens."""

    def next_stage(self) -> Stage | None: ...

    def run(self, hidden: torch.Tensor, grid, context: AttentionContext) -> Reduction: ...


def is_staged(method: object) -> bool:
    """Whether ``method`` is a staged method (has ``start``) rather than a one-stage reducer."""
    return callable(getattr(method, "start", None))


def position_rule_of(method: object) -> str | None:
    """The method's ``position_rule`` attribute (None: the family's default)."""
    rule = getattr(method, "position_rule", None)
    if rule is not None and rule not in POSITION_RULES:
        raise ValueError(f"{method!r}: position_rule {rule!r} not in {list(POSITION_RULES)}")
    return rule


class OneStage:
    """The one-stage case: ``reducer`` at layer ``layer``, called as ``reducer(hidden, grid)`` (or with
    ``context=`` when query-aware)."""

    def __init__(self, reducer, layer: int) -> None:
        self.reducer = reducer
        self._stage: Stage | None = Stage(layer, needs_attention(reducer), position_rule_of(reducer))

    def next_stage(self) -> Stage | None:
        return self._stage

    def run(self, hidden: torch.Tensor, grid, context: AttentionContext) -> Reduction:
        self._stage = None
        if needs_attention(self.reducer):
            return self.reducer(hidden, grid, context=context)
        return self.reducer(hidden, grid)


def start_run(method, grid, num_layers: int, layer: int, kinds: list[str] | None = None) -> StageRun:
    """A fresh run of ``method`` for one prefill (``layer``: the engine's default stage layer).

    ``kinds``: the decoder's layer types; on a hybrid decoder a stage reading attention reads it
    from the nearest full-attention layer (``engine/hybrid.py``)."""
    run = method.start(tuple(grid), num_layers, layer) if is_staged(method) else OneStage(method, layer)
    return HybridRun(run, kinds) if kinds and is_hybrid(kinds) else run


def compose(first: Reduction | None, plan: Reduction) -> Reduction:
    """The plan over the original tokens after ``first`` (over the originals) then ``plan`` (over
    ``first``'s kept tokens, in their order): ``token_map``, ``rep_index``, ``position_index`` and
    ``tlbr`` are mapped back to the original tokens; ``features`` are ``plan``'s."""
    if first is None:
        return plan
    token_map = plan.token_map.to(first.token_map.device).index_select(0, first.token_map)
    rep = plan.rep_index.to(first.rep_index.device)
    source = plan.position_source.to(first.rep_index.device)
    return Reduction(
        features=plan.features,
        num_patches=torch.bincount(token_map, minlength=plan.num_kept),
        tlbr=first.tlbr.index_select(0, rep),
        token_map=token_map,
        rep_index=first.rep_index.index_select(0, rep),
        grid=first.grid,
        position_index=first.position_source.index_select(0, source),
        carry=None if first.carry is None or plan.carry is None else (lambda v: plan.carry(first.carry(v))),
    )
