"""Task functions of ``nextqa_sttm`` (NExT-QA multiple choice, test split)."""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, lazy_module_attributes

BENCH = Benchmark(
    name="nextqa",
    annotation="MC_test_v2.json",
    video_field="video_id",
    letters="ABCDE",
    breakdowns=("task_type", "duration"),
)

doc_to_visual = BENCH.doc_to_visual
process_docs = BENCH.process_docs
doc_to_text = BENCH.doc_to_text
doc_to_target = BENCH.doc_to_target
process_results = BENCH.process_results
breakdown = BENCH.breakdown
__getattr__ = lazy_module_attributes(dataset_kwargs=BENCH.dataset_kwargs)
