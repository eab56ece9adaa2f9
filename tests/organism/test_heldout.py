"""The held-out evaluation of several draws: rows outermost, each row on every draw, resumable.

lmms-eval is replaced by a stand-in that writes a results file whose accuracy encodes the (row, draw)
it was asked for, so the spread written at the end can be checked against values worked by hand.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lmms_sttm.demo as demo
from lmms_sttm.organism import heldout


def fake_runs(calls: list):
    """A stand-in for :func:`lmms_sttm.demo.run_lmms_eval` recording ``(tag, model_args)``; accuracy =
    10 x the row's index in ``TAGS`` + the seed, families acc - 1, acc, acc + 1."""

    def run(model_args: str, out: Path, env: dict, processes: int, model: str = "llava_video_sttm") -> Path:
        tag, seed = out.name, int(out.parent.parent.name.removeprefix("seed_"))
        calls.append((tag, seed, model_args))
        acc = 10.0 * TAGS.index(tag) + seed
        fams = ("ret_insert1", "ord_insert1", "cnt_insert1")
        res = {"sttm_acc,none": acc, **{f"acc_task_type={f},none": acc - 1 + i for i, f in enumerate(fams)}}
        path = out / "ckpt" / "20261207_000000_results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"results": {"vnbench_sttm": res}}))
        return path

    return run


TAGS = ["none", "sttm_exact50", "tome_budget30"]


def test_heldout_runs_each_row_on_every_draw_before_the_next_and_resumes(tmp_path, monkeypatch):
    for seed in (0, 1, 2):
        (tmp_path / "ckpt" / f"seed_{seed}").mkdir(parents=True)
        (tmp_path / "ckpt" / f"seed_{seed}" / "model.safetensors").write_bytes(b"")
    calls: list = []
    monkeypatch.setattr(demo, "run_lmms_eval", fake_runs(calls))
    monkeypatch.chdir(tmp_path)
    kw = dict(checkpoints="ckpt", out="draws", per_family=1, processes=1, work="work", spread_out="spread")
    assert heldout.evaluate([0, 1, 2], tags=TAGS[:2], **kw) == 0
    assert [(t, s) for t, s, _ in calls] == [("none", 0), ("none", 1), ("none", 2), ("sttm_exact50", 0),
                                             ("sttm_exact50", 1), ("sttm_exact50", 2)]  # fmt: skip
    assert calls[4][2] == "pretrained=ckpt/seed_1,method=sttm,budget_mode=exact,retention=0.50"
    # a rerun with one more row runs only that row
    calls.clear()
    assert heldout.evaluate([0, 1, 2], tags=TAGS, **kw) == 0
    assert [(t, s) for t, s, _ in calls] == [("tome_budget30", 0), ("tome_budget30", 1), ("tome_budget30", 2)]
    with (tmp_path / "spread" / "draws.csv").open(newline="") as f:
        rows = {(r["tag"], r["family"]): r for r in csv.DictReader(f)}
    tome = rows[("tome_budget30", "all")]  # 20 + seed: 20, 21, 22
    assert (tome["acc_seed_0"], tome["acc_seed_2"], tome["mean"], tome["min"], tome["max"]) == (
        "20.00", "22.00", "21.00", "20.00", "22.00",
    )  # fmt: skip
    assert rows[("sttm_exact50", "cnt_insert1")]["mean"] == "12.00"  # 10 + 1 + mean(0, 1, 2)


def test_heldout_refuses_a_missing_checkpoint(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo, "run_lmms_eval", fake_runs(calls))
    monkeypatch.chdir(tmp_path)
    assert heldout.evaluate([0], checkpoints="nowhere", out="d", per_family=1, work="w", spread_out="s") == 1
    assert calls == []
