"""``python -m tests.gpu.inject_error <lmms_eval args>``: lmms-eval with a system error on rank 1.

Rank 1's first video raises ``RuntimeError("injected system error")`` (as a flash-attention
build for another torch would); every other rank runs normally.
"""

from __future__ import annotations

import os
import sys

from lmms_eval.__main__ import cli_evaluate

from lmms_sttm.models import base


def _boom(self, *args, **kwargs):
    raise RuntimeError("injected system error")


if __name__ == "__main__":
    if int(os.environ.get("RANK", "0")) == 1:
        base.SttmVideoModel._answer_video = _boom
    sys.argv = ["lmms_eval", *sys.argv[1:]]
    cli_evaluate()
