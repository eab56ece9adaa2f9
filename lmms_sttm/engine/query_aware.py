"""Query-aware reducers: reducers that also read the last prompt token's attention over the video.

A reducer opts in with a class attribute ``needs_attention = True`` and accepts a keyword
argument ``context``:

    reducer(hidden [T*H*W, C], grid, context=AttentionContext(scores [T*H*W], layer=k, num_layers=L))

The engine computes ``scores`` in its forward pre-hook on decoder layer ``k - 1`` of the reducing
chunk (``attention_scores.last_token_attention``: layer ``k - 1``'s own projections, no eager
attention) and passes them when layer ``k``'s stage calls the reducer (``segments.py``). Query-aware reducers need
``k >= 1`` and the question inside the reducing chunk, so they cannot share a prefilled prefix
across questions (a method whose stage reads them is not query-agnostic: ``methods/spec.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmms_sttm.merging.reduction import Reduction


@dataclass(frozen=True)
class AttentionContext:
    """What a query-aware reducer (or a stage of a staged method) gets besides the hidden states.

    Attributes:
        scores: ``[n]`` float32 mean-over-heads attention of the chunk's last token over the current
            video span at layer ``layer - 1`` (softmax over the whole chunk, so they sum to < 1);
            None for a stage that does not read attention.
        layer: k, the layer whose input is reduced.
        num_layers: L, decoder layers of the model.
        tokens: the earlier stages' plan composed over the original tokens (None at the first stage):
            which original tokens each current token covers (``token_map``, ``rep_index``).
        timestamps: seconds of each of the grid's ``T`` frames in the video (None when unknown).
        vision_scores: ``[T, H*W]`` float32, the vision tower's received attention of each grid
            token (``models/vision_attention.py``), at the first stage of a run whose video was
            encoded with it; None otherwise.
    """

    scores: torch.Tensor | None
    layer: int
    num_layers: int
    tokens: Reduction | None = None
    timestamps: tuple[float, ...] | None = None
    vision_scores: torch.Tensor | None = None


def needs_attention(reducer: object) -> bool:
    """Whether ``reducer`` is query-aware (``needs_attention = True``)."""
    return bool(getattr(reducer, "needs_attention", False))
