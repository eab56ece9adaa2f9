"""Tiny checkpoints (built once per session) and a short synthetic clip."""

from __future__ import annotations

import pytest

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.data.tiny import build_tiny


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    cache: dict[str, str] = {}

    def get(arch: str) -> str:
        if arch not in cache:
            cache[arch] = str(build_tiny(arch, root / arch))
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> str:
    spec = ClipSpec(num_frames=16, height=96, width=96, fps=4, seed=2, cut_at=8)
    return str(ensure_clip(spec, tmp_path_factory.mktemp("clips") / "b.mp4"))
