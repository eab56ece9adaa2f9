"""Every built-in method passes the conformance rules on the frame-block families: Qwen3-VL (its
DeepStack features carried through every plan), InternVL3.5 and the hybrid Qwen3.5 (Gated DeltaNet
layers; stages reading attention moved to full-attention layers), dense and MoE."""

from __future__ import annotations

import pytest

from lmms_sttm.check_method import check
from lmms_sttm.methods import registry


@pytest.mark.parametrize("method", list(registry.BUILTIN))
def test_every_builtin_passes_on_the_frame_block_families(method):
    families = ("qwen3_vl", "internvl", "qwen3_5", "qwen3_5_moe") + (
        ("qwen3_vl_moe",) if method in ("sttm", "fastv") else ()
    )
    report = check(method, families=families, processes=False, timing_channels=0)
    assert report["ok"], report["first_failure"]
