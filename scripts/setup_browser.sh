#!/usr/bin/env bash
# Make a headless browser available for the report's HTML test (tests/report/test_browser.py):
# installs Debian's chromium when no `chromium` is on PATH. Idempotent and quiet; needs root
# (or sudo that asks no password: it never prompts) and the Debian apt sources. Prints the
# browser's path on success.
# Usage: bash scripts/setup_browser.sh
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    command -v chromium
    exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo_cmd=(sudo -n)
    else
        echo "setup_browser.sh: chromium is missing and installing it needs root (no password-less sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
    echo "setup_browser.sh: installing chromium with apt-get failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

if ! command -v chromium >/dev/null 2>&1; then
    echo "setup_browser.sh: apt-get installed chromium but no 'chromium' is on PATH" >&2
    exit 1
fi
command -v chromium
