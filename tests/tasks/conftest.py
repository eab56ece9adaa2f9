"""Fixtures for the benchmark-task tests: data roots in the layout the tasks read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmms_sttm.data_root import ENV_VAR

# (bench, reformatted file under ../shared/data/annotations/sttm/<bench>/)
REAL_FILES = {
    "vnbench": "VNBench-main-4try_v2.json",
    "videomme": "videomme.json",
    "longvideobench": "lvb_val_v2.json",
    "mlvu": "MLVU_mcq_v2.json",
    "nextqa": "MC_test_v2.json",
}
EGOSCHEMA_PREVIEW = "annotations/official/egoschema/early_preview_617b469/questions.json"


@pytest.fixture(scope="session")
def real_root(tmp_path_factory, shared_data) -> Path:
    """A data root whose annotation files are links to the real reformatted files; video folders empty.

    EgoSchema's questions file is not available: its 20-question early preview (official layout)
    stands in for the full set, and the subset file gives the first 10 made-up answers.
    """
    root = tmp_path_factory.mktemp("real_root")
    for bench, name in REAL_FILES.items():
        (root / bench / "videos").mkdir(parents=True)
        (root / bench / "annotations").mkdir()
        (root / bench / "annotations" / name).symlink_to(shared_data / "annotations" / "sttm" / bench / name)
    ego = root / "egoschema"
    (ego / "videos").mkdir(parents=True)
    (ego / "annotations").mkdir()
    questions = json.loads((shared_data / EGOSCHEMA_PREVIEW).read_text())
    (ego / "annotations" / "egoschema_fullset_v2.json").write_text(json.dumps(questions))
    subset = [{**q, "answer": i % 5} for i, q in enumerate(questions[:10])]
    (ego / "annotations" / "egoschema_subset_v2.json").write_text(json.dumps(subset))
    return root


@pytest.fixture(scope="session")
def task_env(tmp_path_factory):
    """A session-wide ``pytest.MonkeyPatch`` with a private lmms-eval datasets cache and the hubs off."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path_factory.mktemp("datasets_cache")))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    yield mp
    mp.undo()


@pytest.fixture
def use_root(task_env, monkeypatch):
    """Point ``$LMMS_STTM_DATA_ROOT`` at a folder for one test."""

    def use(root: Path) -> Path:
        monkeypatch.setenv(ENV_VAR, str(root))
        return root

    return use
