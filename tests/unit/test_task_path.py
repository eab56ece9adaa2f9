"""The task-folder registration: idempotent, no duplicates, fenced to tested lmms-eval versions."""

from __future__ import annotations

import os

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
    assert getattr(TaskManager.initialize_tasks, _task_path._MARK, False)


def test_install_is_idempotent():
    assert _task_path.install()
    wrapped = TaskManager.initialize_tasks
    assert _task_path.install()
    assert TaskManager.initialize_tasks is wrapped


def test_include_path_gets_our_folder_once():
    ours = _task_path.TASKS_DIR
    assert _task_path._with_our_tasks(None) == [ours]
    assert _task_path._with_our_tasks("/x") == ["/x", ours]
    assert _task_path._with_our_tasks([ours + os.sep]) == [ours + os.sep]


def test_task_manager_finds_plugin_tasks_without_include_path():
    _task_path.install()
    tm = TaskManager("ERROR", include_defaults=False)
    assert "synthetic_needle_sttm" in tm.all_tasks


def test_untested_lmms_eval_version_is_not_patched(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(TaskManager, "initialize_tasks", TaskManager.initialize_tasks.__wrapped__)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: "0.9.0" if d == "lmms_eval" else real(d))
    with pytest.warns(UserWarning, match="--include_path"):
        assert not _task_path.install()
    assert not getattr(TaskManager.initialize_tasks, _task_path._MARK, False)
