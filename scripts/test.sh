#!/usr/bin/env bash
# Set up a development environment and run the whole test suite (README's test command;
# .ci/run runs exactly this). Safe to rerun: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Python: a virtual environment with cleancut and its development extras.
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

# 2. The quality harness's metrics (benchmarks/quality.py, tests/test_quality.py):
#    pysodmetrics pins numpy<2.3.5, opencv<5 and scikit-image<0.26, which would downgrade
#    the environment, yet it runs on the current versions (the test proves it); so its real
#    dependencies are installed and it is installed without its pins.
.venv/bin/pip install -q --disable-pip-version-check scipy scikit-image scikit-learn
.venv/bin/pip install -q --disable-pip-version-check --no-deps 'pysodmetrics>=1.6'

# 3. The browser tests drive Debian's Chromium (Playwright cannot download its own browser
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

# 4. The suite. The real model is fetched once into .cache/cleancut (CDN, else `npm pack`).
exec .venv/bin/python -m pytest "$@"
