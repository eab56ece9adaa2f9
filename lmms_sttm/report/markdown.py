"""Markdown rendering of :class:`~lmms_sttm.report.table.Table` lists."""

from __future__ import annotations

from lmms_sttm.report.table import Section, Table


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_md(table: Table, level: int = 2) -> str:
    lines = [f"{'#' * level} {table.title}", ""]
    if table.intro:
        lines += [table.intro, ""]
    lines.append("| " + " | ".join(_cell(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    if not table.rows:
        lines.append("| " + " | ".join("" for _ in table.headers) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def document_md(title: str, header: list[str], sections: list[Section], warnings: list[str]) -> str:
    """A whole report: title, header lines, sections of tables, and the warnings."""
    parts = [f"# {title}", "", *header, ""]
    for section in sections:
        parts += [f"## {section.heading}", ""]
        if section.text:
            parts += [section.text, ""]
        parts += [table_md(t, 3) for t in section.tables]
    if warnings:
        parts += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    return "\n".join(parts)
