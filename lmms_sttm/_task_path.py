"""Make lmms-eval find this package's task folder without ``--include_path``.

lmms-eval 0.7.3 has no entry-point group for tasks, and its ``LMMS_EVAL_PLUGINS`` route adds a
plugin's task folder only after the ``TaskManager`` was built (so tasks are "not found"). But it
imports the ``lmms_eval.models`` entry points (our :func:`lmms_sttm.models.manifests`) before it
builds that ``TaskManager``. There we wrap ``TaskManager.initialize_tasks`` once so that every
task index also covers ``lmms_sttm/tasks``. The wrapper is idempotent, adds the folder at most
once (an explicit ``--include_path`` to it keeps working), and is installed only on the
lmms-eval versions it was tested on; on others a warning says to pass ``--include_path``.
"""

from __future__ import annotations

import functools
import os
import warnings

TESTED_LMMS_EVAL_VERSIONS = ("0.7.3",)
TASKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")
_MARK = "__lmms_sttm_wrapped__"


def _with_our_tasks(include_path):
    paths = (
        []
        if include_path is None
        else [include_path]
        if isinstance(include_path, str)
        else list(include_path)
    )
    if not any(os.path.realpath(str(p)) == os.path.realpath(TASKS_DIR) for p in paths):
        paths.append(TASKS_DIR)
    return paths


def install() -> bool:
    """Wrap ``TaskManager.initialize_tasks``; returns whether the wrapper is in place."""
    from importlib.metadata import version as dist_version

    from lmms_eval.tasks import TaskManager

    original = TaskManager.initialize_tasks
    if getattr(original, _MARK, False):
        return True
    version = dist_version("lmms_eval")
    if version not in TESTED_LMMS_EVAL_VERSIONS:
        warnings.warn(
            f"lmms_sttm: lmms-eval {version} is not one of {TESTED_LMMS_EVAL_VERSIONS}; its tasks are not "
            f"registered automatically. Pass --include_path {TASKS_DIR}",
            stacklevel=2,
        )
        return False

    @functools.wraps(original)
    def initialize_tasks(self, include_path=None, include_defaults=True):
        return original(self, include_path=_with_our_tasks(include_path), include_defaults=include_defaults)

    setattr(initialize_tasks, _MARK, True)
    TaskManager.initialize_tasks = initialize_tasks
    return True
