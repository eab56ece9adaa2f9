"""A checkout of another authors' repository, pinned by git blob hashes (HoliTom, FlashVID drivers).

Like ``authors.py`` (the STTM checkout), nothing of theirs is in this repository: a driver imports
the authors' files from the folder the user passes, after checking that each is byte-identical to
the pinned commit. ``load_file`` runs one file as a module without its package's ``__init__``
(which would import the authors' whole model stack); ``stub_modules`` puts minimal stand-ins for
modules a file imports but the driven functions never use.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch
from authors import NotPinned, blob_sha1


@dataclass(frozen=True)
class Pin:
    """A repository at one commit and the blob of every file a driver imports."""

    repository: str
    commit: str
    blobs: dict
    env_var: str

    def check(self, root: Path, files) -> None:
        for rel in files:
            path = root / rel
            if not path.is_file():
                raise NotPinned(
                    f"{path} is missing: is {root} a checkout of {self.repository} at {self.commit[:7]}?"
                )
            got = blob_sha1(path.read_bytes())
            if got != self.blobs[rel]:
                raise NotPinned(
                    f"{rel} differs from the pinned commit {self.commit[:7]} (blob {got[:10]}, expected "
                    f"{self.blobs[rel][:10]}); check out that commit: git -C {root} checkout {self.commit[:7]}"
                )

    def parser(self, description: str) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(description=description)
        p.add_argument(
            "--authors-dir",
            default=os.environ.get(self.env_var),
            help=f"checkout of {self.repository} at {self.commit[:7]} (default: ${self.env_var})",
        )
        return p

    def root(self, args) -> Path:
        if not args.authors_dir:
            raise SystemExit(f"pass --authors-dir DIR (a checkout of {self.repository} at {self.commit[:7]})")
        root = Path(args.authors_dir).expanduser().resolve()
        if not root.is_dir():
            raise SystemExit(f"--authors-dir {root}: no such directory")
        return root

    def load_file(self, root: Path, rel: str, name: str):
        """Runs ``root/rel`` as module ``name`` (parent packages created empty, their ``__init__`` not run)."""
        self.check(root, [rel])
        parts = name.split(".")
        for i in range(1, len(parts)):
            pkg = ".".join(parts[:i])
            if pkg not in sys.modules:
                module = types.ModuleType(pkg)
                module.__path__ = [str(root / Path(rel).parent)]
                sys.modules[pkg] = module
        spec = importlib.util.spec_from_file_location(name, root / rel)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    def emit(self, result: dict) -> None:
        print(
            json.dumps(
                {"authors_repository": self.repository, "authors_commit": self.commit, **result}, indent=1
            )
        )


def stub_modules(names: dict) -> list[str]:
    """``{module: {attribute: value}}``: registers each module not importable as a stand-in; returns
    the names stubbed (reported by the driver)."""
    stubbed = []
    for name, attrs in names.items():
        if name in sys.modules:
            continue
        module = types.ModuleType(name)
        module.__path__ = []
        for key, value in attrs.items():
            setattr(module, key, value)
        sys.modules[name] = module
        stubbed.append(name)
    return stubbed


@contextlib.contextmanager
def ordered_noise():
    """Inside: ``torch.rand`` / ``torch.rand_like`` return ``(n - 1 - i) / n`` along the last axis
    (``i`` the index): a draw in their noise's range ``[0, 1)`` that orders equal values by index
    (the lower index larger), as this package's deterministic DPC-kNN does. Restored on exit."""
    rand, rand_like = torch.rand, torch.rand_like

    def ordered(*size, device=None, dtype=None, **_):
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else tuple(size)
        n = shape[-1]
        values = (n - 1 - torch.arange(n, dtype=torch.float64)) / n
        return values.expand(shape).to(device=device, dtype=dtype or torch.float32).clone()

    torch.rand = ordered
    torch.rand_like = lambda x, device=None, dtype=None, **_: ordered(
        x.shape, device=device or x.device, dtype=dtype or x.dtype
    )
    try:
        yield
    finally:
        torch.rand, torch.rand_like = rand, rand_like
