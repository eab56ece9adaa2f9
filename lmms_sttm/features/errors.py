"""Errors of the feature path (kept import-light: ``models/base.py`` imports this module)."""

from __future__ import annotations

from lmms_sttm.video import VideoError


class MissingFeatures(VideoError):
    """No (complete) feature/metadata pair for a video: a counted failed sample, the run goes on."""


class FeatureMismatchError(ValueError):
    """Stored features do not fit the model (wrong checkpoint or family): the run stops."""
