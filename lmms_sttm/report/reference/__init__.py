"""The STTM paper's published numbers, bundled as data (``paper_results.json``; see README.md).

Rows are long-form, one benchmark cell per row, each with the ``source`` table it was
transcribed from: ``absolute`` (Acc / TTFT / NV, Tables 11-14, with the printed ``avg``
cells) and ``relative`` (R.Acc / R.TTFT / R.NV as printed in Table 3, Table 4 and Fig. 1).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

FILE = "paper_results.json"


@lru_cache(maxsize=1)
def load() -> dict:
    """The parsed reference file (cached; do not modify the result)."""
    text = resources.files(__name__).joinpath(FILE).read_text(encoding="utf-8")
    return json.loads(text)
