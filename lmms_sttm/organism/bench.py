"""The organism's held-out benchmark in the VNBench format (read by ``vnbench_sttm``).

``per_family`` videos of each family (:data:`~lmms_sttm.organism.clips.FAMILIES`), 4 tries each
with the options rotated so that the answer is A, B, C, then D (as VNBench's main set), written
under ``<root>/vnbench/annotations/VNBench-main-4try_v2.json`` and ``<root>/vnbench/videos/``.
Video ``i`` of a family is the same clip whatever ``per_family`` is (a smaller set is a prefix of a
larger one). Clips are drawn from generators disjoint from training's (:data:`HELD_OUT_KEY`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lmms_sttm.data.synthetic import DETERMINISTIC_X264, write_frames
from lmms_sttm.organism.clips import (
    FAMILIES,
    FPS,
    NUM_FRAMES,
    QUESTIONS,
    Clip,
    Question,
    option_texts,
    render,
    rotations,
    sample_clip,
)

ANNOTATION = "VNBench-main-4try_v2.json"
HELD_OUT_KEY = 7_000_000  # training draws from default_rng([seed, step]); these from ([KEY, family, i])


def held_out(per_family: int) -> list[tuple[str, Clip, Question]]:
    """``(videoID, clip, question)`` of the first ``per_family`` videos of each family."""
    items = []
    for f, family in enumerate(FAMILIES):
        for i in range(per_family):
            clip, question = sample_clip(np.random.default_rng([HELD_OUT_KEY, f, i]), family)
            items.append((f"org_{family}_{i:03d}", clip, question))
    return items


def records(items: list[tuple[str, Clip, Question]]) -> list[dict]:
    """The annotation records (STTM's reformatted VNBench schema), 4 tries per video."""
    out = []
    seconds = NUM_FRAMES / FPS
    for vid, clip, question in items:
        for t, order in enumerate(rotations(question)):
            out.append(
                {
                    "question": QUESTIONS[question.family],
                    "options": option_texts(order),
                    "needle_time": [int(frame / FPS) for frame, _ in clip.needles],
                    "answer": "ABCD"[order.index(question.answer)],
                    "length": seconds,
                    "task_type": question.family,
                    "try": t,
                    "videoID": vid,
                    "question_id": f"{vid}_try{t}",
                    "video_second": seconds,
                    "duration": "short",
                }
            )
    return out


def write_benchmark(root: str | Path, per_family: int) -> Path:
    """Write the annotation file and the clips (reused when present) under ``root``; returns the file."""
    root = Path(root)
    videos = root / "vnbench" / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    items = held_out(per_family)
    for vid, clip, _ in items:
        path = videos / f"{vid}.mp4"
        meta = path.with_suffix(".json")
        want = json.dumps(
            {
                "seed": clip.seed,
                "needles": clip.needles,
                "cuts": clip.cuts,
                "frames": clip.num_frames,
                "x264": DETERMINISTIC_X264,
            }  # fmt: skip
        )
        if not (path.exists() and meta.exists() and meta.read_text() == want):
            write_frames(render(clip), path, FPS, DETERMINISTIC_X264)
            meta.write_text(want)
    ann = root / "vnbench" / "annotations" / ANNOTATION
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(records(items), indent=1))
    return ann
