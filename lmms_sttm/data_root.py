"""Where the benchmark data lives: one root folder laid out as the STTM authors lay it out.

::

    $LMMS_STTM_DATA_ROOT/            (default: ./datasets, relative to the working directory)
        vnbench/annotations/VNBench-main-4try_v2.json
        vnbench/videos/<videoID>.mp4
        videomme/annotations/videomme.json
        ...

The root is read when a task is loaded (not at import), so one process can point tasks at
different roots by changing the environment variable. A missing annotation file or video folder
raises :class:`DataRootError` naming the path that was expected and the command that prepares it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LMMS_STTM_DATA_ROOT"
DEFAULT_ROOT = "datasets"


class DataRootError(FileNotFoundError):
    """A benchmark file or folder is missing under the data root."""


def data_root() -> Path:
    """The data root: ``$LMMS_STTM_DATA_ROOT``, else ``./datasets``; made absolute (not resolved)."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_ROOT).expanduser().absolute()


def annotation_path(bench: str, filename: str) -> Path:
    """``<root>/<bench>/annotations/<filename>``."""
    return data_root() / bench / "annotations" / filename


def video_dir(bench: str) -> Path:
    """``<root>/<bench>/videos``."""
    return data_root() / bench / "videos"


def prepare_command(bench: str, what: str = "annotations") -> str:
    """The shell command that creates the missing ``what`` ("annotations" or "videos") of ``bench``."""
    root = data_root()
    if what == "videos":
        return f"python -m lmms_sttm.data.prepare {bench} --videos-from <folder with the downloaded videos> --root {root}"
    from lmms_sttm.data.converters import CONVERTERS

    source = CONVERTERS[bench].DEFAULT_SOURCE if bench in CONVERTERS else "<official annotation file>"
    return f"python -m lmms_sttm.data.prepare {bench} --source {source} --root {root}"


def require_annotation(bench: str, filename: str) -> Path:
    """The annotation file's path; :class:`DataRootError` if it is not a file."""
    path = annotation_path(bench, filename)
    if not path.is_file():
        raise DataRootError(
            f"{bench}: annotation file not found: {path} (data root {data_root()}, set by ${ENV_VAR}, "
            f"default ./{DEFAULT_ROOT}). Prepare it with:\n  {prepare_command(bench)}"
        )
    return path


def require_video_dir(bench: str) -> Path:
    """The video folder's path; :class:`DataRootError` if it is not a directory."""
    path = video_dir(bench)
    if not path.is_dir():
        raise DataRootError(
            f"{bench}: video folder not found: {path} (data root {data_root()}, set by ${ENV_VAR}, "
            f"default ./{DEFAULT_ROOT}). Download the {bench} videos, then link them in with:\n"
            f"  {prepare_command(bench, 'videos')}"
        )
    return path
