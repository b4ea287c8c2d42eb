#!/usr/bin/env bash
# The CPU benchmark: compiled sattn kernels against OpenBLAS, oneDNN, a naive
# loop and (when it can be installed from PyPI) PyTorch's CPU SDPA and
# FlexAttention, in one run, on this machine. Installs what it needs
# (scripts/deps.sh bench; torch into .venv-bench), builds, and writes
# bench/results/cpu.json, torch-cpu.json, cpu.txt and cpu-time.svg, then
# bench/ratio_check.sh's alternated rounds into ratio-check.txt.
# usage: bench/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build sattn-bench >/dev/null
out=bench/results
mkdir -p "$out"
seqs=1024,2048,4096
long=1024,2048,4096,8192,16384
reps=5
if [ "${1:-}" = --quick ]; then seqs=1024; long=1024,2048; reps=3; fi
# Debian's OpenBLAS 0.3.21 picks an SSE kernel on CPUs it does not know;
# SkylakeX is its AVX-512 kernel.
export OPENBLAS_CORETYPE=SkylakeX
{
  echo "# bench/run.sh $*   ($(date -u +%Y-%m-%dT%H:%MZ))"
  build/bin/sattn-bench bench/specs.sattn --kernel dense --seq "$seqs" --threads 1,2 --reps "$reps" --baselines \
    --json "$out/cpu-dense.json"
  build/bin/sattn-bench bench/specs.sattn --kernel causal --seq "$long" --threads 1,2 --reps "$reps" --json "$out/cpu-causal.json"
  build/bin/sattn-bench bench/specs.sattn --kernel window512 --seq "$long" --threads 1,2 --reps "$reps" --json "$out/cpu-window.json"
  for k in nm_2of4 nm_1of4 filter10 dsa10; do
    build/bin/sattn-bench bench/specs.sattn --kernel "$k" --seq "$seqs" --threads 2 --reps 3 --json "$out/cpu-$k.json"
  done
} | tee "$out/cpu.txt"
# PyTorch from PyPI (CUDA wheels: large, but they run on the CPU)
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench && .venv-bench/bin/pip install -q torch numpy || echo "torch: could not install" >&2
fi
if .venv-bench/bin/python -c "import torch" 2>/dev/null; then
  .venv-bench/bin/python bench/torch_sdpa.py "$out/torch-cpu.json" "$seqs" 1,2 "$reps" | tee -a "$out/cpu.txt"
fi
python3 bench/plot_bench.py "$out"
# the seq-4096 ratios again, in alternated rounds that the machine's drift does not bias
if [ "${1:-}" != --quick ]; then bench/ratio_check.sh 3; fi
