"""The vision tower's frame-mean-query attention (``frame_query``, FastVID's saliency): the sdpa hook
equals a by-hand computation from the eager tower's own inputs and weights (projections, RoPE and
softmax written out per head), its mapping to the LLM's grid equals a loop, and the model classes
hand it to FastVID, whose kept set then differs from the stand-in's."""

from __future__ import annotations

import math

import pytest
import torch

from lmms_sttm.models import vision_attention as va
from lmms_sttm.models.video_blocks import encode_internvl, encode_qwen3_5, encode_qwen3_vl, internvl_pixels
from lmms_sttm.models.video_inputs import encode_llava, encode_qwen, llava_pixels, qwen_pixels
from tests.models.test_vision_attention import (
    QWEN,
    TOL,
    _frames,
    _load,
    bilinear_by_hand,
    internvl_by_hand,
    qwen_unit_order,
)


def _linear(x: torch.Tensor, layer) -> torch.Tensor:
    """``x @ W^T + b`` in float64, by hand."""
    out = x.detach().double() @ layer.weight.detach().double().T
    return out + layer.bias.detach().double() if layer.bias is not None else out


def _softmax(v: list[float]) -> list[float]:
    top = max(v)
    e = [math.exp(a - top) for a in v]
    return [a / sum(e) for a in e]


def mean_query_by_hand(q: torch.Tensor, k: torch.Tensor, scale: float) -> list[float]:
    """``q [n, H, d]``, ``k [m, H, d]`` (one frame) -> ``[m]``: per head, the mean query's softmax over
    the ``m`` keys, then the mean over heads (plain loops)."""
    n, heads, d = q.shape
    out = [0.0] * k.shape[0]
    for h in range(heads):
        q_bar = [sum(float(q[i, h, c]) for i in range(n)) / n for c in range(d)]
        logits = [scale * sum(q_bar[c] * float(k[j, h, c]) for c in range(d)) for j in range(k.shape[0])]
        for j, p in enumerate(_softmax(logits)):
            out[j] += p / heads
    return out


class Inputs:
    """Records the attention module's call arguments (a pre-hook on the eager model)."""

    def __init__(self, module) -> None:
        self.module, self.calls = module, []

    def __enter__(self):
        self.handle = self.module.register_forward_pre_hook(
            lambda m, a, kw: self.calls.append((a, kw)), with_kwargs=True
        )
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _siglip_like_by_hand(attn, hidden: torch.Tensor) -> torch.Tensor:
    """``hidden [F, n, C]`` (the attention's input) -> ``[F, n]``: q/k projections (and InternViT's
    q/k norms), split into heads, ``mean_query_by_hand`` per frame."""
    out = []
    for frame in hidden:
        qk = []
        for proj, norm in ((attn.q_proj, "q_norm"), (attn.k_proj, "k_norm")):
            y = _linear(frame, proj)
            if getattr(attn, norm, None) is not None:
                y = getattr(attn, norm)(y.to(frame.dtype)).double()
            qk.append(y.view(frame.shape[0], -1, attn.head_dim))
        scale = attn.scale if hasattr(attn, "scale") else attn.scaling
        out.append(mean_query_by_hand(qk[0], qk[1], scale))
    return torch.tensor(out, dtype=torch.float64)


def test_llava_frame_query_equals_by_hand_and_pools_like_the_received_scores(tiny_checkpoints):
    frames = _frames(3, 96, 96, seed=4)
    model, processor = _load(tiny_checkpoints, "llava_video", "sdpa")
    eager, _ = _load(tiny_checkpoints, "llava_video", "eager")
    pixels = llava_pixels(processor, frames).flatten(0, 1)
    attn = va.llava_attention_module(eager)
    with Inputs(attn) as rec, torch.no_grad():
        eager.model.vision_tower(pixels)
    ((args, kwargs),) = rec.calls
    reference = _siglip_like_by_hand(attn, kwargs.get("hidden_states", args[0] if args else None))
    with va.recorder(model, "llava", "frame_query") as hook, torch.no_grad():
        model.model.vision_tower(pixels)
    assert hook.scores.shape == reference.shape
    assert torch.allclose(hook.scores.double(), reference, atol=TOL, rtol=0)
    assert torch.allclose(hook.scores.sum(dim=1), torch.ones(3), atol=1e-5)  # one softmax per frame
    with va.recorder(model, "llava") as received, torch.no_grad():
        model.model.vision_tower(pixels)
    assert not torch.allclose(received.scores, hook.scores, atol=1e-4)  # another quantity
    video = encode_llava(model, processor, frames, "no_token", vision_attention="frame_query")
    side = math.isqrt(reference.shape[1])
    expected = bilinear_by_hand(reference.reshape(-1, side, side))
    assert torch.allclose(video.vision_scores.double(), expected, atol=TOL, rtol=0)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


@pytest.mark.parametrize("arch", QWEN)
def test_qwen_frame_query_equals_by_hand_over_merge_units(arch, tiny_checkpoints):
    """FastVID's Qwen2.5-VL computation: per temporal patch, the mean RoPE'd query of the last block
    against each 2 x 2 merge unit's mean RoPE'd key; units put in raster order."""
    frames = _frames(4, 112, 176, seed=5)
    model, processor = _load(tiny_checkpoints, arch, "sdpa")
    eager, _ = _load(tiny_checkpoints, arch, "eager")
    enc = qwen_pixels(processor, frames)
    thw = enc["video_grid_thw"]
    attn = eager.model.visual.blocks[-1].attn
    with Inputs(attn) as rec, torch.no_grad():
        eager.model.get_video_features(enc["pixel_values_videos"], thw)
    ((args, kwargs),) = rec.calls
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    cos, sin = kwargs["position_embeddings"]
    n = hidden.shape[0]
    qkv = _linear(hidden, attn.qkv).view(n, 3, attn.num_heads, -1)
    c, s = cos.double()[:, None, :], sin.double()[:, None, :]
    q = qkv[:, 0] * c + _rotate_half(qkv[:, 0]) * s  # [n, H, d]
    k = qkv[:, 1] * c + _rotate_half(qkv[:, 1]) * s
    t, gh, gw = (int(v) for v in thw[0])
    per = gh * gw  # one temporal patch: the last block's attention chunk
    units = []  # each unit's score, in the tower's order
    for f in range(t):
        qf, kf = q[f * per : (f + 1) * per], k[f * per : (f + 1) * per]
        k_units = kf.view(per // 4, 4, *kf.shape[1:]).mean(dim=1)
        units += mean_query_by_hand(qf, k_units, attn.scaling)
    with va.recorder(model, "qwen", "frame_query") as hook, torch.no_grad():
        model.model.get_video_features(enc["pixel_values_videos"], thw)
    assert torch.allclose(
        hook.scores.double(), torch.tensor(units, dtype=torch.float64).repeat_interleave(4), atol=TOL, rtol=0
    )
    if arch in ("qwen3_vl", "qwen3_5"):  # Qwen3.5: Qwen3-VL's tower without DeepStack
        encode = encode_qwen3_vl if arch == "qwen3_vl" else encode_qwen3_5
        video = encode(
            model, processor, frames, [0, 1, 2, 3], 2.0, pixels=enc, vision_attention="frame_query"
        )
    else:
        video = encode_qwen(model, processor, frames, 2.0, pixels=enc, vision_attention="frame_query")
    _, rows, cols = video.grid
    visual = model.model.visual
    window = (
        visual.window_size // visual.spatial_merge_size // visual.patch_size if arch == "qwen2_5_vl" else None
    )
    expected = torch.zeros(t, rows * cols, dtype=torch.float64)
    for pos, (f, i, j) in enumerate(qwen_unit_order(t, rows, cols, window)):
        expected[f, i * cols + j] = units[pos]
    assert torch.allclose(video.vision_scores.double(), expected, atol=TOL, rtol=0)
    assert torch.allclose(video.vision_scores.sum(dim=1), torch.ones(t, dtype=torch.float32), atol=1e-5)


def test_internvl_frame_query_equals_by_hand(tiny_checkpoints):
    frames = _frames(2, 112, 112, seed=6)
    model, processor = _load(tiny_checkpoints, "internvl3_5", "sdpa")
    eager, _ = _load(tiny_checkpoints, "internvl3_5", "eager")
    pixels = internvl_pixels(processor, frames)
    attn = va.internvl_attention_module(eager)
    with Inputs(attn) as rec, torch.no_grad():
        eager.model.vision_tower(pixel_values=pixels)
    ((args, kwargs),) = rec.calls
    reference = _siglip_like_by_hand(attn, kwargs.get("hidden_states", args[0] if args else None))
    with va.recorder(model, "internvl", "frame_query") as hook, torch.no_grad():
        model.model.vision_tower(pixel_values=pixels)
    assert torch.allclose(hook.scores.double(), reference, atol=TOL, rtol=0)
    video = encode_internvl(model, processor, frames, pixels=pixels, vision_attention="frame_query")
    assert torch.allclose(video.vision_scores.double(), internvl_by_hand(reference), atol=TOL, rtol=0)


def test_unknown_kind_is_refused(tiny_checkpoints):
    model, _ = _load(tiny_checkpoints, "qwen2_vl", "sdpa")
    with pytest.raises(ValueError, match="frame_query"):
        va.recorder(model, "qwen", "cls")
    from lmms_sttm.methods.spec import VISION_SCORES

    assert VISION_SCORES == va.KINDS


# ----------------------------------------------------------------------------- through the model class
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    from lmms_sttm.data.synthetic import ClipSpec, ensure_clip

    path = tmp_path_factory.mktemp("fq") / "c.mp4"
    return str(ensure_clip(ClipSpec(num_frames=16, height=112, width=176, fps=4, seed=3, cut_at=8), path))


@pytest.mark.parametrize("arch", ["llava_video", "qwen2_5_vl", "qwen3_5"])
def test_model_class_hands_frame_query_scores_to_fastvid(arch, tiny_checkpoints, clip, tmp_path, monkeypatch):
    """FastVID's run encodes the video with the ``frame_query`` hook and its plan is FastVID's on those
    scores, another than the stand-in's; the answer records the saliency it used."""
    from lmms_sttm.models.qwen3_5_sttm import Qwen35Sttm
    from tests.models.test_model_layer import CLASSES, _run

    classes = {**CLASSES, "qwen3_5": Qwen35Sttm}
    kinds = []
    original = va.recorder

    def recording(model, family, kind="received"):
        kinds.append(kind)
        return original(model, family, kind)

    monkeypatch.setattr(va, "recorder", recording)
    m = classes[arch](pretrained=tiny_checkpoints(arch), method="fastvid", budget=30, stats_dir=str(tmp_path))
    assert m.vision_attention is True
    _run(m, {0: clip})
    engine_plan = m.engine.last_reduction.plan
    video, _, _ = m.encode(clip, "probe_sttm")
    assert kinds and set(kinds) == {"frame_query"}
    reducer = m.method_for("probe_sttm").prefill.reduce
    direct = reducer(video.features.float(), video.grid, video.vision_scores)
    stand_in = reducer(video.features.float(), video.grid, None)
    assert torch.equal(engine_plan.token_map.cpu(), direct.token_map.cpu())  # the run used these scores
    assert not torch.equal(direct.rep_index, stand_in.rep_index)  # and they change the kept set
    (record,) = m.stats.records
    assert record["params"]["saliency"] == "vision_frame_query" and record["vision_ms"] > 0


def test_without_vision_scores_fastvid_states_its_stand_in():
    from lmms_sttm.methods import registry
    from lmms_sttm.methods.bind import bind, method_settings
    from lmms_sttm.methods.spec import BuildContext

    spec = registry.get("fastvid")
    assert spec.vision_score == "frame_query" and spec.reads_vision_attention
    for scores, said in ((True, "vision_frame_query"), (False, "stand_in_frame_mean_dot")):
        ctx = BuildContext("qwen", "qwen2_vl_7b", "t", 0, 2, budget=30, vision_attention=scores)
        assert bind(spec, method_settings(spec, {}), ctx).params["saliency"] == said
