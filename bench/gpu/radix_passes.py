#!/usr/bin/env python3
"""How many radix passes the select kernel's top-k makes (codegen/cuda/select.c,
radix_narrow), by a model of its passes in numpy: DSA's 4-bit grids of a
16-column random projection of standard-normal rows (head_dim 64), scores
((scale step_q) step_k) dot in f64, mapped to order keys; the top 10% of a
row; passes until at most 32 keys share the k-th key's leading digits. The
first digit is 8 or 11 bits, the later ones 8. Prints the mean pass count
over rows for each sequence length and first-digit width.
  radix_passes.py [ROWS]   (needs numpy)"""
import sys

import numpy as np


def order_keys(x):
    b = x.view(np.uint64).copy()
    neg = (b >> np.uint64(63)) == 1
    b[neg] = ~b[neg]
    b[~neg] |= np.uint64(1 << 63)
    return b


def passes(keys, want, first):
    prefix, pmask, left, n = 0, 0, len(keys), 0
    steps = [(first, 64 - first)] + [(8, max(64 - first - 8 * p, 0)) for p in range(1, 8)]
    for width, shift in steps:
        if left <= 32:
            break
        match = (keys & np.uint64(pmask)) == np.uint64(prefix)
        digits = ((keys[match] >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        hist = np.bincount(digits, minlength=1 << width)[::-1]
        run = np.cumsum(hist)
        i = int(np.searchsorted(run, want))
        want -= int(run[i] - hist[i])
        left = int(hist[i])
        prefix |= ((1 << width) - 1 - i) << shift
        pmask |= ((1 << width) - 1) << shift
        n += 1
    return n


def grid(x, bits):
    qmax = 2 ** (bits - 1) - 1
    step = np.abs(x).max(axis=1) / qmax
    return np.clip(np.round(x / step[:, None]), -qmax, qmax), step


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    rng = np.random.default_rng(0)
    d, p = 64, 16
    for seq in (512, 1024, 2048, 3072, 4096, 16384):
        counts = {8: [], 11: []}
        for _ in range(rows):
            q = rng.standard_normal(d)
            k = rng.standard_normal((seq, d))
            proj = rng.choice([-1.0, 1.0], size=(d, p)) / np.sqrt(p)
            gq, sq = grid((q @ proj)[None, :], 4)
            gk, sk = grid(k @ proj, 4)
            scores = (0.125 * sq[0]) * sk * (gk @ gq[0])
            keys = order_keys(scores.astype(np.float64))
            want = int(np.ceil(0.1 * seq))
            for first in counts:
                counts[first].append(passes(keys, want, first))
        print(f"seq {seq:5d}: radix passes per row, first digit 8 bits {np.mean(counts[8]):.2f}, "
              f"11 bits {np.mean(counts[11]):.2f}")


if __name__ == "__main__":
    main()
