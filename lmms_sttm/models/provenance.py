"""What a run ran on: package versions, this package's commit, the device, threads, the command.

Each rank writes ``<stats_dir>/provenance_rank<r>.json`` when its model is built (next to its
statistics file); the leaderboard's ``runs.csv`` reads rank 0's. lmms-eval's own results file
records the git commit of the working directory under ``lmms_eval_version``, not lmms-eval's
version, and the ``python -m lmms_eval`` arguments, not the launcher that started them: this
record holds the installed versions and the launcher's command line as run (the parent process's
command line when it is ``accelerate launch`` or ``torchrun``, read from ``/proc``).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: distributions whose installed versions are recorded (``lmms-sttm`` is this package)
DISTRIBUTIONS = ("lmms-eval", "transformers", "torch", "accelerate", "lmms-sttm")
#: CPU flags reported as the vector extensions (x86 ``/proc/cpuinfo`` names, Arm ``Features``)
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16",
                "neon", "asimd", "sve", "sve2")  # fmt: skip
LAUNCHERS = ("accelerate", "torchrun", "torch.distributed.run", "accelerate.commands.launch")


def versions() -> dict[str, str | None]:
    out = {}
    for name in DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


#: the checkout's paths whose changes make a run's code differ from its commit (results/, docs/
#: and tests/ do not run; a run that refreshes committed results must not call itself dirty)
CODE_PATHS = ("lmms_sttm", "scripts", "pyproject.toml", "setup.py", "requirements.lock")


def package_commit(package_dir: Path | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout holding this package; ``(None, None)`` outside one.

    ``dirty``: a tracked file under :data:`CODE_PATHS` differs from the commit (untracked files
    do not count).
    """
    where = package_dir or Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return commit, (None if status is None else bool(status))


def cpu_description(cpuinfo: str | None = None) -> str:
    """``"<model name> (avx, avx2, fma, ...)"`` from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = None, set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    ext = [f for f in VECTOR_FLAGS if f in flags]
    return f"{model} ({', '.join(ext)})" if ext else model


def device_description(device) -> str:
    """The GPU model for a CUDA device, else the CPU model and its vector extensions."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
    cap = torch.backends.cpu.get_cpu_capability()
    return f"CPU: {cpu_description()}; torch kernels: {cap}"


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    return parts or None


def readable_command(argv: list[str]) -> str:
    """``argv`` as a shell line, the interpreter and console scripts by their base names (no machine paths)."""
    if not argv:
        return ""
    head = [os.path.basename(argv[0])]
    rest = list(argv[1:])
    if rest and os.path.basename(rest[0]) in ("accelerate", "torchrun", "lmms-eval", "lmms_eval"):
        head = [os.path.basename(rest.pop(0))]
    return shlex.join([*head, *rest])


def launcher_command(ppid: int | None = None) -> str | None:
    """The parent process's command line when it is a launcher (accelerate, torchrun), else None."""
    parent = _cmdline(os.getppid() if ppid is None else ppid)
    if not parent or not any(os.path.basename(p) in LAUNCHERS or p in LAUNCHERS for p in parent[:3]):
        return None
    return readable_command(parent)


def own_command() -> str:
    """This process's command line (``python -m lmms_eval ...`` when started with ``-m``)."""
    argv = _cmdline(os.getpid()) or [sys.executable, *sys.argv]
    return readable_command(argv)


def record(device, rank: int, world_size: int) -> dict:
    """The provenance record of this rank (see the module docstring)."""
    import torch

    commit, dirty = package_commit()
    launcher = launcher_command()
    return {
        "versions": versions(),
        "lmms_sttm_commit": commit,
        "lmms_sttm_dirty": dirty,
        "python": platform.python_version(),
        "device": device_description(device),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "rank": rank,
        "world_size": world_size,
        "command": launcher or own_command(),
        "process_command": own_command(),
    }


def write(stats_dir: str | None, device, rank: int, world_size: int) -> Path | None:
    """Write this rank's record into ``stats_dir`` (nothing without one); returns the path."""
    if not stats_dir:
        return None
    path = Path(stats_dir) / f"provenance_rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record(device, rank, world_size), indent=1, sort_keys=True) + "\n")
    return path
