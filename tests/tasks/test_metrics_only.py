"""``process_results`` returns the task's metrics and nothing else; the record rides in ``sttm_acc``.

lmms-eval treats every returned key as a metric: a record field there (``question_id`` ...)
leaves empty entries in ``results.json`` and breaks lmms-eval's W&B logger.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lmms_eval.utils import load_yaml_config

from lmms_sttm._task_path import TASKS_DIR
from lmms_sttm.data_root import ENV_VAR
from tests.tasks.test_metrics_real import YAMLS

TASKS = {**{t: folder for t, (folder, _) in YAMLS.items()}, "egoschema_subset_sttm": "egoschema"}
TASKS.update(egoschema_sttm="egoschema", synthetic_needle_sttm="synthetic")
RECORD = {"question_id", "video_id", "task_type", "duration", "pred", "answer", "parsed", "correct"}


def _config(task: str, folder: str, root: Path) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_VAR, str(root))
        return load_yaml_config(str(Path(TASKS_DIR) / folder / f"{task}.yaml"), mode="full")


def _first_doc(task: str, folder: str, shared_data: Path, real_root: Path) -> dict:
    if folder == "synthetic":
        return json.loads((Path(TASKS_DIR) / folder / "synthetic_needle.json").read_text())[0]
    names = {
        "egoschema_sttm": "egoschema_fullset_v2.json",
        "egoschema_subset_sttm": "egoschema_subset_v2.json",
    }
    (path,) = (real_root / folder / "annotations").glob(names.get(task, "*"))
    return json.loads(path.read_text())[0]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_process_results_returns_only_the_yaml_metrics(task, real_root, shared_data, task_env):
    folder = TASKS[task]
    cfg = _config(task, folder, real_root)
    doc = _first_doc(task, folder, shared_data, real_root)
    out = cfg["process_results"](doc, ["A"])
    assert set(out) <= {m["metric"] for m in cfg["metric_list"]}, task
    carrier = out["submission"] if task == "egoschema_sttm" else out["sttm_acc"]
    if folder == "synthetic":
        assert {"score", "question_id", "video_id"} <= set(carrier)
    else:
        assert set(carrier) >= RECORD and carrier["pred"] == "A"
