#!/usr/bin/env bash
# Create or reuse the project's virtualenv (.venv) and install exactly requirements.lock into it.
# The torch/torchvision pair is installed first, then every other locked distribution with
# --no-deps (the lock is complete: nothing is resolved here, so a new release elsewhere cannot
# change what a fresh machine gets), then lmms_sttm itself (editable), then `pip check`.
# Usage: bash scripts/setup.sh   (idempotent; reinstalls when the lock, pyproject.toml or this script change)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${LMMS_STTM_VENV:-$root/.venv}"
lock="$root/requirements.lock"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtualenv $venv" >&2
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.lmms_sttm_stamp"
want="$(cat requirements.lock pyproject.toml setup.py scripts/setup.sh scripts/check_lock.py | sha256sum | cut -d' ' -f1)"
# Up to date only when the stamp matches AND the installed set still equals the lock (a package
# changed by hand is put back by the install below).
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" scripts/check_lock.py >/dev/null 2>&1; then
  echo "[setup] environment up to date ($venv)" >&2
  exit 0
fi
start=$(date +%s)
pip_install() { "$py" -m pip install --quiet --disable-pip-version-check "$@"; }
torch_pair=$(grep -E '^(torch|torchvision)==' "$lock" | cut -d' ' -f1)
pip_install --no-deps $torch_pair
# Exact pins, no resolution (a hand-changed version is put back); extras are removed below.
grep -vE '^(torch|torchvision)==' "$lock" | sed -E 's/[[:space:]]+#.*$//' | grep -E '==' > "$venv/.lock-rest.txt"
pip_install --no-deps -r "$venv/.lock-rest.txt"
pip_install --no-deps --no-build-isolation -e .
extra=$("$py" scripts/check_lock.py --print-extra)
if [ -n "$extra" ]; then
  echo "[setup] removing distributions that are not in the lock: $(echo $extra)" >&2
  "$py" -m pip uninstall --quiet -y $extra
fi
"$py" -m pip check >&2 || { echo "[setup] pip check failed: the lock is inconsistent" >&2; exit 1; }
"$py" scripts/check_lock.py >/dev/null || { echo "[setup] the environment does not match requirements.lock" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] installed requirements.lock in $(( $(date +%s) - start )) s; venv size $(du -sh "$venv" | cut -f1)" >&2
