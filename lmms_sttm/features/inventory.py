"""What a feature root holds: every feature set in the authors' layout, and whether it loads.

A feature set is ``{root}/{bench}/preprocess_data/{ckpt}/{sampling}/`` with ``features/*.pt``
and ``metadata/*.pkl`` (:mod:`lmms_sttm.features.layout`). For each one the first video's pair is
read the way evaluation reads it (:func:`~lmms_sttm.features.store.load_tensor` memory-mapped,
:func:`~lmms_sttm.features.store.load_metadata`), so a set that lists here without an error is
one the models can read. A ``preprocess_data`` folder directly under the root (a Hub download
of one benchmark into the root itself) is reported with the move that makes it readable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from lmms_sttm.features.store import load_metadata, load_tensor


@dataclass(frozen=True)
class FeatureSet:
    """One ``{bench}/preprocess_data/{ckpt}/{sampling}`` folder and its first video's facts."""

    bench: str
    ckpt: str
    sampling: str
    videos: int
    metadata: int
    family: str | None = None
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    keys: tuple[str, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def family_of(meta: dict) -> str | None:
    """``"qwen"`` (``video_grid_thw``), ``"llava"`` (``num_frames``/``video_time``) or ``None``."""
    if "video_grid_thw" in meta:
        return "qwen"
    if "num_frames" in meta or "video_time" in meta:
        return "llava"
    return None


def describe(directory: Path, bench: str) -> FeatureSet:
    """The facts of one sampling folder; ``error`` says why its first pair does not load."""
    feats = sorted((directory / "features").glob("*.pt"))
    metas = {p.stem for p in (directory / "metadata").glob("*.pkl")}
    base = {
        "bench": bench,
        "ckpt": directory.parent.name,
        "sampling": directory.name,
        "videos": len(feats),
        "metadata": len(metas),
    }
    first = next((p for p in feats if p.stem in metas), None)
    if first is None:
        return FeatureSet(**base, error="no video with both a .pt and a .pkl file")
    try:
        tensor = load_tensor(first, mmap=True)
        meta = load_metadata(directory / "metadata" / f"{first.stem}.pkl")
    except Exception as e:  # any unreadable file: reported, not raised
        return FeatureSet(**base, error=f"{first.stem}: {type(e).__name__}: {e}")
    return FeatureSet(
        **base,
        family=family_of(meta),
        shape=tuple(tensor.shape),
        dtype=str(tensor.dtype).removeprefix("torch."),
        keys=tuple(sorted(meta)),
    )


def inventory(root: str | Path) -> tuple[list[FeatureSet], list[str]]:
    """Every feature set under ``root`` and the moves needed for misplaced ones."""
    root = Path(root)
    sets = [
        describe(d.parent, d.parent.parent.parent.parent.name)
        for d in sorted(root.glob("*/preprocess_data/*/*/features"))
        if d.is_dir()
    ]
    moves = [
        f"{root / 'preprocess_data'} is not under a benchmark folder: move it to "
        f"{root / '<bench>' / 'preprocess_data'} (<bench>: videomme, vnbench, ...) or download with "
        f"--local-dir {root / '<bench>'}"
        for _ in root.glob("preprocess_data/*/*/features")
    ][:1]
    return sets, moves
