"""Deterministic tiny random-weight checkpoints for offline tests and demos.

    python -m lmms_sttm.data.tiny --arch ARCH --out DIR

Every checkpoint has a tokenizer trained on the spot and random weights from a fixed seed, so
building twice gives byte-identical ``model.safetensors``. Nothing is downloaded.

| arch              | format                                    | video tokens, F frames                        |
|-------------------|-------------------------------------------|-----------------------------------------------|
| ``llava_video``   | LLaVA-NeXT (lmms-lab/LLaVA-Video-7B-Qwen2) | F*7*7 (+1 newline in HF LlavaOnevision), 104 px |
| ``llava_onevision`` | HF (llava-hf/llava-onevision-qwen2-7b-ov-hf) | F*7*7 + 1, frames resized to 104x104        |
| ``qwen2_vl``      | HF (Qwen/Qwen2-VL-7B-Instruct)             | F/2*7*11 for 112x176 frames                   |
| ``qwen2_5_vl``    | HF (Qwen/Qwen2.5-VL-7B-Instruct)           | F/2*7*11 for 112x176 frames                   |
| ``qwen3_vl``      | HF (Qwen/Qwen3-VL-8B-Instruct)             | F/2 blocks of 7*11 for 112x176 frames (a)     |
| ``qwen3_vl_moe``  | HF (Qwen/Qwen3-VL-30B-A3B-Instruct)        | F/2 blocks of 7*11 for 112x176 frames (a)     |
| ``qwen3_5``       | HF (Qwen/Qwen3.5-4B)                       | F/2 blocks of 7*11 for 112x176 frames (c)     |
| ``qwen3_5_moe``   | HF (Qwen/Qwen3.5-35B-A3B)                  | F/2 blocks of 7*11 for 112x176 frames (c)     |
| ``internvl3_5``   | HF (OpenGVLab/InternVL3_5-8B-HF)           | F blocks of 7*7, frames resized to 112x112 (b) |

The first four share a Qwen2 decoder of hidden 64, 4 layers, 4 heads, 2 key/value heads; the
last three a Qwen3 decoder (q/k norms) of hidden 64, 6 layers, 4 heads, 2 key/value heads.

(a) Each temporal patch (2 frames) is its own block ``<{t:.1f} seconds><|vision_start|>`` + 77
video tokens + ``<|vision_end|>``, t from the video metadata; DeepStack adds vision-tower
features after LLM layers 0, 1, 2; the MoE text model has 4 experts, top-2
(:mod:`lmms_sttm.data.tiny_qwen3`).
(b) Each frame is ``Frame{i}: <img>`` + 49 ``<IMG_CONTEXT>`` + ``</img>``, lines joined by a
newline; 1-D RoPE (:mod:`lmms_sttm.data.tiny_internvl`).
(c) Qwen3-VL's processor and blocks, no DeepStack; a hybrid decoder of 8 layers, Gated DeltaNet
(linear attention) except layers 3 and 7 (full attention); the chat template's ``enable_thinking``
switch (:mod:`lmms_sttm.data.tiny_qwen3_5`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ARCHS = (
    "llava_video",
    "llava_onevision",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "qwen3_vl_moe",
    "qwen3_5",
    "qwen3_5_moe",
    "internvl3_5",
)


def _builder(arch: str) -> Callable[[Path], Path]:
    if arch == "llava_video":
        from lmms_sttm.data.tiny_llava import build_llava_video

        return build_llava_video
    if arch == "llava_onevision":
        from lmms_sttm.data.tiny_llava import build_llava_onevision

        return build_llava_onevision
    if arch in ("qwen2_vl", "qwen2_5_vl"):
        from lmms_sttm.data.tiny_qwen import build_qwen_vl

        return lambda out_dir: build_qwen_vl(arch, out_dir)
    if arch in ("qwen3_vl", "qwen3_vl_moe"):
        from lmms_sttm.data.tiny_qwen3 import build_qwen3_vl

        return lambda out_dir: build_qwen3_vl(arch, out_dir)
    if arch in ("qwen3_5", "qwen3_5_moe"):
        from lmms_sttm.data.tiny_qwen3_5 import build_qwen3_5

        return lambda out_dir: build_qwen3_5(arch, out_dir)
    if arch == "internvl3_5":
        from lmms_sttm.data.tiny_internvl import build_internvl3_5

        return build_internvl3_5
    raise ValueError(f"unknown tiny checkpoint arch {arch!r}; expected one of {', '.join(ARCHS)}")


def build_tiny(arch: str, out_dir: str | Path) -> Path:
    """Build the tiny ``arch`` checkpoint into ``out_dir`` (created; must be empty if it exists)."""
    build = _builder(arch)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output path {out} exists and is not an empty directory")
    return build(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmms_sttm.data.tiny", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True, choices=ARCHS)
    parser.add_argument("--out", required=True, type=Path, help="output directory (new or empty)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = build_tiny(args.arch, args.out)
    print(f"built tiny {args.arch} checkpoint in {out} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
