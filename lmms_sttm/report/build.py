"""Collect runs into a report and write its files (Markdown, CSV, HTML, PNG).

Files written under ``out``:

- ``leaderboard.md``: all tables (leaderboard, per benchmark, paper reference, runs, warnings).
- ``leaderboard.csv`` (one line per row), ``per_benchmark.csv`` (per row and benchmark),
  ``runs.csv`` (provenance), ``paper_reference.csv`` (when paper tables are shown),
  ``breakdowns.md`` / ``breakdowns.csv`` (with ``breakdowns=True``).
- ``index.html`` with ``acc_vs_retained.png`` and ``ttft_vs_retained.png`` (relative TTFT).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from lmms_sttm.report import markdown, plots
from lmms_sttm.report.benchmarks import Column, column_order
from lmms_sttm.report.breakdowns import breakdown_records, breakdown_tables
from lmms_sttm.report.csv_out import write_csv
from lmms_sttm.report.detail import detail_records, detail_table
from lmms_sttm.report.html import page
from lmms_sttm.report.leaderboard import leaderboard_table
from lmms_sttm.report.method_papers import method_paper_tables
from lmms_sttm.report.paper import PAPER_MODELS, paper_models_for
from lmms_sttm.report.paper_tables import paper_table
from lmms_sttm.report.provenance import run_records, runs_table
from lmms_sttm.report.relative import Relative, relatives
from lmms_sttm.report.rows import Row, build_rows
from lmms_sttm.report.runs import Run, load_runs
from lmms_sttm.report.table import Section

TITLE = "lmms_sttm leaderboard"
PAPER_CHOICES = ("matched", "all", "none")
PLOTS = (
    (
        "acc_vs_retained.png",
        "acc",
        "Accuracy vs retained visual tokens, 95% intervals (one line per method and budget mode)",
    ),
    (
        "ttft_vs_retained.png",
        "ttft",
        "R.TTFT (% of the unreduced prefill time) vs retained visual tokens, 90% intervals "
        "(one line per method and budget mode)",
    ),
)


@dataclass
class Report:
    """Everything the writers need."""

    runs: list[Run]
    rows: list[Row]
    rels: dict[tuple, Relative]
    columns: list[Column]
    paper_models: list[str]
    warnings: list[str] = field(default_factory=list)


def collect(dirs: list, metric_overrides: dict | None = None, paper: str = "matched") -> Report:
    """Load the runs under ``dirs`` and compute rows and relatives."""
    if paper not in PAPER_CHOICES:
        raise ValueError(f"paper={paper!r}; use one of {PAPER_CHOICES}")
    runs = load_runs(dirs, metric_overrides)
    rows = build_rows(runs)
    columns = column_order([t.column for r in rows for t in r.tasks.values()])
    if paper == "all":
        models = [k for keys in PAPER_MODELS.values() for k in keys]
    elif paper == "matched":
        models = list(dict.fromkeys(k for r in rows for k in paper_models_for(r.model, r.pretrained)))
    else:
        models = []
    warnings = [f"{r.path.name}: {w}" for r in runs for w in r.warnings]
    return Report(runs, rows, relatives(rows), columns, models, warnings)


def write(report: Report, out: Path, breakdowns: bool = False, command: str | None = None) -> dict[str, Path]:
    """Write the report's files into ``out`` (created); returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    board, board_records = leaderboard_table(report.rows, report.rels, report.columns)
    details = detail_records(report.rows, report.rels)
    runs = run_records(report.runs)
    paper = [paper_table(m) for m in report.paper_models]
    published = method_paper_tables(r.method for r in report.rows) if report.paper_models else []
    files["leaderboard.csv"] = write_csv(out / "leaderboard.csv", board_records)
    files["per_benchmark.csv"] = write_csv(out / "per_benchmark.csv", details)
    files["runs.csv"] = write_csv(out / "runs.csv", runs)
    if paper:
        files["paper_reference.csv"] = write_csv(
            out / "paper_reference.csv", [r for _, recs in paper for r in recs]
        )
    if published:
        files["method_papers.csv"] = write_csv(
            out / "method_papers.csv", [r for _, recs in published for r in recs]
        )
    for name, metric, _ in PLOTS:
        files[name] = plots.plot(report.rows, metric, out / name, report.rels)

    header = [
        f"Generated {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} from {len(report.runs)} lmms-eval runs.",
    ]
    if command:
        header.append(f"Command: {command}")
    sections = [Section("Our runs", "ours", [board, detail_table(details)])]
    if paper:
        text = "The paper's published numbers (its hardware and protocol), never mixed into our relatives."
        sections.append(Section("Paper (reference)", "paper", [t for t, _ in paper + published], text))
    if breakdowns:
        records = breakdown_records(report.rows)
        tables = breakdown_tables(records)
        text = "" if tables else "No breakdown fields (duration, task_type, ...) in the samples logs."
        files["breakdowns.csv"] = write_csv(out / "breakdowns.csv", records)
        md = markdown.document_md(
            TITLE + ": breakdowns", header, [Section("Breakdowns", "", tables, text)], []
        )
        (out / "breakdowns.md").write_text(md, encoding="utf-8")
        files["breakdowns.md"] = out / "breakdowns.md"
        sections.append(Section("Breakdowns", "breakdowns", tables, text))
    sections.append(Section("Runs", "runs", [runs_table(runs)]))

    md = markdown.document_md(TITLE, header, sections, report.warnings)
    (out / "leaderboard.md").write_text(md, encoding="utf-8")
    files["leaderboard.md"] = out / "leaderboard.md"
    images = [(name, caption) for name, _, caption in PLOTS]
    (out / "index.html").write_text(page(TITLE, header, sections, images, report.warnings), encoding="utf-8")
    files["index.html"] = out / "index.html"
    return files


def build_report(
    dirs: list,
    out: str | Path,
    *,
    breakdowns: bool = False,
    paper: str = "matched",
    metric_overrides: dict | None = None,
    command: str | None = None,
) -> dict[str, Path]:
    """Read the runs under ``dirs`` and write the report into ``out``; returns name -> path."""
    report = collect(dirs, metric_overrides, paper)
    return write(report, Path(out), breakdowns=breakdowns, command=command)
