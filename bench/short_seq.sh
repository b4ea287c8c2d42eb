#!/usr/bin/env bash
# Short sequences at BERT-base's shape (bench/bert.sattn: fp32, batch 8 x 12
# heads, head_dim 64, seq 128, 384, 512, 2 threads): our dense against
# PyTorch's CPU SDPA, three alternated rounds. Run after bench/run.sh (it
# uses its build and .venv-bench). Writes bench/results/short-seq.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/short-seq.txt
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  echo "# bench/short_seq.sh   ($(date -u +%Y-%m-%dT%H:%MZ), at $(git rev-parse --short HEAD))"
  for r in 1 2 3; do
    echo "## round $r"
    build/bin/sattn-bench bench/bert.sattn --seq 128,384,512 --threads 2 --reps 20 | grep -E '^(sattn|cpu)'
    BATCH=8 HEADS=12 .venv-bench/bin/python bench/torch_sdpa.py "$tmp" 128,384,512 2 20 torch-sdpa:dense
  done
} | tee "$out"
