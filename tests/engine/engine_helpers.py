"""Engine test helpers: test reducers and a by-hand run of staged methods; the tiny models, their
inputs and the one-stage by-hand run live in ``lmms_sttm.conformance`` (the conformance check uses
them too)."""

from __future__ import annotations

import functools

import torch

from lmms_sttm.conformance.by_hand import (  # noqa: F401  (re-exported for the tests)
    causal_float_mask,
    decoder_inputs,
    logits_by_hand,
    run_layers,
    text_model_of,
)
from lmms_sttm.conformance.tiny import (  # noqa: F401
    EOS,
    IMAGE,
    ONE_RUN,
    PAD,
    QWEN_ROPE,
    TEXT,
    VEND,
    VIDEO,
    VSTART,
    VideoInputs,
    build_model,
    make_inputs,
    text_tokens,
)
from lmms_sttm.merging.reduction import Reduction

#: the families these engine tests cover (one video run); the frame-block ones: ``test_frame_blocks.py``
FAMILIES = ONE_RUN


def reduction_from_labels(
    hidden: torch.Tensor, grid: tuple[int, int, int], labels: torch.Tensor
) -> Reduction:
    """Merges tokens with equal ``labels [N]`` into their mean; representative = smallest index."""
    n = hidden.shape[0]
    t, h, w = grid
    _, inverse = torch.unique(labels, return_inverse=True)
    groups = int(inverse.max()) + 1
    rep = torch.full((groups,), n).scatter_reduce(0, inverse, torch.arange(n), reduce="amin")
    order = torch.argsort(rep)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(groups)
    token_map = rank[inverse]
    rep_index = rep[order]
    num_patches = torch.bincount(token_map, minlength=groups)
    sums = torch.zeros(groups, hidden.shape[1]).index_add_(0, token_map, hidden.float())
    features = (sums / num_patches[:, None]).to(hidden.dtype)
    tt, rem = rep_index // (h * w), rep_index % (h * w)
    yy, xx = rem // w, rem % w
    tlbr = torch.stack([tt, yy, xx, yy + 1, xx + 1], dim=-1)
    return Reduction(features, num_patches, tlbr, token_map, rep_index, grid)


def pair_merge_reducer(hidden: torch.Tensor, grid: tuple[int, int, int]) -> Reduction:
    """Deterministic merging: even rows merge frames (2t, 2t+1); odd rows merge columns (2x, 2x+1)."""
    t, h, w = grid
    tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    even = yy % 2 == 0
    label_t = torch.where(even, tt // 2, tt)
    label_x = torch.where(even, xx, xx // 2)
    labels = ((label_t * h + yy) * w + label_x) * 2 + even.long()
    return reduction_from_labels(hidden, grid, labels.flatten())


@torch.no_grad()
def staged_logits_by_hand(model, embeds, positions, stages, grid, span_start, *, tail=0, decode="authors"):
    """Runs a method's stages by hand: layers between stages on the current sequence, each stage's
    plan applied to the current video span, positions by the stage's rule.

    ``stages``: ``[(layer, fn(hidden [n, C], grid) -> Reduction, rule[, point])]`` with rule
    ``renumber`` or ``original`` and point ``input`` (default) or ``attention`` (inside ``layer``:
    after its attention and residual, before its MLP); later stages get the grid ``(1, 1, n)``.
    An attention-point ``fn`` with ``needs_scores = True`` is called ``fn(hidden, grid, scores)``
    with the last token's attention over the span at that layer (mean over heads). The last ``tail`` tokens of ``embeds``
    are generated tokens (not part of the prompt): with ``renumber`` they sit at ``N + i``
    (``decode="authors"``, N the unreduced prompt length) or right after the reduced prompt
    (``"compact"``). Returns logits ``[1, q', V]``.
    """
    text = text_model_of(model)
    run = functools.partial(run_layers, text)

    hidden, pos, done = embeds, positions, 0
    n, stage_grid = grid[0] * grid[1] * grid[2], grid
    prompt = embeds.shape[1] - tail
    for layer, fn, rule, *point in stages:
        hidden = run(hidden, pos, text.layers[done:layer])
        done = layer
        mid = point == ["attention"]
        if mid:  # layer's attention on the current tokens, then the stage, then its MLP
            block = text.layers[layer]
            rotary = text.rotary_emb(hidden, pos)
            mask = causal_float_mask(hidden.shape[1], hidden.dtype)
            if getattr(fn, "needs_scores", False):
                normed = block.input_layernorm(hidden)
                attn_w = block.self_attn(normed, attention_mask=mask, position_embeddings=rotary)[1]
                if attn_w is None:
                    raise ValueError("by-hand scores need eager attention weights")
                scores = attn_w[0, :, -1, span_start : span_start + n].float().mean(0)
                fn = functools.partial(fn, scores=scores)
            attn = block.self_attn(
                block.input_layernorm(hidden), attention_mask=mask, position_embeddings=rotary
            )[0]
            hidden = hidden + attn
            done = layer + 1
        stop = span_start + n
        plan = fn(hidden[0, span_start:stop], stage_grid)
        hidden = torch.cat(
            [hidden[:, :span_start], plan.features[None].to(hidden.dtype), hidden[:, stop:]], dim=1
        )
        if rule == "renumber":
            reduced_prompt = hidden.shape[1] - tail
            start = prompt if decode == "authors" else reduced_prompt
            pos = torch.cat([torch.arange(reduced_prompt), start + torch.arange(tail)])[None]
        else:
            kept = pos[..., span_start:stop][..., plan.position_source]
            pos = torch.cat([pos[..., :span_start], kept, pos[..., stop:]], dim=-1)
        n, stage_grid = plan.num_kept, (1, 1, plan.num_kept)
        if mid:
            block = text.layers[layer]
            hidden = hidden + block.mlp(block.post_attention_layernorm(hidden))
    hidden = run(hidden, pos, text.layers[done:])
    return model.lm_head(text.norm(hidden))
