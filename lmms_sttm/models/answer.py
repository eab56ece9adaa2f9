"""The generated text handed to lmms-eval, carrying the answer's statistics record.

lmms-eval passes only the response text to a task's ``process_results``. :class:`AnswerText` is
that text (a ``str``: lmms-eval's filters, samples log and response cache treat it as one) with
the per-answer statistics record (visual tokens before/after, times; see
:mod:`lmms_sttm.models.stats`) as ``.stats``, so the ``*_sttm`` tasks turn them into lmms-eval
metrics (:mod:`lmms_sttm.tasks.common.efficiency`). Text that lost the attribute (an answer
read back from lmms-eval's response cache) is plain ``str``: the tasks then report no
efficiency values for it.
"""

from __future__ import annotations


class AnswerText(str):
    """``str`` of the answer with ``stats``: the answer's statistics record (a dict)."""

    stats: dict

    def __new__(cls, text: str, stats: dict) -> AnswerText:
        obj = super().__new__(cls, text)
        obj.stats = stats
        return obj

    def strip(self, chars: str | None = None) -> AnswerText:
        """``str.strip`` keeping the record (lmms-eval strips every reply before ``process_results``)."""
        return AnswerText(str.strip(self, chars), self.stats)

    def __reduce__(self):
        """Pickles (lmms-eval gathers the samples log across ranks) and copies keep the record."""
        return (AnswerText, (str(self), self.stats))
