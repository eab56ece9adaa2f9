"""Task functions of ``egoschema_subset_sttm`` (500 answered questions) and ``egoschema_sttm`` (full set).

Both read the official question layout (``q_uid``, ``question``, ``option 0`` ... ``option 4``;
the subset file adds ``answer``, the 0-based index from ``subset_answers.json``). Videos are
``<q_uid>.mp4``. The full set has no public answers: its aggregation writes the submission file
for the official server instead of a score.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from loguru import logger

from lmms_sttm.tasks.common import aggregations, efficiency
from lmms_sttm.tasks.common.benchmark import Benchmark, lazy_module_attributes

SERVER_URL = "https://validation-server.onrender.com/api/upload/"
_COMMON = dict(
    name="egoschema",
    video_field="q_uid",
    question_id_field="q_uid",
    letters="ABCDE",
    option_fields=tuple(f"option {i}" for i in range(5)),
    breakdowns=(),
)
SUBSET = Benchmark(annotation="egoschema_subset_v2.json", **_COMMON)
FULL = Benchmark(annotation="egoschema_fullset_v2.json", scored=False, **_COMMON)

doc_to_visual = FULL.doc_to_visual
doc_to_text = FULL.doc_to_text
subset_doc_to_target = SUBSET.doc_to_target
subset_process_results = SUBSET.process_results
full_doc_to_target = FULL.doc_to_target
full_process_results = FULL.process_results


def _full_metric_list() -> list[dict]:
    """The full set's metrics: the submission file, unparsed answers, efficiency."""
    return [
        {"metric": "submission", "aggregation": write_submission, "higher_is_better": True},
        {"metric": "unparsed", "aggregation": aggregations.total, "higher_is_better": False},
        *efficiency.metric_specs(),
    ]


__getattr__ = lazy_module_attributes(
    subset_dataset_kwargs=SUBSET.dataset_kwargs,
    full_dataset_kwargs=FULL.dataset_kwargs,
    subset_metric_list=SUBSET.metric_list,
    full_metric_list=_full_metric_list,  # the YAML reads the list itself, made when it loads
)


def submission(items: list[dict]) -> dict[str, str]:
    """``{q_uid: "0".."4"}``, ``""`` for an unparsed answer (as STTM submits it)."""
    return {
        i["question_id"]: "" if i["answer_index"] is None else str(i["answer_index"])
        for i in sorted(items, key=lambda i: i["question_id"])
    }


def write_submission(items: list[dict], args=None) -> int:
    """Write the submission JSON under ``<output_path>/submissions/``; return how many predictions it holds."""
    out_dir = Path(getattr(args, "output_path", None) or ".") / "submissions"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = (out_dir / f"egoschema_sttm_{time.strftime('%Y%m%d_%H%M%S')}.json").absolute()
    answers = submission(items)
    path.write_text(json.dumps(answers, indent=1))
    logger.info(
        f"egoschema_sttm: wrote {len(answers)} predictions to {path}; score them with\n"
        f"  curl -X POST -H 'Content-Type: application/json' -d @{path} {SERVER_URL}"
    )
    return len(answers)
