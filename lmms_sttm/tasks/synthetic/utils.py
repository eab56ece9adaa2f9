"""Task functions of ``synthetic_needle_sttm`` (docs from :func:`lmms_sttm.data.synthetic.needle_task_docs`).

The prompt and the parser are the STTM ones shared by the benchmark tasks
(:mod:`lmms_sttm.tasks.common`); the YAML's ``post_prompt`` supplies the answer cue.
"""

from __future__ import annotations

from lmms_sttm.data.synthetic import ClipSpec, default_clip_dir, ensure_clip
from lmms_sttm.tasks.common.efficiency import efficiency_values, metric_specs
from lmms_sttm.tasks.common.parse import parse_answer
from lmms_sttm.tasks.common.prompt import ANSWER_CUE, mcq_body
from lmms_sttm.tasks.common.sharding import shard_by_video


def process_docs(dataset):
    """Video-major order for any world size dividing 8 (prefix reuse survives lmms-eval's sharding)."""
    return shard_by_video(dataset, "video_id")


def doc_to_visual(doc: dict) -> list[str]:
    """``[absolute clip path]``; the clip is generated from the doc's spec on first use."""
    path = default_clip_dir() / f"{doc['video_id']}.mp4"
    return [str(ensure_clip(ClipSpec(**doc["clip"]), path).resolve())]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    body = mcq_body(doc["question"], doc["options"], prefixed=False)
    return kwargs.get("pre_prompt", "") + body + kwargs.get("post_prompt", "\n" + ANSWER_CUE)


def parse_letter(response: str) -> str:
    """The option letter A-D read by the STTM parser, or "" (never a random guess)."""
    return parse_answer(response, "ABCD")


def process_results(doc: dict, results: list[str]) -> dict:
    """Metrics only: accuracy (the question and video ids ride in its value, which lmms-eval's
    samples log keeps) and the answer's efficiency values."""
    pred = parse_letter(results[0])
    score = 100.0 * (pred == doc["answer"])
    return {
        "sttm_acc": {
            "score": score,
            "question_id": doc["question_id"],
            "video_id": doc["video_id"],
            "pred": pred,
        },
        **efficiency_values(results[0]),
    }


def metric_list() -> list[dict]:
    """Accuracy and the efficiency metrics (:mod:`lmms_sttm.tasks.common.efficiency`)."""
    from lmms_sttm.tasks.common.aggregations import mean_score

    return [{"metric": "sttm_acc", "aggregation": mean_score, "higher_is_better": True}, *metric_specs()]


def __getattr__(name: str):
    """``utils.metric_list`` in the YAML: the list itself (lmms-eval's ``!function`` reads the attribute)."""
    if name == "metric_list_value":
        return metric_list()
    raise AttributeError(f"module has no attribute {name!r}")
