"""Safe save/load of feature tensors (``.pt``) and metadata dicts (``.pkl``).

Tensors: ``torch.save`` of one plain tensor (the authors' format), loaded with
``torch.load(weights_only=True)``, which refuses arbitrary objects. Metadata: a pickle of a dict
of plain values and CPU tensors (the authors' Qwen2-VL files hold tensors), loaded through
:class:`PlainUnpickler`. It resolves no global except ``set``, ``frozenset``, ``OrderedDict`` and
torch's two tensor-pickling functions, each replaced by a checked stand-in: a tensor's storage
bytes go through ``torch.load(weights_only=True)`` (torch's own ``_load_from_bytes`` uses
``weights_only=False``) and the rebuild accepts only that storage, integers and an empty hook
dict (protocol <= 2 spells ``bytes`` as ``_codecs.encode(text, "latin1")``, accepted for
latin-1 only) -- a crafted ``.pkl`` cannot call anything else. Loaded tensors become plain values
(``tolist()``) before validation. Both writers go through a temporary file and ``os.replace``,
so a killed extraction never leaves a partial file under the final name.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

_SCALARS = (str, bytes, int, float, bool, complex, type(None))
_GLOBALS = {
    (m, n): c for m in ("builtins", "__builtin__") for n, c in (("set", set), ("frozenset", frozenset))
}
_GLOBALS[("collections", "OrderedDict")] = OrderedDict  # protocol <= 2 names builtins "__builtin__"


def _storage_from_bytes(data) -> torch.storage.TypedStorage:
    """Stand-in for ``torch.storage._load_from_bytes``: the storage, through ``weights_only=True``."""
    if not isinstance(data, bytes):
        raise UnsafePickleError(f"tensor storage payload is a {type(data).__name__}, expected bytes")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refusals and corrupt payloads alike
        raise UnsafePickleError(
            f"tensor storage payload refused by torch.load(weights_only=True): {e}"
        ) from e
    if not isinstance(storage, torch.storage.TypedStorage):
        raise UnsafePickleError(f"tensor storage payload holds a {type(storage).__name__}")
    return storage


def _is_ints(value) -> bool:
    return isinstance(value, tuple) and all(type(v) is int for v in value)


def _rebuild_tensor(storage, offset, size, stride, requires_grad, hooks, *rest) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` that accepts only plain arguments."""
    ok = (
        isinstance(storage, torch.storage.TypedStorage)
        and type(offset) is int
        and _is_ints(size)
        and _is_ints(stride)
        and len(size) == len(stride)
        and type(requires_grad) is bool
        and isinstance(hooks, OrderedDict)
        and not hooks
        and rest in ((), (None,))
    )
    if not ok:
        raise UnsafePickleError("metadata pickle rebuilds a tensor from unexpected arguments")
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())


def _latin1(text, encoding):
    """Stand-in for ``_codecs.encode`` as protocol <= 2 uses it for ``bytes``: latin-1 only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError(f"metadata pickle encodes with {encoding!r}; only bytes as latin1")
    return text.encode("latin1")


_GLOBALS[("_codecs", "encode")] = _latin1
_GLOBALS[("torch.storage", "_load_from_bytes")] = _storage_from_bytes
_GLOBALS[("torch._utils", "_rebuild_tensor_v2")] = _rebuild_tensor


class UnsafePickleError(pickle.UnpicklingError):
    """A metadata pickle that asks for anything but plain containers, strings and numbers."""


class PlainUnpickler(pickle.Unpickler):
    """Unpickler for plain data: containers of str/bytes/int/float/bool/None and CPU tensors."""

    def find_class(self, module: str, name: str):
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise UnsafePickleError(f"metadata pickle refers to {module}.{name}; only plain data is accepted")

    def persistent_load(self, pid):
        raise UnsafePickleError(
            f"metadata pickle uses a persistent id ({pid!r}); only plain data is accepted"
        )


def check_plain(value, where: str = "metadata") -> None:
    """Raise ``TypeError`` unless ``value`` is nested plain containers of strings and numbers."""
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            check_plain(k, where)
            check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            check_plain(v, where)
        return
    raise TypeError(f"{where} holds a {type(value).__name__}; only plain containers/strings/numbers")


def to_plain(value):
    """``value`` with every tensor replaced by ``tensor.tolist()`` (containers rebuilt, rest as is)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return type(value)((k, to_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(to_plain(v) for v in value)
    return value


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_tensor(path: str | os.PathLike, tensor: torch.Tensor) -> None:
    """Write one tensor (CPU, contiguous, its own storage) with ``torch.save``."""
    t = tensor.detach().to("cpu").contiguous().clone()
    _atomic_write(Path(path), lambda f: torch.save(t, f))


def load_tensor(path: str | os.PathLike, mmap: bool = False) -> torch.Tensor:
    """``torch.load(..., weights_only=True)`` of a file that must hold exactly one tensor.

    ``mmap``: map the file instead of reading it (zip-format files only; others are read).
    """
    mmap = mmap and zipfile.is_zipfile(path)
    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    if not isinstance(obj, torch.Tensor):
        raise TypeError(f"{path} holds a {type(obj).__name__}, expected one tensor")
    return obj


def save_metadata(path: str | os.PathLike, meta: dict) -> None:
    """Pickle ``meta`` (plain values and plain CPU tensors, as the authors' scripts do).

    The bytes are read back with :func:`loads_metadata` before the file is written, so every file
    we write is one our reader accepts.
    """
    if not isinstance(meta, dict):
        raise TypeError(f"metadata must be a dict, got {type(meta).__name__}")
    data = pickle.dumps(meta, protocol=4)
    loads_metadata(data, "metadata to write")
    _atomic_write(Path(path), lambda f: f.write(data))


def loads_metadata(data: bytes, where: str = "metadata") -> dict:
    """Unpickle metadata from bytes (see :class:`PlainUnpickler`); a dict, tensors as plain lists."""
    obj = PlainUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, dict):
        raise TypeError(f"{where} holds a {type(obj).__name__}, expected a dict")
    obj = to_plain(obj)
    check_plain(obj, where)
    return obj


def load_metadata(path: str | os.PathLike) -> dict:
    return loads_metadata(Path(path).read_bytes(), str(path))
