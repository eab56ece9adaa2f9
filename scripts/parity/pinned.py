"""Pinned checkouts of the 2025-26 methods' repositories for their parity drivers (EVS, VidCom2, FastVID).

Like :mod:`authors` (the STTM repository), nothing of theirs is in this repository: a driver
loads the authors' file from the checkout the user passes (``--authors-dir DIR``), after checking
that the file is byte-identical to the pinned commit (its git blob hash), and names that commit in
its JSON output. A ``git clone`` at the commit or a ``git archive`` of it both work.

Default checkout: ``--authors-dir``, else ``$LMMS_STTM_AUTHORS_DIR/<folder>`` or a folder named
``<folder>`` next to ``$LMMS_STTM_AUTHORS_DIR`` (the STTM checkout), where ``<folder>`` is the
repository's name (``vllm``, ``VidCom2``, ``FastVID``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from authors import ENV_VAR, blob_sha1  # noqa: E402


@dataclass(frozen=True)
class Pin:
    repository: str
    folder: str
    commit: str
    blobs: dict  # path in the repository -> git blob SHA-1 at ``commit`` (None: see ``functions``)
    functions: dict | None = None  # path -> names of the functions whose source text is pinned
    function_sha1: str | None = None


VLLM = Pin(
    "https://github.com/vllm-project/vllm",
    "vllm",
    "094f117823287790739d3022162a3f30f13d758b",
    {"vllm/multimodal/evs.py": None},
    # vllm is a 1 GB repository: for it only the compared functions' source is pinned (SHA-1 of
    # their text, as ``ast.get_source_segment`` gives it), so any checkout of the commit works
    functions={"vllm/multimodal/evs.py": ("compute_retained_tokens_count", "compute_retention_mask")},
    function_sha1="190205843a296d81f1c209f472617915af57cbf8",
)
VIDCOM2 = Pin(
    "https://github.com/xuyang-liu16/VidCom2",
    "VidCom2",
    "944a17d14f4848ad080a65eab2b0711a760fa154",
    {"token_compressor/vidcom2/vidcom2.py": "555852064be59ea6b14e1801812297057a19ab62"},
)
FASTVID = Pin(
    "https://github.com/LunarShen/FastVID",
    "FastVID",
    "a40a109cb8df20e8c2c17c6850f8269717369990",
    {
        "fastvid_llavavideo/LLaVA-NeXT/llava/model/language_model/modeling_qwen2.py": "f5f0b61ed3e108ffc6ab522ec3f8efa7d4323631",
        "fastvid_qwen25vl/lmms-eval/lmms_eval/models/qwenvlutils/modeling_qwen2_5_vl.py": "48abf6b195a39c3f7b3a13b37a5aac6d983e7c4f",
    },
)


class NotPinned(RuntimeError):
    """The checkout lacks a file or holds another version of it than the pinned commit."""


def default_dir(pin: Pin) -> str | None:
    base = os.environ.get(ENV_VAR)
    if not base:
        return None
    for cand in (Path(base) / pin.folder, Path(base).parent / pin.folder):
        if cand.is_dir():
            return str(cand)
    return None


def parser(pin: Pin, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--authors-dir", default=default_dir(pin),
                   help=f"checkout of {pin.repository} at {pin.commit[:7]}")  # fmt: skip
    return p


def root_from(pin: Pin, args) -> Path:
    if not args.authors_dir:
        raise SystemExit(f"pass --authors-dir DIR (a checkout of {pin.repository} at {pin.commit[:7]})")
    root = Path(args.authors_dir).expanduser().resolve()
    if not root.is_dir():
        raise SystemExit(f"--authors-dir {root}: no such directory")
    return root


def check(pin: Pin, root: Path, rel: str) -> Path:
    path = root / rel
    if not path.is_file():
        raise NotPinned(f"{path} is missing: is {root} a checkout of {pin.repository} at {pin.commit[:7]}?")
    if pin.blobs[rel] is None:
        got = functions_sha1(path.read_text(), pin.functions[rel])
        if got != pin.function_sha1:
            raise NotPinned(
                f"{rel}: the functions {pin.functions[rel]} differ from the pinned commit {pin.commit[:7]} "
                f"(source SHA-1 {got[:10]}, expected {pin.function_sha1[:10]})"
            )
        return path
    got = blob_sha1(path.read_bytes())
    if got != pin.blobs[rel]:
        raise NotPinned(
            f"{rel} differs from the pinned commit {pin.commit[:7]} (blob {got[:10]}, expected "
            f"{pin.blobs[rel][:10]}); check out that commit: git -C {root} checkout {pin.commit[:7]}"
        )
    return path


def functions_sha1(text: str, names) -> str:
    """SHA-1 of the source text of the top-level functions ``names`` of a module, joined by newlines."""
    tree = ast.parse(text)
    found = {n.name: ast.get_source_segment(text, n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [n for n in names if n not in found]
    if missing:
        raise NotPinned(f"functions {missing} not found")
    return hashlib.sha1("\n".join(found[n] for n in names).encode()).hexdigest()


def import_file(pin: Pin, root: Path, rel: str, name: str):
    """Import one pinned file of the checkout as a stand-alone module (no package ``__init__`` run)."""
    spec = importlib.util.spec_from_file_location(name, check(pin, root, rel))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def emit(pin: Pin, result: dict) -> None:
    print(
        json.dumps({"authors_repository": pin.repository, "authors_commit": pin.commit, **result}, indent=1)
    )
