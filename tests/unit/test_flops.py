"""The prefill FLOP model on hand-worked numbers: a full-attention layer (gated query) quadratic in
the tokens, a Gated DeltaNet layer linear in them (chunk-padded delta rule), and the reduced ratio."""

from __future__ import annotations

import pytest
from transformers import Qwen2Config, Qwen3_5TextConfig

from lmms_sttm.engine.flops import FULL, LINEAR, DecoderDims, LinearAttentionDims, reduced_prefill_ratio

LIN = LinearAttentionDims(key_heads=1, value_heads=2, key_dim=2, value_dim=3, conv_kernel=4, chunk=4)
DIMS = DecoderDims(5, 2, 1, 1, 7, head_dim=2, gated_query=True, kinds=(LINEAR, FULL), linear=LIN)


def test_a_gated_deltanet_layer_by_hand():
    # per token: 2*(5*10 + 5*6 + 2*5*2 + 6*5) + 2*10*4 + 2*3*5*7 = 550; delta rule per padded token
    # and value head: 4*(5*2 + 3*3) + 6*2*3 = 112; 5 tokens pad to 8
    assert DIMS.layer_flops(5, LINEAR) == 5 * 550 + 2 * 8 * 112
    assert DIMS.layer_flops(3, LINEAR) == 3 * 550 + 2 * 4 * 112


def test_a_gated_full_attention_layer_by_hand():
    # q 4 (gated), kv 2, o 2: 2*(5*4 + 2*5*2 + 2*5 + 3*5*7) = 310 per token; 2*2*2 = 8 per pair
    assert DIMS.layer_flops(5, FULL) == 5 * 310 + 8 * 15
    assert DIMS.layer_flops(3, FULL) == 3 * 310 + 8 * 6


def test_the_reduced_ratio_sums_the_layers_by_kind():
    got = reduced_prefill_ratio(DIMS, 5, 3, 1)["predicted_ratio"]
    assert got == pytest.approx((4542 + 978) / (4542 + 1670), rel=1e-12)


def test_dims_from_configs():
    hybrid = DecoderDims.of(
        Qwen3_5TextConfig(
            hidden_size=64,
            num_hidden_layers=8,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            intermediate_size=128,
            linear_num_key_heads=2,
            linear_num_value_heads=4,
            linear_key_head_dim=16,
            linear_value_head_dim=8,
        )
    )
    assert hybrid.kinds == (LINEAR,) * 3 + (FULL,) + (LINEAR,) * 3 + (FULL,)
    assert hybrid.linear == LinearAttentionDims(2, 4, 16, 8, 4) and hybrid.gated_query
    plain = DecoderDims.of(Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, intermediate_size=128))  # fmt: skip
    assert not plain.gated_query and plain.linear is None
    assert plain.layer_flops(10) == 10 * 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128) + 4 * 64 * 55
    with pytest.raises(ValueError, match="linear-attention layers need"):
        DecoderDims(5, 1, 1, 1, 7, kinds=(LINEAR,))
