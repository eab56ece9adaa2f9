"""Intra-op thread policy of STTM merging on CPU: single-threaded bookkeeping, threaded heavy kernels."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

_HEAVY_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "sttm_heavy_threads", default=None
)


@contextlib.contextmanager
def bookkeeping_threads(device: torch.device) -> Iterator[None]:
    """Run small index ops single-threaded on CPU; ``heavy_threads`` blocks get the original count.

    Index bookkeeping works on tensors of a few ten thousand elements, just above ATen's
    parallel grain size; on a shared CPU each such parallel op can wait a scheduler time slice
    for its second thread. Only the intra-op thread count is changed, and it is restored on exit.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads <= 1 or _HEAVY_THREADS.get() is not None:
        yield
        return
    token = _HEAVY_THREADS.set(threads)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        _HEAVY_THREADS.reset(token)


@contextlib.contextmanager
def heavy_threads() -> Iterator[None]:
    """All intra-op threads for a kernel over ``[*, C]`` features, inside ``bookkeeping_threads``."""
    threads = _HEAVY_THREADS.get()
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
