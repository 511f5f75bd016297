#!/usr/bin/env bash
# Runs mlxchat's benchmarks and clean-exit checks on the lent GPU machine (MLX's CUDA build).
# Prepare here first:  ../shared/tools/mlx-cuda-wheels.sh .gpu   and pure-Python wheels in .whl/ (see BENCHMARKS.md).
# Then two device calls: (1) carry .gpu/a: `mkdir -p /tmp/w && cp .gpu/a/* /tmp/w/`
#                        (2) carry .gpu/b and .whl: `bash benchmarks/gpu.sh`
set -uo pipefail
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/w
cat /tmp/w/cuda.part.aa .gpu/b/cuda.part.ab > /tmp/w/"$(cat .gpu/b/wheel-name)" && cp .gpu/b/*.whl .whl/*.whl /tmp/w/
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/w/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MLXCHAT_CACHE_DIR=/tmp/mlxchat-cache MLXCHAT_DATA_DIR=/tmp/mlxchat-data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import mlx.core as mx; print('mlx', mx.__version__, mx.default_device())" | tee -a "$out/gpu.txt"
python3 - <<'PY'
import time
from pathlib import Path
from mlxchat.models.random_weights import ONE_B, build_random_llama
start = time.perf_counter()
build_random_llama(Path("/tmp/random-1b-4bit"), ONE_B)
print(f"built random 1B 4-bit llama in {time.perf_counter() - start:.1f}s")
PY
du -sh /tmp/random-1b-4bit
python3 -m mlxchat.bench --model /tmp/random-1b-4bit --json "$out/gpu-engine-bench.json" 2>&1 | tee "$out/gpu-engine-bench.txt"
if [ -f mlxchat/bench/ui_bench.py ] && [ "${UI_BENCH:-1}" = 1 ]; then
  python3 -m mlxchat.bench.ui_bench --model /tmp/random-1b-4bit --json "$out/gpu-ui-bench.json" 2>&1 | tee "$out/gpu-ui-bench.txt"
fi
if [ "${CLEAN_EXIT:-1}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/engine/test_clean_exit.py 2>&1 | tail -5 | tee "$out/gpu-clean-exit.txt"
fi
python3 benchmarks/thread_overhead.py /tmp/random-1b-4bit 256 2>&1 | tee "$out/gpu-thread-overhead.txt"
