#!/usr/bin/env bash
# The accelerator against the reference: every pattern of the CPU suite's
# spec file (test/cpu/Inputs/patterns.sattn), static and dynamic, through sattnc
# --target=accel, the loader and the executor (sattn-run --target=accel),
# at seq {1, 7, 64, 129, 1000} and head_dim {15, 32, 64, 80, 128}, batch 1
# and 2, GQA, bshd, fp16, bf16 and both fp8s, logits near 1e4, and a 16x8 array with
# 4 global PEs beside the default 32x32. Fresh random inputs each run; a
# failure prints the command with its seed.
# usage: coverage.sh BIN_DIR SPEC_FILE SMALL_CONFIG
set -u
bin=$1
specs=$2
small=$3
pass=0
fail=0
check() {
  local out
  if out=$("$bin/sattn-run" "$specs" --target=accel "$@" 2>&1); then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAILED: sattn-run $specs --target=accel $*"
    echo "$out"
  fi
}
seqs=(1 7 64 129 1000)
dims=(15 32 64 80 128)
i=0
kernels=(dense causal_gqa_bshd window_dilated window_global_edges window2d_text blocks_gaps bigbird_small
         nm_2of4 nm_3of7_causal filter_cascade filter_mean_neg predict_window spatten_cascade nm_filter_values
         fp16_causal bf16_in_fp32_out fp8e4m3_in fp8e5m2_nm)
for k in "${kernels[@]}"; do
  for n in 0 1 2 3 4; do
    check --kernel "$k" --seq "${seqs[n]}" --head-dim "${dims[(n + i) % 5]}" --batch $((1 + (n + i) % 2))
  done
  check --kernel "$k" --seq 130 --head-dim 24 --accel-config "$small"
  i=$((i + 1))
done
for k in dense causal_gqa_bshd window_global_edges nm_2of4 spatten_cascade; do
  check --kernel "$k" --seq 129 --input-scale 1000
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
