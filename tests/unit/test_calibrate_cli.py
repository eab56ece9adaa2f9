"""``python -m lmms_sttm.calibrate``'s arguments, refused model names and model_args, and a sample
with an unreadable video (no model: the capture is replaced by counts of random clips)."""

from __future__ import annotations

import argparse

import pytest
import torch

from lmms_sttm.calibrate import __main__ as cli
from lmms_sttm.calibrate.capture import CapturedVideo, CountingReducer, load_model
from lmms_sttm.merging.sttm import merge_video
from lmms_sttm.video import VideoError


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--retention", "0.333"], "whole percentage"),
        (["--retention", "0.3", "0.3"], "each target once"),
        (["--retention", "0.3", "--videos", "0"], "--videos must be >= 1"),
        (["--retention", "0.3", "--tolerance", "0"], "--tolerance must be in"),
    ],
)
def test_bad_arguments_are_refused(extra, match, capsys):
    base = ["--model", "qwen2_vl_sttm", "--pretrained", "/c", "--tasks", "t"]
    with pytest.raises(SystemExit):
        cli.parse(base + extra)
    assert match in capsys.readouterr().err


@pytest.mark.parametrize(
    "model, args, match",
    [
        ("nope_sttm", {}, "is not one of this package's models"),
        ("sttm_oracle", {}, "does not run a video LLM"),
        ("qwen2_vl_sttm", {"budget": 50}, r"may not set \['budget'\]"),
        ("qwen2_vl_sttm", {"tau_s": 0.9, "thresholds": "x.json"}, r"may not set \['tau_s', 'thresholds'\]"),
    ],
)
def test_models_and_model_args_the_calibration_cannot_use(model, args, match):
    with pytest.raises(ValueError, match=match):
        load_model(model, "/no/such/checkpoint", args, "/tmp")


def _clip(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 5, 5, 8, generator=g) + 0.5 * torch.randn(4, 5, 5, 8, generator=g)


def test_an_unreadable_video_is_skipped_and_the_rest_calibrated(monkeypatch):
    clips = {"a.mp4": _clip(0), "c.mp4": _clip(2)}

    def fake_capture(model, task, path, doc_id, text, reducer):
        if path not in clips:
            raise VideoError(f"cannot open {path}")
        x = clips[path]
        reducer(x.reshape(-1, 8), (4, 5, 5))
        return CapturedVideo(task, path, doc_id, (4, 5, 5), 100, 4, 0.0, reducer.counts)

    monkeypatch.setattr(cli, "capture", fake_capture)
    args = argparse.Namespace(retention=[0.5], tolerance=0.02, direction=[0.8, 0.5])
    videos = [("a.mp4", 0, "q"), ("b.mp4", 2, "q"), ("c.mp4", 4, "q")]
    entry = cli.calibrate_task(None, "t", videos, args, CountingReducer())
    assert entry["skipped"] == [{"video": "b.mp4", "doc_id": 2, "reason": "cannot open b.mp4"}]
    assert [v["video"] for v in entry["videos"]] == ["a.mp4", "c.mp4"]
    target = entry["targets"]["50"]
    by_hand = [
        merge_video(clips[p], target["tau_s"], target["tau_t"]).num_kept / 100 for p in ("a.mp4", "c.mp4")
    ]
    assert target["per_video"] == pytest.approx(by_hand, abs=1e-6)
    assert target["reached"] == pytest.approx(sum(by_hand) / 2, abs=1e-6)

    monkeypatch.setattr(cli, "capture", lambda *a: (_ for _ in ()).throw(VideoError("gone")))
    with pytest.raises(SystemExit, match="no video could be read"):
        cli.calibrate_task(None, "t", videos, args, CountingReducer())
