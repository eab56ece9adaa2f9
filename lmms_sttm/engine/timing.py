"""Wall-clock timing of GPU work that may span several devices.

CUDA kernels run asynchronously, so a timed region must synchronise before reading the clock. A
model spread by ``device_map=auto`` (72B) runs its later layers and the logits on other GPUs:
synchronising only the first one under-measures prefill. :func:`clock` synchronises every CUDA
device the model occupies (``hf_device_map`` when accelerate placed it, else its parameters'
devices) and then reads ``time.perf_counter()``.

    devices = model_devices(model)
    began = clock(devices)
    ...  # GPU work
    seconds = clock(devices) - began
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch


def _as_device(where) -> torch.device | None:
    """An ``hf_device_map`` value (``0``, ``"cuda:1"``, ``"cpu"``, ``"disk"``, a device) as a device."""
    if isinstance(where, torch.device):
        return where
    if isinstance(where, int) and not isinstance(where, bool):
        return torch.device("cuda", where)
    if isinstance(where, str) and where not in ("disk", "meta"):
        return torch.device(where)
    return None


def model_devices(model: torch.nn.Module | torch.device | Iterable) -> tuple[torch.device, ...]:
    """The distinct CUDA devices of ``model`` (a module, a device, or an iterable of devices), sorted.

    A module's devices come from its ``hf_device_map`` when it has one (accelerate's placement,
    integers meaning CUDA indices), else from its parameters and buffers. CPU and disk entries are
    dropped: they need no synchronisation.
    """
    if isinstance(model, torch.device):
        found = [model]
    elif isinstance(model, torch.nn.Module):
        device_map = getattr(model, "hf_device_map", None)
        if device_map:
            found = [_as_device(v) for v in device_map.values()]
        else:
            tensors = [*model.parameters(), *model.buffers()]
            found = [t.device for t in tensors]
    else:
        found = [_as_device(d) for d in model]
    cuda = {d for d in found if d is not None and d.type == "cuda"}
    return tuple(sorted(cuda, key=lambda d: -1 if d.index is None else d.index))


def synchronize(devices: Iterable[torch.device]) -> None:
    """Waits for every queued kernel on each of ``devices`` (CUDA devices; others are ignored)."""
    for device in devices:
        if device.type == "cuda":
            torch.cuda.synchronize(device)


def clock(devices: Iterable[torch.device]) -> float:
    """``time.perf_counter()`` after synchronising ``devices`` (see :func:`model_devices`)."""
    synchronize(devices)
    return time.perf_counter()
