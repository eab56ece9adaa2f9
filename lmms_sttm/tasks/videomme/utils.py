"""Task functions of ``videomme_sttm`` (Video-MME, no subtitles)."""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, task_module

BENCH = Benchmark(
    name="videomme",
    annotation="videomme.json",
    video_field="videoID",
    prefixed_options=True,
    breakdowns=("duration", "task_type", "domain", "sub_category"),
)

__getattr__ = task_module(BENCH)  # utils.<task function> and utils.dataset_kwargs for the YAML
