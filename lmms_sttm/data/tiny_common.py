"""Shared pieces of the tiny-checkpoint builders: sizes, seeded weights, the Qwen2/Qwen3 text configs.

Sizes keep the real models' structure at toy widths: a Qwen2 decoder of hidden 64, 4 layers
(so a merge before layer 2 leaves layers after it), 4 query heads, 2 key/value heads; the Qwen3
decoders (Qwen3-VL, InternVL3.5) have 6 layers (so a merge before layer 4 leaves layers after it)
and ``head_dim`` 16.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SEED = 0
TEXT_HIDDEN = 64
TEXT_LAYERS = 4
TEXT_HEADS = 4
TEXT_KV_HEADS = 2
TEXT_INTERMEDIATE = 128
ROPE_THETA = 1_000_000.0
VISION_HIDDEN = 32
QWEN3_TEXT_LAYERS = 6
TEXT_HEAD_DIM = TEXT_HIDDEN // TEXT_HEADS  # 16


def padded_vocab_size(num_tokens: int, multiple: int = 64) -> int:
    """Embedding rows: the tokenizer size rounded up, as Qwen2 pads 151,646 tokens to 152,064."""
    return int(math.ceil((num_tokens + 2) / multiple) * multiple)


def qwen2_text_kwargs(vocab_size: int, bos_id: int, eos_id: int) -> dict:
    """The Qwen2 decoder fields shared by all tiny checkpoints (HF names, rope in ``rope_parameters``)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": TEXT_INTERMEDIATE,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": TEXT_HEADS,
        "num_key_value_heads": TEXT_KV_HEADS,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA},
        "use_sliding_window": False,
        "max_window_layers": TEXT_LAYERS,
        "attention_dropout": 0.0,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": bos_id,
        "tie_word_embeddings": False,
    }


def qwen3_text_kwargs(vocab_size: int, bos_id: int, eos_id: int) -> dict:
    """The Qwen3 decoder fields (q/k RMS norms are always on in Qwen3): Qwen2's, 6 layers, explicit head_dim."""
    text = qwen2_text_kwargs(vocab_size, bos_id, eos_id)
    for key in ("use_sliding_window", "max_window_layers"):
        text.pop(key)
    text.update(num_hidden_layers=QWEN3_TEXT_LAYERS, head_dim=TEXT_HEAD_DIM, attention_bias=False)
    return text


def randomize_parameters(model: nn.Module, seed: int = SEED) -> None:
    """Overwrite every parameter with seeded values, independent of transformers' init code.

    Norm weights ~ 1 + 0.1·N(0,1); other matrices/kernels ~ N(0,1)/sqrt(fan_in) (fan_in = product
    of all but the first dim); vectors (biases, ``image_newline``) ~ 0.1·N(0,1). Parameters are
    visited in sorted-name order from one generator, so the result depends only on names, shapes
    and ``seed``; every bias is non-zero, which makes hand-computed references meaningful.
    """
    norm_params = set()
    for module_name, module in model.named_modules():
        if "norm" in type(module).__name__.lower():
            for param_name, _ in module.named_parameters(recurse=False):
                norm_params.add(f"{module_name}.{param_name}" if module_name else param_name)
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name in norm_params:
                value = (1.0 + 0.1 * noise) if name.endswith("weight") else 0.1 * noise
            elif p.dim() >= 2:
                value = noise / math.sqrt(math.prod(p.shape[1:]))
            else:
                value = 0.1 * noise
            p.copy_(value.to(p.dtype))


def save_hf_processor(processor, out_dir) -> None:
    """Save a processor as transformers 5.x does (``processor_config.json``, tokenizer files,
    ``chat_template.jinja``) plus the per-component ``preprocessor_config.json`` and
    ``video_preprocessor_config.json`` that the published hub repos carry (and older loaders read).
    """
    processor.save_pretrained(out_dir)
    processor.image_processor.save_pretrained(out_dir)
    processor.video_processor.save_pretrained(out_dir)
