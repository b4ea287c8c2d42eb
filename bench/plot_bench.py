"""Time against sequence length, one line per implementation and pattern
(2 threads), from bench/run.sh's JSON; plain SVG. Also prints the ratios
bench/README.md quotes. usage: plot_bench.py RESULTS_DIR"""
import glob
import json
import math
import os
import sys

d = sys.argv[1]
rows, meta = [], {}
for f in sorted(glob.glob(os.path.join(d, "cpu-*.json"))):
    j = json.load(open(f))
    meta = {k: v for k, v in j.items() if k != "results"}
    rows += j["results"]
tp = os.path.join(d, "torch-cpu.json")
if os.path.exists(tp):
    rows += json.load(open(tp))

series = {}
for r in rows:
    if r["threads"] != 2:
        continue
    key = ("sattn " + r["pattern"]) if r["impl"] == "sattn" else f'{r["impl"]} {r["pattern"]}'
    series.setdefault(key, []).append((r["seq"], r["median_ms"]))

W, H, L, B = 760, 480, 60, 40
seqs = sorted({s for v in series.values() for s, _ in v})
times = [t for v in series.values() for _, t in v]
if not seqs:
    sys.exit("no results")
x0, x1 = math.log2(min(seqs)), math.log2(max(seqs)) if len(seqs) > 1 else math.log2(min(seqs)) + 1
y0, y1 = math.floor(math.log10(min(times))), math.ceil(math.log10(max(times)))
px = lambda s: L + (W - L - 220) * (math.log2(s) - x0) / (x1 - x0)
py = lambda t: 20 + (H - 20 - B) * (y1 - math.log10(t)) / (y1 - y0)
palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22", "#000000", "#aec7e8", "#ff9896", "#98df8a"]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{L}" y="14">CPU attention, fp32, 16 heads, head_dim 64, 2 threads: median time (ms) against seq; '
       f'{meta.get("cpu", "")}</text>']
for e in range(y0, y1 + 1):
    y = py(10 ** e)
    svg.append(f'<line x1="{L}" x2="{W-220}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{L-6}" y="{y+4}" text-anchor="end">1e{e}</text>')
for s in seqs:
    svg.append(f'<text x="{px(s)}" y="{H-B+16}" text-anchor="middle">{s}</text>')
for n, (key, pts) in enumerate(sorted(series.items())):
    c = palette[n % len(palette)]
    pts.sort()
    dash = "" if key.startswith("sattn") else ' stroke-dasharray="5,3"'
    path = " ".join(f"{'M' if i == 0 else 'L'}{px(s):.1f},{py(t):.1f}" for i, (s, t) in enumerate(pts))
    svg.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
    for s, t in pts:
        svg.append(f'<circle cx="{px(s):.1f}" cy="{py(t):.1f}" r="3" fill="{c}"/>')
    svg.append(f'<line x1="{W-210}" x2="{W-190}" y1="{30+n*16}" y2="{30+n*16}" stroke="{c}" stroke-width="2"{dash}/>'
               f'<text x="{W-185}" y="{34+n*16}">{key}</text>')
svg.append("</svg>")
open(os.path.join(d, "cpu-time.svg"), "w").write("\n".join(svg))

def t(impl, pattern, seq, thr):
    for r in rows:
        if r["impl"] == impl and r["pattern"] == pattern and r["seq"] == seq and r["threads"] == thr:
            return r["median_ms"]
    return None

print("machine:", json.dumps(meta))
for seq in seqs:
    dense2 = t("sattn", "dense", seq, 2)
    if dense2 is None:
        continue
    line = [f"seq {seq}: sattn dense 2T {dense2:.1f} ms"]
    for impl, pat in (("onednn", "dense"), ("openblas", "dense"), ("torch-sdpa", "dense"), ("torch-flex", "dense")):
        b = t(impl, pat, seq, 2)
        if b:
            line.append(f"{impl} {b:.1f} ms ({b / dense2:.2f}x)")
    d1 = t("sattn", "dense", seq, 1)
    if d1:
        line.append(f"2T/1T {d1 / dense2:.2f}x")
    for pat in ("causal", "window 512", "nm 2:4", "filter x1", "predict"):
        p = t("sattn", pat, seq, 2)
        if p:
            line.append(f"{pat}: {dense2 / p:.2f}x our dense")
    print("; ".join(line))
for r in rows:
    if r["impl"] == "sattn" and r["threads"] == 2 and r["pattern"] == "dense":
        print(f'dense seq {r["seq"]}: {r["useful_gflops"]:.1f} GFLOP/s = {100*r["peak_fraction"]:.1f}% of the measured peak')
