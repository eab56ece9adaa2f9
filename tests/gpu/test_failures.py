"""Failure policy in-process: data errors and CUDA OOM fail their questions, anything else stops the
run (status 1, traceback on stderr), and the failure budget stops a run where most videos fail."""

from __future__ import annotations

import pytest
import torch
from lmms_eval.api.instance import GenerationResult, Instance

from lmms_sttm.engine import session
from lmms_sttm.models import base
from lmms_sttm.models.failures import MIN_FAILED, RunStopped
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.video import VideoError

TASK = "probe_sttm"


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    return tiny_checkpoints("llava_video")


def _model(checkpoint, tmp_path, **args):
    return LlavaVideoSttm(
        pretrained=checkpoint, tau_s=0.9, tau_t=0.8, stats_dir=str(tmp_path), warmup=False, **args
    )


def _run(model, paths: list[str]) -> list:
    model.task_dict = {TASK: {"test": {i: {"path": p} for i, p in enumerate(paths)}}}
    reqs = [
        Instance(
            "generate_until",
            ("Q?", {"max_new_tokens": 2}, lambda d: [d["path"]], i, TASK, "test"),
            i,
            {"task": TASK, "doc_id": i, "repeats": 1},
        )
        for i in range(len(paths))
    ]
    return model.generate_until(reqs)


def test_system_error_stops_with_status_1_and_traceback(checkpoint, clip, tmp_path, monkeypatch, capsys):
    model = _model(checkpoint, tmp_path)
    monkeypatch.setattr(session, "prefill", lambda *a, **k: (_ for _ in ()).throw(ValueError("flash dtype")))
    with pytest.raises(RunStopped) as stopped:
        _run(model, [clip, clip])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "system error, stopping the run" in err and "ValueError: flash dtype" in err and "Traceback" in err


def test_out_of_memory_record_names_frames(checkpoint, clip, tmp_path, monkeypatch):
    model = _model(checkpoint, tmp_path)
    real, calls = session.prefill, []

    def prefill(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "prefill", prefill)
    _read_second_as_first(model, monkeypatch)
    out = _run(model, [clip, "second", "second"])
    assert out[0] == "" and all(isinstance(o, GenerationResult) for o in out[1:])
    (failure,) = model.failures
    frames = {r["frames"] for r in model.stats.records if r.get("error") is None}  # the same clip, answered
    assert failure["doc_id"] == 0 and {failure["frames"]} == frames
    assert failure["error"].startswith(f"CUDA out of memory at {failure['frames']} frames")


def _read_second_as_first(model, monkeypatch):
    """The video "second" reads the first clip (its questions form a group of their own)."""
    real = base.fetch

    def fetch(m, path, task):
        return real(m, path if path != "second" else model.task_dict[TASK]["test"][0]["path"], task)

    monkeypatch.setattr(base, "fetch", fetch)


def test_failure_budget_stops_a_run_where_every_video_fails(checkpoint, tmp_path, monkeypatch, capsys):
    model = _model(checkpoint, tmp_path)
    monkeypatch.setattr(
        model, "encode", lambda path, task: (_ for _ in ()).throw(VideoError(f"missing {path}"))
    )
    with pytest.raises(RunStopped):
        _run(model, [f"v{i}" for i in range(MIN_FAILED + 5)])
    assert len(model.failures) == MIN_FAILED + 1  # stopped at the first video past the budget
    assert "above max_failures=0.05" in capsys.readouterr().err


def test_budget_of_one_never_stops(checkpoint, tmp_path, monkeypatch):
    model = _model(checkpoint, tmp_path, max_failures=1)
    monkeypatch.setattr(
        model, "encode", lambda path, task: (_ for _ in ()).throw(VideoError(f"missing {path}"))
    )
    assert _run(model, [f"v{i}" for i in range(MIN_FAILED + 5)]) == [""] * (MIN_FAILED + 5)
