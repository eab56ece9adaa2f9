"""Decode-ahead (models/prefetch.py): the same answers, token counts and statistics with prefetching
on and off (videos and stored features), failures recorded per video, bounded read-ahead, and the
worker joined when the run stops."""

from __future__ import annotations

import threading
import time

import pytest
from lmms_eval.api.instance import GenerationResult

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip
from lmms_sttm.models import base
from lmms_sttm.models.failures import RunStopped
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.prefetch import Fetched, Prefetcher
from lmms_sttm.video import VideoError
from tests.gpu.test_failures import _run as ask

TASK = "probe_sttm"
TIMING = {"time", "vision_ms", "merge_ms", "prefill_ms", "decode_ms", "video_decode_ms", "gpu_idle_ms"}
TIMING |= {"warmup_ms"}


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lmms_sttm_prefetch")]


# the Prefetcher on its own ---------------------------------------------------------------------
class Reader:
    """Records which keys were read, in which thread, and fails on the keys it is told to."""

    def __init__(self, fail: dict | None = None, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.fail, self.delay = fail or {}, delay

    def __call__(self, key: str) -> Fetched:
        self.calls.append(key)
        time.sleep(self.delay)
        if key in self.fail:
            raise self.fail[key]
        return Fetched(False, (key, threading.current_thread().name), self.delay)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_reads_in_order_at_most_depth_ahead(depth):
    keys = [f"v{i}" for i in range(6)]
    read = Reader()
    with Prefetcher(read, keys, depth) as ahead:
        for i, key in enumerate(keys):
            item = ahead.take(i)
            assert item.data[0] == key and item.data[1].startswith("lmms_sttm_prefetch")
            time.sleep(0.02)  # the worker catches up with everything it was handed
            # handed out: keys 0..i+depth, never more (at most `depth` read videos wait in memory)
            assert read.calls == keys[: min(i + depth + 1, len(keys))]
            assert len(ahead._pending) == min(depth, len(keys) - 1 - i)
    assert not _workers()


def test_depth_zero_reads_in_the_callers_thread_and_times_the_wait():
    read = Reader(delay=0.05)
    with Prefetcher(read, ["a", "b"], 0) as ahead:
        assert read.calls == []
        item = ahead.take(0)
        assert read.calls == ["a"] and item.data[1] == threading.current_thread().name
        assert item.wait_s >= item.decode_s == 0.05


def test_wait_is_short_when_the_read_was_done_ahead():
    read = Reader(delay=0.1)
    with Prefetcher(read, ["a", "b"], 1) as ahead:
        assert ahead.take(0).wait_s > 0.05  # nothing to overlap with yet
        time.sleep(0.2)  # "the model runs" while b is read
        item = ahead.take(1)
        assert item.decode_s == 0.1 and item.wait_s < 0.05


def test_an_error_is_raised_at_its_own_turn_only():
    read = Reader(fail={"b": VideoError("corrupt b")})
    with Prefetcher(read, ["a", "b", "c"], 2) as ahead:
        assert ahead.take(0).data[0] == "a"
        with pytest.raises(VideoError, match="corrupt b"):
            ahead.take(1)
        assert ahead.take(2).data[0] == "c"


def test_close_cancels_pending_reads_and_joins_the_worker():
    read = Reader(delay=0.1)
    with (
        pytest.raises(RuntimeError, match="model failed"),
        Prefetcher(read, [f"v{i}" for i in range(10)], 3) as ahead,
    ):
        ahead.take(0)
        raise RuntimeError("model failed")
    assert not _workers()
    assert len(read.calls) <= 4  # v0 and the (at most 3) reads begun: the rest were cancelled


# through the model -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    specs = [
        ClipSpec(num_frames=24, height=112, width=176, fps=4, seed=1, needle_at=5),
        ClipSpec(num_frames=15, height=96, width=96, fps=4, seed=2, cut_at=8),
        ClipSpec(num_frames=20, height=64, width=96, fps=4, seed=3, needle_at=9),
    ]
    return [str(ensure_clip(s, d / f"c{i}.mp4")) for i, s in enumerate(specs)]


def _run(model, paths: list[str]) -> list:
    """Two questions per path (consecutive docs: one group per video), in the order given."""
    return ask(model, [p for p in paths for _ in range(2)])


def _outputs(out: list) -> list:
    return [
        (o.text, o.token_counts.input_tokens, o.token_counts.output_tokens)
        if isinstance(o, GenerationResult)
        else o
        for o in out
    ]


def _records(model) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in model.stats.records]


def test_answers_and_statistics_equal_with_prefetch_on_and_off(tiny_checkpoints, clips, tmp_path):
    ckpt = tiny_checkpoints("llava_video")
    paths = [clips[0], str(tmp_path / "missing.mp4"), clips[1], clips[2]]
    runs = {}
    for depth in (0, 1, 2):
        model = LlavaVideoSttm(
            pretrained=ckpt, tau_s=0.9, tau_t=0.8, stats_dir=str(tmp_path / str(depth)), prefetch=depth
        )
        runs[depth] = (_outputs(_run(model, paths)), _records(model), model.stats.records)
    assert runs[1][:2] == runs[0][:2] and runs[2][:2] == runs[0][:2]
    outputs, records, full = runs[0]
    assert sum(isinstance(o, tuple) for o in outputs) == 6 and outputs[2] == outputs[3] == ""
    failed = [r for r in records if r["error"] is not None]
    assert [r["doc_id"] for r in failed] == [2, 3] and all("not found" in r["error"] for r in failed)
    for depth, (_, _, rows) in runs.items():
        answered = [r for r in rows if r["error"] is None]
        first = answered[::2]  # the first question of each video carries its read and wait
        assert all(r["video_decode_ms"] > 0 and r["gpu_idle_ms"] >= 0 for r in first)
        assert all(r["video_decode_ms"] == r["gpu_idle_ms"] == 0.0 for r in answered[1::2])
        if depth == 0:  # read in the model's thread: it waited for the whole read
            assert all(r["gpu_idle_ms"] >= r["video_decode_ms"] for r in first)
    assert not _workers()


def test_features_read_ahead_give_the_same_answers(tiny_checkpoints, clips, tmp_path, monkeypatch):
    ckpt = tiny_checkpoints("llava_video")
    root = str(tmp_path / "features")
    extract = LlavaVideoSttm(pretrained=ckpt, method="none", features=root, features_mode="extract")
    _run(extract, clips)
    read = {}
    seen = []
    real = base.fetch

    def spy(model, path, task):
        item = real(model, path, task)
        seen.append(item.features)
        return item

    for depth in (0, 2):
        model = LlavaVideoSttm(pretrained=ckpt, tau_s=0.9, tau_t=0.8, features=root, prefetch=depth)
        monkeypatch.setattr(base, "fetch", spy)
        read[depth] = (_outputs(_run(model, [*clips, str(tmp_path / "gone.mp4")])), _records(model))
        monkeypatch.undo()
    assert read[2] == read[0]
    assert seen and all(seen)  # stored features were read ahead, never frames
    assert [r["doc_id"] for r in read[0][1] if r["error"]] == [6, 7]


def test_a_system_error_while_reading_stops_the_run_and_joins_the_worker(
    tiny_checkpoints, clips, tmp_path, monkeypatch
):
    model = LlavaVideoSttm(pretrained=tiny_checkpoints("llava_video"), tau_s=0.9, tau_t=0.8, prefetch=2)
    real = base.fetch

    def fetch(m, path, task):
        if path == clips[1]:
            raise MemoryError("host memory exhausted")
        return real(m, path, task)

    monkeypatch.setattr(base, "fetch", fetch)
    with pytest.raises(RunStopped):
        _run(model, clips)
    assert [r["doc_id"] for r in model.stats.records] == [0, 1]  # the video before it was answered
    assert not _workers()
