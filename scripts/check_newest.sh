#!/usr/bin/env bash
# Currency check: does the non-e2e suite pass on the newest releases of the libraries we fence?
# Installs the newest transformers, lmms-eval, accelerate, datasets and filelock (plus whatever
# they need newer than the lock) into a throwaway folder put ahead of the locked venv on
# PYTHONPATH, runs `pytest -m "not e2e"` and prints JSON: versions, passed, failed, the first
# failing test per module. The venv and requirements.lock are not touched; CI stays on the lock.
# Run it before moving the lock or a fence (scripts/lock.sh).
# Usage: bash scripts/check_newest.sh [pytest args]
#   PACKAGES="transformers==5.25.0" bash scripts/check_newest.sh   # one chosen version instead
#   KEEP=DIR keeps the installed folder in DIR (reused when it exists).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${LMMS_STTM_VENV:-$root/.venv}/bin/python"
[ -x "$py" ] || bash scripts/setup.sh || { echo "[check_newest] setup failed" >&2; exit 1; }
packages="${PACKAGES:-transformers lmms-eval accelerate datasets filelock}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
target="${KEEP:-$work/site}"
mkdir -p "$target"
pip_target() { "$py" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target "$target" "$@"; }

if [ ! -f "$target/.installed" ]; then
  # shellcheck disable=SC2086
  pip_target $packages || { echo "[check_newest] installing $packages failed" >&2; exit 1; }
  # Requirements of the new versions that the locked venv does not satisfy (3 rounds at most).
  for _ in 1 2 3; do
    missing="$(PYTHONPATH="$target" "$py" - "$target" <<'EOF'
import importlib.metadata as md
import sys

from packaging.requirements import Requirement

target = sys.argv[1]
unmet = set()
for dist in md.distributions(path=[target]):
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            unmet.add(f"{req.name}{req.specifier}")
print(" ".join(sorted(unmet)))
EOF
)"
    [ -z "$missing" ] && break
    echo "[check_newest] also installing: $missing" >&2
    # shellcheck disable=SC2086
    pip_target $missing || { echo "[check_newest] installing $missing failed" >&2; exit 1; }
  done
  touch "$target/.installed"
fi

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$target:$root${PYTHONPATH:+:$PYTHONPATH}"
# The pin test checks the locked venv against the lock; here the versions differ on purpose.
lock_test="tests/unit/test_packaging.py::test_installed_versions_satisfy_the_fenced_pins"
"$py" -m pytest -p no:cacheprovider -q -m "not e2e" --deselect "$lock_test" \
  --junitxml "$work/junit.xml" "$@" >"$work/pytest.log" 2>&1
rc=$?
tail -n 5 "$work/pytest.log" >&2

PACKAGES_CHECKED="$packages" LOCK_TEST="$lock_test" RC="$rc" "$py" - "$work/junit.xml" "$target" <<'EOF'
import importlib.metadata as md
import json
import os
import sys
import xml.etree.ElementTree as ET

junit, target = sys.argv[1], sys.argv[2]
counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
first_failure = {}
if os.path.exists(junit):
    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        cut = next((i for i in range(len(parts), 0, -1) if os.path.isfile("/".join(parts[:i]) + ".py")), 1)
        module = "/".join(parts[:cut]) + ".py"
        test = f"{module}::{case.get('name')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            first_failure.setdefault(module, test)
        elif case.find("error") is not None:
            counts["errors"] += 1
            first_failure.setdefault(module, test)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
names = ["transformers", "lmms_eval", "accelerate", "datasets", "filelock", "torch"]
newer = sorted(d.metadata["Name"] for d in md.distributions(path=[target]))
print(json.dumps({
    "installed_ahead_of_venv": os.environ["PACKAGES_CHECKED"],
    "versions": {n: md.version(n) for n in names},
    "also_installed": newer,
    "pytest_exit_code": int(os.environ["RC"]),
    **counts,
    "deselected": [os.environ["LOCK_TEST"]],
    "first_failing_test_per_module": first_failure,
}, indent=2))
EOF
exit "$rc"
