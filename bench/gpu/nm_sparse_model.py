#!/usr/bin/env python3
"""A lane-level model of the CUDA kernel's N:M path on the sparse tensor cores
(codegen/cuda/kernel.c: the K row order of scores_16, key_col, nm_compress,
pv_sparse), for one warp and one 64-key tile, checked against the N:M
reference (per group of M keys the N largest scores, ties to the lower key).

It follows each lane: which keys its score accumulators hold (from the row
addresses it gives ldmatrix), its ranking and compression, the metadata word
it hands mma.sp, and its A registers; then it applies mma.sp m16n8k32 as the
PTX ISA defines it (compressed A columns 2q, 2q + 1 are group q's positions
i0, i1; row r's metadata from lane (r % 8, q / 4) under selector 0, low half
for rows 0-7, high half for 8-15). It checks the generator's index algebra,
not the hardware: that needs bench/gpu/run.sh on a GPU.

usage: /usr/bin/python3 bench/gpu/nm_sparse_model.py   (needs numpy)"""
import numpy as np
rng = np.random.default_rng(0)
BN, D = 64, 64
def run(M, N, S, V):
    def krow(l): return 4 * ((l % 8) >> 1) + 2 * (l // 16) + ((l % 8) & 1)
    def key_of(nb, n): return krow(8 * 2 * (nb % 2) + n) + 16 * (nb // 2)
    def key_col(nb, e, t): return 4 * t + 16 * (nb // 2) + 2 * (nb % 2) + e
    nbs = BN // 8
    lanes = {}
    for g in range(8):
        for t in range(4):
            s = [[S[g + 8 * (r // 2)][key_of(nb, 2 * t + r % 2)] for r in range(4)] for nb in range(nbs)]
            for nb in range(nbs):
                for e in range(2):
                    assert key_of(nb, 2 * t + e) == key_col(nb, e, t)
            # nm_compress
            comp, nib = [], []
            for kk in range(nbs // 2):
                out, nb2 = [0] * 4, [0, 0]
                for hr in range(2):
                    x = [s[2 * kk][2 * hr], s[2 * kk][2 * hr + 1], s[2 * kk + 1][2 * hr], s[2 * kk + 1][2 * hr + 1]]
                    if M == 2:
                        a, b = x[0] >= x[1], x[2] >= x[3]
                        i0, i1 = (0 if a else 1), (2 if b else 3)
                        v0, v1 = (x[0] if a else x[1]), (x[2] if b else x[3])
                    else:
                        b = [x[i] >= x[j] for i, j in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))]
                        maj = lambda p, q, r: (p and q) or (r and (p or q))
                        pick = [maj(b[0], b[1], b[2]), maj(not b[0], b[3], b[4]),
                                maj(not b[1], not b[3], b[5]), maj(not b[2], not b[4], not b[5])]
                        first = [b[0] and b[1] and b[2], (not b[0]) and b[3] and b[4],
                                 (not b[1]) and (not b[3]) and b[5], (not b[2]) and (not b[4]) and (not b[5])]
                        assert sum(pick) == 2 and sum(first) == 1
                        val = [x[i] if N == 2 or first[i] else -np.inf for i in range(4)]
                        i0 = 0 if pick[0] else (1 if pick[1] else 2)
                        i1 = 3 if pick[3] else (2 if pick[2] else 1)
                        v0 = val[0] if pick[0] else (val[1] if pick[1] else val[2])
                        v1 = val[3] if pick[3] else (val[2] if pick[2] else val[1])
                    out[2 * hr], out[2 * hr + 1] = v0, v1
                    nb2[hr] = i0 | (i1 << 2)
                comp.append(out); nib.append(nb2)
            lanes[(g, t)] = (comp, nib)
    O = np.zeros((16, D))
    for j in range(BN // 32):
        # metadata words
        words = {}
        for g in range(8):
            half = [0, 0]
            for h in range(2):
                w = 0
                for t in range(4):
                    n = lanes[(g, t)][1][2 * j + h]
                    w |= (n[0] << (4 * t)) | (n[1] << (16 + 4 * t))
                half[h] = w
            for t in range(4):
                words[(g, t)] = half[1] if t & 1 else half[0]
        # A compressed 16x16 from lane registers
        Ac = np.zeros((16, 16))
        for (g, t), (comp, _) in lanes.items():
            P = [[np.exp(v) for v in blk] for blk in comp]
            regs = [(P[2 * j][0], P[2 * j][1]), (P[2 * j][2], P[2 * j][3]), (P[2 * j + 1][0], P[2 * j + 1][1]), (P[2 * j + 1][2], P[2 * j + 1][3])]
            # a0: row g cols 2t,2t+1; a1: row g+8; a2: row g cols 2t+8; a3: row g+8 cols 2t+8
            for ri, (row, col) in enumerate([(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)]):
                Ac[row][col], Ac[row][col + 1] = regs[ri]
        # decompress per PTX: row r, group q metadata from thread (r%8, q//4), selector 0
        Ad = np.zeros((16, 32))
        for r in range(16):
            for q in range(8):
                w = words[(r % 8, q // 4)]
                bits = (w >> (16 if r >= 8 else 0)) & 0xffff
                nb = (bits >> (4 * (q % 4))) & 0xf
                i0, i1 = nb & 3, nb >> 2
                assert i0 < i1
                Ad[r][4 * q + i0] += Ac[r][2 * q]
                Ad[r][4 * q + i1] += Ac[r][2 * q + 1]
        O += Ad @ V[32 * j: 32 * j + 32]
    # reference
    Oref = np.zeros((16, D))
    for r in range(16):
        for q0 in range(0, BN, M):
            grp = list(range(q0, q0 + M))
            order = sorted(grp, key=lambda k: (-S[r][k], k))
            for k in order[:N]:
                Oref[r] += np.exp(S[r][k]) * V[k]
    return np.abs(O - Oref).max()
worst = 0.0
for M, N in [(4, 2), (4, 1), (2, 1)]:
    for trial in range(5):
        S = rng.standard_normal((16, BN))
        if trial >= 3:
            S = np.round(S)  # exact ties
        V = rng.standard_normal((BN, D))
        err = run(M, N, S, V)
        worst = max(worst, err)
        print(f"{N}:{M} trial {trial}: max |O - O_ref| = {err:.1e}")
print("ok" if worst < 1e-9 else "MISMATCH")
raise SystemExit(0 if worst < 1e-9 else 1)
