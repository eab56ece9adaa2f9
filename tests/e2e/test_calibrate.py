"""``python -m lmms_sttm.calibrate`` on tiny LLaVA-Video, Qwen2-VL and Qwen3-VL checkpoints and the
synthetic task, then the lmms-eval model answering on the calibrated videos with ``budget=50|30`` and
``thresholds=FILE``: its kept / visual tokens, averaged over those videos, is the file's reached
mean retention, and its plans keep what the same thresholds given by hand keep."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
from lmms_eval.api.instance import Instance

from lmms_sttm.methods.sttm_calibrated import ThresholdsFileError
from lmms_sttm.models import MODEL_CLASSES
from lmms_sttm.models.checkpoints import load_checkpoint
from lmms_sttm.models.identity import config_fingerprint

pytestmark = pytest.mark.e2e
TASK = "synthetic_needle_sttm"
ARCHS = {"llava_video_sttm": "llava_video", "qwen2_vl_sttm": "qwen2_vl", "qwen3_vl_sttm": "qwen3_vl"}
#: the budgets rerun with the file, and whether the same thresholds are also rerun by hand (Qwen3-VL:
#: frame blocks and DeepStack, one budget and no hand run to keep the suite short)
RERUN = {
    "llava_video_sttm": ((50, 30), True),
    "qwen2_vl_sttm": ((50, 30), True),
    "qwen3_vl_sttm": ((30,), False),
}
QUESTION = "What colour is the frame?\nA. red\nB. blue\nAnswer with the option's letter."


@pytest.fixture(scope="module")
def calibrated(tiny_checkpoints, tmp_path_factory, offline_env):
    """Per model name: ``(checkpoint, file, its JSON, the command's stderr)``."""
    runs = {}
    for name, arch in ARCHS.items():
        ckpt = tiny_checkpoints(arch)
        out = tmp_path_factory.mktemp(name) / "thresholds.json"
        cmd = [sys.executable, "-m", "lmms_sttm.calibrate", "--model", name, "--pretrained", ckpt]
        cmd += ["--tasks", TASK, "--retention", "0.5", "0.3", "--videos", "2", "--out", str(out)]
        proc = subprocess.run(
            cmd, env=offline_env, cwd=out.parent, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        runs[name] = (ckpt, out, json.loads(out.read_text()), proc.stderr)
    return runs


def _model(name: str, **kwargs):
    module, _, cls = MODEL_CLASSES[name].rpartition(".")
    return getattr(importlib.import_module(module), cls)(warmup=False, **kwargs)


def _answer(model, path: str) -> dict:
    """The statistics record of one question on ``path`` through the model's answering path."""
    args = (QUESTION, {"max_new_tokens": 1}, None, 0, TASK, "test")
    out = [""]
    model._answer_video(
        TASK, path, [Instance("generate_until", args, 0, {"task": TASK, "doc_id": 0, "repeats": 1})], [0], out
    )
    return out[0].text.stats


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_calibration_file_hits_each_target(name, calibrated):
    ckpt, _, data, log = calibrated[name]
    assert data["model"] == name and data["checkpoint"]["pretrained"] == ckpt
    assert data["checkpoint"]["config_sha256"] == config_fingerprint(load_checkpoint(ckpt).model.config)
    assert data["versions"]["lmms-sttm"] and data["search"]["tolerance"] == 0.01
    block = data["tasks"][TASK]
    videos = block["videos"]
    assert len(videos) == 2 and len({v["video"] for v in videos}) == 2
    assert all(v["tokens"] == v["grid"][0] * v["grid"][1] * v["grid"][2] for v in videos)
    assert sorted(block["targets"]) == ["30", "50"]
    for key, entry in block["targets"].items():
        assert entry["retention"] == int(key) / 100
        assert entry["within_tolerance"] and abs(entry["reached"] - entry["retention"]) <= 0.01
        per = entry["per_video"]
        assert len(per) == 2 and entry["reached"] == pytest.approx(sum(per) / 2, abs=2e-6)
        assert entry["per_video_min"] == min(per) and entry["per_video_max"] == max(per)
        assert entry["trace_size"] == len(entry["trace"]) >= 1
        assert [entry["tau_s"], entry["tau_t"]] in [t[:2] for t in entry["trace"]]
    assert "video 1/2" in log and "video 2/2" in log  # progress per video


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_reached_retention_is_what_a_run_with_the_file_keeps(name, calibrated, tmp_path):
    ckpt, path, data, _ = calibrated[name]
    block = data["tasks"][TASK]
    budgets, by_hand = RERUN[name]
    for budget in budgets:
        entry = block["targets"][str(budget)]
        run = _model(
            name, pretrained=ckpt, budget=budget, thresholds=str(path), stats_dir=str(tmp_path / "f")
        )
        hand = by_hand and _model(
            name, pretrained=ckpt, tau_s=entry["tau_s"], tau_t=entry["tau_t"], stats_dir=str(tmp_path / "h")
        )
        assert run.merge_layer == data["merge_layer"]
        shares = []
        for video in block["videos"]:
            got = _answer(run, video["video"])
            assert got["error"] is None and got["visual_tokens"] == video["tokens"]
            assert (got["params"]["tau_s"], got["params"]["tau_t"]) == (entry["tau_s"], entry["tau_t"])
            if hand:
                assert got["visual_tokens_kept"] == _answer(hand, video["video"])["visual_tokens_kept"]
            shares.append(got["visual_tokens_kept"] / got["visual_tokens"])
        assert shares == pytest.approx(entry["per_video"], abs=1e-6)
        assert sum(shares) / len(shares) == pytest.approx(entry["reached"], abs=1e-6)


def test_a_file_of_another_model_is_refused(calibrated, tmp_path):
    _, llava_file, _, _ = calibrated["llava_video_sttm"]
    ckpt = calibrated["qwen2_vl_sttm"][0]
    model = _model(
        "qwen2_vl_sttm", pretrained=ckpt, budget=50, thresholds=str(llava_file), stats_dir=str(tmp_path)
    )
    with pytest.raises(
        ThresholdsFileError, match="calibrated for --model llava_video_sttm, this run is qwen2_vl_sttm"
    ):
        model.method_for(TASK)
