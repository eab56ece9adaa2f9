"""Prepare one benchmark under the data root: reformatted annotations and a linked video folder.

Usage::

    python -m lmms_sttm.data.prepare BENCH [--source FILE_OR_FOLDER_OR_HUB_ID] [--videos-from DIR]
                                           [--root DIR] [--estimate-seconds]

- ``--source``: the official annotation release, as a local file or folder, or a Hugging Face
  dataset id (downloaded with ``huggingface_hub``; EgoSchema's default source is its GitHub
  repository). Writes ``<root>/<BENCH>/annotations/<file>``.
- ``--videos-from``: a folder with the downloaded videos (any nesting); every ``*.mp4`` under it
  is symlinked as ``<root>/<BENCH>/videos/<name>.mp4`` (MLVU: ``<task>-<name>.mp4`` for videos
  under a task folder such as ``1_plotQA/``). Runs before the conversion, which measures video
  lengths (VNBench, MLVU, NExT-QA) from that folder.
- ``--estimate-seconds``: take the lengths from the annotations instead of the videos (see each
  converter's ``estimated_seconds``; some duration buckets then differ from the authors').

``--root`` defaults to ``$LMMS_STTM_DATA_ROOT`` or ``./datasets``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmms_sttm import data_root
from lmms_sttm.data.converters import CONVERTERS, hub, mlvu
from lmms_sttm.data.converters.common import ConversionError, measure_seconds, write_json


def resolve_source(converter, source: str, cache_dir: Path) -> Path:
    """A local path as is; otherwise a remote id, downloaded into ``cache_dir``."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    looks_remote = source == converter.DEFAULT_SOURCE or (
        source.count("/") == 1 and not source.startswith(".")
    )
    if not looks_remote:
        raise ConversionError(f"--source {source!r} is neither an existing file or folder nor a dataset id")
    return hub.fetch(converter, source, cache_dir)


def link_name(bench: str, video: Path) -> str:
    """The file name ``video`` gets in the benchmark's videos folder."""
    if bench == mlvu.NAME and video.parent.name in mlvu.TASK_FILES:
        return f"{video.parent.name}-{video.name}"
    return video.name


def link_videos(bench: str, source_dir: Path, video_dir: Path) -> int:
    """Symlink every ``*.mp4`` under ``source_dir`` into ``video_dir``; returns how many are linked."""
    if not source_dir.is_dir():
        raise ConversionError(f"--videos-from {source_dir} is not a folder")
    targets: dict[str, Path] = {}
    for video in sorted(source_dir.rglob("*.mp4")):
        name = link_name(bench, video)
        if name in targets:
            raise ConversionError(f"two videos would be linked as {name}: {targets[name]} and {video}")
        targets[name] = video.resolve()
    if not targets:
        raise ConversionError(f"no .mp4 files under {source_dir}")
    video_dir.mkdir(parents=True, exist_ok=True)
    for name, target in targets.items():
        link = video_dir / name
        if link.is_symlink() or link.exists():
            if link.resolve() == target:
                continue
            link.unlink()
        link.symlink_to(target)
    return len(targets)


def video_seconds(converter, official, video_dir: Path, estimate: bool) -> dict[str, float] | None:
    """Video lengths for converters that record them: measured, or estimated on request."""
    if not converter.NEEDS_SECONDS:
        return None
    if estimate:
        return converter.estimated_seconds(official)
    if not video_dir.is_dir():
        raise ConversionError(
            f"{converter.NAME} records each video's length, measured from {video_dir}, which does not exist. "
            "Link the videos first (--videos-from DIR), or pass --estimate-seconds to take lengths from the "
            "annotations (some duration buckets then differ from the STTM authors')."
        )
    return measure_seconds(video_dir, converter.video_stems(official))


def prepare(
    bench: str, root: Path, source: str | None, videos_from: Path | None, estimate: bool = False
) -> list[Path]:
    """Run the requested steps; returns the annotation files written."""
    converter = CONVERTERS[bench]
    video_dir = root / bench / "videos"
    if videos_from is not None:
        n = link_videos(bench, videos_from, video_dir)
        print(f"{bench}: linked {n} videos into {video_dir}")
    written = []
    if source is not None:
        local = resolve_source(converter, source, root / bench / "downloads")
        official = converter.load(local)
        outputs = converter.convert(official, video_seconds(converter, official, video_dir, estimate))
        for name, records in outputs.items():
            path = write_json(records, root / bench / "annotations" / name)
            print(f"{bench}: wrote {len(records)} records to {path}")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmms_sttm.data.prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bench", choices=sorted(CONVERTERS))
    parser.add_argument("--source", help="official annotation file/folder, or a dataset id to download")
    parser.add_argument("--videos-from", type=Path, help="folder with the downloaded videos, to link in")
    parser.add_argument("--root", type=Path, help=f"data root (default ${data_root.ENV_VAR} or ./datasets)")
    parser.add_argument("--estimate-seconds", action="store_true", help="video lengths from the annotations")
    args = parser.parse_args(argv)
    if args.source is None and args.videos_from is None:
        parser.error("nothing to do: give --source and/or --videos-from")
    root = (args.root or data_root.data_root()).expanduser().absolute()
    try:
        prepare(args.bench, root, args.source, args.videos_from, args.estimate_seconds)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if root != data_root.data_root():
        print(f"point the tasks at this root with: export {data_root.ENV_VAR}={root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
