"""Compare the distributions installed in a virtualenv with requirements.lock.

    python scripts/check_lock.py [--lock requirements.lock]   # exit 1 naming the first difference

Reads the ``*.dist-info`` folders of the running interpreter's own site-packages (not PYTHONPATH
entries), normalises names as PEP 503 does, and allows a local build tag on the installed version
(``torch 2.14.1+cpu`` matches ``torch==2.14.1``). ``pip`` (the venv's own) and this project are not in
the lock. Prints JSON: ``{"ok": bool, "installed": n, "locked": n, "differences": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOT_LOCKED = {"pip", "lmms-sttm"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` from ``name==version`` lines (comments ignored)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if match is None:
            raise ValueError(f"{path}: not an exact pin: {line!r}")
        pins[normalise(match[1])] = match[2]
    return pins


def installed() -> dict[str, str]:
    """``{normalised name: version}`` of the interpreter's own site-packages."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    found: dict[str, str] = {}
    for dist in metadata.distributions(path=paths):
        name = dist.metadata["Name"]
        if name:
            found[normalise(name)] = dist.version
    return found


def differences(lock: dict[str, str], have: dict[str, str]) -> list[str]:
    """Human-readable differences, sorted by package name."""
    out = []
    for name in sorted(set(lock) | set(have)):
        if name in NOT_LOCKED:
            continue
        want, got = lock.get(name), have.get(name)
        if got is None:
            out.append(f"{name}: locked {want}, not installed")
        elif want is None:
            out.append(f"{name}: installed {got}, not in the lock")
        elif got.split("+", 1)[0] != want:
            out.append(f"{name}: installed {got}, locked {want}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=REPO / "requirements.lock")
    parser.add_argument(
        "--print-extra", action="store_true", help="only list installed names not in the lock"
    )
    args = parser.parse_args(argv)
    lock, have = read_lock(args.lock), installed()
    if args.print_extra:
        print("\n".join(sorted(set(have) - set(lock) - NOT_LOCKED)))
        return 0
    diff = differences(lock, have)
    print(json.dumps({"ok": not diff, "installed": len(have), "locked": len(lock), "differences": diff}))
    if diff:
        print(
            f"[check_lock] environment differs from {args.lock.name}: {diff[0]}; run bash scripts/setup.sh",
            file=sys.stderr,
        )
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
