#!/usr/bin/env bash
# Set up a development environment and run the whole test suite (README's test command;
# .ci/run runs exactly this). Safe to rerun: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Python: a virtual environment with cleancut and its development extras.
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
# The build front end: tests/test_packaging.py builds the sdist and wheel as a user would.
.venv/bin/pip install -q --disable-pip-version-check build

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

# 4. A real clip for tests/test_video_real.py: OpenCV's sample vtest.avi, which Debian's
#    opencv-doc package ships (apt-get download needs no root). Taken out once into
#    .cache/realclip (never committed); without apt those tests skip with the reason.
clip=.cache/realclip/vtest.avi
if [ ! -f "$clip" ] && command -v apt-get >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -q opencv-doc >/dev/null 2>&1); then
    mkdir -p .cache/realclip
    dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb \
      | tar -xO ./usr/share/doc/opencv-doc/examples/data/vtest.avi > "$clip.part" \
      && mv "$clip.part" "$clip"
  else
    echo "note: apt-get download opencv-doc failed; the real-clip tests will skip" >&2
  fi
  rm -rf "$tmp" "$clip.part"
fi

# 5. The suite. The real model is fetched once into .cache/cleancut (CDN, else `npm pack`).
exec .venv/bin/python -m pytest "$@"
