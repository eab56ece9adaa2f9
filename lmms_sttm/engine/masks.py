"""Causal masks for one segment, built with transformers' own mask factories.

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


def check_attention(config) -> None:
    """Raises unless the decoder config uses a supported attention and only full-attention layers."""
    impl = config._attn_implementation
    if impl not in SUPPORTED_ATTENTION:
        raise NotImplementedError(
            f"reduction engine: attention {impl!r} unsupported; use one of {SUPPORTED_ATTENTION}"
        )
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        raise NotImplementedError(
            f"reduction engine: only full-attention layers are supported, got {sorted(kinds)}"
        )


def segment_masks(
    config, q: int, past: int, dtype: torch.dtype, device: torch.device, *, skip: bool = True
) -> dict:
    """``{"full_attention": mask}`` for ``q`` queries after ``past`` cached keys (batch 1, no padding).

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
    return {"full_attention": mask}
