"""The vision tower's received attention (FlashVID's and HoliTom's vision-side scores): the sdpa
hook equals the stock tower's eager attention weights, its mapping to the LLM's grid equals a
by-hand loop, and the model classes hand it to the methods that declare the read (only to them)."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lmms_sttm.models import vision_attention as va
from lmms_sttm.models.checkpoints import load_checkpoint
from lmms_sttm.models.video_blocks import (
    encode_internvl,
    encode_qwen3_5,
    encode_qwen3_vl,
    internvl_pixels,
    qwen3_5_pixels,
)
from lmms_sttm.models.video_inputs import encode_llava, encode_qwen, llava_pixels, qwen_pixels

TOL = 1e-5
QWEN = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5")


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _load(tiny_checkpoints, arch: str, attn: str):
    model, processor, _ = load_checkpoint(
        tiny_checkpoints(arch), dtype=torch.float32, attn_implementation=attn
    )
    return model, processor


def _received(weights: torch.Tensor) -> torch.Tensor:
    """Eager weights ``[B, H, n, n]`` -> ``[B, n]``: mean over heads, then over queries (the authors')."""
    return weights.float().mean(1).mean(1)


# ----------------------------------------------------------------------------- by-hand mappings
def bilinear_by_hand(grid: torch.Tensor) -> torch.Tensor:
    """``[F, s, s]`` -> ``[F, ceil(s/2)^2]``: bilinear downscaling with half-pixel centres (no corner
    alignment), one output pixel at a time."""
    f, s, _ = grid.shape
    o = math.ceil(s / 2)

    def taps(i: int):
        src = max((i + 0.5) * s / o - 0.5, 0.0)
        lo = int(math.floor(src))
        hi = min(lo + 1, s - 1)
        return lo, hi, src - lo

    out = torch.zeros(f, o, o, dtype=torch.float64)
    for b in range(f):
        for i in range(o):
            r0, r1, wr = taps(i)
            for j in range(o):
                c0, c1, wc = taps(j)
                g = grid[b].double()
                out[b, i, j] = (1 - wr) * ((1 - wc) * g[r0, c0] + wc * g[r0, c1]) + wr * (
                    (1 - wc) * g[r1, c0] + wc * g[r1, c1]
                )
    return out.reshape(f, -1)


def qwen_unit_order(t: int, rows: int, cols: int, window: int | None) -> list[tuple[int, int, int]]:
    """The merge units ``(t, i, j)`` of a ``rows x cols`` merged grid in the vision tower's order:
    raster per frame, or (``window`` units a side, Qwen2.5-VL) window by window, each window raster."""
    order = []
    for f in range(t):
        if window is None:
            order += [(f, i, j) for i in range(rows) for j in range(cols)]
            continue
        for wi in range(0, rows, window):
            for wj in range(0, cols, window):
                order += [
                    (f, i, j)
                    for i in range(wi, min(wi + window, rows))
                    for j in range(wj, min(wj + window, cols))
                ]
    return order


def qwen_by_hand(raw: torch.Tensor, t: int, rows: int, cols: int, window: int | None) -> torch.Tensor:
    """Tower-order scores ``[t * rows*2 * cols*2]`` -> ``[t, rows*cols]``: each merge unit's 4 patches
    (consecutive in the tower's order) averaged, placed at the unit's raster position."""
    out = torch.zeros(t, rows * cols, dtype=torch.float64)
    for pos, (f, i, j) in enumerate(qwen_unit_order(t, rows, cols, window)):
        out[f, i * cols + j] = sum(float(raw[4 * pos + k]) for k in range(4)) / 4
    return out


def internvl_by_hand(raw: torch.Tensor) -> torch.Tensor:
    """``[F, 1 + s0*s0]`` (a [CLS] first) -> ``[F, (s0/2)^2]``: the mean of rows ``2i, 2i+1`` x columns ``2j, 2j+1``."""
    f, n = raw.shape
    s0 = math.isqrt(n - 1)
    s = s0 // 2
    out = torch.zeros(f, s * s, dtype=torch.float64)
    for b in range(f):
        for i in range(s):
            for j in range(s):
                cells = [raw[b, 1 + (2 * i + a) * s0 + 2 * j + c] for a in (0, 1) for c in (0, 1)]
                out[b, i * s + j] = sum(float(x) for x in cells) / 4
    return out


# ----------------------------------------------------------------------------- eager references
class EagerRecorder:
    """The stock eager attention weights of one Qwen vision attention module: the model's own
    ``eager_attention_forward`` (per ``cu_seqlens`` chunk) wrapped to keep what it returns."""

    def __init__(self, attn) -> None:
        self.attn, self.weights = attn, []
        self.module = sys.modules[type(attn).__module__]

    def __enter__(self):
        self.original = self.module.eager_attention_forward

        def recording(module, *args, **kwargs):
            out, weights = self.original(module, *args, **kwargs)
            if module is self.attn:
                self.weights.append(weights)
            return out, weights

        self.module.eager_attention_forward = recording
        return self

    def __exit__(self, *exc):
        self.module.eager_attention_forward = self.original


def test_llava_hook_equals_eager_output_attentions_and_pools_like_a_loop(tiny_checkpoints):
    frames = _frames(3, 96, 96)
    model, processor = _load(tiny_checkpoints, "llava_video", "sdpa")
    eager, _ = _load(tiny_checkpoints, "llava_video", "eager")
    pixels = llava_pixels(processor, frames).flatten(0, 1)
    with torch.no_grad():
        out = eager.model.vision_tower(pixels, output_attentions=True)
    layers = len(out.attentions)
    layer = va._feature_layer(eager, layers)
    assert layer == layers - 1  # vision_feature_layer=-1: the last layer of the tower
    reference = _received(out.attentions[layer])  # [F, N]
    with va.recorder(model, "llava") as hook, torch.no_grad():
        model.model.vision_tower(pixels)
    assert hook.scores.shape == reference.shape
    assert torch.allclose(hook.scores, reference, atol=TOL, rtol=0)
    video = encode_llava(model, processor, frames, "no_token", vision_attention=True)
    side = math.isqrt(reference.shape[1])
    expected = bilinear_by_hand(reference.reshape(-1, side, side))
    assert video.vision_scores.shape == (video.grid[0], video.grid[1] * video.grid[2])
    assert torch.allclose(video.vision_scores.double(), expected, atol=TOL, rtol=0)
    plain = encode_llava(model, processor, frames, "no_token")
    assert plain.vision_scores is None and torch.equal(plain.features, video.features)


def test_llava_pooling_of_a_27_grid_equals_the_loop():
    """The 7B models' 27 x 27 SigLIP grid to 14 x 14, through the model class's own ``apply_pooling``."""
    from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionModel

    config = SimpleNamespace(
        vision_feature_select_strategy="full", vision_config=SimpleNamespace(image_size=378, patch_size=14)
    )
    stub = SimpleNamespace(config=config)
    stub.apply_pooling = lambda x: LlavaOnevisionModel.apply_pooling(stub, x)
    scores = torch.rand(2, 729, generator=torch.Generator().manual_seed(0))
    pooled = va.llava_grid_scores(SimpleNamespace(config=config, model=stub), scores)
    assert pooled.shape == (2, 196)
    assert torch.allclose(pooled.double(), bilinear_by_hand(scores.reshape(2, 27, 27)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", QWEN)
def test_qwen_hook_equals_eager_weights_and_merges_like_a_loop(arch, tiny_checkpoints):
    frames = _frames(4, 112, 176, seed=1)
    model, processor = _load(tiny_checkpoints, arch, "sdpa")
    eager, _ = _load(tiny_checkpoints, arch, "eager")
    enc = (qwen3_5_pixels if arch == "qwen3_5" else qwen_pixels)(processor, frames)
    thw = enc["video_grid_thw"]
    with EagerRecorder(eager.model.visual.blocks[-1].attn) as rec, torch.no_grad():
        eager.model.get_video_features(enc["pixel_values_videos"], thw)
    reference = torch.cat([_received(w)[0] for w in rec.weights])  # [t*h*w], the tower's order
    assert len(rec.weights) == int(thw[0, 0])  # one chunk per temporal patch in the last block
    with va.recorder(model, "qwen") as hook, torch.no_grad():
        model.model.get_video_features(enc["pixel_values_videos"], thw)
    assert torch.allclose(hook.scores, reference, atol=TOL, rtol=0)
    if arch in ("qwen3_vl", "qwen3_5"):
        encode = encode_qwen3_vl if arch == "qwen3_vl" else encode_qwen3_5
        video = encode(model, processor, frames, [0, 1, 2, 3], 2.0, pixels=enc, vision_attention=True)
    else:
        video = encode_qwen(model, processor, frames, 2.0, pixels=enc, vision_attention=True)
    t, rows, cols = video.grid
    visual = model.model.visual
    window = (
        visual.window_size // visual.spatial_merge_size // visual.patch_size if arch == "qwen2_5_vl" else None
    )
    if window is not None:  # the tiny grid spans several windows, one of them padded
        assert rows > window and cols % window != 0
    expected = qwen_by_hand(reference, t, rows, cols, window)
    assert torch.allclose(video.vision_scores.double(), expected, atol=TOL, rtol=0)


def test_internvl_hook_equals_eager_output_attentions_and_groups_like_a_loop(tiny_checkpoints):
    frames = _frames(2, 112, 112, seed=2)
    model, processor = _load(tiny_checkpoints, "internvl3_5", "sdpa")
    eager, _ = _load(tiny_checkpoints, "internvl3_5", "eager")
    pixels = internvl_pixels(processor, frames)
    with torch.no_grad():
        out = eager.model.vision_tower(pixel_values=pixels, output_attentions=True)
    reference = _received(out.attentions[-1])  # [F, 1 + N]: the [CLS] first
    with va.recorder(model, "internvl") as hook, torch.no_grad():
        model.model.vision_tower(pixel_values=pixels)
    assert torch.allclose(hook.scores, reference, atol=TOL, rtol=0)
    video = encode_internvl(model, processor, frames, pixels=pixels, vision_attention=True)
    assert torch.allclose(video.vision_scores.double(), internvl_by_hand(reference), atol=TOL, rtol=0)


# ----------------------------------------------------------------------------- through the model class
def test_only_methods_declaring_the_read_get_the_hook():
    from lmms_sttm.methods import registry

    readers = sorted(name for name in registry.BUILTIN if registry.get(name).reads_vision_attention)
    assert readers == ["fastvid", "flashvid", "holitom"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    from lmms_sttm.data.synthetic import ClipSpec, ensure_clip

    path = tmp_path_factory.mktemp("va") / "c.mp4"
    return str(ensure_clip(ClipSpec(num_frames=16, height=112, width=176, fps=4, seed=3, cut_at=8), path))


def _outer_plan(m, clip: str, selection_or_d: dict):
    """``(the engine's plan of the model's run, the merging function's plan on the same features and
    vision scores, the same with ``selection_or_d`` replaced, the encoded video)``."""
    import copy
    import dataclasses

    from tests.models.test_model_layer import _run

    _run(m, {0: clip})
    engine_plan = m.engine.last_reduction.plan
    video, _, _ = m.encode(clip, "probe_sttm")
    outer = m.method_for("probe_sttm").prefill.outer
    direct = outer(video.features.float(), video.grid, video.vision_scores)
    other = copy.copy(outer)
    other.settings = dataclasses.replace(outer.settings, **selection_or_d)
    return engine_plan, direct, other(video.features.float(), video.grid, None), video


@pytest.mark.parametrize(
    ("arch", "method", "args", "read", "fallback"),
    [
        ("llava_video", "flashvid", {"llm_prune": False}, ("selection", "attn_div_v2"), {"selection": "div"}),
        ("qwen2_5_vl", "flashvid", {"llm_prune": False}, ("selection", "attn_div"), {"selection": "div"}),
        ("qwen2_5_vl", "holitom", {"inner_merge": False}, ("contextual", 0.0), {"contextual": 1.0}),
        ("qwen3_vl", "flashvid", {"llm_prune": False}, ("selection", "attn_div_v2"), {"selection": "div"}),
        ("internvl3_5", "flashvid", {"llm_prune": False}, ("selection", "attn_div_v2"), {"selection": "div"}),
        ("qwen3_5", "flashvid", {"llm_prune": False}, ("selection", "attn_div_v2"), {"selection": "div"}),
    ],
)
def test_model_class_hands_the_scores_to_the_method(
    arch, method, args, read, fallback, tiny_checkpoints, clip, tmp_path
):
    from lmms_sttm.models.qwen3_5_sttm import Qwen35Sttm
    from lmms_sttm.models.qwen3_vl_sttm import InternVL35Sttm, Qwen3VLSttm
    from tests.models.test_model_layer import CLASSES

    classes = {**CLASSES, "qwen3_vl": Qwen3VLSttm, "internvl3_5": InternVL35Sttm, "qwen3_5": Qwen35Sttm}
    m = classes[arch](
        pretrained=tiny_checkpoints(arch), method=method, budget=30, stats_dir=str(tmp_path), **args
    )
    assert m.vision_attention is True
    engine_plan, direct, without, video = _outer_plan(m, clip, fallback)
    assert video.vision_scores is not None and video.vision_s > 0
    assert torch.equal(engine_plan.token_map.cpu(), direct.token_map.cpu())  # the run used these scores
    assert not torch.equal(direct.token_map, without.token_map)  # and they matter
    (record,) = m.stats.records
    assert record["params"][read[0]] == read[1] and record["vision_ms"] > 0


def test_a_method_without_the_read_runs_no_hook(tiny_checkpoints, clip, tmp_path, monkeypatch):
    from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm

    def refuse(*args):
        raise AssertionError("a method that does not read the vision attention got the hook")

    monkeypatch.setattr(va, "recorder", refuse)
    m = LlavaVideoSttm(
        pretrained=tiny_checkpoints("llava_video"), method="sttm", budget=30, stats_dir=str(tmp_path)
    )
    video, _, _ = m.encode(clip, "probe_sttm")
    assert m.vision_attention is False and video.vision_scores is None
