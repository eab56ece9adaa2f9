"""What a training run's numbers depend on: pinning it, fingerprinting it, recording the machine.

:func:`pin` fixes what can be fixed inside the process (torch's thread count, deterministic
algorithms); :func:`environment` records what cannot (library versions, the CPU and the kernel
class torch dispatches to); :func:`fingerprint` condenses tensors into a short SHA-256, so that two
trainings can be compared phase by phase (initial weights, clip bank, weights after the lookup
phase, final weights) without their files.
"""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata

import torch

#: CPU flags that select different float kernels (torch's dispatch, oneDNN, MKL, x264's assembly)
KERNEL_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "amx_tile", "amx_bf16")  # fmt: skip
#: environment variables that change which kernels run or how many threads split them
KERNEL_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA",
              "MKL_ENABLE_INSTRUCTIONS", "OMP_DYNAMIC", "MKL_DYNAMIC")  # fmt: skip
PACKAGES = ("torch", "numpy", "transformers", "tokenizers", "av", "safetensors")


def pin(threads: int | None) -> None:
    """Fix torch's intra-op thread count (when given; a reduction split over another count of
    threads adds in another order) and make it refuse non-deterministic kernels."""
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """The first 16 hex digits of the SHA-256 of ``tensors`` (names sorted; name, dtype, shape and
    bytes of each): equal fingerprints mean bit-identical tensors."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def cpu_facts() -> dict:
    """``{"model": ..., "flags": [the KERNEL_FLAGS present], "logical_cpus": n}`` from /proc/cpuinfo
    (Linux; elsewhere the model from :mod:`platform` and no flags)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if flags and model:
                    break
    except OSError:
        pass
    return {"model": model, "flags": [f for f in KERNEL_FLAGS if f in flags], "logical_cpus": os.cpu_count()}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    try:
        import av

        out["ffmpeg_libavcodec"] = str(av.library_versions.get("libavcodec", ""))
    except ImportError:
        pass
    return out


def environment() -> dict:
    """What the run's numbers depend on beyond its command: versions, threads, the CPU and torch's
    kernel class (``torch.backends.cpu.get_cpu_capability()``), the kernel-choosing environment."""
    return {
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu": cpu_facts(),
        "env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
        "platform": platform.platform(terse=True),
    }
