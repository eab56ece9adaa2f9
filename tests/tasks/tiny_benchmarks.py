"""A tiny data root in the layout the ``*_sttm`` tasks read, with real (synthetic) clips.

No clip shows a needle, so ``sttm_oracle`` with ``fallback=A`` answers "A" to every question:
a fixed-letter model whose scores follow from the annotations alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmms_sttm.data.synthetic import ClipSpec, ensure_clip

# VNBench: (videoID, task_type, duration, answers of tries 0..3). Consecutive docs are the tries
# of one item, so two ranks (strided sharding) always split an item's tries.
VNBENCH_ITEMS = [
    ("v0_ret", "ret_insert1", "short", "AAAA"),
    ("v1_ret", "ret_insert1", "short", "ABAA"),
    ("v2_cnt", "cnt_edit1", "medium", "AAAA"),
    ("v3_cnt", "cnt_edit1", "short", "BCDB"),
    ("v4_cnt", "cnt_edit1", "medium", "AAAA"),
]


def vnbench_records() -> list[dict]:
    out = []
    for vid, task_type, duration, answers in VNBENCH_ITEMS:
        for t, answer in enumerate(answers):
            out.append(
                {
                    "question": f"What is shown in {vid}?",
                    "options": [f"{letter}. thing {letter}{t}." for letter in "ABCD"],
                    "needle_time": [1],
                    "answer": answer,
                    "length": 2.0,
                    "task_type": task_type,
                    "try": t,
                    "videoID": vid,
                    "question_id": f"{vid}_try{t}",
                    "video_second": 2.0,
                    "duration": duration,
                }
            )
    return out


def videomme_records() -> list[dict]:
    rows = [
        ("001", "short", "Counting Problem", "A"),
        ("001", "short", "OCR Problems", "C"),
        ("002", "long", "OCR Problems", "A"),
    ]
    return [
        {
            "video_id": vid,
            "duration": duration,
            "domain": "Knowledge",
            "sub_category": "Astronomy",
            "url": f"https://www.youtube.com/watch?v=yt{vid}",
            "videoID": f"yt{vid}",
            "question_id": f"{vid}-{k}",
            "task_type": task_type,
            "question": f"Question {k} on video {vid}?",
            "options": ["A. one.", "B. two.", "C. three.", "D. four."],
            "answer": answer,
        }
        for k, (vid, duration, task_type, answer) in enumerate(rows, start=1)
    ]


def lvb_records() -> list[dict]:
    rows = [
        ("lvb1", 15, "S2E", 3, 0),
        ("lvb1", 15, "T3E", 5, 2),
        ("lvb2", 600, "S2E", 4, 0),
        ("lvb2", 600, "TOS", 4, 1),
    ]
    return [
        {
            "videoID": vid,
            "question_id": f"{vid}_{k}",
            "duration": duration,
            "task_type": task_type,
            "question": f"Which subtitle appears ({k})?",
            "options": [f"subtitle {i}" for i in range(n)],
            "answer": answer,
        }
        for k, (vid, duration, task_type, n, answer) in enumerate(rows)
    ]


def mlvu_records() -> list[dict]:
    rows = [
        ("1_plotQA-m1", "plotQA", "A"),
        ("1_plotQA-m1", "plotQA", "B"),
        ("2_needle-n1", "findNeedle", "A"),
        ("4_count-c1", "count", "D"),
    ]
    out, seen = [], {}
    for vid, task_type, answer in rows:
        seen[vid] = seen.get(vid, 0) + 1
        out.append(
            {
                "video_id": vid,
                "question_id": f"{vid}-{seen[vid]}",
                "question": f"What happens in {vid}?",
                "answer": answer,
                "options": ["red", "green", "blue", "yellow"],
                "task_type": task_type,
                "duration": "long",
                "video_second": 300.0,
            }
        )
    return out


def nextqa_records() -> list[dict]:
    rows = [("1001", "CW", "A"), ("1001", "TN", "E"), ("1002", "CW", "A")]
    return [
        {
            "video_id": vid,
            "question_id": f"{vid}_{k}",
            "question": f"why did the baby cry {k}",
            "answer": answer,
            "options": ["a0", "a1", "a2", "a3", "a4"],
            "task_type": task_type,
            "duration": "short",
            "video_second": 20.0,
        }
        for k, (vid, task_type, answer) in enumerate(rows)
    ]


def egoschema_questions() -> list[dict]:
    return [
        {
            "q_uid": f"uid-{k}",
            "google_drive_id": f"g{k}",
            "question": f"What is c's overall goal in video {k}?",
            **{f"option {i}": f"goal {i}" for i in range(5)},
        }
        for k in range(3)
    ]


EGOSCHEMA_ANSWERS = {"uid-0": 0, "uid-2": 3}

FILES = {
    ("vnbench", "VNBench-main-4try_v2.json"): (vnbench_records, "videoID"),
    ("videomme", "videomme.json"): (videomme_records, "videoID"),
    ("longvideobench", "lvb_val_v2.json"): (lvb_records, "videoID"),
    ("mlvu", "MLVU_mcq_v2.json"): (mlvu_records, "video_id"),
    ("nextqa", "MC_test_v2.json"): (nextqa_records, "video_id"),
    ("egoschema", "egoschema_fullset_v2.json"): (egoschema_questions, "q_uid"),
    (
        "egoschema",
        "egoschema_subset_v2.json",
    ): (
        lambda: [
            {**q, "answer": EGOSCHEMA_ANSWERS[q["q_uid"]]}
            for q in egoschema_questions()
            if q["q_uid"] in EGOSCHEMA_ANSWERS
        ],
        "q_uid",
    ),
}


def build(root: Path) -> Path:
    """Write every tiny annotation file and its clips under ``root``; returns ``root``."""
    for (bench, name), (records_fn, video_field) in FILES.items():
        records = records_fn()
        ann = root / bench / "annotations" / name
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps(records, indent=1))
        for i, stem in enumerate(sorted({r[video_field] for r in records})):
            spec = ClipSpec(num_frames=8, height=64, width=64, fps=4.0, seed=i)
            ensure_clip(spec, root / bench / "videos" / f"{stem}.mp4")
    return root


def records(bench: str, name: str) -> list[dict]:
    return FILES[(bench, name)][0]()
