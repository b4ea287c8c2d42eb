#!/usr/bin/env python3
"""ptxsim: runs one kernel of the PTX that sattnc writes on the CPU, one
warp at a time, lanes in numpy arrays, so that the CUDA kernels can be
checked against the reference on machines without a GPU
(test/cuda/sim-static.test and sim-nm.test, through sim_check.py).

It knows the instructions LLVM's NVPTX back end emits for sattn's kernels,
and takes the tensor-core ones from the PTX ISA's fragment layouts:
ldmatrix (.x4, .trans), mma.sync m16n8k16 (f16, bf16) and m16n8k8 (tf32),
mma.sp m16n8k32 (f16, bf16; metadata selector 0). Lanes of a warp run in
lock step, the lanes with the lowest program counter first; lanes that
reach a warp-wide instruction wait there for the others (as the hardware's
convergence barriers make them), which must come to the same one; lanes
that branch back wait for the others to branch back too (each iteration
of a loop runs together, as the hardware reconverges it), and
bar.sync waits for every warp of the block. cp.async copies at once (the
wait then has nothing left to wait for). Every load and store is
bounds-checked; an unknown instruction, a divergent warp-wide instruction
or an access out of bounds stops the run with the PTX line.

Numbers: f32 arithmetic in numpy float32 (fma through float64, which can
round twice: a last-bit difference at most), ex2.approx as exp2 in float32,
f16/bf16 conversions round to nearest even. Slow: about 20,000 warp
instructions a second, so a block of 4 warps takes about a fifth of a
second per key tile; meant for short sequences and a few blocks.

usage: Kernel(ptx_text, name).launch(grid, block, shared_bytes, params,
mem) with params the kernel's arguments (addresses or integers) and mem a
Memory holding the global buffers; test/cuda/sim_check.py drives it."""
import re

import numpy as np

W = 32  # lanes per warp
SELECT_SHARED = 32768  # name_select's shared memory: include/sattn/cuda.h's SA_CUDA_SELECT_SHARED


class SimError(Exception):
    pass


# ---------------------------------------------------------------- numbers


def f32_to_f16_bits(x):
    return np.asarray(x, np.float32).astype(np.float16).view(np.uint16).astype(np.uint64)


def f16_bits_to_f32(b):
    return np.asarray(b, np.uint64).astype(np.uint16).view(np.float16).astype(np.float32)


def f32_to_bf16_bits(x):
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    nan = np.isnan(np.asarray(x, np.float32))
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
    return np.where(nan, (u >> 16) | 0x40, r) & 0xFFFF


def bf16_bits_to_f32(b):
    return (np.asarray(b, np.uint64).astype(np.uint32) << 16).view(np.float32)


def f32_to_tf32_bits(x):
    """cvt.rna.tf32.f32: to 10 explicit mantissa bits, ties away from zero."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    finite = np.isfinite(np.asarray(x, np.float32))
    r = ((u + 0x1000) & 0xFFFFE000) & 0xFFFFFFFF
    return np.where(finite, r, u)


def bits_f32(u):
    return np.asarray(u, np.uint64).astype(np.uint32).view(np.float32)


def f32_bits(x):
    return np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)


def bits_f64(u):
    return np.asarray(u, np.uint64).view(np.float64)


def f64_bits(x):
    return np.asarray(x, np.float64).view(np.uint64)


def width_of(ty):
    if ty == "pred":
        return 1
    m = re.match(r"[a-z]+(\d+)", ty)
    return int(m.group(1)) if m else 32


def mask(bits):
    return np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)


def to_signed(u, bits):
    u = np.asarray(u, np.uint64) & mask(bits)
    s = u.astype(np.int64)
    if bits < 64:
        s = np.where(s >= (1 << (bits - 1)), s - (1 << bits), s)
    return s


# ---------------------------------------------------------------- launch contract


def launch_contract(header, name):
    """Kernel `name`'s SaCudaKernel line of `sattnc --emit=header` text:
    threads, query_tile, key_tile, shared_bytes, heads, kv_heads, head_dim
    (ints), layout, storage, output (names such as LAYOUT_BHSD, DT_FP16),
    the selection fields select_rounds, grid_bytes, list_count (ints)
    and list_ratio (float), and the pruning fields pruning and progressive
    (ints)."""
    m = re.search(r'\{"' + re.escape(name) + r'", (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\w+), (\w+), (\w+), '
                  r'"\w+", (\d+), (\d+), (\d+), ([-+.\deE]+), (\d+), (\d+)\}', header)
    if not m:
        raise SimError(f"no launch contract for {name} in the header")
    keys = ("threads", "query_tile", "key_tile", "shared_bytes", "heads", "kv_heads", "head_dim")
    out = {k: int(m.group(i + 1)) for i, k in enumerate(keys)}
    out.update(layout=m.group(8), storage=m.group(9), output=m.group(10))
    out.update(select_rounds=int(m.group(11)), grid_bytes=int(m.group(12)), list_count=int(m.group(13)),
               list_ratio=float(m.group(14)), pruning=int(m.group(15)), progressive=int(m.group(16)))
    return out


def list_cap(lc, seq):
    """A row's list capacity (list_cap in runtime/cuda/cuda.c): the first
    stage's keep and 32 more, at most seq."""
    c = seq
    if lc["list_count"] > 0:
        c = min(lc["list_count"], seq)
    elif lc["list_ratio"] > 0:
        y = lc["list_ratio"] * float(seq)
        c = int(y)
        c += float(c) < y
    return c + 32 if c < seq - 32 else seq


def prune_workspace(lc, seq):
    """Byte offsets inside one batch's block of SpAtten's workspace
    (sa_cuda_workspace_bytes): token sums, head sums, token flags, head
    flags, and the block's size."""
    h, kvh = lc["heads"], lc["kv_heads"]
    dp = (lc["head_dim"] + 7) // 8 * 8
    at = (9 * seq + 9 * h + 15) // 16 * 16
    if lc["progressive"]:
        at += seq * kvh * (16 + 4 * dp)
    return {"tacc": 0, "hacc": 8 * seq, "tkept": 8 * seq + 8 * h, "hkept": 9 * seq + 8 * h,
            "size": (at + 255) // 256 * 256}


def workspace_layout(lc, seq):
    """Byte offsets inside one batch's workspace block of a selection
    kernel (docs/cuda.md): steps, counts, grids, lists, and the block's
    size."""
    h, kvh, r = lc["heads"], lc["kv_heads"], lc["select_rounds"]
    nh = h + kvh
    counts = 8 * seq * nh * r
    grids = (counts + 4 * seq * h + 15) // 16 * 16
    lists = grids + seq * nh * lc["grid_bytes"]
    size = (lists + 4 * seq * h * list_cap(lc, seq) + 255) // 256 * 256
    return {"counts": counts, "grids": grids, "lists": lists, "size": size}


# ---------------------------------------------------------------- memory


class Memory:
    """Global buffers at made-up addresses; every access is checked."""

    def __init__(self):
        self.bufs = []  # (base, np.uint8 array, name)
        self.next = 1 << 32

    def add(self, name, data):
        arr = np.frombuffer(bytearray(data), np.uint8).copy()
        base = self.next
        self.next += (len(arr) + 4095) // 4096 * 4096 + 4096
        self.bufs.append((base, arr, name))
        return base

    def buf(self, base):
        for b, arr, _ in self.bufs:
            if b == base:
                return arr
        raise KeyError(base)

    def find(self, addr, size):
        for b, arr, name in self.bufs:
            if b <= addr and addr + size <= b + len(arr):
                return arr, addr - b
        raise SimError(f"global access of {size} bytes at {addr:#x} is outside every buffer")


def gather(space, addrs, size, lanes):
    """Little-endian loads of `size` bytes for the lanes in `lanes`."""
    out = np.zeros(W, np.uint64)
    for l in np.nonzero(lanes)[0]:
        arr, off = space(int(addrs[l]), size)
        out[l] = int.from_bytes(arr[off:off + size].tobytes(), "little")
    return out


def scatter(space, addrs, size, vals, lanes):
    for l in np.nonzero(lanes)[0]:
        arr, off = space(int(addrs[l]), size)
        arr[off:off + size] = np.frombuffer(int(vals[l] & mask(size * 8)).to_bytes(size, "little"), np.uint8)


# ---------------------------------------------------------------- parsing


def split_top(s):
    """Comma-separated operands, commas inside {} or [] kept."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


class Instr:
    __slots__ = ("op", "parts", "args", "pred", "neg", "line", "text")

    def __init__(self, text, line):
        self.text, self.line = text, line
        text = text.rstrip(";").strip()
        self.pred, self.neg = None, False
        m = re.match(r"@(!?)(%\w+)\s+(.*)", text)
        if m:
            self.neg, self.pred, text = m.group(1) == "!", m.group(2), m.group(3)
        op, _, rest = text.partition(" ")
        if "\t" in op:
            op, _, more = op.partition("\t")
            rest = more + " " + rest
        self.op = op
        self.parts = op.split(".")
        self.args = split_top(rest.strip()) if rest.strip() else []


def parse(ptx, name):
    m = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    if not m:
        raise SimError(f"no kernel {name} in the PTX")
    params = [p.split()[-1] for p in m.group(1).split(",") if p.strip()]
    body = ptx[m.end():]
    start = body.index("{")
    depth, end = 0, None
    for i in range(start, len(body)):
        if body[i] == "{":
            depth += 1
        elif body[i] == "}":
            depth -= 1
            if depth == 0:
                end = i
                break
    text = body[start + 1:end]
    lineno0 = ptx[:m.end() + start].count("\n") + 1
    code, labels, cur, cur_line = [], {}, "", 0
    for i, raw in enumerate(text.split("\n")):
        s = raw.split("//")[0].strip()
        if not s:
            continue
        if not cur:
            cur_line = lineno0 + i
            lm = re.match(r"^(\$?[\w$]+):$", s)
            if lm:
                labels[lm.group(1)] = len(code)
                continue
            if s.startswith((".reg", ".local", ".shared", ".pragma")):
                continue
        cur += (" " if cur else "") + s
        if cur.endswith(";"):
            code.append(Instr(cur, cur_line))
            cur = ""
    return params, code, labels


# ---------------------------------------------------------------- warps


CVT_MODIFIERS = ("rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi", "rna", "sat", "ftz", "relu")
WARP_WIDE = ("shfl", "ldmatrix", "mma", "bar", "barrier", "vote")


class Warp:
    def __init__(self, block, wid):
        self.block, self.wid = block, wid
        self.regs = {}
        self.pc = np.zeros(W, np.int64)
        self.done = np.zeros(W, bool)
        self.at_barrier = False
        self.lane = np.arange(W, dtype=np.uint64)
        self.tid = self.lane + np.uint64(W * wid)


class Kernel:
    def __init__(self, ptx, name):
        self.name = name
        self.params, self.code, self.labels = parse(ptx, name)
        self.count = 0

    # operand access -------------------------------------------------
    def val(self, w, a):
        """Operand a as uint64 lanes (immediates, registers, special registers)."""
        if a.startswith("%"):
            r = w.regs.get(a)
            if r is not None:
                return r
            if a in ("%tid.x", "%laneid"):
                return w.tid if a == "%tid.x" else w.lane
            scalar = {"%ctaid.x": self.ctaid[0], "%ctaid.y": self.ctaid[1], "%ctaid.z": 0, "%tid.y": 0, "%tid.z": 0,
                      "%ntid.x": self.block_dim, "%nctaid.x": self.grid[0], "%nctaid.y": self.grid[1]}
            if a in scalar:
                return np.full(W, scalar[a], np.uint64)
            raise SimError(f"register {a} read before it was written")
        if a.startswith("0f"):
            return np.full(W, int(a[2:], 16), np.uint64)
        if a.startswith("0d"):
            return np.full(W, int(a[2:], 16), np.uint64)
        if a in ("sattn_smem",):
            return np.zeros(W, np.uint64)
        v = int(a[:-1] if a.endswith("U") else a, 0)  # 0x3340U: an unsigned literal
        return np.full(W, v & 0xFFFFFFFFFFFFFFFF, np.uint64)

    def set(self, w, d, v, lanes, bits):
        v = np.asarray(v, np.uint64) & mask(bits)
        old = w.regs.get(d)
        if old is None:
            old = np.zeros(W, np.uint64)
        w.regs[d] = np.where(lanes, v, old)

    def addr(self, w, a):
        m = re.match(r"\[(.+?)\]$", a)
        inner = m.group(1)
        mm = re.match(r"^([%\w$]+)(?:\+(-?\d+))?$", inner)
        base, off = mm.group(1), int(mm.group(2) or 0)
        if base in self.param_vals:
            return ("param", base)
        return (self.val(w, base) + np.uint64(off & 0xFFFFFFFFFFFFFFFF)) & mask(64)

    # run -------------------------------------------------------------
    def launch(self, grid, block, shared_bytes, params, mem, ys=None, xs=None):
        """Runs the blocks (x, y) of the grid, x only in xs and y only in
        ys when given."""
        self.grid, self.block_dim, self.mem = grid, block, mem
        self.param_vals = dict(zip(self.params, params))
        for by in range(grid[1]) if ys is None else ys:
            for bx in range(grid[0]) if xs is None else xs:
                self.ctaid = (bx, by)
                self.shared = np.zeros(shared_bytes, np.uint8)
                self.run_block(block)

    def shared_at(self, addr, size):
        if addr < 0 or addr + size > len(self.shared):
            raise SimError(f"shared access of {size} bytes at {addr} outside {len(self.shared)} bytes")
        return self.shared, addr

    def run_block(self, nthreads):
        warps = [Warp(self, i) for i in range(nthreads // W)]
        while True:
            progressed = False
            for w in warps:
                if not w.done.all() and not w.at_barrier:
                    self.run_warp(w)
                    progressed = True
            live = [w for w in warps if not w.done.all()]
            if not live:
                return
            if all(w.at_barrier for w in live):
                for w in live:
                    w.at_barrier = False
                    w.pc[~w.done] += 1
            elif not progressed:
                raise SimError("block stuck")

    def run_warp(self, w):
        code = self.code
        waiting = np.zeros(W, bool)  # lanes held at a warp-wide instruction
        # lanes that branched back (a loop's next iteration), held until the
        # others have branched back too or can go no further: so a warp whose
        # lanes part at an if inside a loop runs each iteration together, as
        # the hardware reconverges it, instead of letting the lanes at the
        # lower address (a latch above the body) run iterations ahead
        parked = np.zeros(W, bool)
        while True:
            live = ~w.done
            if not live.any():
                return
            free = live & ~waiting & ~parked
            if not free.any() and parked.any():
                parked[:] = False
                continue
            if free.any():
                pc = int(w.pc[free].min())
                lanes = free & (w.pc == pc)
                if code[pc].parts[0] in WARP_WIDE and not np.array_equal(lanes, live):
                    waiting |= lanes  # until the other lanes get here
                    continue
            else:
                pcs = np.unique(w.pc[live])
                if len(pcs) > 1:
                    where = ", ".join(f"line {code[int(x)].line}" for x in pcs)
                    raise SimError(f"lanes wait at different warp-wide instructions: {where}")
                pc = int(pcs[0])
                lanes = live
            waiting[:] = False
            ins = code[pc]
            self.count += 1
            try:
                stop = self.step(w, ins, lanes, live, pc)
            except SimError as e:
                raise SimError(f"line {ins.line}: {ins.text}: {e}") from None
            except (KeyError, ValueError, IndexError) as e:
                raise SimError(f"line {ins.line}: {ins.text}: {type(e).__name__} {e}") from None
            if stop:
                return
            if ins.parts[0] == "bra":
                parked |= lanes & (w.pc < pc)

    def collective(self, lanes, live):
        if not np.array_equal(lanes, live) or not live.all():
            raise SimError("warp-wide instruction reached by only some lanes")

    def step(self, w, ins, lanes, live, pc):
        p = ins.parts
        op = p[0]
        exec_lanes = lanes
        if ins.pred:
            pv = self.val(w, ins.pred) != 0
            exec_lanes = lanes & (~pv if ins.neg else pv)
        if op == "bra":
            tgt = self.labels[ins.args[0]]
            w.pc[exec_lanes] = tgt
            w.pc[lanes & ~exec_lanes] = pc + 1
            return False
        if op == "ret" or op == "exit":
            w.done |= exec_lanes
            w.pc[lanes & ~exec_lanes] = pc + 1
            return False
        if op == "bar" and p[1] == "warp":  # bar.warp.sync: the lanes are together already
            self.collective(lanes, live)
            w.pc[lanes] = pc + 1
            return False
        if op == "bar" or ins.op.startswith("barrier"):
            self.collective(lanes, live)
            w.at_barrier = True
            return True
        self.exec(w, ins, p, exec_lanes, lanes, live)
        w.pc[lanes] = pc + 1
        return False

    # instructions ----------------------------------------------------
    def exec(self, w, ins, p, L, lanes, live):
        op, a = p[0], ins.args
        ty = p[-1]
        if op in ("cp",):
            if p[1] == "async" and p[2] in ("commit_group", "wait_group", "wait_all"):
                return
            if p[1] == "async":  # cp.async.cg.shared.global [dst], [src], 16, src-size
                dst, src = self.addr(w, a[0]), self.addr(w, a[1])
                n = int(a[2])
                ss = self.val(w, a[3]) if len(a) > 3 else np.full(W, n, np.uint64)
                for l in np.nonzero(L)[0]:
                    k = int(ss[l])
                    data = np.zeros(n, np.uint8)
                    if k:
                        arr, off = self.mem.find(int(src[l]), k)
                        data[:k] = arr[off:off + k]
                    sh, off = self.shared_at(int(dst[l]), n)
                    sh[off:off + n] = data
                return
        if op == "ld":
            space = p[1]
            vec = next((int(x[1:]) for x in p if re.match(r"v\d", x)), 1)
            size = width_of(ty) // 8
            ad = self.addr(w, a[1])
            if space == "param":
                v = self.param_vals[ad[1]]
                self.set(w, a[0], np.full(W, v & 0xFFFFFFFFFFFFFFFF, np.uint64), L, 64)
                return
            sp = self.shared_at if space == "shared" else self.mem.find
            dsts = split_top(a[0][1:-1]) if a[0].startswith("{") else [a[0]]
            for i, d in enumerate(dsts):
                self.set(w, d, gather(sp, ad + np.uint64(i * size), size, L), L, size * 8)
            return
        if op == "st":
            space = p[1]
            size = width_of(ty) // 8
            ad = self.addr(w, a[0])
            sp = self.shared_at if space == "shared" else self.mem.find
            srcs = split_top(a[1][1:-1]) if a[1].startswith("{") else [a[1]]
            for i, s in enumerate(srcs):
                scatter(sp, ad + np.uint64(i * size), size, self.val(w, s), L)
            return
        if op == "mov":
            if a[1].startswith("{"):  # pack
                parts = split_top(a[1][1:-1])
                bits = width_of(ty) // len(parts)
                v = np.zeros(W, np.uint64)
                for i, s in enumerate(parts):
                    v |= (self.val(w, s) & mask(bits)) << np.uint64(bits * i)
                self.set(w, a[0], v, L, width_of(ty))
            elif a[0].startswith("{"):  # unpack
                parts = split_top(a[0][1:-1])
                bits = width_of(ty) // len(parts)
                v = self.val(w, a[1])
                for i, s in enumerate(parts):
                    if s != "_":
                        self.set(w, s, v >> np.uint64(bits * i), L, bits)
            else:
                self.set(w, a[0], self.val(w, a[1]), L, width_of(ty) if ty != "pred" else 1)
            return
        if op == "cvt":
            return self.cvt(w, ins, p, L)
        if op == "setp":
            return self.setp(w, ins, p, L)
        if op == "selp":
            c = self.val(w, a[3]) != 0
            self.set(w, a[0], np.where(c, self.val(w, a[1]), self.val(w, a[2])), L, width_of(ty))
            return
        if op == "shfl":  # shfl.sync.bfly.b32 d, a, b, c, membermask
            self.collective(lanes, live)
            mode = p[2]
            src = self.val(w, a[1])
            b = self.val(w, a[2]).astype(np.int64)
            lane = np.arange(W)
            if mode == "bfly":
                j = lane ^ b
            elif mode == "idx":
                j = b & 31
            elif mode == "down":
                j = np.where(lane + b < W, lane + b, lane)
            else:
                j = np.where(lane - b >= 0, lane - b, lane)
            self.set(w, a[0], src[j], L, 32)
            return
        if op == "vote":  # vote.sync.ballot.b32 d, pred, membermask
            self.collective(lanes, live)
            pv = (self.val(w, a[1]) != 0) & L
            bits = np.uint64(sum(1 << l for l in range(W) if pv[l]))
            self.set(w, a[0], np.full(W, bits, np.uint64), L, 32)
            return
        if op == "atom" and p[1:] == ["global", "add", "f64"]:  # atom.global.add.f64 d, [addr], v: lane by lane
            ad = self.addr(w, a[1])
            inc = bits_f64(self.val(w, a[2]))
            old = np.zeros(W, np.uint64)
            for l in np.nonzero(L)[0]:
                arr, off = self.mem.find(int(ad[l]), 8)
                cur = arr[off:off + 8].copy().view(np.float64)[0]
                old[l] = np.float64(cur).view(np.uint64)
                arr[off:off + 8] = np.frombuffer(np.float64(cur + inc[l]).tobytes(), np.uint8)
            self.set(w, a[0], old, L, 64)
            return
        if op == "atom":  # atom.shared.add.u32 d, [addr], v: the lanes one after another
            if p[1] != "shared" or p[2] != "add" or width_of(ty) != 32:
                raise SimError(f"unknown instruction {ins.op}")
            ad = self.addr(w, a[1])
            inc = self.val(w, a[2])
            old = np.zeros(W, np.uint64)
            for l in np.nonzero(L)[0]:
                sh, off = self.shared_at(int(ad[l]), 4)
                cur = int(sh[off:off + 4].view(np.uint32)[0])
                old[l] = cur
                sh[off:off + 4] = np.frombuffer(np.uint32((cur + int(inc[l])) & 0xFFFFFFFF).tobytes(), np.uint8)
            self.set(w, a[0], old, L, 32)
            return
        if op == "dp4a":  # dp4a.s32.s32 d, a, b, c: four signed byte products added to c
            if p[1:] != ["s32", "s32"]:
                raise SimError(f"unknown instruction {ins.op}")
            x, y, acc = self.val(w, a[1]), self.val(w, a[2]), to_signed(self.val(w, a[3]), 32)
            for i in range(4):
                acc = acc + to_signed(x >> np.uint64(8 * i), 8) * to_signed(y >> np.uint64(8 * i), 8)
            self.set(w, a[0], acc.astype(np.uint64), L, 32)
            return
        if op == "ldmatrix":
            return self.ldmatrix(w, ins, p, L, lanes, live)
        if op == "mma":
            return self.mma(w, ins, p, L, lanes, live)
        if ty == "f32" or ty == "f64":
            return self.float_op(w, ins, p, L)
        if ty in ("f16", "bf16") and op in ("abs", "neg"):  # the sign bit alone, NaN too
            x = self.val(w, a[1]) & np.uint64(0xFFFF)
            r = x & np.uint64(0x7FFF) if op == "abs" else x ^ np.uint64(0x8000)
            self.set(w, a[0], r, L, 16)
            return
        if ty == "pred":
            x = [self.val(w, s) != 0 for s in a[1:]]
            r = {"and": lambda: x[0] & x[1], "or": lambda: x[0] | x[1], "xor": lambda: x[0] ^ x[1],
                 "not": lambda: ~x[0]}[op]()
            self.set(w, a[0], r.astype(np.uint64), L, 1)
            return
        return self.int_op(w, ins, p, L)

    def int_op(self, w, ins, p, L):
        op, a, ty = p[0], ins.args, p[-1]
        bits = width_of(ty)
        signed = ty.startswith("s")
        m = mask(bits)
        x = [self.val(w, s) & m for s in a[1:]]
        sx = [to_signed(v, bits) for v in x]
        out_bits = bits
        if op == "add":
            r = x[0] + x[1]
        elif op == "sub":
            r = x[0] - x[1]
        elif op == "mul" or op == "mad":
            mode = p[1]
            if mode == "wide":
                out_bits = bits * 2
                prod = (sx[0] * sx[1]).astype(np.uint64) if signed else x[0] * x[1]
                r = prod
            elif mode == "hi":
                if bits == 64:
                    r = np.array([((int(u) if not signed else int(s0)) * (int(v) if not signed else int(s1))) >> 64
                                  for u, v, s0, s1 in zip(x[0], x[1], sx[0], sx[1])], dtype=object)
                    r = np.array([int(t) & 0xFFFFFFFFFFFFFFFF for t in r], np.uint64)
                else:
                    prod = sx[0] * sx[1] if signed else (x[0] * x[1]).astype(np.int64)
                    r = (np.asarray(prod, np.int64) >> bits).astype(np.uint64)
            else:
                r = x[0] * x[1]
            if op == "mad":
                r = r + (self.val(w, a[3]) & mask(out_bits))
        elif op == "div":
            if signed:
                q = np.where(sx[1] != 0, np.abs(sx[0]) // np.where(sx[1] != 0, np.abs(sx[1]), 1), 0)
                r = (np.sign(sx[0]) * np.sign(sx[1]) * q).astype(np.uint64)
            else:
                r = np.where(x[1] != 0, x[0] // np.where(x[1] != 0, x[1], 1), 0)
        elif op == "rem":
            if signed:
                q = np.abs(sx[0]) % np.where(sx[1] != 0, np.abs(sx[1]), 1)
                r = (np.sign(sx[0]) * q).astype(np.uint64)
            else:
                r = np.where(x[1] != 0, x[0] % np.where(x[1] != 0, x[1], 1), 0)
        elif op in ("min", "max"):
            f = np.minimum if op == "min" else np.maximum
            r = f(sx[0], sx[1]).astype(np.uint64) if signed else f(x[0], x[1])
        elif op == "abs":
            r = np.abs(sx[0]).astype(np.uint64)
        elif op == "neg":
            r = (-sx[0]).astype(np.uint64)
        elif op == "and":
            r = x[0] & x[1]
        elif op == "or":
            r = x[0] | x[1]
        elif op == "xor":
            r = x[0] ^ x[1]
        elif op == "not":
            r = ~x[0]
        elif op == "shl":
            sh = np.minimum(self.val(w, a[2]) & np.uint64(0xFFFFFFFF), bits)
            r = np.where(sh >= bits, 0, x[0] << np.minimum(sh, 63))
        elif op == "shr":
            sh = np.minimum(self.val(w, a[2]) & np.uint64(0xFFFFFFFF), bits).astype(np.int64)
            if signed:
                r = (sx[0] >> np.minimum(sh, 63)).astype(np.uint64)
            else:
                r = np.where(sh >= bits, 0, x[0] >> np.minimum(sh, 63).astype(np.uint64))
        elif op == "bfe":
            pos = (self.val(w, a[2]) & np.uint64(0xFF)).astype(np.int64)
            ln = (self.val(w, a[3]) & np.uint64(0xFF)).astype(np.int64)
            r = np.zeros(W, np.uint64)
            for l in range(W):
                v = int(x[0][l]) >> min(int(pos[l]), bits - 1) if pos[l] < bits else 0
                n = min(int(ln[l]), bits)
                v &= (1 << n) - 1 if n else 0
                if signed and n and (v >> (n - 1)) & 1:
                    v |= ~((1 << n) - 1)
                r[l] = v & ((1 << bits) - 1)
        elif op == "prmt":  # prmt.b32 d, a, b, c: bytes of {b, a} picked by c's nibbles (default mode)
            if len(p) > 2:
                raise SimError(f"unknown instruction {ins.op}")
            pair = (x[1] << np.uint64(32)) | x[0]
            sel_ = self.val(w, a[3])
            r = np.zeros(W, np.uint64)
            for i in range(4):
                nib = (sel_ >> np.uint64(4 * i)) & np.uint64(15)
                byte = (pair >> ((nib & np.uint64(7)) * np.uint64(8))) & np.uint64(255)
                byte = np.where(nib & np.uint64(8), np.where(byte & np.uint64(128), np.uint64(255), np.uint64(0)), byte)
                r |= byte << np.uint64(8 * i)
        elif op == "popc":
            r = np.array([bin(int(v)).count("1") for v in x[0]], np.uint64)
            out_bits = 32
        elif op == "clz":
            r = np.array([bits - int(v).bit_length() for v in x[0]], np.uint64)
            out_bits = 32
        else:
            raise SimError(f"unknown instruction {ins.op}")
        self.set(w, a[0], np.asarray(r).astype(np.uint64), L, out_bits)

    def float_op(self, w, ins, p, L):
        op, a, ty = p[0], ins.args, p[-1]
        f64 = ty == "f64"
        get = (lambda s: bits_f64(self.val(w, s))) if f64 else (lambda s: bits_f32(self.val(w, s)))
        put = f64_bits if f64 else f32_bits
        ft = np.float64 if f64 else np.float32
        x = [get(s) for s in a[1:]]
        with np.errstate(all="ignore"):
            if op == "add":
                r = x[0] + x[1]
            elif op == "sub":
                r = x[0] - x[1]
            elif op == "mul":
                r = x[0] * x[1]
            elif op == "fma" or op == "mad":
                r = (x[0].astype(np.float64) * x[1] + x[2]).astype(ft)
            elif op == "div":
                r = x[0] / x[1]
            elif op == "rcp":
                r = ft(1.0) / x[0]
            elif op == "sqrt":
                r = np.sqrt(x[0])
            elif op == "neg":
                r = -x[0]
            elif op == "abs":
                r = np.abs(x[0])
            elif op in ("max", "min"):
                if "NaN" in p:
                    r = np.maximum(x[0], x[1]) if op == "max" else np.minimum(x[0], x[1])
                else:
                    r = np.fmax(x[0], x[1]) if op == "max" else np.fmin(x[0], x[1])
            elif op == "ex2":
                r = np.exp2(x[0].astype(np.float64)).astype(ft)
            elif op == "lg2":
                r = np.log2(x[0].astype(np.float64)).astype(ft)
            else:
                raise SimError(f"unknown instruction {ins.op}")
            r = np.asarray(r, ft)
            if "ftz" in p and not f64:
                r = np.where(np.abs(r) < np.float32(1.1754943508222875e-38), np.float32(0) * np.sign(r), r)
        self.set(w, a[0], put(r), L, 64 if f64 else 32)

    def setp(self, w, ins, p, L):
        a, ty, cmpop = ins.args, p[-1], p[1]
        if ty in ("f32", "f64"):
            get = bits_f64 if ty == "f64" else bits_f32
            x, y = get(self.val(w, a[1])), get(self.val(w, a[2]))
            nan = np.isnan(x) | np.isnan(y)
            base = {"eq": x == y, "ne": x != y, "lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y,
                    "equ": x == y, "neu": x != y, "ltu": x < y, "leu": x <= y, "gtu": x > y, "geu": x >= y}
            if cmpop == "num":
                r = ~nan
            elif cmpop == "nan":
                r = nan
            elif cmpop.endswith("u"):
                r = base[cmpop] | nan
            else:
                r = base[cmpop] & ~nan
        else:
            bits = width_of(ty)
            if ty.startswith("s"):
                x, y = to_signed(self.val(w, a[1]), bits), to_signed(self.val(w, a[2]), bits)
            else:
                x, y = self.val(w, a[1]) & mask(bits), self.val(w, a[2]) & mask(bits)
            r = {"eq": x == y, "ne": x != y, "lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "lo": x < y,
                 "ls": x <= y, "hi": x > y, "hs": x >= y}[cmpop]
        if len(p) > 3 and p[2] in ("and", "or", "xor"):
            c = self.val(w, a[3]) != 0
            r = {"and": r & c, "or": r | c, "xor": r ^ c}[p[2]]
        dsts = a[0].split("|")
        self.set(w, dsts[0], r.astype(np.uint64), L, 1)
        if len(dsts) > 1:
            self.set(w, dsts[1], (~r).astype(np.uint64), L, 1)

    def cvt(self, w, ins, p, L):
        a = ins.args
        mods = [x for x in p[1:] if x in CVT_MODIFIERS]
        tys = [x for x in p[1:] if x not in mods]
        dt, st = tys[0], tys[-1]
        if dt in ("f16x2", "bf16x2"):  # cvt.rn.f16x2.f32 d, a, b: a to the upper half
            conv = f32_to_f16_bits if dt == "f16x2" else f32_to_bf16_bits
            hi, lo = bits_f32(self.val(w, a[1])), bits_f32(self.val(w, a[2]))
            self.set(w, a[0], (conv(hi) << np.uint64(16)) | conv(lo), L, 32)
            return
        v = self.val(w, a[1])
        if dt == "tf32":
            self.set(w, a[0], f32_to_tf32_bits(bits_f32(v)), L, 32)
            return
        # to a float value first
        if st in ("f32",):
            x = bits_f32(v).astype(np.float64)
        elif st == "f64":
            x = bits_f64(v)
        elif st == "f16":
            x = f16_bits_to_f32(v).astype(np.float64)
        elif st == "bf16":
            x = bf16_bits_to_f32(v).astype(np.float64)
        else:
            x = None
        sbits, dbits = width_of(st), width_of(dt)
        if dt in ("f32", "f64", "f16", "bf16"):
            if x is None:
                iv = to_signed(v, sbits) if st.startswith("s") else (v & mask(sbits))
                x = iv.astype(np.float64)
            elif dt == st:  # cvt.rzi.f64.f64 and the like: to an integral value
                with np.errstate(all="ignore"):
                    rnd = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}
                    for m_ in mods:
                        if m_ in rnd:
                            x = rnd[m_](x)
            if dt == "f32":
                r = f32_bits(x.astype(np.float32))
            elif dt == "f64":
                r = f64_bits(x)
            elif dt == "f16":
                r = f32_to_f16_bits(x.astype(np.float32))
            else:
                r = f32_to_bf16_bits(x.astype(np.float32))
            self.set(w, a[0], r, L, dbits)
            return
        # to an integer
        if x is not None:
            with np.errstate(all="ignore"):
                if "rni" in mods:
                    y = np.rint(x)
                elif "rmi" in mods:
                    y = np.floor(x)
                elif "rpi" in mods:
                    y = np.ceil(x)
                else:
                    y = np.trunc(x)
                lo, hi = (-(1 << (dbits - 1)), (1 << (dbits - 1)) - 1) if dt.startswith("s") else (0, (1 << dbits) - 1)
                y = np.where(np.isnan(y), 0, np.clip(y, lo, hi))
            self.set(w, a[0], y.astype(np.int64).astype(np.uint64), L, dbits)
            return
        iv = to_signed(v, sbits).astype(np.uint64) if st.startswith("s") else (v & mask(sbits))
        self.set(w, a[0], iv, L, dbits)

    # tensor cores -----------------------------------------------------
    def ldmatrix(self, w, ins, p, L, lanes, live):
        self.collective(lanes, live)
        a = ins.args
        dsts = split_top(a[0][1:-1])
        n = len(dsts)
        trans = "trans" in p
        addrs = self.addr(w, a[1])
        g, t = np.arange(W) // 4, np.arange(W) % 4
        for j, d in enumerate(dsts):
            rows = [addrs[8 * j + r] for r in range(8)]  # row r of matrix j
            mat = np.zeros((8, 8), np.uint64)
            for r in range(8):
                sh, off = self.shared_at(int(rows[r]), 16)
                mat[r] = sh[off:off + 16].view(np.uint16).astype(np.uint64)
            if trans:
                lo, hi = mat[2 * t, g], mat[2 * t + 1, g]
            else:
                lo, hi = mat[g, 2 * t], mat[g, 2 * t + 1]
            self.set(w, d, lo | (hi << np.uint64(16)), L, 32)

    def mma(self, w, ins, p, L, lanes, live):
        self.collective(lanes, live)
        a = ins.args
        shape = next(x for x in p if x.startswith("m16"))
        sparse = p[1].startswith("sp")
        types = [x for x in p if x in ("f16", "bf16", "tf32", "f32")]
        dty, aty, bty, cty = types[0], types[1], types[2], types[3]
        regs = [split_top(x[1:-1]) for x in a[:4]]
        D, A, B, C = regs
        Av = np.stack([self.val(w, r) for r in A])  # [regs, lanes]
        Bv = np.stack([self.val(w, r) for r in B])
        Cv = np.stack([bits_f32(self.val(w, r)) for r in C]).astype(np.float64)
        g, t = np.arange(W) // 4, np.arange(W) % 4
        K = int(shape.split("k")[1])

        def halves(v, ty):
            if ty == "f16":
                return f16_bits_to_f32(v & np.uint64(0xFFFF)), f16_bits_to_f32(v >> np.uint64(16))
            return bf16_bits_to_f32(v & np.uint64(0xFFFF)), bf16_bits_to_f32(v >> np.uint64(16))

        Am = np.zeros((16, K), np.float64)
        Bm = np.zeros((K, 8), np.float64)
        if aty == "tf32":  # m16n8k8
            for i, (ro, co) in enumerate([(0, 0), (8, 0), (0, 4), (8, 4)]):
                Am[g + ro, t + co] = bits_f32(Av[i] & np.uint64(0xFFFFE000))
            for i in range(2):
                Bm[t + 4 * i, g] = bits_f32(Bv[i] & np.uint64(0xFFFFE000))
        elif not sparse:  # m16n8k16
            for i, (ro, co) in enumerate([(0, 0), (8, 0), (0, 8), (8, 8)]):
                lo, hi = halves(Av[i], aty)
                Am[g + ro, 2 * t + co], Am[g + ro, 2 * t + co + 1] = lo, hi
            for i in range(2):
                lo, hi = halves(Bv[i], bty)
                Bm[2 * t + 8 * i, g], Bm[2 * t + 8 * i + 1, g] = lo, hi
        else:  # mma.sp m16n8k32: A is 16 x 16 compressed, 2 of each 4 columns
            sel = int(a[5], 0)
            if sel != 0:
                raise SimError("only sparsity selector 0 is modelled")
            meta = self.val(w, a[4])
            Ac = np.zeros((16, 16), np.float64)
            for i, (ro, co) in enumerate([(0, 0), (8, 0), (0, 8), (8, 8)]):
                lo, hi = halves(Av[i], aty)
                Ac[g + ro, 2 * t + co], Ac[g + ro, 2 * t + co + 1] = lo, hi
            for r in range(16):
                for q in range(8):
                    word = int(meta[(r % 8) * 4 + q // 4])  # lanes t = 0, 1 of the row's quad
                    bitsr = (word >> (16 if r >= 8 else 0)) & 0xFFFF
                    nib = (bitsr >> (4 * (q % 4))) & 0xF
                    i0, i1 = nib & 3, nib >> 2
                    if "ordered_metadata" in ins.op and not i0 < i1:
                        raise SimError(f"metadata {i0}, {i1} not ordered (row {r}, group {q})")
                    if i0 == i1:
                        raise SimError(f"metadata {i0}, {i1} repeats a position (row {r}, group {q})")
                    Am[r, 4 * q + i0] = Ac[r, 2 * q]
                    Am[r, 4 * q + i1] = Ac[r, 2 * q + 1]
            for i in range(4):
                lo, hi = halves(Bv[i], bty)
                Bm[2 * t + 8 * i, g], Bm[2 * t + 8 * i + 1, g] = lo, hi
        with np.errstate(all="ignore"):
            Dm = Am @ Bm
        Cm = np.zeros((16, 8))
        for i, (ro, co) in enumerate([(0, 0), (0, 1), (8, 0), (8, 1)]):
            Cm[g + ro, 2 * t + co] = Cv[i]
        with np.errstate(all="ignore"):
            Dm = (Dm + Cm).astype(np.float32)
        for i, (ro, co) in enumerate([(0, 0), (0, 1), (8, 0), (8, 1)]):
            self.set(w, D[i], f32_bits(Dm[g + ro, 2 * t + co]), L, 32)
