#!/usr/bin/env python3
"""Counts, in ptxsim, the PTX instructions one warp executes per key tile
of a CUDA kernel: the last query block of (batch 0, head 0) at sequence
length SEQ, which visits every key tile of a dense pattern. An issue-slot
proxy for comparing kernels without a GPU (a PTX instruction is not a SASS
instruction: ptxas fuses some, predicate logic above all).
  ptx_counts.py PTX HEADER SEQ KERNEL...   (needs numpy)"""
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "cuda"))
import ptxsim  # noqa: E402


def main():
    ptx_file, header, seq, kernels = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    ptx, hdr = open(ptx_file).read(), open(header).read()
    for name in kernels:
        lc = ptxsim.launch_contract(hdr, name)
        threads, qtile, ktile, shared = lc["threads"], lc["query_tile"], lc["key_tile"], lc["shared_bytes"]
        heads, kv_heads, hd = lc["heads"], lc["kv_heads"], lc["head_dim"]
        es = 4 if lc["storage"] == "DT_FP32" else 2
        kern = ptxsim.Kernel(ptx, name)
        ops = collections.Counter()
        step = kern.step

        def counted(w, ins, lanes, live, pc, step=step):
            ops[ins.parts[0]] += 1
            return step(w, ins, lanes, live, pc)

        kern.step = counted
        mem = ptxsim.Memory()
        rng = np.random.default_rng(0)
        dt = np.float32 if es == 4 else np.float16
        bases = [mem.add(n, rng.standard_normal(h * seq * hd).astype(dt).tobytes())
                 for n, h in (("q", heads), ("k", kv_heads), ("v", kv_heads))]
        out = mem.add("o", b"\0" * heads * seq * hd * 4)
        last = (seq + qtile - 1) // qtile - 1
        kern.launch((last + 1, heads), threads, shared, bases + [out, seq], mem, ys=[0], xs=[last])
        per = threads // 32 * ((seq + ktile - 1) // ktile)
        top = ", ".join(f"{k} {v / per:.1f}" for k, v in ops.most_common(8))
        print(f"{name:20} seq {seq}: {kern.count / per:7.1f} per warp and key tile ({top})")


if __name__ == "__main__":
    main()
