"""The STTM multiple-choice prompt (the authors' evaluation prompt), identical for every benchmark and model.

::

    Select the best answer to the following multiple-choice question based on the video and the
    subtitles. Respond with only the letter (A, B, C, or D) of the correct option.   <- one line
    <question>
    A. <option>
    ...
    The best answer is:

"and the subtitles" stays although no subtitles are used (parity with the published numbers).
The model layer adds the chat template, the video and any time instruction.
"""

from __future__ import annotations

LETTERS = "ABCDEF"
ANSWER_CUE = "The best answer is:"


def letter_list(n: int) -> str:
    """``"(A, B, or C)"`` for 3 options ... ``"(A, B, C, D, E, or F)"`` for 6."""
    if not 3 <= n <= len(LETTERS):
        raise ValueError(f"the STTM prompt covers 3 to {len(LETTERS)} options, got {n}")
    letters = LETTERS[:n]
    return "(" + ", ".join(letters[:-1]) + ", or " + letters[-1] + ")"


def instruction(n: int) -> str:
    """The first prompt line for ``n`` option letters."""
    return (
        "Select the best answer to the following multiple-choice question based on the video and the "
        f"subtitles. Respond with only the letter {letter_list(n)} of the correct option."
    )


def option_lines(options: list[str], prefixed: bool) -> list[str]:
    """``"A. text"`` lines; ``prefixed`` options (Video-MME, VNBench) must already start with their letter."""
    if len(options) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options are supported, got {len(options)}")
    if not prefixed:
        return [f"{letter}. {text}" for letter, text in zip(LETTERS, options, strict=False)]
    for letter, text in zip(LETTERS, options, strict=False):
        if not text.startswith(f"{letter}. "):
            raise ValueError(f"option {text!r} should start with '{letter}. ' (prefixed options)")
    return list(options)


def mcq_body(question: str, options: list[str], *, prefixed: bool, n_letters: int | None = None) -> str:
    """The MCQ text up to the last option; the letter list names ``n_letters`` letters (default: one per option)."""
    return "\n".join([instruction(n_letters or len(options)), question, *option_lines(options, prefixed)])


def mcq_text(question: str, options: list[str], *, prefixed: bool, n_letters: int | None = None) -> str:
    """The full MCQ text: :func:`mcq_body`, a newline and :data:`ANSWER_CUE`."""
    return mcq_body(question, options, prefixed=prefixed, n_letters=n_letters) + "\n" + ANSWER_CUE
