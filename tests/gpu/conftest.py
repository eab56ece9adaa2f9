"""Tiny checkpoints, built once per test session (offline, deterministic)."""

from __future__ import annotations

import pytest

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
