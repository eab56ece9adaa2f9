"""Accuracy and relative TTFT against the share of visual tokens kept (PNG files).

One panel per (model, checkpoint, frame setting); one series per (method, budget mode): the
paper-threshold rows (``budget=``, native mode) and the exact-budget rows (``budget_mode=exact``)
of one method are separate lines, never joined. x is the mean retained-token percentage (R.NV).

- accuracy plot: y = the mean accuracy over the benchmarks every row of the panel has, with its 95%
  interval as error bars (:mod:`lmms_sttm.report.uncertainty`); the unreduced run at 100% kept.
- TTFT plot: y = R.TTFT (percent of the unreduced run's prefill time over the same questions),
  with its 90% bootstrap interval as error bars; the unreduced run at (100, 100). Relative, not
  absolute, because absolute seconds depend on the machine and its load during each run.

Rendered with matplotlib's Agg canvas (no display).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from lmms_sttm.report.measures import mean
from lmms_sttm.report.model_args import frames_label, setting_label
from lmms_sttm.report.relative import Relative
from lmms_sttm.report.rows import Row
from lmms_sttm.report.uncertainty import interval, mean_stderr, ttft_spread

#: one point: (x, y, y error below, y error above, setting label)
Point = tuple[float, float, float, float, str]


def series_name(row: Row) -> str:
    """``sttm, exact budget`` / ``sttm, paper settings``: the method and its budget mode."""
    if row.is_reference:
        return "none (unreduced)"
    mode = "exact budget" if row.setting.get("budget_mode") == "exact" else "paper settings"
    return f"{row.method}, {mode}"


def _usable(row: Row) -> set[str]:
    """Tasks of ``row`` with a retention figure and an accuracy."""
    return {
        name
        for name, m in row.measures.items()
        if m.retained_pct is not None and row.tasks[name].accuracy is not None
    }


def panels(rows: list[Row]) -> dict[tuple, list[Row]]:
    out: dict[tuple, list[Row]] = {}
    for row in rows:
        out.setdefault((row.model, row.checkpoint, frames_label(row.frames)), []).append(row)
    return out


def accuracy_series(rows: list[Row]) -> tuple[dict[str, list[Point]], list[str]]:
    """Per series, the points of one panel, and the benchmarks averaged (those every row has)."""
    sets = [s for r in rows if (s := _usable(r))]
    common = sorted(set.intersection(*sets)) if sets else []
    lines: dict[str, list[Point]] = {}
    for row in rows:
        if not common or not _usable(row) >= set(common):
            continue
        x = mean([row.measures[t].retained_pct for t in common])
        y = mean([row.tasks[t].accuracy for t in common])
        ci = interval(y, mean_stderr([row.tasks[t] for t in common]))
        low, high = (y - ci[0], ci[1] - y) if ci else (0.0, 0.0)
        lines.setdefault(series_name(row), []).append((x, y, low, high, setting_label(row.setting)))
    return {m: sorted(p) for m, p in lines.items()}, common


def ttft_series(rows: list[Row], rels: dict[tuple, Relative]) -> dict[str, list[Point]]:
    """Per series, (R.NV, R.TTFT) with the R.TTFT interval; the unreduced run at (100, 100)."""
    lines: dict[str, list[Point]] = {}
    for row in rows:
        rel = rels.get(row.key)
        if row.is_reference:
            if any(r for r in rels.values() if r.reference is row):
                lines.setdefault(series_name(row), []).append((100.0, 100.0, 0.0, 0.0, "unreduced"))
            continue
        if rel is None:
            continue
        r_ttft, _ = rel.average("r_ttft")
        r_nv, _ = rel.average("r_nv")
        if r_ttft is None or r_nv is None:
            continue
        sp = ttft_spread(row, rel)
        low, high = (max(0.0, r_ttft - sp.low), max(0.0, sp.high - r_ttft)) if sp else (0.0, 0.0)
        lines.setdefault(series_name(row), []).append((r_nv, r_ttft, low, high, setting_label(row.setting)))
    return {m: sorted(p) for m, p in lines.items()}


def palette(n: int) -> list:
    """``n`` distinct colours: matplotlib's tab10, then (past 10 series) tab20's lighter shades."""
    import matplotlib

    tab20 = list(matplotlib.colormaps["tab20"].colors)
    colours = tab20[0::2] + tab20[1::2]
    if n > len(colours):
        raise ValueError(f"{n} series in one plot: at most {len(colours)} have distinct colours")
    return colours[:n]


def plot(rows: list[Row], metric: str, path: Path, rels: dict[tuple, Relative] | None = None) -> Path:
    """Write one PNG (``metric`` is ``"acc"`` or ``"ttft"``)."""
    groups = panels(rows) or {("no runs", "", ""): []}
    fig = Figure(figsize=(7.5 * len(groups), 5.0), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (key, members) in zip(axes, groups.items(), strict=True):
        if metric == "acc":
            lines, common = accuracy_series(members)
            over = ", ".join(c.removesuffix("_sttm") for c in common) or "—"
            ax.set_ylabel("mean accuracy (%), 95% interval")
        else:
            lines, over = ttft_series(members, rels or {}), "paired prefilled questions"
            ax.set_ylabel("R.TTFT (% of the unreduced prefill time), 90% interval")
            ax.axhline(100.0, color="0.6", lw=0.8, ls=":")
        for (name, points), colour in zip(sorted(lines.items()), palette(len(lines)), strict=True):
            xs, ys, lo, hi, _ = zip(*points, strict=True)
            style = "--" if name.endswith("exact budget") else "-"
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", ls=style, capsize=3, label=name, color=colour)
            for x, y, _, _, text in points:
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6, alpha=0.7)
        if not lines:
            ax.text(
                0.5, 0.5, "no runs with token statistics", ha="center", va="center", transform=ax.transAxes
            )
        ax.set_title(f"{key[0]} {key[1]}\n{key[2]}; over {over}", fontsize=9)
        ax.set_xlabel("retained visual tokens (%)")
        ax.set_xlim(0, 105)
        ax.grid(True, alpha=0.3)
        if lines:
            ax.legend(title="method, budget mode", fontsize=7, loc="best")
    fig.savefig(path)
    return path
