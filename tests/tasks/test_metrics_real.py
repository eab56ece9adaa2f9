"""Metrics of every task on the real annotation files, through the functions the task YAMLs name.

Each YAML is loaded as lmms-eval loads it (full mode), and its ``process_results`` and metric
aggregations are applied in-process to answers from scripted models: an oracle, a fixed letter,
an unparseable talker and (VNBench) a model that errs on one try. Expected values are computed
here from the annotation fields alone.
"""

from __future__ import annotations

import json
from argparse import Namespace
from collections import defaultdict
from pathlib import Path

import pytest
from lmms_eval.utils import load_yaml_config

from lmms_sttm._task_path import TASKS_DIR
from lmms_sttm.data_root import ENV_VAR
from lmms_sttm.tasks.common.benchmark import group_metric

YAMLS = {
    "vnbench_sttm": ("vnbench", "vnbench/VNBench-main-4try_v2.json"),
    "videomme_sttm": ("videomme", "videomme/videomme.json"),
    "longvideobench_sttm": ("longvideobench", "longvideobench/lvb_val_v2.json"),
    "mlvu_sttm": ("mlvu", "mlvu/MLVU_mcq_v2.json"),
    "nextqa_sttm": ("nextqa", "nextqa/MC_test_v2.json"),
}
COUNTS = {
    "vnbench_sttm": 5400,
    "videomme_sttm": 2700,
    "longvideobench_sttm": 1337,
    "mlvu_sttm": 2174,
    "nextqa_sttm": 8564,
}
TALK = "i really cannot tell from this video what happens here at all sorry"  # 13 words, no capital A-F


def gold(doc: dict) -> str:
    return doc["answer"] if isinstance(doc["answer"], str) else "ABCDEF"[doc["answer"]]


def pct(flags) -> float:
    flags = list(flags)
    return 100.0 * sum(flags) / len(flags)


class Scorer:
    """A task YAML's process_results and aggregations, as lmms-eval applies them."""

    def __init__(self, task: str, folder: str):
        cfg = load_yaml_config(str(Path(TASKS_DIR) / folder / f"{task}.yaml"), mode="full")
        self.process_results = cfg["process_results"]
        self.aggregations = {m["metric"]: m["aggregation"] for m in cfg["metric_list"]}

    def __call__(self, docs, respond, args=None) -> dict:
        outs = [self.process_results(doc, [respond(doc)]) for doc in docs]
        result = {}
        for metric, agg in self.aggregations.items():
            items = [o[metric] for o in outs if metric in o]  # lmms-eval aggregates the returned keys only
            if items:
                result[metric] = agg(items, args=args) if metric == "submission" else agg(items)
        return result


def groups(res: dict, prefix: str, field: str, values) -> dict:
    """``{value: res[<prefix>_<field>=<value>]}``: one breakdown's group metrics."""
    return {v: res[group_metric(prefix, field, v)] for v in values}


@pytest.fixture(scope="module")
def scorers(real_root, task_env):
    with pytest.MonkeyPatch.context() as mp:  # the data root is read when a YAML loads
        mp.setenv(ENV_VAR, str(real_root))
        return {task: Scorer(task, folder) for task, (folder, _) in YAMLS.items()}


@pytest.fixture(scope="module")
def docs(shared_data):
    return {
        task: json.loads((shared_data / "annotations" / "sttm" / f).read_text())
        for task, (_, f) in YAMLS.items()
    }


@pytest.mark.parametrize("task", YAMLS)
def test_oracle_scores_100_everywhere(task, scorers, docs):
    assert len(docs[task]) == COUNTS[task]
    res = scorers[task](docs[task], gold)
    assert res["sttm_acc"] == 100.0 and res["unparsed"] == 0
    assert res.get("official_acc", 100.0) == 100.0
    grouped = {v for k, v in res.items() if k.startswith(("acc_", "circular_"))}
    assert grouped == {100.0} or task == "egoschema_subset_sttm"
    types = {x["task_type"] for x in docs[task]}
    assert len([k for k in res if k.startswith("acc_task_type=")]) == len(types)


@pytest.mark.parametrize("task", YAMLS)
def test_fixed_letter_a(task, scorers, docs):
    d = docs[task]
    res = scorers[task](d, lambda doc: "A")
    assert res["sttm_acc"] == pytest.approx(pct(gold(x) == "A" for x in d), abs=1e-9)
    assert res["unparsed"] == 0
    by_type = defaultdict(list)
    for x in d:
        by_type[x["task_type"]].append(gold(x) == "A")
    assert groups(res, "acc", "task_type", by_type) == pytest.approx({t: pct(v) for t, v in by_type.items()})
    if task == "mlvu_sttm":  # M-Avg: the mean of the 7 task accuracies
        assert len(by_type) == 7
        assert res["official_acc"] == pytest.approx(sum(pct(v) for v in by_type.values()) / 7)
    if task == "vnbench_sttm":  # the 4 tries of an item permute the options: "A" is never right 4 times
        assert res["official_acc"] == 0.0


@pytest.mark.parametrize("task", YAMLS)
def test_unparseable_answers_are_wrong_and_counted(task, scorers, docs):
    res = scorers[task](docs[task], lambda doc: TALK)
    assert res["sttm_acc"] == 0.0
    assert res["unparsed"] == COUNTS[task]


def test_vnbench_circular_groups_the_four_tries(scorers, docs):
    """Right on tries 0-2, "A" on try 3: an item counts (circular) only when its try-3 answer is A."""
    d = docs["vnbench_sttm"]
    res = scorers["vnbench_sttm"](d, lambda x: gold(x) if x["try"] < 3 else "A")
    assert res["sttm_acc"] == pytest.approx(pct(x["try"] < 3 or gold(x) == "A" for x in d))
    per_type = defaultdict(list)
    for x in d:
        if x["try"] == 3:
            per_type[x["task_type"]].append(gold(x) == "A")
    assert len(per_type) == 9 and all(len(v) == 150 for v in per_type.values())
    expected = {t: pct(v) for t, v in per_type.items()}
    assert groups(res, "circular", "task_type", expected) == pytest.approx(expected)
    assert res["official_acc"] == pytest.approx(sum(expected.values()) / 9)
    assert 0 < res["official_acc"] < res["sttm_acc"]


def test_longvideobench_int_answers_and_option_counts(scorers, docs):
    d = docs["longvideobench_sttm"]
    res = scorers["longvideobench_sttm"](d, lambda x: "E")
    assert res["sttm_acc"] == pytest.approx(pct(x["answer"] == 4 for x in d))
    assert {k for k in res if k.startswith("acc_duration=")} == {
        f"acc_duration={d}" for d in (15, 60, 600, 3600)
    }


def egoschema_subset_docs(shared_data) -> list[dict]:
    answers = json.loads((shared_data / "annotations/official/egoschema/subset_answers.json").read_text())
    return [
        {"q_uid": uid, "question": "q", **{f"option {i}": f"o{i}" for i in range(5)}, "answer": a}
        for uid, a in answers.items()
    ]


def test_egoschema_subset_fixed_letter(shared_data, real_root, use_root):
    use_root(real_root)
    d = egoschema_subset_docs(shared_data)
    score = Scorer("egoschema_subset_sttm", "egoschema")
    res = score(d, lambda x: "A")
    assert len(d) == 500
    assert res["sttm_acc"] == pytest.approx(pct(x["answer"] == 0 for x in d)) == pytest.approx(20.2)
    assert score(d, lambda x: "ABCDE"[x["answer"]])["sttm_acc"] == 100.0


def test_egoschema_full_writes_the_submission(shared_data, real_root, use_root, tmp_path):
    use_root(real_root)
    d = [{k: v for k, v in x.items() if k != "answer"} for x in egoschema_subset_docs(shared_data)[:4]]
    replies = {
        d[0]["q_uid"]: "C",
        d[1]["q_uid"]: "The best answer is E.",
        d[2]["q_uid"]: TALK,
        d[3]["q_uid"]: "A",
    }
    res = Scorer("egoschema_sttm", "egoschema")(
        d, lambda x: replies[x["q_uid"]], args=Namespace(output_path=str(tmp_path))
    )
    assert res["submission"] == 4 and res["unparsed"] == 1
    (path,) = (tmp_path / "submissions").glob("egoschema_sttm_*.json")
    expected = {d[0]["q_uid"]: "2", d[1]["q_uid"]: "4", d[2]["q_uid"]: "", d[3]["q_uid"]: "0"}
    assert json.loads(path.read_text()) == expected
