"""Make lmms-eval find this package's task folder without ``--include_path``, at no import cost.

lmms-eval 0.7.3 has no entry-point group for tasks: a ``TaskManager`` indexes its own task folder
plus ``include_path``. We wrap ``TaskManager.initialize_tasks`` once so that every index also
covers ``lmms_sttm/tasks``. The question is *when* to wrap, without importing ``lmms_eval.tasks``
ourselves (that import pulls in torch, transformers and datasets: ~8 s; the model entry point runs
in every process that loads lmms-eval's model registry, whether or not it uses our models).

Mechanism: :func:`install` wraps at once if ``lmms_eval.tasks`` is already imported; otherwise it
puts a one-shot finder at the front of ``sys.meta_path``. When ``lmms_eval.tasks`` is first
imported, by whatever route (an eval run, ``lmms-eval tasks list``, a user's ``TaskManager()``),
the finder hands the import to the normal finders, lets the module execute, wraps
``TaskManager.initialize_tasks`` and removes itself. Until then it costs one string comparison per
import. Why this: Python has no post-import hook; a meta-path finder is the standard way to get
one (it is what ``wrapt``'s post-import hooks do), and it needs no lmms-eval internals beyond the
wrapped method. ``install`` runs from two places: the ``lmms_eval.models`` entry point
(``lmms_sttm.models.manifests``) and ``lmms_sttm.pth`` (``lmms_sttm/_startup.py``) at interpreter
start-up, which covers ``lmms-eval tasks list`` and plain ``TaskManager()`` (neither loads the
model registry).

Limits: the wrapper is installed only on the lmms-eval versions it was tested on
(``TESTED_LMMS_EVAL_VERSIONS``); a ``TaskManager`` class captured before the wrap is the same
class, so it is covered too, but a subclass that overrides ``initialize_tasks`` is not. Without
the start-up file (``python -S``, a ``--target`` install), only processes that load the model
registry before building a ``TaskManager`` find the tasks. ``install`` called while
``lmms_eval.tasks`` is half-imported (a circular import) wraps nothing. Nothing here ever raises into
lmms-eval: a failure gives one warning naming the cause and the fallback, ``--include_path``,
which keeps working and adds the folder once.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings

TESTED_LMMS_EVAL_VERSIONS = ("0.7.3",)
TASKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")
TARGET = "lmms_eval.tasks"
_MARK = "__lmms_sttm_wrapped__"


def warn_fallback(cause: str) -> None:
    """The one warning: what went wrong and how to pass the task folder by hand."""
    warnings.warn(
        f"lmms_sttm: {cause}; its tasks are not registered automatically: pass --include_path {TASKS_DIR}",
        stacklevel=3,
    )


def lmms_eval_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lmms_eval")
    except PackageNotFoundError:
        return None


def tested_version() -> bool:
    """Whether the installed lmms-eval is one this package's hooks were tested on."""
    return lmms_eval_version() in TESTED_LMMS_EVAL_VERSIONS


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


def wrap(tasks_module) -> bool:
    """Wrap ``tasks_module.TaskManager.initialize_tasks`` (idempotent); False with a warning if not."""
    try:
        if not tested_version():
            warn_fallback(f"lmms-eval {lmms_eval_version()} is not one of {TESTED_LMMS_EVAL_VERSIONS}")
            return False
        manager = tasks_module.TaskManager
        original = manager.initialize_tasks
        if getattr(original, _MARK, False):
            return True

        @functools.wraps(original)
        def initialize_tasks(self, include_path=None, include_defaults=True):
            return original(
                self, include_path=_with_our_tasks(include_path), include_defaults=include_defaults
            )

        setattr(initialize_tasks, _MARK, True)
        manager.initialize_tasks = initialize_tasks
        return True
    except Exception as exc:  # never raise into lmms-eval's loading
        warn_fallback(f"wrapping {TARGET}.TaskManager failed ({type(exc).__name__}: {exc})")
        return False


class _WrapAfterExec:
    """Loader proxy: runs the real loader, then wraps the module's ``TaskManager``."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        uninstall_finder()  # here, not in find_spec: the import system iterates sys.meta_path there
        self._loader.exec_module(module)
        wrap(module)


class _Finder:
    """``sys.meta_path`` entry that wraps the loader of ``lmms_eval.tasks`` (see the module docstring).

    Other finders' errors propagate unchanged: they are the import's own failure, not ours.
    """

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        for finder in list(sys.meta_path):
            find = None if isinstance(finder, _Finder) else getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        try:
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _WrapAfterExec(spec.loader)
        except Exception as exc:
            warn_fallback(f"the import hook for {TARGET} failed ({type(exc).__name__}: {exc})")
        return spec


def uninstall_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]


def install() -> None:
    """Registers the task folder now if ``lmms_eval.tasks`` is imported, else on its first import.

    Imports nothing and never raises.
    """
    try:
        module = sys.modules.get(TARGET)
        if module is not None and hasattr(module, "TaskManager"):
            wrap(module)
        elif not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
    except Exception as exc:
        warn_fallback(f"installing the import hook failed ({type(exc).__name__}: {exc})")
