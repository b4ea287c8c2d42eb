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
    "$root/build/bin/sattnc" "$here/specs.sattn" --target=cuda --arch=$arch --emit=ptx -o "$out/bench.$arch.ptx"
  done
  echo "prepared: $(ls "$out")"
  ;;
gpu)
  build=${BUILD:-$root/build-gpu}
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLVM_ROOT=/nonexistent >/dev/null
  cmake --build "$build" --target sattn-gpu -j"$(nproc)" >/dev/null
  run="$build/bin/sattn-gpu"
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  arch=sm_80
  [ "$cc" -ge 90 ] && arch=sm_90a
  mkdir -p "$root/bench/results"
  stamp=$(date -u +%Y-%m-%dT%H:%MZ)
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  # Correctness: every pattern, odd lengths, one token, large logits.
  check="$root/bench/results/gpu-check.json"
  : > "$check"
  fails=0
  p="$root/test/cuda/Inputs/patterns.sattn"
  for k in dense_h64 causal_gqa_bf16 window_h64 causal_window_bshd ocr_h15 dense_h32 causal_h80 dense_h40 causal_h256 \
    dense_f32 causal_f32_h128 window_f32_h15 gqa_f32_h80 dense_f32_h256; do
    for s in 1 17 64 65 200 777 2049; do
      "$run" "$p" "$out/patterns.$arch.ptx" --kernel $k --seq $s --batch 2 --seed $RANDOM --json >> "$check" || fails=$((fails + 1))
    done
  done
  for k in dilated_h64 longformer_h64 bigbird_h64 vil_h64 blocks_h64; do
    "$run" "$p" "$out/patterns.$arch.ptx" --kernel $k --seed $RANDOM --json >> "$check" || fails=$((fails + 1))
  done
  "$run" "$p" "$out/patterns.$arch.ptx" --kernel dense_h64 --seq 300 --input-scale 30 --json >> "$check" || fails=$((fails + 1))
  echo "correctness: $(grep -c '"ok": true' "$check") ok, $fails failed ($check)"
  # Timings: ours, then PyTorch's on the same shapes, in one run.
  times="$root/bench/results/gpu-sattn.json"
  : > "$times"
  for s in 4096 8192 16384; do
    "$run" "$here/specs.sattn" "$out/bench.$arch.ptx" --seq $s --repeat 20 --json >> "$times" || true
  done
  python3 "$here/torch_baselines.py" --out "$root/bench/results/gpu-torch.json"
  python3 - "$times" "$root/bench/results/gpu-torch.json" "$root/bench/results/gpu.json" "$gpu" "$stamp" <<'PY'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
torch = json.load(open(sys.argv[2]))
rows = []
for o in ours:
    base = {t["impl"]: t["ms"] for t in torch["runs"] if t["kernel"] == o["kernel"] and t["seq"] == o["seq"]}
    rows.append({"kernel": o["kernel"], "seq": o["seq"], "sattn_ms": o["ms"], "sattn_tflops": o["tflops"],
                 **{k + "_ms": v for k, v in base.items()},
                 **{"speedup_vs_" + k: v / o["ms"] for k, v in base.items() if o["ms"] > 0}})
json.dump({"gpu": sys.argv[4], "date": sys.argv[5], "command": "bench/gpu/run.sh gpu",
           "torch": torch.get("torch"), "rows": rows}, open(sys.argv[3], "w"), indent=1)
print(json.dumps(rows, indent=1))
PY
  [ "$fails" -eq 0 ]
  ;;
*)
  sed -n '2,12p' "$0"
  exit 2
  ;;
esac
