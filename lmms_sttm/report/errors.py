"""The report's one exception type: a user-facing problem with the inputs (printed, exit code 2)."""

from __future__ import annotations


class ReportError(Exception):
    """Inputs the report cannot use: a missing directory, no results file, an unreadable file."""
