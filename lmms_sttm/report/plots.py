"""Accuracy and TTFT against the share of visual tokens kept, one line per method (PNG files).

One panel per (model, checkpoint, frame setting); x is the mean retained-token percentage and y
the mean accuracy or TTFT, each averaged over the benchmarks that every row of the panel has
(so the points of a panel are comparable). Rendered with matplotlib's Agg canvas (no display).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from lmms_sttm.report.measures import mean
from lmms_sttm.report.model_args import frames_label, setting_label
from lmms_sttm.report.rows import Row


def _usable(row: Row, need_acc: bool) -> set[str]:
    """Tasks of ``row`` with a retention figure (and an accuracy when ``need_acc``)."""
    out = set()
    for name, m in row.measures.items():
        if m.retained_pct is None:
            continue
        if need_acc and row.tasks[name].accuracy is None:
            continue
        if not need_acc and m.ttft_s is None:
            continue
        out.add(name)
    return out


def panels(rows: list[Row]) -> dict[tuple, list[Row]]:
    out: dict[tuple, list[Row]] = {}
    for row in rows:
        out.setdefault((row.model, row.checkpoint, frames_label(row.frames)), []).append(row)
    return out


def series(rows: list[Row], metric: str) -> tuple[dict[str, list[tuple[float, float, str]]], list[str]]:
    """Per method, the (retained %, value, setting) points of one panel, and the benchmarks averaged."""
    need_acc = metric == "acc"
    sets = [s for r in rows if (s := _usable(r, need_acc))]
    common = sorted(set.intersection(*sets)) if sets else []
    lines: dict[str, list[tuple[float, float, str]]] = {}
    for row in rows:
        if not common or not _usable(row, need_acc) >= set(common):
            continue
        x = mean([row.measures[t].retained_pct for t in common])
        if need_acc:
            y = mean([row.tasks[t].accuracy for t in common])
        else:
            y = mean([row.measures[t].ttft_s for t in common])
        lines.setdefault(row.method, []).append((x, y, setting_label(row.setting)))
    return {m: sorted(p) for m, p in lines.items()}, common


def plot(rows: list[Row], metric: str, path: Path) -> Path:
    """Write one PNG (``metric`` is ``"acc"`` or ``"ttft"``)."""
    groups = panels(rows) or {("no runs", "", ""): []}
    fig = Figure(figsize=(5.2 * len(groups), 4.0), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    ylabel = "mean accuracy (%)" if metric == "acc" else "mean TTFT (s)"
    for ax, (key, members) in zip(axes, groups.items(), strict=True):
        lines, common = series(members, metric)
        for method, points in sorted(lines.items()):
            xs, ys, _ = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=method)
            for x, y, text in points:
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, alpha=0.7)
        if not lines:
            ax.text(
                0.5, 0.5, "no runs with token statistics", ha="center", va="center", transform=ax.transAxes
            )
        ax.set_title(f"{key[0]} {key[1]}\n{key[2]}; over {', '.join(c.removesuffix('_sttm') for c in common) or '—'}",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("retained visual tokens (%)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 105)
        ax.grid(True, alpha=0.3)
        if lines:
            ax.legend(title="method", fontsize=8)
    fig.savefig(path)
    return path
