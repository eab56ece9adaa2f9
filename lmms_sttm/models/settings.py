"""One validated settings object per model instance, built from ``--model_args``.

lmms-eval parses ``--model_args k=v,...`` into Python values ("true" -> bool, digits -> int,
floats, else str; "None" stays a string) and calls the model class with them plus
``batch_size``/``max_batch_size``/(``device``). :meth:`ModelSettings.from_model_args` turns that
into a frozen dataclass, rejecting unknown keys and bad values at start-up with a message that
names the accepted ones. The settings are written into every per-sample statistics record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from lmms_sttm.methods import registry
from lmms_sttm.methods.bind import check_budget_args, method_settings
from lmms_sttm.methods.spec import MethodSpec

BUDGET_MODES = ("native", "exact")
NEWLINE = ("no_token", "grid", "one_token")
ATTN = ("auto", "sdpa", "eager", "flash_attention_2")
DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("auto", "decord", "pyav")
FEATURES_MODES = ("read", "extract")
ROPE_INDEX = ("original", "transformers")
#: LLaVA positions of generated tokens (README "Fidelity"): the authors' N+i, or N'+i
DECODE_POSITIONS = ("authors", "compact")
_OPTIONAL = (
    "budget",
    "retention",
    "merge_layer",
    "max_frames",
    "fps",
    "time_instruction",
    "device",
    "device_map",
    "stats_dir",
    "features",
    "features_ckpt",
    "gpus_per_replica",
    "enable_thinking",
)


def _none(v):
    return None if isinstance(v, str) and v.lower() in ("none", "null", "") else v


def _choice(name, v, accepted):
    if v not in accepted:
        raise ValueError(f"model_args {name}={v!r} is not accepted; use one of {list(accepted)}")
    return v


@dataclass(frozen=True)
class ModelSettings:
    """Settings of one STTM-family lmms-eval model (see the README's model_args reference)."""

    pretrained: str
    method: str = "sttm"
    budget: int | None = None
    budget_mode: str = "native"
    retention: float | None = None
    merge_layer: int | None = None
    max_frames: int | None = None
    fps: float | None = None
    newline: str = "no_token"
    time_instruction: bool | None = None
    attn_implementation: str = "auto"
    dtype: str = "auto"
    device: str | None = None
    device_map: str | None = None
    kv_reuse: bool = True
    stats_dir: str | None = None
    video_backend: str = "auto"
    features: str | None = None
    features_mode: str = "read"
    features_ckpt: str | None = None
    # gpu15 (failure policy, warm-up): see models/failures.py and models/warmup.py
    max_failures: float = 0.05
    warmup: bool = True
    rope_index: str = "original"
    decode_positions: str = "authors"
    # decode-ahead depth (models/prefetch.py); GPUs per replica (models/placement.py)
    prefetch: int = 1
    gpus_per_replica: int | None = None
    # models with a thinking switch (Qwen3.5): None = the model's default (lmms-eval's: on); the
    # tokens a thinking block may take on top of the task's answer budget (models/thinking.py)
    enable_thinking: bool | None = None
    max_thinking_tokens: int = 1024
    #: the method's own settings (``MethodSpec.settings``), built from its ``--model_args`` keys
    method_settings: object = None

    def __post_init__(self) -> None:
        spec = self.spec
        _choice("budget_mode", self.budget_mode, BUDGET_MODES)
        _choice("newline", self.newline, NEWLINE)
        _choice("attn_implementation", self.attn_implementation, ATTN)
        _choice("dtype", self.dtype, DTYPES)
        _choice("video_backend", self.video_backend, BACKENDS)
        _choice("rope_index", self.rope_index, ROPE_INDEX)
        _choice("decode_positions", self.decode_positions, DECODE_POSITIONS)
        self._check_features()
        self._check_scale()
        if not self.pretrained:
            raise ValueError("model_args pretrained= is required (a hub id or a local checkpoint folder)")
        if self.method_settings is None and spec.settings is not None:
            object.__setattr__(self, "method_settings", method_settings(spec, {}))
        check_budget_args(spec, self.method_settings, self.budget, self.budget_mode, self.retention)
        for name in ("merge_layer", "max_frames"):
            v = getattr(self, name)
            if v is not None and (
                not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "max_frames" else 0)
            ):
                raise ValueError(
                    f"model_args {name}={v!r} must be a {'positive' if name == 'max_frames' else 'non-negative'} integer"
                )
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"model_args fps={self.fps!r} must be positive")
        m = self.max_failures
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m <= 1:
            raise ValueError(f"model_args max_failures={m!r} must be a fraction in (0, 1] (1 never stops)")
        if not isinstance(self.warmup, bool):
            raise ValueError(f"model_args warmup={self.warmup!r} must be true or false")
        if not isinstance(self.kv_reuse, bool):
            raise ValueError(f"model_args kv_reuse={self.kv_reuse!r} must be true or false")
        if self.enable_thinking is not None and not isinstance(self.enable_thinking, bool):
            raise ValueError(f"model_args enable_thinking={self.enable_thinking!r} must be true or false")
        t = self.max_thinking_tokens
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"model_args max_thinking_tokens={t!r} must be a non-negative integer")
        if self.time_instruction is not None and not isinstance(self.time_instruction, bool):
            raise ValueError(f"model_args time_instruction={self.time_instruction!r} must be true or false")

    def _check_features(self) -> None:
        """``features=DIR`` (a feature root), ``features_mode`` read|extract, ``features_ckpt`` a dir name."""
        _choice("features_mode", self.features_mode, FEATURES_MODES)
        for name in ("features", "features_ckpt"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise ValueError(f"model_args {name}={v!r} must be a non-empty path string")
        ckpt = self.features_ckpt
        if ckpt is not None and ("/" in ckpt or ckpt in (".", "..")):
            raise ValueError(f"model_args features_ckpt={self.features_ckpt!r} must be one directory name")
        if self.features is None and (self.features_mode != "read" or self.features_ckpt is not None):
            raise ValueError("features_mode= and features_ckpt= need features=DIR (the feature root)")
        if self.features_mode == "extract" and self.method != "none":
            raise ValueError("features_mode=extract only writes features: pass method=none")

    @property
    def spec(self) -> MethodSpec:
        """The method's spec (``methods/registry.py``); ``ValueError`` when ``method=`` names nothing."""
        return registry.get(self.method)

    def _check_scale(self) -> None:
        """``prefetch`` >= 0 videos read ahead; ``gpus_per_replica`` >= 1 GPUs per process, with
        ``device_map`` absent or ``auto`` (each rank spreads its replica over its own GPUs)."""
        p = self.prefetch
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise ValueError(f"model_args prefetch={p!r} must be a non-negative integer (0: no decode-ahead)")
        g = self.gpus_per_replica
        if g is None:
            return
        if isinstance(g, bool) or not isinstance(g, int) or g < 1:
            raise ValueError(f"model_args gpus_per_replica={g!r} must be a positive integer")
        if self.device_map not in (None, "auto") or self.device not in (None, "cuda"):
            raise ValueError(
                "gpus_per_replica= places each rank's replica on its own GPUs with device_map=auto: "
                f"do not pass device_map={self.device_map!r} or device={self.device!r}"
            )

    @classmethod
    def accepted_keys(cls) -> list[str]:
        """The model's own keys (every method also takes the keys of its settings)."""
        return [f.name for f in fields(cls) if f.name != "method_settings"]

    @classmethod
    def from_model_args(cls, **kwargs) -> ModelSettings:
        """Build from lmms-eval's keyword arguments; ``batch_size`` must be 1.

        Keys of the model (``accepted_keys``) and keys of the chosen method's settings are accepted;
        a key of another method fails naming the methods it belongs to.
        """
        batch_size = kwargs.pop("batch_size", 1)
        kwargs.pop("max_batch_size", None)
        if int(batch_size) != 1:
            raise ValueError(f"batch_size must be 1 for video reduction runs, got {batch_size}")
        method = kwargs.get("method", "sttm")
        spec = registry.get(method)
        own = set(spec.setting_names())
        model_keys = set(cls.accepted_keys())
        unknown = sorted(set(kwargs) - model_keys - own)
        if unknown:
            owners = _owners(unknown[0])
            if owners:
                where = f"method={owners[0]}" if len(owners) == 1 else f"method in {owners}"
                raise ValueError(f"model_args {unknown[0]}= applies to {where}, not {spec.name}")
            raise ValueError(
                f"unknown model_args {unknown}; accepted keys: {cls.accepted_keys()} "
                f"and method={spec.name}'s {sorted(own)}"
            )
        clean = {k: _none(v) if k in _OPTIONAL else v for k, v in kwargs.items() if k in model_keys}
        for k in ("fps", "retention", "max_failures"):
            if isinstance(clean.get(k), int) and not isinstance(clean[k], bool):
                clean[k] = float(clean[k])
        if isinstance(clean.get("pretrained"), (int, float)):
            clean["pretrained"] = str(clean["pretrained"])
        clean["method_settings"] = method_settings(spec, {k: v for k, v in kwargs.items() if k in own})
        return cls(**clean)

    def as_dict(self) -> dict:
        """Every setting; the method's own under their keys (as they were passed)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "method_settings"}
        if self.method_settings is not None:
            out.update(asdict(self.method_settings))
        return out


def _owners(key: str) -> list[str]:
    """The built-in methods that take ``key`` as one of their settings."""
    owners = []
    for name in registry.BUILTIN:
        if key in registry.get(name).setting_names():
            owners.append(name)
    return owners
