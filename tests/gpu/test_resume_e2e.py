"""Resuming with ``--use_cache``: half a run, then the whole run on 1 or 2 processes.

The first run stops after half the questions (``--limit 8`` of 16: its responses reach the cache
as an interrupted run's would with lmms-eval's run id kept). The resumed run answers the other
half (and the empty answers, which lmms-eval does not cache); the statistics, appended and
de-duplicated, then hold every question exactly once, and the answers equal an uninterrupted run's. Doc ids do not depend on the world size, so the 2-process resume
finds the 1-process cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmms_sttm.data.tiny import build_tiny
from lmms_sttm.models.stats import deduplicate
from tests.conftest import run_lmms_eval, torchrun

pytestmark = pytest.mark.e2e
TASK = "synthetic_needle_sttm"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(build_tiny("llava_video", tmp_path_factory.mktemp("tiny") / "llava_video"))


def _args(ckpt: str, stats: Path, *extra: str) -> list[str]:
    model_args = f"pretrained={ckpt},tau_s=0.9,tau_t=0.8,warmup=false,stats_dir={stats}"
    return ["--model", "llava_video_sttm", "--model_args", model_args, "--tasks", TASK, *extra]


def _answers(samples: dict) -> dict[str, str]:
    return {s["sttm_acc"]["question_id"]: s["filtered_resps"] for s in samples[TASK]}


def _stats(stats: Path) -> list[dict]:
    return [
        json.loads(line) for f in sorted(stats.glob("*_rank*.jsonl")) for line in f.read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def reference(checkpoint, tmp_path_factory, offline_env):
    work = tmp_path_factory.mktemp("reference")
    results, samples = run_lmms_eval(_args(checkpoint, work / "stats"), work / "out", offline_env)
    return results, _answers(samples), {(r["task"], r["doc_id"]): r for r in _stats(work / "stats")}


@pytest.mark.parametrize("processes", [1, 2])
def test_resumed_run_covers_every_question_once_with_the_same_answers(
    processes, checkpoint, reference, tmp_path, offline_env
):
    stats, cache = tmp_path / "stats", str(tmp_path / "cache")
    run_lmms_eval(
        _args(checkpoint, stats, "--use_cache", cache, "--limit", "8"), tmp_path / "half", offline_env
    )
    half = _stats(stats)
    assert len(half) == 8
    launcher = torchrun(2) if processes == 2 else None
    results, samples = run_lmms_eval(
        _args(checkpoint, stats, "--use_cache", cache), tmp_path / "full", offline_env, launcher=launcher
    )
    raw = _stats(stats)
    records = deduplicate(raw)
    # the statistics of both parts are kept, one record per question
    assert sorted((r["task"], r["doc_id"]) for r in records) == [(TASK, i) for i in range(16)]
    # the cached half was not answered again, except empty answers (lmms-eval does not cache them)
    again = [r for r in raw[8:] if r["doc_id"] in {h["doc_id"] for h in half}]
    assert sorted(r["doc_id"] for r in again) == sorted(h["doc_id"] for h in half if h["answer"] == "")
    assert len(again) < 8  # the cache served the rest
    ref_results, ref_answers, ref_stats = reference
    assert _answers(samples) == ref_answers
    assert results["results"][TASK]["sttm_acc,none"] == ref_results["results"][TASK]["sttm_acc,none"]
    for r in records:  # same question, same tokens, whichever run answered it
        ref = ref_stats[(r["task"], r["doc_id"])]
        assert (r["answer"], r["visual_tokens_kept"]) == (ref["answer"], ref["visual_tokens_kept"])
