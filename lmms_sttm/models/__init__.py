"""lmms-eval model registration (entry-point group ``lmms_eval.models``).

lmms-eval imports this module on every start (``import lmms_eval.models`` loads every plugin's
entry point), so it imports nothing heavy: no torch, transformers, datasets or
``lmms_eval.tasks``. The model classes are named by dotted path and imported by lmms-eval only
when a run asks for them; the task folder is registered lazily (``lmms_sttm._task_path``).

:func:`manifests` never raises: lmms-eval 0.7.3 loads all entry points inside one ``try``, so an
exception here would also drop every plugin loaded after this one.
"""

from __future__ import annotations

import sys

#: registered model name -> "module.Class" (simple-style lmms models)
MODEL_CLASSES: dict[str, str] = {
    "llava_video_sttm": "lmms_sttm.models.llava_video_sttm.LlavaVideoSttm",
    "llava_onevision_sttm": "lmms_sttm.models.llava_onevision_sttm.LlavaOnevisionSttm",
    "qwen2_vl_sttm": "lmms_sttm.models.qwen2_vl_sttm.Qwen2VLSttm",
    "qwen2_5_vl_sttm": "lmms_sttm.models.qwen2_vl_sttm.Qwen25VLSttm",
    "qwen3_vl_sttm": "lmms_sttm.models.qwen3_vl_sttm.Qwen3VLSttm",
    "qwen3_5_sttm": "lmms_sttm.models.qwen3_5_sttm.Qwen35Sttm",
    "internvl3_5_sttm": "lmms_sttm.models.qwen3_vl_sttm.InternVL35Sttm",
    "sttm_oracle": "lmms_sttm.models.oracle.NeedleOracle",
}


def _show_in_models_listing() -> None:
    """``lmms-eval models`` (0.7.3) prints the keys of ``lmms_eval.models.AVAILABLE_SIMPLE_MODELS``,
    not the registry; lmms-eval's own legacy plugin route adds its models there with a dotted path,
    and so do we, on the tested lmms-eval versions only. Runs while ``lmms_eval.models`` executes
    (the entry points are loaded from its module body), so the module is taken from
    ``sys.modules``, never imported."""
    from lmms_sttm import _task_path

    table = getattr(sys.modules.get("lmms_eval.models"), "AVAILABLE_SIMPLE_MODELS", None)
    if isinstance(table, dict) and _task_path.tested_version():
        for name, path in MODEL_CLASSES.items():
            table.setdefault(name, path)


def manifests():
    """Entry-point payload: one ``ModelManifest`` per model; also registers the task folder lazily."""
    try:
        from lmms_eval.models.registry_v2 import ModelManifest

        found = [ModelManifest(model_id=name, simple_class_path=path) for name, path in MODEL_CLASSES.items()]
    except Exception as exc:
        _warn(f"cannot build its model manifests ({type(exc).__name__}: {exc})")
        return []
    try:
        from lmms_sttm import _task_path

        _task_path.install()
        _show_in_models_listing()
    except Exception as exc:
        _warn(f"registration failed ({type(exc).__name__}: {exc})")
    return found


def _warn(cause: str) -> None:
    try:
        from lmms_sttm._task_path import warn_fallback

        warn_fallback(cause)
    except Exception:
        pass
