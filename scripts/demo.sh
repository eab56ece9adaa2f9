#!/usr/bin/env bash
# The README's main-job command: set up (or reuse) .venv, then run the embedded default end to end
# through lmms-eval (tiny LLaVA-Video checkpoint, synthetic VNBench-format clips, 2 CPU processes)
# and write the leaderboard to results/demo/. Offline; a few minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
exec "${LMMS_STTM_VENV:-$root/.venv}/bin/python" -m lmms_sttm.demo --out results/demo "$@"
