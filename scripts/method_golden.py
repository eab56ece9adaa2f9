"""Fingerprint of every built-in method's output on the tiny models, to show a refactor changes nothing.

Runs each model class in-process (``generate_until``, as lmms-eval calls it) on three synthetic
clips with five questions, for every built-in method and option, and writes per answer: the text,
the recorded parameters, the kept visual tokens, DyCoke's per-step KV counts and whether the prefix
was reused. Timings are left out (they differ run to run). Prints JSON.

    .venv/bin/python scripts/method_golden.py --out before.json        # on the old revision
    .venv/bin/python scripts/method_golden.py --compare before.json    # on the new one: exit 1 on a difference
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

CONFIGS = [
    "method=none",
    "tau_s=0.9,tau_t=0.8",
    "budget=50",
    "budget=30",
    "budget_mode=exact,retention=0.3",
    "tau_s=0.9,tau_t=0.8,union_find=components,merge_dtype=float32",
    *(
        f"method={m},{b}"
        for m in ("tome", "dycoke_stage1", "dycoke", "fastv", "framefusion", "pool")
        for b in ("budget=50", "budget=30", "budget_mode=exact,retention=0.3")
    ),
    "method=tome,budget=30,token_order=raster",
    "method=dycoke_stage1,budget=30,token_order=raster",
    "method=dycoke,budget=30,dycoke_kv=video",
    "method=dycoke,budget=30,dycoke_kv=gated",
    "method=framefusion,budget=30,framefusion=single_layer",
    "method=sttm,budget=30,decode_positions=compact",
    "method=fastv,budget=30,merge_layer=3",
]
ARCHS = ("llava_video", "qwen2_vl", "qwen2_5_vl")
QUESTIONS = ("What happens first?", "Is there a red frame at all in this video?", "Scene?", "Cut?", "Colour?")


def _model_args(text: str) -> dict:
    out = {}
    for item in text.split(","):
        k, v = item.split("=", 1)
        out[k] = int(v) if v.isdigit() else (float(v) if v.replace(".", "", 1).isdigit() else v)
    return out


def fingerprint(archs=ARCHS, configs=CONFIGS) -> dict:
    import torch
    from lmms_eval.api.instance import GenerationResult, Instance

    from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
    from lmms_sttm.data.tiny import build_tiny
    from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
    from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm, Qwen25VLSttm

    classes = {"llava_video": LlavaVideoSttm, "qwen2_vl": Qwen2VLSttm, "qwen2_5_vl": Qwen25VLSttm}
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="golden-"))
    clips = [
        ensure_clip(
            ClipSpec(num_frames=24, height=112, width=176, fps=4, seed=1, needle_at=5), tmp / "a.mp4"
        ),
        ensure_clip(ClipSpec(num_frames=16, height=96, width=96, fps=4, seed=2, cut_at=8), tmp / "b.mp4"),
    ]
    paths = {0: clips[0], 1: clips[0], 2: clips[1], 3: clips[1], 4: clips[0]}
    task = "videomme_sttm"  # a benchmark with the paper's thresholds
    out: dict = {}
    for arch in archs:
        ckpt = str(build_tiny(arch, tmp / arch))
        for config in configs:
            stats = tmp / "stats" / arch / config.replace(",", "_").replace("=", "-")
            try:
                model = classes[arch](
                    pretrained=ckpt, stats_dir=str(stats), warmup=False, **_model_args(config)
                )
            except ValueError as e:
                out[f"{arch} {config}"] = {"error": str(e).split(";")[0]}
                continue
            model.task_dict = {task: {"test": {i: {"path": str(p)} for i, p in paths.items()}}}
            reqs = [
                Instance(
                    "generate_until",
                    (
                        QUESTIONS[i],
                        {"max_new_tokens": 6, "until": ["\n\n"]},
                        lambda d: [d["path"]],
                        i,
                        task,
                        "test",
                    ),
                    i,
                    {"task": task, "doc_id": i, "repeats": 1},
                )
                for i in paths
            ]
            try:
                answers = [
                    o.text if isinstance(o, GenerationResult) else o for o in model.generate_until(reqs)
                ]
            except ValueError as e:
                out[f"{arch} {config}"] = {"error": str(e).split(";")[0]}
                continue
            keep = (
                "params",
                "visual_tokens",
                "visual_tokens_kept",
                "kv_video_kept",
                "prefix_reused",
                "merge_layer",
            )
            records = [
                {k: r.get(k) for k in keep} for r in sorted(model.stats.records, key=lambda r: r["doc_id"])
            ]
            out[f"{arch} {config}"] = {"answers": answers, "records": records}
            print(f"[golden] {arch} {config}: {[r['visual_tokens_kept'] for r in records]}", file=sys.stderr)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the fingerprint here")
    p.add_argument("--compare", help="compare with a fingerprint written before; exit 1 on a difference")
    p.add_argument(
        "--only", action="append", default=[], metavar="'ARCH CONFIG'", help="run only these (repeatable)"
    )
    args = p.parse_args(argv)
    archs = tuple(a for a in ARCHS if not args.only or any(o.split(" ", 1)[0] == a for o in args.only))
    configs = [c for c in CONFIGS if not args.only or any(o.split(" ", 1)[1] == c for o in args.only)]
    now = fingerprint(archs, configs)
    if args.only:
        now = {k: v for k, v in now.items() if k in args.only}
    if args.out:
        Path(args.out).write_text(json.dumps(now, indent=1, sort_keys=True))
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        if args.only:
            before = {k: v for k, v in before.items() if k in args.only}
        diffs = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        print(
            json.dumps(
                {"configs": len(now), "identical": len(now) - len(diffs), "different": diffs}, indent=1
            )
        )
        return 1 if diffs else 0
    print(json.dumps({"configs": len(now)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
