"""The failure budget counts questions, not videos: hand-worked stop points for videos with several
questions each (VNBench asks 4 per video), through ``generate_until`` and on ``FailureBudget`` alone.

With ``MIN_FAILED = 10`` and ``max_failures = 0.05`` a rank stops at the first video after which
more than 10 questions failed *and* they exceed 5% of the questions handled."""

from __future__ import annotations

import traceback

import pytest
import torch
from lmms_eval.api.instance import Instance

from lmms_sttm.models.failures import MIN_FAILED, FailureBudget, RunStopped, is_out_of_memory, stop_run
from lmms_sttm.video import VideoError

TASK = "probe_sttm"
PER_VIDEO = 4


def test_budget_counts_questions_by_hand():
    budget = FailureBudget(0.05, "rank 0")
    for _ in range(2):  # 8 failed questions of 8: not above MIN_FAILED yet
        budget.add(PER_VIDEO, PER_VIDEO)
        budget.check()
    budget.add(PER_VIDEO, PER_VIDEO)  # 12 > 10 and 12 > 0.05 * 12
    with pytest.raises(RunStopped):
        budget.check()
    quiet = FailureBudget(0.05, "rank 0")
    quiet.add(400, 19)  # 19 > 10 but 19 <= 0.05 * 400 = 20
    quiet.check()
    quiet.add(0, 2)  # 21 > 20
    with pytest.raises(RunStopped):
        quiet.check()
    assert MIN_FAILED == 10


@pytest.fixture(scope="module")
def model(tiny_checkpoints, tmp_path_factory):
    from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm

    return LlavaVideoSttm(
        pretrained=tiny_checkpoints("llava_video"),
        tau_s=0.9,
        tau_t=0.8,
        stats_dir=str(tmp_path_factory.mktemp("stats")),
        warmup=False,
    )


def _run(model, monkeypatch, num_videos: int, failing: set[int]) -> list[int]:
    """``num_videos`` videos of PER_VIDEO questions; videos in ``failing`` raise a data error.
    Returns the indices of the videos whose questions were handled (answered or failed)."""
    seen: list[int] = []

    def answer_video(task, path, reqs, slots, out, fetched=None):
        seen.append(int(path[1:]))
        if int(path[1:]) in failing:
            raise VideoError(f"missing {path}")

    monkeypatch.setattr(model, "_answer_video", answer_video)
    import lmms_sttm.models.base as base
    from lmms_sttm.models.prefetch import Fetched

    # no real read (the paths are fake): the stub above decides which videos fail
    monkeypatch.setattr(base, "fetch", lambda model, path, task: Fetched(False, (path,), 0.0))
    model.failures = []
    docs = {v * PER_VIDEO + q: {"path": f"v{v}"} for v in range(num_videos) for q in range(PER_VIDEO)}
    model.task_dict = {TASK: {"test": docs}}
    reqs = [
        Instance(
            "generate_until",
            ("Q?", {"max_new_tokens": 2}, lambda d: [d["path"]], i, TASK, "test"),
            i,
            {"task": TASK, "doc_id": i, "repeats": 1},
        )
        for i in docs
    ]
    try:
        model.generate_until(reqs)
    except RunStopped:
        seen.append(-1)
    return seen


def test_every_question_of_three_videos_failing_stops_the_run(model, monkeypatch):
    # after video 2: 12 failed questions of 12 (> 10, > 5%); counting videos (3 of 3) would go on
    seen = _run(model, monkeypatch, 20, failing={0, 1, 2})
    assert seen == [0, 1, 2, -1]
    assert len(model.failures) == 3 * PER_VIDEO


def test_sparse_failing_videos_stop_at_the_question_fraction(model, monkeypatch):
    # videos 0, 10, 20, ... fail: after video 20, 12 failed of 84 handled (> 10, 12 > 4.2); counting
    # videos (3 failed) would not stop before the 11th failing video
    seen = _run(model, monkeypatch, 60, failing=set(range(0, 60, 10)))
    assert seen == [*range(21), -1]
    assert len(model.failures) == 3 * PER_VIDEO


def test_late_failures_under_five_percent_of_questions_do_not_stop(model, monkeypatch):
    # 3 failing videos at the end of 100: 12 failed of 400 handled (12 <= 20)
    seen = _run(model, monkeypatch, 100, failing={97, 98, 99})
    assert seen == list(range(100))
    assert len(model.failures) == 3 * PER_VIDEO


def test_budget_boundaries_by_hand():
    edge = FailureBudget(0.05, "rank 0")
    edge.add(220, 11)  # 11 > 10 and 11 == 0.05 * 220: not above the fraction
    edge.check()
    assert (edge.handled, edge.failed) == (220, 11)
    ten = FailureBudget(1e-9, "rank 0")
    ten.add(10, 10)  # exactly MIN_FAILED: not more than it
    ten.check()
    assert FailureBudget(0.05, "r").handled == 0 and FailureBudget(0.05, "r").failed == 0


def test_stop_run_reports_where_what_and_the_traceback(capsys):
    budget = FailureBudget(0.05, "model rank 3")
    budget.add(12, 12)
    with pytest.raises(RunStopped) as stopped:
        budget.check()
    assert stopped.value.code == 1 and isinstance(stopped.value, SystemExit)
    err = capsys.readouterr().err
    # (loguru's own line may come first, or an error of its handler when stderr was swapped)
    assert (
        err.splitlines().count(
            "model rank 3: system error, stopping the run (no results file): RuntimeError: 12 of 12 questions "
            "failed on this rank, above max_failures=0.05 (see the failure reasons above and in the statistics file)"
        )
        == 1
    )
    try:
        raise ValueError("flash dtype")
    except ValueError as e:
        out = stop_run("here", e)
        trace = "".join(traceback.format_exception(e))
    err = capsys.readouterr().err
    assert isinstance(out, RunStopped) and out.code == 1
    assert f"here: system error, stopping the run (no results file): ValueError: flash dtype\n{trace}" in err
    assert 'raise ValueError("flash dtype")' in err and err.rstrip().endswith("ValueError: flash dtype")
    assert is_out_of_memory(torch.OutOfMemoryError("x")) and not is_out_of_memory(RuntimeError("x"))
