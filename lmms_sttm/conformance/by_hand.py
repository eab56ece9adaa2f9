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


def decoder_kwargs(model: torch.nn.Module, inputs: dict) -> dict:
    """The keyword arguments the unpatched model hands its text decoder for ``inputs``."""
    seen = {}

    def grab(module, args, kwargs):
        seen.update(kwargs)

    handle = text_model_of(model).register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs, use_cache=False)
    finally:
        handle.remove()
    return seen


def decoder_inputs(model: torch.nn.Module, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs_embeds [1, q, C], positions)`` the unpatched model hands its text decoder.

    Positions: ``[1, q]`` for 1-D RoPE models (the decoder's default ``arange``), ``[3, 1, q]`` M-RoPE.
    """
    seen = decoder_kwargs(model, inputs)
    embeds = seen["inputs_embeds"]
    positions = seen.get("position_ids")
    if positions is None:
        positions = torch.arange(embeds.shape[1])[None]
    return embeds, positions


def causal_float_mask(n: int, dtype: torch.dtype) -> torch.Tensor:
    """``[1, 1, n, n]`` additive causal mask written out by hand."""
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return torch.zeros(n, n, dtype=dtype).masked_fill(upper, torch.finfo(dtype).min)[None, None]


def is_linear(layer) -> bool:
    """Whether a decoder layer mixes tokens with linear attention (Qwen3.5's Gated DeltaNet)."""
    return getattr(layer, "linear_attn", None) is not None


def run_layers(text, hidden, pos, layers):
    """``layers`` of decoder ``text`` on ``hidden`` ``[1, q, C]`` with ``pos``'s rotary and a causal mask
    (no mask for a linear-attention layer: no padding). Cache-less: every linear layer starts from a
    zero state and absorbs the ``q`` tokens in sequence order."""
    rotary = text.rotary_emb(hidden, pos)
    mask = causal_float_mask(hidden.shape[1], hidden.dtype)
    for layer in layers:
        own = None if is_linear(layer) else mask
        hidden = layer(hidden, attention_mask=own, position_embeddings=rotary, position_ids=None)
    return hidden


def token_mixer(block, hidden: torch.Tensor, rotary, mask: torch.Tensor) -> torch.Tensor:
    """The output of ``block``'s attention (or linear attention) on ``hidden [1, q, C]``, before the residual."""
    normed = block.input_layernorm(hidden)
    if is_linear(block):
        return block.linear_attn(normed, attention_mask=None)
    return block.self_attn(normed, attention_mask=mask, position_embeddings=rotary)[0]


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


def decoder_side(model: torch.nn.Module, inputs: dict) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """``(DeepStack features [N, C] per layer, visual mask [q])`` the unpatched model hands its decoder
    (``([], None)`` for models without DeepStack)."""
    seen = decoder_kwargs(model, inputs)
    embeds = seen.get("deepstack_visual_embeds")
    mask = seen.get("visual_pos_masks")
    return (list(embeds) if embeds is not None else []), (None if mask is None else mask[0])


def video_blocks(input_ids: torch.Tensor, token_id: int) -> tuple[list[int], list[int]]:
    """``(rows, block of each row)`` of the placeholders in ``input_ids [1, q]``: a block is a maximal
    run of consecutive placeholders (one run for LLaVA / Qwen2-VL, one per frame block otherwise)."""
    rows = [i for i, t in enumerate(input_ids[0].tolist()) if t == token_id]
    blocks, b = [], 0
    for j, r in enumerate(rows):
        if j and r != rows[j - 1] + 1:
            b += 1
        blocks.append(b)
    return rows, blocks


def _rebuild(q: int, rows: list[int], blocks: list[int], plan) -> tuple[list, list[int], list[int]]:
    """The sequence after ``plan`` as a list of ``("text", old row)`` / ``("kept", plan row)``: each
    kept token goes into the block of its position source, in plan order, where that block's first
    token was; text stays. Returns the items, the kept tokens' new rows and their blocks."""
    source = plan.position_source.tolist()
    per_block: dict[int, list[int]] = {}
    for j, src in enumerate(source):
        per_block.setdefault(blocks[src], []).append(j)
    first = {}
    for r, b in zip(rows, blocks, strict=True):
        first.setdefault(b, r)
    video = set(rows)
    items, new_rows, new_blocks = [], [], []
    for r in range(q):
        if r not in video:
            items.append(("text", r))
            continue
        for b, f in first.items():
            if f == r:
                for j in per_block.get(b, []):
                    new_rows.append(len(items))
                    new_blocks.append(b)
                    items.append(("kept", j))
    return items, new_rows, new_blocks


@torch.no_grad()
def method_logits_by_hand(
    model, embeds, positions, method, grid, video, layer, mode, deepstack=None
) -> torch.Tensor:
    """Any method (one-stage reducer or staged) run by hand on the whole prompt ``embeds [1, q, C]``.

    ``video``: the first video row (one run of ``T*H*W`` tokens) or ``(rows, blocks)`` lists
    (:func:`video_blocks`). Layers run one at a time on the current sequence; ``deepstack[i]``
    (``[N, C]``, the model's DeepStack features) is added to the current video tokens after layer
    ``i``, carried through each plan (``Reduction.carried``). An input stage at layer ``l`` reduces
    the tokens entering ``l``, an attention stage inside ``l`` (after its attention and residual,
    before its MLP); a stage reading attention gets the last token's eager attention at the layer
    before its split; each block keeps its kept tokens in place (``_rebuild``); positions by the
    stage's rule (``renumber``: ``0..q'-1``; ``original``: the source token's ids), the family's
    default when the stage has none (``mode``: ``reassign`` -> renumber, ``survive`` -> original).
    Returns logits ``[1, q', V]``.
    """
    from lmms_sttm.engine.hybrid import layer_kinds
    from lmms_sttm.engine.query_aware import AttentionContext
    from lmms_sttm.engine.stages import compose, start_run

    text = text_model_of(model)
    layers = text.layers
    n = grid[0] * grid[1] * grid[2]
    rows, blocks = (list(range(video, video + n)), [0] * n) if isinstance(video, int) else video
    side = [d.clone() for d in deepstack or []]
    run = start_run(method, grid, len(layers), layer, layer_kinds(text))
    hidden, pos, done = embeds, positions, 0
    stage_grid, composed = tuple(grid), None

    def forward(hidden, pos, upto):
        nonlocal done
        for i in range(done, upto):
            hidden = run_layers(text, hidden, pos, layers[i : i + 1])
            hidden = add_side(hidden, i, rows)
        done = max(done, upto)
        return hidden

    def add_side(hidden, i, at):
        if i < len(side) and side[i] is not None:
            hidden = hidden.clone()
            hidden[0, at] = hidden[0, at] + side[i].to(hidden.dtype)
        return hidden

    while (stage := run.next_stage()) is not None:
        scores, mid = None, stage.point == "attention"
        last = stage.layer if mid else stage.layer - 1  # the layer whose attention the stage reads
        if stage.needs_attention:
            hidden = forward(hidden, pos, last)
            weights = _eager_weights(layers[last], hidden, pos, text)
            scores = weights[0, :, -1][:, rows].float().mean(0)
        hidden = forward(hidden, pos, stage.layer)
        if mid:
            block = layers[stage.layer]
            rotary = text.rotary_emb(hidden, pos)
            mask = causal_float_mask(hidden.shape[1], hidden.dtype)
            hidden = hidden + token_mixer(block, hidden, rotary, mask)
        context = AttentionContext(scores, stage.layer, len(layers), tokens=composed)
        plan = run.run(hidden[0, rows], stage_grid, context)
        items, new_rows, new_blocks = _rebuild(hidden.shape[1], rows, blocks, plan)
        kept_order = [j for kind, j in items if kind == "kept"]
        hidden = torch.stack(
            [hidden[0, r] if kind == "text" else plan.features[r].to(hidden.dtype) for kind, r in items]
        )[None]
        rule = stage.position_rule or ("renumber" if mode == "reassign" else "original")
        if rule == "renumber":
            pos = torch.arange(hidden.shape[1])[None]
        else:
            source = plan.position_source.tolist()
            cols = [r if kind == "text" else rows[source[r]] for kind, r in items]
            pos = pos[..., cols]
        side = [
            None if d is None or i < stage.layer else plan.carried(d)[kept_order] for i, d in enumerate(side)
        ]
        plan = plan.reorder(torch.tensor(kept_order)) if kept_order != sorted(kept_order) else plan
        composed = compose(composed, plan)
        rows, blocks = new_rows, new_blocks
        stage_grid = (1, 1, len(rows))
        if mid:
            block = layers[stage.layer]
            hidden = hidden + block.mlp(block.post_attention_layernorm(hidden))
            hidden = add_side(hidden, stage.layer, rows)
            done = stage.layer + 1
    hidden = forward(hidden, pos, len(layers))
    return model.lm_head(text.norm(hidden))


def prompt_logits_by_hand(model, inputs: dict, grid, method, layer: int, span_start: int | None = None):
    """:func:`method_logits_by_hand` on processor-like ``inputs`` of any family: the decoder's own
    inputs, DeepStack features and positions, the video's rows (its frame blocks, or the one run
    from ``span_start``) and the family's position mode. Returns logits ``[1, q', V]``."""
    from lmms_sttm.engine.families import family_of

    family = family_of(model)
    embeds, positions = decoder_inputs(model, inputs)
    deepstack, _ = decoder_side(model, inputs)
    video = span_start
    if family.blocks:
        video = video_blocks(inputs["input_ids"], family.video_token_id(model))
    return method_logits_by_hand(
        model, embeds, positions, method, grid, video, layer, family.position_mode, deepstack
    )


def _eager_weights(block, hidden, pos, text) -> torch.Tensor:
    """Eager attention weights ``[1, H, q, q]`` of decoder layer ``block`` on ``hidden [1, q, C]``."""
    rotary = text.rotary_emb(hidden, pos)
    mask = causal_float_mask(hidden.shape[1], hidden.dtype)
    weights = block.self_attn(block.input_layernorm(hidden), attention_mask=mask, position_embeddings=rotary)[
        1
    ]
    if weights is None:
        raise ValueError("by-hand attention scores need a model built with eager attention")
    return weights
