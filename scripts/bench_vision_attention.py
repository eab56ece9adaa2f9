"""Cost of the vision-attention scores (FlashVID's / HoliTom's vision-side input, ``--kind received``;
FastVID's saliency, ``--kind frame_query``) next to the vision tower they are read from; prints one
JSON line per family.

Random-weight towers with the released 7B models' vision geometry (SigLIP of LLaVA-OneVision /
LLaVA-Video: 26 layers, width 1152, 16 heads, 384 px / 14 -> 729 tokens a frame; Qwen2.5-VL's
ViT: 32 blocks, width 1280, 16 heads, window attention, 448 x 448 frames -> 1024 patches per
temporal patch), sdpa attention. Each line: the tower's forward alone and the forward with the
scoring hook plus the mapping to the LLM's grid (``models/vision_attention.py``), median
milliseconds over the repeats, and the overhead in percent. In the model classes both count as
``vision_ms``.

Usage: ``.venv/bin/python scripts/bench_vision_attention.py [--frames F] [--layers L] [--repeats R]
[--device cpu|cuda] [--dtype float32|bfloat16] [--kind received|frame_query]`` (``--layers`` shortens the towers for a quick run;
the hook's cost does not depend on it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from types import SimpleNamespace

import torch

from lmms_sttm.models import vision_attention as va


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        began = time.perf_counter()
        fn()
        _sync(device)
        times.append(1000 * (time.perf_counter() - began))
    return statistics.median(times)


def siglip_case(frames: int, layers: int, dtype, device: str, kind: str = "received"):
    from transformers import SiglipVisionConfig, SiglipVisionModel
    from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionModel

    vc = SiglipVisionConfig(
        hidden_size=1152, intermediate_size=4304, num_attention_heads=16, num_hidden_layers=layers,
        image_size=384, patch_size=14, vision_use_head=False, attn_implementation="sdpa",
    )  # fmt: skip
    tower = SiglipVisionModel(vc).to(device, dtype).eval()
    config = SimpleNamespace(vision_feature_layer=-1, vision_feature_select_strategy="full", vision_config=vc)
    inner = SimpleNamespace(vision_tower=tower, config=config)
    inner.apply_pooling = lambda x: LlavaOnevisionModel.apply_pooling(inner, x)
    model = SimpleNamespace(model=inner, config=config)
    pixels = torch.randn(frames, 3, 384, 384, device=device, dtype=dtype)

    def plain():
        with torch.no_grad():
            tower(pixels)

    def scored():
        with va.recorder(model, "llava", kind) as hook, torch.no_grad():
            tower(pixels)
        return va.llava_grid_scores(model, hook.scores)

    return plain, scored, {"tokens_per_frame": 729, "grid": [frames, 14, 14]}


def qwen25_case(frames: int, layers: int, dtype, device: str, kind: str = "received"):
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    full = [i for i in (7, 15, 23, 31) if i < layers] or [layers - 1]
    vc = Qwen2_5_VLVisionConfig(
        depth=layers, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
        patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
        fullatt_block_indexes=full,
    )  # fmt: skip
    vc._attn_implementation = "sdpa"
    visual = Qwen2_5_VisionTransformerPretrainedModel._from_config(vc).to(device, dtype).eval()
    model = SimpleNamespace(model=SimpleNamespace(visual=visual))
    t = max(1, frames // 2)
    thw = torch.tensor([[t, 32, 32]], device=device)
    patches = torch.randn(t * 32 * 32, 3 * 2 * 14 * 14, device=device, dtype=dtype)

    def plain():
        with torch.no_grad():
            visual(patches, grid_thw=thw)

    def scored():
        with va.recorder(model, "qwen", kind) as hook, torch.no_grad():
            visual(patches, grid_thw=thw)
        return va.qwen_grid_scores(model, hook.scores, thw)

    return plain, scored, {"tokens_per_frame": 1024, "grid": [t, 16, 16], "fullatt_blocks": full}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--layers", type=int, default=0, help="0: the released depth (26 / 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--kind", default="received", choices=list(va.KINDS), help="the score computed")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    for name, case, depth in (("llava_siglip", siglip_case, 26), ("qwen2_5_vl_vit", qwen25_case, 32)):
        layers = args.layers or depth
        plain, scored, facts = case(args.frames, layers, dtype, args.device, args.kind)
        plain(), scored()  # warm-up
        base = _median_ms(plain, args.repeats, args.device)
        hooked = _median_ms(scored, args.repeats, args.device)
        line = {
            "tower": name, "frames": args.frames, "layers": layers, "device": args.device,
            "dtype": args.dtype, "kind": args.kind, "threads": torch.get_num_threads(), **facts,
            "tower_ms": round(base, 2), "tower_with_scores_ms": round(hooked, 2),
            "overhead_pct": round(100 * (hooked - base) / base, 2), "repeats": args.repeats,
            "load_avg_1min": round(os.getloadavg()[0], 2),
        }  # fmt: skip
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
