"""Where statistics go and how they are written; de-duplication keeps the latest record of a question by ``time``, wherever it sits:
earlier in a file, in a file that sorts first, or tied (then file order). Expected records are
picked by hand from the written values."""

from __future__ import annotations

import json

from lmms_sttm.models.stats import StatsWriter, deduplicate, default_stats_dir
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


def test_default_stats_dir_follows_the_output_path_argument():
    assert default_stats_dir(["lmms_eval", "--output_path", "out/x", "--tasks", "t"]) == "out/x/sttm_stats"
    assert default_stats_dir(["lmms_eval", "--output_path=out/y"]) == "out/y/sttm_stats"
    assert default_stats_dir(["lmms_eval", "--tasks", "t"]) is None
    assert default_stats_dir(["lmms_eval", "--output_path"]) is None  # no value after it
    assert default_stats_dir(["--output_path", "a", "--output_path=b"]) == "a/sttm_stats"  # the first


def test_writer_appends_sorted_json_lines_and_keeps_records(tmp_path):
    writer = StatsWriter(str(tmp_path / "new" / "dir"), "run", 3)
    assert writer.path == tmp_path / "new" / "dir" / "run_rank3.jsonl" and writer.path.parent.is_dir()
    writer.write({"b": 1, "a": 2})
    StatsWriter(str(tmp_path / "new" / "dir"), "run", 3).write({"c": 3})  # a second writer appends
    assert writer.path.read_text() == '{"a": 2, "b": 1}\n{"c": 3}\n'
    assert writer.records == [{"b": 1, "a": 2}]
    nowhere = StatsWriter(None, "run", 0)
    nowhere.write({"a": 1})
    assert nowhere.path is None and nowhere.records == [{"a": 1}]


def test_a_replacing_record_takes_the_first_position_of_its_question():
    records = [_rec(0, 1.0, "old"), _rec(1, 1.0, "b"), _rec(0, 2.0, "new"), _rec(2, 1.0, "c")]
    assert [(r["doc_id"], r["answer"]) for r in deduplicate(records)] == [(0, "new"), (1, "b"), (2, "c")]


def test_a_missing_time_counts_as_zero():
    # small times make the default visible: 0.5 beats a missing time in either order
    assert [r["answer"] for r in deduplicate([_rec(0, 0.5, "timed"), _rec(0, None, "untimed")])] == ["timed"]
    assert [r["answer"] for r in deduplicate([_rec(0, None, "untimed"), _rec(0, 0.5, "timed")])] == ["timed"]
    assert [r["answer"] for r in deduplicate([_rec(0, None, "a"), _rec(0, 0.0, "b")])] == ["b"]  # tie: later


def test_default_stats_dir_edge_arguments(monkeypatch):
    assert default_stats_dir(["--output_path", "z"]) == "z/sttm_stats"  # the value is the last argument
    assert default_stats_dir(["x", "--output_path=a=b"]) == "a=b/sttm_stats"  # only the first '=' splits
    monkeypatch.setattr("sys.argv", ["lmms_eval", "--output_path", "from_argv"])
    assert default_stats_dir() == "from_argv/sttm_stats"
