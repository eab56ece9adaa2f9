"""A rendered-agnostic table (title, headings, string cells, footnotes) and number formatting.

The Markdown and HTML writers render :class:`Table`; the CSV files are written from the raw
records instead, with empty cells (never zeros) for missing values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: the cell text for a value that does not exist (never a zero)
MISSING = "—"


@dataclass
class Table:
    """A titled table of text cells with optional notes printed under it."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    intro: str = ""


@dataclass
class Section:
    """A headed group of tables (``css`` classes the HTML section; ``text`` is printed first)."""

    heading: str
    css: str
    tables: list[Table] = field(default_factory=list)
    text: str = ""


def num(value: float | None, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, or :data:`MISSING`."""
    return MISSING if value is None else f"{value:.{digits}f}"


def count_suffix(have: int, total: int) -> str:
    """`` (2/3)`` when only ``have`` of ``total`` parts were averaged, else empty."""
    return f" ({have}/{total})" if have < total else ""
