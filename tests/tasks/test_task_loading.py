"""The task YAMLs load through lmms-eval's TaskManager from the data root, render the STTM prompt,
and fail loudly (naming path and command) when the data root lacks a file or folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lmms_eval.tasks import TaskManager, get_task_dict

from lmms_sttm._task_path import TASKS_DIR
from lmms_sttm.data_root import DataRootError

TASKS = [
    "vnbench_sttm",
    "videomme_sttm",
    "longvideobench_sttm",
    "mlvu_sttm",
    "nextqa_sttm",
    "egoschema_subset_sttm",
    "egoschema_sttm",
]
RECORDS = {
    "vnbench_sttm": 5400,
    "videomme_sttm": 2700,
    "longvideobench_sttm": 1337,
    "mlvu_sttm": 2174,
    "nextqa_sttm": 8564,
    "egoschema_subset_sttm": 10,  # made-up stand-ins (see conftest.real_root)
    "egoschema_sttm": 20,
}


def header(letters: str) -> str:
    return (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        f"Respond with only the letter {letters} of the correct option."
    )


ABCD, ABCDE = header("(A, B, C, or D)"), header("(A, B, C, D, or E)")
EGO_Q = (
    "Although the video is predominantly focused on one recurring action, there is an interruption in c's activity. "
    "briefly describe this interruption and its significance within the video."
)
EGO_PROMPT = "\n".join(
    [
        ABCDE,
        EGO_Q,
        "A. C stops scrolling to check notifications on their phone, indicating a possible distraction",
        "B. C briefly stops scrolling to engage in conversation with others, showcasing the social aspect",
        "C. C interrupts scrolling to type on the laptop, adding variety to the video's main focus",
        "D. C briefly stops scrolling, showing a drifting focus.",
        "E. C takes a break to drink from a cup, briefly shifting focus",
        "The best answer is:",
    ]
)
# task -> (doc index, prompt, video file relative to the data root, target)
SNAPSHOTS = {
    "vnbench_sttm": (
        0,
        "\n".join(
            [
                ABCD,
                "What is the name of the landmark in the picture?",
                "A. Pretoria Bridge.",
                "B. Schuylkill River.",
                "C. Hôpital Notre-Dame à la Rose.",
                "D. Lake Kardyvatch.",
                "The best answer is:",
            ]
        ),
        "vnbench/videos/video7014_ret_insert2.mp4",
        "A",
    ),
    "videomme_sttm": (
        0,
        "\n".join(
            [
                ABCD,
                "When demonstrating the Germany modern Christmas tree is initially decorated with apples, candles and "
                "berries, which kind of the decoration has the largest number?",
                "A. Apples.",
                "B. Candles.",
                "C. Berries.",
                "D. The three kinds are of the same number.",
                "The best answer is:",
            ]
        ),
        "videomme/videos/fFjv93ACGo8.mp4",
        "C",
    ),
    "longvideobench_sttm": (
        1096,  # the one 3-option question: the letter list follows the option count
        "\n".join(
            [
                header("(A, B, or C)"),
                "What is the ethnicity of the first person to appear in the video?",
                "A. White",
                "B. Black",
                "C. Asian",
                "The best answer is:",
            ]
        ),
        "longvideobench/videos/kj3Po7zUeyw.mp4",
        "B",
    ),
    "mlvu_sttm": (
        0,
        "\n".join(
            [
                ABCD,
                "What color is the main male character in the video?",
                "A. Yellow",
                "B. Red",
                "C. Green",
                "D. Blue",
                "The best answer is:",
            ]
        ),
        "mlvu/videos/1_plotQA-movie101_66.mp4",
        "A",
    ),
    "nextqa_sttm": (
        0,
        "\n".join(
            [
                ABCDE,
                "what did the baby do after throwing the green cup away while on the floor near the end",
                "A. clap proudly",
                "B. the lady sitting down",
                "C. lay on floor",
                "D. just picked it up",
                "E. crawl",
                "The best answer is:",
            ]
        ),
        "nextqa/videos/2574374895.mp4",
        "C",
    ),
    "egoschema_subset_sttm": (
        0,
        EGO_PROMPT,
        "egoschema/videos/001934bb-81bd-4cd8-a574-0472ef3f6678.mp4",
        "A",
    ),
    "egoschema_sttm": (0, EGO_PROMPT, "egoschema/videos/001934bb-81bd-4cd8-a574-0472ef3f6678.mp4", ""),
}


def task_manager() -> TaskManager:
    return TaskManager("ERROR", include_path=TASKS_DIR, include_defaults=False)


@pytest.fixture(scope="module")
def loaded(real_root, task_env):
    """All seven tasks built by lmms-eval from the real-file data root (the env stays set for their use)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMMS_STTM_DATA_ROOT", str(real_root))
        yield get_task_dict(TASKS, task_manager())


def test_the_index_lists_every_task_and_the_suite():
    tm = task_manager()
    assert set(TASKS) <= set(tm.all_tasks)
    assert "sttm_suite" in tm.all_groups
    cfg = tm._get_config("sttm_suite")
    assert cfg["task"] == TASKS


@pytest.mark.parametrize("name", TASKS)
def test_task_loads_with_the_protocol_settings(name, loaded, real_root):
    task = loaded[name]
    assert len(task.test_docs()) == RECORDS[name]
    gen = task.config.generation_kwargs
    assert gen["max_new_tokens"] == 32 and gen["do_sample"] is False and gen["until"] == []
    (path,) = task.config.dataset_kwargs["data_files"].values()
    assert path.startswith(str(real_root / name.split("_")[0]))


@pytest.mark.parametrize("name", TASKS)
def test_rendered_prompt_snapshot(name, loaded, real_root):
    index, prompt, video, target = SNAPSHOTS[name]
    task = loaded[name]
    (path,) = task.config.dataset_kwargs["data_files"].values()
    raw = json.loads(Path(path).read_text())[index]  # annotation order (test_docs() is video-major)
    keys = [k for k in ("question_id", "q_uid", "question", "video") if k in raw]
    (doc,) = [d for d in task.test_docs() if all(str(d.get(k)) == str(raw[k]) for k in keys)]
    assert task.doc_to_text(doc) == prompt
    assert task.doc_to_visual(doc) == [str(real_root / video)]
    assert task.doc_to_target(doc) == target


def test_missing_annotation_file_names_the_path_and_the_command(tmp_path, use_root):
    root = use_root(tmp_path / "empty")
    with pytest.raises(DataRootError) as e:
        get_task_dict(["mlvu_sttm"], task_manager())
    msg = str(e.value)
    assert str(root / "mlvu" / "annotations" / "MLVU_mcq_v2.json") in msg
    assert f"python -m lmms_sttm.data.prepare mlvu --source MLVU/MVLU --root {root}" in msg


def test_missing_video_folder_names_the_path_and_the_command(tmp_path, use_root, shared_data):
    root = use_root(tmp_path)
    (root / "nextqa" / "annotations").mkdir(parents=True)
    shutil.copy(shared_data / "annotations/sttm/nextqa/MC_test_v2.json", root / "nextqa/annotations")
    with pytest.raises(DataRootError) as e:
        get_task_dict(["nextqa_sttm"], task_manager())
    msg = str(e.value)
    assert str(root / "nextqa" / "videos") in msg
    assert "python -m lmms_sttm.data.prepare nextqa --videos-from" in msg and f"--root {root}" in msg


def test_an_official_file_in_place_of_the_reformatted_one_fails_loudly(tmp_path, use_root, shared_data):
    root = use_root(tmp_path)
    (root / "mlvu" / "videos").mkdir(parents=True)
    (root / "mlvu" / "annotations").mkdir()
    shutil.copy(
        shared_data / "annotations/official/mlvu/1_plotQA.json", root / "mlvu/annotations/MLVU_mcq_v2.json"
    )
    with pytest.raises(
        ValueError, match=r"lacks the fields \['options', 'question_id', 'task_type', 'video_id'\]"
    ):
        get_task_dict(["mlvu_sttm"], task_manager())


def test_an_answer_outside_the_options_fails_loudly(tmp_path, use_root):
    root = use_root(tmp_path)
    (root / "nextqa" / "videos").mkdir(parents=True)
    (root / "nextqa" / "annotations").mkdir()
    bad = {"video_id": "1", "question_id": "1_0", "question": "q", "answer": "F", "options": list("abcde")}
    (root / "nextqa/annotations/MC_test_v2.json").write_text(
        json.dumps([{**bad, "task_type": "CW", "duration": "short"}])
    )
    with pytest.raises(ValueError, match="has answer 'F', not one of ABCDE"):
        get_task_dict(["nextqa_sttm"], task_manager())


def test_tasks_not_selected_do_not_need_the_data_root(tmp_path, use_root):
    use_root(tmp_path / "nothing_here")
    tasks = get_task_dict(["synthetic_needle_sttm"], task_manager())
    assert len(tasks["synthetic_needle_sttm"].test_docs()) == 16
