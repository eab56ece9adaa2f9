"""lmms-eval model registration (entry-point group ``lmms_eval.models``).

lmms-eval imports this module on every start, so it imports nothing heavy: the model classes
are named by dotted path and imported by lmms-eval only when a run asks for them.
"""

from __future__ import annotations

#: registered model name -> "module.Class" (simple-style lmms models)
MODEL_CLASSES: dict[str, str] = {
    "llava_video_sttm": "lmms_sttm.models.llava_video_sttm.LlavaVideoSttm",
    "llava_onevision_sttm": "lmms_sttm.models.llava_onevision_sttm.LlavaOnevisionSttm",
    "qwen2_vl_sttm": "lmms_sttm.models.qwen2_vl_sttm.Qwen2VLSttm",
    "qwen2_5_vl_sttm": "lmms_sttm.models.qwen2_vl_sttm.Qwen25VLSttm",
    "sttm_oracle": "lmms_sttm.models.oracle.NeedleOracle",
}


def manifests():
    """Entry-point payload: one ModelManifest per model; also registers the task folder."""
    from lmms_eval.models.registry_v2 import ModelManifest

    from lmms_sttm import _task_path

    _task_path.install()
    return [ModelManifest(model_id=name, simple_class_path=path) for name, path in MODEL_CLASSES.items()]
