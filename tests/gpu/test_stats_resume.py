"""Statistics files are appended to, and one record per question (the latest) is kept."""

from __future__ import annotations

import json

from lmms_sttm.models.stats import StatsWriter, deduplicate
from lmms_sttm.report.stats_files import load_stats


def test_a_second_writer_appends(tmp_path):
    StatsWriter(str(tmp_path), "m", 0).write({"model": "m", "task": "t", "doc_id": 0, "time": 1.0})
    StatsWriter(str(tmp_path), "m", 0).write({"model": "m", "task": "t", "doc_id": 1, "time": 2.0})
    lines = (tmp_path / "m_rank0.jsonl").read_text().splitlines()
    assert [json.loads(line)["doc_id"] for line in lines] == [0, 1]


def test_latest_record_per_question_wins_across_rank_files(tmp_path):
    first = StatsWriter(str(tmp_path), "m", 0)
    first.write({"model": "m", "task": "t", "doc_id": 0, "answer": "old", "time": 1.0})
    first.write({"model": "m", "task": "t", "doc_id": 1, "answer": "b", "time": 1.5})
    StatsWriter(str(tmp_path), "m", 1).write(
        {"model": "m", "task": "t", "doc_id": 0, "answer": "new", "time": 3.0}
    )
    StatsWriter(str(tmp_path), "m", 1).write(
        {"model": "m", "task": "u", "doc_id": 0, "answer": "u", "time": 0.5}
    )
    records = load_stats(tmp_path, "m")
    assert [(r["task"], r["doc_id"], r["answer"]) for r in records] == [
        ("t", 0, "new"),
        ("t", 1, "b"),
        ("u", 0, "u"),
    ]
    assert deduplicate(records) == records
