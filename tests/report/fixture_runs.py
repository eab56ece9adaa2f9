"""Writes small lmms-eval run directories for the report tests (results, samples, sttm_stats).

The layout mirrors lmms-eval 0.7.3 and our models: ``<output_path>/<sanitized>/<ts>_results.json``,
``<ts>_samples_<task>.jsonl`` beside it, and ``<output_path>/sttm_stats/<model>_rank<r>.jsonl``.
The numbers of :func:`two_runs` are literals so that tests can recompute every metric by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

PRETRAINED = "/ckpt/lmms-lab/LLaVA-Video-7B-Qwen2-Video-Only"
MODEL = "llava_video_sttm"


@dataclass
class Q:
    """One question: its answer facts and (unless ``error``) its statistics."""

    doc_id: int
    correct: bool
    video: str = "v0"
    visual_tokens: int = 400
    kept: int = 400
    prefill_ms: float = 1000.0
    reused: bool = False
    frames: int = 4
    duration: str = "short"
    task_type: str = "count"
    error: str | None = None


@dataclass
class TaskSpec:
    questions: list[Q]
    n_original: int | None = None
    params: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return 100.0 * sum(q.correct for q in self.questions) / len(self.questions)

    @property
    def clustered_stderr(self) -> float | str:
        """lmms-eval's clustered standard error over videos ("N/A" with one video, as lmms-eval writes)."""
        from lmms_eval.api.metrics import clustered_stderr

        videos = [q.video for q in self.questions]
        if len(set(videos)) < 2:
            return "N/A"
        return float(clustered_stderr([100.0 * q.correct for q in self.questions], videos))


def write_run(
    output_path: Path,
    model_args: str,
    tasks: dict[str, TaskSpec],
    *,
    timestamp: str = "20250101_120000",
    model: str = MODEL,
    limit: int | None = None,
    ranks: int = 2,
    with_samples: bool = True,
    with_stats: bool = True,
) -> Path:
    """Write one run; returns the results file. Statistics records alternate between ``ranks``."""
    args = dict(kv.split("=", 1) for kv in model_args.split(",") if kv)
    # lmms-eval writes into <output_path>/<last two parts of pretrained>, or output_path itself without one
    sanitized = "__".join(args["pretrained"].strip("/").split("/")[-2:]) if "pretrained" in args else ""
    run_dir = output_path / sanitized if sanitized else output_path
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "results": {
            t: {
                "alias": t,
                "sttm_acc,none": spec.accuracy,
                "sttm_acc_stderr,none": "N/A",
                "sttm_acc_stderr_clustered,none": spec.clustered_stderr,
            }  # fmt: skip
            for t, spec in tasks.items()
        },
        "group_subtasks": {t: [] for t in tasks},
        "n-samples": {
            t: {"original": spec.n_original or len(spec.questions), "effective": len(spec.questions)}
            for t, spec in tasks.items()
        },
        "config": {
            "model": model,
            "model_args": model_args,
            "batch_size": "1",
            "limit": limit,
            "resolved_cli_args": {
                "model": model,
                "tasks": ",".join(tasks),
                "model_args": model_args,
                "batch_size": "1",
                "limit": limit,
                "log_samples": with_samples,
                "output_path": str(output_path),
            },
        },
        "lmms_eval_version": "0.7.3",
        "git_hash": "abc1234",
        "date": timestamp,
        "model_name_sanitized": sanitized,
        "total_evaluation_time_seconds": "12.5",
    }
    path = run_dir / f"{timestamp}_results.json"
    path.write_text(json.dumps(results, indent=1))
    if with_samples:
        for t, spec in tasks.items():
            lines = [
                {
                    "doc_id": q.doc_id,
                    "target": "A",
                    "filtered_resps": "A" if q.correct else "B",
                    "question_id": f"q{q.doc_id}",
                    "video_id": q.video,
                    "duration": q.duration,
                    "task_type": q.task_type,
                    "correct": q.correct,
                    "sttm_acc": {"score": 100.0 if q.correct else 0.0, "video_id": q.video},
                }
                for q in spec.questions
            ]
            (run_dir / f"{timestamp}_samples_{t}.jsonl").write_text(
                "".join(json.dumps(x) + "\n" for x in lines)
            )
    if with_stats:
        stats_dir = output_path / "sttm_stats"
        stats_dir.mkdir(parents=True, exist_ok=True)
        per_rank: list[list[dict]] = [[] for _ in range(ranks)]
        i = 0
        for t, spec in tasks.items():
            for q in spec.questions:
                per_rank[i % ranks].append(
                    _stats_record(model, args.get("method", "sttm"), t, q, spec.params)
                )
                i += 1
        for r, records in enumerate(per_rank):
            (stats_dir / f"{model}_rank{r}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in records))
    return path


def _stats_record(model: str, method: str, task: str, q: Q, params: dict) -> dict:
    if q.error is not None:
        return {"model": model, "task": task, "doc_id": q.doc_id, "error": q.error, "rank": 0}
    return {
        "model": model,
        "method": method,
        "task": task,
        "doc_id": q.doc_id,
        "video": f"/videos/{q.video}.mp4",
        "params": params,
        "merge_layer": 2,
        "frames": q.frames,
        "video_seconds": 10.0,
        "visual_tokens": q.visual_tokens,
        "visual_tokens_kept": q.kept,
        "retained_pct": round(100.0 * q.kept / q.visual_tokens, 4),
        "vision_ms": 0.0 if q.reused else 50.0,
        "merge_ms": 0.0,
        "prefill_ms": q.prefill_ms,
        "decode_ms": 30.0,
        "new_tokens": 2,
        "prefix_reused": q.reused,
        "answer": "A" if q.correct else "B",
        "error": None,
        "rank": 0,
        "time": 1.0,
    }


# ---- the two reference runs: unreduced and STTM ------------------------------------------------

NONE_ARGS = f"pretrained={PRETRAINED},method=none"
STTM_ARGS = f"pretrained={PRETRAINED},method=sttm,tau_s=0.9,tau_t=0.8"
STTM_PARAMS = {"tau_s": 0.9, "tau_t": 0.8, "root_level": 1}


def unreduced_tasks() -> dict[str, TaskSpec]:
    """VNBench (4 questions on 2 videos, 2nd question of each reuses the prefix), VideoMME, MLVU."""
    return {
        "vnbench_sttm": TaskSpec(
            [
                Q(0, True, "v0", 400, 400, 1000.0, False, 4, "short", "count"),
                Q(1, True, "v0", 400, 400, 100.0, True, 4, "short", "order"),
                Q(2, True, "v1", 600, 600, 1400.0, False, 6, "long", "count"),
                Q(3, False, "v1", 600, 600, 120.0, True, 6, "long", "order"),
            ]
        ),
        "videomme_sttm": TaskSpec(
            [
                Q(0, True, "w0", 800, 800, 2000.0, False, 8, "short", "ocr"),
                Q(1, False, "w1", 1000, 1000, 2600.0, False, 10, "long", "ocr"),
            ]
        ),
        "mlvu_sttm": TaskSpec(
            [
                Q(0, True, "m0", 500, 500, 1500.0, False, 5, "long", "plotQA"),
                Q(1, True, "m1", 500, 500, 1700.0, False, 5, "long", "plotQA"),
            ]
        ),
    }


def sttm_tasks() -> dict[str, TaskSpec]:
    """VNBench and VideoMME only (MLVU missing); VideoMME doc 1 failed."""
    return {
        "vnbench_sttm": TaskSpec(
            [
                Q(0, True, "v0", 400, 100, 400.0, False, 4, "short", "count"),
                Q(1, False, "v0", 400, 100, 80.0, True, 4, "short", "order"),
                Q(2, True, "v1", 600, 300, 600.0, False, 6, "long", "count"),
                Q(3, False, "v1", 600, 300, 90.0, True, 6, "long", "order"),
            ],
            params=STTM_PARAMS,
        ),
        "videomme_sttm": TaskSpec(
            [
                Q(0, True, "w0", 800, 200, 700.0, False, 8, "short", "ocr"),
                Q(1, False, "w1", error="RuntimeError: video could not be decoded"),
            ],
            params=STTM_PARAMS,
        ),
    }


def two_runs(root: Path) -> tuple[Path, Path]:
    """The unreduced and the STTM run under ``root/none`` and ``root/sttm``; returns both dirs."""
    write_run(root / "none", NONE_ARGS, unreduced_tasks(), timestamp="20250101_100000")
    write_run(root / "sttm", STTM_ARGS, sttm_tasks(), timestamp="20250101_110000")
    return root / "none", root / "sttm"
