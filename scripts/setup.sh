#!/usr/bin/env bash
# Create or reuse the project's virtualenv (.venv) and install lmms_sttm into it.
# torch and torchvision are installed first as a matching pair, pinned, so that no
# other requirement can pull a different (CUDA) torch.
# Usage: bash scripts/setup.sh   (idempotent; reinstalls only when pyproject.toml changed)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${LMMS_STTM_VENV:-$root/.venv}"
torch_pin="torch==2.14.1"
vision_pin="torchvision==0.29.1"
extras="${LMMS_STTM_EXTRAS:-dev,decord}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtualenv $venv" >&2
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.lmms_sttm_stamp"
want="$( (cat pyproject.toml; echo "$torch_pin $vision_pin $extras") | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] environment up to date ($venv)" >&2
  exit 0
fi
start=$(date +%s)
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "$torch_pin" "$vision_pin"
# The constraint file keeps the torch pair fixed while the rest resolves.
cons="$venv/.torch-constraints.txt"
printf '%s\n%s\n' "$torch_pin" "$vision_pin" > "$cons"
"$py" -m pip install --quiet -c "$cons" -e ".[$extras]"
echo "$want" > "$stamp"
echo "[setup] installed in $(( $(date +%s) - start )) s; venv size $(du -sh "$venv" | cut -f1)" >&2
