"""The STTM answer parser (as the authors' evaluation code parses), reproduced with its quirks for parity.

1. Strip surrounding whitespace, then delete every occurrence of each prefix in
   :data:`STTM_PREFIXES`, in that order (plain case-sensitive substring removal).
2. If more than 10 whitespace-separated words remain and none of the "guard" letters occurs
   anywhere, the answer is unparsed.
3. Otherwise the answer is the first occurrence of any option letter anywhere in the text
   (upper case, not word-bounded: "Based on ..." parses as "B"), or unparsed if none occurs.

An unparsed answer is the empty string: it is scored wrong and counted, never guessed.
The reference code lacks two commas in its prefix list, so "The best option is",
"The correct option is", "Best answer:" and "Best option:" are never stripped on their own
("Best answer: C" parses as "B"); the joined strings below keep that behaviour.
"""

from __future__ import annotations

import re

STTM_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",  # sic: two prefixes joined by a missing comma
    "Best answer:Best option:",  # sic
    "Answer:",
    "Option:",
    "The correct answer",
    "The correct option",
)
MAX_WORDS_WITHOUT_LETTER = 10


def parse_answer(response: str | None, letters: str = "ABCD", guard_letters: str | None = None) -> str:
    """The option letter STTM reads from ``response``, or ``""`` when it reads none.

    ``letters`` are the option letters of the benchmark; ``guard_letters`` (default: ``letters``)
    are the ones whose presence lifts the 10-word rule. LongVideoBench's reference uses A-E for
    the guard and A-F for the match.
    """
    if not response:
        return ""
    text = response.strip()
    for prefix in STTM_PREFIXES:
        text = text.replace(prefix, "")
    guard = guard_letters or letters
    if len(text.split()) > MAX_WORDS_WITHOUT_LETTER and not re.search(f"[{guard}]", text):
        return ""
    match = re.search(f"[{letters}]", text)
    return match.group(0) if match else ""
