"""Overhead of the per-rank warm-up on the tiny CPU model, and what it does to the first video's TTFT.

Builds the tiny LLaVA-Video checkpoint and the synthetic needle task's 8 clips (16 questions),
then alternates runs with ``warmup=true`` and ``warmup=false`` (a fresh model each run, so each
run pays its own warm-up). Prints one JSON object with medians over the runs:

- ``warmup_ms``: the warm-up's wall time; ``run_s``: answering the 16 questions (warm-up excluded);
- ``overhead_pct``: ``warmup_ms`` relative to ``run_s`` (on GPUs the warm-up is one short clip,
  a fixed cost of about one video, while a benchmark rank answers hundreds of videos);
- ``first_prefill_ms`` / ``later_prefill_ms``: TTFT of the first video and the median of the
  other videos' first questions, with and without warm-up.

    .venv/bin/python scripts/bench_warmup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from lmms_eval.api.instance import Instance

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.data.tiny import build_tiny
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm

TASK = "synthetic_needle_sttm"


def _requests(model, docs: list[dict], clips: Path) -> list[Instance]:
    paths = {
        d["video_id"]: str(ensure_clip(ClipSpec(**d["clip"]), clips / f"{d['video_id']}.mp4")) for d in docs
    }
    model.task_dict = {TASK: {"test": {i: {"path": paths[d["video_id"]]} for i, d in enumerate(docs)}}}
    return [
        Instance(
            "generate_until",
            (d["question"], {"max_new_tokens": 8}, lambda doc: [doc["path"]], i, TASK, "test"),
            i,
            {"task": TASK, "doc_id": i, "repeats": 1},
        )
        for i, d in enumerate(docs)
    ]


def one_run(ckpt: str, docs: list[dict], clips: Path, warmup: bool) -> dict:
    model = LlavaVideoSttm(pretrained=ckpt, tau_s=0.9, tau_t=0.8, warmup=warmup)
    reqs = _requests(model, docs, clips)
    began = time.perf_counter()
    model.generate_until(reqs)
    total = time.perf_counter() - began
    warm_s = (model.warmup_ms or 0.0) / 1000
    firsts = [r["prefill_ms"] for r in model.stats.records if not r["prefix_reused"]]
    return {"warmup_ms": model.warmup_ms, "run_s": total - warm_s, "first": firsts[0], "later": firsts[1:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    docs = json.loads(
        (Path(__file__).parents[1] / "lmms_sttm/tasks/synthetic/synthetic_needle.json").read_text()
    )
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(build_tiny("llava_video", Path(tmp) / "ckpt"))
        runs = {True: [], False: []}
        for _ in range(args.runs):
            for warmup in (True, False):
                runs[warmup].append(one_run(ckpt, docs, Path(tmp) / "clips", warmup))
    med = statistics.median
    warm_ms = med(r["warmup_ms"] for r in runs[True])
    run_s = med(r["run_s"] for r in runs[False])
    print(
        json.dumps(
            {
                "model": "tiny llava_video (CPU)",
                "questions": len(docs),
                "runs": args.runs,
                "warmup_ms": round(warm_ms, 1),
                "run_s": round(run_s, 3),
                "overhead_pct": round(100 * warm_ms / 1000 / run_s, 1),
                "first_prefill_ms": {
                    k: round(med(r["first"] for r in runs[w]), 2)
                    for k, w in (("warm", True), ("cold", False))
                },
                "later_prefill_ms": {
                    k: round(med(med(r["later"]) for r in runs[w]), 2)
                    for k, w in (("warm", True), ("cold", False))
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
