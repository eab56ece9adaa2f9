"""Configs of the real-size checkpoints, shipped so that their architectures can be built offline.

- ``llava_video_7b_qwen2.json``: ``lmms-lab/LLaVA-Video-7B-Qwen2`` (LLaVA-NeXT layout; the tower is
  ``google/siglip-so400m-patch14-384``, 26 of its 27 encoder layers stored, hence ``stored_vision_layers``);
- ``qwen2_vl_7b_instruct.json``: ``Qwen/Qwen2-VL-7B-Instruct`` (transformers layout).

No weights: ``scripts/gpu_check.py`` builds the architectures with random weights.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(name: str) -> dict:
    """The shipped config ``<name>.json`` as a dict."""
    return json.loads((HERE / f"{name}.json").read_text())
