"""A small VNBench-format benchmark on synthetic clips with real needles, for the demo.

Each clip carries one solid-colour needle frame; its item asks for the needle's colour in four
"tries" with rotated option orders, exactly as VNBench's main set does (options ``"A. text."``,
``question_id = <videoID>_try<n>``). Written in the data-root layout the ``vnbench_sttm`` task
reads: ``<root>/vnbench/annotations/VNBench-main-4try_v2.json`` and ``<root>/vnbench/videos/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lmms_sttm.data.synthetic import NEEDLE_COLOURS, ClipSpec, ensure_clip

ANNOTATION = "VNBench-main-4try_v2.json"


def demo_items(num_videos: int = 6) -> list[tuple[str, ClipSpec, list[str]]]:
    """``(videoID, clip spec, 4 option colours with the answer first)`` per video."""
    colours = sorted(NEEDLE_COLOURS)
    items = []
    for v in range(num_videos):
        rng = np.random.default_rng(2000 + v)
        n = int(rng.integers(24, 49))
        spec = ClipSpec(
            num_frames=n, height=112, width=112, fps=8.0, seed=100 + v,
            cut_at=n // 2 if v % 3 == 2 else None, needle_at=int(rng.integers(2, n - 2)),
            needle_colour=colours[v % len(colours)],
        )  # fmt: skip
        others = [c for c in colours if c != spec.needle_colour]
        items.append(
            (f"demo{v:02d}_ret_insert1", spec, [spec.needle_colour, *rng.choice(others, 3, replace=False)])
        )
    return items


def demo_records(num_videos: int = 6) -> list[dict]:
    """The annotation records (STTM's reformatted VNBench schema), 4 tries per video."""
    records = []
    for vid, spec, options in demo_items(num_videos):
        seconds = spec.num_frames / spec.fps
        for t in range(4):
            order = options[-t:] + options[:-t] if t else list(options)  # the answer moves A, B, C, D
            records.append(
                {
                    "question": "What colour is the solid-coloured frame inserted into the video?",
                    "options": [f"{letter}. {text}." for letter, text in zip("ABCD", order, strict=True)],
                    "needle_time": [int(spec.needle_at / spec.fps)],
                    "answer": "ABCD"[order.index(spec.needle_colour)],
                    "length": seconds,
                    "task_type": "ret_insert1",
                    "try": t,
                    "videoID": vid,
                    "question_id": f"{vid}_try{t}",
                    "video_second": seconds,
                    "duration": "short",
                }
            )
    return records


def write_demo_vnbench(root: str | Path, num_videos: int = 6) -> Path:
    """Write the annotation file and the clips under ``root``; returns the annotation path."""
    root = Path(root)
    ann = root / "vnbench" / "annotations" / ANNOTATION
    ann.parent.mkdir(parents=True, exist_ok=True)
    for vid, spec, _ in demo_items(num_videos):
        ensure_clip(spec, root / "vnbench" / "videos" / f"{vid}.mp4")
    ann.write_text(json.dumps(demo_records(num_videos), indent=1))
    (root / "vnbench" / "clips.json").write_text(
        json.dumps({vid: asdict(spec) for vid, spec, _ in demo_items(num_videos)}, indent=1)
    )
    return ann
