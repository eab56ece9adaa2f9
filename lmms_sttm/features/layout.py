"""Where the features of one video live, in the STTM authors' layout.

``{root}/{bench}/preprocess_data/{ckpt}/{sampling}/features/{vid}.pt`` and
``.../metadata/{vid}.pkl`` where ``bench`` is the paper benchmark of the task (``videomme_sttm``
-> ``videomme``; other tasks use their own name), ``ckpt`` the last path component of
``pretrained`` lowercased, ``sampling`` ``F-{max_frames}_fps-{fps:g}`` and ``vid`` the video
file's stem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

from lmms_sttm.models.paper_settings import benchmark_of


def sampling_name(fps: float, max_frames: int) -> str:
    """``F-128_fps-1`` for 1 fps capped at 128 frames (the authors' directory names)."""
    return f"F-{int(max_frames)}_fps-{float(fps):g}"


def ckpt_dirname(pretrained: str) -> str:
    """``lmms-lab/LLaVA-Video-7B-Qwen2`` -> ``llava-video-7b-qwen2``."""
    name = PurePath(str(pretrained).rstrip("/\\")).name.lower()
    if not name:
        raise ValueError(f"cannot name a feature directory after pretrained={pretrained!r}")
    return name


def bench_dirname(task: str) -> str:
    return benchmark_of(task) or task


def video_id(path: str) -> str:
    """The video's id in the layout: its file stem (``.../videos/abc.mp4`` -> ``abc``)."""
    vid = PurePath(str(path)).stem
    if not vid or vid in (".", ".."):
        raise ValueError(f"cannot take a video id from {path!r}")
    return vid


@dataclass(frozen=True)
class FeatureLayout:
    """One feature set: a (benchmark, checkpoint, sampling) directory under ``root``."""

    root: Path
    bench: str
    ckpt: str
    sampling: str

    @classmethod
    def for_run(
        cls, root: str, pretrained: str, task: str, fps: float, max_frames: int, ckpt: str | None = None
    ) -> FeatureLayout:
        return cls(
            Path(root), bench_dirname(task), ckpt or ckpt_dirname(pretrained), sampling_name(fps, max_frames)
        )

    @property
    def directory(self) -> Path:
        return self.root / self.bench / "preprocess_data" / self.ckpt / self.sampling

    def feature_path(self, vid: str) -> Path:
        return self.directory / "features" / f"{vid}.pt"

    def metadata_path(self, vid: str) -> Path:
        return self.directory / "metadata" / f"{vid}.pkl"

    def complete(self, vid: str) -> bool:
        """Both files present (each is written atomically, features first)."""
        return self.feature_path(vid).is_file() and self.metadata_path(vid).is_file()
