"""The answer of a model that thinks first (Qwen3.5 / Qwen3.6 with ``enable_thinking``).

With thinking on, the prompt ends in the opened block ``<think>\\n``; the model writes its
reasoning, ``</think>``, then the answer. The answer is what follows the first generated
``</think>`` token, as lmms-eval's ``qwen3_5`` wrapper parses it (``text.partition("</think>")``),
but found on the token ids, so it does not depend on whether the tokenizer counts ``</think>`` as
a special token, and the task's stop strings apply to the answer only (lmms-eval applies them to
reasoning and answer together, so a stop string inside the reasoning cuts the answer away). A
block that never closes within the budget leaves an empty answer, as in lmms-eval, and is counted
(``thinking_closed: false`` in the answer's statistics).

Budget: each question may generate ``max_thinking_tokens`` (``--model_args``, default 1024:
lmms-eval's ``qwen3_5`` default generation budget; a task's ``generation_kwargs`` may set its own)
on top of the task's ``max_new_tokens`` for the answer. The time to first token stays the prefill
of the prompt: the reasoning is decoding (``decode_ms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

THINK_END = "</think>"


@dataclass(frozen=True)
class Thinking:
    """One answer's thinking block: generated tokens up to and including ``</think>`` (all
    generated tokens when it never closed), and whether it closed."""

    tokens: int
    closed: bool

    def record(self) -> dict:
        return {"thinking_tokens": self.tokens, "thinking_closed": self.closed}


def split_thinking(tokens: Sequence[int], end_id: int) -> tuple[list[int], Thinking]:
    """``(answer tokens, Thinking)`` of generated ``tokens``: the tokens after the first ``end_id``
    (``</think>``); none when it never came."""
    tokens = list(tokens)
    if end_id not in tokens:
        return [], Thinking(len(tokens), False)
    at = tokens.index(end_id) + 1
    return tokens[at:], Thinking(at, True)


def think_end_id(tokenizer) -> int:
    """The id of ``</think>`` as one token; ``ValueError`` when the tokenizer has none."""
    ids = tokenizer.convert_tokens_to_ids([THINK_END])
    token = ids[0] if ids else None
    if (
        token is None
        or token == tokenizer.unk_token_id
        or tokenizer.convert_ids_to_tokens(token) != THINK_END
    ):
        raise ValueError(
            f"the tokenizer has no {THINK_END!r} token: enable_thinking needs a Qwen3.5-style checkpoint"
        )
    return int(token)
