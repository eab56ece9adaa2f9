"""Throughput of decode-ahead: a tiny-model run over synthetic clips with ``prefetch=0`` and ``prefetch=D``.

Writes ``--clips`` synthetic clips (the needle clips of ``lmms_sttm.data.synthetic`` scaled up
``--scale`` times and overlaid with seeded noise, so that reading them costs about as much CPU as
the tiny LLaVA-Video model spends on them: at the default 448x448, 64 frames, 2 questions, the
reading takes 0.9x the model's CPU seconds; at ``--scale 3`` (672x672) 1.8x, which caps the
speed-up of a perfect overlap at 1.55), then answers ``--questions`` questions per clip through
``LlavaVideoSttm.generate_until`` (STTM, KV reuse), alternating runs without and with prefetching
(``--repeats`` each, after one untimed run of each). Prints one JSON object: wall seconds per
setting (median), the speed-up, the per-answer statistics summed per run (video decoding,
GPU-idle wait, vision + merge + prefill + decode), and whether the answers and token counts of
every run are identical.

The model runs with ``--threads`` torch threads (default 1), leaving the other core of a 2-core
machine to the reader. The gain needs that core, so the JSON also says how much CPU the process
got:

- ``cores_available``: CPU seconds per wall second that two threads hashing with the GIL released
  got just before and just after the runs (2.0 on an idle 2-core machine). Linux shares the CPU
  between sessions (autogroups) before threads: on a machine busy with other sessions' jobs the
  whole process gets its session's share (e.g. 0.5 core with three other busy sessions) however
  many threads it runs, and no overlap is possible; the speed-up is then about 1.
- per setting, ``cpu_s`` (the process's CPU seconds), ``cores_used`` (``cpu_s`` / wall),
  ``model_thread_cpu_s`` and ``model_thread_runqueue_s`` (the thread running the model: on CPU,
  and runnable but waiting for a CPU; Linux only, else null) and ``model_thread_blocked_s`` (the
  rest of the wall time: asleep, waiting for a read or for the GIL; when it equals ``gpu_idle_s``
  the reader never held the GIL against the model). With prefetching the model thread's CPU is the
  model's alone; the rest of ``cpu_s`` is the reading (decoder threads included).
- ``speedup_ceiling``: (model CPU + reading CPU) / max(model CPU, reading CPU) from the
  prefetching runs, the speed-up of a perfect overlap on two free cores with the reading on one.
- ``note``: set when fewer than 1.5 cores were available, i.e. when the speed-up cannot show.

    .venv/bin/python scripts/bench_throughput.py [--clips 12] [--depth 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from lmms_eval.api.instance import Instance

from lmms_sttm.data.synthetic import ClipSpec, render_frames, write_frames
from lmms_sttm.data.tiny import build_tiny
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm

TASK = "throughput_sttm"
MODEL_PARTS = ("vision_ms", "merge_ms", "prefill_ms", "decode_ms")


def write_clips(root: Path, count: int, frames: int, scale: int, fps: float) -> list[str]:
    """``count`` clips of ``frames`` frames at ``(224*scale)^2`` px with seeded noise (costlier to decode)."""
    paths = []
    for i in range(count):
        spec = ClipSpec(num_frames=frames, height=224, width=224, fps=fps, seed=i, needle_at=frames // 2)
        small = render_frames(spec)
        big = small.repeat(scale, axis=1).repeat(scale, axis=2).astype(np.int16)
        noise = np.random.default_rng(i).integers(-24, 25, size=big.shape[1:], dtype=np.int16)
        big = np.clip(big + noise, 0, 255).astype(np.uint8)
        paths.append(str(write_frames(big, root / f"clip{i:02d}.mp4", fps)))
    return paths


def requests(model, paths: list[str], questions: int) -> list[Instance]:
    docs = {i: {"path": p} for i, p in enumerate(p for p in paths for _ in range(questions))}
    model.task_dict = {TASK: {"test": docs}}
    return [
        Instance(
            "generate_until",
            (f"Question {i}: what colour?", {"max_new_tokens": 8}, lambda d: [d["path"]], i, TASK, "test"),
            i,
            {"task": TASK, "doc_id": i, "repeats": 1},
        )
        for i in docs
    ]


def thread_schedstat() -> tuple[float, float] | None:
    """``(seconds on CPU, seconds runnable but waiting for a CPU)`` of the calling thread (Linux), else None."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            on_cpu, waiting = f.read().split()[:2]
    except OSError:
        return None
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def cores_available(seconds: float = 1.5, threads: int = 2) -> float:
    """CPU seconds per wall second that ``threads`` threads get, hashing with the GIL released."""
    block = bytes(8 << 20)
    began, cpu = time.perf_counter(), time.process_time()

    def burn() -> None:
        while time.perf_counter() - began < seconds:
            hashlib.sha256(block).digest()

    workers = [threading.Thread(target=burn) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (time.process_time() - cpu) / (time.perf_counter() - began)


def one_run(model, paths: list[str], questions: int) -> dict:
    """Wall seconds of one ``generate_until`` over every clip, its answers, summed statistics and CPU use."""
    model.stats.records.clear()
    reqs = requests(model, paths, questions)
    sched_before, cpu_before = thread_schedstat(), time.process_time()
    began = time.perf_counter()
    out = model.generate_until(reqs)
    wall = time.perf_counter() - began
    cpu, sched_after = time.process_time() - cpu_before, thread_schedstat()
    records = model.stats.records
    answers = [(o.text, o.token_counts.input_tokens, o.token_counts.output_tokens) for o in out]
    own = None if sched_before is None else [b - a for a, b in zip(sched_before, sched_after, strict=True)]
    return {
        "wall_s": wall,
        "answers": answers,
        "failed": sum(r.get("error") is not None for r in records),
        "video_decode_s": sum(r["video_decode_ms"] for r in records) / 1000,
        "gpu_idle_s": sum(r["gpu_idle_ms"] for r in records) / 1000,
        "model_s": sum(r[k] for r in records for k in MODEL_PARTS) / 1000,
        "cpu_s": cpu,
        "cores_used": cpu / wall,
        "model_thread_cpu_s": None if own is None else own[0],
        "model_thread_runqueue_s": None if own is None else own[1],
        "model_thread_blocked_s": None if own is None else wall - own[0] - own[1],
    }


def speedup_ceiling(model_cpu: float, read_cpu: float) -> float:
    """Speed-up of a perfect overlap on two free cores, the reading on one: ``(m + r) / max(m, r)``."""
    return (model_cpu + read_cpu) / max(model_cpu, read_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=64, help="frames per clip (8..64)")
    parser.add_argument("--scale", type=int, default=2, help="clip side = 224 * scale px")
    parser.add_argument("--questions", type=int, default=2, help="questions per clip")
    parser.add_argument("--depth", type=int, default=2, help="prefetch depth of the prefetching runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before, cores_before = os.getloadavg()[0], cores_available()
    with tempfile.TemporaryDirectory(prefix="bench_throughput_") as tmp:
        root = Path(tmp)
        ckpt = str(build_tiny("llava_video", root / "ckpt"))
        paths = write_clips(root / "clips", args.clips, args.frames, args.scale, fps=8.0)
        models = {
            depth: LlavaVideoSttm(
                pretrained=ckpt, tau_s=0.9, tau_t=0.8, fps=8.0, max_frames=args.frames, prefetch=depth
            )
            for depth in (0, args.depth)
        }
        runs: dict[int, list[dict]] = {0: [], args.depth: []}
        for round_index in range(args.repeats + 1):  # round 0: warm-up of both (untimed)
            for depth, model in models.items():
                result = one_run(model, paths, args.questions)
                if round_index:
                    runs[depth].append(result)
    reference = runs[0][0]["answers"]
    summary = {}
    for depth, results in runs.items():
        summary[f"prefetch_{depth}"] = {
            "wall_s_median": round(statistics.median(r["wall_s"] for r in results), 3),
            "wall_s": [round(r["wall_s"], 3) for r in results],
            **{
                f"{k}_median": round(statistics.median(r[k] for r in results), 3)
                for k in ("video_decode_s", "gpu_idle_s", "model_s", "cpu_s", "cores_used")
            },
            **{
                f"{k}_median": None
                if results[0][k] is None
                else round(statistics.median(r[k] for r in results), 3)
                for k in ("model_thread_cpu_s", "model_thread_runqueue_s", "model_thread_blocked_s")
            },
            "failed": results[0]["failed"],
        }
    on_runs = runs[args.depth]
    ceiling = None
    if on_runs[0]["model_thread_cpu_s"] is not None:
        model_cpu = statistics.median(r["model_thread_cpu_s"] for r in on_runs)
        ceiling = round(
            speedup_ceiling(model_cpu, statistics.median(r["cpu_s"] for r in on_runs) - model_cpu), 3
        )
    load_after, cores_after = os.getloadavg()[0], cores_available()
    off, on = summary["prefetch_0"]["wall_s_median"], summary[f"prefetch_{args.depth}"]["wall_s_median"]
    out = {
        "clips": args.clips,
        "frames_per_clip": args.frames,
        "clip_size": [224 * args.scale, 224 * args.scale],
        "questions_per_clip": args.questions,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],  # before, after
        "cores_available": [round(cores_before, 2), round(cores_after, 2)],  # before, after
        "repeats": args.repeats,
        "runs": summary,
        "speedup": round(off / on, 3),
        "speedup_ceiling": ceiling,
        "target_met": off / on >= 1.4,
        "answers_identical": all(r["answers"] == reference for rs in runs.values() for r in rs),
        "answers": len(reference),
        "note": None
        if min(cores_before, cores_after) >= 1.5
        else f"only {min(cores_before, cores_after):.2f} cores were available to this process (other "
        "sessions' jobs): the reader cannot overlap the model, rerun on a quiet machine",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
