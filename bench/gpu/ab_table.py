#!/usr/bin/env python3
"""Summarizes gpu-ab.json (bench/gpu/run.sh's A/B of two compiler revisions):
per kernel, each variant's median time over its rounds and the ratio
base / ours (above 1: the newer revision is faster).
  ab_table.py gpu-ab.json"""
import json
import statistics
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    times = {}
    for r in rows:
        if r.get("ok", True):
            times.setdefault((r["kernel"], r["seq"]), {}).setdefault(r["variant"], []).append(r["ms"])
    revs = {r["variant"]: r.get("rev", "?")[:10] for r in rows}
    print(f"base {revs.get('bench-base')} against {revs.get('bench')}; medians of the rounds (ms)")
    print(f"{'kernel':16} {'seq':>6} {'base':>9} {'ours':>9} {'base/ours':>9}")
    for (kernel, seq), v in times.items():
        if "bench-base" in v and "bench" in v:
            b, o = statistics.median(v["bench-base"]), statistics.median(v["bench"])
            print(f"{kernel:16} {seq:>6} {b:9.3f} {o:9.3f} {b / o:9.3f}")


if __name__ == "__main__":
    main()
