"""The tiny checkpoints fixture of the model-layer tests, shared here."""

from tests.models.conftest import tiny_checkpoints  # noqa: F401
