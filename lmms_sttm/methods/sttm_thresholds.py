"""STTM's thresholds as the authors ran them: ``(tau_s, tau_t)`` per model, budget and benchmark.

Source: the STTM authors' evaluation scripts at commit 00736c7 (``scripts/eval/run_vidqa.sh``).
``budget`` is the nominal share of visual tokens kept (50 or 30); the thresholds were hand-tuned
per benchmark to land near it on average.
"""

from __future__ import annotations

BENCHMARKS = ("vnbench", "videomme", "egoschema", "nextqa", "longvideobench", "mlvu")

# (tau_s, tau_t) per model family key -> budget -> benchmark
THRESHOLDS: dict[str, dict[int, dict[str, tuple[float, float]]]] = {
    "llava_video_7b": {
        50: {"vnbench": (0.85, 0.65), "videomme": (0.85, 0.55), "egoschema": (0.85, 0.55),
             "nextqa": (0.85, 0.65), "longvideobench": (0.85, 0.60), "mlvu": (0.85, 0.55)},
        30: {"vnbench": (0.80, 0.60), "videomme": (0.80, 0.50), "egoschema": (0.80, 0.60),
             "nextqa": (0.80, 0.65), "longvideobench": (0.80, 0.55), "mlvu": (0.80, 0.55)},
    },
    "llava_onevision_7b": {
        50: {"vnbench": (0.90, 0.65), "videomme": (0.85, 0.65), "egoschema": (0.90, 0.60),
             "nextqa": (0.95, 0.65), "longvideobench": (0.90, 0.60), "mlvu": (0.90, 0.55)},
        30: {"vnbench": (0.85, 0.65), "videomme": (0.85, 0.55), "egoschema": (0.85, 0.60),
             "nextqa": (0.90, 0.60), "longvideobench": (0.85, 0.60), "mlvu": (0.85, 0.60)},
    },
    "qwen2_vl_7b": {
        50: {"vnbench": (0.80, 0.65), "videomme": (0.85, 0.60), "longvideobench": (0.85, 0.65)},
        30: {"vnbench": (0.75, 0.50), "videomme": (0.80, 0.60), "longvideobench": (0.80, 0.60)},
    },
    "llava_video_72b": {
        50: {"videomme": (0.94, 0.82)},
        30: {"videomme": (0.90, 0.90)},
    },
}  # fmt: skip


def benchmark_of(task: str) -> str | None:
    """The paper benchmark a task name belongs to (``vnbench_sttm`` -> ``vnbench``), else None."""
    name = task.lower()
    for bench in sorted(BENCHMARKS, key=len, reverse=True):
        if name.startswith(bench):
            return bench
    return None


def paper_thresholds(model_key: str, budget: int, task: str) -> tuple[float, float]:
    """``(tau_s, tau_t)`` the authors used for this model, budget and task; clear error if none."""
    if model_key not in THRESHOLDS:
        raise ValueError(
            f"the paper has no thresholds for {model_key}; pass tau_s= and tau_t= instead of budget= "
            f"(models with thresholds: {sorted(THRESHOLDS)})"
        )
    by_budget = THRESHOLDS[model_key]
    if budget not in by_budget:
        raise ValueError(f"budget={budget} has no paper thresholds; accepted: {sorted(by_budget)}")
    bench = benchmark_of(task)
    table = by_budget[budget]
    if bench not in table:
        raise ValueError(
            f"the paper has no {budget}% thresholds for {model_key} on task {task!r} "
            f"(benchmarks with thresholds: {sorted(table)}); pass tau_s and tau_t explicitly"
        )
    return table[bench]
