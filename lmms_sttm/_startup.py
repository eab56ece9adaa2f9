"""Run by ``lmms_sttm.pth`` at interpreter start-up: puts the task-folder import hook in place.

Imports nothing beyond the standard modules ``_task_path`` needs and never raises: the hook does
nothing until ``lmms_eval.tasks`` is imported (see ``lmms_sttm/_task_path.py``).
"""

try:
    from lmms_sttm import _task_path

    _task_path.install()
except Exception:  # a start-up file must never break the interpreter
    pass
