"""Converters reproduce the STTM authors' reformatted files from the official releases, and
``python -m lmms_sttm.data.prepare`` lays them out (with linked, measured videos) as the tasks read them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lmms_sttm.data import prepare
from lmms_sttm.data.converters import egoschema, hub, longvideobench, mlvu, nextqa, videomme, vnbench
from lmms_sttm.data.converters.common import ConversionError
from lmms_sttm.data.synthetic import ClipSpec, ensure_clip


def sttm_file(shared: Path, rel: str) -> list[dict]:
    return json.loads((shared / "annotations" / "sttm" / rel).read_text())


def seconds_of(records: list[dict], key: str) -> dict[str, float]:
    return {r[key]: r["video_second"] for r in records}


def buckets_differing(a: list[dict], b: list[dict]) -> int:
    return sum(x["duration"] != y["duration"] for x, y in zip(a, b, strict=True))


# ---- MLVU -------------------------------------------------------------------------------------
def test_mlvu_official_files_give_the_authors_file(shared_data):
    v2 = sttm_file(shared_data, "mlvu/MLVU_mcq_v2.json")
    files = mlvu.load(shared_data / "annotations/official/mlvu")
    (out,) = mlvu.convert(files, seconds_of(v2, "video_id")).values()
    assert len(out) == 2174 and out == v2
    # The two needle answers the GitHub release lacks, taken as the candidate "Catching the drone".
    fixed = {
        r["question_id"]: r for r in out if r["question_id"] in ("2_needle-needle_4-4", "2_needle-needle_5-5")
    }
    assert {q: (r["answer"], r["options"]["ABCD".index(r["answer"])]) for q, r in fixed.items()} == {
        "2_needle-needle_4-4": ("B", "Catching the drone"),
        "2_needle-needle_5-5": ("D", "Catching the drone"),
    }


def test_mlvu_answer_outside_the_candidates_is_an_error(shared_data, monkeypatch):
    monkeypatch.setattr(mlvu, "ANSWER_ERRATA", {})
    files = mlvu.load(shared_data / "annotations/official/mlvu")
    with pytest.raises(ConversionError, match="needle_4.mp4: answer 'Catching a flying drone quadcopter'"):
        mlvu.convert(files, mlvu.estimated_seconds(files))


def test_mlvu_estimated_lengths_keep_every_bucket(shared_data):
    v2 = sttm_file(shared_data, "mlvu/MLVU_mcq_v2.json")
    files = mlvu.load(shared_data / "annotations/official/mlvu")
    (out,) = mlvu.convert(files, mlvu.estimated_seconds(files)).values()
    assert buckets_differing(out, v2) == 0
    assert max(abs(a["video_second"] - b["video_second"]) for a, b in zip(out, v2, strict=True)) < 1.0


# ---- NExT-QA ----------------------------------------------------------------------------------
def test_nextqa_csv_gives_the_authors_file(shared_data):
    v2 = sttm_file(shared_data, "nextqa/MC_test_v2.json")
    rows = nextqa.load(shared_data / "annotations/official/nextqa/test.csv")
    (out,) = nextqa.convert(rows, seconds_of(v2, "video_id")).values()
    assert len(out) == 8564 and out == v2
    (estimated,) = nextqa.convert(rows, nextqa.estimated_seconds(rows)).values()
    assert buckets_differing(estimated, v2) == 159  # the documented cost of --estimate-seconds


def test_nextqa_hub_parquet_gives_the_same_records(shared_data, tmp_path):
    frame = pd.read_csv(shared_data / "annotations/official/nextqa/test.csv")  # ints, as in the hub table
    frame.to_parquet(tmp_path / "test-00000-of-00001.parquet")
    v2 = sttm_file(shared_data, "nextqa/MC_test_v2.json")
    rows = nextqa.load(tmp_path)
    assert nextqa.convert(rows, seconds_of(v2, "video_id"))[nextqa.OUTPUT] == v2


# ---- VNBench (official file not available: official-format records rebuilt from the v2 file) ---
def vnbench_official(rec: dict) -> dict:
    options = [o[3:-1] for o in rec["options"]]  # "A. text." -> "text"
    return {
        "video": f"VNBench/videos/{rec['videoID']}.mp4",
        "question": rec["question"],
        "options": options,
        "needle_time": rec["needle_time"],
        "gt": options["ABCD".index(rec["answer"])],
        "gt_option": rec["answer"],
        "length": rec["length"],
        "type": rec["task_type"],
        "try": rec["try"],
    }


def test_vnbench_mapping_on_a_made_up_record():
    rec = {
        "video": "data/video42_ord_edit1.mp4",
        "question": "In what order?",
        "options": ["1-2", "2-1", "1-1", "2-2"],
        "needle_time": [3, 9],
        "gt": "2-1",
        "gt_option": "B",
        "length": 61.0,
        "type": "ord_edit1",
        "try": 2,
    }
    (out,) = vnbench.convert([rec], {"video42_ord_edit1": 62.5}).values()
    assert out == [
        {
            "question": "In what order?",
            "options": ["A. 1-2.", "B. 2-1.", "C. 1-1.", "D. 2-2."],
            "needle_time": [3, 9],
            "answer": "B",
            "length": 61.0,
            "task_type": "ord_edit1",
            "try": 2,
            "videoID": "video42_ord_edit1",
            "question_id": "video42_ord_edit1_try2",
            "video_second": 62.5,
            "duration": "medium",
        }
    ]


def test_vnbench_rebuilt_official_records_give_the_authors_file(shared_data, tmp_path):
    v2 = sttm_file(shared_data, "vnbench/VNBench-main-4try_v2.json")
    (tmp_path / vnbench.OFFICIAL_FILE).write_text(json.dumps([vnbench_official(r) for r in v2]))
    official = vnbench.load(tmp_path)
    assert vnbench.convert(official, seconds_of(v2, "videoID"))[vnbench.OUTPUT] == v2
    (estimated,) = vnbench.convert(official, vnbench.estimated_seconds(official)).values()
    assert buckets_differing(estimated, v2) == 44


# ---- LongVideoBench (official files not available: rebuilt from the v2 files) ----------------
def lvb_official(rec: dict) -> dict:
    out = {
        "video_id": rec["videoID"],
        "id": rec["question_id"],
        "duration_group": rec["duration"],
        "question_category": rec["task_type"],
        "question": rec["question"],
        "candidates": rec["options"],
        "question_wo_referring_query": "dropped",
        "topic_category": "dropped",
        "duration": 123.4,
        "subtitle_path": "x.json",
    }
    if "answer" in rec:
        out["correct_choice"] = rec["answer"]
    return out


@pytest.mark.parametrize(
    "name, output", [("lvb_val.json", "lvb_val_v2.json"), ("lvb_test_wo_gt.json", "lvb_test_v2.json")]
)
def test_lvb_rebuilt_official_records_give_the_authors_files(shared_data, tmp_path, name, output):
    v2 = sttm_file(shared_data, f"longvideobench/{output}")
    (tmp_path / name).write_text(json.dumps([lvb_official(r) for r in v2]))
    assert longvideobench.convert(longvideobench.load(tmp_path / name)) == {output: v2}


def test_lvb_user_handle_ids_keep_their_last_segment():
    rec = {
        "video_id": "@some-user-7141686631676808454",
        "id": "@some-user-7141686631676808454_2",
        "duration_group": 60,
        "question_category": "S2E",
        "question": "q",
        "candidates": ["a", "b", "c", "d"],
        "correct_choice": 3,
    }
    (out,) = longvideobench.convert({"val": [rec]}).values()
    assert out[0]["videoID"] == "7141686631676808454" and out[0]["question_id"] == "7141686631676808454_2"


# ---- Video-MME ---------------------------------------------------------------------------------
def test_videomme_hub_parquet_and_flat_json_give_the_authors_file(shared_data, tmp_path):
    v2 = sttm_file(shared_data, "videomme/videomme.json")
    (tmp_path / "videomme").mkdir()
    pd.DataFrame(v2).to_parquet(tmp_path / "videomme" / "test-00000-of-00001.parquet")
    assert videomme.convert(videomme.load(tmp_path))[videomme.OUTPUT] == v2
    flat = shared_data / "annotations/sttm/videomme/videomme.json"
    assert videomme.convert(videomme.load(flat))[videomme.OUTPUT] == v2


def test_videomme_nested_template_is_rejected(shared_data, tmp_path):
    """The official result template nests questions per video: not a question table."""
    text = (shared_data / "annotations/official/videomme/output_test_template.json").read_text()
    (tmp_path / "videomme.json").write_text(text)
    with pytest.raises(ConversionError, match="not valid JSON"):  # its trailing commas
        videomme.load(tmp_path / "videomme.json")
    (tmp_path / "videomme.json").write_text(re.sub(r",(\s*[}\]])", r"\1", text))
    with pytest.raises(ConversionError, match=r"record 0 lacks the fields \['url', 'videoID', 'question_id'"):
        videomme.load(tmp_path / "videomme.json")


# ---- EgoSchema ---------------------------------------------------------------------------------
def test_egoschema_full_and_subset_files(shared_data, tmp_path):
    preview = json.loads(
        (shared_data / "annotations/official/egoschema/early_preview_617b469/questions.json").read_text()
    )
    answers = json.loads((shared_data / "annotations/official/egoschema/subset_answers.json").read_text())
    # The real questions.json is not available: give 8 preview questions the q_uids of subset questions.
    uids = list(answers)[:8]
    questions = [{**q, "q_uid": uids[i]} if i < 8 else q for i, q in enumerate(preview)]
    (tmp_path / "questions.json").write_text(json.dumps(questions))
    (tmp_path / "subset_answers.json").write_text(json.dumps({u: answers[u] for u in uids}))
    out = egoschema.convert(egoschema.load(tmp_path))
    assert out[egoschema.FULL_OUTPUT] == questions
    assert out[egoschema.SUBSET_OUTPUT] == [{**q, "answer": answers[q["q_uid"]]} for q in questions[:8]]


def test_egoschema_answers_without_questions_are_an_error(shared_data, tmp_path):
    # The 20-question early preview shares no q_uid with the 500 answered questions.
    official = shared_data / "annotations/official/egoschema"
    (tmp_path / "questions.json").write_text((official / "early_preview_617b469/questions.json").read_text())
    with pytest.raises(ConversionError, match="subset_answers.json"):
        egoschema.load(tmp_path / "questions.json")
    (tmp_path / "subset_answers.json").write_text((official / "subset_answers.json").read_text())
    with pytest.raises(ConversionError, match="500 of 500 answered q_uids are not in the questions file"):
        egoschema.convert(egoschema.load(tmp_path / "questions.json"))


# ---- the prepare command -----------------------------------------------------------------------
# Tiny made-up MLVU release: one record per task file; clips of 2 s, 80 s and 128 s.
CLIPS = {"short": (16, 8.0), "medium": (40, 0.5), "long": (64, 0.5)}  # frames, fps


def tiny_mlvu_release(folder: Path) -> dict[str, str]:
    """Write ``json/<task>.json`` and ``video/<task>/<name>.mp4``; returns video_id -> expected bucket."""
    expected = {}
    for i, stem in enumerate(mlvu.TASK_FILES):
        bucket = list(CLIPS)[i % 3]
        frames, fps = CLIPS[bucket]
        name = f"clip{i}.mp4"
        ensure_clip(
            ClipSpec(num_frames=frames, height=64, width=64, fps=fps, seed=i), folder / "video" / stem / name
        )
        (folder / "video" / stem / f"clip{i}.json").unlink()  # ensure_clip's sidecar; not a video
        rec = {
            "video": name,
            "duration": 1.0,
            "question": f"q{i}?",
            "candidates": list("wxyz"),
            "answer": "y",
            "question_type": stem[2:],
        }
        (folder / "json").mkdir(parents=True, exist_ok=True)
        (folder / "json" / f"{stem}.json").write_text(json.dumps([rec]))
        expected[f"{stem}-clip{i}"] = bucket
    return expected


def test_prepare_links_videos_and_measures_their_length(tmp_path, capsys):
    expected = tiny_mlvu_release(tmp_path / "release")
    root = tmp_path / "datasets"
    args = [
        "mlvu",
        "--source",
        str(tmp_path / "release/json"),
        "--videos-from",
        str(tmp_path / "release/video"),
    ]
    assert prepare.main([*args, "--root", str(root)]) == 0
    videos = root / "mlvu" / "videos"
    assert sorted(p.name for p in videos.iterdir()) == sorted(f"{v}.mp4" for v in expected)
    assert all((videos / f"{v}.mp4").is_symlink() for v in expected)
    out = json.loads((root / "mlvu/annotations/MLVU_mcq_v2.json").read_text())
    assert {r["video_id"]: r["duration"] for r in out} == expected
    assert {r["video_id"]: round(r["video_second"]) for r in out} == {
        v: {"short": 2, "medium": 80, "long": 128}[b] for v, b in expected.items()
    }
    assert all(r["answer"] == "C" and r["question_id"] == f"{r['video_id']}-1" for r in out)
    assert "wrote 7 records" in capsys.readouterr().out
    assert prepare.main([*args, "--root", str(root)]) == 0  # re-running keeps the links


def test_prepare_without_videos_asks_for_them_or_for_estimates(tmp_path, shared_data, capsys):
    root = tmp_path / "datasets"
    source = str(shared_data / "annotations/official/mlvu")
    assert prepare.main(["mlvu", "--source", source, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(root / "mlvu" / "videos") in err and "--estimate-seconds" in err
    assert prepare.main(["mlvu", "--source", source, "--root", str(root), "--estimate-seconds"]) == 0
    out = json.loads((root / "mlvu/annotations/MLVU_mcq_v2.json").read_text())
    v2 = sttm_file(shared_data, "mlvu/MLVU_mcq_v2.json")
    drop = lambda recs: [{k: v for k, v in r.items() if k != "video_second"} for r in recs]
    assert drop(out) == drop(v2)


def test_remote_sources_go_through_the_hub_module(tmp_path, monkeypatch, shared_data):
    calls = []

    def fake_fetch(converter, source, cache_dir):
        calls.append((converter.NAME, source))
        return shared_data / "annotations/official/nextqa"

    monkeypatch.setattr(hub, "fetch", fake_fetch)
    assert (
        prepare.main(["nextqa", "--source", "lmms-lab/NExTQA", "--root", str(tmp_path), "--estimate-seconds"])
        == 0
    )
    assert calls == [("nextqa", "lmms-lab/NExTQA")]
    assert len(json.loads((tmp_path / "nextqa/annotations/MC_test_v2.json").read_text())) == 8564
    assert prepare.main(["nextqa", "--source", "./no/such/file.csv", "--root", str(tmp_path)]) == 2
