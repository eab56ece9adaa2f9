"""The organism's architecture and its LLaVA-NeXT (LLaVA-Video) on-disk format.

A Qwen2 decoder of hidden 64, 8 layers (4 query / 2 key-value heads, MLP 256), the tiny
SigLIP tower of :mod:`lmms_sttm.data.tiny_llava` (patch 8 on 104 px: 13x13 patches, pooled to
7x7 = 49 tokens per frame; random and frozen), an ``mlp2x_gelu`` projector, the project's tiny
offline BPE tokenizer. The in-memory model is the same transformers
``LlavaOnevisionForConditionalGeneration`` that :func:`lmms_sttm.models.checkpoints.load_checkpoint`
builds from the files, so training and evaluation share one definition.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lmms_sttm.data.chat_templates import TEXT_CHAT_TEMPLATE
from lmms_sttm.data.tiny_common import padded_vocab_size
from lmms_sttm.data.tiny_llava import TOWER_LAYERS_FULL, _llava_next_name, _llava_video_config
from lmms_sttm.data.tiny_tokenizer import CHATML_SPECIAL_TOKENS, write_vocab_merges_layout

HIDDEN = 64
LAYERS = 8
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 256
TOWER_NAME = "organism-random-siglip-patch8-104"


def organism_config(vocab_size: int, bos_id: int, eos_id: int, image_id: int) -> dict:
    """``config.json`` in the LLaVA-NeXT layout (as lmms-lab/LLaVA-Video-7B-Qwen2, organism sizes)."""
    raw = _llava_video_config(vocab_size, bos_id, eos_id, image_id)
    raw.update(
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        max_window_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        mm_vision_tower=TOWER_NAME,
        add_time_instruction=False,
    )
    return raw


def write_tokenizer_and_config(out: Path) -> dict:
    """Write the tokenizer files, ``config.json`` and ``generation_config.json``; returns the raw config."""
    out.mkdir(parents=True, exist_ok=True)
    num_tokens = write_vocab_merges_layout(out, CHATML_SPECIAL_TOKENS, TEXT_CHAT_TEMPLATE)
    bos_id, eos_id = num_tokens - 3, num_tokens - 1
    raw = organism_config(padded_vocab_size(num_tokens), bos_id, eos_id, num_tokens)
    (out / "config.json").write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    generation = {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": bos_id}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    return raw


def new_model(out: Path, seed: int):
    """``(model, processor)``: a freshly initialised organism (seeded) whose files are in ``out``.

    The weights are transformers' initialisation under ``torch.manual_seed(seed)``.
    """
    from transformers import LlavaOnevisionForConditionalGeneration

    from lmms_sttm.models.llava_next import _llava_next_tokenizer, llava_next_hf_config, llava_next_processor

    raw = write_tokenizer_and_config(out)
    tokenizer = _llava_next_tokenizer(out)
    image_id, video_id = (
        tokenizer.convert_tokens_to_ids("<image>"),
        tokenizer.convert_tokens_to_ids("<video>"),
    )
    config = llava_next_hf_config(raw, TOWER_LAYERS_FULL - 1, image_id, video_id)
    config.text_config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    return model, llava_next_processor(tokenizer, config)


def save_weights(model, out: Path) -> Path:
    """``model.safetensors`` with LLaVA-NeXT parameter names (fp32)."""
    from safetensors.torch import save_file

    tensors = {_llava_next_name(k): v.detach().contiguous() for k, v in model.state_dict().items()}
    path = out / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path
