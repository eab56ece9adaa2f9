"""Causal masks for one segment, built with transformers' own mask factories.

Linear-attention layers (Qwen3.5's Gated DeltaNet) take a 2-D padding mask, not a causal one: the
engine runs padding-free, so theirs is None (as transformers' ``create_recurrent_attention_mask``
gives for an all-ones mask).

A segment's chunk of ``q`` new tokens follows ``past`` cached tokens of that segment: query ``i``
sees keys ``0..past+i``. The mask interface of the configured attention implementation gives the
right form: sdpa -> ``None`` when ``is_causal`` is exact (``q == 1`` or ``past == 0``), else a bool
``[1, 1, q, past+q]``; eager -> an additive float mask; flash attention -> ``None`` (its causal
mask is bottom-right aligned, which is exact for a chunk after a cache).
"""

from __future__ import annotations

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, causal_mask_function

SUPPORTED_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")
#: decoder layer kinds the engine runs: attention with a KV cache, and recurrent Gated DeltaNet layers
SUPPORTED_LAYERS = ("full_attention", "linear_attention")


def check_attention(config) -> None:
    """Raises unless the decoder config uses a supported attention and supported layer kinds
    (full attention, and linear attention next to it)."""
    impl = config._attn_implementation
    if impl not in SUPPORTED_ATTENTION:
        raise NotImplementedError(
            f"reduction engine: attention {impl!r} unsupported; use one of {SUPPORTED_ATTENTION}"
        )
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if not kinds <= set(SUPPORTED_LAYERS) or "full_attention" not in kinds:
        raise NotImplementedError(
            f"reduction engine: layer kinds {sorted(kinds)} unsupported; it runs full-attention layers, "
            f"with linear-attention layers beside them ({list(SUPPORTED_LAYERS)})"
        )


def segment_masks(
    config, q: int, past: int, dtype: torch.dtype, device: torch.device, *, skip: bool = True
) -> dict:
    """``{"full_attention": mask, "linear_attention": None}`` for ``q`` queries after ``past`` cached
    keys (batch 1, no padding).

    ``skip=False``: a mask tensor even where sdpa's ``is_causal`` would do (for decoders that take
    one tensor and build their own mask when given None)."""
    mask_fn = ALL_MASK_ATTENTION_FUNCTIONS[config._attn_implementation]
    mask = mask_fn(
        batch_size=1,
        q_length=q,
        kv_length=past + q,
        q_offset=past,
        kv_offset=0,
        mask_function=causal_mask_function,
        attention_mask=None,
        allow_is_causal_skip=skip,
        dtype=dtype,
        config=config,
        use_vmap=False,
        device=device,
    )
    return {"full_attention": mask, "linear_attention": None}
