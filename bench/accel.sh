#!/usr/bin/env bash
# The accelerator model against the published systems' own figures:
#   SALO: cycles of its three workloads (examples/salo.sattn) against SALO's
#     cycle model, and against dense attention of the same shapes;
#   SpAtten: DRAM traffic of GPT-2 small's 12-layer pruning schedule against
#     dense fp32 attention, next to the reductions SpAtten reports;
#   Energon: compute and DRAM of two filter rounds (examples/energon.sattn)
#     against dense attention of the same shape.
# Writes bench/results/accel.txt and accel.json. Inputs are seeded Gaussians
# (sattn-accel --run): what depends on the data (SpAtten's requantization
# rate) is reported as measured on them.
# usage: bench/accel.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
bin=$build/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stream() { # stream NAME SPEC_FILE [KERNEL]: compile and run, JSON to $tmp/NAME.json
  "$bin/sattnc" "$2" ${3:+--kernel "$3"} --target=accel --emit=accel -o "$tmp/$1.sacc"
  "$bin/sattn-accel" "$tmp/$1.sacc" --run --json > "$tmp/$1.json"
}
dense_of() { # dense_of NAME SPEC_FILE KERNEL [causal]: the spec's shape with a dense (or causal) pattern
  "$bin/sattnc" "$2" --kernel "$3" --emit=ast |
    awk -v n="$1" -v p="${4:-dense}" 'NR==1{print "attention " n " {"} /^  shape/{print} END{print "  pattern " p "\n}"}' \
    > "$tmp/$1.sattn"
  stream "$1" "$tmp/$1.sattn"
}
for k in longformer vil_stage1 vil_stage2; do
  stream "$k" examples/salo.sattn "$k"
  dense_of "${k}_dense" examples/salo.sattn "$k"
done
# SpAtten, GPT-2 small on WikiText-2 (its trace): keys kept per layer, values
# 0.2 of the keys, K as 6 MSB + 4 LSB bits, requantization under 0.05.
keep=(0.9 0.7 0.2 0.2 0.2 0.2 0.1 0.1 0.1 0.1 0.1 0.1)
for l in "${!keep[@]}"; do
  printf 'attention gpt2_l%d {\n  shape heads=12 seq=1024 head_dim=64\n  pattern causal\n  prune tokens=%s values=0.2\n  progressive msb=6 lsb=4 threshold=0.05\n}\n' \
    "$l" "${keep[l]}" > "$tmp/gpt2_l$l.sattn"
  stream "gpt2_l$l" "$tmp/gpt2_l$l.sattn"
done
dense_of gpt2_dense "$tmp/gpt2_l0.sattn" gpt2_l0 causal
stream energon examples/energon.sattn
dense_of energon_dense examples/energon.sattn energon_bert
python3 - "$tmp" bench/results "bench/accel.sh $build" <<'PY'
import json, sys
tmp, out, cmd = sys.argv[1:4]
r = lambda n: json.load(open("%s/%s.json" % (tmp, n)))
cls = lambda j, c: j["classes"][c]
lines, js = ["# " + cmd, ""], {"command": cmd}

def table(head, rows):
    w = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
    return ["  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(x)) for x in [head] + rows]

salo = {"longformer": 4030495, "vil_stage1": 771487, "vil_stage2": 196831}
rows = []
for k in salo:
    a, d = r(k), r(k + "_dense")
    js.setdefault("salo", []).append({"workload": k, "salo_model_cycles": salo[k], "sattn": a, "dense": d})
    rows.append([k, "%d" % salo[k], "%d" % a["cycles"], "%.3f" % (a["cycles"] / salo[k]), "%d" % d["cycles"],
                 "%.1fx" % (d["cycles"] / a["cycles"]), "%.1f" % (a["energy_pj"] / 1e6), "%.1f" % (d["energy_pj"] / 1e6)])
lines += ["## SALO: cycles per attention layer (32x32 PEs + 1 global row/column, 1 GHz, compute only)", ""]
lines += table(["workload", "SALO model", "sattn", "ratio", "dense", "speedup", "uJ", "dense uJ"], rows) + [""]

S, D, H, L = 1024, 64, 12, 12
dense_kv = 2 * S * D * 4 * H  # K and V of one layer, fp32, each row read once
layers = [r("gpt2_l%d" % l) for l in range(L)]
k_bytes = sum(cls(j, "load")["dram_read_bytes"] for j in layers)  # K planes and V rows (the row engine's loads)
lines += ["## SpAtten: GPT-2 small, 12 layers, seq 1024, 12 heads, head_dim 64 (its WikiText-2 schedule)", ""]
rows = []
tot = {"kv": 0, "rows": 0, "req": 0}
for l, j in enumerate(layers):
    kv = cls(j, "load")["dram_read_bytes"] - S * D * 4 * H  # the load class also holds Q tiles: take them out
    tot["kv"] += kv
    tot["rows"] += j["engine_rows"]
    tot["req"] += j["requantized_rows"]
    rows.append(["L%d" % l, "%.1f" % (kv / 1e6), "%.1f" % (dense_kv / 1e6), "%.1fx" % (dense_kv / kv),
                 "%.0f%%" % (100.0 * j["requantized_rows"] / max(j["engine_rows"], 1)), "%d" % j["cycles"]])
rows.append(["all", "%.1f" % (tot["kv"] / 1e6), "%.1f" % (L * dense_kv / 1e6), "%.1fx" % (L * dense_kv / tot["kv"]),
             "%.0f%%" % (100.0 * tot["req"] / tot["rows"]), "%d" % sum(j["cycles"] for j in layers)])
lines += table(["layer", "K+V MB", "dense fp32 MB", "reduction", "requantized", "cycles"], rows)
gd = r("gpt2_dense")
lines += ["", "dense causal on the same machine model (its K/V buffer refetches): %.1f MB per layer" %
          ((cls(gd, "load")["dram_read_bytes"] - S * D * 4 * H) / 1e6),
          "SpAtten reports for this schedule: keys 3.62x, values 18.2x, K+V bytes 28.9x less than dense fp32,",
          "with K and V at 6 bits and 7% of rows requantized on real GPT-2 attention. Here V stays at its",
          "storage precision (fp32: the language has no V quantization) and the inputs are Gaussian, whose",
          "flat rows requantize far more often than real attention; the reduction above is what remains.", ""]
js["spatten"] = {"layers": layers, "dense_kv_bytes_per_layer": dense_kv, "kv_bytes": tot["kv"],
                 "reduction": L * dense_kv / tot["kv"], "requantized_fraction": tot["req"] / tot["rows"]}

e, ed = r("energon"), r("energon_dense")
lines += ["## Energon: BERT-base, seq 384, 12 heads; rounds 4x2-bit (mean threshold) then 4x4-bit (top 25%)", ""]
rows = [["sattn (2 rounds)", "%d" % e["macs"], "%d" % e["low_macs"], "%.2f" % (e["dram_read_bytes"] / 1e6),
         "%d" % e["cycles"], "%.1f" % (e["energy_pj"] / 1e6)],
        ["dense", "%d" % ed["macs"], "%d" % ed["low_macs"], "%.2f" % (ed["dram_read_bytes"] / 1e6),
         "%d" % ed["cycles"], "%.1f" % (ed["energy_pj"] / 1e6)],
        ["reduction", "%.1fx" % (ed["macs"] / e["macs"]), "-", "%.2fx" % (ed["dram_read_bytes"] / e["dram_read_bytes"]),
         "%.2fx" % (ed["cycles"] / e["cycles"]), "%.2fx" % (ed["energy_pj"] / e["energy_pj"])]]
lines += table(["", "full MACs", "low-bit MACs", "DRAM MB", "cycles", "uJ"], rows)
lines += ["", "Energon reports 8.7x over a V100 and 1.7x over SpAtten end to end, not a per-layer reduction",
          "to compare with; full-precision work falls with the survivors (about 1/8 of the keys here)."]
js["energon"] = {"sattn": e, "dense": ed}
open(out + "/accel.txt", "w").write("\n".join(lines) + "\n")
json.dump(js, open(out + "/accel.json", "w"), indent=1)
print("\n".join(lines))
PY
