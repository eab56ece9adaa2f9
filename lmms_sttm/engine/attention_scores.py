"""The last prompt token's attention over the video span at one decoder layer, from that layer's own
projections: no attention map of the whole sequence is materialised, so the model keeps running
with sdpa or flash-attention.

For hidden states ``[1, q, C]`` entering layer ``l`` and its rotary ``(cos, sin)`` ``[1, q, d]``:

    h = input_layernorm(hidden);  Q = q_proj(h[-1])  [Hq, d];  K = k_proj(h)  [q, Hkv, d]
    Q, K = RoPE(Q, K);  A = softmax(Q K^T * scaling)  [Hq, q]   (query head i reads kv head i // (Hq/Hkv))
    score = mean over heads of A[:, span]  [N]

This equals row ``q - 1`` of the eager attention weights of layer ``l`` (mean over heads) restricted
to the span (the last token sees the whole chunk; no padding, no sliding window). Cost: one
``k_proj`` over the chunk and ``Hq x q`` dot products.
"""

from __future__ import annotations

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """RoPE's half rotation of the last dim: ``[a, b] -> [-b, a]``."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x [q, H, d]`` with ``cos/sin [q, d]`` (M-RoPE sections already folded in by the decoder)."""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def last_token_attention(
    layer: nn.Module,
    hidden: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    span: tuple[int, int],
) -> torch.Tensor:
    """Mean-over-heads attention of the chunk's last token over ``span`` at ``layer``.

    Args:
        layer: a Qwen2-style decoder layer (``input_layernorm``, ``self_attn.{q,k}_proj``).
        hidden: ``[1, q, C]`` hidden states entering ``layer`` (the whole first chunk).
        position_embeddings: ``(cos, sin)`` ``[1, q, d]`` the layer receives.
        span: ``(start, stop)`` of the video tokens in the chunk.

    Returns:
        ``[stop - start]`` float32 scores.
    """
    attn = layer.self_attn
    if getattr(attn, "sliding_window", None):
        raise ValueError("last-token attention scores do not support sliding-window layers")
    if hidden.shape[0] != 1:
        raise ValueError(f"last-token attention runs batch size 1 only, got {hidden.shape[0]}")
    d = attn.head_dim
    with torch.no_grad():
        h = layer.input_layernorm(hidden[0])  # [q, C]
        keys = attn.k_proj(h).view(h.shape[0], -1, d)  # [q, Hkv, d]
        query = attn.q_proj(h[-1:]).view(1, -1, d)  # [1, Hq, d]
        cos, sin = (p[0] for p in position_embeddings)
        keys = _rope(keys.float(), cos.float(), sin.float())
        query = _rope(query.float(), cos[-1:].float(), sin[-1:].float())[0]  # [Hq, d]
        heads, kv_heads = query.shape[0], keys.shape[1]
        query = query.view(kv_heads, heads // kv_heads, d)  # grouped by kv head
        logits = torch.einsum("kgd,qkd->kgq", query, keys) * attn.scaling  # [Hkv, G, q]
        probs = torch.softmax(logits, dim=-1).reshape(heads, -1)  # [Hq, q]
        start, stop = span
        return probs[:, start:stop].mean(dim=0)
