"""Task functions of ``vnbench_sttm`` (VNBench main set, 4 tries per item)."""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, task_module

BENCH = Benchmark(
    name="vnbench",
    annotation="VNBench-main-4try_v2.json",
    video_field="videoID",
    prefixed_options=True,
    extra_fields=("try",),
    official="circular",
)

__getattr__ = task_module(BENCH)  # utils.<task function> and utils.dataset_kwargs for the YAML
