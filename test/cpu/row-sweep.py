#!/usr/bin/env python3
"""Writes seeded random DSA prediction and filter-round specs and the
sattn-run arguments for each: the row path that selects a block of rows and
then attends their survivors together (16-key score blocks, key parts of at
most 1 MiB of K and V, lists written by the first stage), crossed with
keep rules, rounds, grouped kv heads, storage types, layouts, odd lengths
and head_dims (several key parts at the longer ones), block edges (192
rows), large logits and inputs off a 64-byte boundary. usage: row-sweep.py
DIR COUNT; prints one line per case: SPEC ARGS"""
import os
import random
import sys


def keep(r):
    return r.choice(["top %d%%" % r.choice([1, 5, 10, 30, 70]), "top %d" % r.choice([1, 3, 17, 40]), "mean+0.%d" % r.choice([0, 2, 5])])


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    for case in range(count):
        r = random.Random(1000 + case)
        heads = r.choice([1, 2, 4])
        kv = r.choice([h for h in (1, 2, 4) if heads % h == 0])
        dim = r.choice([15, 24, 33, 64, 80, 128, 256])
        if r.random() < 0.5:
            pattern = "predict dim=%d bits=%d keep=%s seed=%d" % (r.choice([d for d in (4, 12, 16, 40) if d <= dim]),
                                                               r.choice([2, 4, 8]), keep(r), case)
        else:
            rounds = "".join("    round bits=%d keep=%s\n" % (r.choice([2, 4, 6, 8]), keep(r))
                             for _ in range(r.choice([1, 1, 2])))
            pattern = "filter {\n%s  }" % rounds
        prec = r.choice(["", "  precision input=fp16 output=fp32\n", "  precision input=bf16 output=bf16\n"])
        layout = r.choice(["", "  layout bshd\n"])
        path = os.path.join(out, "row%d.sattn" % case)
        with open(path, "w") as f:
            f.write("attention row%d {\n  shape batch=? heads=%d kv_heads=%d seq=? head_dim=%d\n%s%s  pattern %s\n}\n"
                    % (case, heads, kv, dim, prec, layout, pattern))
        print(path, "--seq", r.choice([1, 2, 17, 191, 193, 400, 1100, 2200]), "--batch", r.choice([1, 2]),
              "--input-scale", r.choice([1, 1, 30]), "--seed", case, "--misalign", r.choice([0, 0, 4, 36]))


if __name__ == "__main__":
    main()
