"""Which checkpoint a run uses, as a fingerprint of its configuration.

A calibration (``python -m lmms_sttm.calibrate``) holds only for the checkpoint it measured. The
same checkpoint may be passed as a hub id on one machine and a local folder on another, and loaded
in another dtype or attention kernel, so the fingerprint hashes the loaded configuration without
the keys that say where it came from or how it was loaded. Two checkpoints with one configuration
(a fine-tune of the same model) share a fingerprint: it tells models apart, not weights.
"""

from __future__ import annotations

import hashlib
import json

#: configuration keys that depend on the load, not on the model (at every nesting level)
LOAD_KEYS = frozenset(
    {
        "_name_or_path",
        "name_or_path",
        "_commit_hash",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "_attn_implementation",
        "attn_implementation",
        "_attn_implementation_autoset",
        "_attn_implementation_internal",
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "_experts_implementation",
    }
)


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in LOAD_KEYS}
    if isinstance(value, (list, tuple)):
        return [_strip(v) for v in value]
    return value


def config_fingerprint(config) -> str:
    """SHA-256 of the model configuration (``PretrainedConfig`` or its dict) without ``LOAD_KEYS``."""
    raw = config if isinstance(config, dict) else config.to_dict()
    text = json.dumps(_strip(raw), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
