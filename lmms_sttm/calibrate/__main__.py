"""Command line of :mod:`lmms_sttm.calibrate` (see there); exit status 1 when a target was missed."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from lmms_sttm.calibrate.capture import CountingReducer, capture, load_model, log, spread, task_videos
from lmms_sttm.calibrate.search import MAX_STEPS, STEP, Counted, search
from lmms_sttm.merging.budget import DEFAULT_DIRECTION
from lmms_sttm.methods.sttm_calibrated import FORMAT, STTM_OPTIONS, budget_key
from lmms_sttm.video import VideoError

DEFAULT_VIDEOS = 32
DEFAULT_TOLERANCE = 0.01


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lmms_sttm.calibrate",
        description="Search STTM's (tau_s, tau_t) so that the mean retention over a task's videos hits each target.",
    )
    parser.add_argument(
        "--model", required=True, help="llava_video_sttm, qwen2_5_vl_sttm, ... (lmms-eval name)"
    )
    parser.add_argument("--pretrained", required=True, help="hub id or local checkpoint folder")
    parser.add_argument(
        "--tasks", required=True, help="lmms-eval task name(s), comma-separated: one entry each"
    )
    parser.add_argument(
        "--retention", type=float, nargs="+", required=True, help="target mean retentions, e.g. 0.5 0.3"
    )
    parser.add_argument(
        "--videos",
        type=int,
        default=DEFAULT_VIDEOS,
        help=f"videos per task, evenly spread (default {DEFAULT_VIDEOS})",
    )
    parser.add_argument("--out", default=None, help="output JSON (default sttm_thresholds_<model>.json)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"accepted |mean retention - target| (default {DEFAULT_TOLERANCE}: one point)",
    )
    parser.add_argument(
        "--direction",
        type=float,
        nargs=2,
        default=list(DEFAULT_DIRECTION),
        metavar=("TAU_S", "TAU_T"),
        help="a threshold pair on the searched ray from (1, 1) (default: the paper's 0.80 0.50, as budget_mode=exact)",
    )
    parser.add_argument(
        "--model_args",
        default="",
        help="further model_args of the evaluation runs, e.g. dtype=bfloat16,max_frames=64",
    )
    parser.add_argument(
        "--verbosity",
        default="WARNING",
        help="lmms-eval / model log level (default WARNING; progress always shows)",
    )
    args = parser.parse_args(argv)
    if args.videos < 1:
        parser.error("--videos must be >= 1")
    if not 0 < args.tolerance < 1:
        parser.error("--tolerance must be in (0, 1)")
    try:
        keys = [budget_key(r) for r in args.retention]
    except ValueError as e:
        parser.error(f"--retention: {e}")
    if len(set(keys)) != len(keys):
        parser.error("--retention: each target once")
    return args


def identity(model, pretrained: str) -> dict:
    from lmms_sttm.models.identity import config_fingerprint

    return {"pretrained": pretrained, "config_sha256": config_fingerprint(model.model.config)}


def versions() -> dict:
    from lmms_sttm.models import provenance

    commit, dirty = provenance.package_commit()
    return {**provenance.versions(), "lmms-sttm commit": commit, "lmms-sttm dirty": dirty}


def calibrate_task(model, task: str, videos: list, args, reducer: CountingReducer) -> dict:
    """Captures ``videos`` of ``task`` and searches every target; the task's entry of the file."""
    captured, skipped = [], []
    for i, (path, doc_id, text) in enumerate(videos, 1):
        try:
            video = capture(model, task, path, doc_id, text, reducer)
        except VideoError as e:  # a missing or corrupt file: the others still make a sample
            skipped.append({"video": path, "doc_id": doc_id, "reason": str(e)})
            log(f"[calibrate] {task} video {i}/{len(videos)}: {Path(path).name}: skipped: {e}")
            continue
        captured.append(video)
        t, h, w = video.grid
        log(
            f"[calibrate] {task} video {i}/{len(videos)}: {Path(path).name}: {video.frames} frames, "
            f"grid {t}x{h}x{w} = {video.tokens} tokens, {video.seconds:.2f} s"
        )
    if not captured:
        raise SystemExit(f"[calibrate] {task}: no video could be read ({len(skipped)} skipped)")
    counted = [Counted(v.count, v.tokens) for v in captured]
    targets = {}
    for retention in args.retention:
        began = time.perf_counter()
        found = search(counted, retention, args.tolerance, tuple(args.direction))
        entry = found.as_dict()
        entry["search_seconds"] = round(time.perf_counter() - began, 3)
        targets[budget_key(retention)] = entry
        flag = "" if found.within_tolerance else f"  MISSED (tolerance {args.tolerance})"
        log(
            f"[calibrate] {task} target {retention:g}: tau_s={entry['tau_s']} tau_t={entry['tau_t']} -> mean "
            f"{entry['reached']:.4f} (videos {entry['per_video_min']:.3f}..{entry['per_video_max']:.3f}), "
            f"{entry['trace_size']} pairs counted in {entry['search_seconds']:.2f} s{flag}"
        )
    seconds = [v.seconds for v in captured]
    return {
        "videos": [v.as_dict() for v in captured],
        "skipped": skipped,
        "seconds_per_video": round(sum(seconds) / len(seconds), 3),
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from lmms_eval.utils import simple_parse_args_string
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=args.verbosity.upper())

    extra = simple_parse_args_string(args.model_args)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmms_sttm_calibrate_") as stats_dir:
        model = load_model(args.model, args.pretrained, extra, stats_dir)
        sttm = model.settings.method_settings
        options = {name: getattr(sttm, name) for name in STTM_OPTIONS}
        log(
            f"[calibrate] {args.model} on {args.pretrained}: merge layer {model.merge_layer}, "
            f"STTM {options}, device {model.device}"
        )
        listed = task_videos(tasks)
        entries = {}
        for task, videos in listed.items():
            sample = spread(videos, args.videos)
            log(f"[calibrate] {task}: {len(sample)} of {len(videos)} videos")
            entries[task] = calibrate_task(model, task, sample, args, CountingReducer(**options))
        data = {
            "format": FORMAT,
            "model": args.model,
            "checkpoint": identity(model, args.pretrained),
            "merge_layer": model.merge_layer,
            "sttm": options,
            "model_args": {k: v for k, v in extra.items()},
            "dtype": str(next(model.model.parameters()).dtype).removeprefix("torch."),
            "search": {
                "statistic": "mean over the videos of kept / visual tokens",
                "direction": list(args.direction),
                "tolerance": args.tolerance,
                "stop_band": args.tolerance / 2,
                "threshold_step": STEP,
                "max_steps": MAX_STEPS,
            },
            "tasks": entries,
            "seconds": round(time.perf_counter() - began, 3),
            "versions": versions(),
        }
    out = Path(args.out or f"sttm_thresholds_{args.model}.json")
    out.write_text(json.dumps(data, indent=1) + "\n")
    missed = [
        f"{task} {key}%"
        for task, e in entries.items()
        for key, t in e["targets"].items()
        if not t["within_tolerance"]
    ]
    log(f"[calibrate] wrote {out}; use it with --model_args pretrained=...,thresholds={out},budget=50|30")
    if missed:
        log(f"[calibrate] missed (outside tolerance, refused by thresholds=): {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
