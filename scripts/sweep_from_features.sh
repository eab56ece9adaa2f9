#!/usr/bin/env bash
# Recipe: every reduction method x budget on one feature set (two-stage evaluation).
#
#   1. extract the features once (resumable; skipped videos are those already written), unless the
#      authors' downloaded features are used (set SKIP_EXTRACT=1);
#   2. evaluate each setting from the features: no video decoding, no vision tower.
#
# Variables (defaults: LLaVA-Video-7B Video-Only on VideoMME, 8 GPUs):
#   MODEL PRETRAINED TASKS ROOT NPROC OUT EXTRA (more model_args, e.g. max_frames=64)
#   FEATURES_CKPT (the feature folder's checkpoint name when it differs from basename(PRETRAINED))
#   METHODS ("none sttm tome dycoke_stage1 fastv framefusion pool") BUDGETS ("50 30")
# Example (tiny, CPU):
#   MODEL=llava_video_sttm PRETRAINED=/tmp/tiny/llava_video TASKS=synthetic_needle_sttm NPROC=1 \
#   ROOT=/tmp/feats METHODS="none pool" BUDGETS="50" OUT=/tmp/sweep bash scripts/sweep_from_features.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${LMMS_STTM_VENV:-$root/.venv}/bin/python"
MODEL="${MODEL:-llava_video_sttm}"
PRETRAINED="${PRETRAINED:-lmms-lab/LLaVA-Video-7B-Qwen2-Video-Only}"
TASKS="${TASKS:-videomme_sttm}"
ROOT="${ROOT:-datasets}"
NPROC="${NPROC:-8}"
OUT="${OUT:-results/from_features/${MODEL}}"
EXTRA="${EXTRA:-}"
METHODS="${METHODS:-none sttm tome dycoke_stage1 fastv framefusion pool}"
BUDGETS="${BUDGETS-50 30}"
FEATURES="features=${ROOT}${FEATURES_CKPT:+,features_ckpt=${FEATURES_CKPT}}"

if [[ "${SKIP_EXTRACT:-0}" != 1 ]]; then
  "$PY" -m lmms_sttm.features extract --model "$MODEL" --pretrained "$PRETRAINED" --tasks "$TASKS" \
    --root "$ROOT" --num_processes "$NPROC" --output_path "$OUT/_extract" \
    --model_args "${FEATURES_CKPT:+features_ckpt=$FEATURES_CKPT,}${EXTRA}"
fi

run() {  # $1: setting name, $2: model_args of the setting
  local args="pretrained=${PRETRAINED},${FEATURES}${2:+,$2}${EXTRA:+,$EXTRA}"
  echo "== $1: $args"
  if [[ "$NPROC" -gt 1 ]]; then
    launch=("$PY" -m accelerate.commands.launch --num_processes "$NPROC" -m lmms_eval)
  else
    launch=("$PY" -m lmms_eval)
  fi
  "${launch[@]}" --model "$MODEL" --model_args "$args" --tasks "$TASKS" --batch_size 1 \
    --log_samples --output_path "$OUT/$1"
  ls "$OUT/$1"/**/*_results.json >/dev/null 2>&1 || ls "$OUT/$1"/*/*_results.json >/dev/null \
    || { echo "no results file for $1" >&2; exit 1; }
}

for method in $METHODS; do
  if [[ "$method" == none ]]; then
    run none "method=none"
  elif [[ -z "$BUDGETS" ]]; then
    run "$method" "method=$method"
  else
    for b in $BUDGETS; do run "${method}_${b}" "method=$method,budget=$b"; done
  fi
done
echo "sweep done: $OUT"
