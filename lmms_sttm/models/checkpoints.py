"""Load a video-LLM checkpoint as a transformers model + processor, whatever its on-disk format.

``load_checkpoint(pretrained)`` accepts

- an **HF-format** directory (``config.json`` with ``model_type`` ``llava_onevision``, ``qwen2_vl`` or
  ``qwen2_5_vl``): loaded with ``AutoModelForImageTextToText`` + ``AutoProcessor``;
- a **LLaVA-NeXT-format** directory (``architectures: ["LlavaQwenForCausalLM"]`` plus ``mm_*`` keys,
  as ``lmms-lab/LLaVA-Video-7B-Qwen2`` / ``-Video-Only`` / ``-72B`` and
  ``lmms-lab/llava-onevision-qwen2-7b-ov``): converted on load into
  ``LlavaOnevisionForConditionalGeneration`` + ``LlavaOnevisionProcessor``;
- a **hub id**: its ``config.json`` is fetched to tell the two apart; LLaVA-NeXT repos are downloaded
  and converted, anything else goes to transformers' ``from_pretrained`` unchanged.

The LLaVA-NeXT conversion lives in :mod:`lmms_sttm.models.llava_next`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

HF_MODEL_TYPES = (
    "llava_onevision",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "qwen3_vl_moe",
    "qwen3_5",
    "qwen3_5_moe",
    "internvl",
)
LLAVA_NEXT_ARCHITECTURES = ("LlavaQwenForCausalLM",)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class CheckpointError(ValueError):
    """A checkpoint directory or config that cannot be loaded (the message names the problem)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a loaded checkpoint says about its video pipeline.

    ``newline_position``: "grid" (one newline per row), "one_token" (one per video, what HF
    LlavaOnevision does), "frame", "no_token", or None (Qwen, no newline). ``mm_config`` holds the raw
    LLaVA-NeXT ``mm_*`` / image / time keys (empty for HF-format checkpoints).
    """

    source: str
    format: str  # "hf" or "llava_next"
    model_type: str  # the HF model_type of the returned model
    newline_position: str | None = None
    spatial_pool_mode: str | None = None
    spatial_pool_stride: int | None = None
    add_time_instruction: bool = False
    force_sample: bool = False
    mm_config: dict[str, Any] = field(default_factory=dict)


class LoadedCheckpoint(NamedTuple):
    model: Any  # a transformers *ForConditionalGeneration in eval mode
    processor: Any  # the matching transformers *Processor
    info: CheckpointInfo


def read_config(path: Path) -> dict[str, Any]:
    """The raw ``config.json`` of a checkpoint directory."""
    cfg = path / "config.json"
    if not cfg.is_file():
        raise CheckpointError(
            f"{path} is neither an HF-format nor a LLaVA-NeXT-format checkpoint: it has no config.json"
        )
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg} is not valid JSON: {exc}") from exc


def is_llava_next(raw: dict[str, Any], where: str = "config.json") -> bool:
    """Whether a raw config is LLaVA-NeXT's; raises for LLaVA-NeXT language models other than Qwen2."""
    architectures = raw.get("architectures") or []
    if "mm_vision_tower" not in raw and not any(
        a.startswith("Llava") and "ForCausalLM" in a for a in architectures
    ):
        return False
    if not set(architectures) & set(LLAVA_NEXT_ARCHITECTURES):
        raise CheckpointError(
            f"unsupported LLaVA-NeXT architecture {architectures} in {where}; "
            f"supported: {', '.join(LLAVA_NEXT_ARCHITECTURES)} (Qwen2 language model)"
        )
    return True


def detect_format(raw: dict[str, Any], where: str = "config.json") -> str:
    """``"llava_next"`` or ``"hf"`` for a raw config; raises for unsupported architectures."""
    if is_llava_next(raw, where):
        return "llava_next"
    model_type = raw.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise CheckpointError(
            f"unsupported model_type {model_type!r} (architectures {raw.get('architectures')}) in {where}; "
            f"supported: HF {', '.join(HF_MODEL_TYPES)} or LLaVA-NeXT {', '.join(LLAVA_NEXT_ARCHITECTURES)}"
        )
    return "hf"


def load_checkpoint(
    pretrained: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    device_map: Any = None,
    max_memory: dict | None = None,
) -> LoadedCheckpoint:
    """Load ``pretrained`` (local directory or hub id) as ``(model, processor, info)``; model in eval mode.

    ``max_memory`` (``{gpu index: bytes}``) restricts ``device_map=auto`` to those GPUs.
    """
    # use_kernels=False: the model's own modules, as the authors ran them; transformers 5.25 may
    # otherwise swap in Hub kernels on CUDA (other numbers, and a download on offline clusters).
    kwargs = {
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "device_map": device_map,
        "use_kernels": False,
        **({"max_memory": max_memory} if max_memory is not None else {}),
    }
    text = str(pretrained)
    path = Path(text).expanduser()
    if not path.exists() and _looks_like_hub_id(text):
        return _load_hub(text, kwargs)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint directory does not exist: {path}")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint path is not a directory: {path}")
    raw = read_config(path)
    if detect_format(raw, str(path / "config.json")) == "llava_next":
        from lmms_sttm.models.llava_next import load_llava_next

        return load_llava_next(path, raw, kwargs, source=text)
    return _load_hf(text, raw, kwargs)


def _looks_like_hub_id(text: str) -> bool:
    """``org/name`` or ``name`` whose parent is not an existing local directory."""
    if not _HUB_ID.match(text) or text.startswith("."):
        return False
    return "/" not in text or not Path(text).parent.is_dir()


def _load_hf(source: str, raw: dict[str, Any], kwargs: dict[str, Any]) -> LoadedCheckpoint:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(source, **kwargs).eval()
    processor = AutoProcessor.from_pretrained(source)
    model_type = raw.get("model_type", model.config.model_type)
    is_llava = model_type == "llava_onevision"
    info = CheckpointInfo(
        source=source,
        format="hf",
        model_type=model_type,
        newline_position="one_token" if is_llava else None,
        spatial_pool_mode="bilinear" if is_llava else None,
        spatial_pool_stride=2 if is_llava else None,
    )
    return LoadedCheckpoint(model, processor, info)


def _load_hub(repo_id: str, kwargs: dict[str, Any]) -> LoadedCheckpoint:
    """Hub id: convert LLaVA-NeXT repos; pass everything else to transformers unchanged (no type check)."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        raw = json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text())
    except (OSError, EntryNotFoundError):  # offline / unknown repo: transformers raises its own error
        raw = None
    if raw is not None and is_llava_next(raw, f"{repo_id}/config.json"):
        local = Path(
            snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja"])
        )
        from lmms_sttm.models.llava_next import load_llava_next

        return load_llava_next(local, raw, kwargs, source=repo_id)
    return _load_hf(repo_id, raw or {}, kwargs)
