"""Task functions of ``longvideobench_sttm`` (LongVideoBench validation split, without subtitles).

Answers are 0-based option indices; the prompt names one letter per option (3 to 5 here) and
the parser, as STTM's, looks for A-F (its 10-word rule for A-E).
"""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, task_module

BENCH = Benchmark(
    name="longvideobench",
    annotation="lvb_val_v2.json",
    video_field="videoID",
    letters="ABCDEF",
    guard_letters="ABCDE",
    letters_per_option=True,
)

__getattr__ = task_module(BENCH)  # utils.<task function> and utils.dataset_kwargs for the YAML
