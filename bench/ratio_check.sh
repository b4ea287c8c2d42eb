#!/usr/bin/env bash
# The seq-4096 ratios of bench/README.md's target table, measured so that
# the machine's drift (10% and more within minutes on this shared VM)
# cancels: each round times our dense, PyTorch's CPU SDPA on the same
# dense shape, and every other pattern back to back, and the rounds repeat.
# Run after bench/run.sh (it uses its build and .venv-bench). Writes
# bench/results/ratio-check.txt.
# usage: bench/ratio_check.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=bench/results/ratio-check.txt
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  echo "# bench/ratio_check.sh $rounds   ($(date -u +%Y-%m-%dT%H:%MZ), at $(git rev-parse --short HEAD))"
  for r in $(seq "$rounds"); do
    echo "## round $r"
    for k in dense causal window512 nm_2of4 nm_1of4 filter10 dsa10; do
      build/bin/sattn-bench bench/specs.sattn --kernel "$k" --seq 4096 --threads 2 --reps 5 | grep -E '^(sattn|cpu)'
    done
    if .venv-bench/bin/python -c "import torch" 2>/dev/null; then
      .venv-bench/bin/python bench/torch_sdpa.py "$tmp" 4096 2 5 torch-sdpa:dense
    fi
  done
} | tee "$out"
# per round: each pattern's time over our dense, and torch SDPA's over ours
python3 - "$out" <<'PY' | tee -a "$out"
import json, re, sys
rounds, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith("## round"):
        cur = {}
        rounds.append(cur)
    elif line.startswith("sattn") and cur is not None:
        f = line.split()
        cur[f[1]] = float(f[-5])
    elif line.startswith("{") and cur is not None:
        cur["torch-sdpa"] = json.loads(line)["median_ms"]
print("# ratios per round (our dense / pattern; torch SDPA / our dense)")
for i, r in enumerate(rounds, 1):
    d = r.get("dense")
    parts = [f"{k} {d / v:.2f}x" for k, v in r.items() if k not in ("dense", "torch-sdpa") and d]
    if "torch-sdpa" in r and d:
        parts.append(f"torch-sdpa {r['torch-sdpa'] / d:.2f}x")
    print(f"round {i}: dense {d:.1f} ms; " + "; ".join(parts))
PY
