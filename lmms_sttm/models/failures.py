"""What a failing video does to a run: data errors fail their questions, system errors stop every rank.

- **Data errors** (:class:`lmms_sttm.video.VideoError`: a missing, corrupt or undecodable video,
  a missing or unreadable feature file) fail the video's questions with the reason recorded
  (empty answers), and the run goes on.
- **CUDA out of memory on one video** (a long video at a high frame count): the cache is
  freed, the questions fail with the frame count recorded, and the run goes on.
- **Anything else** (a bug, flash-attention in the wrong dtype or built for another torch,
  features of another model) is a system error: it would fail every video alike. The rank logs
  the error with its traceback on stderr and exits with status 1 (:class:`RunStopped`, a
  ``SystemExit`` that lmms-eval does not swallow); the launcher (torchrun, accelerate) then ends
  the other ranks, which would otherwise wait in lmms-eval's next collective for hours. No
  results file is written.
- **Failure budget** (``max_failures``, default 0.05): the rank stops as soon as more than
  ``MIN_FAILED`` of its questions failed and they exceed that fraction of the questions it has
  handled. 5 %: the benchmarks' own broken videos are well under 1 % of their questions, so
  a run above 5 % has a systematic fault (a wrong video folder, repeated OOM) whose numbers
  would be wrong; ``MIN_FAILED`` keeps a few bad videos at the start of a run from stopping it.
"""

from __future__ import annotations

import sys
import traceback

import torch
from loguru import logger

MIN_FAILED = 10


class RunStopped(SystemExit):
    """Raised on a rank to end the run with status 1 (the message is already on stderr)."""

    def __init__(self) -> None:
        super().__init__(1)


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError)


def stop_run(where: str, exc: BaseException) -> RunStopped:
    """Logs ``exc`` with its traceback on stderr and returns the :class:`RunStopped` to raise."""
    trace = "".join(traceback.format_exception(exc))
    message = f"{where}: system error, stopping the run (no results file): {type(exc).__name__}: {exc}"
    logger.error(message)
    print(f"{message}\n{trace}", file=sys.stderr, flush=True)
    return RunStopped()


class FailureBudget:
    """Counts a rank's handled and failed questions; :meth:`check` stops the run past the budget."""

    def __init__(self, max_failures: float, where: str) -> None:
        self.max_failures, self.where = float(max_failures), where
        self.handled = self.failed = 0

    def add(self, handled: int, failed: int) -> None:
        self.handled += handled
        self.failed += failed

    def check(self) -> None:
        if self.failed > MIN_FAILED and self.failed > self.max_failures * self.handled:
            exc = RuntimeError(
                f"{self.failed} of {self.handled} questions failed on this rank, above max_failures="
                f"{self.max_failures} (see the failure reasons above and in the statistics file)"
            )
            raise stop_run(self.where, exc)


def free_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
