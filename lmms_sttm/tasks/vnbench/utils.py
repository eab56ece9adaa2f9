"""Task functions of ``vnbench_sttm`` (VNBench main set, 4 tries per item)."""

from __future__ import annotations

from lmms_sttm.tasks.common.benchmark import Benchmark, lazy_module_attributes

BENCH = Benchmark(
    name="vnbench",
    annotation="VNBench-main-4try_v2.json",
    video_field="videoID",
    prefixed_options=True,
    extra_fields=("try",),
    official="circular",
)

doc_to_visual = BENCH.doc_to_visual
process_docs = BENCH.process_docs
doc_to_text = BENCH.doc_to_text
doc_to_target = BENCH.doc_to_target
process_results = BENCH.process_results
breakdown = BENCH.breakdown
official_acc = BENCH.official_acc
__getattr__ = lazy_module_attributes(dataset_kwargs=BENCH.dataset_kwargs)
