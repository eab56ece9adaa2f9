"""The unpatched decoder run by hand on a reduced sequence: the reference every engine run is held to.

Layers below a stage run on the current sequence with a hand-written causal mask and the rotary
of the expected positions; a stage's plan replaces the video span; the layers after it run on the
shortened sequence. Nothing of the engine is used.
"""

from __future__ import annotations

import functools

import torch


def text_model_of(model: torch.nn.Module) -> torch.nn.Module:
    return model.model.language_model


def decoder_inputs(model: torch.nn.Module, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs_embeds [1, q, C], positions)`` the unpatched model hands its text decoder.

    Positions: ``[1, q]`` for 1-D RoPE models (the decoder's default ``arange``), ``[3, 1, q]`` M-RoPE.
    """
    seen = {}

    def grab(module, args, kwargs):
        seen.update(kwargs)

    handle = text_model_of(model).register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs, use_cache=False)
    finally:
        handle.remove()
    embeds = seen["inputs_embeds"]
    positions = seen.get("position_ids")
    if positions is None:
        positions = torch.arange(embeds.shape[1])[None]
    return embeds, positions


def causal_float_mask(n: int, dtype: torch.dtype) -> torch.Tensor:
    """``[1, 1, n, n]`` additive causal mask written out by hand."""
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return torch.zeros(n, n, dtype=dtype).masked_fill(upper, torch.finfo(dtype).min)[None, None]


def run_layers(text, hidden, pos, layers):
    """``layers`` of decoder ``text`` on ``hidden`` ``[1, q, C]`` with ``pos``'s rotary and a causal mask."""
    rotary = text.rotary_emb(hidden, pos)
    mask = causal_float_mask(hidden.shape[1], hidden.dtype)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary, position_ids=None)
    return hidden


@torch.no_grad()
def logits_by_hand(model, embeds, positions, k, reducer, grid, span_start, mode) -> torch.Tensor:
    """Runs layers < k on the full sequence, applies the plan, runs layers >= k on the reduced one.

    Expected positions for layers >= k: ``reassign`` -> ``0..N'-1``; ``survive`` -> text keeps its
    ids, kept token j takes the ids of original token ``rep_index[j]``. Returns logits ``[1, q', V]``.
    """
    text = text_model_of(model)
    run = functools.partial(run_layers, text)

    hidden = run(embeds, positions, text.layers[:k])
    n = grid[0] * grid[1] * grid[2]
    stop = span_start + n
    plan = reducer(hidden[0, span_start:stop], grid)
    hidden = torch.cat(
        [hidden[:, :span_start], plan.features[None].to(hidden.dtype), hidden[:, stop:]], dim=1
    )
    if mode == "reassign":
        positions = torch.arange(hidden.shape[1])[None]
    else:
        kept = positions[..., span_start:stop][..., plan.rep_index]
        positions = torch.cat([positions[..., :span_start], kept, positions[..., stop:]], dim=-1)
    hidden = run(hidden, positions, text.layers[k:])
    return model.lm_head(text.norm(hidden))


def last_row_scores(
    block, hidden: torch.Tensor, pos: torch.Tensor, text, span: tuple[int, int]
) -> torch.Tensor:
    """Mean-over-heads eager attention of the last token over ``span`` at decoder layer ``block`` for
    ``hidden [1, q, C]`` entering it (needs a model built with eager attention) -> ``[n]`` float32."""
    rotary = text.rotary_emb(hidden, pos)
    mask = causal_float_mask(hidden.shape[1], hidden.dtype)
    weights = block.self_attn(block.input_layernorm(hidden), attention_mask=mask, position_embeddings=rotary)[
        1
    ]
    if weights is None:
        raise ValueError("by-hand attention scores need a model built with eager attention")
    return weights[0, :, -1, span[0] : span[1]].float().mean(0)


@torch.no_grad()
def method_logits_by_hand(model, embeds, positions, method, grid, span_start, layer, mode) -> torch.Tensor:
    """Any method (one-stage reducer or staged) run by hand on the whole prompt ``embeds [1, q, C]``.

    Each stage's layers run on the current sequence; an input stage at layer ``l`` reducing the
    tokens entering ``l``, an attention stage inside ``l`` (after its attention and residual,
    before its MLP); a stage reading attention gets the last token's eager attention at the layer
    before its split; positions by the stage's rule (``renumber``: ``0..q'-1``; ``original``: the
    source token's ids), the family's default when the stage has none (``mode``: ``reassign`` ->
    renumber, ``survive`` -> original). Returns logits ``[1, q', V]``.
    """
    from lmms_sttm.engine.query_aware import AttentionContext
    from lmms_sttm.engine.stages import compose, start_run

    text = text_model_of(model)
    layers = text.layers
    run = start_run(method, grid, len(layers), layer)
    hidden, pos, done = embeds, positions, 0
    n, stage_grid, composed = grid[0] * grid[1] * grid[2], tuple(grid), None
    while (stage := run.next_stage()) is not None:
        scores, mid = None, stage.point == "attention"
        last = stage.layer if mid else stage.layer - 1  # the layer whose attention the stage reads
        if stage.needs_attention:
            hidden = run_layers(text, hidden, pos, layers[done:last])
            scores = last_row_scores(layers[last], hidden, pos, text, (span_start, span_start + n))
            done = last
        hidden = run_layers(text, hidden, pos, layers[done : stage.layer])
        done = stage.layer
        if mid:
            block = layers[stage.layer]
            rotary = text.rotary_emb(hidden, pos)
            mask = causal_float_mask(hidden.shape[1], hidden.dtype)
            hidden = (
                hidden
                + block.self_attn(
                    block.input_layernorm(hidden), attention_mask=mask, position_embeddings=rotary
                )[0]
            )
        stop = span_start + n
        context = AttentionContext(scores, stage.layer, len(layers), tokens=composed)
        plan = run.run(hidden[0, span_start:stop], stage_grid, context)
        hidden = torch.cat(
            [hidden[:, :span_start], plan.features[None].to(hidden.dtype), hidden[:, stop:]], dim=1
        )
        rule = stage.position_rule or ("renumber" if mode == "reassign" else "original")
        if rule == "renumber":
            pos = torch.arange(hidden.shape[1])[None]
        else:
            kept = pos[..., span_start:stop][..., plan.position_source]
            pos = torch.cat([pos[..., :span_start], kept, pos[..., stop:]], dim=-1)
        composed = compose(composed, plan)
        n, stage_grid = plan.num_kept, (1, 1, plan.num_kept)
        if mid:
            block = layers[stage.layer]
            hidden = hidden + block.mlp(block.post_attention_layernorm(hidden))
            done = stage.layer + 1
    hidden = run_layers(text, hidden, pos, layers[done:])
    return model.lm_head(text.norm(hidden))
