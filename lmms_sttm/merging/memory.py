"""Placement of the big CPU buffers of STTM merging: a reusable scratch buffer and huge-page outputs.

A 128-frame video at C=3584 has 360 MB of fp32 features. Fresh CPU allocations of that order
are paid on every call in page faults (one per 4 KiB page on first touch), which cost as much as
a pass of the merge itself. Two remedies, both no-ops off CPU:

* ``workspace``: scratch memory that never escapes a call is cached per thread and reused.
* ``output_buffer``: memory returned to the caller is allocated fresh.

Both are advised on Linux for transparent huge pages (``madvise(MADV_HUGEPAGE)``, honoured when
the system's THP mode is ``madvise`` or ``always``): first touch then faults once per 2 MiB
instead of once per 4 KiB, and passes over them miss the TLB less.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading

import torch

_LOCAL = threading.local()
_HUGE_PAGE = 1 << 21
_MADV_HUGEPAGE = 14  # linux/mman-common.h
_MIN_ADVISED_BYTES = 4 * _HUGE_PAGE


def workspace(name: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A flat ``[numel]`` scratch tensor; on CPU cached per thread and ``name`` and reused across calls.

    The contents are overwritten by the next call on the same thread with the same ``name`` and
    must never escape a call. Other devices allocate normally (their caching allocators already
    reuse memory). ``release_workspace`` frees the cache.
    """
    if device.type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)
    buffers = _LOCAL.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
        buffers.pop(name, None)  # free the old buffer first
        # untouched headroom costs no memory
        buffer = _advise_huge_pages(torch.empty(numel + numel // 4, dtype=dtype))
        buffers[name] = buffer
    return buffer[:numel]


def release_workspace() -> None:
    """Free this thread's cached CPU scratch buffers."""
    _LOCAL.__dict__.pop("buffers", None)


@functools.cache
def _madvise() -> ctypes._CFuncPtr | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def output_buffer(rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised ``[rows, cols]`` tensor owned by the caller; big CPU ones advised for huge pages."""
    return _advise_huge_pages(torch.empty(rows, cols, dtype=dtype, device=device))


def _advise_huge_pages(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, its 2 MiB-aligned interior advised for transparent huge pages when big and on CPU.

    The advice is a hint (a kernel without transparent huge pages ignores it, failure only loses
    the speed-up) and never changes the tensor's contents.
    """
    nbytes = tensor.numel() * tensor.element_size()
    madvise = _madvise() if tensor.device.type == "cpu" and nbytes >= _MIN_ADVISED_BYTES else None
    if madvise is not None:
        start = (tensor.data_ptr() + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
        end = (tensor.data_ptr() + nbytes) & ~(_HUGE_PAGE - 1)
        if end > start:
            madvise(start, end - start, _MADV_HUGEPAGE)
    return tensor
