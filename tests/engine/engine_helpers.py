"""Engine test helpers: tiny random models of the three families, their inputs, test reducers and a
by-hand decoder run.

Models are built directly from transformers config classes (text: hidden 64, 4 layers, 4 heads,
2 kv heads, vocab 400; tiny vision towers) with weights re-drawn at std 0.1 so that positions and
merging visibly change the logits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from lmms_sttm.merging.reduction import Reduction

PAD, EOS, IMAGE, VIDEO, VSTART, VEND = 0, 1, 4, 5, 6, 7
TEXT = {
    "vocab_size": 400,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "pad_token_id": PAD,
    "bos_token_id": PAD,
    "eos_token_id": EOS,
    "tie_word_embeddings": False,
}
QWEN_ROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
FAMILIES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl")


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                continue
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    return model.eval()


def build_model(family: str, attn: str = "sdpa", seed: int = 0, large: bool = False) -> torch.nn.Module:
    """A tiny random ``family`` model with attention ``attn`` (same weights for the same seed).

    ``large``: LLaVA-OV frames of 112 px (a 7x7 pooled grid instead of 3x3).
    """
    import transformers as tf

    if family == "llava_onevision":
        config = tf.LlavaOnevisionConfig(
            text_config={"model_type": "qwen2", **TEXT},
            vision_config={
                "model_type": "siglip_vision_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 112 if large else 48,
                "patch_size": 8,
            },
            image_token_index=IMAGE,
            video_token_index=VIDEO,
            vision_feature_select_strategy="full",
            vision_feature_layer=-1,
            image_grid_pinpoints=[[112, 112]] if large else [[48, 48]],
            tie_word_embeddings=False,
        )
        cls = tf.LlavaOnevisionForConditionalGeneration
    else:
        vision = {"depth": 2, "num_heads": 2, "in_channels": 3, "patch_size": 8, "spatial_merge_size": 2}
        vision["temporal_patch_size"] = 2
        if family == "qwen2_vl":
            vision.update(embed_dim=32, hidden_size=64, mlp_ratio=2)
            config_cls, cls = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
        else:
            vision.update(hidden_size=32, out_hidden_size=64, intermediate_size=64, window_size=32)
            vision.update(fullatt_block_indexes=[1], tokens_per_second=2)
            config_cls, cls = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
        config = config_cls(
            text_config={**TEXT, "rope_parameters": QWEN_ROPE},
            vision_config=vision,
            image_token_id=IMAGE,
            video_token_id=VIDEO,
            vision_start_token_id=VSTART,
            vision_end_token_id=VEND,
            tie_word_embeddings=False,
        )
    model = cls._from_config(config, attn_implementation=attn)
    return _randomize(model, seed)


@dataclass
class VideoInputs:
    """Processor-like inputs of one prompt ``[sys, video, suffix]`` and where its video sits."""

    inputs: dict
    grid: tuple[int, int, int]
    span_start: int
    family: str

    @property
    def input_ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]

    def extended(self, question: torch.Tensor) -> VideoInputs:
        """The same prompt followed by ``question`` ``[q]`` text tokens."""
        inputs = dict(self.inputs)
        inputs["input_ids"] = torch.cat([self.input_ids, question[None]], dim=1)
        if "mm_token_type_ids" in inputs:
            zeros = torch.zeros(1, question.numel(), dtype=inputs["mm_token_type_ids"].dtype)
            inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], zeros], dim=1)
        return VideoInputs(inputs, self.grid, self.span_start, self.family)


def text_tokens(n: int, seed: int) -> torch.Tensor:
    """``[n]`` random ordinary token ids (no special ids)."""
    return torch.randint(10, TEXT["vocab_size"], (n,), generator=torch.Generator().manual_seed(seed))


def make_inputs(
    family: str,
    seed: int = 0,
    sys_len: int = 6,
    suffix_len: int = 4,
    large: bool = False,
    static: bool = False,
) -> VideoInputs:
    """Inputs with a random video: LLaVA-OV 4 frames -> grid (4, 3, 3) + 1 newline; Qwen2-VL grid
    (2, 3, 5); Qwen2.5-VL grid (4, 3, 5) (temporal ids exceed the spatial ones).

    ``large``: grids (4, 7, 7) for LLaVA-OV (needs ``build_model(large=True)``) and (gt, 7, 11) for
    Qwen. ``static``: every frame (LLaVA) / temporal patch (Qwen) repeats the first one.
    """
    gen = torch.Generator().manual_seed(seed + 100)
    sys_ids, suffix = text_tokens(sys_len, seed + 1), text_tokens(suffix_len, seed + 2)
    if family == "llava_onevision":
        frames, side, pooled = 4, (112 if large else 48), (7 if large else 3)
        video = torch.full((frames * pooled * pooled + 1,), VIDEO)
        ids = torch.cat([sys_ids, video, suffix])[None]
        pixels = torch.randn(1, 1 if static else frames, 3, side, side, generator=gen)
        inputs = {"input_ids": ids, "pixel_values_videos": pixels.expand(1, frames, -1, -1, -1).contiguous()}
        return VideoInputs(inputs, (frames, pooled, pooled), sys_len, family)
    gt = 2 if family == "qwen2_vl" else 4
    gh, gw = (14, 22) if large else (6, 10)
    n = gt * gh * gw // 4
    video = torch.cat([torch.tensor([VSTART]), torch.full((n,), VIDEO), torch.tensor([VEND])])
    ids = torch.cat([sys_ids, video, suffix])[None]
    pixels = torch.randn(1 if static else gt, gh * gw, 3 * 2 * 8 * 8, generator=gen).expand(gt, -1, -1)
    inputs = {
        "input_ids": ids,
        "mm_token_type_ids": (ids == VIDEO).long() * 2,
        "pixel_values_videos": pixels.reshape(gt * gh * gw, -1).contiguous(),
        "video_grid_thw": torch.tensor([[gt, gh, gw]]),
    }
    if family == "qwen2_5_vl":
        inputs["second_per_grid_ts"] = torch.tensor([1.0])
    return VideoInputs(inputs, (gt, gh // 2, gw // 2), sys_len + 1, family)


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


def _run_layers(text, hidden, pos, layers):
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
    run = functools.partial(_run_layers, text)

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
    run = functools.partial(_run_layers, text)

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
