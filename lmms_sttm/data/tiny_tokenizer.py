"""A tiny Qwen2-style byte-level BPE tokenizer, trained on the spot (no hub access needed).

The pipeline is exactly the one transformers' ``Qwen2Tokenizer`` rebuilds from ``vocab.json`` +
``merges.txt`` (NFC normaliser, Qwen's pre-tokenisation regex, byte-level BPE, byte-level
decoder), so the trained vocabulary round-trips through both the ``tokenizer.json`` and the
``vocab.json``/``merges.txt`` file layouts. As in the real Qwen2 tokenizers, special tokens are
*added* tokens whose ids follow the BPE vocabulary (``<|endoftext|>`` = len(BPE vocab), then
``<|im_start|>``, ``<|im_end|>``, then the family's vision tokens).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

# Qwen2's pre-tokenisation regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX).
_QWEN_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
BPE_VOCAB_SIZE = 512
CHATML_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
LLAVA_VISION_TOKENS = ("<image>", "<video>")
# InternVL (HF format): image start/end and the context (placeholder) token, as in OpenGVLab/*-HF.
INTERNVL_VISION_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>")
# Qwen3 / Qwen3.5 thinking delimiters: added tokens, not special (decoded answers keep them).
THINK_TOKENS = ("<think>", "</think>")

# Training text: the kinds of strings the evaluation prompts contain (deterministic, no randomness).
_CORPUS = [
    "You are a helpful assistant.",
    "Select the best answer to the following multiple-choice question based on the video and the "
    "subtitles. Respond with only the letter (A, B, C, D, or E) of the correct option.",
    "The best answer is:",
    "The video lasts for 12.50 seconds, and 8 frames are uniformly sampled from it. These frames are "
    "located at 0.00s,1.56s,3.12s,4.69s,6.25s,7.81s,9.38s,10.94s. Please answer the following "
    "questions related to this video.",
    "A. a red ball rolls across the table\nB. a dog runs in the park\nC. two people talk in a kitchen\n"
    "D. the camera pans over a city at night\nE. nothing happens",
    "What is the person in the video doing? Describe the scene in one sentence.",
    "How many times does the object appear? Answer with a number: 0 1 2 3 4 5 6 7 8 9 10.",
    "Where does the needle appear in the video, at the beginning, in the middle or at the end?",
]


def train_bpe(vocab_size: int = BPE_VOCAB_SIZE) -> Tokenizer:
    """Train the byte-level BPE (no special tokens) on a fixed corpus; deterministic."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok


def vocab_and_merges(tok: Tokenizer) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE model's vocabulary (token -> id) and ordered merge list."""
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def build_qwen2_tokenizer(
    special_tokens: Sequence[str],
    *,
    chat_template: str,
    image_token: str | None = None,
    video_token: str | None = None,
    extra_special_tokens: dict[str, str] | None = None,
    plain_tokens: Sequence[str] = (),
):
    """A ``Qwen2Tokenizer`` (transformers) over the trained BPE plus ``special_tokens`` appended.

    ``plain_tokens`` follow them as added tokens that are *not* special (kept by ``decode(...,
    skip_special_tokens=True)``), as Qwen3's ``<think>`` / ``</think>``.

    eos = ``<|im_end|>``, pad = ``<|endoftext|>`` (as in Qwen2-Instruct / Qwen2-VL-Instruct).
    ``image_token`` / ``video_token`` become ``tokenizer.image_token`` / ``.video_token``; every
    ``name: token`` of ``extra_special_tokens`` becomes ``tokenizer.<name>`` (and ``<name>_id``).
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merges = vocab_and_merges(train_bpe())
    extra = dict(extra_special_tokens or {})
    if image_token is not None:
        extra["image_token"] = image_token
    if video_token is not None:
        extra["video_token"] = video_token
    # The specials sit in the vocabulary at ids len(BPE vocab)...; no merge can produce them, and the
    # constructor registers them as special added tokens at those ids.
    full_vocab = {**vocab, **{t: len(vocab) + i for i, t in enumerate(special_tokens)}}
    tokenizer = Qwen2Tokenizer(
        vocab=full_vocab,
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
        extra_special_tokens=extra or None,
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens], True)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in plain_tokens])
    tokenizer.chat_template = chat_template
    expected = len(vocab)
    for token in (*special_tokens, *plain_tokens):
        got = tokenizer.convert_tokens_to_ids(token)
        if got != expected:
            raise RuntimeError(f"special token {token!r} got id {got}, expected {expected}")
        expected += 1
    return tokenizer


def write_vocab_merges_layout(out_dir: Path, special_tokens: Sequence[str], chat_template: str) -> int:
    """Write the LLaVA-NeXT / Qwen2 repo tokenizer files (no tokenizer.json); return the token count.

    Files: ``vocab.json``, ``merges.txt``, ``added_tokens.json``, ``special_tokens_map.json`` and
    ``tokenizer_config.json`` (``tokenizer_class`` ``Qwen2Tokenizer``, ``added_tokens_decoder``,
    eos ``<|im_end|>``, pad ``<|endoftext|>``, ``chat_template``).
    """
    vocab, merges = vocab_and_merges(train_bpe())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=False))
    merge_lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (out_dir / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    added = {token: len(vocab) + i for i, token in enumerate(special_tokens)}
    (out_dir / "added_tokens.json").write_text(json.dumps(added, indent=2) + "\n")
    specials_map = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(specials_map, indent=2) + "\n")
    decoder = {
        str(idx): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token, idx in added.items()
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "bos_token": None,
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "padding_side": "right",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return len(vocab) + len(special_tokens)
