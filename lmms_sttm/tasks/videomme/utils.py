"""Task functions of ``videomme_sttm`` (Video-MME, no subtitles)."""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, lazy_module_attributes

BENCH = Benchmark(
    name="videomme",
    annotation="videomme.json",
    video_field="videoID",
    prefixed_options=True,
    breakdowns=("duration", "task_type", "domain", "sub_category"),
)

doc_to_visual = BENCH.doc_to_visual
process_docs = BENCH.process_docs
doc_to_text = BENCH.doc_to_text
doc_to_target = BENCH.doc_to_target
process_results = BENCH.process_results
breakdown = BENCH.breakdown
__getattr__ = lazy_module_attributes(dataset_kwargs=BENCH.dataset_kwargs)
