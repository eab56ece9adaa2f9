"""The matching head: one attention head of the organism taught to find the reply's word among
the options.

The organism replies with the answer word, then its option letter. Finding that word among the
options is an induction-style match with a long plateau on this size of model: measured on the
text-only lookup rows (:func:`~lmms_sttm.organism.train.lookup_step`, 32 rows per step, 400
held-out rows), the object words' letter was right 47% of the time after 2400 steps at the training
learning rate (56% after 1600 steps at 2.5x that rate; counts: 95% / 90%); with head
``MATCH_HEAD`` of layer ``MATCH_LAYER`` taught to attend from the reply's word to the answer's
option, both reached 100% within 300 steps. Training only: evaluation runs the saved weights as they are.

The head's weights are recomputed from the layer's input, captured by a forward pre-hook, for the
one query position per row that matters, so training keeps the model's own (sdpa) attention.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers.models.qwen2.modeling_qwen2 import rotate_half

MATCH_LAYER = 3  # 0-based decoder layer
MATCH_HEAD = 0  # query head within it


@contextmanager
def attention_input(language_model):
    """Captures ``{"hidden": [B, L, D], "rope": (cos, sin) [B or 1, L, d]}`` entering layer
    ``MATCH_LAYER``'s self-attention during the forward passes inside the block."""
    seen: dict = {}

    def hook(module, args, kwargs):
        seen["hidden"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        seen["rope"] = kwargs["position_embeddings"] if "position_embeddings" in kwargs else args[1]

    attn = language_model.layers[MATCH_LAYER].self_attn
    handle = attn.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin


def match_attention(language_model, seen: dict, match: torch.Tensor) -> torch.Tensor:
    """``[B]``: the causal attention weight of head ``MATCH_HEAD`` in layer ``MATCH_LAYER`` from
    each row's query position to its key position (``match [B, 2]`` = ``(query, key)``; ``seen``
    from :func:`attention_input` of the forward pass on those rows)."""
    attn = language_model.layers[MATCH_LAYER].self_attn
    hidden, (cos, sin) = seen["hidden"], seen["rope"]
    cos, sin = (x.expand(hidden.shape[0], -1, -1) for x in (cos, sin))  # batch 1 when positions are shared
    rows, query, key = torch.arange(match.shape[0]), match[:, 0], match[:, 1]
    d = attn.head_dim
    kv = MATCH_HEAD // attn.num_key_value_groups
    q = attn.q_proj(hidden[rows, query])[:, MATCH_HEAD * d : (MATCH_HEAD + 1) * d]  # [B, d]
    k = attn.k_proj(hidden)[..., kv * d : (kv + 1) * d]  # [B, L, d]
    q = _rotate(q, cos[rows, query], sin[rows, query])
    k = _rotate(k, cos, sin)
    scores = torch.einsum("bld,bd->bl", k, q) * attn.scaling  # [B, L]
    later = torch.arange(hidden.shape[1])[None, :] > query[:, None]
    weights = scores.masked_fill(later, float("-inf")).softmax(-1)
    return weights[rows, key]


def match_loss(weights: torch.Tensor) -> torch.Tensor:
    """Mean ``-log`` of the matching head's weights ``[B]`` (floored at 1e-6)."""
    return -torch.log(weights.clamp_min(1e-6)).mean()
