"""The main leaderboard: one row per (model, pretrained, method, setting).

Columns: accuracy per benchmark, Avg (mean accuracy over the row's scored benchmarks), each with
its 95% interval, NV and TTFT (means over the row's benchmarks of the per-benchmark means), and
R.Acc / R.TTFT / R.NV (means of per-benchmark relatives, :mod:`lmms_sttm.report.relative`), R.TTFT
with its 90% interval and the machine-speed control (:mod:`lmms_sttm.report.uncertainty`). A value
averaged over fewer benchmarks than the table has carries ``(have/total)``; the Notes column says
what is missing, why relatives are empty, and flags a kept share far from the row's label.
"""

from __future__ import annotations

from lmms_sttm.report.benchmarks import Column
from lmms_sttm.report.measures import mean
from lmms_sttm.report.model_args import frames_label, setting_label
from lmms_sttm.report.relative import Relative
from lmms_sttm.report.rows import Row
from lmms_sttm.report.runs import TaskRun
from lmms_sttm.report.table import MISSING, Table, count_suffix, num
from lmms_sttm.report.uncertainty import far_from_label, interval, mean_stderr, ttft_spread


def task_in(row: Row, column: Column) -> TaskRun | None:
    return next((t for t in row.tasks.values() if t.column.key == column.key), None)


def scored_columns(rows: list[Row], columns: list[Column]) -> list[Column]:
    """Columns where at least one row has an accuracy."""
    return [
        c for c in columns if any((t := task_in(r, c)) is not None and t.accuracy is not None for r in rows)
    ]


def record(row: Row, rel: Relative, columns: list[Column], scored: list[Column]) -> dict:
    """The row's raw values (CSV) and the facts its display cells need."""
    tasks = {c.key: task_in(row, c) for c in columns}
    accs = [t.accuracy for c in scored if (t := tasks[c.key]) is not None and t.accuracy is not None]
    nvs = [m.nv for m in row.measures.values() if m.nv is not None]
    ttfts = [m.ttft_s for m in row.measures.values() if m.ttft_s is not None]
    r_acc, n_acc = rel.average("r_acc")
    r_ttft, n_ttft = rel.average("r_ttft")
    r_nv, n_nv = rel.average("r_nv")
    rec = {
        "model": row.model,
        "pretrained": row.pretrained,
        "method": row.method,
        "setting": setting_label(row.setting),
        "frames": frames_label(row.frames),
    }
    for c in columns:
        t = tasks[c.key]
        rec[f"acc_{c.key}"] = t.accuracy if t is not None else None
        ci = interval(t.accuracy, t.stderr) if t is not None else None
        rec[f"acc_{c.key}_stderr"] = t.stderr if t is not None else None
        rec[f"acc_{c.key}_stderr_kind"] = (t.stderr_kind or "") if t is not None else ""
        rec[f"acc_{c.key}_ci95_low"], rec[f"acc_{c.key}_ci95_high"] = ci or (None, None)
        rec[f"failed_{c.key}"] = len(t.failures) if t is not None and t.stats_found else None
    scored_tasks = [t for c in scored if (t := tasks[c.key]) is not None and t.accuracy is not None]
    avg_ci = interval(mean(accs), mean_stderr(scored_tasks))
    sp = ttft_spread(row, rel)
    far = far_from_label(r_nv, row.setting)
    rec.update(
        avg_acc=mean(accs),
        avg_acc_ci95_low=avg_ci[0] if avg_ci else None,
        avg_acc_ci95_high=avg_ci[1] if avg_ci else None,
        avg_acc_benchmarks=len(accs),
        nv=mean(nvs),
        ttft_s=mean(ttfts),
        stats_benchmarks=len(row.measures),
        r_acc=r_acc,
        r_ttft=r_ttft,
        r_nv=r_nv,
        r_ttft_ci90_low=sp.low if sp else None,
        r_ttft_ci90_high=sp.high if sp else None,
        r_ttft_questions=sp.questions if sp else None,
        speed_control=sp.vision_ratio if sp else None,
        kept_far_from_label=bool(far),
        r_acc_benchmarks=n_acc,
        r_ttft_benchmarks=n_ttft,
        r_nv_benchmarks=n_nv,
        reference=rel.reference.label if rel.reference is not None else "",
        notes="; ".join(([f"(!) {far}"] if far else []) + notes(row, rel)),
    )
    return rec


def notes(row: Row, rel: Relative) -> list[str]:
    """What is missing, partial or failed in the row, and why relatives are empty."""
    out: list[str] = []
    if rel.reason:
        out.append(("no relatives: " if not row.is_reference else "") + rel.reason)
    for name, b in rel.per_task.items():
        if b.reasons:
            out.append(f"{row.tasks[name].column.label}: " + ", ".join(b.reasons))
    for t in row.tasks.values():
        if t.failures:
            out.append(f"{t.column.label}: {len(t.failures)} failed answers (scored as wrong)")
        if t.n_effective is not None and t.n_original is not None and t.n_effective < t.n_original:
            out.append(f"{t.column.label}: partial, {t.n_effective} of {t.n_original} questions")
        if t.samples is not None and t.n_effective is not None and len(t.samples) != t.n_effective:
            out.append(f"{t.column.label}: {len(t.samples)} samples logged of {t.n_effective}")
        if not t.stats_found:
            out.append(f"{t.column.label}: no statistics (NV/TTFT unknown)")
        if t.metric is None:
            out.append(f"{t.column.label}: not scored locally (submission to the benchmark server)")
    return out + row.notes


def with_interval(value: float | None, low: float | None, high: float | None, digits: int = 1) -> str:
    """``70.5 [59.7, 81.3]``; the value alone without an interval."""
    text = num(value, digits)
    if low is None or high is None:
        return text
    return f"{text} [{num(low, digits)}, {num(high, digits)}]"


def acc_cell(task: TaskRun | None) -> str:
    if task is None:
        return MISSING
    if task.metric is None:
        return "unscored"
    ci = interval(task.accuracy, task.stderr)
    text = with_interval(task.accuracy, *(ci or (None, None)))
    extra = []
    if task.n_effective is not None and task.n_original is not None and task.n_effective < task.n_original:
        extra.append(f"{task.n_effective}/{task.n_original}")
    if task.failures:
        extra.append(f"{len(task.failures)} failed")
    return text + (f" ({', '.join(extra)})" if extra else "")


def leaderboard_table(rows: list[Row], rels: dict, columns: list[Column]) -> tuple[Table, list[dict]]:
    """The display table and the CSV records, in row order."""
    scored = scored_columns(rows, columns)
    headers = ["Model", "Checkpoint", "Method", "Setting", *[c.label for c in columns]]
    headers += ["Avg", "NV", "TTFT (s)", "R.Acc", "R.TTFT [90%]", "Speed control", "R.NV", "Notes"]
    table = Table("Leaderboard (our runs)", headers)
    records = []
    for row in rows:
        rel = rels[row.key]
        rec = record(row, rel, columns, scored)
        records.append(rec)
        n_tasks = len(row.tasks)
        cells = [row.model, row.checkpoint, row.method, rec["setting"]]
        cells += [acc_cell(task_in(row, c)) for c in columns]
        avg = rec["avg_acc"]
        avg_text = with_interval(avg, rec["avg_acc_ci95_low"], rec["avg_acc_ci95_high"])
        cells.append(
            MISSING if avg is None else avg_text + count_suffix(rec["avg_acc_benchmarks"], len(scored))
        )
        stats_n = rec["stats_benchmarks"]
        cells.append(MISSING if rec["nv"] is None else num(rec["nv"], 0) + count_suffix(stats_n, n_tasks))
        cells.append(
            MISSING if rec["ttft_s"] is None else num(rec["ttft_s"], 3) + count_suffix(stats_n, n_tasks)
        )
        for key in ("r_acc", "r_ttft", "r_nv"):
            value = rec[key]
            have = rec[f"{key}_benchmarks"]
            text = num(value)
            if key == "r_ttft":
                text = with_interval(value, rec["r_ttft_ci90_low"], rec["r_ttft_ci90_high"], 0)
            elif key == "r_nv" and rec["kept_far_from_label"]:
                text += " (!)"
            cells.append(MISSING if value is None else text + count_suffix(have, n_tasks))
            if key == "r_ttft":
                control = rec["speed_control"]
                cells.append(MISSING if control is None else num(control, 0))
        cells.append(rec["notes"] or "")
        table.rows.append(cells)
    table.notes = [
        "Accuracy in percent (each task's headline metric); Avg = mean over the row's scored benchmarks.",
        "NV = mean visual tokens kept per question; TTFT = mean LLM prefill time (merge included, vision "
        "encoder excluded) of the questions whose video prefix was prefilled for them, in a reduced row "
        "only those also prefilled in its unreduced run (R.TTFT compares the same questions); both "
        "averaged over benchmarks.",
        "R.Acc / R.TTFT = mean over benchmarks of 100 × value / value of the same checkpoint's unreduced "
        "(method=none) run on the same frames; R.NV = mean over benchmarks of the mean per-question "
        "retained-token percentage.",
        "Accuracy [a, b]: 95% interval, ± 1.96 standard errors (lmms-eval's clustered standard error where "
        "the task groups a video's questions, as VNBench's 4 tries; else its CLT one).",
        "R.TTFT [a, b]: 90% bootstrap interval over the paired questions (the question-to-question spread "
        "within the two runs). Speed control = 100 × the row's median vision-tower time / the unreduced "
        "run's: the same work in both, so far from 100 the machine ran at another speed during one of the "
        "two runs and R.TTFT is off by about that factor.",
        "(!): the row keeps a share of the visual tokens far from its label (more than max(5, label/4) "
        "points away), e.g. the paper's thresholds on a model they were not tuned for.",
        "(k/n): averaged over k of n benchmarks; — : no value (see Notes).",
    ]
    return table, records
