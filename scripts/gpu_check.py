"""One-shot GPU check: real-size LLaVA-Video-7B and Qwen2-VL-7B architectures with random weights.

Builds each architecture from the configs shipped in ``lmms_sttm/data/configs`` (nothing is
downloaded) on the GPU in bf16, feeds one video-sized input per paper protocol through the
package's own path (``encode_llava`` / ``encode_qwen`` for the vision tower,
``SttmVideoModel.prefix_inputs`` for the prefix, the reduction engine's ``prefill`` and
``answer``), and prints one JSON object. Per model, frame count and attention implementation
(sdpa, and flash-attention 2 when ``flash_attn`` imports):

- ``vision_ms``: vision tower + projector on the frames;
- ``unreduced.prefill_ms`` vs STTM at exact 50% and 30% retention (``budget_mode=exact``):
  ``merge_ms`` (the threshold search and the merge, part of the prefill), ``prefill_ms``,
  ``r_ttft`` (reduced / unreduced time to first token, vision excluded as in the paper), the
  FLOP model's prediction for the same token counts (:mod:`lmms_sttm.engine.flops`), and the
  paper's R.TTFT where it reports one (LLaVA-Video-7B: 48.4% at 50%, 33.1% at 30%);
- ``second_question_ms``: time to first token of a 24-token question answered from the reused
  (reduced) prefix, and its share of the unreduced prefill;
- ``peak_memory_gib`` per run (CUDA only).

Times are medians over ``--repeats`` runs after one untimed run. Inputs: LLaVA 128 and 180 frames
(Video-MME / VNBench caps; 196 tokens per frame), Qwen2-VL 256 frames of 360x640 resized to its
pixel budget (qwen-vl-utils' video budget, as ``models/video_inputs.py`` applies it).

    .venv/bin/python scripts/gpu_check.py            # one H100-class GPU, under 8 minutes
    .venv/bin/python scripts/gpu_check.py --tiny     # CPU, seconds: the same path at toy sizes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

from lmms_sttm.data import configs
from lmms_sttm.engine import answer, apply_reduction, prefill
from lmms_sttm.engine.flops import DecoderDims, reduced_prefill_ratio
from lmms_sttm.methods import registry
from lmms_sttm.methods.bind import bind, method_settings
from lmms_sttm.methods.spec import BuildContext
from lmms_sttm.models.base import SttmVideoModel
from lmms_sttm.models.families import MODEL_FAMILIES
from lmms_sttm.models.paper_settings import MERGE_LAYER
from lmms_sttm.models.placement import flash_attn_problem
from lmms_sttm.models.video_inputs import encode_llava, encode_qwen

PAPER_R_TTFT = {"llava_video_7b": {0.5: 48.4, 0.3: 33.1}}  # percent, STTM at 50% / 30% (paper Table)
RETENTIONS = (0.5, 0.3)
SYSTEM_TOKENS, INSTRUCTION_TOKENS, QUESTION_TOKENS = 20, 12, 24


class PrefixBuilder:
    """``SttmVideoModel.prefix_inputs`` around a bare model: the prompt's ids are given, not tokenized."""

    prefix_inputs = SttmVideoModel.prefix_inputs
    _with_positions = SttmVideoModel._with_positions

    def __init__(self, model, engine, family: str, ids: torch.Tensor) -> None:
        self._model, self.engine, self.family, self._ids_given = model, engine, family, ids
        self.protocol = MODEL_FAMILIES[family]
        self._device = next(model.parameters()).device
        self.settings = SimpleNamespace(rope_index="original")

    def _ids(self, text: str) -> torch.Tensor:
        return self._ids_given


# architectures --------------------------------------------------------------------------------
def llava_config(tiny: bool):
    """``LlavaOnevisionConfig`` of LLaVA-Video-7B-Qwen2 via the LLaVA-NeXT converter (tiny: toy widths)."""
    from lmms_sttm.models.llava_next import llava_next_hf_config

    raw = configs.load("llava_video_7b_qwen2")
    stored = raw.pop("stored_vision_layers")
    if tiny:
        from lmms_sttm.data.tiny_common import VISION_HIDDEN
        from lmms_sttm.data.tiny_llava import TOWER_LAYERS_FULL, tower_config

        raw.update(_tiny_text())
        raw.update(mm_vision_tower_config=tower_config(TOWER_LAYERS_FULL), mm_hidden_size=VISION_HIDDEN)
        stored = TOWER_LAYERS_FULL - 1
    return llava_next_hf_config(raw, stored, raw["image_token_index"], raw["video_token_index"])


def qwen_config(tiny: bool):
    from transformers import Qwen2VLConfig

    raw = configs.load("qwen2_vl_7b_instruct")
    if tiny:
        from lmms_sttm.data.tiny_qwen import MROPE_SECTION, _vision_config

        raw.update(_tiny_text(), vision_config=_vision_config("qwen2_vl"))
        raw["rope_scaling"] = {"type": "mrope", "mrope_section": MROPE_SECTION}
    return Qwen2VLConfig(**raw)


def _tiny_text() -> dict:
    """The tiny checkpoints' decoder widths (``tiny_common``), the real vocabulary kept."""
    from lmms_sttm.data.tiny_common import qwen2_text_kwargs

    keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
    )
    return {k: v for k, v in qwen2_text_kwargs(0, 0, 0).items() if k in keys}


def llava_video_processor(config):
    from transformers import LlavaOnevisionVideoProcessor

    size = config.vision_config.image_size
    return LlavaOnevisionVideoProcessor(
        size={"height": size, "width": size}, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )


def qwen_video_processor(config):
    from transformers import Qwen2VLVideoProcessor

    vc = config.vision_config
    return Qwen2VLVideoProcessor(
        patch_size=vc.patch_size, merge_size=vc.spatial_merge_size, temporal_patch_size=vc.temporal_patch_size
    )


def cases(tiny: bool) -> list[dict]:
    """Per model: config, class, processor, paper key, frame counts and source frame size."""
    from transformers import LlavaOnevisionForConditionalGeneration, Qwen2VLForConditionalGeneration

    return [
        {
            "name": "llava_video_7b",
            "family": "llava",
            "config": llava_config(tiny),
            "cls": LlavaOnevisionForConditionalGeneration,
            "processor": llava_video_processor,
            "task": {128: "videomme_sttm", 180: "vnbench_sttm", 8: "videomme_sttm", 12: "vnbench_sttm"},
            "frames": (8, 12) if tiny else (128, 180),
            "size": (104, 104) if tiny else (384, 384),
        },
        {
            "name": "qwen2_vl_7b",
            "family": "qwen",
            "config": qwen_config(tiny),
            "cls": Qwen2VLForConditionalGeneration,
            "processor": qwen_video_processor,
            "task": {256: "videomme_sttm", 8: "videomme_sttm"},
            "frames": (8,) if tiny else (256,),
            "size": (112, 176) if tiny else (360, 640),
        },
    ]


def build(case: dict, device: torch.device, dtype: torch.dtype, attn: str):
    """Random-weight model built in place on ``device`` (transformers' own initialisation)."""
    torch.manual_seed(0)
    with torch.device(device):
        model = case["cls"]._from_config(case["config"], dtype=dtype, attn_implementation=attn)
    return model.eval()


# measurements ---------------------------------------------------------------------------------
def prompt_ids(config, family: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prefix ids with one video placeholder, question ids)``: random text ids around the video."""
    gen = torch.Generator().manual_seed(seed)
    text = lambda n: torch.randint(1000, 100000, (n,), generator=gen)  # noqa: E731 - ordinary words
    if family == "qwen":
        video = [config.vision_start_token_id, config.video_token_id, config.vision_end_token_id]
    else:
        video = [config.video_token_index]
    ids = torch.cat([text(SYSTEM_TOKENS), torch.tensor(video), text(INSTRUCTION_TOKENS)])
    return ids, text(QUESTION_TOKENS)


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def median_of(runs: int, fn):
    """``fn()`` once untimed, then ``runs`` times: the list of results (the caller takes medians)."""
    fn()
    return [fn() for _ in range(runs)]


def measure(case: dict, model, frames: int, repeats: int) -> dict:
    """One model, one frame count, one attention implementation: the JSON row."""
    device = next(model.parameters()).device
    config, family = case["config"], case["family"]
    paper_key = case["name"]
    layer = MERGE_LAYER[paper_key]
    h, w = case["size"]
    pixels = np.random.default_rng(frames).integers(0, 256, size=(frames, h, w, 3), dtype=np.uint8)
    processor = SimpleNamespace(video_processor=case["processor"](config))

    def vision():
        if family == "qwen":
            return encode_qwen(model, processor, pixels, fps=2.0)
        return encode_llava(model, processor, pixels, "no_token")

    peak_reset(device)
    videos = median_of(repeats, vision)
    video = videos[-1]
    row = {
        "frames": frames,
        "frame_size": [h, w],
        "visual_tokens": video.num_placeholders,
        "grid": list(video.grid),
        "vision_ms": round(1000 * statistics.median(v.vision_s for v in videos), 2),
        "vision_peak_memory_gib": peak_gib(device),
    }
    del videos
    engine = apply_reduction(model, layer=layer)
    try:
        prefix_ids, question = prompt_ids(config, family)
        inputs, _ = PrefixBuilder(model, engine, family, prefix_ids).prefix_inputs("", video)
        row["prefix_tokens"] = int(inputs["input_ids"].shape[1])
        peak_reset(device)
        full = statistics.median(p.prefill_s for p in median_of(repeats, lambda: prefill(engine, inputs)))
        row["unreduced"] = {"prefill_ms": round(1000 * full, 2), "peak_memory_gib": peak_gib(device)}
        dims = DecoderDims.of(config.get_text_config())
        sttm = registry.get("sttm")
        for r in RETENTIONS:
            ctx = BuildContext(family, paper_key, case["task"][frames], layer, dims.layers, None, "exact", r)
            reducer = bind(sttm, method_settings(sttm, {}), ctx).prefill
            peak_reset(device)
            runs = median_of(repeats, lambda reducer=reducer: prefill(engine, inputs, reducer, video.grid))
            prefix = runs[-1]
            seconds = statistics.median(p.prefill_s for p in runs)
            merge = statistics.median(p.reduction_s for p in runs)
            del runs
            asks = median_of(
                repeats, lambda prefix=prefix: answer(engine, prefix, question, max_new_tokens=1)
            )
            second = statistics.median(a.stats.prefill_s for a in asks)
            flops = reduced_prefill_ratio(dims, row["prefix_tokens"], prefix.reduced_length, layer)
            row[f"sttm_{round(100 * r)}"] = {
                "visual_tokens_kept": prefix.visual_tokens_kept,
                "retained_pct": round(100 * prefix.visual_tokens_kept / prefix.visual_tokens, 2),
                "prefix_tokens_reduced": prefix.reduced_length,
                "merge_ms": round(1000 * merge, 2),
                "prefill_ms": round(1000 * seconds, 2),
                "r_ttft_pct": round(100 * seconds / full, 2),
                "flop_model_pct": round(100 * flops["predicted_ratio"], 2),
                "paper_r_ttft_pct": PAPER_R_TTFT.get(paper_key, {}).get(r),
                "second_question_ms": round(1000 * second, 2),
                "second_question_pct_of_unreduced": round(100 * second / full, 2),
                "peak_memory_gib": peak_gib(device),
            }
            del prefix, asks
    finally:
        engine.remove()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="toy widths and frame counts (CPU, for the tests)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (3; --tiny 1)")
    parser.add_argument("--models", default="llava_video_7b,qwen2_vl_7b")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.tiny else 3)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if device.type != "cuda" and not args.tiny:
        print("gpu_check: no CUDA device; the real-size check needs one (use --tiny on CPU)", file=sys.stderr)
        return 2
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    attns = ["sdpa"] + (
        ["flash_attention_2"] if device.type == "cuda" and flash_attn_problem() is None else []
    )
    began = time.perf_counter()
    out = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "tiny": args.tiny,
        "repeats": repeats,
        "attention": attns,
        "flash_attn": flash_attn_problem() or "importable",
        "models": {},
    }
    wanted = args.models.split(",")
    for case in cases(args.tiny):
        if case["name"] not in wanted:
            continue
        rows = []
        built = time.perf_counter()
        model = build(case, device, dtype, attns[0])
        build_s = round(time.perf_counter() - built, 1)
        for attn in attns:
            model.set_attn_implementation(attn)  # the same weights under each implementation
            for frames in case["frames"]:
                rows.append({"attention": attn, **measure(case, model, frames, repeats)})
        del model
        peak_reset(device)
        layer = MERGE_LAYER[case["name"]]
        out["models"][case["name"]] = {"merge_layer": layer, "build_s": build_s, "runs": rows}
    out["total_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
