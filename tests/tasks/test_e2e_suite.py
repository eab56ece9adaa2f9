"""``sttm_suite`` end to end: two processes, a tiny data root with real clips, a fixed-letter model.

``sttm_oracle`` with ``fallback=A`` answers "A" on clips without a needle. lmms-eval shards docs
over ranks by stride after our video-major ``process_docs`` order, which keeps whole videos on one
rank where loads allow and splits the rest (here: one VNBench item's tries land on both ranks);
the circular metric must still group them, after the gather, exactly as computed here.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from lmms_sttm.tasks.common.benchmark import group_metric
from lmms_sttm.tasks.common.sharding import SLOTS, video_major_order
from tests.conftest import run_lmms_eval, torchrun
from tests.tasks import tiny_benchmarks as tiny

pytestmark = pytest.mark.e2e

SCORED = {
    "vnbench_sttm": ("vnbench", "VNBench-main-4try_v2.json"),
    "videomme_sttm": ("videomme", "videomme.json"),
    "longvideobench_sttm": ("longvideobench", "lvb_val_v2.json"),
    "mlvu_sttm": ("mlvu", "MLVU_mcq_v2.json"),
    "nextqa_sttm": ("nextqa", "MC_test_v2.json"),
    "egoschema_subset_sttm": ("egoschema", "egoschema_subset_v2.json"),
}
SAMPLE_KEYS = {"question_id", "task_type", "duration", "video_id", "pred", "answer", "parsed", "correct"}


def is_a(rec: dict) -> bool:
    return rec["answer"] in ("A", 0)


def pct(flags) -> float:
    flags = list(flags)
    return 100.0 * sum(flags) / len(flags)


@pytest.fixture(scope="module")
def run(tmp_path_factory, offline_env):
    root = tiny.build(tmp_path_factory.mktemp("tiny_root"))
    out = tmp_path_factory.mktemp("suite") / "out"
    env = dict(offline_env, LMMS_STTM_DATA_ROOT=str(root))
    launcher = torchrun()
    args = ["--model", "sttm_oracle", "--model_args", "fallback=A", "--tasks", "sttm_suite"]
    results, samples = run_lmms_eval(args, out, env, launcher=launcher)
    return results, samples, out


def test_every_task_ran_on_all_its_docs(run):
    results, samples, _ = run
    expected = {task: len(tiny.records(*f)) for task, f in SCORED.items()}
    expected["egoschema_sttm"] = len(tiny.egoschema_questions())
    assert {t: n["effective"] for t, n in results["n-samples"].items()} == expected
    for task, n in expected.items():
        assert [s["doc_id"] for s in samples[task]] == list(range(n)), task


@pytest.mark.parametrize("task", SCORED)
def test_fixed_letter_scores_and_sample_fields(task, run):
    results, samples, _ = run
    recs = tiny.records(*SCORED[task])
    res = results["results"][task]
    assert res["sttm_acc,none"] == pytest.approx(pct(is_a(r) for r in recs))
    assert res["unparsed,none"] == 0
    by_qid = {s["sttm_acc"]["question_id"]: s["sttm_acc"] for s in samples[task]}
    assert len(by_qid) == len(recs)
    for rec in recs:
        sample = by_qid[rec.get("question_id", rec.get("q_uid"))]
        assert set(sample) >= SAMPLE_KEYS
        assert sample["pred"] == "A" and sample["parsed"] is True and sample["correct"] == is_a(rec)
    if task != "egoschema_subset_sttm":  # the only one without breakdown fields
        by_type = defaultdict(list)
        for r in recs:
            by_type[r["task_type"]].append(is_a(r))
        got = {t: res[group_metric("acc", "task_type", t) + ",none"] for t in by_type}
        assert got == pytest.approx({t: pct(v) for t, v in by_type.items()})
        assert not any(isinstance(v, dict) for v in res.values())  # every metric is one number


def test_vnbench_circular_accuracy_groups_tries_across_ranks(run):
    results, samples, _ = run
    recs = tiny.vnbench_records()
    order = video_major_order([r["videoID"] for r in recs], SLOTS)
    rank = {index: position % 2 for position, index in enumerate(order)}
    items = defaultdict(list)
    for i, r in enumerate(recs):
        items[(r["task_type"], r["videoID"])].append((rank[i], is_a(r)))
    assert any({k for k, _ in v} == {0, 1} for v in items.values())  # an item's tries on both ranks
    per_type = defaultdict(list)
    for (task_type, _), v in items.items():
        per_type[task_type].append(all(ok for _, ok in v))
    expected = {t: pct(v) for t, v in per_type.items()}
    res = results["results"]["vnbench_sttm"]
    assert {t: res[f"circular_task_type={t},none"] for t in expected} == pytest.approx(expected)
    assert res["official_acc,none"] == pytest.approx(sum(expected.values()) / len(expected))
    assert res["official_acc,none"] != pytest.approx(res["sttm_acc,none"])
    tries = {s["sttm_acc"]["question_id"]: s["sttm_acc"]["try"] for s in samples["vnbench_sttm"]}
    assert tries == {r["question_id"]: r["try"] for r in recs}


def test_mlvu_m_avg(run):
    results, _, _ = run
    per_type = defaultdict(list)
    for r in tiny.mlvu_records():
        per_type[r["task_type"]].append(is_a(r))
    expected = sum(pct(v) for v in per_type.values()) / len(per_type)
    assert results["results"]["mlvu_sttm"]["official_acc,none"] == pytest.approx(expected)


def test_egoschema_full_set_writes_the_submission(run):
    results, _, out = run
    assert results["results"]["egoschema_sttm"]["submission,none"] == 3
    (path,) = (out / "submissions").glob("egoschema_sttm_*.json")
    assert json.loads(path.read_text()) == {q["q_uid"]: "0" for q in tiny.egoschema_questions()}
