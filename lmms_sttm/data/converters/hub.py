"""Downloads of the official annotation releases (users' machines; the test machine has no network).

Kept apart from the converters, which only read local files: each converter names its remote
source (``DEFAULT_SOURCE``) and the files to fetch (``HUB_PATTERNS`` for a Hugging Face dataset
repository, or ``URLS`` for plain downloads); :func:`fetch` returns the local folder holding them.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path


def fetch(converter, source: str, cache_dir: Path) -> Path:
    """Download ``source`` (a Hugging Face dataset id, or the converter's URL source) into ``cache_dir``."""
    urls = getattr(converter, "URLS", None)
    if urls and source == converter.DEFAULT_SOURCE:
        return download_urls(urls, cache_dir / converter.NAME)
    return snapshot(source, converter.HUB_PATTERNS, cache_dir / converter.NAME)


def snapshot(repo_id: str, patterns: list[str], local_dir: Path) -> Path:
    """The files matching ``patterns`` of the dataset repository ``repo_id``, downloaded to ``local_dir``."""
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(repo_id=repo_id, repo_type="dataset", allow_patterns=patterns, local_dir=local_dir)
    )


def download_urls(urls: dict[str, str], local_dir: Path) -> Path:
    """Each ``{file name: url}`` downloaded into ``local_dir``."""
    local_dir.mkdir(parents=True, exist_ok=True)
    for name, url in urls.items():
        urllib.request.urlretrieve(url, local_dir / name)  # noqa: S310 (fixed https URLs)
    return local_dir
