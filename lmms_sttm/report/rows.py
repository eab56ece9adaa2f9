"""Leaderboard rows: runs grouped by model + pretrained + method + setting.

Several runs may feed one row (e.g. one run per benchmark); when two runs of a row evaluated the
same task, the newer one is used and the row notes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from lmms_sttm.report.measures import Measures, measure
from lmms_sttm.report.model_args import frames_of, setting_label, setting_of
from lmms_sttm.report.runs import Run, TaskRun


@dataclass
class Row:
    """One (model, pretrained, method, setting) with its tasks, each from the newest run."""

    model: str
    pretrained: str
    method: str
    setting: dict[str, str]
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    measures: dict[str, Measures] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return (self.model, self.pretrained, self.method, setting_label(self.setting))

    @property
    def frames(self) -> dict[str, str]:
        return frames_of(self.setting)

    @property
    def checkpoint(self) -> str:
        """The last two parts of ``pretrained`` (as lmms-eval names its output folder)."""
        parts = PurePath(self.pretrained).parts if self.pretrained else ()
        return "/".join(parts[-2:]) if parts else "—"

    @property
    def label(self) -> str:
        return f"{self.model} {self.checkpoint} {self.method} [{setting_label(self.setting)}]"

    @property
    def is_reference(self) -> bool:
        return self.method == "none"


def build_rows(runs: list[Run]) -> list[Row]:
    """Rows in a stable order: model, checkpoint, unreduced first, then method and setting."""
    rows: dict[tuple, Row] = {}
    for run in sorted(runs, key=lambda r: (r.timestamp, str(r.path))):
        setting = setting_of(run.args)
        row = Row(run.model, run.pretrained, run.method, setting)
        row = rows.setdefault(row.key, row)
        row.runs.append(run)
        for name, task in run.tasks.items():
            if name in row.tasks:
                older = next(r for r in row.runs if row.tasks[name] in r.tasks.values())
                row.notes.append(f"{name}: {run.path.name} replaces the older {older.path.name}")
            row.tasks[name] = task
    for row in rows.values():
        row.measures = {name: measure(t.stats, t.failures) for name, t in row.tasks.items() if t.stats_found}
    return sorted(
        rows.values(),
        key=lambda r: (r.model, r.pretrained, r.method != "none", r.method, setting_label(r.setting)),
    )
