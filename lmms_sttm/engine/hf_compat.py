"""The engine's one seam with transformers' calling convention for the KV cache, and its drift alarms.

transformers 5.24 renamed the cache argument of the decoders, their layers and the top-level
models from ``past_key_values`` to ``cache`` (the old name stays a deprecated alias until 5.40;
when both are passed, the new one wins and the old one is dropped). The engine therefore never
spells either name: it asks a module which name its ``forward`` takes (:func:`cache_name`, read
from the signature, so 5.23, 5.24 and 5.25 run the same code) and passes, reads and replaces the
cache through the functions below.

Drift is loud: if a patched decoder layer receives a cache other than the engine's
(:func:`check_layer_cache`), or the engine's cache holds no keys after a forward
(:func:`check_cache_written`), :class:`TransformersDrift` stops the run naming the installed
transformers version and the supported range, instead of letting wrong logits through.
"""

from __future__ import annotations

import functools
import inspect

from torch import nn

#: transformers versions the engine's hooks are tested on (keep in step with pyproject.toml).
SUPPORTED_TRANSFORMERS = ">=5.23,<5.26"
NAMES = ("cache", "past_key_values")  # newest first: the name transformers prefers when both are set


class TransformersDrift(RuntimeError):
    """The installed transformers no longer calls its decoder the way the engine relies on."""


def _drift(what: str) -> TransformersDrift:
    import transformers

    return TransformersDrift(
        f"reduction engine: {what}. transformers {transformers.__version__} is installed; the engine "
        f"supports transformers{SUPPORTED_TRANSFORMERS}: install a version in that range"
    )


@functools.cache
def _name_for(forward_owner: type) -> str:
    params = inspect.signature(forward_owner.forward).parameters  # follows deprecation wrappers
    for name in NAMES:
        if name in params:
            return name
    raise _drift(f"{forward_owner.__name__}.forward takes none of the cache arguments {NAMES}")


def cache_name(module: nn.Module) -> str:
    """The cache argument's name in ``module.forward``: ``"cache"`` (5.24+) or ``"past_key_values"`` (5.23)."""
    return _name_for(type(module))


def cache_kwargs(module: nn.Module, cache) -> dict:
    """``{name: cache}`` for calling ``module`` (a model, decoder or layer) with ``cache``."""
    return {cache_name(module): cache}


def read_cache(kwargs: dict):
    """The cache in a forward's keyword arguments, under either name (the new one wins, as in transformers)."""
    for name in NAMES:
        if kwargs.get(name) is not None:
            return kwargs[name]
    return None


def write_cache(module: nn.Module, kwargs: dict, cache) -> None:
    """Puts ``cache`` into ``kwargs`` (in place) under the name ``module.forward`` takes, and only there."""
    for name in NAMES:
        kwargs.pop(name, None)
    kwargs[cache_name(module)] = cache


def check_layer_cache(layer: nn.Module, kwargs: dict, expected) -> None:
    """Raises ``TransformersDrift`` unless ``layer`` receives ``expected`` (the engine's cache, or None)."""
    if expected is not None and kwargs.get(cache_name(layer)) is not expected:
        raise _drift(f"decoder layer {type(layer).__name__} did not receive the engine's cache")


def check_cache_written(cache) -> None:
    """After a forward on ``cache`` (a ``DynamicCache``): every layer must hold keys, else drift."""
    if cache is None:
        return
    empty = [i for i, layer in enumerate(cache.layers) if layer.get_seq_length() == 0]
    if empty:
        raise _drift(f"the engine's cache holds no keys in layers {empty} after a forward")
