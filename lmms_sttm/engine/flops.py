"""The FLOP model of a reduced prefill: which share of an unreduced prefill's work remains.

A full-attention decoder layer on ``n`` tokens costs ``F(n) = n*a + c*n(n+1)/2``: ``a`` the
projections and MLP per token (``2 * (D*q + 2*D*kv + o*D + 3*D*ffn)`` FLOPs, q/kv/o the query,
key-value and output widths; a gated query, Qwen3.5, doubles q), ``c`` the causal ``QK^T`` and
``AV`` per (query, key) pair (``2 * 2 * o``). A linear-attention layer (Qwen3.5's Gated DeltaNet)
is linear in ``n``: ``G(n) = n*b + Hv * pad(n) * (C*(5*dk + 3*dv) + 6*dk*dv)``, ``b`` its
projections (qkv, z, a, b, out), causal conv and MLP per token, the second term the chunked delta
rule of transformers' kernel (chunks of ``C = 64`` tokens, ``pad(n)`` rounded up to a chunk: the
intra-chunk products, the two triangular solves and the state read/update per token and value
head). Merging before layer ``k`` of ``L`` runs layers ``< k`` on ``N`` tokens and the rest on
``N'``: ``ratio = [sum_{i<k} F_i(N) + sum_{i>=k} F_i(N')] / sum_i F_i(N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FULL, LINEAR = "full_attention", "linear_attention"


@dataclass(frozen=True)
class LinearAttentionDims:
    """Widths of a Gated DeltaNet layer: key/value heads, head dims, conv kernel, kernel chunk."""

    key_heads: int
    value_heads: int
    key_dim: int
    value_dim: int
    conv_kernel: int = 4
    chunk: int = 64

    def layer_flops(self, n: int, hidden: int, ffn: int) -> float:
        """``G(n)``: one layer's prefill FLOPs on ``n`` tokens."""
        kd, vd = self.key_heads * self.key_dim, self.value_heads * self.value_dim
        conv = 2 * kd + vd
        per_token = 2 * (hidden * conv + hidden * vd + 2 * hidden * self.value_heads + vd * hidden)
        per_token += 2 * conv * self.conv_kernel + 2 * 3 * hidden * ffn
        padded = math.ceil(n / self.chunk) * self.chunk
        rule = self.chunk * (5 * self.key_dim + 3 * self.value_dim) + 6 * self.key_dim * self.value_dim
        return n * per_token + self.value_heads * padded * rule


@dataclass(frozen=True)
class DecoderDims:
    """Widths of a decoder: Qwen2-style (every layer full attention, head dimension
    ``hidden / heads``) or hybrid (``kinds`` per layer with ``linear`` widths, Qwen3.5)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    head_dim: int | None = None
    gated_query: bool = False
    kinds: tuple[str, ...] | None = None
    linear: LinearAttentionDims | None = None

    def __post_init__(self) -> None:
        if self.kinds is not None and len(self.kinds) != self.layers:
            raise ValueError(f"{len(self.kinds)} layer kinds for {self.layers} layers")
        if self.kinds is not None and LINEAR in self.kinds and self.linear is None:
            raise ValueError("linear-attention layers need their widths (linear=LinearAttentionDims)")

    @classmethod
    def of(cls, text_config) -> DecoderDims:
        """From a transformers text config (``hidden_size``, ``num_hidden_layers``, ..., and for a
        hybrid ``layer_types`` and the ``linear_*`` widths)."""
        c = text_config
        kinds = getattr(c, "layer_types", None)
        linear = None
        if kinds is not None and LINEAR in kinds:
            linear = LinearAttentionDims(
                c.linear_num_key_heads,
                c.linear_num_value_heads,
                c.linear_key_head_dim,
                c.linear_value_head_dim,
                c.linear_conv_kernel_dim,
            )
        return cls(
            c.hidden_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.intermediate_size,
            head_dim=getattr(c, "head_dim", None),
            gated_query=linear is not None,  # Qwen3.5's attention gates its output with a second query half
            kinds=tuple(kinds) if kinds is not None else None,
            linear=linear,
        )

    def kind(self, layer: int) -> str:
        return FULL if self.kinds is None else self.kinds[layer]

    def layer_flops(self, n: int, kind: str = FULL) -> float:
        """One layer's prefill FLOPs on ``n`` tokens (``F`` or ``G`` of the module docstring)."""
        if kind == LINEAR:
            return self.linear.layer_flops(n, self.hidden, self.ffn)
        head_dim = self.head_dim or self.hidden // self.heads
        o_dim, kv_dim = self.heads * head_dim, self.kv_heads * head_dim
        q_dim = 2 * o_dim if self.gated_query else o_dim
        linear = 2 * (
            self.hidden * q_dim + 2 * self.hidden * kv_dim + o_dim * self.hidden + 3 * self.hidden * self.ffn
        )
        pair = 2 * 2 * o_dim
        return n * linear + pair * n * (n + 1) / 2

    def stack_flops(self, n: int, layers: range) -> float:
        """The FLOPs of ``layers`` on ``n`` tokens."""
        return sum(self.layer_flops(n, self.kind(i)) for i in layers)

    def attention_share(self, n: int) -> float:
        """The attention pairs' share of the whole stack's FLOPs on ``n`` tokens."""
        o_dim = self.heads * (self.head_dim or self.hidden // self.heads)
        full = sum(1 for i in range(self.layers) if self.kind(i) == FULL)
        return full * 2 * 2 * o_dim * n * (n + 1) / 2 / self.stack_flops(n, range(self.layers))


def reduced_prefill_ratio(dims: DecoderDims, n_full: int, n_reduced: int, k: int) -> dict:
    """Predicted reduced/full prefill ratio, the linear-only ratio and the attention share at ``n_full``."""
    full = dims.stack_flops(n_full, range(dims.layers))
    reduced = dims.stack_flops(n_full, range(k)) + dims.stack_flops(n_reduced, range(k, dims.layers))
    return {
        "predicted_ratio": reduced / full,
        "linear_only_ratio": (k * n_full + (dims.layers - k) * n_reduced) / (dims.layers * n_full),
        "attention_share_full": dims.attention_share(n_full),
    }
