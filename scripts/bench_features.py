"""How much faster is a sweep of N settings from stored features than from the videos? (tiny setup)

Builds a tiny checkpoint and synthetic clips, then times, in-process, the same lmms-eval
``generate_until`` calls twice: every setting from the videos (decode + sample + vision tower per
video and setting) and every setting from features (one extraction, then only projector/pooling
+ LLM per setting). Checks that both arms give the same answers and kept-token counts, and prints
one JSON object. The tiny LLM is cheap, so the ratio is an upper bound on what decoding and the
vision tower cost relative to the rest; on 7B models the LLM prefill weighs more.

Usage: ``.venv/bin/python scripts/bench_features.py [--arch llava_video] [--videos 8] [--frames 64]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lmms_eval.api.instance import GenerationResult, Instance

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.data.tiny import build_tiny

TASK = "bench_sttm"
SETTINGS = [
    {"method": "none"},
    {"tau_s": 0.9, "tau_t": 0.8},
    {"tau_s": 0.8, "tau_t": 0.6},
    {"method": "tome", "budget": 50},
    {"method": "tome", "budget": 30},
    {"method": "fastv", "budget": 50},
    {"method": "fastv", "budget": 30},
    {"method": "pool", "budget": 50},
]


def _classes():
    from lmms_sttm.models.llava_onevision_sttm import LlavaOnevisionSttm
    from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
    from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm, Qwen25VLSttm

    return {
        "llava_video": LlavaVideoSttm,
        "llava_onevision": LlavaOnevisionSttm,
        "qwen2_vl": Qwen2VLSttm,
        "qwen2_5_vl": Qwen25VLSttm,
    }


def _sweep(cls, ckpt: str, docs: dict[int, dict], settings: list[dict], stats: Path, **extra) -> tuple:
    """Run every setting over all questions; returns (seconds per setting, answers+kept per setting)."""
    seconds, outcomes = [], []
    for k, setting in enumerate(settings):
        began = time.perf_counter()
        model = cls(pretrained=ckpt, stats_dir=str(stats / str(k)), **setting, **extra)
        model.task_dict = {TASK: {"test": docs}}
        reqs = [
            Instance(
                "generate_until",
                (f"Question {i}?", {"max_new_tokens": 4}, lambda d: [d["path"]], i, TASK, "test"),
                i,
                {"task": TASK, "doc_id": i, "repeats": 1},
            )
            for i in docs
        ]
        out = model.generate_until(reqs)
        seconds.append(time.perf_counter() - began)
        answers = [o.text if isinstance(o, GenerationResult) else o for o in out]
        kept = [r.get("visual_tokens_kept") for r in model.stats.records]
        errors = [r["error"] for r in model.stats.records if r.get("error")]
        if errors:
            raise RuntimeError(f"setting {setting} failed samples: {errors[:3]}")
        outcomes.append((answers, kept))
    return seconds, outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="llava_video", choices=sorted(_classes()))
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=64, help="frames per clip (4 fps; sampled at 1 or 2 fps)")
    ap.add_argument("--questions", type=int, default=2, help="questions per video")
    ap.add_argument("--settings", type=int, default=len(SETTINGS), help=f"first N of {len(SETTINGS)}")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_features_"))
    cls = _classes()[args.arch]
    ckpt = str(build_tiny(args.arch, work / "ckpt"))
    docs = {}
    for v in range(args.videos):
        spec = ClipSpec(
            num_frames=args.frames, height=224, width=224, fps=4, seed=v, needle_at=v % args.frames
        )
        path = str(ensure_clip(spec, work / "videos" / f"clip{v}.mp4"))
        for q in range(args.questions):
            docs[v * args.questions + q] = {"path": path}
    settings = SETTINGS[: args.settings]
    root = work / "datasets"

    video_s, video_out = _sweep(cls, ckpt, docs, settings, work / "stats_video")
    began = time.perf_counter()
    _sweep(
        cls, ckpt, docs, [{"method": "none"}], work / "stats_x", features=str(root), features_mode="extract"
    )
    extract_s = time.perf_counter() - began
    feat_s, feat_out = _sweep(cls, ckpt, docs, settings, work / "stats_feat", features=str(root))

    total_video, total_feat = sum(video_s), sum(feat_s)
    print(
        json.dumps(
            {
                "arch": args.arch,
                "videos": args.videos,
                "frames_per_clip": args.frames,
                "questions": len(docs),
                "settings": len(settings),
                "from_videos_s": round(total_video, 3),
                "extract_once_s": round(extract_s, 3),
                "from_features_s": round(total_feat, 3),
                "speedup_sweep": round(total_video / total_feat, 2),
                "speedup_including_extraction": round(total_video / (total_feat + extract_s), 2),
                "per_setting_video_s": [round(s, 3) for s in video_s],
                "per_setting_features_s": [round(s, 3) for s in feat_s],
                "answers_and_kept_tokens_equal": video_out == feat_out,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
