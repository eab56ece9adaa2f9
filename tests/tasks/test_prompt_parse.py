"""The STTM prompt text and answer parser, case by case (method spec §10.3-10.4)."""

from __future__ import annotations

import pytest

from lmms_sttm.tasks.common.parse import parse_answer
from lmms_sttm.tasks.common.prompt import letter_list, mcq_text

HEADER = (
    "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
    "Respond with only the letter {} of the correct option."
)


@pytest.mark.parametrize(
    "n, text",
    [(3, "(A, B, or C)"), (4, "(A, B, C, or D)"), (5, "(A, B, C, D, or E)"), (6, "(A, B, C, D, E, or F)")],
)
def test_letter_list(n, text):
    assert letter_list(n) == text


@pytest.mark.parametrize("n", [2, 7])
def test_letter_list_outside_three_to_six_is_an_error(n):
    with pytest.raises(ValueError, match="3 to 6"):
        letter_list(n)


def test_mcq_text_adds_prefixes_and_the_answer_cue():
    text = mcq_text("Why?", ["red", "blue", "green"], prefixed=False, n_letters=5)
    assert text == "\n".join(
        [HEADER.format("(A, B, C, D, or E)"), "Why?", "A. red", "B. blue", "C. green", "The best answer is:"]
    )


def test_prefixed_options_are_kept_and_checked():
    opts = ["A. x.", "B. y.", "C. z.", "D. w."]
    assert mcq_text("Q", opts, prefixed=True).split("\n")[2:6] == opts
    with pytest.raises(ValueError, match="should start with 'B. '"):
        mcq_text("Q", ["A. x", "C. y", "B. z"], prefixed=True)


@pytest.mark.parametrize(
    "response, expected",
    [
        ("B", "B"),
        ("  C.  ", "C"),
        ("(D) Blue", "D"),
        ("The best answer is: A", "A"),
        ("The correct answer is C", "C"),
        ("Answer: D", "D"),
        ("The answer is (B).", "B"),
        ("The correct option D", "D"),
        # Not word-bounded: the first capital A-D anywhere counts ("Based" -> B).
        ("Based on the video, C", "B"),
        # The reference's missing commas: these prefixes are never stripped on their own.
        ("Best answer: C", "B"),
        ("Best option: C", "B"),
        ("The best option is D", "D"),
        # The 10-word rule: over 10 words and no option letter -> unparsed.
        ("the man in the video is clearly walking towards the red car quickly", ""),
        # ... but a letter anywhere lifts it.
        ("the man in the video is clearly walking towards the red car, so C", "C"),
        ("", ""),
        ("none of these", ""),
        ("E", ""),
    ],
)
def test_parse_four_letters(response, expected):
    assert parse_answer(response, "ABCD") == expected


def test_parse_five_and_six_letters():
    assert parse_answer("E", "ABCDE") == "E"
    assert parse_answer("F", "ABCDE") == ""
    assert parse_answer("F", "ABCDEF", "ABCDE") == "F"
    long_f = "my final choice after watching the whole long video twice is option F"
    # LongVideoBench's guard is A-E while it matches A-F: a long answer naming only F is unparsed.
    assert parse_answer(long_f, "ABCDEF", "ABCDE") == ""
    assert parse_answer(long_f.replace("F", "E"), "ABCDEF", "ABCDE") == "E"


def test_none_response_is_unparsed():
    assert parse_answer(None) == ""
