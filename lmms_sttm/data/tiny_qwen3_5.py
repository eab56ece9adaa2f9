"""Tiny random Qwen3.5 checkpoints in HF format: dense (as ``Qwen/Qwen3.5-4B`` / ``-27B``) and MoE
(as ``Qwen/Qwen3.5-35B-A3B``; Qwen3.6 checkpoints use the same classes).

Video geometry and processor are Qwen3-VL's (:mod:`lmms_sttm.data.tiny_qwen3`): ``Qwen3VLProcessor``,
patch 8, 2x2 merge, temporal patch 2; a 112x176 frame gives a 7x11 merged grid (odd, non-square)
per temporal patch, each written as ``<{t:.1f} seconds><|vision_start|>`` + 77 ``<|video_pad|>`` +
``<|vision_end|>``. No DeepStack (the Qwen3.5 vision tower has no taps).

Text decoder: the hybrid of the real models at toy widths: hidden 64, 8 layers with
``full_attention_interval`` 4, so layers 0-2 and 4-6 are Gated DeltaNet (linear attention: a causal
conv state of kernel 4 and a recurrent state per value head) and layers 3 and 7 full attention.

- full attention: 4 query heads, 2 key/value heads, ``head_dim`` 32, the gated ``q_proj`` (twice the
  query width: query and output gate), q/k RMS norms, rotary on a quarter of the head
  (``partial_rotary_factor`` 0.25: 8 of 32 dims, 4 frequencies) with interleaved M-RoPE
  ``mrope_section`` [2, 1, 1] (H takes frequency 1, W frequency 2, T the others);
- Gated DeltaNet: 2 key heads and 4 value heads (the real 16 / 32 ratio) of width 16, conv kernel 4.
- MoE: every layer's MLP is 4 experts of width 24, top-2 (normalised), plus a shared expert of
  width 32 behind a sigmoid gate.

Weights: :func:`~lmms_sttm.data.tiny_common.randomize_parameters`, then two fixes so that nothing is
a constant: the decoder's RMS norms scale by ``1 + weight`` (zero-centred), so their weights become
``0.1 * N(0, 1)`` (a scale of ``1 + 0.1 N``, as the other checkpoints); ``A_log`` gets the log of
``uniform(1, 16)`` decay rates (as transformers' init: ``exp(A_log)`` spread over heads) and ``dt_bias``
``0.1 * N(0, 1)``. ``rms_norm_eps`` is 1e-3 (with 1e-6 the near-constant norms of a random model
make fp32 noise ~1e-5). Everything comes from one seed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lmms_sttm.data.chat_templates import QWEN3_5_CHAT_TEMPLATE
from lmms_sttm.data.tiny_common import (
    SEED,
    TEXT_HIDDEN,
    VISION_HIDDEN,
    padded_vocab_size,
    qwen3_text_kwargs,
    randomize_parameters,
    save_hf_processor,
)
from lmms_sttm.data.tiny_qwen3 import (
    MERGE,
    PATCH,
    TEMPORAL_PATCH,
    qwen3_vl_processor,
    vision_language_config,
)
from lmms_sttm.data.tiny_tokenizer import (
    CHATML_SPECIAL_TOKENS,
    QWEN_VISION_TOKENS,
    THINK_TOKENS,
    build_qwen2_tokenizer,
)

TEXT_LAYERS = 8
FULL_ATTENTION_INTERVAL = 4  # layers 3 and 7 full attention, the rest Gated DeltaNet
HEAD_DIM = 32
PARTIAL_ROTARY = 0.25  # 8 rotary dims of 32
MROPE_SECTION = [2, 1, 1]  # sums to the 4 rotary frequencies
LINEAR_KEY_HEADS, LINEAR_VALUE_HEADS, LINEAR_HEAD_DIM, CONV_KERNEL = 2, 4, 16, 4
RMS_NORM_EPS = 1e-3
VISION_DEPTH = 3
NUM_EXPERTS, EXPERTS_PER_TOKEN, EXPERT_INTERMEDIATE, SHARED_EXPERT_INTERMEDIATE = 4, 2, 24, 32
A_RANGE = (1.0, 16.0)  # decay rates exp(A_log), per value head


def _vision_config() -> dict:
    return {
        "depth": VISION_DEPTH,
        "hidden_size": VISION_HIDDEN,
        "intermediate_size": 2 * VISION_HIDDEN,
        "num_heads": 2,
        "in_channels": 3,
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL_PATCH,
        "out_hidden_size": TEXT_HIDDEN,
        "num_position_embeddings": 256,  # a 16x16 learned grid, bilinearly resampled to each image
        "hidden_act": "gelu_pytorch_tanh",
    }


def _text_config(arch: str, vocab_size: int, bos_id: int, eos_id: int) -> dict:
    text = qwen3_text_kwargs(vocab_size, bos_id, eos_id)
    text.pop("attention_bias")
    text.update(
        num_hidden_layers=TEXT_LAYERS,
        head_dim=HEAD_DIM,
        rms_norm_eps=RMS_NORM_EPS,
        layer_types=[
            "full_attention" if (i + 1) % FULL_ATTENTION_INTERVAL == 0 else "linear_attention"
            for i in range(TEXT_LAYERS)
        ],
        linear_conv_kernel_dim=CONV_KERNEL,
        linear_key_head_dim=LINEAR_HEAD_DIM,
        linear_value_head_dim=LINEAR_HEAD_DIM,
        linear_num_key_heads=LINEAR_KEY_HEADS,
        linear_num_value_heads=LINEAR_VALUE_HEADS,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10_000_000.0,
            "partial_rotary_factor": PARTIAL_ROTARY,
            "mrope_section": MROPE_SECTION,
            "mrope_interleaved": True,
        },
    )
    if arch == "qwen3_5_moe":
        text.pop("intermediate_size")
        text.update(
            num_experts=NUM_EXPERTS,
            num_experts_per_tok=EXPERTS_PER_TOKEN,
            moe_intermediate_size=EXPERT_INTERMEDIATE,
            shared_expert_intermediate_size=SHARED_EXPERT_INTERMEDIATE,
        )
    return text


def _randomize(model) -> None:
    """Seeded weights with no constant left (see the module docstring)."""
    randomize_parameters(model)
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for _name, module in sorted(model.named_modules(), key=lambda item: item[0]):
            kind = type(module).__name__
            if kind.endswith("RMSNorm") and "Vision" not in kind and "Gated" not in kind:
                module.weight.sub_(1.0)  # zero-centred: 1 + w with w = 0.1 N(0, 1)
            if hasattr(module, "A_log") and hasattr(module, "dt_bias"):
                low, high = A_RANGE
                rates = low + (high - low) * torch.rand(module.A_log.shape, generator=gen)
                module.A_log.copy_(rates.log())
                module.dt_bias.copy_(0.1 * torch.randn(module.dt_bias.shape, generator=gen))


def build_qwen3_5(arch: str, out_dir: Path) -> Path:
    """Write a tiny ``qwen3_5`` or ``qwen3_5_moe`` checkpoint (model, tokenizer, processors) to ``out_dir``."""
    from transformers import (
        Qwen3_5Config,
        Qwen3_5ForConditionalGeneration,
        Qwen3_5MoeConfig,
        Qwen3_5MoeForConditionalGeneration,
    )

    classes = {
        "qwen3_5": (Qwen3_5Config, Qwen3_5ForConditionalGeneration),
        "qwen3_5_moe": (Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration),
    }
    config_cls, model_cls = classes[arch]

    specials = CHATML_SPECIAL_TOKENS + QWEN_VISION_TOKENS
    tokenizer = build_qwen2_tokenizer(
        specials,
        chat_template=QWEN3_5_CHAT_TEMPLATE,
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        plain_tokens=THINK_TOKENS,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    text = _text_config(arch, padded_vocab_size(len(tokenizer)), ids["<|endoftext|>"], ids["<|im_end|>"])
    config = vision_language_config(config_cls, text, _vision_config(), ids)
    torch.manual_seed(SEED)
    model = model_cls(config).eval()
    _randomize(model)

    processor = qwen3_vl_processor(tokenizer, QWEN3_5_CHAT_TEMPLATE)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_hf_processor(processor, out_dir)
    return out_dir
