"""Leaderboard report of lmms-eval runs made with this plugin (``python -m lmms_sttm.report``).

Modules, in data-flow order: :mod:`runs` (results.json, samples logs, :mod:`stats_files`),
:mod:`rows` (grouping by model + pretrained + method + setting), :mod:`measures` (NV, retention,
TTFT), :mod:`relative` (relatives against the unreduced run), :mod:`leaderboard`, :mod:`detail`,
:mod:`paper_tables` / :mod:`paper` (the paper's numbers from :mod:`reference`), :mod:`breakdowns`,
:mod:`provenance`, and the writers :mod:`markdown`, :mod:`csv_out`, :mod:`html`, :mod:`plots`,
tied together by :mod:`build`.
"""

from __future__ import annotations

from lmms_sttm.report.build import build_report
from lmms_sttm.report.errors import ReportError

__all__ = ["ReportError", "build_report"]
