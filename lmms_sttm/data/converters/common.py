"""Helpers shared by the converters: errors, file discovery, JSON I/O, video lengths."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from lmms_sttm.video import VideoError, probe

LETTERS = "ABCDEFGHIJ"


class ConversionError(ValueError):
    """The official data is not in the shape a converter expects."""


def duration_bucket(seconds: float) -> str:
    """STTM's duration category: < 60 s short, < 120 s medium, else long."""
    return "short" if seconds < 60 else "medium" if seconds < 120 else "long"


def read_json(path: Path):
    """The parsed file; :class:`ConversionError` for invalid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from e


def write_json(records, path: Path) -> Path:
    """Write ``records`` as UTF-8 JSON (atomically: a partial file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False, indent=1)
    tmp.replace(path)
    return path


def find_one(source: Path, names: Iterable[str]) -> Path:
    """``source`` itself if it is a file, else the single file under it matching one of the glob ``names``."""
    names = list(names)
    if source.is_file():
        return source
    if not source.is_dir():
        raise ConversionError(f"source not found: {source}")
    hits = sorted({p for name in names for p in source.rglob(name) if p.is_file()})
    if len(hits) != 1:
        raise ConversionError(
            f"expected exactly one file matching {names} under {source}, found {[str(h) for h in hits] or 'none'}"
        )
    return hits[0]


def require_fields(records: list[dict], fields: Iterable[str], what: str) -> None:
    """Raise :class:`ConversionError` naming the first record that lacks one of ``fields``."""
    fields = list(fields)
    for i, rec in enumerate(records):
        missing = [f for f in fields if f not in rec]
        if missing:
            raise ConversionError(f"{what}: record {i} lacks the fields {missing} (has {sorted(rec)})")


def measure_seconds(video_dir: Path, stems: Iterable[str]) -> dict[str, float]:
    """Length in seconds (frames / average fps, as STTM measured it) of ``<video_dir>/<stem>.mp4``.

    All missing or unreadable videos are reported together.
    """
    out, bad = {}, []
    for stem in sorted(set(stems)):
        try:
            out[stem] = probe(str(video_dir / f"{stem}.mp4")).duration
        except VideoError as e:
            bad.append(str(e))
    if bad:
        raise ConversionError(f"{len(bad)} videos cannot be measured, e.g.:\n  " + "\n  ".join(bad[:5]))
    return out
