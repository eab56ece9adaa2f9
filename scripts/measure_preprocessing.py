"""Measure the preprocessing differences that remain against other pipelines; prints one JSON line per case.

- Qwen2-VL frames: this package (and the STTM authors' qwen-vl-utils) resizes the uint8 frames
  (torchvision bicubic, antialiased; rounded back to uint8); a float pipeline resizes float
  frames (no rounding, no clamping).
- LLaVA frames: transformers' video processor (torchvision bicubic, antialiased) against PIL bicubic
  (the LLaVA-NeXT SigLIP image processor the authors ran).

Per synthetic clip: the largest pixel difference (0-255 scale) of the resized frames, and on the
tiny random checkpoints whether STTM's merge decisions (the token map) or the first-token logits
after a reduced prefill change.

Usage: ``python scripts/measure_preprocessing.py [--clips 4]`` (CPU, about a minute).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import InterpolationMode, resize

from lmms_sttm.data.synthetic import ClipSpec, render_frames
from lmms_sttm.data.tiny import build_tiny
from lmms_sttm.engine import session
from lmms_sttm.merging.sttm import SttmReducer
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm
from lmms_sttm.models.video_inputs import _qwen_inputs, llava_from_tower, qwen_frame_size

TAUS = ((0.9, 0.8), (0.8, 0.5))


def _prefill(model, video, tau_s: float, tau_t: float):
    """``(token_map, first-token logits [V])`` of a reduced prefill of ``[system, video, "Q?"]``."""
    prompt = model.prompt("Q?", None)
    inputs, _ = model.prefix_inputs(prompt.prefix + prompt.question, video)
    prefix = session.prefill(model.engine, inputs, SttmReducer(tau_s, tau_t), video.grid)
    return model.engine.last_reduction.plan.token_map, prefix.last_logits[0].float()


def _compare(model, videos, case: dict) -> None:
    for tau_s, tau_t in TAUS:
        (map_a, log_a), (map_b, log_b) = (_prefill(model, v, tau_s, tau_t) for v in videos)
        line = {
            **case,
            "tau_s": tau_s,
            "tau_t": tau_t,
            "same_token_map": bool(torch.equal(map_a, map_b)),
            "tokens": [int(map_a.max()) + 1, int(map_b.max()) + 1],
            "max_abs_logit_diff": round(float((log_a - log_b).abs().max()), 6),
            "same_argmax": int(log_a.argmax()) == int(log_b.argmax()),
        }
        print(json.dumps(line), flush=True)


@torch.no_grad()
def qwen_case(model, frames: np.ndarray, seed: int) -> None:
    vp = model.processor.video_processor
    h, w = qwen_frame_size(frames.shape[1], frames.shape[2], frames.shape[0], vp.patch_size * vp.merge_size)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    as_uint8 = resize(video, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    as_float = resize(video.float(), [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    diff = float((as_uint8.float() - as_float).abs().max())
    videos = []
    for pixels in (as_uint8, as_float):
        enc = vp(videos=[pixels], do_resize=False, do_sample_frames=False, return_tensors="pt")
        out = model.model.model.get_video_features(
            enc["pixel_values_videos"].to(model.model.dtype), enc["video_grid_thw"], return_dict=True
        )
        feats = torch.cat(list(out.pooler_output), 0)
        t, gh, gw = (int(v) for v in enc["video_grid_thw"][0])
        videos.append(_qwen_inputs(model.model, model.processor, feats, (t, gh, gw), 2.0, 0.0))
    _compare(
        model,
        videos,
        {"model": "qwen2_vl", "case": "uint8 vs float resize", "seed": seed, "max_pixel_diff": diff},
    )


@torch.no_grad()
def llava_case(model, frames: np.ndarray, seed: int) -> None:
    vp = model.processor.video_processor
    side = model.model.config.vision_config.image_size
    ours = vp(videos=[frames], do_rescale=False, do_normalize=False, return_tensors="pt")[
        "pixel_values_videos"
    ][0]
    pil = np.stack(
        [np.asarray(Image.fromarray(f).resize((side, side), Image.BICUBIC)) for f in frames]
    )  # [F, S, S, 3] uint8
    pil = torch.from_numpy(pil).permute(0, 3, 1, 2).float()
    diff = float((ours.float() - pil).abs().max())
    mean = torch.tensor(vp.image_mean)[:, None, None]
    std = torch.tensor(vp.image_std)[:, None, None]
    videos = []
    for pixels in (ours.float(), pil):
        normed = ((pixels * vp.rescale_factor - mean) / std)[None].to(model.model.dtype)
        layer = model.model.config.vision_feature_layer
        out = model.model.model.get_video_features(
            normed,
            vision_feature_layer=layer,
            vision_feature_select_strategy=model.model.config.vision_feature_select_strategy,
            output_hidden_states=True,
            return_dict=True,
        )
        tower = out.hidden_states[layer]
        if model.model.config.vision_feature_select_strategy == "default":
            tower = tower[:, 1:]
        videos.append(llava_from_tower(model.model, tower, "no_token"))
    _compare(
        model,
        videos,
        {"model": "llava_video", "case": "torchvision vs PIL bicubic", "seed": seed, "max_pixel_diff": diff},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        qwen = Qwen2VLSttm(pretrained=str(build_tiny("qwen2_vl", Path(tmp) / "q")), tau_s=0.9, tau_t=0.8)
        llava = LlavaVideoSttm(
            pretrained=str(build_tiny("llava_video", Path(tmp) / "l")), tau_s=0.9, tau_t=0.8
        )
        for seed in range(args.clips):
            frames = render_frames(
                ClipSpec(num_frames=16, height=112, width=176, fps=4, seed=seed, needle_at=5)
            )
            qwen_case(qwen, frames, seed)
            llava_case(llava, frames, seed)


if __name__ == "__main__":
    main()
