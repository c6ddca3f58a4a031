#!/usr/bin/env bash
# Set up a development environment and run the whole test suite (README's test command;
# .ci/run runs exactly this). Safe to rerun: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Python: a virtual environment with cleancut and its development extras.
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

# 2. The browser tests drive Debian's Chromium (Playwright cannot download its own browser
#    here). Installed when missing and we may; otherwise those tests skip with the reason.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -q >/dev/null && sudo apt-get install -y -q chromium >/dev/null
  else
    echo "note: chromium is not installed and cannot be installed here; browser tests will skip" >&2
  fi
fi

# 3. The suite. The real model is fetched once into .cache/cleancut (CDN, else `npm pack`).
exec .venv/bin/python -m pytest "$@"
