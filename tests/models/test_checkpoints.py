"""load_checkpoint: HF-format loading, LLaVA-NeXT conversion checked by hand, hub pass-through, errors."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmms_sttm.data.tiny import build_tiny  # noqa: E402
from lmms_sttm.models.checkpoints import CheckpointError, load_checkpoint  # noqa: E402
from lmms_sttm.models.llava_next import llava_next_hf_config  # noqa: E402

TOWER = "model.vision_tower.vision_tower.vision_model."
FRAMES = 8


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpts")
    for arch in ("llava_video", "llava_onevision", "qwen2_vl", "qwen2_5_vl"):
        build_tiny(arch, root / arch)
    return root


@pytest.fixture(scope="module")
def llava_video(ckpts):
    """(model, processor, info, raw tensors, raw config) of the converted tiny LLaVA-Video."""
    from safetensors.torch import load_file

    model, processor, info = load_checkpoint(ckpts / "llava_video")
    raw = load_file(str(ckpts / "llava_video" / "model.safetensors"))
    cfg = json.loads((ckpts / "llava_video" / "config.json").read_text())
    return model, processor, info, raw, cfg


def video(frames: int = FRAMES) -> np.ndarray:
    rng = np.random.default_rng(2)
    return rng.integers(0, 256, (frames, 96, 128, 3), dtype=np.uint8)


def prompt_inputs(processor, frames: int = FRAMES):
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe it."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=text, videos=[video(frames)], return_tensors="pt")


# ----------------------------------------------------------------------------------------------
# references computed by hand from the raw LLaVA-NeXT tensors


def siglip_by_hand(raw: dict, pixels: torch.Tensor, layers: int, heads: int, patch: int) -> torch.Tensor:
    """SigLIP tower output after ``layers`` encoder layers, no post-LN: (N, 3, S, S) -> (N, P, C)."""

    def w(name: str) -> torch.Tensor:
        return raw[TOWER + name]

    def lin(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(t, w(name + ".weight"), w(name + ".bias"))

    def norm(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(t, (t.shape[-1],), w(name + ".weight"), w(name + ".bias"), 1e-6)

    x = F.conv2d(
        pixels, w("embeddings.patch_embedding.weight"), w("embeddings.patch_embedding.bias"), stride=patch
    )
    x = x.flatten(2).transpose(1, 2) + w("embeddings.position_embedding.weight")
    n, p, c = x.shape
    for i in range(layers):
        pre = f"encoder.layers.{i}."
        h = norm(x, pre + "layer_norm1")
        q, k, v = (lin(h, f"{pre}self_attn.{m}_proj").view(n, p, heads, -1).transpose(1, 2) for m in "qkv")
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        x = x + lin((att @ v).transpose(1, 2).reshape(n, p, c), pre + "self_attn.out_proj")
        h = norm(x, pre + "layer_norm2")
        x = x + lin(F.gelu(lin(h, pre + "mlp.fc1"), approximate="tanh"), pre + "mlp.fc2")
    return x


def video_features_by_hand(raw: dict, cfg: dict, pixel_values_videos: torch.Tensor) -> torch.Tensor:
    """LLaVA-NeXT video path: tower (L-1 layers) -> mlp2x_gelu -> bilinear 2x2 (ceil) -> + newline.

    (1, F, 3, S, S) -> (1, F*ceil(g/2)^2 + 1, D).
    """
    tower = cfg["mm_vision_tower_config"]
    frames = pixel_values_videos[0]
    x = siglip_by_hand(
        raw, frames, tower["num_hidden_layers"] - 1, tower["num_attention_heads"], tower["patch_size"]
    )
    x = F.linear(x, raw["model.mm_projector.0.weight"], raw["model.mm_projector.0.bias"])
    x = F.linear(F.gelu(x), raw["model.mm_projector.2.weight"], raw["model.mm_projector.2.bias"])
    g = tower["image_size"] // tower["patch_size"]
    grid = x.view(len(frames), g, g, -1).permute(0, 3, 1, 2)
    pooled = F.interpolate(grid, size=(math.ceil(g / 2), math.ceil(g / 2)), mode="bilinear")
    pooled = pooled.permute(0, 2, 3, 1).reshape(1, -1, x.shape[-1])
    return torch.cat([pooled, raw["model.image_newline"][None, None]], dim=1)


def qwen2_lm_from_raw(raw: dict, cfg: dict):
    """A plain ``Qwen2ForCausalLM`` holding the raw ``model.*`` / ``lm_head`` tensors under their own names."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    config = Qwen2Config(
        **{k: cfg[k] for k in keys},
        num_key_value_heads=cfg["num_key_value_heads"],
        rms_norm_eps=cfg["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": cfg["rope_theta"]},
        tie_word_embeddings=False,
    )
    lm = Qwen2ForCausalLM(config).eval()
    text = {
        k: v for k, v in raw.items() if k.startswith(("model.embed_tokens", "model.layers", "model.norm"))
    }
    lm.load_state_dict({**text, "lm_head.weight": raw["lm_head.weight"]}, strict=True)
    return lm


def hf_name(key: str) -> str:
    """LLaVA-NeXT parameter name -> in-memory HF LlavaOnevision name (transformers 5.x)."""
    if key.startswith(TOWER):
        return "model.vision_tower." + key[len(TOWER) :]
    if key.startswith("model.mm_projector."):
        _, _, index, rest = key.split(".", 3)
        return f"model.multi_modal_projector.linear_{ {'0': 1, '2': 2}[index] }.{rest}"
    if key.startswith(("model.embed_tokens.", "model.layers.", "model.norm.")):
        return "model.language_model." + key[len("model.") :]
    assert key in ("lm_head.weight", "model.image_newline"), key
    return key


# ----------------------------------------------------------------------------------------------
# LLaVA-NeXT (llava_video)


def test_llava_video_converts_to_onevision(llava_video):
    model, processor, info, raw, cfg = llava_video
    assert type(model).__name__ == "LlavaOnevisionForConditionalGeneration"
    assert type(processor).__name__ == "LlavaOnevisionProcessor"
    assert not model.training
    assert model.config.vision_feature_layer == -1 and model.config.vision_feature_select_strategy == "full"
    assert model.config.vision_config.num_hidden_layers == 2  # 3-layer tower minus the dropped last layer
    assert model.config.vision_config.image_size == 104 and model.config.vision_config.patch_size == 8
    assert model.config.image_grid_pinpoints == cfg["image_grid_pinpoints"]
    tok = processor.tokenizer
    assert model.config.image_token_index == tok.convert_tokens_to_ids("<image>") == cfg["image_token_index"]
    assert (
        model.config.video_token_index == tok.convert_tokens_to_ids("<video>") == cfg["image_token_index"] + 1
    )
    assert info.format == "llava_next" and info.model_type == "llava_onevision"
    assert (info.newline_position, info.spatial_pool_mode, info.spatial_pool_stride) == (
        "grid",
        "bilinear",
        2,
    )
    assert info.add_time_instruction is True and info.force_sample is True
    assert info.mm_config["mm_vision_select_layer"] == -2
    # every converted parameter is a raw tensor, bit for bit (names mapped independently here)
    params = dict(model.named_parameters())
    mapped = {hf_name(k): v for k, v in raw.items()}
    assert set(params) == set(mapped)
    for name, value in mapped.items():
        assert torch.equal(params[name], value), name


def test_llava_video_features_match_hand_computation(llava_video):
    model, processor, _, raw, cfg = llava_video
    inputs = prompt_inputs(processor)
    pixels = inputs["pixel_values_videos"]
    assert pixels.shape == (1, FRAMES, 3, 104, 104)
    with torch.no_grad():
        feats = model.model.get_video_features(pixel_values_videos=pixels).pooler_output
        expected = video_features_by_hand(raw, cfg, pixels)
    assert feats.shape == expected.shape == (1, FRAMES * 7 * 7 + 1, 64)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)


def test_llava_video_logits_match_hand_computation(llava_video):
    model, processor, _, raw, cfg = llava_video
    inputs = prompt_inputs(processor)
    ids = inputs["input_ids"]
    is_video = ids[0] == model.config.video_token_index
    assert int(is_video.sum()) == FRAMES * 49 + 1
    with torch.no_grad():
        logits = model(**inputs).logits
        lm = qwen2_lm_from_raw(raw, cfg)
        embeds = raw["model.embed_tokens.weight"][ids].clone()
        embeds[0, is_video] = video_features_by_hand(raw, cfg, inputs["pixel_values_videos"])[0]
        expected = lm(inputs_embeds=embeds, attention_mask=inputs["attention_mask"]).logits
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 3)


def test_llava_video_prompt_and_processor(llava_video):
    _, processor, _, _, _ = llava_video
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<video>\nQ?<|im_end|>\n<|im_start|>assistant\n"
    )
    vp = processor.video_processor
    assert (list(vp.image_mean), list(vp.image_std), vp.resample) == ([0.5] * 3, [0.5] * 3, 3)
    inputs = prompt_inputs(processor, frames=3)
    assert int((inputs["input_ids"] == processor.video_token_id).sum()) == 3 * 49 + 1


def _rewrite_tensors(src: Path, dst: Path, edit) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    tensors = edit(load_file(str(src / "model.safetensors")))
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_llava_next_extra_tower_layer_and_head_are_ignored(ckpts, llava_video, tmp_path):
    model, processor, _, _, _ = llava_video

    def add_unused(t):
        for name in [k for k in t if k.startswith(TOWER + "encoder.layers.1.")]:
            t[name.replace("layers.1.", "layers.2.")] = torch.zeros_like(t[name])
        t[TOWER + "head.probe"] = torch.zeros(1, 1, 32)
        return t

    path = _rewrite_tensors(ckpts / "llava_video", tmp_path / "extra", add_unused)
    extra_model, _, _ = load_checkpoint(path)
    assert extra_model.config.vision_config.num_hidden_layers == 2
    pixels = prompt_inputs(processor)["pixel_values_videos"]
    with torch.no_grad():
        a = model.model.get_video_features(pixel_values_videos=pixels).pooler_output
        b = extra_model.model.get_video_features(pixel_values_videos=pixels).pooler_output
    assert torch.equal(a, b)


def test_llava_next_missing_tower_layer_is_an_error(ckpts, tmp_path):
    def drop_layer(t):
        return {k: v for k, v in t.items() if not k.startswith(TOWER + "encoder.layers.1.")}

    path = _rewrite_tensors(ckpts / "llava_video", tmp_path / "short", drop_layer)
    with pytest.raises(CheckpointError, match="stores 1 vision encoder layers; LLaVA-NeXT uses 2"):
        load_checkpoint(path)


def test_real_llava_video_config_uses_so400m_facts(ckpts):
    cfg = json.loads((ckpts / "llava_video" / "config.json").read_text())
    cfg.pop("mm_vision_tower_config")
    cfg.update(mm_vision_tower="google/siglip-so400m-patch14-384", mm_hidden_size=1152)
    hf = llava_next_hf_config(cfg, stored_vision_layers=26, image_id=515, video_id=516)
    v = hf.vision_config
    assert (v.hidden_size, v.intermediate_size, v.num_attention_heads) == (1152, 4304, 16)
    assert (v.num_hidden_layers, v.image_size, v.patch_size, v.vision_use_head) == (26, 384, 14, False)
    assert hf.vision_feature_layer == -1 and hf.vision_feature_select_strategy == "full"
    with pytest.raises(CheckpointError, match="stores 25 vision encoder layers"):
        llava_next_hf_config(cfg, stored_vision_layers=25, image_id=515, video_id=516)
    with pytest.raises(CheckpointError, match="unknown mm_vision_tower 'openai/clip-vit-large-patch14-336'"):
        llava_next_hf_config({**cfg, "mm_vision_tower": "openai/clip-vit-large-patch14-336"}, 26, 515, 516)


# ----------------------------------------------------------------------------------------------
# HF formats, hub ids, errors


@pytest.mark.parametrize(
    ("arch", "cls", "tokens"),
    [
        ("llava_onevision", "LlavaOnevisionForConditionalGeneration", FRAMES * 49 + 1),
        ("qwen2_vl", "Qwen2VLForConditionalGeneration", FRAMES // 2 * 6 * 8),
        ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", FRAMES // 2 * 6 * 8),
    ],
)
def test_hf_format_loads(ckpts, arch, cls, tokens):
    model, processor, info = load_checkpoint(ckpts / arch, attn_implementation="eager")
    assert type(model).__name__ == cls and not model.training
    assert model.config._attn_implementation == "eager" and model.dtype == torch.float32
    assert info.format == "hf" and info.model_type == arch and info.mm_config == {}
    assert info.newline_position == ("one_token" if arch == "llava_onevision" else None)
    inputs = prompt_inputs(processor)  # 96x128 frames: Qwen merged grid 6x8
    assert int((inputs["input_ids"] == processor.video_token_id).sum()) == tokens
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def test_hub_ids_pass_through_unchanged(monkeypatch):
    import huggingface_hub
    import transformers

    calls = []
    fake_model = SimpleNamespace(config=SimpleNamespace(model_type="qwen2_vl"))
    fake_model.eval = lambda: fake_model

    def no_hub(*args, **kwargs):
        raise OSError("offline")

    def record(kind, result):
        return classmethod(lambda cls, name, **kw: calls.append((kind, name, kw)) or result)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    monkeypatch.setattr(
        transformers.AutoModelForImageTextToText, "from_pretrained", record("model", fake_model)
    )
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", record("processor", "fake-processor"))
    model, processor, info = load_checkpoint("Qwen/Qwen2-VL-7B-Instruct", dtype=torch.bfloat16)
    assert model is fake_model and processor == "fake-processor"
    assert calls == [
        (
            "model",
            "Qwen/Qwen2-VL-7B-Instruct",
            {
                "dtype": torch.bfloat16,
                "attn_implementation": "sdpa",
                "device_map": None,
                "use_kernels": False,
            },
        ),
        ("processor", "Qwen/Qwen2-VL-7B-Instruct", {}),
    ]
    assert (info.source, info.format, info.model_type) == ("Qwen/Qwen2-VL-7B-Instruct", "hf", "qwen2_vl")


def test_llava_next_hub_ids_are_downloaded_and_converted(ckpts, monkeypatch):
    import huggingface_hub

    local = ckpts / "llava_video"
    seen = []
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda repo, name: seen.append(repo) or str(local / name)
    )
    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", lambda repo, **kw: seen.append(repo) or str(local)
    )
    model, _, info = load_checkpoint("lmms-lab/LLaVA-Video-7B-Qwen2")
    assert seen == ["lmms-lab/LLaVA-Video-7B-Qwen2"] * 2
    assert info.source == "lmms-lab/LLaVA-Video-7B-Qwen2" and info.format == "llava_next"
    assert type(model).__name__ == "LlavaOnevisionForConditionalGeneration"


def test_bad_inputs_raise_clear_errors(ckpts, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="checkpoint directory does not exist"):
        load_checkpoint(tmp_path / "missing")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpts").mkdir()
    with pytest.raises(FileNotFoundError, match="does not exist: ckpts/missing"):
        load_checkpoint("ckpts/missing")  # org/name-shaped, but its parent is a local directory
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a directory"):
        load_checkpoint(tmp_path / "file.bin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither an HF-format nor a LLaVA-NeXT-format checkpoint"):
        load_checkpoint(tmp_path / "empty")

    def with_config(name: str, src: str, **changes) -> Path:
        path = tmp_path / name
        shutil.copytree(ckpts / src, path)
        cfg = json.loads((path / "config.json").read_text())
        cfg.update(changes)
        (path / "config.json").write_text(json.dumps(cfg))
        return path

    with pytest.raises(CheckpointError, match="unsupported model_type 'bert'"):
        load_checkpoint(with_config("bert", "qwen2_vl", model_type="bert", architectures=["BertModel"]))
    with pytest.raises(CheckpointError, match="unsupported LLaVA-NeXT architecture"):
        load_checkpoint(with_config("llama", "llava_video", architectures=["LlavaLlamaForCausalLM"]))
    with pytest.raises(CheckpointError, match="unsupported mm_projector_type='linear'"):
        load_checkpoint(with_config("proj", "llava_video", mm_projector_type="linear"))
    with pytest.raises(CheckpointError, match="unsupported mm_spatial_pool_mode='average'"):
        load_checkpoint(with_config("pool", "llava_video", mm_spatial_pool_mode="average"))
    no_weights = with_config("noweights", "llava_video")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        load_checkpoint(no_weights)
