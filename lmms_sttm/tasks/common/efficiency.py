"""Efficiency as lmms-eval metrics: visual tokens, retained share, time to first token, merge time.

The model hands each answer's statistics record to ``process_results`` on the response text
(:class:`lmms_sttm.models.answer.AnswerText`, read here through its ``stats`` attribute, so the
tasks import no model code). Each metric is a per-answer number that lmms-eval averages
(:func:`lmms_sttm.tasks.common.aggregations.mean_value`) and gives a standard error (its CLT
``_stderr_clt``), so the values reach the results JSON, the console table and W&B:

- ``visual_tokens``: visual tokens of the video before any reduction (N).
- ``visual_tokens_kept``: visual tokens after the last reduction stage (N').
- ``retained_pct``: 100 N' / N.
- ``ttft_ms``: time to first token (prefill, the reduction included) of the answers that prefilled
  their video; answers that reused a prefilled video (``kv_reuse``) prefill only their question
  and are left out, as in the leaderboard's TTFT.
- ``merge_ms``: the reduction's time of those same answers.

An answer without statistics (a failed one, or one read back from lmms-eval's response cache)
contributes to none of them.
"""

from __future__ import annotations

#: (metric name, help) of the efficiency metrics, in the order they are listed
EFFICIENCY_METRICS = (
    ("visual_tokens", "visual tokens before reduction"),
    ("visual_tokens_kept", "visual tokens after reduction"),
    ("retained_pct", "percent of the visual tokens kept"),
    ("ttft_ms", "time to first token in ms (prefill incl. reduction) of answers that prefilled their video"),
    ("merge_ms", "reduction time in ms of those answers"),
)


def efficiency_values(response) -> dict[str, float]:
    """The efficiency metrics of one answer (``{}`` for text without a statistics record)."""
    stats = getattr(response, "stats", None)
    if not isinstance(stats, dict) or stats.get("error") is not None:
        return {}
    out = {
        "visual_tokens": float(stats["visual_tokens"]),
        "visual_tokens_kept": float(stats["visual_tokens_kept"]),
        "retained_pct": float(stats["retained_pct"]),
    }
    if not stats.get("prefix_reused"):
        out["ttft_ms"] = float(stats["prefill_ms"])
        out["merge_ms"] = float(stats["merge_ms"])
    return out


def metric_specs() -> list[dict]:
    """``metric_list`` entries of the efficiency metrics (lower is cheaper)."""
    from lmms_sttm.tasks.common.aggregations import mean_value

    return [
        {"metric": name, "aggregation": mean_value, "higher_is_better": False}
        for name, _ in EFFICIENCY_METRICS
    ]
