#!/usr/bin/env bash
# The main job on the bundled examples: compile every spec for the CPU with
# sattn's own lowering, run the kernel on seeded random inputs, check it
# against the reference, and print one row per spec. Specs run at their own
# shape, except that a sequence length left to run time (seq=?) is 1024 and
# one above 3200 is cut to 2048 so that the reference (double precision,
# one row at a time) stays within seconds. The real-data example (ocr.sattn)
# also runs on the PP-OCRv4 tensors in ../shared/data. Each spec also runs
# on the accelerator model at the same shape (fp8 storage aside): cycles,
# time at its clock, DRAM bytes read and energy, next to the CPU kernel's time.
# And each spec is compiled to PTX for sm_90a (no GPU needed): the number of
# kernels it became, or '-' where the CUDA target refuses the spec.
set -euo pipefail
build=${1:-build}
bin=$build/bin
data=$(dirname "$0")/../../shared/data/ocr-attn
rows=$(mktemp)
stream=$(mktemp)
trap 'rm -f "$rows" "$stream"' EXIT
status=0
for f in examples/*.sattn; do
  for n in $("$bin/sattnc" "$f" --emit=ast | awk '/^attention /{print $2}'); do
    ast=$("$bin/sattnc" "$f" --emit=ast --kernel "$n")
    pattern=$(echo "$ast" | awk 'NR>5{sub(/^  /,""); sub(/ dilation 1$/,""); printf "%s%s", sep, $0; sep="; "}')
    seq=$(echo "$ast" | awk '/^  shape/{for(i=2;i<=NF;i++) if ($i ~ /^seq=/) {sub(/seq=/,"",$i); print $i}}')
    if [ "$seq" = "?" ]; then seq=1024; elif [ "$seq" -gt 3200 ]; then seq=2048; fi
    gpu=-
    if "$bin/sattnc" "$f" --kernel "$n" --target=cuda --arch=sm_90a --emit=ptx -o "$stream" 2>/dev/null; then
      gpu=$(grep -c '^.visible .entry' "$stream")
    fi
    accel="{}"
    if "$bin/sattnc" "$f" --kernel "$n" --target=accel --emit=accel --seq "$seq" -o "$stream" 2>/dev/null; then
      accel=$("$bin/sattn-accel" "$stream" --run --json) || status=1
    fi
    if ! "$bin/sattn-run" "$f" --kernel "$n" --seq "$seq" --seed 1 --json |
      PATTERN="${pattern:-dense}" FILE="$(basename "$f")" ACCEL="$accel" GPU="$gpu" python3 -c '
import json, os, sys
r = json.loads(sys.stdin.read())
a = json.loads(os.environ["ACCEL"])
acc = ["%d" % a["cycles"], "%.3f" % (1e3 * a["seconds"]), "%.1f" % (a["dram_read_bytes"] / 1e6),
       "%.0f" % (a["energy_pj"] / 1e6)] if a else ["-"] * 4
print("\t".join([os.environ["FILE"], r["kernel"], "%dx%dx%dx%d" % (r["batch"], r["heads"], r["seq"], r["head_dim"]),
                 r["storage"], os.environ["PATTERN"][:48], "%.4f" % r["kept_fraction"], "%.1e" % r["rel_error"],
                 "%.1f" % (1e3 * r["kernel_s"]), "%.0f" % (1e3 * r["reference_s"])] + acc + [os.environ["GPU"]] +
                ["ok" if r["ok"] else "FAILED"]))
' >> "$rows"; then
      status=1
    fi
  done
done
for set in "$data"/*.q.f32; do
  p=${set%.q.f32}
  "$bin/sattn-run" examples/ocr.sattn --q "$p.q.f32" --k "$p.k.f32" --v "$p.v.f32" --expect "$p.o.f32" --json |
    NAME="$(basename "$p")" python3 -c '
import json, os, sys
r = json.loads(sys.stdin.read())
print("\t".join(["ocr-attn (real)", os.environ["NAME"], "%dx%dx%dx%d" % (r["batch"], r["heads"], r["seq"], r["head_dim"]),
                 r["storage"], "dense, vs the model output: %.1e" % r["expected_rel_error"], "%.4f" % r["kept_fraction"],
                 "%.1e" % r["rel_error"], "%.1f" % (1e3 * r["kernel_s"]), "%.0f" % (1e3 * r["reference_s"])] +
                ["-"] * 5 + ["ok" if r["ok"] else "FAILED"]))
' >> "$rows" || status=1
done
python3 - "$rows" <<'PY'
import sys
head = ["file", "spec", "BxHxSxD", "input", "pattern", "kept", "rel.err", "cpu ms", "ref ms",
        "accel cycles", "accel ms", "DRAM MB", "uJ", "sm_90a", ""]
rows = [head] + [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
w = [max(len(r[i]) for r in rows) for i in range(len(head))]
for r in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
PY
echo "kept: fraction of (batch, head, query, key) scores that reach softmax; rel.err: relative"
echo "Frobenius error of the CPU kernel against the reference (double); cpu and ref ms: one run, this"
echo "machine. accel: the accelerator model (docs/accel-isa.md; 32x32 PEs, 1 GHz, compute only) on the"
echo "same shape: cycles, time, DRAM bytes read, energy (random inputs; '-': not run there). sm_90a: the"
echo "CUDA kernels the spec compiles to (PTX, not run here; '-': the CUDA target refuses it)."
exit $status
