#!/usr/bin/env bash
# Install everything LessonForge needs on a Debian/Ubuntu machine: system packages, then Python packages.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
APT_PACKAGES=(ffmpeg espeak-ng libespeak-ng1 fonts-dejavu-core fonts-noto-core fonts-noto-cjk libraqm0 chromium)

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

# torch first, pinned, so nothing else pulls a different build.
if ! $PYTHON -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  echo "setup: installing torch 2.13.0"
  $PYTHON -m pip install -q torch==2.13.0
fi
echo "setup: installing LessonForge, its Python dependencies, the offline voices (piper, kokoro) and Ray"
log=$(mktemp)
if ! $PYTHON -m pip install -q -e ".[dev]" >"$log" 2>&1; then
  grep -v -E "^(WARNING: (Running pip|Location)|\[notice\])" "$log" >&2
  rm -f "$log"
  echo "setup: pip failed (above)" >&2
  exit 1
fi
rm -f "$log"
$PYTHON -c 'import agent.cli' || { echo "setup: LessonForge failed to import" >&2; exit 1; }
# The tests of the optional voices run only where these import: make sure they do here.
$PYTHON -c 'import piper, onnx, kokoro, misaki.en' || { echo "setup: the piper/kokoro extras failed to import" >&2; exit 1; }
$PYTHON -c 'import ray.serve, langgraph.checkpoint.postgres' || { echo "setup: the ray extra failed to import" >&2; exit 1; }
# The web page's tests (gradio_client, Playwright driving Debian's Chromium) run only where these import.
$PYTHON -c 'import gradio, gradio_client, playwright' || { echo "setup: the ui extra or playwright failed to import" >&2; exit 1; }
echo "setup: done"
