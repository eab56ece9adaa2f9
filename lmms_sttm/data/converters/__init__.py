"""Converters from each benchmark's official annotation release to the reformatted files the tasks read.

Every converter module has ``NAME``, ``DEFAULT_SOURCE`` (where users download from),
``HUB_PATTERNS`` / ``URLS`` (what :mod:`.hub` fetches), ``NEEDS_SECONDS`` and two functions:
``load(path) -> official data`` (local files only) and ``convert(official, seconds) ->
{output file name: records}``. Converters that need video lengths also have ``video_stems`` and
``estimated_seconds``. ``python -m lmms_sttm.data.prepare`` drives them.
"""

from __future__ import annotations

from lmms_sttm.data.converters import egoschema, longvideobench, mlvu, nextqa, videomme, vnbench

CONVERTERS = {m.NAME: m for m in (vnbench, videomme, longvideobench, mlvu, nextqa, egoschema)}
