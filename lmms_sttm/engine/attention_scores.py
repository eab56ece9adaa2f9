"""Attention scores of one query token over the video, from a decoder layer's own projections: the
one function that every query-aware stage and decode-time KV pruning use.

No attention map of the whole sequence is materialised, so the model keeps running with sdpa or
flash-attention. What the layer's attention applies is applied here, read from the layer itself:
``input_layernorm``; ``q_proj``/``k_proj``; the per-head ``q_norm``/``k_norm`` of Qwen3-based
decoders (Qwen3-VL, InternVL3.5, Qwen3.5) when the attention has them; Qwen3.5's gated query
(``q_proj`` twice as wide: per head the query, then an output gate that does not enter the
scores); the model's own
``apply_rotary_pos_emb`` (from the attention's module, so M-RoPE folding or a partial rotary is the
model's); grouped-query heads (query head ``i`` reads kv head ``i // (Hq / Hkv)``); ``scaling``.
Rotary and softmax run in float32 (the norms and projections in the model's dtype, as the model).

For hidden states ``[1, q, C]`` entering layer ``l`` and its rotary ``(cos, sin)``:

    h = input_layernorm(hidden);  Q = q_norm(q_proj(h[-1]))  [Hq, d];  K = k_norm(k_proj(h))  [Hkv, q, d]
    Q, K = rope(Q, K);  A = softmax(Q K^T * scaling)  [Hq, q];  score = mean over heads of A[:, video]

This equals row ``q - 1`` of the eager attention weights of layer ``l`` (mean over heads) at the
video tokens (the last token sees the whole chunk; no padding, no sliding window).
"""

from __future__ import annotations

import sys

import torch
from torch import nn


def _rotary_function(attn: nn.Module):
    """The model's own ``apply_rotary_pos_emb(q, k, cos, sin)`` (from the attention's module)."""
    fn = getattr(sys.modules.get(type(attn).__module__), "apply_rotary_pos_emb", None)
    if fn is None:
        raise TypeError(
            f"{type(attn).__name__}: its module has no apply_rotary_pos_emb to score attention with"
        )
    return fn


def _heads(attn: nn.Module, proj: nn.Module, norm_name: str, h: torch.Tensor) -> torch.Tensor:
    """``h [m, C]`` -> ``[m, H, d]`` through ``proj`` and the attention's per-head norm if it has one.

    A gated query projection (``[m, H * 2d]``: per head ``d`` query then ``d`` gate, Qwen3.5) keeps
    the query halves."""
    x = proj(h)
    if proj is attn.q_proj and x.shape[-1] == 2 * attn.config.num_attention_heads * attn.head_dim:
        x = x.view(h.shape[0], -1, 2 * attn.head_dim)[..., : attn.head_dim]
    x = x.reshape(h.shape[0], -1, attn.head_dim)
    norm = getattr(attn, norm_name, None)
    return norm(x) if norm is not None else x


def token_query(layer: nn.Module, hidden: torch.Tensor, rotary) -> torch.Tensor:
    """The last token's query at ``layer``: ``hidden [1, q, C]``, rotary ``[1, q, d]`` -> ``[Hq, d]`` float32."""
    attn = layer.self_attn
    h = layer.input_layernorm(hidden[0, -1:])
    query = _heads(attn, attn.q_proj, "q_norm", h)
    cos, sin = (p[0].float() for p in rotary)
    q = query.float().transpose(0, 1)[None]  # [1, Hq, 1, d]
    q, _ = _rotary_function(attn)(q, q, cos[-1:][None], sin[-1:][None])
    return q[0, :, 0]


def attention_probs(layer: nn.Module, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Softmax attention of ``query [Hq, d]`` over ``keys [Hkv, S, d]`` (float32) -> ``[Hq, S]``."""
    heads, d = query.shape
    kv_heads = keys.shape[0]
    grouped = query.view(kv_heads, heads // kv_heads, d)
    logits = torch.einsum("kgd,ksd->kgs", grouped, keys.float()) * layer.self_attn.scaling
    return torch.softmax(logits, dim=-1).reshape(heads, -1)


def _video_index(video, device) -> torch.Tensor:
    if isinstance(video, tuple):
        return torch.arange(video[0], video[1], device=device)
    return video.to(device)


def last_token_attention(
    layer: nn.Module,
    hidden: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    video,
) -> torch.Tensor:
    """Mean-over-heads attention of the chunk's last token over the video tokens at ``layer``.

    Args:
        layer: a decoder layer (``input_layernorm``, ``self_attn.{q,k}_proj``, optional
            ``self_attn.{q,k}_norm``).
        hidden: ``[1, q, C]`` hidden states entering ``layer`` (the whole first chunk).
        position_embeddings: ``(cos, sin)`` ``[1, q, d]`` the layer receives.
        video: ``[n]`` rows of the video tokens in the chunk (or a ``(start, stop)`` run).

    Returns:
        ``[n]`` float32 scores, in the order of ``video``.
    """
    attn = layer.self_attn
    if getattr(attn, "sliding_window", None):
        raise ValueError("last-token attention scores do not support sliding-window layers")
    if hidden.shape[0] != 1:
        raise ValueError(f"last-token attention runs batch size 1 only, got {hidden.shape[0]}")
    with torch.no_grad():
        h = layer.input_layernorm(hidden[0])  # [q, C]
        keys = _heads(attn, attn.k_proj, "k_norm", h)  # [q, Hkv, d]
        cos, sin = (p[0].float() for p in position_embeddings)
        k = keys.float().transpose(0, 1)[None]  # [1, Hkv, q, d]
        _, k = _rotary_function(attn)(k, k, cos[None], sin[None])
        query = token_query(layer, hidden, position_embeddings)
        heads, d = query.shape
        keys = k[0].transpose(0, 1).contiguous()  # [q, Hkv, d]: the layout these scores were defined on
        grouped = query.view(keys.shape[1], heads // keys.shape[1], d)
        logits = torch.einsum("kgd,qkd->kgq", grouped, keys) * attn.scaling  # [Hkv, G, q]
        probs = torch.softmax(logits, dim=-1).reshape(heads, -1)  # [Hq, q]
        return probs.index_select(1, _video_index(video, probs.device)).mean(dim=0)


def decode_token_attention(layer: nn.Module, query: torch.Tensor, keys: torch.Tensor, video) -> torch.Tensor:
    """Mean-over-heads attention of one query over cached ``keys`` at the ``video`` entries.

    Args:
        layer: the decoder layer (for ``self_attn.scaling``).
        query: ``[Hq, d]`` float32, RoPE applied (:func:`token_query`).
        keys: ``[1, Hkv, S, d]`` cached keys of that layer (the query's own entry included).
        video: ``(start, stop)`` or ``[m]`` cache entries.

    Returns:
        ``[m]`` float32 (softmax over all ``S`` entries).
    """
    probs = attention_probs(layer, query, keys[0])
    return probs.index_select(1, _video_index(video, probs.device)).mean(dim=0)
