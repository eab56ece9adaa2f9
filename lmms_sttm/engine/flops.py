"""The FLOP model of a reduced prefill: which share of an unreduced prefill's work remains.

A decoder layer on ``n`` tokens costs ``F(n) = n*a + c*n(n+1)/2``: ``a`` the projections and MLP
per token (``2 * (D*q + 2*D*kv + q*D + 3*D*ffn)`` FLOPs, q/kv the query/key-value widths), ``c``
the causal ``QK^T`` and ``AV`` per (query, key) pair (``2 * 2 * q``). Merging before layer ``k``
of ``L`` runs ``k`` layers on ``N`` tokens and ``L - k`` on ``N'``:
``ratio = [k*F(N) + (L-k)*F(N')] / [L*F(N)]``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecoderDims:
    """Widths of a Qwen2-style decoder (head dimension ``hidden / heads``)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int

    @classmethod
    def of(cls, text_config) -> DecoderDims:
        """From a transformers text config (``hidden_size``, ``num_hidden_layers``, ...)."""
        c = text_config
        return cls(
            c.hidden_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.intermediate_size,
        )

    def layer_flops(self, n: int) -> float:
        """``F(n)``: one layer's prefill FLOPs on ``n`` tokens."""
        head_dim = self.hidden // self.heads
        q_dim, kv_dim = self.heads * head_dim, self.kv_heads * head_dim
        linear = 2 * (
            self.hidden * q_dim + 2 * self.hidden * kv_dim + q_dim * self.hidden + 3 * self.hidden * self.ffn
        )
        pair = 2 * 2 * q_dim
        return n * linear + pair * n * (n + 1) / 2

    def attention_share(self, n: int) -> float:
        """The attention pairs' share of ``F(n)``."""
        q_dim = self.heads * (self.hidden // self.heads)
        return 2 * 2 * q_dim * n * (n + 1) / 2 / self.layer_flops(n)


def reduced_prefill_ratio(dims: DecoderDims, n_full: int, n_reduced: int, k: int) -> dict:
    """Predicted reduced/full prefill ratio, the linear-only ratio and the attention share at ``n_full``."""
    full = dims.layers * dims.layer_flops(n_full)
    reduced = k * dims.layer_flops(n_full) + (dims.layers - k) * dims.layer_flops(n_reduced)
    return {
        "predicted_ratio": reduced / full,
        "linear_only_ratio": (k * n_full + (dims.layers - k) * n_reduced) / (dims.layers * n_full),
        "attention_share_full": dims.attention_share(n_full),
    }
