#!/usr/bin/env bash
# Runs every spec of a file through sattn-run (compiled CPU kernel against
# the reference) over the shapes the CPU back end promises: seq in
# {1, 7, 64, 129, 1000} and head_dim in {15, 32, 64, 80, 128}, batch 1 and 2,
# each spec's own heads (GQA where it has kv_heads), plus logits of about
# +-1e4 for a few. Inputs are fresh random ones each run; a failure prints
# the command with its seed so that it can be replayed.
# usage: coverage.sh BIN_DIR SPEC_FILE
set -u
bin=$1
specs=$2
pass=0
fail=0
check() {
  local out
  if out=$("$bin/sattn-run" "$specs" "$@" 2>&1); then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAILED: sattn-run $specs $*"
    echo "$out"
  fi
}
seqs=(1 7 64 129 1000)
dims=(15 32 64 80 128)
i=0
for k in $(awk '/^attention /{print $2}' "$specs"); do
  for n in 0 1 2 3 4; do
    check --kernel "$k" --seq "${seqs[n]}" --head-dim "${dims[(n + i) % 5]}" --batch $((1 + (n + i) % 2))
  done
  i=$((i + 1))
done
# Static patterns with the importance outputs asked for take the row kernel
# instead of the tiles; one thread and two must agree with the reference.
for k in dense causal_gqa_bshd window_global_edges blocks_gaps bigbird_small; do
  check --kernel "$k" --seq 129 --head-dim 32 --importance
  check --kernel "$k" --seq 200 --head-dim 64 --threads 1
done
# Logits of order 1e4: softmax must stay finite and exact after the shift.
for k in dense causal_gqa_bshd nm_2of4 window_global_edges; do
  check --kernel "$k" --seq 129 --input-scale 1000
done
# The selection stages' first scores run on vpdpbusd where the CPU has
# AVX512-VNNI, in f32 elsewhere; both must give the reference's selection
# (on a CPU without VNNI both runs take the f32 form).
for k in filter_cascade filter_mean_neg predict_window nm_filter_values; do
  check --kernel "$k" --seq 129 --head-dim 80 --cpu x86-64-v4
  check --kernel "$k" --seq 300 --head-dim 15 --cpu znver4
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
