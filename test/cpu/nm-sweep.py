#!/usr/bin/env python3
"""Writes seeded random N:M specs and the sattn-run arguments for each:
the ways the tile path ranks N:M (slot order for 1:2, 2:4, 1:4, 3:4,
natural order for 2:8 and 3:16; with no mask, causal, windows, their
intersection), attending the whole P tile or, at most half kept, the
packed P (straight from the ranking network in slot order, by
vpcompressd otherwise), crossed with layouts,
grouped kv heads, storage types, odd lengths and head_dims, large
logits and inputs off a 64-byte boundary. usage: nm-sweep.py DIR COUNT;
prints one line per case: SPEC ARGS"""
import os
import random
import sys


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    for case in range(count):
        r = random.Random(case)
        nm = r.choice(["1:2", "2:4", "1:4", "3:4", "2:8", "3:16", "1:8", "5:8", "1:16", "4:8", "7:8"])
        mask = r.choice(["", " and causal", " and window %d" % r.choice([3, 9, 33, 130]), " and causal and window 17"])
        heads = r.choice([1, 2, 4])
        kv = r.choice([h for h in (1, 2, 4) if heads % h == 0])
        dim = r.choice([15, 16, 24, 33, 64, 80, 128, 256])
        prec = r.choice(["", "  precision input=fp16 output=fp32\n", "  precision input=bf16 output=bf16\n"])
        layout = r.choice(["", "  layout bshd\n"])
        path = os.path.join(out, "nm%d.sattn" % case)
        with open(path, "w") as f:
            f.write("attention nm%d {\n  shape batch=? heads=%d kv_heads=%d seq=? head_dim=%d\n%s%s  pattern nm %s%s\n}\n"
                    % (case, heads, kv, dim, prec, layout, nm, mask))
        print(path, "--seq", r.choice([1, 5, 63, 64, 65, 127, 200]), "--batch", r.choice([1, 2]),
              "--input-scale", r.choice([1, 1, 30]), "--seed", case, "--misalign", r.choice([0, 0, 4, 36]))


if __name__ == "__main__":
    main()
