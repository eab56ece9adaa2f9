"""CPU memory of STTM merging that outlives a call: scratch buffers and a pool for the outputs.

A 128-frame video at C=3584 has 360 MB of fp32 features and a ~90 MB output. Fresh CPU
allocations of that size are paid on every call in page faults (one per 4 KiB page on first
touch, ~20 ms for 90 MB on a 2-core VM), as much as a pass of the merge itself. So:

* ``workspace``: scratch memory that never escapes a call is cached per thread and reused.
* ``output_tensor``: the output comes from a small per-thread pool of buffers. A buffer is handed
  out again once every tensor made from it has been freed (its Python reference count says so),
  so an evaluation that drops each video's result before merging the next one reuses memory
  that is already mapped. The returned tensor's storage holds exactly its own elements:
  ``torch.save``, sharing or pickling it never exposes the rest of the buffer.

Other devices allocate normally (their caching allocators already reuse memory).
``release_buffers`` frees this thread's cached memory.
"""

from __future__ import annotations

import sys
import threading

import torch

_LOCAL = threading.local()
_POOL_SIZE = 2
"""Output buffers kept per thread: the previous result may still be alive while the next is made."""


def workspace(name: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A flat ``[numel]`` scratch tensor; on CPU cached per thread and ``name`` and reused across calls.

    The contents are overwritten by the next call on the same thread with the same ``name`` and
    must never escape a call.
    """
    if device.type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)
    buffers = _LOCAL.__dict__.setdefault("scratch", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
        buffers.pop(name, None)  # free the old buffer first
        buffer = torch.empty(numel + numel // 4, dtype=dtype)  # untouched headroom costs no memory
        buffers[name] = buffer
    return buffer[:numel]


def _references(buffer: bytearray) -> int:
    return sys.getrefcount(buffer)


def _idle_count() -> int:
    """What ``_references(pool[i])`` returns for a buffer held only by the list ``pool``."""
    probe = [bytearray(1)]
    return _references(probe[0])


_IDLE = _idle_count()
"""Reference count, seen from ``_references``, of a buffer held only by a pool list."""
_COUNTS_ARE_EXACT = getattr(sys, "_is_gil_enabled", lambda: True)()
"""Free-threaded CPython defers reference counts, so the pool is only used with the GIL."""


def output_tensor(rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised ``[rows, cols]`` tensor owned by the caller, from the pool on CPU.

    Takes the smallest idle pooled buffer that is big enough; an idle buffer that is too small
    is replaced by a bigger one; when every pooled buffer is still in use (the caller keeps
    earlier results), a plain tensor is allocated outside the pool.
    """
    nbytes = rows * cols * dtype.itemsize
    if device.type != "cpu" or nbytes == 0 or not _COUNTS_ARE_EXACT:
        return torch.empty(rows, cols, dtype=dtype, device=device)
    pool: list[bytearray] = _LOCAL.__dict__.setdefault("outputs", [])
    idle = [i for i in range(len(pool)) if _references(pool[i]) <= _IDLE]  # same form as _idle_count
    fitting = [i for i in idle if len(pool[i]) >= nbytes]
    if fitting:
        buffer = pool[min(fitting, key=lambda i: len(pool[i]))]
    elif idle or len(pool) < _POOL_SIZE:
        if idle:
            del pool[idle[0]]  # too small: free it first
        buffer = bytearray(nbytes + nbytes // 4)  # zero-filled once: mapped for every later use
        pool.append(buffer)
    else:
        return torch.empty(rows, cols, dtype=dtype)
    return torch.frombuffer(buffer, dtype=dtype, count=rows * cols).view(rows, cols)


def release_buffers() -> None:
    """Free this thread's cached scratch and output buffers (tensors still in use keep theirs)."""
    _LOCAL.__dict__.pop("scratch", None)
    _LOCAL.__dict__.pop("outputs", None)
