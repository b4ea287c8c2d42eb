#!/usr/bin/env bash
# The accelerator model on SALO's workloads (examples/salo.sattn) against
# SALO's own cycle model, and against dense attention of the same shapes on
# the same machine model. Writes bench/results/accel-salo.txt and .json.
# usage: bench/accel.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
bin=$build/bin
out=bench/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for k in longformer vil_stage1 vil_stage2; do
  "$bin/sattnc" examples/salo.sattn --kernel "$k" --target=accel --emit=accel -o "$tmp/$k.sacc"
  "$bin/sattn-accel" "$tmp/$k.sacc" --run --json > "$tmp/$k.json"
  # dense attention of the same shape: the spec without its pattern
  "$bin/sattnc" examples/salo.sattn --kernel "$k" --emit=ast |
    awk -v k="$k" 'NR==1{print "attention " k "_dense {"} /^  shape/{print} END{print "  pattern dense\n}"}' > "$tmp/$k-dense.sattn"
  "$bin/sattnc" "$tmp/$k-dense.sattn" --target=accel --emit=accel -o "$tmp/$k-dense.sacc"
  "$bin/sattn-accel" "$tmp/$k-dense.sacc" --run --json > "$tmp/$k-dense.json"
done
python3 - "$tmp" "$out" "bench/accel.sh $build" <<'PY'
import json, sys
tmp, out, cmd = sys.argv[1:4]
salo = {"longformer": 4030495, "vil_stage1": 771487, "vil_stage2": 196831}
rows, js = [], {"command": cmd, "salo_model_cycles": salo, "results": []}
for k in ("longformer", "vil_stage1", "vil_stage2"):
    r = json.load(open("%s/%s.json" % (tmp, k)))
    d = json.load(open("%s/%s-dense.json" % (tmp, k)))
    js["results"].append({"workload": k, "sparse": r, "dense": d})
    rows.append([k, "%d" % salo[k], "%d" % r["cycles"], "%.3f" % (r["cycles"] / salo[k]), "%d" % d["cycles"],
                 "%.1fx" % (d["cycles"] / r["cycles"]), "%.2f" % (r["dram_read_bytes"] / 1e6),
                 "%.2f" % (d["dram_read_bytes"] / 1e6), "%.1f" % (r["energy_pj"] / 1e6), "%.1f" % (d["energy_pj"] / 1e6)])
head = ["workload", "SALO model", "sattn", "ratio", "dense", "speedup", "DRAM MB", "dense MB", "uJ", "dense uJ"]
w = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
lines = ["# " + cmd, "# 32x32 PEs + 1 global row/column, 1 GHz, compute only (SALO's configuration);",
         "# cycles per attention layer (all heads); DRAM read with the default 512 KiB K/V buffer."]
lines += ["  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(x)) for x in [head] + rows]
open(out + "/accel-salo.txt", "w").write("\n".join(lines) + "\n")
json.dump(js, open(out + "/accel-salo.json", "w"), indent=1)
print("\n".join(lines))
PY
