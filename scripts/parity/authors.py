"""Access to a checkout of the STTM authors' repository (HYUNJS/STTM) for the parity drivers.

Nothing of theirs is in this repository: each driver imports the authors' modules from the folder
the user passes (``--authors-dir DIR``, or ``$LMMS_STTM_AUTHORS_DIR``), after checking that every
file it imports is byte-identical to the pinned commit (git blob hashes of commit
:data:`COMMIT`), so a result always names the code it compared against. A ``git clone`` or a
``git archive`` of that commit both work (no ``.git`` needed).

Their DyCoke stage-2 module imports transformers 4.x names that transformers 5 removed
(``Qwen2FlashAttention2``, ``_flash_attention_forward``, the module's ``logger``);
:func:`import_dycoke_cache` adds placeholders for those names to transformers' module while importing it (only the
``PrunableDynamicCache`` class is used, which needs neither).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

REPOSITORY = "https://github.com/HYUNJS/STTM"
COMMIT = "00736c795265faea52c576ce32dce9c449af1819"
ENV_VAR = "LMMS_STTM_AUTHORS_DIR"
#: git blob SHA-1 at COMMIT of every file a driver imports
BLOBS = {
    "token_merging_utils/quadtree_builder.py": "c19cfe2dbf3f780d6c062fee2c16e9e93a6dca25",
    "token_merging_utils/quadtree_spatial_merger.py": "33556204a0f29648cb5d8e9b061b529e9f602a43",
    "token_merging_utils/quadtree_temporal_merger.py": "51a848112ca8e85fbf017258b6d642f29d5935f0",
    "token_merging_utils/tome_token_merger.py": "b86107ddcd602b79be39298ec89b1ff2d1ceaba1",
    "token_merging_utils/dycoke_merger.py": "b8ab305fc92ddc1afe824fdc504e9a0d3adf01d4",
    "token_merging_monkey_patch/dycoke_attn_monkey_patch.py": "d62ac56c989f332222c3b52af0f1b5ee2a6e734e",
    "llava/model/framefusion/main.py": "2d2ef182d64ea76821aa96e65f8d1ea0b058d07a",
}


class NotPinned(RuntimeError):
    """The checkout lacks a file or holds another version of it than the pinned commit."""


def blob_sha1(data: bytes) -> str:
    """git's object id of a file's bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check(root: Path, files: list[str]) -> None:
    """Raise :class:`NotPinned` unless each of ``files`` under ``root`` is the pinned version."""
    for rel in files:
        path = root / rel
        if not path.is_file():
            raise NotPinned(f"{path} is missing: is {root} a checkout of {REPOSITORY} at {COMMIT[:7]}?")
        got = blob_sha1(path.read_bytes())
        if got != BLOBS[rel]:
            raise NotPinned(
                f"{rel} differs from the pinned commit {COMMIT[:7]} (blob {got[:10]}, expected "
                f"{BLOBS[rel][:10]}); check out that commit: git -C {root} checkout {COMMIT[:7]}"
            )


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--authors-dir",
        default=os.environ.get(ENV_VAR),
        help=f"checkout of {REPOSITORY} at {COMMIT[:7]} (default: ${ENV_VAR})",
    )
    return p


def root_from(args) -> Path:
    if not args.authors_dir:
        raise SystemExit(
            f"pass --authors-dir DIR (a checkout of {REPOSITORY} at {COMMIT[:7]}) or set ${ENV_VAR}"
        )
    root = Path(args.authors_dir).expanduser().resolve()
    if not root.is_dir():
        raise SystemExit(f"--authors-dir {root}: no such directory")
    return root


def import_module(root: Path, name: str, needs: tuple[str, ...] = ()):
    """Import ``name`` (e.g. ``token_merging_utils.tome_token_merger``) from the checkout after checking
    that it and the pinned files it imports in turn (``needs``) are the pinned versions."""
    check(root, [name.replace(".", "/") + ".py", *needs])
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(name)


def import_file(root: Path, rel: str, name: str):
    """Import one file of the checkout as a stand-alone module (its package's ``__init__`` not run)."""
    check(root, [rel])
    spec = importlib.util.spec_from_file_location(name, root / rel)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_dycoke_cache(root: Path):
    """The authors' ``PrunableDynamicCache`` (DyCoke stage 2), see the module docstring."""
    from transformers.models.qwen2 import modeling_qwen2 as mq

    added = []
    for missing in ("Qwen2FlashAttention2", "_flash_attention_forward", "logger"):
        if not hasattr(mq, missing):
            if missing == "logger":
                value = logging.getLogger(mq.__name__)
            elif missing[0].isupper():
                value = type(missing, (), {})
            else:
                value = lambda *a, **k: None  # noqa: E731
            setattr(mq, missing, value)
            added.append(missing)
    try:
        module = import_module(root, "token_merging_monkey_patch.dycoke_attn_monkey_patch")
    finally:
        for name in added:
            delattr(mq, name)
    return module.PrunableDynamicCache


def emit(result: dict) -> None:
    """Print the driver's result as one JSON document, with the pinned commit."""
    print(json.dumps({"authors_commit": COMMIT, **result}, indent=1))
