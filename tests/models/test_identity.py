"""The checkpoint fingerprint a calibration is checked against: the same for one checkpoint however it
is passed and loaded, different for another model or another configuration."""

from __future__ import annotations

import json
import shutil

import torch

from lmms_sttm.models.checkpoints import load_checkpoint
from lmms_sttm.models.identity import config_fingerprint


def _fingerprint(path, **kwargs) -> str:
    return config_fingerprint(load_checkpoint(str(path), **kwargs).model.config)


def test_same_checkpoint_elsewhere_in_another_dtype_and_kernel_has_one_fingerprint(
    tiny_checkpoints, tmp_path
):
    src = tiny_checkpoints("qwen2_vl")
    copy = shutil.copytree(src, tmp_path / "elsewhere")
    a = _fingerprint(src, dtype=torch.float32, attn_implementation="sdpa")
    b = _fingerprint(copy, dtype=torch.bfloat16, attn_implementation="eager")
    assert a == b and len(a) == 64


def test_another_model_or_configuration_has_another_fingerprint(tiny_checkpoints, tmp_path):
    qwen = tiny_checkpoints("qwen2_vl")
    llava = tiny_checkpoints("llava_video")
    assert _fingerprint(qwen) != _fingerprint(llava)
    deeper = shutil.copytree(qwen, tmp_path / "deeper")
    config = json.loads((deeper / "config.json").read_text())
    config["text_config"]["rms_norm_eps"] = 1e-5  # was 1e-6
    (deeper / "config.json").write_text(json.dumps(config))
    assert _fingerprint(deeper) != _fingerprint(qwen)
