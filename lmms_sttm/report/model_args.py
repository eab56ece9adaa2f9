"""lmms-eval ``--model_args`` strings: parsing, and the parts that identify a leaderboard row.

A row is identified by model + pretrained + method + setting, where the setting is every other
model argument except the ones that only say where or how the run was placed
(:data:`RUNTIME_KEYS`). The frame settings (:data:`FRAME_KEYS`) decide whether two runs saw
the same frames and may be compared.
"""

from __future__ import annotations

import functools

#: arguments that do not change what is computed (placement, logging)
RUNTIME_KEYS = frozenset(
    {"device", "device_map", "stats_dir", "gpus_per_replica", "prefetch", "batch_size", "max_batch_size"}
)
#: arguments that choose the frames the model sees
FRAME_KEYS = ("max_frames", "fps")
#: arguments every method takes that differ between a reduced run and its unreduced reference by
#: design; the other method keys are each method's own settings (``MethodSpec.settings``)
GENERIC_METHOD_KEYS = frozenset(
    {"method", "budget", "budget_mode", "retention", "merge_layer", "decode_positions"}
)
#: the default ``method`` of this plugin's models (``ModelSettings.method``)
PLUGIN_DEFAULT_METHOD = "sttm"
#: the method of a model without ``method=`` that is not one of this plugin's video LLMs
NOT_A_METHOD = "n/a"


def parse_model_args(text: str | None) -> dict[str, str]:
    """``"pretrained=/x,method=sttm,tau_s=0.90"`` -> ``{"pretrained": "/x", ...}``, numbers canonical."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition("=")
        out[key.strip()] = canonical(value.strip())
    return out


def canonical(value: str) -> str:
    """Numbers in one spelling (``0.90`` -> ``0.9``, ``50.0`` stays ``50.0``); other text unchanged."""
    try:
        return str(int(value))
    except ValueError:
        pass
    try:
        return repr(float(value))
    except ValueError:
        return value


def method_of(model: str, args: dict[str, str]) -> str:
    """The reduction method: ``method=`` if given, else the plugin's default for its video LLMs
    (``*_sttm``), else :data:`NOT_A_METHOD` (e.g. ``sttm_oracle``, or another lmms-eval model)."""
    if "method" in args:
        return args["method"]
    return PLUGIN_DEFAULT_METHOD if model.endswith("_sttm") else NOT_A_METHOD


def setting_of(args: dict[str, str]) -> dict[str, str]:
    """The arguments that define a row besides model, pretrained and method."""
    return {
        k: v for k, v in sorted(args.items()) if k not in RUNTIME_KEYS and k not in ("pretrained", "method")
    }


def setting_label(setting: dict[str, str]) -> str:
    """``tau_s=0.9,tau_t=0.8``; ``default`` when nothing is set."""
    return ",".join(f"{k}={v}" for k, v in setting.items()) or "default"


def frames_of(args: dict[str, str]) -> dict[str, str]:
    """The frame settings (``max_frames``, ``fps``); absent keys mean the protocol's defaults."""
    return {k: args[k] for k in FRAME_KEYS if k in args}


def frames_label(frames: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in frames.items()) or "protocol default"


def is_method_key(key: str, method: str | None = None) -> bool:
    """Whether ``key`` belongs to the reduction method: a key every method takes
    (``GENERIC_METHOD_KEYS``) or a settings field of a built-in method or of ``method``."""
    return (
        key in GENERIC_METHOD_KEYS
        or key in _method_setting_names(None)
        or key in _method_setting_names(method)
    )


@functools.cache
def _method_setting_names(method: str | None) -> frozenset[str]:
    from lmms_sttm.methods import registry

    names = registry.BUILTIN if method is None else [method]
    out: set[str] = set()
    for name in names:
        try:
            out.update(registry.get(name).setting_names())
        except ValueError:  # a method this process cannot load: its keys stay unknown here
            continue
    return frozenset(out)


def shared_setting(setting: dict[str, str], method: str | None = None) -> dict[str, str]:
    """The non-method, non-frame settings (dtype, newline, ...) a reference should share
    (``method``: the row's method, whose own keys are method keys too)."""
    return {k: v for k, v in setting.items() if not is_method_key(k, method) and k not in FRAME_KEYS}
