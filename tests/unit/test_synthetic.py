"""Synthetic clips are deterministic, validated, and the committed task data matches the generator."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from lmms_sttm._task_path import TASKS_DIR
from lmms_sttm.data.synthetic import NEEDLE_COLOURS, ClipSpec, ensure_clip, needle_task_docs, render_frames
from lmms_sttm.models.oracle import needle_colour
from lmms_sttm.video import read_frames


def test_render_is_deterministic_and_has_known_content():
    spec = ClipSpec(num_frames=12, height=64, width=96, seed=5, cut_at=6, needle_at=3, needle_colour="yellow")
    a, b = render_frames(spec), render_frames(spec)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (12, 64, 96, 3) and a.dtype == np.uint8
    assert needle_colour(a[3:4]) == "yellow"
    assert needle_colour(np.delete(a, 3, axis=0)) is None  # no other frame looks like a needle
    assert not np.array_equal(a[5, :, -1], a[6, :, -1])  # background changes at the cut
    np.testing.assert_array_equal(a[4, :, -1], a[5, :, -1])  # ... and is static otherwise


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_frames": 7}, "num_frames"),
        ({"num_frames": 65}, "num_frames"),
        ({"height": 63}, "height"),
        ({"width": 256}, "width"),
        ({"fps": 0}, "fps"),
        ({"needle_at": 32}, "needle_at"),
        ({"needle_colour": "black"}, "needle_colour"),
    ],
)
def test_bad_specs_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClipSpec(**kwargs)


def test_ensure_clip_reuses_and_rewrites(tmp_path):
    spec = ClipSpec(num_frames=8, height=64, width=64, needle_at=2, needle_colour="red")
    path = ensure_clip(spec, tmp_path / "x.mp4")
    mtime = path.stat().st_mtime_ns
    assert ensure_clip(spec, path).stat().st_mtime_ns == mtime  # same spec: untouched
    other = ClipSpec(num_frames=8, height=64, width=64, needle_at=2, needle_colour="blue")
    ensure_clip(other, path)
    assert needle_colour(read_frames(str(path), list(range(8)), "pyav")) == "blue"


def test_committed_task_data_matches_generator():
    committed = json.loads(
        (__import__("pathlib").Path(TASKS_DIR) / "synthetic" / "synthetic_needle.json").read_text()
    )
    assert committed == needle_task_docs()
    for doc in committed:
        spec = ClipSpec(**doc["clip"])
        assert asdict(spec) == doc["clip"]
        assert doc["options"][ord(doc["answer"]) - 65] == spec.needle_colour
        assert set(doc["options"]) <= set(NEEDLE_COLOURS) and len(set(doc["options"])) == 4
