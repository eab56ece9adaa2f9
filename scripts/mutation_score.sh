#!/usr/bin/env bash
# Mutation score of the core modules (not part of CI; minutes per module on 2 cores). mutmut, pinned
# in requirements-dev.lock, is installed into .mutation/site (git-ignored), outside .venv, which
# must stay equal to requirements.lock; it runs with that folder on PYTHONPATH.
# Usage: bash scripts/mutation_score.sh [--sample N] [--seconds S] [--jobs J] [--seed K] [module ...]
#   e.g. bash scripts/mutation_score.sh merging/groups      (modules: see scripts/mutation_score.py)
# Prints JSON per module: killed, survived, timed out, ... (see scripts/mutation_score.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh >&2
py="${LMMS_STTM_VENV:-$root/.venv}/bin/python"
site="$root/.mutation/site"
stamp="$site/.dev_lock_stamp"
want="$(sha256sum requirements-dev.lock | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$site"
  grep -E '==' requirements-dev.lock | sed -E 's/[[:space:]]+#.*$//' > "$root/.mutation/dev-lock.txt"
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps --target "$site" \
    -r "$root/.mutation/dev-lock.txt" >&2
  echo "$want" > "$stamp"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$py" scripts/mutation_score.py "$@"
