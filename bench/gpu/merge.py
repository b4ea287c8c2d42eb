"""Joins our GPU timings (sattn-gpu --json lines) with PyTorch's (torch_baselines.py) into one table:
  merge.py OURS.json TORCH.json OUT.json GPU_NAME DATE
Each row has our time and TFLOP/s of useful work (ok: false when our kernel left an output unwritten or
non-finite: its time is then not a result), its fraction of the measured fp16 (or tf32) matrix-product
ceiling, and every baseline's time and its ratio to ours (above 1: ours is faster). A pattern kernel NAME_dD
(nm2of4_d64, window1024_d128, ...) also gets speedup_vs_our_dense: dense_dD's time over its own, same seq."""
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
try:
    torch = json.load(open(sys.argv[2]))
except Exception:
    torch = {"runs": []}
peak = torch.get("ceilings", {})
rows = []
ours_ms = {(o["kernel"], o["seq"]): o["ms"] for o in ours}
for o in ours:
    same = [t for t in torch["runs"] if t["kernel"] == o["kernel"] and t["seq"] == o["seq"]]
    base = {t["impl"]: t["ms"] for t in same}
    checks = {t["impl"] + "_rel_error_vs_math": t["rel_error_vs_math"] for t in same if "rel_error_vs_math" in t}
    ceiling = peak.get("matmul_tf32_tflops" if o["storage"] == "fp32" else "matmul_fp16_tflops")
    rows.append({"kernel": o["kernel"], "seq": o["seq"], "ok": o.get("ok", True), "sattn_ms": o["ms"],
                 "sattn_tflops": o["tflops"],
                 "fraction_of_matmul_peak": o["tflops"] / ceiling if ceiling else None,
                 **{k + "_ms": v for k, v in base.items()},
                 **{"speedup_vs_" + k: v / o["ms"] for k, v in base.items() if o["ms"] > 0}, **checks})
    name, _, dim = o["kernel"].rpartition("_d")
    dense = ours_ms.get(("dense_d" + dim, o["seq"]))
    if name and name != "dense" and dense and o["ms"] > 0:
        rows[-1]["speedup_vs_our_dense"] = dense / o["ms"]
json.dump({"gpu": sys.argv[4], "date": sys.argv[5], "command": "bench/gpu/run.sh gpu", "torch": torch.get("torch"),
           "ceilings": peak, "rows": rows}, open(sys.argv[3], "w"), indent=1)
print("ceilings:", {k: round(v, 1) for k, v in peak.items()})
impls = sorted({k[:-3] for r in rows for k in r if k.endswith("_ms") and k != "sattn_ms"})
print(f"{'kernel':16} {'seq':>6} {'ms':>8} {'TF/s':>6} {'peak':>5} {'/dense':>6} " + " ".join(f"{i:>11}" for i in impls))
for r in rows:
    print(f"{r['kernel'] + ('' if r['ok'] else ' BAD'):16} {r['seq']:>6} {r['sattn_ms']:8.3f} {r['sattn_tflops']:6.1f} "
          f"{(r['fraction_of_matmul_peak'] or 0):5.2f} {r.get('speedup_vs_our_dense', float('nan')):6.2f} "
          + " ".join(f"{r.get(i + '_ms', float('nan')):6.3f}/{r.get('speedup_vs_' + i, float('nan')):4.2f}" for i in impls))
