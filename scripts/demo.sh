#!/usr/bin/env bash
# The main job on the bundled examples: compile every spec for the CPU with
# sattn's own lowering, run the kernel on seeded random inputs, check it
# against the reference, and print one row per spec. Specs run at their own
# shape, except that a sequence length left to run time (seq=?) is 1024 and
# one above 2048 is cut to 2048 so that the reference (double precision,
# one row at a time) stays within seconds. The real-data example (ocr.sattn)
# also runs on the PP-OCRv4 tensors in ../shared/data.
set -euo pipefail
build=${1:-build}
bin=$build/bin
data=$(dirname "$0")/../../shared/data/ocr-attn
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
status=0
for f in examples/*.sattn; do
  for n in $("$bin/sattnc" "$f" --emit=ast | awk '/^attention /{print $2}'); do
    ast=$("$bin/sattnc" "$f" --emit=ast --kernel "$n")
    pattern=$(echo "$ast" | awk 'NR>5{sub(/^  /,""); sub(/ dilation 1$/,""); printf "%s%s", sep, $0; sep="; "}')
    seq=$(echo "$ast" | awk '/^  shape/{for(i=2;i<=NF;i++) if ($i ~ /^seq=/) {sub(/seq=/,"",$i); print $i}}')
    if [ "$seq" = "?" ]; then seq=1024; elif [ "$seq" -gt 2048 ]; then seq=2048; fi
    if ! "$bin/sattn-run" "$f" --kernel "$n" --seq "$seq" --seed 1 --json |
      PATTERN="${pattern:-dense}" FILE="$(basename "$f")" python3 -c '
import json, os, sys
r = json.loads(sys.stdin.read())
print("\t".join([os.environ["FILE"], r["kernel"], "%dx%dx%dx%d" % (r["batch"], r["heads"], r["seq"], r["head_dim"]),
                 r["storage"], os.environ["PATTERN"][:60], "%.4f" % r["kept_fraction"], "%.1e" % r["rel_error"],
                 "%.1f" % (1e3 * r["kernel_s"]), "%.0f" % (1e3 * r["reference_s"]), "ok" if r["ok"] else "FAILED"]))
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
                 "%.1e" % r["rel_error"], "%.1f" % (1e3 * r["kernel_s"]), "%.0f" % (1e3 * r["reference_s"]),
                 "ok" if r["ok"] else "FAILED"]))
' >> "$rows" || status=1
done
python3 - "$rows" <<'PY'
import sys
head = ["file", "spec", "BxHxSxD", "input", "pattern", "kept", "rel.err", "kernel ms", "ref ms", ""]
rows = [head] + [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
w = [max(len(r[i]) for r in rows) for i in range(len(head))]
for r in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
PY
echo "kept: fraction of (batch, head, query, key) scores that reach softmax; rel.err: relative"
echo "Frobenius error of the CPU kernel against the reference (double); times: one run, this machine."
exit $status
