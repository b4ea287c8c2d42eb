#!/usr/bin/env bash
# The GPU correctness suite and benchmarks (docs/cuda.md), in two steps.
#
#   bench/gpu/run.sh prepare   on a machine with sattn built (make build):
#                              compiles the test and benchmark specs to PTX
#                              for sm_80 and sm_90a into bench/gpu/out/
#   bench/gpu/run.sh gpu       on the GPU machine (CUDA driver, CMake, a C
#                              compiler, PyTorch; no LLVM): builds the
#                              runtime-only runner, checks every pattern
#                              against the reference, times our kernels and
#                              PyTorch's SDPA and FlexAttention on the same
#                              shapes, and writes bench/results/gpu-*.json
#                              (or $RESULTS/gpu-*.json); TORCH_DEADLINE=S
#                              starts no FlexAttention compilation after S s
#
# A/B of two compiler revisions: `BASE=REV bench/gpu/run.sh prepare` also
# builds revision REV in a temporary git worktree and compiles the same
# benchmark specs with it (bench-base.*.ptx); `gpu` then times both PTX
# files in alternating rounds on the same GPU (gpu-ab.json, gpu-ab.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$here/out
case "${1:-}" in
prepare)
  mkdir -p "$out"
  for arch in sm_80 sm_90a; do
    "$root/build/bin/sattnc" "$root/test/cuda/Inputs/patterns.sattn" --target=cuda --arch=$arch --emit=ptx \
      -o "$out/patterns.$arch.ptx"
    "$root/build/bin/sattnc" "$root/test/cuda/Inputs/select.sattn" --target=cuda --arch=$arch --emit=ptx \
      -o "$out/select.$arch.ptx"
    "$root/build/bin/sattnc" "$root/test/cuda/Inputs/prune.sattn" --target=cuda --arch=$arch --emit=ptx \
      -o "$out/prune.$arch.ptx"
    "$root/build/bin/sattnc" "$here/specs.sattn" --target=cuda --arch=$arch --emit=ptx -o "$out/bench.$arch.ptx"
  done
  # the real tensors travel with the PTX (../shared does not)
  data=${SATTN_DATA:-$root/../shared/data}
  if [ -d "$data/ocr-attn" ]; then
    mkdir -p "$out/ocr-attn"
    cp "$data"/ocr-attn/*.f32 "$out/ocr-attn/"
  fi
  if [ -n "${BASE:-}" ]; then
    wt=$(mktemp -d)
    git -C "$root" worktree add --detach "$wt" "$BASE" > /dev/null
    make -C "$wt" build > "$out/base-build.log" 2>&1 || { echo "building $BASE failed: $out/base-build.log"; exit 1; }
    for arch in sm_80 sm_90a; do
      "$wt/build/bin/sattnc" "$here/specs.sattn" --target=cuda --arch=$arch --emit=ptx -o "$out/bench-base.$arch.ptx"
    done
    git -C "$wt" rev-parse HEAD > "$out/bench-base.rev"
    git -C "$root" worktree remove --force "$wt"
  else
    rm -f "$out"/bench-base.*
  fi
  git -C "$root" rev-parse HEAD > "$out/bench.rev"
  # N:M groups full of exact ties (scores are small integers)
  mkdir -p "$out/ties"
  python3 "$here/int_inputs.py" "$out/ties/nm_2of4_h64" 12 203 64 1
  python3 "$here/int_inputs.py" "$out/ties/nm_1of4_window_h80" 8 203 80 2
  python3 "$here/int_inputs.py" "$out/ties/nm_5of8_f32_h256" 4 203 256 3
  python3 "$here/int_inputs.py" "$out/ties/nm_3of4_h64" 4 203 64 4
  python3 "$here/int_inputs.py" "$out/ties/nm_2of4_h256" 4 203 256 5
  echo "prepared: $(ls "$out")"
  ;;
gpu)
  # Everything lands in $results (bench/results, or $OUT on a lent machine
  # whose files come back from there); logs in $results/gpu-log.txt.
  results=${RESULTS:-$root/bench/results}
  mkdir -p "$results"
  log=$results/gpu-log.txt
  : > "$log"
  build=${BUILD:-$root/build-gpu}
  {
    nvidia-smi --query-gpu=name,driver_version,compute_cap,clocks.sm,clocks.max.sm,memory.total --format=csv
    nvcc --version | tail -1 || true
  } >> "$log" 2>&1
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLVM_ROOT=/nonexistent >> "$log" 2>&1
  cmake --build "$build" --target sattn-gpu -j"$(nproc)" >> "$log" 2>&1
  run="$build/bin/sattn-gpu"
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  arch=sm_80
  [ "$cc" -ge 90 ] && arch=sm_90a
  stamp=$(date -u +%Y-%m-%dT%H:%MZ)
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  p="$root/test/cuda/Inputs/patterns.sattn"
  # A first kernel alone; if it fails, the memory checker says where.
  if ! "$run" "$p" "$out/patterns.$arch.ptx" --kernel dense_h64 --seq 65 >> "$log" 2>&1; then
    echo "first kernel failed; compute-sanitizer:" >> "$log"
    timeout 120 compute-sanitizer --tool memcheck "$run" "$p" "$out/patterns.$arch.ptx" --kernel dense_h64 --seq 65 \
      2>&1 | head -60 >> "$log" || true
  fi
  # Correctness: every pattern, odd lengths, one token, large logits, the
  # real PP-OCRv4 tensors; one job per check, as many at once as cores
  # (the reference runs on the CPU).
  jobs=$(mktemp -d)
  trap 'rm -rf "$jobs"' EXIT
  n=0
  src="$p"; img="$out/patterns.$arch.ptx"
  add() { n=$((n + 1)); printf '%s %s %s\n' "$src" "$img" "$*" > "$jobs/$n.cmd"; }
  for k in dense_h64 causal_gqa_bf16 window_h64 causal_window_bshd ocr_h15 dense_h32 causal_h80 dense_h40 causal_h256 \
    dense_f32 causal_f32_h128 window_f32_h15 gqa_f32_h80 dense_f32_h256 \
    nm_2of4_h64 nm_1of2_causal_bf16 nm_1of4_window_h80 nm_5of8_f32_h256 nm_3of4_h64 nm_2of4_h256; do
    for s in 1 17 64 65 200 777; do add --kernel $k --seq $s --batch 2 --seed $RANDOM; done
    add --kernel $k --seq 2049 --batch 1 --seed $RANDOM
  done
  for k in dilated_h64 longformer_h64 bigbird_h64 vil_h64 blocks_h64; do add --kernel $k --seed $RANDOM; done
  add --kernel dense_h64 --seq 300 --input-scale 30
  add --kernel dense_f32 --seq 300 --input-scale 30
  add --kernel nm_2of4_h64 --seq 300 --input-scale 30
  add --kernel nm_1of4_window_h80 --seq 300 --input-scale 30
  for t in "$out"/ties/*.q.f32; do
    [ -e "$t" ] || continue
    b=${t%.q.f32}
    add --kernel "$(basename "$b")" --q $b.q.f32 --k $b.k.f32 --v $b.v.f32
  done
  # filter rounds and DSA prediction: three kernels on a workspace
  src="$root/test/cuda/Inputs/select.sattn"; img="$out/select.$arch.ptx"
  for k in dsa_gqa dsa_bf16_h80 filter_f32_h15 filter_window dsa_filter_h256 energon_mean mean_causal; do
    for s in 1 17 65 200 777; do add --kernel $k --seq $s --batch 2 --seed $RANDOM; done
    add --kernel $k --seq 2049 --batch 1 --seed $RANDOM
    add --kernel $k --seq 300 --input-scale 30 --seed $RANDOM
  done
  # SpAtten's pruning: three kernels, importance vectors in and out
  src="$root/test/cuda/Inputs/prune.sattn"; img="$out/prune.$arch.ptx"
  for k in sp_causal sp_heads_gqa sp_progressive_h15 sp_values_h256 sp_tokens_f32 sp_tokens_window sp_many_heads \
    sp_filter_values sp_dsa_progressive sp_filter_nm sp_tokens_nm sp_long_h16 sp_long_nm \
    sp_nm_progressive sp_filter_nm_progressive sp_long_nm_progressive sp_nm7 sp_nm16; do
    for s in 1 17 65 200 777; do add --kernel $k --seq $s --batch 2 --seed $RANDOM; done
    add --kernel $k --seq 1025 --batch 1 --seed $RANDOM
    add --kernel $k --seq 300 --input-scale 30 --seed $RANDOM
  done
  src="$p"; img="$out/patterns.$arch.ptx"
  for q in "$out"/ocr-attn/*.q.f32; do
    [ -e "$q" ] || continue
    b=${q%.q.f32}
    add --kernel ocr_h15 --q $b.q.f32 --k $b.k.f32 --v $b.v.f32 --expect $b.o.f32
  done
  seq 1 $n | xargs -P "$(nproc)" -I{} sh -c \
    "\"$run\" \$(cat $jobs/{}.cmd) --json > $jobs/{}.json 2> $jobs/{}.err; echo \$? > $jobs/{}.rc"
  check="$results/gpu-check.json"
  : > "$check"
  fails=0
  for i in $(seq 1 $n); do
    cat "$jobs/$i.json" >> "$check"
    if [ "$(cat "$jobs/$i.rc")" != 0 ]; then
      fails=$((fails + 1))
      { echo "FAILED: $(cat "$jobs/$i.cmd")"; cat "$jobs/$i.json" "$jobs/$i.err"; } >> "$log"
    fi
  done
  echo "correctness: $(grep -c '"ok": true' "$check") of $n ok, $fails failed" | tee -a "$log"
  # Timings: ours (no reference at these lengths), then PyTorch's on the
  # same shapes in the same run.
  times="$results/gpu-sattn.json"
  : > "$times"
  tfails=0
  for s in 4096 8192 16384; do
    "$run" "$here/specs.sattn" "$out/bench.$arch.ptx" --seq $s --repeat 20 --no-check --json >> "$times" 2>> "$log" ||
      tfails=$((tfails + 1))
  done
  [ "$tfails" -eq 0 ] || echo "timing: $tfails of 3 runs failed or wrote non-finite outputs (rows marked ok: false)" | tee -a "$log"

  # A/B: the base revision's kernels and ours, alternating, three rounds
  if [ -e "$out/bench-base.$arch.ptx" ]; then
    ab="$results/gpu-ab.json"
    : > "$ab"
    for round in 1 2 3; do
      for variant in bench-base bench; do
        if ! "$run" "$here/specs.sattn" "$out/$variant.$arch.ptx" --seq 8192 --repeat 20 --no-check --json \
          2>> "$log" > "$out/ab.lines"; then
          echo "A/B: $variant round $round failed or wrote non-finite outputs (rows marked ok: false)" | tee -a "$log"
        fi
        python3 -c 'import json, sys
for line in open(sys.argv[4]):
    if line.strip():
        print(json.dumps({"variant": sys.argv[1], "rev": sys.argv[2], "round": int(sys.argv[3]), **json.loads(line)}))' \
          "$variant" "$(cat "$out/$variant.rev")" "$round" "$out/ab.lines" >> "$ab"
      done
    done
    python3 "$here/ab_table.py" "$ab" | tee "$results/gpu-ab.txt"
  fi

  PYTHONUNBUFFERED=1 python3 "$here/torch_baselines.py" --out "$results/gpu-torch.json" \
    --deadline "${TORCH_DEADLINE:-1e9}" >> "$log" 2>&1 || echo "torch baselines failed" | tee -a "$log"
  python3 "$here/merge.py" "$times" "$results/gpu-torch.json" "$results/gpu.json" "$gpu" "$stamp" |
    tee "$results/gpu.txt"
  [ "$fails" -eq 0 ] && [ "$tfails" -eq 0 ]
  ;;
*)
  sed -n '2,12p' "$0"
  exit 2
  ;;
esac
