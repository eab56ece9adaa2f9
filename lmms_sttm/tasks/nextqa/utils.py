"""Task functions of ``nextqa_sttm`` (NExT-QA multiple choice, test split)."""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, task_module

BENCH = Benchmark(
    name="nextqa",
    annotation="MC_test_v2.json",
    video_field="video_id",
    letters="ABCDE",
    breakdowns=("task_type", "duration"),
)

__getattr__ = task_module(BENCH)  # utils.<task function> and utils.dataset_kwargs for the YAML
