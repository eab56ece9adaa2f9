"""Task functions of ``mlvu_sttm`` (MLVU dev set, the 7 multiple-choice tasks)."""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, task_module

BENCH = Benchmark(
    name="mlvu",
    annotation="MLVU_mcq_v2.json",
    video_field="video_id",
    breakdowns=("task_type", "duration"),
    official="macro",
)

__getattr__ = task_module(BENCH)  # utils.<task function> and utils.dataset_kwargs for the YAML
