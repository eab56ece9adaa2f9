#!/usr/bin/env bash
# The README's main-job command: set up (or reuse) .venv, then run the model organism (a small
# LLaVA-Video-format model trained on procedural needle clips, committed under
# lmms_sttm/organism/weights) unreduced, with STTM and with every baseline through
# `accelerate launch -m lmms_eval` (2 CPU processes) on its held-out VNBench-format clips, and write
# the leaderboard into a fresh folder work_dirs/demo/out_<date>_<time> (printed); pass
# `--out results/demo` to refresh the committed output. Offline. Exits non-zero (with the failing
# run's last log lines) when a run leaves no results file. Extra arguments go to
# `python -m lmms_sttm.demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
exec "${LMMS_STTM_VENV:-$root/.venv}/bin/python" -m lmms_sttm.demo "$@"
