"""Failure policy end to end: a system error on one rank of two ends the run non-zero within a
minute with the error on stderr and no results file; a corrupt clip fails only its questions."""

from __future__ import annotations

import glob
import json
import subprocess
import time
from dataclasses import asdict

import pytest

from lmms_sttm.data.synthetic import ClipSpec
from lmms_sttm.data.tiny import build_tiny
from tests.conftest import REPO, run_lmms_eval, torchrun

pytestmark = pytest.mark.e2e
TASK = "synthetic_needle_sttm"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(build_tiny("llava_video", tmp_path_factory.mktemp("tiny") / "llava_video"))


def _args(ckpt: str, extra: str = "") -> list[str]:
    return ["--model", "llava_video_sttm", "--model_args", f"pretrained={ckpt},tau_s=0.9,tau_t=0.8{extra}"]


def test_system_error_on_one_rank_stops_both_within_a_minute(checkpoint, tmp_path, offline_env):
    out = tmp_path / "out"
    env = dict(offline_env, PYTHONPATH=str(REPO))
    cmd = [*torchrun(2), "-m", "tests.gpu.inject_error", *_args(checkpoint, ",warmup=false"), "--tasks", TASK]
    cmd += ["--batch_size", "1", "--log_samples", "--output_path", str(out)]
    began = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - began
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert "injected system error" in proc.stderr and "Traceback" in proc.stderr
    assert "system error, stopping the run" in proc.stderr
    assert not glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    assert elapsed < 60 + 30, elapsed  # start-up (two tiny models) + under a minute to stop


def test_one_corrupt_clip_fails_its_questions_and_the_run_finishes(checkpoint, tmp_path, offline_env):
    clips = tmp_path / "clips"
    clips.mkdir()
    doc = json.loads((REPO / "lmms_sttm/tasks/synthetic/synthetic_needle.json").read_text())[0]
    (clips / f"{doc['video_id']}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    spec = json.dumps(asdict(ClipSpec(**doc["clip"])), sort_keys=True)
    (clips / f"{doc['video_id']}.json").write_text(spec)  # ensure_clip keeps the corrupt file
    env = dict(offline_env, LMMS_STTM_SYNTHETIC_DIR=str(clips))
    results, samples = run_lmms_eval([*_args(checkpoint), "--tasks", TASK], tmp_path / "out", env)
    assert results["n-samples"][TASK]["effective"] == 16
    stats = [json.loads(line) for f in (tmp_path / "out" / "sttm_stats").glob("*.jsonl") for line in f.open()]
    failed = [s for s in stats if s.get("error")]
    assert len(failed) == 2 and all("cannot" in s["error"] for s in failed)
    assert sum(s.get("error") is None for s in stats) == 14
