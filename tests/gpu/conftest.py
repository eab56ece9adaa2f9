"""A short synthetic clip (the tiny checkpoints come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> str:
    spec = ClipSpec(num_frames=16, height=96, width=96, fps=4, seed=2, cut_at=8)
    return str(ensure_clip(spec, tmp_path_factory.mktemp("clips") / "b.mp4"))
