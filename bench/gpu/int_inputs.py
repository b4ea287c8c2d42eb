#!/usr/bin/env python3
"""Writes Q, K and V of small integers (-1, 0 or 1) as raw f32 files, so
that every score is an exact integer in any precision and N:M groups hold
exact ties, which the reference breaks toward the lower key.

usage: int_inputs.py PREFIX HEADS SEQ HEAD_DIM SEED
writes PREFIX.q.f32, PREFIX.k.f32, PREFIX.v.f32 ([1, HEADS, SEQ, HEAD_DIM])"""
import random
import struct
import sys


def main():
    prefix, heads, seq, dim, seed = sys.argv[1], *map(int, sys.argv[2:6])
    rng = random.Random(seed)
    n = heads * seq * dim
    for name in ("q", "k", "v"):
        values = [float(rng.choice((-1, 0, 1))) for _ in range(n)]
        with open(f"{prefix}.{name}.f32", "wb") as f:
            f.write(struct.pack(f"<{n}f", *values))


if __name__ == "__main__":
    main()
