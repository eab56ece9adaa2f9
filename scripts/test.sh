#!/usr/bin/env bash
# The README's test command: set up (or reuse) .venv, lint, run the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh || { echo "[test] setup failed" >&2; exit 1; }
# The report's HTML is checked in a real headless browser (Debian's chromium), installed here when
# that needs no password (root, or sudo without one). Under CI=true it is required; elsewhere the
# browser test skips with one line saying how to enable it.
if ! bash scripts/setup_browser.sh >/dev/null 2>"${TMPDIR:-/tmp}/lmms_sttm_browser.log"; then
  if [ "${CI:-}" = "true" ]; then
    cat "${TMPDIR:-/tmp}/lmms_sttm_browser.log" >&2
    echo "[test] CI=true: installing chromium failed" >&2
    exit 1
  fi
  echo "[test] no chromium (not installable without asking): the browser test will skip; enable it with: sudo bash scripts/setup_browser.sh" >&2
fi
py="${LMMS_STTM_VENV:-$root/.venv}/bin/python"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$py" -m ruff check . || { echo "[test] ruff found problems" >&2; exit 1; }
"$py" -m ruff format --check . || { echo "[test] ruff format: files need formatting" >&2; exit 1; }
start=$(date +%s)
"$py" -m pytest -p no:cacheprovider --durations=15 "$@"
rc=$?
echo "[test] pytest exit code $rc after $(( $(date +%s) - start )) s" >&2
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
