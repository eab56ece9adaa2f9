"""Relative metrics of a reduced row against the same model's unreduced run on the same frames.

Per benchmark b (the STTM paper's relative measures):

- R.Acc_b = 100 * Acc_b(row) / Acc_b(reference)
- R.TTFT_b = 100 * TTFT_b(row) / TTFT_b(reference), both over the same questions: those whose
  video prefix was prefilled for them on both sides. With ``kv_reuse`` the unreduced run prefills
  only each video's first question, while a query-aware row (FastV, FrameFusion, DyCoke)
  prefills every question; both are then timed on the first questions. The row's headline TTFT
  becomes this same-question value (:func:`relatives`), so TTFT(row) / TTFT(reference) = R.TTFT
  whenever the row prefilled every question the reference did; "TTFT all" stays every answer.
- R.NV_b = mean over the row's questions of 100 * kept / visual tokens (mean of per-question ratios)

and the row's R.Acc / R.TTFT / R.NV are the means of the per-benchmark values over the benchmarks
where both sides have them (means of ratios; this reproduces the paper's Fig. 1). A benchmark is
compared only when both runs answered the same questions on the same frames; every value that
is left out says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lmms_sttm.report.measures import mean
from lmms_sttm.report.model_args import NOT_A_METHOD, frames_label, setting_label, shared_setting
from lmms_sttm.report.rows import Row


@dataclass
class BenchRelative:
    """One benchmark's relatives (``None`` where not comparable; ``reasons`` says why)."""

    r_acc: float | None = None
    r_ttft: float | None = None
    r_nv: float | None = None
    ttft_s: float | None = None
    ttft_questions: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass
class Relative:
    """A row's relatives: the reference, per-benchmark values and their means."""

    reference: Row | None
    reason: str | None = None
    per_task: dict[str, BenchRelative] = field(default_factory=dict)

    def average(self, attr: str) -> tuple[float | None, int]:
        """Mean of one per-benchmark relative and the number of benchmarks it covers."""
        values = [v for b in self.per_task.values() if (v := getattr(b, attr)) is not None]
        return mean(values), len(values)


def find_reference(row: Row, rows: list[Row]) -> tuple[Row | None, str | None]:
    """The unreduced run to compare ``row`` with, or ``None`` and the reason there is none."""
    if row.is_reference:
        return None, "unreduced run: the reference of this checkpoint's relatives"
    if row.method == NOT_A_METHOD:
        return None, f"{row.model} is not a token-reduction run (no method= argument)"
    unreduced = [r for r in rows if r.is_reference]
    same_ckpt = [r for r in unreduced if r.pretrained == row.pretrained]
    same_model = [r for r in same_ckpt if r.model == row.model]
    if not same_model:
        if same_ckpt:
            models = ", ".join(sorted({r.model for r in same_ckpt}))
            return (
                None,
                f"the unreduced run of this checkpoint used another model ({models}), not {row.model}",
            )
        return None, f"no unreduced (method=none) run of {row.model} with pretrained={row.pretrained}"
    same_frames = [r for r in same_model if r.frames == row.frames]
    if not same_frames:
        others = "; ".join(sorted({frames_label(r.frames) for r in same_model}))
        return None, (
            f"the unreduced run uses other frames ({others}) than this row ({frames_label(row.frames)})"
        )
    if len(same_frames) == 1:
        return same_frames[0], None
    wanted = shared_setting(row.setting, row.method)
    exact = [r for r in same_frames if shared_setting(r.setting, r.method) == wanted]
    if len(exact) == 1:
        return exact[0], None
    names = "; ".join(setting_label(r.setting) for r in (exact or same_frames))
    return None, f"several unreduced runs could be the reference ({names}); report them separately"


def compare(row: Row, reference: Row) -> Relative:
    """Per-benchmark and averaged relatives of ``row`` against ``reference``."""
    rel = Relative(reference)
    for name, task in row.tasks.items():
        b = BenchRelative()
        rel.per_task[name] = b
        ref_task = reference.tasks.get(name)
        if ref_task is None:
            b.reasons.append("the unreduced run has no result for it")
            continue
        ours, theirs = task.doc_ids(), ref_task.doc_ids()
        if ours is not None and theirs is not None and ours != theirs:
            b.reasons.append(f"different questions ({len(ours)} vs {len(theirs)} in the unreduced run)")
            continue
        counts, ref_counts = (task.n_effective, task.n_original), (ref_task.n_effective, ref_task.n_original)
        if (ours is None or theirs is None) and counts != ref_counts:
            b.reasons.append("different question counts (no samples logs to match them)")
            continue
        m, mr = row.measures.get(name), reference.measures.get(name)
        if m is not None and mr is not None:
            differ = [d for d in set(m.per_doc) & set(mr.per_doc) if m.per_doc[d] != mr.per_doc[d]]
            if differ:
                d = sorted(differ, key=str)[0]
                b.reasons.append(
                    f"frames or visual tokens differ on {len(differ)} questions "
                    f"(doc {d}: {m.per_doc[d]} vs {mr.per_doc[d]} (frames, tokens))"
                )
                continue
        _fill(b, task.accuracy, ref_task.accuracy, m, mr)
    return rel


def _fill(b: BenchRelative, acc, ref_acc, m, mr) -> None:
    if acc is None or ref_acc is None:
        b.reasons.append("R.Acc: accuracy not scored on both sides")
    elif ref_acc == 0:
        b.reasons.append("R.Acc: the unreduced accuracy is 0")
    else:
        b.r_acc = 100.0 * acc / ref_acc
    if m is None:
        b.reasons.append("R.TTFT, R.NV: no statistics for this row")
        return
    _fill_ttft(b, m, mr)
    if m.retained_pct is None:
        b.reasons.append("R.NV: no token statistics")
    else:
        b.r_nv = m.retained_pct


def _fill_ttft(b: BenchRelative, m, mr) -> None:
    """R.TTFT over the questions prefilled on both sides (see the module docstring)."""
    if m.ttft_s is None or mr is None or mr.ttft_s is None:
        side = "this row" if m.ttft_s is None else "the unreduced run"
        b.reasons.append(f"R.TTFT: no timing statistics for {side}")
        return
    both = set(m.cold) & set(mr.cold)
    if not both:
        b.reasons.append("R.TTFT: no question had its video prefix prefilled on both sides")
        return
    b.ttft_s, b.ttft_questions = m.ttft_over(both), len(both)
    ref = mr.ttft_over(both)
    if len(both) < len(mr.cold):
        b.reasons.append(f"TTFT, R.TTFT over the {len(both)} of {len(mr.cold)} prefilled unreduced questions")
    if ref == 0:
        b.reasons.append("R.TTFT: the unreduced TTFT is 0")
    else:
        b.r_ttft = 100.0 * b.ttft_s / ref


def relatives(rows: list[Row]) -> dict[tuple, Relative]:
    """Each row's :class:`Relative`, keyed by ``Row.key``.

    A compared row's per-benchmark :class:`Measures` get the same-question TTFT as ``ttft_s``
    (the leaderboard, detail table and plots show that one); ``ttft_all_s`` is left as it is.
    """
    out = {}
    for row in rows:
        reference, reason = find_reference(row, rows)
        out[row.key] = compare(row, reference) if reference is not None else Relative(None, reason)
    for row in rows:
        for name, b in out[row.key].per_task.items():
            m = row.measures.get(name)
            if m is not None and b.ttft_s is not None:
                row.measures[name] = replace(m, ttft_s=b.ttft_s, ttft_questions=b.ttft_questions)
    return out
