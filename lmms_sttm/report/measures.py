"""Per-task numbers from the statistics records: NV, retention, TTFT, frames.

Definitions (the STTM paper's relative measures and its TTFT protocol):

- **NV**: mean over answered questions of ``visual_tokens_kept``.
- **retained %**: mean over answered questions of ``100 * visual_tokens_kept / visual_tokens``
  (the paper's R.NV is this mean of per-question ratios, not a ratio of means).
- **TTFT**: mean ``prefill_ms`` (LLM prefill including the merge; the vision encoder is excluded)
  over the questions whose video prefix was prefilled for them (``prefix_reused`` false; their
  times per question in ``cold``). That is the paper's per-question prefill; a reused prefix only
  prefills the question, so those answers are averaged separately (``ttft_all_s`` covers every
  answer). A reduced row's headline TTFT is later restricted to the questions prefilled on both
  sides of its comparison (:mod:`lmms_sttm.report.relative`; ``ttft_questions`` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def mean(values: list[float]) -> float | None:
    """Arithmetic mean, ``None`` for no values."""
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Measures:
    """Statistics of one task of one run (``None`` where the records do not say)."""

    answers: int
    failed: int
    nv: float | None
    visual_tokens: float | None
    retained_pct: float | None
    ttft_s: float | None
    ttft_all_s: float | None
    frames: float | None
    per_doc: dict = field(default_factory=dict)
    cold: dict = field(default_factory=dict)
    ttft_questions: int = 0

    def ttft_over(self, docs) -> float | None:
        """Mean prefill seconds over ``docs`` (each must be in ``cold``)."""
        return mean([self.cold[d] for d in docs])


def _num(record: dict, key: str) -> float | None:
    value = record.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def measure(stats: list[dict], failures: list[dict]) -> Measures:
    """Aggregate successful statistics records (``failures`` only counted)."""
    kept = [v for r in stats if (v := _num(r, "visual_tokens_kept")) is not None]
    total = [v for r in stats if (v := _num(r, "visual_tokens")) is not None]
    ratios = [
        100.0 * r["visual_tokens_kept"] / r["visual_tokens"]
        for r in stats
        if _num(r, "visual_tokens_kept") is not None and _num(r, "visual_tokens")
    ]
    cold = {
        r.get("doc_id"): v / 1000.0
        for r in stats
        if not r.get("prefix_reused") and (v := _num(r, "prefill_ms")) is not None
    }
    every = [v / 1000.0 for r in stats if (v := _num(r, "prefill_ms")) is not None]
    frames = [v for r in stats if (v := _num(r, "frames")) is not None]
    per_doc = {r.get("doc_id"): (r.get("frames"), r.get("visual_tokens")) for r in stats}
    return Measures(
        answers=len(stats),
        failed=len(failures),
        nv=mean(kept),
        visual_tokens=mean(total),
        retained_pct=mean(ratios),
        ttft_s=mean(list(cold.values())),
        ttft_all_s=mean(every),
        frames=mean(frames),
        per_doc=per_doc,
        cold=cold,
        ttft_questions=len(cold),
    )
