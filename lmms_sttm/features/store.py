"""Safe save/load of feature tensors (``.pt``) and metadata dicts (``.pkl``).

Tensors: ``torch.save`` of one plain tensor (the authors' format), loaded with
``torch.load(weights_only=True)``, which refuses arbitrary objects. Metadata: a pickle of a plain
dict, loaded through :class:`PlainUnpickler`, which resolves no global except ``set``,
``frozenset`` and ``OrderedDict`` -- a crafted ``.pkl`` cannot call anything. Both writers go
through a temporary file and ``os.replace``, so a killed extraction never leaves a partial file
under the final name.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch

_SCALARS = (str, bytes, int, float, bool, complex, type(None))
_GLOBALS = {
    (m, n): c for m in ("builtins", "__builtin__") for n, c in (("set", set), ("frozenset", frozenset))
}
_GLOBALS[("collections", "OrderedDict")] = OrderedDict  # protocol <= 2 names builtins "__builtin__"


class UnsafePickleError(pickle.UnpicklingError):
    """A metadata pickle that asks for anything but plain containers, strings and numbers."""


class PlainUnpickler(pickle.Unpickler):
    """Unpickler for plain data: dict/list/tuple/set of str/bytes/int/float/bool/None only."""

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


def load_tensor(path: str | os.PathLike) -> torch.Tensor:
    """``torch.load(..., weights_only=True)`` of a file that must hold exactly one tensor."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, torch.Tensor):
        raise TypeError(f"{path} holds a {type(obj).__name__}, expected one tensor")
    return obj


def save_metadata(path: str | os.PathLike, meta: dict) -> None:
    if not isinstance(meta, dict):
        raise TypeError(f"metadata must be a dict, got {type(meta).__name__}")
    check_plain(meta)
    _atomic_write(Path(path), lambda f: pickle.dump(meta, f, protocol=4))


def loads_metadata(data: bytes, where: str = "metadata") -> dict:
    """Unpickle plain metadata from bytes (see :class:`PlainUnpickler`); must be a dict."""
    obj = PlainUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, dict):
        raise TypeError(f"{where} holds a {type(obj).__name__}, expected a dict")
    check_plain(obj, where)
    return obj


def load_metadata(path: str | os.PathLike) -> dict:
    return loads_metadata(Path(path).read_bytes(), str(path))
