"""One untimed warm-up per rank, through the model's own path, before the first timed video."""

from __future__ import annotations

import json

import pytest
from lmms_eval.api.instance import GenerationResult

from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.qwen2_vl_sttm import Qwen2VLSttm
from tests.gpu.test_failures import _run

CLASSES = {"llava_video": LlavaVideoSttm, "qwen2_vl": Qwen2VLSttm}


@pytest.mark.parametrize("arch", sorted(CLASSES))
def test_warm_up_runs_once_untimed_before_the_first_video(
    arch, tiny_checkpoints, clip, tmp_path, monkeypatch
):
    model = CLASSES[arch](pretrained=tiny_checkpoints(arch), tau_s=0.9, tau_t=0.8, stats_dir=str(tmp_path))
    calls = []
    real = model._answer_video

    def spy(task, path, reqs, slots, out, *fetched):  # fetched: the video read ahead (prefetch.py)
        calls.append((path, model.stats.path is not None))
        return real(task, path, reqs, slots, out, *fetched)

    monkeypatch.setattr(model, "_answer_video", spy)
    out = _run(model, [clip, clip])
    assert all(isinstance(o, GenerationResult) for o in out)
    (warm, stats_on_during_warm), (first, stats_on) = calls
    assert warm.endswith("warmup.mp4") and not stats_on_during_warm and first == clip and stats_on
    records = [json.loads(line) for line in model.stats.path.read_text().splitlines()]
    assert [r["doc_id"] for r in records] == [0, 1]  # nothing of the warm-up in the statistics
    assert all(r["warmup_ms"] == model.warmup_ms > 0 for r in records)
    _run(model, [clip])
    assert len(calls) == 3  # once per rank, not once per call


def test_warm_up_can_be_turned_off(tiny_checkpoints, clip, tmp_path):
    model = LlavaVideoSttm(
        pretrained=tiny_checkpoints("llava_video"),
        tau_s=0.9,
        tau_t=0.8,
        stats_dir=str(tmp_path),
        warmup=False,
    )
    _run(model, [clip])
    (record,) = [json.loads(line) for line in model.stats.path.read_text().splitlines()]
    assert record["warmup_ms"] is None
