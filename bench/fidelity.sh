#!/usr/bin/env bash
# Fidelity of every approximate pattern against dense attention, on the
# three tiers of data: real (every folder under ../shared/data), the planted
# synthetic generator (strengths 2, 4, 6) and iid Gaussian Q/K.
# Writes bench/results/fidelity.json, fidelity.txt, fidelity.md and the
# plots fidelity-*.svg. usage: bench/fidelity.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=bench/results
mkdir -p "$out"
data=()
for d in ../shared/data/*/; do data+=(--data "$d"); done
cmd="$build/bin/sattn-eval ${data[*]} --synthetic 2,4,6 --gaussian --seq 512 --heads 4 --head-dim 64 --seed 1"
echo "# $cmd" > "$out/fidelity.txt"
$cmd --json "$out/fidelity.json" >> "$out/fidelity.txt"
python3 bench/plot_fidelity.py "$out/fidelity.json" "$out" "$cmd"
echo "wrote $out/fidelity.{json,txt,md} and $out/fidelity-*.svg"
