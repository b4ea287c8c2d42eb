#!/usr/bin/env bash
# Dense in fp32, fp16 and bf16 storage (bench/storage.sattn), compiled ahead
# of time and timed by bench/aot_time.c in alternated rounds, seq 4096, the
# runtime's default threads: what half-precision storage costs against f32.
# Run after make build. Writes bench/results/storage.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/storage.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rt=$(find build -name libsattn_runtime.a | head -1)
elem=(0 1 2)
kernels=(dense_f32 dense_f16 dense_bf16)
for i in 0 1 2; do
  k=${kernels[i]}
  build/bin/sattnc bench/storage.sattn --kernel "$k" --emit=obj -o "$tmp/$k.o"
  build/bin/sattnc bench/storage.sattn --kernel "$k" --emit=header -o "$tmp/kernel.h"
  cc -O2 -I"$tmp" -DKNAME="$k" -DELEM="${elem[i]}" bench/aot_time.c "$tmp/$k.o" "$rt" -lpthread -lm -o "$tmp/$k"
done
{
  echo "# bench/storage.sh   ($(date -u +%Y-%m-%dT%H:%MZ), at $(git rev-parse --short HEAD)); median ms of 5 calls, seq 4096"
  echo "round fp32 fp16 bf16"
  for r in 1 2 3; do
    echo "$r $("$tmp/dense_f32" 4096 5) $("$tmp/dense_f16" 4096 5) $("$tmp/dense_bf16" 4096 5)"
  done
} | tee "$out"
