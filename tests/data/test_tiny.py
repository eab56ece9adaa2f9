"""Tiny random checkpoints: offline build time, determinism, on-disk layouts, reload + generate."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmms_sttm.data.tiny import build_tiny, main  # noqa: E402

# The Qwen2-decoder checkpoints; the Qwen3-VL / InternVL3.5 ones are tested in
# test_tiny_qwen3_internvl.py from the session-wide ``tiny_checkpoints`` builds.
ARCHS = ("llava_video", "llava_onevision", "qwen2_vl", "qwen2_5_vl")
HF_ARCHS = ("llava_onevision", "qwen2_vl", "qwen2_5_vl")
FRAMES = 8
HEIGHT, WIDTH = 112, 176  # the Qwen tiny default frame size (7x11 merged grid)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, float]:
    """All four checkpoints built once into a temp dir, with the wall time it took (imports included)."""
    root = tmp_path_factory.mktemp("tiny")
    start = time.perf_counter()
    for arch in ARCHS:
        build_tiny(arch, root / arch)
    return root, time.perf_counter() - start


def synthetic_video(frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(F, H, W, 3) uint8 frames: a moving gradient plus seeded noise."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:height, 0:width]
    video = np.stack([(x + 7 * t) % 256 + 0 * y for t in range(frames)])[..., None].repeat(3, axis=-1)
    return (video + rng.integers(0, 40, video.shape)).clip(0, 255).astype(np.uint8)


def video_prompt(processor) -> str:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_all_four_build_offline_within_a_minute(built):
    root, elapsed = built
    assert elapsed < 60, f"building the four tiny checkpoints took {elapsed:.1f} s"
    for arch in ARCHS:
        assert (root / arch / "model.safetensors").stat().st_size < 2_000_000


def test_builds_are_byte_identical(built, tmp_path):
    root, _ = built
    for arch in ARCHS:
        again = build_tiny(arch, tmp_path / arch)
        first_files = sorted(p.name for p in (root / arch).iterdir())
        assert first_files == sorted(p.name for p in again.iterdir())
        for name in first_files:
            assert (root / arch / name).read_bytes() == (again / name).read_bytes(), f"{arch}/{name} differs"


def test_hf_layouts_have_published_files(built):
    root, _ = built
    for arch in HF_ARCHS:
        names = {p.name for p in (root / arch).iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "chat_template.jinja",
            "processor_config.json",
            "preprocessor_config.json",
            "video_preprocessor_config.json",
        } <= names
        assert json.loads((root / arch / "config.json").read_text())["model_type"] == arch


def test_llava_video_is_in_llava_next_format(built):
    from safetensors import safe_open

    path = built[0] / "llava_video"
    assert {p.name for p in path.iterdir()} == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "added_tokens.json",
        "special_tokens_map.json",
    }
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == ["LlavaQwenForCausalLM"] and cfg["model_type"] == "llava"
    expected = {
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_projector_type": "mlp2x_gelu",
        "mm_spatial_pool_mode": "bilinear",
        "mm_spatial_pool_stride": 2,
        "mm_newline_position": "grid",
        "mm_patch_merge_type": "spatial_unpad",
        "add_time_instruction": True,
        "force_sample": True,
        "add_faster_video": False,
        "mm_hidden_size": 32,
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    assert {k: cfg[k] for k in expected} == expected
    for key in (
        "mm_vision_tower",
        "image_aspect_ratio",
        "image_grid_pinpoints",
        "image_token_index",
        "rope_theta",
    ):
        assert key in cfg
    assert cfg["mm_vision_tower_config"]["num_hidden_layers"] == 3
    added = json.loads((path / "added_tokens.json").read_text())
    assert list(added) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert cfg["image_token_index"] == max(added.values()) + 1 < cfg["vocab_size"]

    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    tower = "model.vision_tower.vision_tower.vision_model."
    assert {
        "model.embed_tokens.weight",
        "model.norm.weight",
        "lm_head.weight",
        "model.image_newline",
        "model.mm_projector.0.weight",
        "model.mm_projector.0.bias",
        "model.mm_projector.2.weight",
        "model.mm_projector.2.bias",
        tower + "embeddings.patch_embedding.weight",
        tower + "embeddings.position_embedding.weight",
        tower + "post_layernorm.weight",
        "model.layers.3.self_attn.q_proj.bias",
    } <= keys
    assert {int(k.split(".")[2]) for k in keys if k.startswith("model.layers.")} == {0, 1, 2, 3}
    # the last of the 3 tower layers is dropped on disk, as LLaVA-NeXT does with so400m's 27th
    stored = {int(k[len(tower) :].split(".")[2]) for k in keys if k.startswith(tower + "encoder.layers.")}
    assert stored == {0, 1}
    assert not any(
        k.startswith(("model.language_model", "model.multi_modal_projector", "language_model")) for k in keys
    )


@pytest.mark.parametrize("arch", HF_ARCHS)
def test_hf_checkpoint_reloads_and_generates(built, arch):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = built[0] / arch
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    assert model.config.model_type == arch
    assert model.config.get_text_config().num_hidden_layers == 4
    prompt = video_prompt(processor)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    inputs = processor(text=prompt, videos=[synthetic_video()], return_tensors="pt")
    video_id = processor.video_token_id
    n_video = int((inputs["input_ids"] == video_id).sum())
    if arch == "llava_onevision":
        assert "<video>\nWhat happens?" in prompt
        assert inputs["pixel_values_videos"].shape == (1, FRAMES, 3, 104, 104)
        assert n_video == FRAMES * 7 * 7 + 1
    else:
        assert "<|vision_start|><|video_pad|><|vision_end|>What happens?" in prompt
        assert inputs["video_grid_thw"].tolist() == [[FRAMES // 2, 14, 22]]
        assert n_video == FRAMES // 2 * 7 * 11
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.get_text_config().vocab_size)
    assert torch.isfinite(logits).all()
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 3)


def test_tokenizer_specials_follow_the_bpe_vocab(built):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built[0] / "qwen2_vl")
    names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
    ids = tok.convert_tokens_to_ids(names + ["<|image_pad|>", "<|video_pad|>"])
    assert ids == list(range(ids[0], ids[0] + 7)) and ids[0] == len(tok) - 7
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = "Select the best answer. The best answer is: (A)"
    assert tok.decode(tok(text)["input_ids"]) == text
    explicit = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    rendered = tok.apply_chat_template(explicit, tokenize=False)
    assert rendered == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"


def test_cli_builds_and_rejects_bad_input(tmp_path, capsys):
    assert main(["--arch", "qwen2_5_vl", "--out", str(tmp_path / "q")]) == 0
    assert "built tiny qwen2_5_vl" in capsys.readouterr().out
    assert (tmp_path / "q" / "model.safetensors").is_file()
    with pytest.raises(FileExistsError, match="not an empty directory"):
        build_tiny("qwen2_5_vl", tmp_path / "q")
    with pytest.raises(ValueError, match="unknown tiny checkpoint arch 'llava'"):
        build_tiny("llava", tmp_path / "x")
    with pytest.raises(SystemExit):
        main(["--arch", "nope", "--out", str(tmp_path / "y")])
