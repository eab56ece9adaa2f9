#!/usr/bin/env bash
# The README's main-job command: set up (or reuse) .venv, then run the embedded default end to
# end through lmms-eval on synthetic clips, offline. Output: results/demo/ (results + samples).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
py="${LMMS_STTM_VENV:-$root/.venv}/bin/python"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out="${LMMS_STTM_DEMO_OUT:-$root/results/demo}"
rm -rf "$out/oracle"
"$py" -m lmms_eval --model sttm_oracle --tasks synthetic_needle_sttm --batch_size 1 \
  --log_samples --output_path "$out/oracle" --verbosity WARNING
results=$(ls "$out"/oracle/*_results.json 2>/dev/null | head -1 || true)
if [ -z "$results" ]; then
  echo "[demo] lmms-eval wrote no results file: the run failed (rerun with --verbosity DEBUG)" >&2
  exit 1
fi
"$py" - "$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for task, m in r["results"].items():
    print(f"[demo] {r['config']['model']:>14} {task}: sttm_acc = {m['sttm_acc,none']:.1f} ({r['n-samples'][task]['effective']} questions)")
print(f"[demo] results: {sys.argv[1]}")
PY
