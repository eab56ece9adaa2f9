"""One validated settings object per model instance, built from ``--model_args``.

lmms-eval parses ``--model_args k=v,...`` into Python values ("true" -> bool, digits -> int,
floats, else str; "None" stays a string) and calls the model class with them plus
``batch_size``/``max_batch_size``/(``device``). :meth:`ModelSettings.from_model_args` turns that
into a frozen dataclass, rejecting unknown keys and bad values at start-up with a message that
names the accepted ones. The settings are written into every per-sample statistics record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

METHODS = ("none", "sttm", "tome", "dycoke_stage1", "dycoke", "fastv", "framefusion", "pool")
BUDGET_MODES = ("native", "exact")
NEWLINE = ("no_token", "grid", "one_token")
ATTN = ("auto", "sdpa", "eager", "flash_attention_2")
DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("auto", "decord", "pyav")
FEATURES_MODES = ("read", "extract")
BUDGETS = (50, 30)
# --- baselines as the STTM authors ran them (issue 26): named options for the cleaner variants ---
#: row order of ToMe / DyCoke stage 1 plans: the authors' (similarity / topk order) or raster
TOKEN_ORDERS = ("authors", "raster")
TOKEN_ORDER_METHODS = ("tome", "dycoke_stage1", "dycoke")
#: DyCoke stage 2 (``engine/kv_pruning.py`` MODES): authors' range and re-selection, the intended
#: video-only range, or the video range with the 0.9 similarity gate
DYCOKE_KV = ("authors", "video", "gated")
# --- end baselines block ---
# fidelity options (issue 14): the authors' computation is the default, exact variants by name
UNION_FIND = ("authors", "components")
MERGE_DTYPES = ("input", "float32")
ROPE_INDEX = ("original", "transformers")
# eng26b: engine stages and positions (README "Fidelity: FrameFusion, positions")
DECODE_POSITIONS = ("authors", "compact")
FRAMEFUSION = ("authors", "single_layer")
_OPTIONAL = (
    "tau_s",
    "tau_t",
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
    "token_order",
    "dycoke_kv",
    "gpus_per_replica",
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
    tau_s: float | None = None
    tau_t: float | None = None
    budget: int | None = None
    budget_mode: str = "native"
    retention: float | None = None
    merge_layer: int | None = None
    root_level: int = 1
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
    token_order: str | None = None
    dycoke_kv: str | None = None
    # gpu15 (failure policy, warm-up): see models/failures.py and models/warmup.py
    max_failures: float = 0.05
    warmup: bool = True
    union_find: str = "authors"
    merge_dtype: str = "input"
    rope_index: str = "original"
    decode_positions: str = "authors"
    framefusion: str = "authors"
    # issue 36 (scale): decode-ahead depth (models/prefetch.py); GPUs per replica (models/placement.py)
    prefetch: int = 1
    gpus_per_replica: int | None = None

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        _choice("budget_mode", self.budget_mode, BUDGET_MODES)
        _choice("newline", self.newline, NEWLINE)
        _choice("attn_implementation", self.attn_implementation, ATTN)
        _choice("dtype", self.dtype, DTYPES)
        _choice("video_backend", self.video_backend, BACKENDS)
        self._check_features()
        self._check_baseline_options()
        self._check_fidelity()
        self._check_engine_options()
        self._check_scale()
        if not self.pretrained:
            raise ValueError("model_args pretrained= is required (a hub id or a local checkpoint folder)")
        taus = (self.tau_s, self.tau_t)
        if self.method == "none":
            if self.budget is not None or self.retention is not None or any(t is not None for t in taus):
                raise ValueError(
                    "method=none keeps every token: do not pass budget, retention, tau_s or tau_t"
                )
            if self.budget_mode != "native":
                raise ValueError("method=none keeps every token: budget_mode=exact does not apply")
        elif self.budget_mode == "exact":
            r = self.retention
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
                raise ValueError(f"budget_mode=exact needs retention= in (0, 1] (e.g. 0.3), got {r!r}")
            if self.budget is not None or any(t is not None for t in taus):
                raise ValueError(
                    "budget_mode=exact takes retention= only: do not pass budget, tau_s or tau_t"
                )
        elif self.retention is not None:
            raise ValueError("retention= needs budget_mode=exact (native mode uses budget= or tau_s/tau_t)")
        elif self.method != "sttm":
            if any(t is not None for t in taus):
                raise ValueError(f"tau_s/tau_t are STTM thresholds; method={self.method} takes budget= only")
            if self.budget not in BUDGETS:
                raise ValueError(
                    f"method={self.method} needs budget= (one of {list(BUDGETS)}) or budget_mode=exact with "
                    f"retention=; got budget={self.budget!r}"
                )
        else:
            if self.budget is not None and any(t is not None for t in taus):
                raise ValueError(
                    "pass either budget= (the paper's thresholds) or tau_s= and tau_t=, not both"
                )
            if self.budget is None and None in taus:
                raise ValueError(
                    f"method={self.method} needs budget= (one of {list(BUDGETS)}) or both tau_s= and tau_t="
                )
            if self.budget is not None and self.budget not in BUDGETS:
                raise ValueError(
                    f"model_args budget={self.budget!r} is not accepted; use one of {list(BUDGETS)}"
                )
        for name in ("merge_layer", "max_frames", "root_level"):
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

    def _check_baseline_options(self) -> None:
        """``token_order`` (ToMe, DyCoke) and ``dycoke_kv`` (DyCoke) only with the methods they change;
        absent means the authors' behaviour."""
        if self.token_order is not None:
            _choice("token_order", self.token_order, TOKEN_ORDERS)
            if self.method not in TOKEN_ORDER_METHODS:
                raise ValueError(
                    f"model_args token_order= applies to method in {list(TOKEN_ORDER_METHODS)}, not {self.method}"
                )
        if self.dycoke_kv is not None:
            _choice("dycoke_kv", self.dycoke_kv, DYCOKE_KV)
            if self.method != "dycoke":
                raise ValueError(f"model_args dycoke_kv= applies to method=dycoke, not {self.method}")

    def _check_fidelity(self) -> None:
        """``union_find``/``merge_dtype`` (STTM merging) and ``rope_index`` (Qwen M-RoPE positions)."""
        _choice("union_find", self.union_find, UNION_FIND)
        _choice("merge_dtype", self.merge_dtype, MERGE_DTYPES)
        _choice("rope_index", self.rope_index, ROPE_INDEX)
        changed = [
            k
            for k, default in (("union_find", "authors"), ("merge_dtype", "input"))
            if getattr(self, k) != default
        ]
        if changed and self.method != "sttm":
            raise ValueError(
                f"model_args {', '.join(changed)} apply to method=sttm only, not method={self.method}"
            )

    def _check_engine_options(self) -> None:
        """``decode_positions`` authors|compact (LLaVA decode positions); ``framefusion``
        authors|single_layer (only with ``method=framefusion``; ``budget_mode=exact`` trims the
        single-layer variant, recorded as such)."""
        _choice("decode_positions", self.decode_positions, DECODE_POSITIONS)
        _choice("framefusion", self.framefusion, FRAMEFUSION)
        if self.framefusion != "authors" and self.method != "framefusion":
            raise ValueError(f"framefusion={self.framefusion} applies to method=framefusion only")

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
        return [f.name for f in fields(cls)]

    @classmethod
    def from_model_args(cls, **kwargs) -> ModelSettings:
        """Build from lmms-eval's keyword arguments; ``batch_size`` must be 1."""
        batch_size = kwargs.pop("batch_size", 1)
        kwargs.pop("max_batch_size", None)
        if int(batch_size) != 1:
            raise ValueError(f"batch_size must be 1 for video reduction runs, got {batch_size}")
        unknown = sorted(set(kwargs) - set(cls.accepted_keys()))
        if unknown:
            raise ValueError(f"unknown model_args {unknown}; accepted keys: {cls.accepted_keys()}")
        clean = {k: _none(v) if k in _OPTIONAL else v for k, v in kwargs.items()}
        for k in ("tau_s", "tau_t", "fps", "retention", "max_failures"):
            if isinstance(clean.get(k), int) and not isinstance(clean[k], bool):
                clean[k] = float(clean[k])
        if isinstance(clean.get("pretrained"), (int, float)):
            clean["pretrained"] = str(clean["pretrained"])
        return cls(**clean)

    def as_dict(self) -> dict:
        return asdict(self)
