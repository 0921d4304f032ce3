#!/usr/bin/env bash
# Install everything LessonForge needs on a Debian/Ubuntu machine: system packages with apt, then the
# Python packages into the project's own virtual environment (.venv), so the system Python (which
# Debian and Ubuntu mark "externally managed", PEP 668) is never touched.
#
#   PYTHON=/usr/bin/python3 bash scripts/setup.sh    # the interpreter the venv is made from (default python3)
#   VENV=.venv                                         # where the venv lives
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   # optional: where to take torch from (the CPU build)
#
# Safe to run again: with nothing changed (pyproject.toml, this script) it only checks the system
# packages and a stamp, and finishes in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.lessonforge-setup"
APT_PACKAGES=(ffmpeg espeak-ng libespeak-ng1 fonts-dejavu-core fonts-noto-core fonts-noto-cjk libraqm0 chromium
              python3-venv libreoffice-impress)
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)  # Node.js's own builds bring npm; Debian's is a package

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install these with your package manager: ${missing[*]}" >&2
  fi
fi

# The export tests run a real SCORM 1.2 runtime and check packages against the SCORM 1.2 schemas (npm).
if [ ! -f tests/js/node_modules/.package-lock.json ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
  echo "setup: installing the export tests' npm packages (tests/js)"
  (cd tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
    || { echo "setup: npm ci in tests/js failed" >&2; exit 1; }
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; install Python 3.11 or newer, or pass PYTHON=/path/to/python3" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup: LessonForge needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1). Pass PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# The stamp names what the venv was built from; the same inputs again mean there is nothing to do.
# (PYTHON matters only when the venv is made: to change the interpreter, remove $VENV first.)
key=$( { cat pyproject.toml constraints.txt scripts/setup.sh; echo "${TORCH_INDEX_URL:-}"; } | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ]; then
  echo "setup: up to date ($VENV)"
  exit 0
fi

use_uv=""
command -v uv >/dev/null 2>&1 && use_uv=1
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating the virtual environment $VENV from $PYTHON ($("$PYTHON" -V 2>&1))${use_uv:+ with uv}"
  if [ -n "$use_uv" ]; then
    uv venv -q --python "$PYTHON" "$VENV"
  elif ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "setup: $PYTHON cannot make a virtual environment; install python3-venv (apt install python3-venv)" >&2
    exit 1
  fi
fi
VPY="$VENV/bin/python"
pip_install() {
  if [ -n "$use_uv" ]; then uv pip install -q --python "$VPY" "$@"; else "$VPY" -m pip install -q "$@"; fi
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run_logged() {  # run quietly; on failure show what went wrong, without pip's routine notices
  if ! "$@" >"$log" 2>&1; then
    grep -v -E "^(WARNING: (Running pip|Location)|\[notice\])" "$log" >&2
    echo "setup: failed: $*" >&2
    exit 1
  fi
}
# Exact versions come from constraints.txt (the set the tests pass with; scripts/lock.py writes it).
# torch first, from TORCH_INDEX_URL when given, so nothing else pulls a different build.
TORCH=$(grep -E '^torch==' constraints.txt | cut -d= -f3)
if ! "$VPY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH' else 1)" 2>/dev/null; then
  echo "setup: installing torch $TORCH into $VENV"
  run_logged pip_install "torch==$TORCH" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
echo "setup: installing LessonForge with every extra (local models, offline voices, eval, Ray, ui, hosted, studio)" \
     "and the test tools into $VENV"
run_logged pip_install -e ".[dev]" -c constraints.txt
"$VPY" -c 'import lessonforge.agent.cli' || { echo "setup: LessonForge failed to import" >&2; exit 1; }
# The tests skip nothing that setup can install (a skip fails the run: tests/conftest.py); check the extras here.
"$VPY" -c 'import torch, diffusers, transformers, llguidance' || { echo "setup: the local extra failed to import" >&2; exit 1; }
"$VPY" -c 'import textstat, nltk' || { echo "setup: the eval extra failed to import" >&2; exit 1; }
"$VPY" -m ruff --version >/dev/null && "$VPY" -m mypy --version >/dev/null \
  || { echo "setup: ruff or mypy failed to start" >&2; exit 1; }
# The tests of the optional voices run only where these import: make sure they do here.
"$VPY" -c 'import piper, onnx, kokoro, misaki.en' || { echo "setup: the piper/kokoro extras failed to import" >&2; exit 1; }
"$VPY" -c 'import ray.serve, langgraph.checkpoint.postgres' || { echo "setup: the ray extra failed to import" >&2; exit 1; }
# The web page's tests (gradio_client, Playwright driving Debian's Chromium) run only where these import.
"$VPY" -c 'import gradio, gradio_client, playwright' || { echo "setup: the ui extra or playwright failed to import" >&2; exit 1; }
echo "$key" >"$STAMP"
echo "setup: done; run lessonforge as $VENV/bin/lessonforge (or: source $VENV/bin/activate)"
