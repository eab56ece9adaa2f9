"""EgoSchema: ``questions.json`` + ``subset_answers.json`` -> ``egoschema_fullset_v2.json`` + ``egoschema_subset_v2.json``.

The STTM authors ship the official ``questions.json`` unchanged (same git blob) and their code
reads it as ``egoschema_fullset_v2.json``: the full set (5,031 questions, no answers) is copied
record for record. The subset file holds the questions whose ``q_uid`` is in
``subset_answers.json`` (500), in question-file order, each with ``answer``: the official 0-based
option index. Videos are ``<q_uid>.mp4``.
"""

from __future__ import annotations

from pathlib import Path

from lmms_sttm.data.converters.common import ConversionError, read_json, require_fields

NAME = "egoschema"
DEFAULT_SOURCE = "github:egoschema/EgoSchema"
URLS = {
    "questions.json": "https://raw.githubusercontent.com/egoschema/EgoSchema/main/questions.json",
    "subset_answers.json": "https://raw.githubusercontent.com/egoschema/EgoSchema/main/subset_answers.json",
}
HUB_PATTERNS = ["questions.json", "subset_answers.json"]  # for a dataset mirror of the two files
FULL_OUTPUT = "egoschema_fullset_v2.json"
SUBSET_OUTPUT = "egoschema_subset_v2.json"
NEEDS_SECONDS = False
FIELDS = ("q_uid", "question", *(f"option {i}" for i in range(5)))


def load(source: Path) -> tuple[list[dict], dict[str, int]]:
    """``(questions, subset answers)`` from a folder holding both files, or from ``questions.json``
    with ``subset_answers.json`` beside it."""
    folder = source if source.is_dir() else source.parent
    questions_path = source if source.is_file() else folder / "questions.json"
    answers_path = folder / "subset_answers.json"
    for path in (questions_path, answers_path):
        if not path.is_file():
            raise ConversionError(
                f"EgoSchema: {path} not found (need questions.json and subset_answers.json)"
            )
    questions = read_json(questions_path)
    require_fields(questions, FIELDS, str(questions_path))
    answers = read_json(answers_path)
    if not isinstance(answers, dict) or not all(isinstance(v, int) and 0 <= v <= 4 for v in answers.values()):
        raise ConversionError(f"{answers_path} should map q_uid to an option index 0-4")
    return questions, answers


def convert(data: tuple[list[dict], dict[str, int]], seconds=None) -> dict[str, list[dict]]:
    questions, answers = data
    known = {q["q_uid"] for q in questions}
    absent = [uid for uid in answers if uid not in known]
    if absent:
        raise ConversionError(
            f"EgoSchema: {len(absent)} of {len(answers)} answered q_uids are not in the questions file "
            f"(e.g. {absent[:3]}); is it the full questions.json?"
        )
    subset = [{**q, "answer": answers[q["q_uid"]]} for q in questions if q["q_uid"] in answers]
    return {FULL_OUTPUT: [dict(q) for q in questions], SUBSET_OUTPUT: subset}
