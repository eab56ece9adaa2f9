"""Query-aware reducers: reducers that also read the last prompt token's attention over the video.

A reducer opts in with a class attribute ``needs_attention = True`` and accepts a keyword
argument ``context``:

    reducer(hidden [T*H*W, C], grid, context=AttentionContext(scores [T*H*W], layer=k, num_layers=L))

The engine computes ``scores`` in a forward pre-hook on decoder layer ``k - 1`` of the reducing
chunk (``attention_scores.last_token_attention``: layer ``k - 1``'s own projections, no eager
attention) and binds them to the reducer before layer ``k`` calls it. Query-aware reducers need
``k >= 1`` and the question inside the reducing chunk, so they cannot share a prefilled prefix
across questions (their ``MethodPlan.query_agnostic`` is False).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lmms_sttm.engine.attention_scores import last_token_attention
from lmms_sttm.engine.placement import on_layer_device
from lmms_sttm.merging.reduction import Reduction


@dataclass(frozen=True)
class AttentionContext:
    """What a query-aware reducer gets besides the hidden states.

    Attributes:
        scores: ``[T*H*W]`` float32 mean-over-heads attention of the chunk's last token over the video
            span at layer ``layer - 1`` (softmax over the whole chunk, so they sum to < 1).
        layer: k, the layer whose input is reduced.
        num_layers: L, decoder layers of the model.
    """

    scores: torch.Tensor
    layer: int
    num_layers: int


def needs_attention(reducer: object) -> bool:
    """Whether ``reducer`` is query-aware (``needs_attention = True``)."""
    return bool(getattr(reducer, "needs_attention", False))


class _Bound:
    """``(hidden, grid) -> Reduction``: a query-aware reducer with its context bound."""

    def __init__(self, reducer, context: AttentionContext) -> None:
        self.reducer, self.context = reducer, context

    def __call__(self, hidden: torch.Tensor, grid) -> Reduction:
        return self.reducer(hidden, grid, context=self.context)


def make_score_hook(engine):
    """Forward pre-hook for layer ``k - 1``: binds the scores to the reducer of the reducing chunk."""

    def hook(module, args, kwargs):
        call = engine._call
        if call is None or call.span_start is None or not needs_attention(call.video.reducer):
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        rotary = kwargs.get("position_embeddings")
        if rotary is None:
            raise ValueError("query-aware reduction: layer k-1 received no position_embeddings")
        start = call.span_start
        hidden, rotary = on_layer_device(module, hidden, rotary)  # before accelerate moves them
        scores = last_token_attention(module, hidden, rotary, (start, start + call.video.num_tokens))
        context = AttentionContext(scores, engine.layer, len(engine.text_model.layers))
        call.video = dataclasses.replace(call.video, reducer=_Bound(call.video.reducer, context))
        return None

    return hook
