"""The task-folder registration: idempotent, no duplicates, fenced to tested lmms-eval versions."""

from __future__ import annotations

import os
import sys
import types

import pytest
from lmms_eval.tasks import TaskManager

from lmms_sttm import _task_path
from lmms_sttm.models import MODEL_CLASSES, manifests


def test_manifests_name_importable_classes_and_install_the_task_path():
    from lmms_eval.api.model import lmms

    ms = manifests()
    assert {m.model_id for m in ms} == set(MODEL_CLASSES)
    for m in ms:
        module, cls = m.simple_class_path.rsplit(".", 1)
        assert issubclass(getattr(__import__(module, fromlist=[cls]), cls), lmms)
    # lmms_eval.tasks is imported here already: install() wraps at once.
    assert getattr(TaskManager.initialize_tasks, _task_path._MARK, False)


def test_install_is_idempotent():
    _task_path.install()
    wrapped = TaskManager.initialize_tasks
    _task_path.install()
    assert TaskManager.initialize_tasks is wrapped
    assert not any(isinstance(f, _task_path._Finder) for f in sys.meta_path)


def test_include_path_gets_our_folder_once():
    ours = _task_path.TASKS_DIR
    assert _task_path._with_our_tasks(None) == [ours]
    assert _task_path._with_our_tasks("/x") == ["/x", ours]
    assert _task_path._with_our_tasks([ours + os.sep]) == [ours + os.sep]


def test_task_manager_finds_plugin_tasks_without_include_path():
    _task_path.install()
    tm = TaskManager("ERROR", include_defaults=False)
    assert "synthetic_needle_sttm" in tm.all_tasks
    again = TaskManager("ERROR", include_path=_task_path.TASKS_DIR, include_defaults=False)
    assert sorted(again.all_tasks) == sorted(tm.all_tasks)


def test_untested_lmms_eval_version_is_not_patched(monkeypatch):
    import importlib.metadata

    fresh = types.SimpleNamespace(TaskManager=type("TM", (), {"initialize_tasks": lambda self: None}))
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: "0.9.0" if d == "lmms_eval" else real(d))
    with pytest.warns(UserWarning, match="lmms-eval 0.9.0 .*--include_path"):
        assert not _task_path.wrap(fresh)
    assert not getattr(fresh.TaskManager.initialize_tasks, _task_path._MARK, False)


def test_wrap_never_raises_when_lmms_eval_moved_task_manager():
    with pytest.warns(UserWarning, match="AttributeError.*--include_path") as caught:
        assert not _task_path.wrap(types.SimpleNamespace())
    assert len(caught) == 1


def test_manifests_survive_a_failing_registration(monkeypatch):
    def boom():
        raise RuntimeError("simulated")

    monkeypatch.setattr(_task_path, "install", boom)
    with pytest.warns(UserWarning, match="RuntimeError: simulated.*--include_path") as caught:
        ms = manifests()
    assert len(caught) == 1
    assert {m.model_id for m in ms} == set(MODEL_CLASSES)
