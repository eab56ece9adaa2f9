"""Statistics de-duplication keeps the latest record of a question by ``time``, wherever it sits:
earlier in a file, in a file that sorts first, or tied (then file order). Expected records are
picked by hand from the written values."""

from __future__ import annotations

import json

from lmms_sttm.models.stats import deduplicate
from lmms_sttm.report.stats_files import load_stats


def _rec(doc_id: int, time: float | None, answer: str, model: str = "m", task: str = "t") -> dict:
    return {"model": model, "task": task, "doc_id": doc_id, "time": time, "answer": answer}


def test_the_newer_record_wins_even_when_it_comes_first():
    records = [
        _rec(0, 200.0, "new"),  # answered last (a resumed run), listed first
        _rec(1, 50.0, "only"),
        _rec(0, 100.0, "old"),
        _rec(2, 10.0, "tie-a"),
        _rec(2, 10.0, "tie-b"),  # equal times: the later in file order
        _rec(0, 150.0, "middle"),
    ]
    out = deduplicate(records)
    assert [(r["doc_id"], r["answer"]) for r in out] == [(0, "new"), (1, "only"), (2, "tie-b")]


def test_keys_are_model_task_and_doc_id():
    records = [_rec(0, 2.0, "a"), _rec(0, 1.0, "b", model="other"), _rec(0, 1.0, "c", task="u")]
    assert [r["answer"] for r in deduplicate(records)] == ["a", "b", "c"]


def test_a_record_without_time_loses_to_a_timed_one():
    records = [_rec(0, 5.0, "timed"), _rec(0, None, "untimed")]
    assert [r["answer"] for r in deduplicate(records)] == ["timed"]


def test_load_stats_keeps_the_newer_record_from_the_file_that_sorts_first(tmp_path):
    """rank0's file (sorted first) holds the resumed run's newer answer; rank1's the stale one."""
    rows = {
        "m_rank0.jsonl": [_rec(3, 900.0, "resumed"), _rec(4, 100.0, "r0")],
        "m_rank1.jsonl": [_rec(3, 100.0, "stale"), _rec(5, 100.0, "r1")],
    }
    for name, recs in rows.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = load_stats(tmp_path, "m")
    assert {r["doc_id"]: r["answer"] for r in out} == {3: "resumed", 4: "r0", 5: "r1"}
