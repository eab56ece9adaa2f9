"""Task functions of ``longvideobench_sttm`` (LongVideoBench validation split, without subtitles).

Answers are 0-based option indices; the prompt names one letter per option (3 to 5 here) and
the parser, as STTM's, looks for A-F (its 10-word rule for A-E).
"""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, lazy_module_attributes

BENCH = Benchmark(
    name="longvideobench",
    annotation="lvb_val_v2.json",
    video_field="videoID",
    letters="ABCDEF",
    guard_letters="ABCDE",
    letters_per_option=True,
)

doc_to_visual = BENCH.doc_to_visual
process_docs = BENCH.process_docs
doc_to_text = BENCH.doc_to_text
doc_to_target = BENCH.doc_to_target
process_results = BENCH.process_results
breakdown = BENCH.breakdown
__getattr__ = lazy_module_attributes(dataset_kwargs=BENCH.dataset_kwargs)
