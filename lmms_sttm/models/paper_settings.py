"""The STTM paper's protocol: frame protocol and merge layer per model (thresholds: ``methods/sttm_thresholds``).

Source: the STTM authors' evaluation scripts at commit 00736c7 (``scripts/eval/run_vidqa.sh``).
"""

from __future__ import annotations

from lmms_sttm.methods.sttm_thresholds import BENCHMARKS, THRESHOLDS, benchmark_of, paper_thresholds

__all__ = [
    "BENCHMARKS",
    "FRAMES",
    "MERGE_LAYER",
    "THRESHOLDS",
    "benchmark_of",
    "frame_protocol",
    "paper_thresholds",
]

#: decoder layer whose input STTM merges: "before the third layer" for 7B, before layer 0 for 72B
MERGE_LAYER = {
    "llava_video_7b": 2,
    "llava_onevision_7b": 2,
    "qwen2_vl_7b": 2,
    "qwen2_5_vl_7b": 2,
    "llava_video_72b": 0,
    # not in the paper: Qwen3-VL merges after its DeepStack layers (0-2), InternVL3.5 as the 7B models
    "qwen3_vl_8b": 3,
    "internvl3_5_8b": 2,
    # not in the paper: Qwen3.5 (no DeepStack) before the third layer, as the 7B models; on the
    # hybrids layer 2 is a Gated DeltaNet layer whose recurrent state has seen every video token
    "qwen3_5": 2,
}

#: the paper's frame protocol per model family: (target fps, frame cap, frame cap on VNBench)
FRAMES = {"llava": (1.0, 128, 180), "qwen": (2.0, 256, 360)}


def frame_protocol(family: str | tuple[float, int, int], task: str) -> tuple[float, int]:
    """``(target_fps, max_frames)`` of a family's protocol (a key of :data:`FRAMES` or its
    ``(fps, cap, cap on VNBench)``) on a task."""
    fps, cap, cap_vnbench = FRAMES[family] if isinstance(family, str) else family
    return fps, cap_vnbench if benchmark_of(task) == "vnbench" else cap
