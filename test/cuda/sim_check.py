#!/usr/bin/env python3
"""Checks one CUDA kernel on the CPU: runs its PTX in ptxsim on fresh
inputs and compares the output with the CPU kernel's on the same inputs
(sattn-run --target=cpu, which itself is checked against the reference in
that run).

usage: sim_check.py --bin DIR --spec FILE --ptx PTX --header H --kernel NAME
                    [--seq N] [--batch B] [--ys LIST] [--xs LIST] [--seed S]
                    [--scale X] [--ints] [--nan-key J]

Files and outputs are in [B, H, S, D] order, as sattn-run's; the kernel's
buffers in the spec's layout. --ys, --xs: the blocks of the grid to run,
(batch, head) as b * heads + h and
query tiles of 64 rows (default all); only their outputs are compared,
every element of them must have been written. --seq is the spec's when it
has one. --ints: inputs of -1, 0 and 1, so that N:M groups hold exact ties.
--nan-key J: key J of every head is NaN in its first column, so its scores
are NaN; --inf-key J: +inf there instead, so its scores are +inf or
-inf. --same-keys: every K row is the head's first, so that all of a
row's scores tie (the top-k's radix passes then run through all 64 bits). The tolerance is 2u relative (in the L2 norm over the compared
output) with u the unit roundoff of P's type, as for a GPU run, plus the
output type's rounding; non-finite outputs must be the same elements.

Filter rounds and DSA prediction (select_rounds > 0 in the header) run
their three kernels on one workspace: name_grids over every row, then
name_select and name over the blocks chosen (--xs counts blocks of the
header's query_tile rows). Each row's list must then hold exactly the
keys the reference keeps (sattn-run --survivors), in key order; with
--nm N:M (N:M after the selection, applied by name) the list must hold
every survivor and each group of M keys min(N, its list entries) of them.

SpAtten's pruning kernels (pruning in the header) run name_prune over the
whole grid, name over the blocks chosen, and name_finish, with the
importance inputs the CPU run drew (sattn-run --importance-files); when
every block runs, the importance outputs must match the CPU kernel's
(relative error 1e-4, the pruned entries -inf in both)."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptxsim  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for a in ("--bin", "--spec", "--ptx", "--header", "--kernel"):
        ap.add_argument(a, required=True)
    ap.add_argument("--seq", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--ys", default=None)
    ap.add_argument("--xs", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--ints", action="store_true")
    ap.add_argument("--nan-key", type=int, default=None)
    ap.add_argument("--inf-key", type=int, default=None)
    ap.add_argument("--nm", default=None)
    ap.add_argument("--same-keys", action="store_true")
    a = ap.parse_args()

    try:
        lc = ptxsim.launch_contract(open(a.header).read(), a.kernel)
    except ptxsim.SimError as e:
        sys.exit(f"sim_check: {e} {a.header}")
    threads, qtile, shared = lc["threads"], lc["query_tile"], lc["shared_bytes"]
    heads, kv_heads, hd = lc["heads"], lc["kv_heads"], lc["head_dim"]
    layout, storage, output = lc["layout"], lc["storage"], lc["output"]
    spec_seq = re.search(r"attention\s+" + re.escape(a.kernel) + r"\s*\{[^}]*?\bseq=(\d+)", open(a.spec).read())
    S = int(spec_seq.group(1)) if spec_seq else a.seq
    if S is None:
        sys.exit("sim_check: --seq is needed: the spec's seq is set at run time")
    B = a.batch
    rng = np.random.default_rng(a.seed)

    def tensor(h):  # [B, h, S, D], the order of sattn-run's files
        shape = (B, h, S, hd)
        if a.ints:
            return rng.integers(-1, 2, size=shape).astype(np.float32)
        return (rng.standard_normal(shape) * a.scale).astype(np.float32)

    q, k, v = tensor(heads), tensor(kv_heads), tensor(kv_heads)
    if a.same_keys:  # every score of a row ties: the top-k's radix passes run through all 64 bits
        k[:, :, :, :] = k[:, :, :1, :]
    if a.nan_key is not None:
        k[:, :, a.nan_key, 0] = np.nan
    if a.inf_key is not None:  # scores of +inf or -inf by the sign of q's first column
        k[:, :, a.inf_key, 0] = np.inf

    def in_layout(x):  # the kernel's buffers are in the spec's layout
        return x if layout == "LAYOUT_BHSD" else np.ascontiguousarray(x.transpose(0, 2, 1, 3))

    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for n, x in (("q", q), ("k", k), ("v", v)):
            files[n] = os.path.join(tmp, n + ".f32")
            x.tofile(files[n])
        ref_file = os.path.join(tmp, "ref.f32")
        cmd = [os.path.join(a.bin, "sattn-run"), a.spec, "--kernel", a.kernel, "--target=cpu", "--batch", str(B), "--q",
               files["q"], "--k", files["k"], "--v", files["v"], "--out", ref_file]
        if not spec_seq:
            cmd += ["--seq", str(S)]
        select = lc["select_rounds"] > 0
        prune = lc["pruning"] > 0
        surv_file = os.path.join(tmp, "surv.u8")
        if select:
            cmd += ["--survivors", surv_file]
        imp_prefix = os.path.join(tmp, "imp")
        if prune:  # the importance inputs sattn-run draws: from the same seed each time
            cmd += ["--importance-files", imp_prefix, "--seed", str(a.seed)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"sim_check: the CPU kernel failed its own check:\n{run.stdout}{run.stderr}")
        ref = np.fromfile(ref_file, np.float32)
        surv = np.fromfile(surv_file, np.uint8).reshape(B, heads, S, S) if select else None
        imp = {}
        for n in ("token-in", "token-out", "head-in", "head-out"):
            f = f"{imp_prefix}-{n}.f32"
            if prune and os.path.exists(f):
                imp[n] = np.fromfile(f, np.float32)

    conv = {"DT_FP16": lambda x: x.astype(np.float16).tobytes(),
            "DT_BF16": lambda x: ptxsim.f32_to_bf16_bits(x).astype(np.uint16).tobytes(),
            "DT_FP32": lambda x: x.astype(np.float32).tobytes()}[storage]
    mem = ptxsim.Memory()
    bases = [mem.add(n, conv(in_layout(x))) for n, x in (("q", q), ("k", k), ("v", v))]
    obytes = {"DT_FP16": 2, "DT_BF16": 2, "DT_FP32": 4}[output]
    obase = mem.add("o", b"\xff" * (q.size * obytes))  # NaN bits: every element must be written
    ptx = open(a.ptx).read()
    kern = ptxsim.Kernel(ptx, a.kernel)
    grid = ((S + qtile - 1) // qtile, B * heads)
    ys = [int(y) for y in a.ys.split(",")] if a.ys else list(range(grid[1]))
    xs = [int(x) for x in a.xs.split(",")] if a.xs else list(range(grid[0]))
    count = 0
    try:
        if prune or select:
            # each batch's block: the selection's part, then the pruning's
            lay = ptxsim.workspace_layout(lc, S) if select else {"size": 0}
            block = lay["size"] + (ptxsim.prune_workspace(lc, S)["size"] if prune else 0)
            ws = mem.add("workspace", b"\x5a" * (B * block))
            params = bases + [obase, S, ws]
            if prune:
                for n, size in (("token-in", B * S), ("head-in", B * heads)):
                    params.append(mem.add(n, imp[n].tobytes()) if n in imp else 0)
                outs = {}
                for n, size in (("token-out", B * S), ("head-out", B * heads)):
                    outs[n] = mem.add(n, b"\xff" * (4 * size)) if n in imp else 0
                params += [outs["token-out"], outs["head-out"]]
            if select:
                grids = ptxsim.Kernel(ptx, a.kernel + "_grids")
                grids.launch(((S + 127) // 128, B * (heads + kv_heads)), threads, 0, params, mem)
                count += grids.count
            if prune:
                first = ptxsim.Kernel(ptx, a.kernel + "_prune")
                first.launch(((S + 127) // 128, B), threads, 4096, params, mem)
                count += first.count
            if select:
                pick = ptxsim.Kernel(ptx, a.kernel + "_select")
                pick.launch(grid, threads, ptxsim.SELECT_SHARED, params, mem, ys, xs)
                count += pick.count
            kern.launch(grid, threads, shared, params, mem, ys, xs)
            if prune:
                last = ptxsim.Kernel(ptx, a.kernel + "_finish")
                last.launch(((S + 127) // 128, B), threads, 0, params, mem)
                count += last.count
        else:
            kern.launch(grid, threads, shared, bases + [obase, S], mem, ys, xs)
    except ptxsim.SimError as e:
        sys.exit(f"sim_check: {a.kernel} seq {S}: {e}")
    count += kern.count
    lists_ok = True
    if select:  # every row run: its list is the reference's survivors
        wsb = mem.buf(ws)
        cap = ptxsim.list_cap(lc, S)
        bad = 0
        for y in ys:
            b, h = divmod(y, heads)
            blk = wsb[b * block:(b + 1) * block]
            for x in xs:
                for i in range(x * qtile, min((x + 1) * qtile, S)):
                    n = int(blk[lay["counts"] + 4 * (h * S + i):][:4].view(np.int32)[0])
                    at = lay["lists"] + 4 * (h * S + i) * cap
                    got = blk[at:at + 4 * max(n, 0)].view(np.int32) if 0 <= n <= cap else None
                    want = np.nonzero(surv[b, h, i])[0]
                    if got is not None and a.nm:  # the list is the selection's; N:M picks from it
                        nn, mm = (int(x) for x in a.nm.split(":"))
                        grp = np.bincount(got // mm, minlength=S // mm + 1)
                        kept = np.bincount(want // mm, minlength=S // mm + 1)
                        if np.isin(want, got).all() and np.array_equal(kept, np.minimum(grp, nn)):
                            continue
                        got = None
                    if got is None or not np.array_equal(got, want):
                        bad += 1
                        if bad <= 3:
                            print(f"row (b {b}, h {h}, i {i}): list {None if got is None else got.tolist()[:12]} "
                                  f"(n {n}), the reference keeps {want.tolist()[:12]} ({len(want)})")
        lists_ok = bad == 0
        print(f"{a.kernel}: survivor lists: {bad} rows differ from the reference's")
    imp_ok = True
    if prune and not a.ys and not a.xs:  # every row ran: the importance sums are whole
        for n in ("token-out", "head-out"):
            if n not in imp:
                continue
            got, want = mem.buf(outs[n]).view(np.float32), imp[n]
            nf_g, nf_w = ~np.isfinite(got), ~np.isfinite(want)
            same_nf = np.array_equal(nf_g, nf_w) and np.array_equal(got[nf_g], want[nf_w], equal_nan=True)
            fin = ~nf_g & ~nf_w
            rel = np.linalg.norm(got[fin] - want[fin]) / max(np.linalg.norm(want[fin]), 1e-30)
            good = same_nf and rel <= 1e-4
            imp_ok = imp_ok and good
            print(f"{a.kernel}: {n}: {got.size} entries, {int(nf_w.sum())} pruned or non-finite "
                  f"(ptxsim {int(nf_g.sum())}), relative error {rel:.2e}: {'ok' if good else 'FAILED'}")
    raw = mem.buf(obase)
    if output == "DT_FP32":
        out = raw.view(np.float32).copy()
    elif output == "DT_FP16":
        out = raw.view(np.float16).astype(np.float32)
    else:
        out = ptxsim.bf16_bits_to_f32(raw.view(np.uint16).astype(np.uint64))

    if layout != "LAYOUT_BHSD":
        out = np.ascontiguousarray(out.reshape(B, S, heads, hd).transpose(0, 2, 1, 3)).reshape(-1)
    # the compared elements: the (b, h) blocks run
    sel = np.zeros((B, heads), bool)
    for y in ys:
        sel[y // heads, y % heads] = True
    rows = np.zeros(S, bool)
    for x in xs:
        rows[x * qtile:(x + 1) * qtile] = True
    pick = ((sel[:, :, None, None] & rows[None, None, :, None]) & np.ones((1, 1, 1, hd), bool)).reshape(-1)
    o, r = out[pick], ref[pick]
    u_p = {"DT_FP16": 2.0**-11, "DT_BF16": 2.0**-8, "DT_FP32": 2.0**-11}[storage]
    u_o = {"DT_FP16": 2.0**-11, "DT_BF16": 2.0**-8, "DT_FP32": 2.0**-24}[output]
    tol = 2 * u_p + u_o + 1e-6
    nf_o, nf_r = ~np.isfinite(o), ~np.isfinite(r)
    fin = ~nf_o & ~nf_r
    rel = np.linalg.norm(o[fin] - r[fin]) / max(np.linalg.norm(r[fin]), 1e-30)
    worst = np.max(np.abs(o[fin] - r[fin])) if fin.any() else 0.0
    ok = np.array_equal(nf_o, nf_r) and rel <= tol and lists_ok and imp_ok
    print(f"{a.kernel} seq {S} blocks x {xs if a.xs else 'all'} y {ys if a.ys else 'all'}: {o.size} outputs, "
          f"{int(nf_r.sum())} non-finite (ptxsim {int(nf_o.sum())}), relative error {rel:.2e} (tolerance {tol:.2e}), "
          f"worst {worst:.2e}, {count} warp instructions: {'ok' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
