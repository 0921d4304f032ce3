#!/usr/bin/env bash
# benchmarks/gpu.py at real sizes on a lent GPU machine, as one prepared command.
#
#   benchmarks/gpu_device.sh wheels   # on this machine: fetch into .whl/ the Python 3.12 wheels the GPU
#                                     # image lacks (diffusers, pydantic and their needs; about 9 MB)
#   benchmarks/gpu_device.sh run      # on the GPU machine: install them, then SD-Turbo (with the
#                                     # torch.compile row) and SDXL-Turbo; tables and JSON go to $OUT
#
# With the device tool: run `benchmarks/gpu_device.sh wheels` here, then
#   run(command="bash benchmarks/gpu_device.sh run", carry=[".whl"], timeout_s=540)
# and copy the tables from $OUT/gpu-*.txt into README.md with the date and the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(diffusers==0.42.1 pydantic==2.13.4 pydantic_core==2.46.4 typing-inspection==0.4.2 annotated-types==0.7.0
        importlib_metadata==10.2.0)

case "${1:-}" in
  wheels)
    grep -qx '/.whl/' "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null \
      || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
    mkdir -p .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "${WHEELS[@]}"
    ls -l .whl
    ;;
  run)
    out="${OUT:-benchmarks/out}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
    python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
    date -u +%Y-%m-%d | tee -a "$out/gpu.txt"
    # SD-Turbo first (the goal's model), with torch.compile measured; then SDXL-Turbo without it.
    timeout 330 python3 benchmarks/gpu.py --real --compile --json "$out/gpu-sd_turbo.json" 2>&1 | tee "$out/gpu-sd_turbo.txt" || echo "sd_turbo: exit $?"
    timeout 150 python3 benchmarks/gpu.py --real --model sdxl_turbo --json "$out/gpu-sdxl_turbo.json" 2>&1 \
      | tee "$out/gpu-sdxl_turbo.txt" || echo "sdxl_turbo: exit $?"
    ;;
  *)
    echo "usage: $0 wheels|run" >&2
    exit 2
    ;;
esac
