"""``python -m lmms_sttm.features extract`` then an lmms-eval run with ``features=DIR``: same answers,
token counts and statistics as the run from the videos (tiny LLaVA-Video, the synthetic task)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmms_sttm.data.tiny import build_tiny
from tests.conftest import run_lmms_eval

pytestmark = pytest.mark.e2e
TASK = "synthetic_needle_sttm"
KEYS = ("doc_id", "frames", "video_seconds", "visual_tokens", "visual_tokens_kept", "answer", "error")


def _stats(out: Path) -> list[dict]:
    rows = [json.loads(x) for f in (out / "sttm_stats").glob("*.jsonl") for x in f.read_text().splitlines()]
    return sorted(({k: r.get(k) for k in KEYS} for r in rows), key=lambda r: r["doc_id"])


def test_extract_cli_then_evaluate_from_features(tmp_path, offline_env):
    ckpt = str(build_tiny("llava_video", tmp_path / "LLaVA-Video-Tiny"))
    root = tmp_path / "datasets"
    cmd = [sys.executable, "-m", "lmms_sttm.features", "extract", "--model", "llava_video_sttm"]
    cmd += ["--pretrained", ckpt, "--tasks", TASK, "--root", str(root), "--output_path", str(tmp_path / "x")]
    proc = subprocess.run(cmd, env=offline_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    feats = sorted((root / TASK / "preprocess_data/llava-video-tiny/F-128_fps-1/features").glob("*.pt"))
    metas = sorted((root / TASK / "preprocess_data/llava-video-tiny/F-128_fps-1/metadata").glob("*.pkl"))
    assert len(feats) == len(metas) == 8  # 8 clips, 16 questions

    runs = {}
    for name, extra in (("video", ""), ("features", f",features={root}")):
        out = tmp_path / name
        args = ["--model", "llava_video_sttm", "--tasks", TASK]
        args += ["--model_args", f"pretrained={ckpt},tau_s=0.9,tau_t=0.8{extra}"]
        results, samples = run_lmms_eval(args, out, offline_env)
        answers = [(r["doc_id"], r["filtered_resps"], r["token_counts"]) for r in samples[TASK]]
        untimed = {
            k: v for k, v in results["results"][TASK].items() if not k.startswith(("ttft_ms", "merge_ms"))
        }
        runs[name] = (untimed, answers, _stats(out))  # every metric but the wall times
    assert runs["features"] == runs["video"]
    assert all(r["error"] is None for r in runs["features"][2]) and len(runs["features"][2]) == 16
