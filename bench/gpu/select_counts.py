#!/usr/bin/env python3
"""Counts, in ptxsim, the PTX instructions the filter-round and DSA kernels
execute (codegen/cuda/select.c): warp instructions per query row for
name_select and name (one block of 4 rows in the middle of head 0, fp16
inputs of standard normals), and per row for name_grids (Q's and K's rows,
32 to a warp). For SpAtten's pruning kernels: name per query row and per
candidate key (the same block; token importance of standard normals, the
block's rows kept), name_prune per K row (the same amortized count as
name_grids', the token and head selection included). An issue-slot proxy without a GPU, as ptx_counts.py is for the
flash kernels.
  select_counts.py PTX HEADER SEQ KERNEL...   (needs numpy)"""
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
        h, g, d = lc["heads"], lc["kv_heads"], lc["head_dim"]
        if (lc["select_rounds"] == 0 and lc["pruning"] == 0) or lc["storage"] != "DT_FP16":
            sys.exit(f"select_counts: {name} is not an fp16 selection or pruning kernel")
        rng = np.random.default_rng(1)
        mem = ptxsim.Memory()
        q = rng.standard_normal((1, h, seq, d)).astype(np.float16)
        k = rng.standard_normal((1, g, seq, d)).astype(np.float16)
        v = rng.standard_normal((1, g, seq, d)).astype(np.float16)
        obytes = 4 if lc["output"] == "DT_FP32" else 2
        params = [mem.add("q", q.tobytes()), mem.add("k", k.tobytes()), mem.add("v", v.tobytes()),
                  mem.add("o", bytes(h * seq * d * obytes)), seq]
        block = [seq // 4 // 2]
        if lc["pruning"]:
            lay = ptxsim.prune_workspace(lc, seq)
            rows = range(block[0] * 4, block[0] * 4 + 4)
            tin = np.abs(rng.standard_normal(seq)).astype(np.float32)
            tin[list(rows)] = 1e30
            params += [mem.add("ws", bytes(lay["size"])), mem.add("tin", tin.tobytes()), 0, 0, 0]
            first = ptxsim.Kernel(ptx, name + "_prune")
            first.launch(((seq + 127) // 128, 1), lc["threads"], 4096, params, mem)
            attend = ptxsim.Kernel(ptx, name)
            attend.launch(((seq + 3) // 4, h), lc["threads"], lc["shared_bytes"], params, mem, [0], block)
            kept = mem.buf(params[5])[lay["tkept"]:lay["tkept"] + seq]
            cand = np.mean([int(kept[:i + 1].sum()) for i in rows])  # causal: kept keys 0..i
            print(f"{name} seq {seq}: warp instructions per query row: attend {attend.count / 4:.0f} "
                  f"({attend.count / 4 / cand:.1f} per candidate key, {cand:.0f} candidates); "
                  f"prune {first.count / (seq * g):.0f} per K row")
            continue
        params.append(mem.add("ws", bytes(ptxsim.workspace_layout(lc, seq)["size"])))
        grids = ptxsim.Kernel(ptx, name + "_grids")
        grids.launch(((seq + 127) // 128, h + g), lc["threads"], 0, params, mem)
        pick = ptxsim.Kernel(ptx, name + "_select")
        pick.launch(((seq + 3) // 4, h), lc["threads"], ptxsim.SELECT_SHARED, params, mem, [0], block)
        attend = ptxsim.Kernel(ptx, name)
        attend.launch(((seq + 3) // 4, h), lc["threads"], lc["shared_bytes"], params, mem, [0], block)
        ws = mem.buf(params[-1])
        lay = ptxsim.workspace_layout(lc, seq)
        rows = range(block[0] * 4, block[0] * 4 + 4)
        kept = [int(ws[lay["counts"] + 4 * i:][:4].view(np.int32)[0]) for i in rows]
        print(f"{name} seq {seq}: warp instructions per query row: select {pick.count / 4:.0f} "
              f"({pick.count / 4 / seq:.1f} per key), attend {attend.count / 4:.0f} "
              f"({attend.count / 4 / max(1, np.mean(kept)):.1f} per kept key, {np.mean(kept):.0f} kept); "
              f"grids {grids.count * 32 / (seq * (h + g)) / 32:.0f} per Q or K row")


if __name__ == "__main__":
    main()
