/* kernel.c: the CPU kernel generator, a KernelPlan to MLIR in upstream
 * dialects (scf, vector, memref, arith, math, llvm).
 *
 * The kernel follows docs/semantics.md one query row at a time, fused: the
 * score matrix is never built. A row keeps its candidates as a compact list
 * of key indices (`idx`) with one value each (`val`, f64); every dynamic
 * stage computes its values for the list, selects, and compacts the list in
 * place, so later stages only touch survivors. Softmax and A.V then run
 * over the survivors with 16-lane f32 vectors and an inline vector exp.
 *
 * Precision. Selection values (quantized scores, projections, the exact
 * scores N:M ranks) are computed in f64, with quantization formulas that
 * repeat the reference's operation for operation, so the kernel selects the
 * same keys as the reference (only a tie within rounding of a double could
 * differ). Softmax inputs are shifted by the row maximum in f64 before the
 * f32 exp. Patterns with no dynamic stage score in f32 directly.
 *
 * ABI (docs/cpu-abi.md):
 *   int32_t NAME(const T *q, const T *k, const T *v, U *o, int64_t batch,
 *                int64_t seq, const float *token_in, float *token_out,
 *                const float *head_in, float *head_out)
 * returns an SaStatus value; importance pointers may be NULL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../codegen.h"
#include "../emit.h"
#include "../mask.h"

/* ------------------------------------------------------------------ */
/* Buffers and element types                                          */

typedef enum { BK_F32, BK_F16, BK_BF16, BK_F64, BK_E4M3, BK_E5M2 } BufKind;

typedef struct {
  V m;
  BufKind k;
} Buf;

/* Element type in memory (bf16 travels as raw i16 bits). */
static const char *elem(BufKind k) {
  static const char *names[] = {"f32", "f16", "i16", "f64", "i8", "i8"};
  return names[k];
}

static const char *memty(BufKind k) {
  static const char *names[] = {"memref<?xf32>", "memref<?xf16>", "memref<?xi16>",
                                "memref<?xf64>", "memref<?xi8>",  "memref<?xi8>"};
  return names[k];
}

static int64_t elem_bytes(BufKind k) {
  static const int64_t bytes[] = {4, 2, 2, 8, 1, 1};
  return bytes[k];
}

static BufKind kind_of(SaDtype t) {
  static const BufKind kinds[DT_COUNT] = {[DT_FP32] = BK_F32, [DT_FP16] = BK_F16, [DT_BF16] = BK_BF16,
                                          [DT_FP8E4M3] = BK_E4M3, [DT_FP8E5M2] = BK_E5M2};
  return kinds[t];
}

bool cg_cpu_dtype_supported(SaDtype t) {
  return t == DT_FP32 || t == DT_FP16 || t == DT_BF16 || t == DT_FP8E4M3 || t == DT_FP8E5M2;
}

#define VL32 16 /* f32 lanes */
#define TQ 96   /* flash path: query rows per tile, a multiple of every row block */
#define TK 64   /* keys per tile (both paths) */
#define TILE_FACTS 2 /* flash path: f32 facts per key tile in kt (vflag_at) */
#define VL64 8  /* f64 lanes */
#define LOG2_E 1.4426950408889634 /* log2(e): softmax in base 2 */
#define PROJ_ROWS 4 /* DSA: rows projected together */
/* Row path: rows attended together, key part by key part (a multiple of
 * FS_ROWS). Each block brings every part's K and V rows into L2 once, so
 * more rows per block means fewer trips from L3: at seq 4096 and 10% kept,
 * 48 -> 192 rows took filter from 250 to 228 ms (384: no better). */
#define RB 192
#define KV_PART_BYTES (1024 << 10) /* row path: K + V bytes of one key part */
#define RBX_T "memref<192xindex>" /* the types of RB-entry buffers */
#define RBF_T "memref<192xf32>"

typedef struct {
  Em e;
  const KernelPlan *p;
  const SaSpec *s;
  int64_t H, KVH, D, R, P; /* heads, kv heads, head dim, filter rounds, predict dim */
  bool dynamic;            /* any stage that ranks or thresholds */
  V c0, c1, S, B, S64, L;  /* L: length of the list buffers, max(S, H) */
  Buf q, k, v, o;
  V ti, to, hi, ho;             /* memref<?xf32> */
  V has_ti, has_to, has_hi, has_ho;
  V idx, val, pr, flag;         /* row lists: index, f64, f32, i8 */
  V gstart;                     /* N:M: each list entry's group run start */
  V keys;                       /* top-k: the list's order keys (i64) */
  V prow;                       /* DSA: PROJ_ROWS projected rows in double */
  V tokkeep, tokval, tokacc;    /* per batch: i8, f64, f64 */
  V headkeep, headval;          /* memref<Hxi8>, memref<Hxf64> */
  V proj, pq, pk, fq, fk, kmsb, kfull; /* f64 per-head precomputation */
  V pqs, pks, fqs, fks;                /* steps of the grid rows */
  V ks32;                              /* the first stage's K steps rounded to f32, once per head */
  V orow;                       /* memref<Dxf32> */
  bool rows_task;               /* emitting a rows task (no importance outputs) */
  V blist, bn, bcur;            /* blocked rows: their lists (i32), lengths, first entry of the next key part */
  /* attend_block's K and V: the tensors, or (when either is not 64-byte
   * aligned) aligned copies of the head's rows; row j at kv_base + j *
   * kv_stride in both */
  Buf kb, vb;
  V kv_base, kv_stride, kcopy, vcopy;
  V blist_base;                 /* set: first_top_fast writes the row's list straight to blist here */
  V bm, bl, bacc;               /* blocked rows: online softmax maxima, sums, O accumulators */
  V n;                          /* var index: list length */
  V abssum;                     /* var f64 */
  V status;                     /* var i32 */
  V cur_b, cur_h, cur_kvh;      /* the batch entry and head being emitted */
  V kt, kt_len;                 /* flash path: K transposed (f32), padded length (i64) */
  V kt_flags;                   /* flash path: where kt's per-tile facts start (index): TILE_FACTS
                                   f32 per key tile, its V flag and largest key norm */
  V fkt, fsc, fsp, fsc_off;     /* row path, first selection stage: its K grid transposed, the
                                   grid dots of a block of rows, the padded key count, the
                                   current row's offset in fsc (empty: score per candidate) */
  bool vnni;                    /* the target has AVX512-VNNI: integer first stage */
  V fkt8, fq8, fkc;             /* VNNI first stage: K grid (i8) tile by tile in groups of 4
                                   columns, Q grid + 128 (u8), 128 * each key's grid sum (i32) */
  V ctxm;                       /* task functions: the context block */
  int cur_round;                /* the filter round being emitted */
  int slots;                    /* flash path: M when N:M's key tiles are in slot order
                                   (nm_slots), else 0 */
} K;

#define E (&k->e)

static V bin(K *k, const char *op, V a, V b, const char *ty) { return em(E, "%s %s, %s : %s", op, a.s, b.s, ty); }
static V cmpi(K *k, const char *pred, V a, V b, const char *ty) {
  return em(E, "arith.cmpi %s, %s, %s : %s", pred, a.s, b.s, ty);
}
static V cmpf(K *k, const char *pred, V a, V b, const char *ty) {
  return em(E, "arith.cmpf %s, %s, %s : %s", pred, a.s, b.s, ty);
}
static V sel(K *k, V c, V a, V b, const char *ty) { return em(E, "arith.select %s, %s, %s : %s", c.s, a.s, b.s, ty); }
static V load(K *k, V m, V i, const char *mt) { return em(E, "memref.load %s[%s] : %s", m.s, i.s, mt); }
static void store(K *k, V x, V m, V i, const char *mt) { em_do(E, "memref.store %s, %s[%s] : %s", x.s, m.s, i.s, mt); }
static V to_i64(K *k, V x) { return em(E, "arith.index_cast %s : index to i64", x.s); }
static V to_index(K *k, V x) { return em(E, "arith.index_cast %s : i64 to index", x.s); }
static V idx_f64(K *k, V x) {
  V i = em(E, "arith.index_castui %s : index to i64", x.s);
  return em(E, "arith.uitofp %s : i64 to f64", i.s);
}
static V addx(K *k, V a, V b) { return bin(k, "arith.addi", a, b, "index"); }
static V mulx(K *k, V a, V b) { return bin(k, "arith.muli", a, b, "index"); }
static V addc(K *k, V a, int64_t c) { return addx(k, a, em_index(E, c)); }
static V mulc(K *k, V a, int64_t c) { return mulx(k, a, em_index(E, c)); }

/* Element offset of row (b, h, i) of a [B, nh, S, D] tensor in the spec's layout. */
static V row_offset(K *k, int64_t nh, V b, V h, V i) {
  V row = k->s->layout == LAYOUT_BHSD ? addx(k, mulx(k, addx(k, mulc(k, b, nh), h), k->S), i)
                                      : addx(k, mulc(k, addx(k, mulx(k, b, k->S), i), nh), h);
  return mulc(k, row, k->D);
}

/* A constant of `ty` ("i32", "f32") broadcast to `lanes` lanes (0: scalar). */
static V cst(K *k, int lanes, const char *ty, const char *val) {
  if (!lanes)
    return em(E, "arith.constant %s : %s", val, ty);
  return em(E, "arith.constant dense<%s> : vector<%dx%s>", val, lanes, ty);
}

static void shape_of(int lanes, const char *ty, char *out, size_t cap) {
  if (lanes)
    snprintf(out, cap, "vector<%dx%s>", lanes, ty);
  else
    snprintf(out, cap, "%s", ty);
}

/* fp8 bytes (i8, scalar or `lanes` lanes) to f32, exactly. e5m2 is the top
 * byte of an fp16; e4m3 (the FN variant: no infinity, NaN = S.1111.111) is
 * assembled from its fields, subnormals as m * 2^-9. */
static V fp8_to_f32(K *k, V x, int lanes, BufKind kind) {
  char i8[32], i16[32], i32[32], f16[32], f32[32];
  shape_of(lanes, "i8", i8, sizeof i8), shape_of(lanes, "i16", i16, sizeof i16);
  shape_of(lanes, "i32", i32, sizeof i32), shape_of(lanes, "f16", f16, sizeof f16);
  shape_of(lanes, "f32", f32, sizeof f32);
  if (kind == BK_E5M2) {
    V w = em(E, "arith.extui %s : %s to %s", x.s, i8, i16);
    w = em(E, "arith.shli %s, %s : %s", w.s, cst(k, lanes, "i16", "8").s, i16);
    V h = em(E, "arith.bitcast %s : %s to %s", w.s, i16, f16);
    return em(E, "arith.extf %s : %s to %s", h.s, f16, f32);
  }
  V w = em(E, "arith.extui %s : %s to %s", x.s, i8, i32);
  V sgn = em(E, "arith.shli %s, %s : %s", em(E, "arith.shrui %s, %s : %s", w.s, cst(k, lanes, "i32", "7").s, i32).s,
             cst(k, lanes, "i32", "31").s, i32);
  V e = em(E, "arith.andi %s, %s : %s", em(E, "arith.shrui %s, %s : %s", w.s, cst(k, lanes, "i32", "3").s, i32).s,
           cst(k, lanes, "i32", "15").s, i32);
  V m = em(E, "arith.andi %s, %s : %s", w.s, cst(k, lanes, "i32", "7").s, i32);
  V nb = em(E, "arith.ori %s, %s : %s", sgn.s,
            em(E, "arith.ori %s, %s : %s",
               em(E, "arith.shli %s, %s : %s", em(E, "arith.addi %s, %s : %s", e.s, cst(k, lanes, "i32", "120").s, i32).s,
                  cst(k, lanes, "i32", "23").s, i32).s,
               em(E, "arith.shli %s, %s : %s", m.s, cst(k, lanes, "i32", "20").s, i32).s, i32).s,
            i32);
  V normal = em(E, "arith.bitcast %s : %s to %s", nb.s, i32, f32);
  V sub = em(E, "arith.mulf %s, %s : %s", em(E, "arith.sitofp %s : %s to %s", m.s, i32, f32).s,
             cst(k, lanes, "f32", "0x3B000000").s, f32); /* 2^-9 */
  sub = em(E, "arith.bitcast %s : %s to %s",
           em(E, "arith.ori %s, %s : %s", em(E, "arith.bitcast %s : %s to %s", sub.s, f32, i32).s, sgn.s, i32).s, i32, f32);
  char i1[32];
  shape_of(lanes, "i1", i1, sizeof i1);
  V is_sub = em(E, "arith.cmpi eq, %s, %s : %s", e.s, cst(k, lanes, "i32", "0").s, i32);
  V r = em(E, "arith.select %s, %s, %s : %s%s%s", is_sub.s, sub.s, normal.s, lanes ? i1 : "", lanes ? ", " : "", f32);
  V low7 = em(E, "arith.andi %s, %s : %s", w.s, cst(k, lanes, "i32", "127").s, i32);
  V nan = em(E, "arith.cmpi eq, %s, %s : %s", low7.s, cst(k, lanes, "i32", "127").s, i32);
  return em(E, "arith.select %s, %s, %s : %s%s%s", nan.s, cst(k, lanes, "f32", "0x7FC00000").s, r.s, lanes ? i1 : "",
            lanes ? ", " : "", f32);
}

/* `lanes` elements of b at off, converted to vector<lanes x ft>; `tail` > 0
 * loads only the first `tail` lanes (the rest are zero). */
static V vload(K *k, Buf b, V off, int lanes, int tail, const char *ft) {
  const char *et = elem(b.k);
  char vt[32];
  snprintf(vt, sizeof vt, "vector<%dx%s>", lanes, et);
  V x;
  if (tail > 0) {
    V mask = em(E, "vector.constant_mask [%d] : vector<%dxi1>", tail, lanes);
    bool integer = b.k == BK_BF16 || b.k == BK_E4M3 || b.k == BK_E5M2;
    V pass = em(E, "arith.constant dense<0%s> : %s", integer ? "" : ".0", vt);
    x = em(E, "vector.maskedload %s[%s], %s, %s : %s, vector<%dxi1>, %s into %s", b.m.s, off.s, mask.s, pass.s,
           memty(b.k), lanes, vt, vt);
  } else {
    x = em(E, "vector.load %s[%s] : %s, %s", b.m.s, off.s, memty(b.k), vt);
  }
  if (b.k == BK_BF16) { /* bf16 is the top half of an f32 */
    V w = em(E, "arith.extui %s : %s to vector<%dxi32>", x.s, vt, lanes);
    V sh = em(E, "arith.constant dense<16> : vector<%dxi32>", lanes);
    V hi = em(E, "arith.shli %s, %s : vector<%dxi32>", w.s, sh.s, lanes);
    x = em(E, "arith.bitcast %s : vector<%dxi32> to vector<%dxf32>", hi.s, lanes, lanes);
    et = "f32";
  } else if (b.k == BK_E4M3 || b.k == BK_E5M2) {
    x = fp8_to_f32(k, x, lanes, b.k);
    et = "f32";
  }
  if (strcmp(et, ft) != 0)
    x = em(E, "arith.extf %s : vector<%dx%s> to vector<%dx%s>", x.s, lanes, et, lanes, ft);
  return x;
}

/* One element of b as f64 (or f32 when f32 is asked and the buffer is not f64). */
static V sload(K *k, Buf b, V i, const char *ft) {
  V x = load(k, b.m, i, memty(b.k));
  const char *et = elem(b.k);
  if (b.k == BK_BF16) {
    V w = em(E, "arith.extui %s : i16 to i32", x.s);
    V hi = bin(k, "arith.shli", w, em_int(E, 16, "i32"), "i32");
    x = em(E, "arith.bitcast %s : i32 to f32", hi.s);
    et = "f32";
  } else if (b.k == BK_E4M3 || b.k == BK_E5M2) {
    x = fp8_to_f32(k, x, 0, b.k);
    et = "f32";
  }
  if (strcmp(et, ft) != 0)
    x = em(E, "arith.extf %s : %s to %s", x.s, et, ft);
  return x;
}

/* sum_d a[oa + d] * b[ob + d] for d < len, in ft ("f32" or "f64"). */
static V dot(K *k, Buf a, V oa, Buf b, V ob, int64_t len, const char *ft) {
  int lanes = strcmp(ft, "f32") == 0 ? VL32 : VL64;
  V acc = em(E, "arith.constant dense<0.0> : vector<%dx%s>", lanes, ft);
  for (int64_t c = 0; c < len; c += lanes) {
    int tail = len - c < lanes ? (int)(len - c) : 0;
    V x = vload(k, a, addc(k, oa, c), lanes, tail, ft);
    V y = vload(k, b, addc(k, ob, c), lanes, tail, ft);
    acc = em(E, "vector.fma %s, %s, %s : vector<%dx%s>", x.s, y.s, acc.s, lanes, ft);
  }
  return em(E, "vector.reduction <add>, %s : vector<%dx%s> into %s", acc.s, lanes, ft, ft);
}

/* max(a, b) of f32 vectors as a compare and a select, which x86 lowers to
 * one vmaxps; arith.maximumf's NaN and signed-zero rules cost five more
 * instructions. A NaN in `a` is passed through,
 * one in `b` dropped: callers put the operand whose NaN must survive first. */
static V vmaxf(K *k, V a, V b) {
  const char *vt = "vector<16xf32>";
  V lt = em(E, "arith.cmpf olt, %s, %s : %s", a.s, b.s, vt);
  return em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", lt.s, b.s, a.s, vt);
}

/* min(a, b) as vmaxf does max (one vminps): a NaN in `b` is passed
 * through, one in `a` dropped. */
static V vminf(K *k, V a, V b) {
  const char *vt = "vector<16xf32>";
  V lt = em(E, "arith.cmpf olt, %s, %s : %s", a.s, b.s, vt);
  return em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", lt.s, a.s, b.s, vt);
}

/* The largest lane of v by halving shuffles and vmaxf (NaN lanes may be
 * dropped). */
static V hmaxf(K *k, V v) {
  const char *vt = "vector<16xf32>";
  for (int w = 8; w >= 1; w /= 2) {
    char mask[128];
    int n = 0;
    for (int i = 0; i < 16; i++)
      n += snprintf(mask + n, sizeof mask - (size_t)n, "%s%d", i ? ", " : "", (i + w) % 16);
    V sh = em(E, "vector.shuffle %s, %s [%s] : %s, %s", v.s, v.s, mask, vt, vt);
    v = vmaxf(k, v, sh);
  }
  return em(E, "vector.extract %s[0] : f32 from %s", v.s, vt);
}

/* 2^t on vector<16xf32> for softmax, whose t (the tiles' s * c - m, with
 * c = scale * log2 e folded into the multiply) is never above 0.
 * n = round(t) by the 1.5 * 2^23 trick, f = t - n in [-1/2, 1/2], a
 * degree-5 polynomial for 2^f with p(0) = 1 exactly (so that a row's
 * largest score gets P = 1; 1.9e-7 relative in f32), times 2^n: by
 * vscalefps on AVX-512 (dense 185 -> 182 ms at 4096, bench/README.md), else
 * built in the exponent field. Below -126 (-inf included) the result is
 * exactly 0; NaN stays NaN. 10 vector operations (12 without AVX-512), no
 * libm call, no float-to-int conversion. */
static V vexp2(K *k, V t) {
  static const double poly[] = {1.3264671433717012e-3, 9.671499952673912e-3, 5.550733581185341e-2,
                                2.4022242426872253e-1, 6.931470036506653e-1, 1.0};
  const char *vt = "vector<16xf32>";
#define C(val) em(E, "arith.constant dense<%.17e> : vector<16xf32>", (double)(val))
  V magic = C(12582912.0); /* 1.5 * 2^23 */
  V u = em(E, "arith.addf %s, %s : %s", t.s, magic.s, vt);
  V n = em(E, "arith.subf %s, %s : %s", u.s, magic.s, vt);
  V f = em(E, "arith.subf %s, %s : %s", t.s, n.s, vt);
  V y = C(poly[0]);
  for (int i = 1; i < 6; i++)
    y = em(E, "vector.fma %s, %s, %s : %s", y.s, f.s, C(poly[i]).s, vt);
  V res;
  if (k->vnni) {
    /* AVX-512: y 2^n in one vscalefps (n is whole: no rounding), by the
     * intrinsic itself, (a, b, passthrough, mask, rounding): MLIR 22's
     * x86vector mask.scalef hands its (src, a, b) to it in that order,
     * so src would be scaled */
    res = em(E,
             "llvm.call_intrinsic \"llvm.x86.avx512.mask.scalef.ps.512\"(%s, %s, %s, %s, %s) : (%s, %s, %s, i16, i32) -> %s",
             y.s, n.s, y.s, em_int(E, -1, "i16").s, em_int(E, 4, "i32").s, vt, vt, vt, vt);
  } else {
    /* u's bits are magic's plus n: (bits(u) - bits(magic) + 127) << 23 is 2^n */
    V ub = em(E, "arith.bitcast %s : %s to vector<16xi32>", u.s, vt);
    V off = em(E, "arith.constant dense<%d> : vector<16xi32>", 127 - 0x4B400000);
    V e2 = em(E, "arith.shli %s, %s : vector<16xi32>", em(E, "arith.addi %s, %s : vector<16xi32>", ub.s, off.s).s,
              em(E, "arith.constant dense<23> : vector<16xi32>").s);
    res = em(E, "arith.mulf %s, %s : %s", y.s, em(E, "arith.bitcast %s : vector<16xi32> to %s", e2.s, vt).s, vt);
  }
  V under = em(E, "arith.cmpf olt, %s, %s : %s", t.s, C(-126.0).s, vt);
  V zero = C(0.0);
#undef C
  return em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", under.s, zero.s, res.s, vt);
}

/* exp(x) on vector<16xf32> for softmax's x = s - max <= 0 (or NaN), as
 * 2^(x log2 e): exactly 0 below -87.3 (-inf included), so that masked
 * lanes contribute nothing even against an Inf value; NaN stays NaN. */
static V vexp(K *k, V x) {
  V c = em(E, "arith.constant dense<%.17e> : vector<16xf32>", LOG2_E);
  return vexp2(k, em(E, "arith.mulf %s, %s : vector<16xf32>", x.s, c.s));
}

/* exp(x) on vector<8xf64> for x <= 0 (or NaN), to about 3e-16 relative:
 * x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, n ln2_hi exact),
 * e^r by its Taylor series to r^12 (the rest is below 2e-16), times 2^n
 * from the exponent bits. Below -708 it returns e^-708 (about 3e-308),
 * which no sum that matters here can see. No libm call. */
static V vexp64(K *k, V x) {
  const char *vt = "vector<8xf64>";
#define C(val) em(E, "arith.constant dense<%.17e> : vector<8xf64>", (double)(val))
  x = em(E, "arith.select %s, %s, %s : vector<8xi1>, %s", em(E, "arith.cmpf olt, %s, %s : %s", x.s, C(-708.0).s, vt).s,
         C(-708.0).s, x.s, vt);
  V n = em(E, "math.roundeven %s : %s", em(E, "arith.mulf %s, %s : %s", x.s, C(LOG2_E).s, vt).s, vt);
  n = em(E, "arith.select %s, %s, %s : vector<8xi1>, %s", em(E, "arith.cmpf uno, %s, %s : %s", n.s, n.s, vt).s, C(0.0).s, n.s, vt);
  V nn = em(E, "arith.negf %s : %s", n.s, vt);
  V r = em(E, "vector.fma %s, %s, %s : %s", nn.s, C(6.93147180369123816490e-01).s, x.s, vt);
  r = em(E, "vector.fma %s, %s, %s : %s", nn.s, C(1.90821492927058770002e-10).s, r.s, vt);
  double coef[13];
  coef[0] = 1.0;
  for (int i = 1; i < 13; i++)
    coef[i] = coef[i - 1] / i;
  V y = C(coef[12]);
  for (int i = 11; i >= 0; i--)
    y = em(E, "vector.fma %s, %s, %s : %s", y.s, r.s, C(coef[i]).s, vt);
  V ni = em(E, "arith.fptosi %s : %s to vector<8xi64>", n.s, vt);
  V bits = em(E, "arith.shli %s, %s : vector<8xi64>", em(E, "arith.addi %s, %s : vector<8xi64>", ni.s,
                                                         em(E, "arith.constant dense<1023> : vector<8xi64>").s).s,
              em(E, "arith.constant dense<52> : vector<8xi64>").s);
#undef C
  return em(E, "arith.mulf %s, %s : %s", y.s, em(E, "arith.bitcast %s : vector<8xi64> to %s", bits.s, vt).s, vt);
}

/* ------------------------------------------------------------------ */
/* Static mask                                                        */

static V and1(K *k, V a, V b) { return bin(k, "arith.andi", a, b, "i1"); }
static V or1(K *k, V a, V b) { return bin(k, "arith.ori", a, b, "i1"); }
static V c64(K *k, int64_t v) { return em_int(E, v, "i64"); }

/* ------------------------------------------------------------------ */
/* Row lists and selection                                            */

static V n_get(K *k) { return em_get(E, k->n, "index"); }

/* Orders doubles as unsigned 64-bit keys; NaN gets the lowest key, as the
 * reference sorts NaN last. */
static V order_key(K *k, V x) {
  V bits = em(E, "arith.bitcast %s : f64 to i64", x.s);
  V sign = bin(k, "arith.shrsi", bits, c64(k, 63), "i64");
  V flip = bin(k, "arith.ori", sign, c64(k, INT64_MIN), "i64");
  V key = bin(k, "arith.xori", bits, flip, "i64");
  return sel(k, cmpf(k, "uno", x, x, "f64"), c64(k, 0), key, "i64");
}

/* Copies entry `from` of the lists to `to` (idx, val, and pr if carry_p). */
static void list_move(K *k, V from, V to, bool carry_p) {
  store(k, load(k, k->idx, from, "memref<?xindex>"), k->idx, to, "memref<?xindex>");
  store(k, load(k, k->val, from, "memref<?xf64>"), k->val, to, "memref<?xf64>");
  if (carry_p)
    store(k, load(k, k->pr, from, "memref<?xf32>"), k->pr, to, "memref<?xf32>");
}

/* Moves the entries c + t for each set bit t of `bits` (i64) to the write
 * position w, in order, visiting only the set bits (count trailing zeros,
 * clear the lowest bit). */
static void move_set_bits(K *k, V c, V bits, V w, bool carry_p) {
  V m = em_var(E, "i64");
  em_set(E, m, bits, "i64");
  V cnt = em(E, "arith.index_castui %s : i64 to index", em(E, "math.ctpop %s : i64", bits.s).s);
  em_for(E, k->c0, cnt, k->c1);
  V mv = em_get(E, m, "i64");
  V pos = addx(k, c, em(E, "arith.index_castui %s : i64 to index", em(E, "math.cttz %s : i64", mv.s).s));
  V wv = em_get(E, w, "index");
  list_move(k, pos, wv, carry_p);
  em_set(E, w, addc(k, wv, 1), "index");
  em_set(E, m, bin(k, "arith.andi", mv, bin(k, "arith.subi", mv, em_int(E, 1, "i64"), "i64"), "i64"), "i64");
  em_end(E);
}

/* The 64 lanes of an i1 vector as the bits of an i64 (lane t is bit t). */
static V bits64(K *k, V v) {
  return em(E, "vector.extract %s[0] : i64 from vector<1xi64>", em(E, "vector.bitcast %s : vector<64xi1> to vector<1xi64>", v.s).s);
}

/* The flags [c, c + 64) as the bits of an i64. `flag` has 64 bytes of
 * room past any list, and its readers first zero the 64 past their end
 * (flags_end), so whole 64-byte loads need no mask. */
static V flag_bits(K *k, V c) {
  V zero = em(E, "arith.constant dense<0> : vector<64xi8>");
  V f = em(E, "vector.load %s[%s] : memref<?xi8>, vector<64xi8>", k->flag.s, c.s);
  return bits64(k, em(E, "arith.cmpi ne, %s, %s : vector<64xi8>", f.s, zero.s));
}
static void flags_end(K *k, V n) {
  em_do(E, "vector.store %s, %s[%s] : memref<?xi8>, vector<64xi8>", em(E, "arith.constant dense<0> : vector<64xi8>").s,
        k->flag.s, n.s);
}

/* Keeps the entries whose `flag` (0 or 1) is set, in order. The flags are
 * read 64 at a time as a bit mask and only the set bits are visited: a
 * selection that keeps a scattered tenth moves a tenth of the list, with
 * one well-predicted loop per 64 entries. Entries only move down (the
 * write position never passes the read one), so the lists are compacted
 * in place. */
static void compact_flagged(K *k, bool carry_p) {
  V w = em_var(E, "index");
  em_set(E, w, k->c0, "index");
  V n = n_get(k);
  flags_end(k, n);
  V c = em_for(E, k->c0, n, em_index(E, 64));
  move_set_bits(k, c, flag_bits(k, c), w, carry_p);
  em_end(E);
  em_set(E, k->n, em_get(E, w, "index"), "index");
}

/* A pass over [0, n) in vectors of `lanes` is two loops, so that the whole
 * vectors need no mask (these passes are much of a first stage's time):
 * tail 0 opens the loop over [0, full) with an all-true mask, tail 1 the
 * last partial vector at full, if any, with its lanes' mask. full is n
 * rounded down to whole vectors; close each with em_end. */
static V lanes_open(K *k, V n, V full, int lanes, int tail, V *mask) {
  if (!tail) {
    *mask = em(E, "arith.constant dense<true> : vector<%dxi1>", lanes);
    return em_for(E, k->c0, full, em_index(E, lanes));
  }
  em_if(E, cmpi(k, "ult", full, n, "index"));
  *mask = em(E, "vector.create_mask %s : vector<%dxi1>", bin(k, "arith.subi", n, full, "index").s, lanes);
  return full;
}

/* A mask of 8 or 16 lanes as the bits of an i8 or i16 (lane l is bit l). */
static V mask_bits(K *k, V m, int lanes) {
  const char *bt = lanes == 8 ? "i8" : "i16";
  return em(E, "vector.extract %s[0] : %s from vector<1x%s>",
            em(E, "vector.bitcast %s : vector<%dxi1> to vector<1x%s>", m.s, lanes, bt).s, bt, bt);
}

/* The number of set lanes of a mask of 8 or 16 lanes. */
static V mask_count(K *k, V m, int lanes) {
  const char *bt = lanes == 8 ? "i8" : "i16";
  return em(E, "arith.index_castui %s : %s to index", em(E, "math.ctpop %s : %s", mask_bits(k, m, lanes).s, bt).s, bt);
}

/* The number of the first n entries of buf (f64 in 8-lane vectors, or f32
 * in 16-lane ones) that are >= t. */
static V count_ge_in(K *k, V buf, V n, V t, bool f64) {
  int lanes = f64 ? VL64 : VL32;
  const char *et = f64 ? "f64" : "f32";
  char vt[32], mt[32];
  snprintf(vt, sizeof vt, "vector<%dx%s>", lanes, et);
  snprintf(mt, sizeof mt, "memref<?x%s>", et);
  /* the compare's mask counted by popcount into a scalar: a vector count
   * (mask to 0/-1 lanes, subtracted) puts a second operation on the
   * compare's port, and the compare is nearly all these loops do */
  V acc = em_var(E, "index");
  em_set(E, acc, k->c0, "index");
  V tb = em(E, "vector.broadcast %s : %s to %s", t.s, et, vt);
  V ninf = em(E, "arith.constant dense<%s> : %s", f64 ? "0xFFF0000000000000" : "0xFF800000", vt);
  V full = bin(k, "arith.andi", n, em_index(E, -(int64_t)lanes), "index");
  for (int tail = 0; tail < 2; tail++) {
    V mask, c = lanes_open(k, n, full, lanes, tail, &mask);
    V x = em(E, "vector.maskedload %s[%s], %s, %s : %s, vector<%dxi1>, %s into %s", buf.s, c.s, mask.s, ninf.s, mt, lanes, vt, vt);
    em_set(E, acc, addx(k, em_get(E, acc, "index"), mask_count(k, em(E, "arith.cmpf oge, %s, %s : %s", x.s, tb.s, vt), lanes)),
           "index");
    em_end(E);
  }
  return em_get(E, acc, "index");
}

/* The number of list entries with val >= t (f64). */
static V count_ge(K *k, V t) { return count_ge_in(k, k->val, n_get(k), t, true); }

/* z with P(X > z) = tail for a standard normal X: a piecewise-linear
 * table, for the first guesses of top-k thresholds. */
static V tail_z(K *k, V tail) {
  static const double zq[][2] = {{0.0, 3.5},     {0.001, 3.090}, {0.005, 2.576}, {0.01, 2.326}, {0.02, 2.054},
                                 {0.05, 1.645},  {0.1, 1.282},   {0.15, 1.036},  {0.2, 0.842},  {0.3, 0.524},
                                 {0.4, 0.253},   {0.5, 0.0},     {0.6, -0.253},  {0.7, -0.524}, {0.8, -0.842},
                                 {0.9, -1.282},  {0.95, -1.645}, {0.99, -2.326}, {1.0, -3.5}};
  V z = em_float(E, 0.0, "f64");
  for (size_t a = 0; a + 1 < sizeof zq / sizeof *zq; a++) {
    V in = cmpf(k, "oge", tail, em_float(E, zq[a][0], "f64"), "f64");
    V zl = bin(k, "arith.addf", em_float(E, zq[a][1], "f64"),
               bin(k, "arith.mulf", bin(k, "arith.subf", tail, em_float(E, zq[a][0], "f64"), "f64"),
                   em_float(E, (zq[a + 1][1] - zq[a][1]) / (zq[a + 1][0] - zq[a][0]), "f64"), "f64"),
               "f64");
    z = sel(k, in, zl, z, "f64");
  }
  return z;
}

/* A pass's running statistics of a list's values, for top-k's brackets
 * and first guesses: per lane the minimum and maximum (of the lanes in
 * `mask`), and the sum and sum of squares (masked lanes hold 0), which
 * also tell whether every value was finite (range_stats_finite). vt is
 * the vector type, lanes its length. */
typedef struct {
  V mn, mx, sm, sq;
} RangeStats;

static RangeStats range_stats_init(K *k, const char *vt, const char *et) {
  RangeStats r = {em_var(E, vt), em_var(E, vt), em_var(E, vt), em_var(E, vt)};
  bool f64 = strcmp(et, "f64") == 0;
  em_set(E, r.mn, em(E, "arith.constant dense<%s> : %s", f64 ? "0x7FF0000000000000" : "0x7F800000", vt), vt);
  em_set(E, r.mx, em(E, "arith.constant dense<%s> : %s", f64 ? "0xFFF0000000000000" : "0xFF800000", vt), vt);
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  em_set(E, r.sm, zero, vt);
  em_set(E, r.sq, zero, vt);
  return r;
}

static void range_stats_add(K *k, const RangeStats *r, const char *vt, int lanes, V mask, V x) {
  /* min and max as compare-select (one vmin/vmax): NaN only matters when
   * the sums send the list elsewhere anyway */
  V mo = em_get(E, r->mn, vt), xo = em_get(E, r->mx, vt);
  V lt = em(E, "arith.andi %s, %s : vector<%dxi1>", mask.s, em(E, "arith.cmpf olt, %s, %s : %s", x.s, mo.s, vt).s, lanes);
  V gt = em(E, "arith.andi %s, %s : vector<%dxi1>", mask.s, em(E, "arith.cmpf ogt, %s, %s : %s", x.s, xo.s, vt).s, lanes);
  em_set(E, r->mn, em(E, "arith.select %s, %s, %s : vector<%dxi1>, %s", lt.s, x.s, mo.s, lanes, vt), vt);
  em_set(E, r->mx, em(E, "arith.select %s, %s, %s : vector<%dxi1>, %s", gt.s, x.s, xo.s, lanes, vt), vt);
  em_set(E, r->sm, em(E, "arith.addf %s, %s : %s", em_get(E, r->sm, vt).s, x.s, vt), vt);
  em_set(E, r->sq, em(E, "vector.fma %s, %s, %s : %s", x.s, x.s, em_get(E, r->sq, vt).s, vt), vt);
}

/* Whether every value the statistics saw was finite: a NaN or an infinity
 * makes a lane's sum NaN or infinite for good. So can an overflow of the
 * sums (values beyond about 1e19 in f32), which only sends the list to
 * the slower, exact path; no per-value test is needed. */
static V range_stats_finite(K *k, const RangeStats *r, const char *vt, int lanes) {
  V t = em(E, "arith.addf %s, %s : %s", em_get(E, r->sm, vt).s, em_get(E, r->sq, vt).s, vt);
  V d = em(E, "arith.subf %s, %s : %s", t.s, t.s, vt); /* NaN exactly when t is not finite */
  V bad = em(E, "arith.cmpf uno, %s, %s : %s", d.s, d.s, vt);
  V any = em(E, "vector.reduction <or>, %s : vector<%dxi1> into i1", bad.s, lanes);
  return em(E, "arith.xori %s, %s : i1", any.s, em_int(E, 1, "i1").s);
}

/* A top-k bracket's first state (variables of type ft, and their counts)
 * from the values' range [vmin, vmax] over n entries and cmax =
 * count(>= vmax): lo with count(>= lo) >= kk, hi with count(>= hi) < kk
 * (+inf when at least kk entries equal the maximum). */
static void bracket_start(K *k, const char *ft, V vmin, V vmax, V cmax, V n, V kk, V *lo, V *hi, V *clo, V *chi) {
  *lo = em_var(E, ft), *hi = em_var(E, ft), *clo = em_var(E, "index"), *chi = em_var(E, "index");
  V at_max = cmpi(k, "uge", cmax, kk, "index");
  em_set(E, *lo, sel(k, at_max, vmax, vmin, ft), ft);
  em_set(E, *clo, sel(k, at_max, cmax, n, "index"), "index");
  em_set(E, *hi, sel(k, at_max, em_float(E, INFINITY, ft), vmax, ft), ft);
  em_set(E, *chi, sel(k, at_max, k->c0, cmax, "index"), "index");
}

/* keep_top's fast path for long lists of finite values: bisect the value
 * range with vectorized counts until the kk-th largest value T lies in a
 * bracket [lo, hi) of at most 256 entries (count(val >= lo) >= kk >
 * count(val >= hi)); everything >= hi is above T and kept, everything
 * below lo is below T and dropped, and the bracket's entries are ranked
 * exactly among themselves (value, then list order: the lower key index).
 * The result is the radix path's, exactly. Sets `handled` when it did the
 * selection; lists with a NaN or an infinity, or whose bracket stays wide
 * (a run of equal values), are left to the radix path. */
static void keep_top_bisect(K *k, V kk, bool carry_p, V handled) {
  const char *vt = "vector<8xf64>";
  V n = n_get(k);
  em_if(E, cmpi(k, "uge", n, em_index(E, 512), "index"));
  /* the range and finiteness, one pass */
  V ninf = em(E, "arith.constant dense<0xFFF0000000000000> : %s", vt);
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  RangeStats st = range_stats_init(k, vt, "f64");
  V c = em_for(E, k->c0, n, em_index(E, 8));
  V mask = em(E, "vector.create_mask %s : vector<8xi1>", bin(k, "arith.subi", n, c, "index").s);
  V x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf64>, vector<8xi1>, %s into %s", k->val.s, c.s, mask.s,
           zero.s, vt, vt);
  range_stats_add(k, &st, vt, 8, mask, x);
  em_end(E);
  em_if(E, range_stats_finite(k, &st, vt, 8));
  V vmin = em(E, "vector.reduction <minimumf>, %s : %s into f64", em_get(E, st.mn, vt).s, vt);
  V vmax = em(E, "vector.reduction <maximumf>, %s : %s into f64", em_get(E, st.mx, vt).s, vt);
  V lo, hi, clo, chi;
  bracket_start(k, "f64", vmin, vmax, count_ge(k, vmax), n, kk, &lo, &hi, &clo, &chi);
  /* Two guesses first: the values' mean plus z(kk/n) standard deviations,
   * z from the normal distribution's upper tail (a piecewise-linear table),
   * then a tenth of a deviation towards the target. Typical rows are close
   * to normal, so the bracket is then a few dozen entries wide; a wrong
   * guess only costs its count, since the bracket keeps its invariant. */
  V nf = idx_f64(k, n);
  V mean = bin(k, "arith.divf", em(E, "vector.reduction <add>, %s : %s into f64", em_get(E, st.sm, vt).s, vt), nf, "f64");
  V msq = bin(k, "arith.divf", em(E, "vector.reduction <add>, %s : %s into f64", em_get(E, st.sq, vt).s, vt), nf, "f64");
  V var = bin(k, "arith.maxnumf", bin(k, "arith.subf", msq, bin(k, "arith.mulf", mean, mean, "f64"), "f64"),
              em_float(E, 0.0, "f64"), "f64");
  V sd = em(E, "math.sqrt %s : f64", var.s);
  V tail = bin(k, "arith.divf", idx_f64(k, kk), nf, "f64");
  V z = tail_z(k, tail);
  V below = em_var(E, "i1"); /* the first guess was at or below the target */
  em_set(E, below, em_int(E, 1, "i1"), "i1");
  V step = bin(k, "arith.mulf", em_float(E, 0.1, "f64"), sd, "f64");
  for (int guess = 0; guess < 2; guess++) {
    V l = em_get(E, lo, "f64"), h = em_get(E, hi, "f64");
    V t = guess == 0 ? bin(k, "arith.addf", mean, bin(k, "arith.mulf", z, sd, "f64"), "f64")
                     : sel(k, em_get(E, below, "i1"), bin(k, "arith.addf", l, step, "f64"),
                           bin(k, "arith.subf", h, step, "f64"), "f64");
    em_if(E, and1(k, cmpf(k, "ogt", t, l, "f64"), cmpf(k, "olt", t, h, "f64")));
    V cg = count_ge(k, t);
    V up = cmpi(k, "uge", cg, kk, "index");
    if (guess == 0)
      em_set(E, below, up, "i1");
    em_set(E, lo, sel(k, up, t, l, "f64"), "f64");
    em_set(E, clo, sel(k, up, cg, em_get(E, clo, "index"), "index"), "index");
    em_set(E, hi, sel(k, up, h, t, "f64"), "f64");
    em_set(E, chi, sel(k, up, em_get(E, chi, "index"), cg, "index"), "index");
    em_end(E);
  }
  V it = em_for(E, k->c0, em_index(E, 64), k->c1);
  V l = em_get(E, lo, "f64"), h = em_get(E, hi, "f64");
  /* odd steps interpolate the target count between the bracket's ends (the
   * values are roughly uniform locally), even steps halve: a bad
   * interpolation costs one step, not convergence */
  V frac = bin(k, "arith.divf", idx_f64(k, bin(k, "arith.subi", em_get(E, clo, "index"), kk, "index")),
               idx_f64(k, bin(k, "arith.subi", em_get(E, clo, "index"), em_get(E, chi, "index"), "index")), "f64");
  V odd = cmpi(k, "ne", bin(k, "arith.andi", it, k->c1, "index"), k->c0, "index");
  frac = sel(k, and1(k, odd, cmpi(k, "ult", em_get(E, chi, "index"), kk, "index")), frac, em_float(E, 0.5, "f64"), "f64");
  /* keep the guess off the ends, where a count would not move the bracket */
  frac = bin(k, "arith.minnumf", bin(k, "arith.maxnumf", frac, em_float(E, 0.05, "f64"), "f64"), em_float(E, 0.95, "f64"), "f64");
  V mid = bin(k, "arith.addf", l, bin(k, "arith.mulf", bin(k, "arith.subf", h, l, "f64"), frac, "f64"), "f64");
  V wide = cmpi(k, "ugt", bin(k, "arith.subi", em_get(E, clo, "index"), em_get(E, chi, "index"), "index"),
                em_index(E, 64), "index");
  V inside = and1(k, cmpf(k, "ogt", mid, l, "f64"), cmpf(k, "olt", mid, h, "f64"));
  em_if(E, and1(k, wide, inside));
  V cm = count_ge(k, mid);
  V up = cmpi(k, "uge", cm, kk, "index");
  em_set(E, lo, sel(k, up, mid, l, "f64"), "f64");
  em_set(E, clo, sel(k, up, cm, em_get(E, clo, "index"), "index"), "index");
  em_set(E, hi, sel(k, up, h, mid, "f64"), "f64");
  em_set(E, chi, sel(k, up, em_get(E, chi, "index"), cm, "index"), "index");
  em_end(E);
  em_end(E);
  V g = bin(k, "arith.subi", em_get(E, clo, "index"), em_get(E, chi, "index"), "index");
  em_if(E, cmpi(k, "ule", g, em_index(E, 256), "index"));
  {
    V lof = em_get(E, lo, "f64"), hif = em_get(E, hi, "f64");
    V lob = em(E, "vector.broadcast %s : f64 to %s", lof.s, vt), hib = em(E, "vector.broadcast %s : f64 to %s", hif.s, vt);
    V bpos = em_alloca(E, 264, "index");
    V nb = em_var(E, "index");
    em_set(E, nb, k->c0, "index");
    /* flags: 1 above the bracket; the bracket's positions, gathered */
    c = em_for(E, k->c0, n, em_index(E, 8));
    mask = em(E, "vector.create_mask %s : vector<8xi1>", bin(k, "arith.subi", n, c, "index").s);
    x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf64>, vector<8xi1>, %s into %s", k->val.s, c.s, mask.s,
           ninf.s, vt, vt);
    V above = em(E, "arith.cmpf oge, %s, %s : %s", x.s, hib.s, vt);
    em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<?xi8>, vector<8xi1>, vector<8xi8>", k->flag.s, c.s, mask.s,
          em(E, "arith.extui %s : vector<8xi1> to vector<8xi8>", above.s).s);
    V inb = em(E, "arith.andi %s, %s : vector<8xi1>", em(E, "arith.cmpf oge, %s, %s : %s", x.s, lob.s, vt).s,
               em(E, "arith.cmpf olt, %s, %s : %s", x.s, hib.s, vt).s);
    /* few vectors hold a bracket entry: a branch, then the lanes one by
     * one (a compressing store to memory is slow on some CPUs) */
    em_if(E, em(E, "vector.reduction <or>, %s : vector<8xi1> into i1", inb.s));
    for (int lane = 0; lane < 8; lane++) {
      em_if(E, em(E, "vector.extract %s[%d] : i1 from vector<8xi1>", inb.s, lane));
      V nbv = em_get(E, nb, "index");
      store(k, addc(k, c, lane), bpos, nbv, "memref<264xindex>");
      em_set(E, nb, addc(k, nbv, 1), "index");
      em_end(E);
    }
    em_end(E);
    em_end(E);
    /* the bracket's `need` largest, ties to the lower position */
    V need = bin(k, "arith.subi", kk, em_get(E, chi, "index"), "index");
    V nbn = em_get(E, nb, "index");
    V e = em_for(E, k->c0, nbn, k->c1);
    V pe = load(k, bpos, e, "memref<264xindex>");
    V ve = load(k, k->val, pe, "memref<?xf64>");
    V rank = em_var(E, "index");
    em_set(E, rank, k->c0, "index");
    V f = em_for(E, k->c0, nbn, k->c1);
    V pf = load(k, bpos, f, "memref<264xindex>");
    V vf = load(k, k->val, pf, "memref<?xf64>");
    V better = or1(k, cmpf(k, "ogt", vf, ve, "f64"), and1(k, cmpf(k, "oeq", vf, ve, "f64"), cmpi(k, "ult", pf, pe, "index")));
    V rv = em_get(E, rank, "index");
    em_set(E, rank, sel(k, better, addc(k, rv, 1), rv, "index"), "index");
    em_end(E);
    V keep = cmpi(k, "ult", em_get(E, rank, "index"), need, "index");
    store(k, em(E, "arith.extui %s : i1 to i8", keep.s), k->flag, pe, "memref<?xi8>");
    em_end(E);
    compact_flagged(k, carry_p);
    em_set(E, handled, em_int(E, 1, "i1"), "i1");
  }
  em_end(E);
  em_end(E);
  em_end(E);
}

/* Keeps the `kk` (index) entries with the largest val, ties to the earlier
 * entry (lists are in key order, so: to the lower key index). The k-th
 * largest key is found a byte at a time from the top (8 counting passes
 * over the keys that still share the prefix found so far), then one pass
 * keeps everything above it and the first ties. */
static void keep_top(K *k, V kk, bool carry_p) {
  V n = n_get(k);
  em_if(E, cmpi(k, "ult", kk, n, "index"));
  V handled = em_var(E, "i1");
  em_set(E, handled, em_int(E, 0, "i1"), "i1");
  keep_top_bisect(k, kk, carry_p, handled);
  em_if(E, em(E, "arith.xori %s, %s : i1", em_get(E, handled, "i1").s, em_int(E, 1, "i1").s));
  n = n_get(k);
  /* The kk-th largest key, a byte at a time from the top: count the keys
   * that share the prefix found so far by their next byte, and descend into
   * the byte where the count from the top reaches what is still needed. */
  V thr = em_var(E, "i64"), mask = em_var(E, "i64"), need = em_var(E, "index"), cnt = em_var(E, "index");
  V done = em_var(E, "i1"), live = em_var(E, "index"), w = em_var(E, "index");
  V hist = em_alloca(E, 256, "index");
  em_set(E, thr, c64(k, 0), "i64");
  em_set(E, mask, c64(k, 0), "i64");
  em_set(E, need, kk, "index");
  /* the keys once; each pass keeps only those that still share the prefix */
  V c = em_for(E, k->c0, n, k->c1);
  store(k, order_key(k, load(k, k->val, c, "memref<?xf64>")), k->keys, c, "memref<?xi64>");
  em_end(E);
  em_set(E, live, n, "index");
  V pass = em_for(E, k->c0, em_index(E, 8), k->c1);
  V sh = bin(k, "arith.subi", c64(k, 56), bin(k, "arith.muli", to_i64(k, pass), c64(k, 8), "i64"), "i64");
  V hb = em_for(E, k->c0, em_index(E, 256), k->c1);
  store(k, k->c0, hist, hb, "memref<256xindex>");
  em_end(E);
  V pre = em_get(E, thr, "i64"), mk = em_get(E, mask, "i64");
  em_set(E, w, k->c0, "index");
  c = em_for(E, k->c0, em_get(E, live, "index"), k->c1);
  V key = load(k, k->keys, c, "memref<?xi64>");
  em_if(E, cmpi(k, "eq", bin(k, "arith.andi", key, mk, "i64"), pre, "i64"));
  V byte = to_index(k, bin(k, "arith.andi", bin(k, "arith.shrui", key, sh, "i64"), c64(k, 255), "i64"));
  store(k, addc(k, load(k, hist, byte, "memref<256xindex>"), 1), hist, byte, "memref<256xindex>");
  V wv = em_get(E, w, "index");
  store(k, key, k->keys, wv, "memref<?xi64>");
  em_set(E, w, addc(k, wv, 1), "index");
  em_end(E);
  em_end(E);
  em_set(E, live, em_get(E, w, "index"), "index");
  em_set(E, cnt, k->c0, "index");
  em_set(E, done, em_int(E, 0, "i1"), "i1");
  V nd = em_get(E, need, "index");
  V dg = em_for(E, k->c0, em_index(E, 256), k->c1);
  V digit = bin(k, "arith.subi", em_index(E, 255), dg, "index");
  V hv = load(k, hist, digit, "memref<256xindex>");
  V cv = em_get(E, cnt, "index");
  V reach = and1(k, cmpi(k, "uge", addx(k, cv, hv), nd, "index"),
                 em(E, "arith.xori %s, %s : i1", em_get(E, done, "i1").s, em_int(E, 1, "i1").s));
  em_if(E, reach);
  em_set(E, thr, bin(k, "arith.ori", pre, bin(k, "arith.shli", em(E, "arith.index_cast %s : index to i64", digit.s), sh, "i64"), "i64"), "i64");
  em_set(E, need, bin(k, "arith.subi", nd, cv, "index"), "index");
  em_set(E, done, em_int(E, 1, "i1"), "i1");
  em_else(E);
  em_set(E, cnt, addx(k, cv, hv), "index");
  em_end(E);
  em_end(E);
  em_set(E, mask, bin(k, "arith.ori", mk, bin(k, "arith.shli", c64(k, 255), sh, "i64"), "i64"), "i64");
  em_end(E);
  /* ties allowed = kk - count(key > thr) */
  V t = em_get(E, thr, "i64");
  em_set(E, cnt, k->c0, "index");
  c = em_for(E, k->c0, n, k->c1);
  key = order_key(k, load(k, k->val, c, "memref<?xf64>"));
  V cv2 = em_get(E, cnt, "index");
  em_set(E, cnt, sel(k, cmpi(k, "ugt", key, t, "i64"), addc(k, cv2, 1), cv2, "index"), "index");
  em_end(E);
  V ties = em_var(E, "index");
  em_set(E, ties, bin(k, "arith.subi", kk, em_get(E, cnt, "index"), "index"), "index");
  c = em_for(E, k->c0, n, k->c1);
  key = order_key(k, load(k, k->val, c, "memref<?xf64>"));
  V tv = em_get(E, ties, "index");
  V tie = and1(k, cmpi(k, "eq", key, t, "i64"), cmpi(k, "ugt", tv, k->c0, "index"));
  V keep = or1(k, cmpi(k, "ugt", key, t, "i64"), tie);
  em_set(E, ties, sel(k, tie, bin(k, "arith.subi", tv, k->c1, "index"), tv, "index"), "index");
  store(k, em(E, "arith.extui %s : i1 to i8", keep.s), k->flag, c, "memref<?xi8>");
  em_end(E);
  compact_flagged(k, carry_p);
  em_end(E);
  em_end(E);
}

/* ceil(ratio * n) in double, as an index. Through integer conversion (x is
 * in [0, n], far below 2^53), which stays exact and needs no libm. */
static V ceil_ratio(K *k, double ratio, V n) {
  V x = bin(k, "arith.mulf", em_float(E, ratio, "f64"), idx_f64(k, n), "f64");
  V t = em(E, "arith.fptoui %s : f64 to i64", x.s);
  V below = cmpf(k, "olt", em(E, "arith.uitofp %s : i64 to f64", t.s), x, "f64");
  V c = sel(k, below, bin(k, "arith.addi", t, c64(k, 1), "i64"), t, "i64");
  return em(E, "arith.index_castui %s : i64 to index", c.s);
}

/* round(y), half away from zero, for |y| <= 2^31 - 1 (a quantization grid
 * value), exactly, without libm. */
static V round_half_away(K *k, V y) {
  V a = em(E, "math.absf %s : f64", y.s);
  V t = em(E, "arith.sitofp %s : i64 to f64", em(E, "arith.fptosi %s : f64 to i64", a.s).s);
  V up = cmpf(k, "oge", bin(k, "arith.subf", a, t, "f64"), em_float(E, 0.5, "f64"), "f64");
  V r = sel(k, up, bin(k, "arith.addf", t, em_float(E, 1.0, "f64"), "f64"), t, "f64");
  r = em(E, "math.copysign %s, %s : f64", r.s, y.s);
  /* from 2^52 on every double is an integer; Inf and NaN (which the
   * integer conversion would turn into garbage) stay what they are, as
   * C's round() leaves them, so the clamp after sends NaN to -qmax */
  return sel(k, cmpf(k, "olt", a, em_float(E, 0x1p52, "f64"), "f64"), r, y, "f64");
}

/* Applies one selection rule (docs/semantics.md §4.1) to the row lists. */
static void select_rule(K *k, SaKeep keep, bool carry_p) {
  switch (keep.kind) {
  case KEEP_ALL:
    return;
  case KEEP_TOP_RATIO:
    keep_top(k, ceil_ratio(k, keep.value, n_get(k)), carry_p);
    return;
  case KEEP_TOP_COUNT: {
    V n = n_get(k);
    V want = em(E, "arith.index_castui %s : i64 to index", c64(k, (int64_t)keep.value).s);
    keep_top(k, bin(k, "arith.minui", want, n, "index"), carry_p);
    return;
  }
  case KEEP_MEAN: {
    V n = n_get(k);
    em_if(E, cmpi(k, "ugt", n, k->c0, "index"));
    V sum = em_var(E, "f64"), mx = em_var(E, "f64"), mn = em_var(E, "f64");
    em_set(E, sum, em_float(E, 0.0, "f64"), "f64");
    em_set(E, mx, em_float(E, -INFINITY, "f64"), "f64");
    em_set(E, mn, em_float(E, INFINITY, "f64"), "f64");
    V c = em_for(E, k->c0, n, k->c1);
    V a = load(k, k->val, c, "memref<?xf64>");
    em_set(E, sum, bin(k, "arith.addf", em_get(E, sum, "f64"), a, "f64"), "f64");
    em_set(E, mx, bin(k, "arith.maxnumf", em_get(E, mx, "f64"), a, "f64"), "f64");
    em_set(E, mn, bin(k, "arith.minnumf", em_get(E, mn, "f64"), a, "f64"), "f64");
    em_end(E);
    double alpha = keep.value;
    V mean = bin(k, "arith.divf", em_get(E, sum, "f64"), idx_f64(k, n), "f64");
    V mxv = em_get(E, mx, "f64");
    V ext = alpha >= 0 ? mxv : em_get(E, mn, "f64");
    V t1 = bin(k, "arith.mulf", em_float(E, alpha >= 0 ? alpha : -alpha, "f64"), ext, "f64");
    V t2 = bin(k, "arith.mulf", em_float(E, alpha >= 0 ? 1 - alpha : 1 + alpha, "f64"), mean, "f64");
    V theta = bin(k, "arith.minnumf", bin(k, "arith.addf", t1, t2, "f64"), mxv, "f64");
    c = em_for(E, k->c0, n, k->c1);
    V ok = cmpf(k, "oge", load(k, k->val, c, "memref<?xf64>"), theta, "f64");
    store(k, em(E, "arith.extui %s : i1 to i8", ok.s), k->flag, c, "memref<?xi8>");
    em_end(E);
    compact_flagged(k, carry_p);
    em_end(E);
    return;
  }
  }
}

/* val[c] = scale * (a[row i] . b[row idx[c]]) for the list, in f64; b's
 * rows are found by b_row. For grid rows (a_steps non-empty) the value is
 * ((scale * a_steps[a_step_at]) * b_steps[row]) * (integer dot), as the
 * reference computes it, so that ties are exact. */
typedef V (*RowOff)(K *k, V row);

static void list_scores_f64(K *k, Buf a, V a_off, Buf b, RowOff b_row, int64_t len, V a_steps, V a_step_at,
                            V b_steps, RowOff b_step) {
  bool grid = a_steps.s[0] != 0;
  V coef = em_float(E, k->s->scale, "f64");
  if (grid)
    coef = bin(k, "arith.mulf", coef, load(k, a_steps, a_step_at, "memref<?xf64>"), "f64");
  V c = em_for(E, k->c0, n_get(k), k->c1);
  /* without a mask or token pruning the first stage's list is every key in
   * order, and the loads need no indirection (so they vectorize) */
  bool every_key = grid && k->fsc_off.s[0] && !k->p->mask && k->s->token_keep >= 1.0;
  V j = every_key ? c : load(k, k->idx, c, "memref<?xindex>");
  /* grids: an exact integer dot in f32 (the first stage's computed for a
   * block of rows beforehand); scores: f64 */
  V d;
  if (grid && k->fsc_off.s[0])
    d = em(E, "arith.extf %s : f32 to f64", load(k, k->fsc, addx(k, k->fsc_off, j), "memref<?xf32>").s);
  else
    d = grid ? em(E, "arith.extf %s : f32 to f64", dot(k, a, a_off, b, b_row(k, j), len, "f32").s)
             : dot(k, a, a_off, b, b_row(k, j), len, "f64");
  V cj = grid ? bin(k, "arith.mulf", coef, load(k, b_steps, b_step(k, j), "memref<?xf64>"), "f64") : coef;
  store(k, bin(k, "arith.mulf", cj, d, "f64"), k->val, c, "memref<?xf64>");
  em_end(E);
}

/* The number of the first n entries of the f32 buffer `a` that are >= t. */
static V count_ge32(K *k, V a, V n, V t) { return count_ge_in(k, a, n, t, false); }

/* Relative and absolute margins of the f32 first-stage approximations
 * below: a = f32(d) * f32(step) differs from the exact step * d by at
 * most 2^-23 |a| plus the subnormal range's absolute rounding, and the
 * reference's (coef * step) * d in f64 from step * d * coef by 2^-51
 * relative; these bounds are many times that. */
/* The most keys first_top_fast ranks exactly (its band), and the types
 * of their positions (room for one whole vector past BAND_MAX), exact
 * scores and slots in a list. */
#define BAND_MAX 64
#define BPOS_T "memref<80xi32>"
#define BVAL_T "memref<64xf64>"
#define BSLOT_T "memref<64xindex>"

#define APPROX_REL 0x1p-19
#define APPROX_ABS 0x1p-120

/* The positions of the set flags in [0, n) to the list (idx, n), in
 * order: 64 flags at a time as the bits of an i64, visiting the set ones. */
static void flags_to_idx(K *k, V n) {
  V w = em_var(E, "index");
  em_set(E, w, k->c0, "index");
  V c = em_for(E, k->c0, n, em_index(E, 64));
  V bits = flag_bits(k, c);
  V mb = em_var(E, "i64");
  em_set(E, mb, bits, "i64");
  em_for(E, k->c0, em(E, "arith.index_castui %s : i64 to index", em(E, "math.ctpop %s : i64", bits.s).s), k->c1);
  V mv = em_get(E, mb, "i64");
  V wv = em_get(E, w, "index");
  store(k, addx(k, c, em(E, "arith.index_castui %s : i64 to index", em(E, "math.cttz %s : i64", mv.s).s)), k->idx, wv,
        "memref<?xindex>");
  em_set(E, w, addc(k, wv, 1), "index");
  em_set(E, mb, bin(k, "arith.andi", mv, bin(k, "arith.subi", mv, em_int(E, 1, "i64"), "i64"), "i64"), "i64");
  em_end(E);
  em_end(E);
  em_set(E, k->n, em_get(E, w, "index"), "index");
}

/* The first selection stage's top-k (ratio or count), when its scores are
 * the first stage's grid dots of every key in order (no mask, no token
 * pruning): ranks f32 approximations a_j = dot_j * step_j instead of the
 * exact f64 scores coef * step_j * dot_j (coef > 0, so the order is the
 * same up to rounding). A bracket [lo, hi) of the approximations holding
 * the kk-th largest is narrowed by counting passes (guessed from the
 * values' mean and deviation, then interpolated, as keep_top_bisect does);
 * with the error margins, a key whose lower bound is above hi's upper
 * bound is above the exact kk-th score and kept, one whose upper bound is
 * below lo's lower bound is dropped, and the few in between get their
 * exact scores and are ranked among themselves (value, then key index).
 * The result is keep_top's on the full list, exactly. Writes the list
 * (idx, n) and sets `handled`; a non-finite value, a bracket that stays
 * wide (a run of equal values) or a wide band leave it to the list path.
 * `a` is the pr buffer, free until softmax. */
static void first_top_fast(K *k, SaKeep keep, V qsteps, V ksteps, V i, V handled) {
  const char *vt = "vector<16xf32>";
  V S = k->S, a = k->pr;
  V kk = keep.kind == KEEP_TOP_RATIO
             ? ceil_ratio(k, keep.value, S)
             : bin(k, "arith.minui", em(E, "arith.index_castui %s : i64 to index", c64(k, (int64_t)keep.value).s), S, "index");
  V coef = bin(k, "arith.mulf", em_float(E, k->s->scale, "f64"), load(k, qsteps, i, "memref<?xf64>"), "f64");
  V ok = and1(k, and1(k, cmpf(k, "ogt", coef, em_float(E, 0.0, "f64"), "f64"), cmpf(k, "olt", coef, em_float(E, INFINITY, "f64"), "f64")),
              and1(k, cmpi(k, "ult", kk, S, "index"), cmpi(k, "ugt", kk, k->c0, "index")));
  em_if(E, ok);
  /* approximations, their range, mean and spread, and whether all are finite */
  V ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  RangeStats stats = range_stats_init(k, vt, "f32");
  /* masked lanes are 0 */
  V full = bin(k, "arith.andi", S, em_index(E, -VL32), "index");
  V c, mask, x;
  for (int tail = 0; tail < 2; tail++) {
    c = lanes_open(k, S, full, VL32, tail, &mask);
    V d = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", k->fsc.s,
             addx(k, k->fsc_off, c).s, mask.s, zero.s, vt, vt);
    V st = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", k->ks32.s, c.s, mask.s, zero.s,
              vt, vt);
    x = em(E, "arith.mulf %s, %s : %s", d.s, st.s, vt);
    em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s", a.s, c.s, mask.s, x.s, vt);
    range_stats_add(k, &stats, vt, VL32, mask, x);
    em_end(E);
  }
  em_if(E, range_stats_finite(k, &stats, vt, VL32));
  V vmin = em(E, "vector.reduction <minimumf>, %s : %s into f32", em_get(E, stats.mn, vt).s, vt);
  V vmax = em(E, "vector.reduction <maximumf>, %s : %s into f32", em_get(E, stats.mx, vt).s, vt);
  /* the bracket starts as [vmin, just above vmax), whose counts are known
   * (S and 0) without a pass; kk values equal to the maximum leave it
   * wide, for the list path */
  V above_max = bin(k, "arith.addf", vmax,
                    bin(k, "arith.addf", bin(k, "arith.mulf", em(E, "math.absf %s : f32", vmax.s), em_float(E, 0x1p-22, "f32"), "f32"),
                        em_float(E, 0x1p-140, "f32"), "f32"),
                    "f32");
  V lo = em_var(E, "f32"), hi = em_var(E, "f32"), clo = em_var(E, "index"), chi = em_var(E, "index");
  em_set(E, lo, vmin, "f32");
  em_set(E, clo, S, "index");
  em_set(E, hi, above_max, "f32");
  em_set(E, chi, k->c0, "index");
  V nf = idx_f64(k, S);
  V sum = em(E, "vector.reduction <add>, %s : %s into f32", em_get(E, stats.sm, vt).s, vt);
  V sum2 = em(E, "vector.reduction <add>, %s : %s into f32", em_get(E, stats.sq, vt).s, vt);
  V mean = bin(k, "arith.divf", em(E, "arith.extf %s : f32 to f64", sum.s), nf, "f64");
  V msq = bin(k, "arith.divf", em(E, "arith.extf %s : f32 to f64", sum2.s), nf, "f64");
  V sd = em(E, "math.sqrt %s : f64", bin(k, "arith.maxnumf", bin(k, "arith.subf", msq, bin(k, "arith.mulf", mean, mean, "f64"), "f64"),
                                          em_float(E, 0.0, "f64"), "f64").s);
  V z = tail_z(k, bin(k, "arith.divf", idx_f64(k, kk), nf, "f64"));
  /* the normal density at z, for the second guess's Newton step */
  V dens = bin(k, "arith.mulf", em(E, "math.exp %s : f64", bin(k, "arith.mulf", em_float(E, -0.5, "f64"), bin(k, "arith.mulf", z, z, "f64"), "f64").s),
               em_float(E, 0.3989422804014327, "f64"), "f64");
  V c0 = em_var(E, "index");
  em_set(E, c0, kk, "index");
  /* two guesses (the normal model's threshold, then a Newton step from its
   * count, pushed 0.01 deviations further so that it usually lands on the
   * other side), then steps that interpolate (odd) or halve (even) until
   * at most 16 entries lie in the bracket. Against the 0.1-deviation
   * second step this replaced, in a simulation: 4.9 -> 2.7 counting
   * passes on normal values, 8.3 -> 6.5 on Student-t(3), 4.4 -> 4.0 on a
   * gamma(2) skew. */
  V it = em_for(E, k->c0, em_index(E, 40), k->c1);
  V l = em_get(E, lo, "f32"), h = em_get(E, hi, "f32");
  V lf = em(E, "arith.extf %s : f32 to f64", l.s), hf64 = em(E, "arith.extf %s : f32 to f64", h.s);
  V cl = em_get(E, clo, "index"), ch = em_get(E, chi, "index");
  V frac = bin(k, "arith.divf", idx_f64(k, bin(k, "arith.subi", cl, kk, "index")), idx_f64(k, bin(k, "arith.subi", cl, ch, "index")),
               "f64");
  V odd = cmpi(k, "ne", bin(k, "arith.andi", it, k->c1, "index"), k->c0, "index");
  frac = sel(k, and1(k, odd, cmpf(k, "olt", hf64, em_float(E, INFINITY, "f64"), "f64")), frac, em_float(E, 0.5, "f64"), "f64");
  frac = bin(k, "arith.minnumf", bin(k, "arith.maxnumf", frac, em_float(E, 0.05, "f64"), "f64"), em_float(E, 0.95, "f64"), "f64");
  V mid = bin(k, "arith.addf", lf, bin(k, "arith.mulf", bin(k, "arith.subf", hf64, lf, "f64"), frac, "f64"), "f64");
  V g0 = bin(k, "arith.addf", mean, bin(k, "arith.mulf", z, sd, "f64"), "f64");
  V c0v = em_get(E, c0, "index");
  V excess = bin(k, "arith.subf", idx_f64(k, c0v), idx_f64(k, kk), "f64");
  V newton = bin(k, "arith.divf", excess, bin(k, "arith.mulf", nf, dens, "f64"), "f64");
  newton = bin(k, "arith.addf", newton,
               sel(k, cmpi(k, "ugt", c0v, kk, "index"), em_float(E, 0.01, "f64"), em_float(E, -0.01, "f64"), "f64"), "f64");
  newton = bin(k, "arith.minnumf", bin(k, "arith.maxnumf", newton, em_float(E, -1.0, "f64"), "f64"), em_float(E, 1.0, "f64"), "f64");
  V g1 = bin(k, "arith.addf", g0, bin(k, "arith.mulf", newton, sd, "f64"), "f64");
  V t64 = sel(k, cmpi(k, "eq", it, k->c0, "index"), g0, sel(k, cmpi(k, "eq", it, k->c1, "index"), g1, mid, "f64"), "f64");
  V t = em(E, "arith.truncf %s : f64 to f32", t64.s);
  V wide = cmpi(k, "ugt", bin(k, "arith.subi", cl, ch, "index"), em_index(E, 16), "index");
  V inside = and1(k, cmpf(k, "ogt", t, l, "f32"), cmpf(k, "olt", t, h, "f32"));
  em_if(E, and1(k, wide, inside));
  V cg = count_ge32(k, a, S, t);
  V up = cmpi(k, "uge", cg, kk, "index");
  em_if(E, cmpi(k, "eq", it, k->c0, "index"));
  em_set(E, c0, cg, "index");
  em_end(E);
  em_set(E, lo, sel(k, up, t, l, "f32"), "f32");
  em_set(E, clo, sel(k, up, cg, cl, "index"), "index");
  em_set(E, hi, sel(k, up, h, t, "f32"), "f32");
  em_set(E, chi, sel(k, up, ch, cg, "index"), "index");
  em_end(E);
  em_end(E);
  /* classify: above (kept), band (ranked exactly), the rest dropped */
  V lo_s = em_get(E, lo, "f32"), hi_s = em_get(E, hi, "f32");
  V lo_l = bin(k, "arith.subf", lo_s, bin(k, "arith.addf", bin(k, "arith.mulf", em(E, "math.absf %s : f32", lo_s.s),
                                                                em_float(E, APPROX_REL, "f32"), "f32"),
                                                           em_float(E, APPROX_ABS, "f32"), "f32"), "f32");
  V hi_u = bin(k, "arith.addf", hi_s, bin(k, "arith.addf", bin(k, "arith.mulf", em(E, "math.absf %s : f32", hi_s.s),
                                                                em_float(E, APPROX_REL, "f32"), "f32"),
                                                           em_float(E, APPROX_ABS, "f32"), "f32"), "f32");
  /* x - m(x) > hi_u and x + m(x) >= lo_l, m(x) = |x| rel + abs, as plain
   * thresholds on x: x > t_above and x >= t_band (solved for each sign of
   * x in f64, then moved outward by 2^-22 before rounding to f32, so that
   * the f32 tests are never less strict than the exact ones) */
  V one64 = em_float(E, 1.0, "f64"), r64 = em_float(E, APPROX_REL, "f64"), a64 = em_float(E, APPROX_ABS, "f64");
  V out = em_float(E, 0x1p-22, "f64");
  V hw = bin(k, "arith.addf", em(E, "arith.extf %s : f32 to f64", hi_u.s), a64, "f64");
  V hpos = cmpf(k, "ogt", hw, em_float(E, 0.0, "f64"), "f64");
  V ta = bin(k, "arith.divf", hw, sel(k, hpos, bin(k, "arith.subf", one64, r64, "f64"), bin(k, "arith.addf", one64, r64, "f64"), "f64"),
             "f64");
  ta = bin(k, "arith.addf", ta, bin(k, "arith.mulf", em(E, "math.absf %s : f64", ta.s), out, "f64"), "f64");
  V lw = bin(k, "arith.subf", em(E, "arith.extf %s : f32 to f64", lo_l.s), a64, "f64");
  V lpos = cmpf(k, "oge", lw, em_float(E, 0.0, "f64"), "f64");
  V tb = bin(k, "arith.divf", lw, sel(k, lpos, bin(k, "arith.addf", one64, r64, "f64"), bin(k, "arith.subf", one64, r64, "f64"), "f64"),
             "f64");
  tb = bin(k, "arith.subf", tb, bin(k, "arith.mulf", em(E, "math.absf %s : f64", tb.s), out, "f64"), "f64");
  V hib = em(E, "vector.broadcast %s : f32 to %s", em(E, "arith.truncf %s : f64 to f32", ta.s).s, vt);
  V lob = em(E, "vector.broadcast %s : f32 to %s", em(E, "arith.truncf %s : f64 to f32", tb.s).s, vt);
  /* The band's keys (and, for a list written straight to blist, their
   * slots there) packed by vpcompressd: no branch per lane, since which
   * lanes fall in the band is unpredictable; stores start at most at
   * BAND_MAX, so BAND_MAX + 16 entries hold any. The list is every key
   * above the band and every band key, in order, 16 at a time (blist has
   * 16 entries of room past any row's list; a later row overwrites the
   * spill); the band's losers are taken out after ranking. Otherwise the
   * keys above are flagged, and the band's winners after ranking. */
  bool direct = k->blist_base.s[0];
  V bpos = em_alloca(E, BAND_MAX + VL32, "i32"), bslot = direct ? em_alloca(E, BAND_MAX, "index") : (V){""};
  V nb = em_var(E, "index"), nab = em_var(E, "index"), w = em_var(E, "index");
  em_set(E, nb, k->c0, "index");
  em_set(E, nab, k->c0, "index");
  em_set(E, w, k->c0, "index");
  /* the lanes' keys, stepped by 16 (a broadcast of c per vector would
   * take the compares' port) */
  V posv = em_var(E, "vector<16xi32>");
  em_set(E, posv, em(E, "arith.constant dense<[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]> : vector<16xi32>"),
         "vector<16xi32>");
  V sixteen = em(E, "arith.constant dense<16> : vector<16xi32>");
  V izero = em(E, "arith.constant dense<0> : vector<16xi32>");
  for (int tail = 0; tail < 2; tail++) {
    c = lanes_open(k, S, full, VL32, tail, &mask);
    x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", a.s, c.s, mask.s, ninf.s, vt, vt);
    V above = em(E, "arith.andi %s, %s : vector<16xi1>", mask.s, em(E, "arith.cmpf ogt, %s, %s : %s", x.s, hib.s, vt).s);
    V inb = em(E, "arith.andi %s, %s : vector<16xi1>",
               em(E, "arith.andi %s, %s : vector<16xi1>", mask.s, em(E, "arith.xori %s, %s : vector<16xi1>", above.s,
                                                                       em(E, "arith.constant dense<true> : vector<16xi1>").s).s).s,
               em(E, "arith.cmpf oge, %s, %s : %s", x.s, lob.s, vt).s);
    em_set(E, nab, addx(k, em_get(E, nab, "index"), mask_count(k, above, VL32)), "index");
    V pos = em_get(E, posv, "vector<16xi32>");
    em_set(E, posv, em(E, "arith.addi %s, %s : vector<16xi32>", pos.s, sixteen.s), "vector<16xi32>");
    V both = em(E, "arith.ori %s, %s : vector<16xi1>", above.s, inb.s), wv = em_get(E, w, "index");
    if (direct)
      em_do(E, "vector.store %s, %s[%s] : memref<?xi32>, vector<16xi32>",
            em(E, "x86vector.avx512.mask.compress %s, %s, %s : vector<16xi32>, vector<16xi32>", both.s, pos.s, izero.s).s,
            k->blist.s, addx(k, k->blist_base, wv).s);
    else
      em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<?xi8>, vector<16xi1>, vector<16xi8>", k->flag.s, c.s, mask.s,
            em(E, "arith.extui %s : vector<16xi1> to vector<16xi8>", above.s).s);
    /* most vectors hold no band key: the branch is well predicted, and
     * skipping the compress frees the compares' port */
    V nin = mask_count(k, inb, VL32);
    em_if(E, cmpi(k, "ne", nin, k->c0, "index"));
    V nbv = em_get(E, nb, "index");
    em_do(E, "vector.store %s, %s[%s] : " BPOS_T ", vector<16xi32>",
          em(E, "x86vector.avx512.mask.compress %s, %s, %s : vector<16xi32>, vector<16xi32>", inb.s, pos.s, izero.s).s, bpos.s,
          bin(k, "arith.minui", nbv, em_index(E, BAND_MAX), "index").s);
    if (direct) {
      /* each band key's slot: the list's length before this vector plus
       * the listed lanes below it */
      V bits = em(E, "arith.extui %s : i16 to i32", mask_bits(k, inb, VL32).s);
      V bb = em(E, "arith.extui %s : i16 to i32", mask_bits(k, both, VL32).s);
      V rest = em_var(E, "i32");
      em_set(E, rest, bits, "i32");
      V nth = em_for(E, k->c0, nin, k->c1);
      V rv = em_get(E, rest, "i32");
      V one32 = em_int(E, 1, "i32");
      V lower = bin(k, "arith.subi", bin(k, "arith.shli", one32, em(E, "math.cttz %s : i32", rv.s), "i32"), one32, "i32");
      V slot = addx(k, wv, em(E, "arith.index_castui %s : i32 to index",
                              em(E, "math.ctpop %s : i32", bin(k, "arith.andi", bb, lower, "i32").s).s));
      V at = addx(k, nbv, nth);
      em_if(E, cmpi(k, "ult", at, em_index(E, BAND_MAX), "index"));
      store(k, slot, bslot, at, BSLOT_T);
      em_end(E);
      em_set(E, rest, bin(k, "arith.andi", rv, bin(k, "arith.subi", rv, one32, "i32"), "i32"), "i32");
      em_end(E);
    }
    em_set(E, nb, addx(k, nbv, nin), "index");
    em_end(E);
    if (direct)
      em_set(E, w, addx(k, wv, mask_count(k, both, VL32)), "index");
    em_end(E);
  }
  V over = cmpi(k, "ugt", em_get(E, nb, "index"), em_index(E, BAND_MAX), "index");
  V nabove = em_get(E, nab, "index");
  V nbn = em_get(E, nb, "index");
  V valid = and1(k, em(E, "arith.xori %s, %s : i1", over.s, em_int(E, 1, "i1").s),
                 and1(k, cmpi(k, "ule", nabove, kk, "index"), cmpi(k, "ule", kk, addx(k, nabove, nbn), "index")));
  em_if(E, valid);
  {
    /* the band's exact scores, as list_scores_f64 computes them */
    V bval = em_alloca(E, BAND_MAX, "f64");
    V e = em_for(E, k->c0, nbn, k->c1);
    V j = em(E, "arith.index_cast %s : i32 to index", load(k, bpos, e, BPOS_T).s);
    V dj = em(E, "arith.extf %s : f32 to f64", load(k, k->fsc, addx(k, k->fsc_off, j), "memref<?xf32>").s);
    store(k, bin(k, "arith.mulf", bin(k, "arith.mulf", coef, load(k, ksteps, j, "memref<?xf64>"), "f64"), dj, "f64"), bval, e,
          BVAL_T);
    em_end(E);
    V need = bin(k, "arith.subi", kk, nabove, "index");
    e = em_for(E, k->c0, nbn, k->c1);
    V ve = load(k, bval, e, BVAL_T);
    V rank = em_var(E, "index");
    em_set(E, rank, k->c0, "index");
    V f = em_for(E, k->c0, nbn, k->c1);
    V vf = load(k, bval, f, BVAL_T);
    /* bpos is in key order: f < e is the lower key */
    V better = or1(k, cmpf(k, "ogt", vf, ve, "f64"), and1(k, cmpf(k, "oeq", vf, ve, "f64"), cmpi(k, "ult", f, e, "index")));
    V rv = em_get(E, rank, "index");
    em_set(E, rank, sel(k, better, addc(k, rv, 1), rv, "index"), "index");
    em_end(E);
    V keepe = cmpi(k, "ult", em_get(E, rank, "index"), need, "index");
    if (direct) {
      /* a loser's slot is marked -1, for the compaction below */
      em_if(E, em(E, "arith.xori %s, %s : i1", keepe.s, em_int(E, 1, "i1").s));
      store(k, em_int(E, -1, "i32"), k->blist, addx(k, k->blist_base, load(k, bslot, e, BSLOT_T)), "memref<?xi32>");
      em_end(E);
    } else {
      store(k, em(E, "arith.extui %s : i1 to i8", keepe.s), k->flag,
            em(E, "arith.index_cast %s : i32 to index", load(k, bpos, e, BPOS_T).s), "memref<?xi8>");
    }
    em_end(E);
    if (direct) {
      /* the list without the losers: packed in place, 16 at a time (a
       * store never passes the entries still to be read) */
      V len = em_get(E, w, "index"), nw = em_var(E, "index");
      em_set(E, nw, k->c0, "index");
      V m1 = em(E, "arith.constant dense<-1> : vector<16xi32>");
      V c2 = em_for(E, k->c0, len, em_index(E, VL32));
      V lm = em(E, "vector.create_mask %s : vector<16xi1>", bin(k, "arith.subi", len, c2, "index").s);
      V xs = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xi32>, vector<16xi1>, vector<16xi32> into vector<16xi32>",
                k->blist.s, addx(k, k->blist_base, c2).s, lm.s, m1.s);
      V live = em(E, "arith.cmpi ne, %s, %s : vector<16xi32>", xs.s, m1.s);
      V nwv = em_get(E, nw, "index");
      em_do(E, "vector.store %s, %s[%s] : memref<?xi32>, vector<16xi32>",
            em(E, "x86vector.avx512.mask.compress %s, %s, %s : vector<16xi32>, vector<16xi32>", live.s, xs.s, izero.s).s,
            k->blist.s, addx(k, k->blist_base, nwv).s);
      em_set(E, nw, addx(k, nwv, mask_count(k, live, VL32)), "index");
      em_end(E);
      em_set(E, k->n, em_get(E, nw, "index"), "index");
    } else {
      /* the list: every flagged key, in order */
      flags_end(k, S);
      flags_to_idx(k, S);
    }
    em_set(E, handled, em_int(E, 1, "i1"), "i1");
  }
  em_end(E);
  em_end(E);
  em_end(E);
}

/* Whether score `at` (key t) ranks before score `a` (key c) in the
 * reference's order (ref_rank_cmp): larger first, NaN after every number,
 * equal values (and NaNs among themselves) by the lower key; t_first says
 * t < c. */
static V rank_beats(K *k, V at, V a, V t_first, const char *ty) {
  V nan_at = cmpf(k, "uno", at, at, ty), nan_a = cmpf(k, "uno", a, a, ty);
  V tie = or1(k, cmpf(k, "oeq", at, a, ty), and1(k, nan_at, nan_a));
  V num_over_nan = and1(k, nan_a, em(E, "arith.xori %s, %s : i1", nan_at.s, em_int(E, 1, "i1").s));
  return or1(k, or1(k, num_over_nan, cmpf(k, "ogt", at, a, ty)), and1(k, tie, t_first));
}

/* N:M (§4.7): in each group of M keys keep the N best candidates by val.
 * The list is in key order, so a group's candidates are one run of it:
 * `flag` first holds each entry's run start (forward pass) and `pr`'s bits
 * are not needed yet, so the run end goes to a second pass that ranks each
 * entry against its run only. */
static void select_nm(K *k) {
  int64_t N = k->s->nm_n, M = k->s->nm_m;
  V n = n_get(k), Mx = em_index(E, M);
  V start = em_var(E, "index"), grp = em_var(E, "index");
  em_set(E, grp, em_index(E, -1), "index");
  /* run starts, into the `gstart` buffer */
  V c = em_for(E, k->c0, n, k->c1);
  V g = bin(k, "arith.divui", load(k, k->idx, c, "memref<?xindex>"), Mx, "index");
  em_if(E, cmpi(k, "ne", g, em_get(E, grp, "index"), "index"));
  em_set(E, start, c, "index");
  em_set(E, grp, g, "index");
  em_end(E);
  store(k, em_get(E, start, "index"), k->gstart, c, "memref<?xindex>");
  em_end(E);
  /* each entry's rank inside its run (at most M entries) */
  c = em_for(E, k->c0, n, k->c1);
  V a = load(k, k->val, c, "memref<?xf64>");
  V lo = load(k, k->gstart, c, "memref<?xindex>");
  V hi = bin(k, "arith.minui", addc(k, lo, M), n, "index");
  V gc = bin(k, "arith.divui", load(k, k->idx, c, "memref<?xindex>"), Mx, "index");
  V rank = em_var(E, "index");
  em_set(E, rank, k->c0, "index");
  V t = em_for(E, lo, hi, k->c1);
  V same = cmpi(k, "eq", bin(k, "arith.divui", load(k, k->idx, t, "memref<?xindex>"), Mx, "index"), gc, "index");
  V at = load(k, k->val, t, "memref<?xf64>");
  V better = rank_beats(k, at, a, cmpi(k, "ult", t, c, "index"), "f64");
  V rv = em_get(E, rank, "index");
  em_set(E, rank, sel(k, and1(k, same, better), addc(k, rv, 1), rv, "index"), "index");
  em_end(E);
  V keep = cmpi(k, "ult", em_get(E, rank, "index"), em_index(E, N), "index");
  store(k, em(E, "arith.extui %s : i1 to i8", keep.s), k->flag, c, "memref<?xi8>");
  em_end(E);
  compact_flagged(k, false);
}

/* Softmax over pr[0..n) in place (logits in, probabilities out), as the
 * reference's: the maximum leaves NaN logits out, so that they alone get
 * NaN probabilities, and a sum that is not positive (NaN, when one is)
 * divides nothing. `shifted`: the logits are already less their maximum
 * (logits_from_val, in f64), so none is subtracted again; where that
 * maximum was +inf they are -inf and NaN, and a second shift by their
 * -inf maximum would make every P NaN, where the reference's are 0 and NaN.
 * Returns the sum of exponentials (1 / the largest probability); 0 when
 * n = 0. */
static V softmax(K *k, bool shifted) {
  const char *vt = "vector<16xf32>";
  V n = n_get(k), c16 = em_index(E, 16);
  V mvar = em_var(E, "vector<16xf32>"), svar = em_var(E, "vector<16xf32>");
  V ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  em_set(E, mvar, ninf, "vector<16xf32>");
  em_set(E, svar, zero, "vector<16xf32>");
  V c, mask, x, m = em_float(E, 0.0, "f32");
  if (!shifted) {
    c = em_for(E, k->c0, n, c16);
    mask = em(E, "vector.create_mask %s : vector<16xi1>", bin(k, "arith.subi", n, c, "index").s);
    x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", k->pr.s, c.s, mask.s, ninf.s,
           vt, vt);
    em_set(E, mvar, em(E, "arith.maxnumf %s, %s : %s", em_get(E, mvar, vt).s, x.s, vt), vt);
    em_end(E);
    m = em(E, "vector.reduction <maxnumf>, %s : %s into f32", em_get(E, mvar, vt).s, vt);
  }
  V mb = em(E, "vector.broadcast %s : f32 to %s", m.s, vt);
  c = em_for(E, k->c0, n, c16);
  mask = em(E, "vector.create_mask %s : vector<16xi1>", bin(k, "arith.subi", n, c, "index").s);
  x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", k->pr.s, c.s, mask.s,
         ninf.s, vt, vt);
  V ex = vexp(k, em(E, "arith.subf %s, %s : %s", x.s, mb.s, vt));
  ex = em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", mask.s, ex.s, zero.s, vt);
  em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s", k->pr.s, c.s, mask.s, ex.s, vt);
  em_set(E, svar, em(E, "arith.addf %s, %s : %s", em_get(E, svar, vt).s, ex.s, vt), vt);
  em_end(E);
  V sum = em(E, "vector.reduction <add>, %s : %s into f32", em_get(E, svar, vt).s, vt);
  V inv = sel(k, cmpf(k, "ogt", sum, em_float(E, 0.0, "f32"), "f32"), em(E, "arith.divf %s, %s : f32", em_float(E, 1.0, "f32").s, sum.s),
              em_float(E, 1.0, "f32"), "f32");
  V ib = em(E, "vector.broadcast %s : f32 to %s", inv.s, vt);
  c = em_for(E, k->c0, n, c16);
  mask = em(E, "vector.create_mask %s : vector<16xi1>", bin(k, "arith.subi", n, c, "index").s);
  x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", k->pr.s, c.s, mask.s,
         zero.s, vt, vt);
  em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s", k->pr.s, c.s, mask.s,
        em(E, "arith.mulf %s, %s : %s", x.s, ib.s, vt).s, vt);
  em_end(E);
  return sum;
}

/* pr[c] = float(val[c] - max val): softmax logits shifted in double. */
static V logits_from_val(K *k) {
  V n = n_get(k);
  V m = em_var(E, "f64");
  em_set(E, m, em_float(E, -INFINITY, "f64"), "f64");
  V c = em_for(E, k->c0, n, k->c1);
  em_set(E, m, bin(k, "arith.maxnumf", em_get(E, m, "f64"), load(k, k->val, c, "memref<?xf64>"), "f64"), "f64");
  em_end(E);
  V mv = em_get(E, m, "f64");
  V minf = cmpf(k, "oeq", mv, em_float(E, INFINITY, "f64"), "f64");
  c = em_for(E, k->c0, n, k->c1);
  V v = load(k, k->val, c, "memref<?xf64>");
  V x = bin(k, "arith.subf", v, mv, "f64");
  store(k, em(E, "arith.truncf %s : f64 to f32", x.s), k->pr, c, "memref<?xf32>");
  if (k->s->value_keep < 1.0) {
    /* value pruning ranks the probabilities exp(val - max), which keep
     * the scores' order unless the maximum is +inf: then the +inf and NaN
     * scores' weights are NaN (ranked last) and the others' 0 (tied) */
    V bad = or1(k, cmpf(k, "oeq", v, em_float(E, INFINITY, "f64"), "f64"), cmpf(k, "uno", v, v, "f64"));
    V r = sel(k, bad, em_float(E, NAN, "f64"), em_float(E, 0.0, "f64"), "f64");
    store(k, sel(k, minf, r, v, "f64"), k->val, c, "memref<?xf64>");
  }
  em_end(E);
  return mv;
}

/* The softmax sum of the list's f64 scores, sum_c exp(val[c] - m), in f64
 * (m their maximum, from logits_from_val): 1 / sum is the largest
 * probability as the reference computes it, to a few ulps. */
static V softmax_sum64(K *k, V m) {
  const char *vt = "vector<8xf64>";
  V n = n_get(k);
  V mb = em(E, "vector.broadcast %s : f64 to %s", m.s, vt), zero = em(E, "arith.constant dense<0.0> : %s", vt);
  V acc = em_var(E, vt);
  em_set(E, acc, zero, vt);
  V c = em_for(E, k->c0, n, em_index(E, VL64));
  V mask = em(E, "vector.create_mask %s : vector<8xi1>", bin(k, "arith.subi", n, c, "index").s);
  V x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf64>, vector<8xi1>, %s into %s", k->val.s, c.s, mask.s, mb.s, vt, vt);
  V e = vexp64(k, em(E, "arith.subf %s, %s : %s", x.s, mb.s, vt));
  em_set(E, acc, em(E, "arith.addf %s, %s : %s", em_get(E, acc, vt).s,
                    em(E, "arith.select %s, %s, %s : vector<8xi1>, %s", mask.s, e.s, zero.s, vt).s, vt), vt);
  em_end(E);
  return em(E, "vector.reduction <add>, %s : %s into f64", em_get(E, acc, vt).s, vt);
}

/* ------------------------------------------------------------------ */
/* Per-head precomputation                                            */

/* Quantizes `len` elements of src at so into dst at dof, per row
 * (docs/semantics.md §4.2), with the reference's operations. With a steps
 * buffer, dst (f32) receives the integer grid and steps[step_at] the step:
 * grids of up to 8 bits are exact in f32 and so are their dot products
 * (|sum| < 2^24 for head_dim up to 1040), at twice the f64 rate. Without,
 * dst (f64) receives the dequantized values. */
static void quant_row(K *k, Buf src, V so, V dst, V dof, int64_t len, int bits, V steps, V step_at) {
  double qmax = ldexp(1.0, bits - 1) - 1.0;
  V amax = em_var(E, "f64");
  em_set(E, amax, em_float(E, 0.0, "f64"), "f64");
  V d = em_for(E, k->c0, em_index(E, len), k->c1);
  V x = sload(k, src, addx(k, so, d), "f64");
  em_set(E, amax, bin(k, "arith.maxnumf", em_get(E, amax, "f64"), em(E, "math.absf %s : f64", x.s), "f64"), "f64");
  em_end(E);
  V am = em_get(E, amax, "f64");
  V step = bin(k, "arith.divf", am, em_float(E, qmax, "f64"), "f64");
  V is0 = cmpf(k, "oeq", am, em_float(E, 0.0, "f64"), "f64");
  bool grid = steps.s[0] != 0;
  if (grid)
    store(k, step, steps, step_at, "memref<?xf64>");
  d = em_for(E, k->c0, em_index(E, len), k->c1);
  x = sload(k, src, addx(k, so, d), "f64");
  V r = round_half_away(k, bin(k, "arith.divf", x, step, "f64"));
  r = bin(k, "arith.minnumf", bin(k, "arith.maxnumf", r, em_float(E, -qmax, "f64"), "f64"), em_float(E, qmax, "f64"),
          "f64");
  V val = grid ? r : bin(k, "arith.mulf", r, step, "f64");
  val = sel(k, is0, em_float(E, 0.0, "f64"), val, "f64");
  if (grid)
    store(k, em(E, "arith.truncf %s : f64 to f32", val.s), dst, addx(k, dof, d), "memref<?xf32>");
  else
    store(k, val, dst, addx(k, dof, d), "memref<?xf64>");
  em_end(E);
}

/* DSA: dst[i*P + c] = grid(sum_d x[i, d] * proj[d*P + c]) for every row i;
 * the projection is kept in double (prow) until it is quantized. */
static void project_rows(K *k, Buf x, int64_t nh, V b, V h, V dst, V steps) {
  int64_t D = k->D, P = k->P;
  const char *vt = "vector<8xf64>";
  /* PROJ_ROWS rows at a time, 8 of the P outputs per vector (up to 32 per
   * pass over d): each lane sums its products in d order with a multiply
   * and an add (no FMA), as the reference does, so the grids are the same
   * bit for bit; the rows' independent sums hide the adds' latency. The
   * rows' projections go to prow (PROJ_ROWS x P), then to their grids. */
  int64_t nv = (P + 7) / 8;
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  V i0 = em_for(E, k->c0, k->S, em_index(E, PROJ_ROWS));
  V xo[PROJ_ROWS];
  for (int r = 0; r < PROJ_ROWS; r++)
    xo[r] = row_offset(k, nh, b, h, bin(k, "arith.minui", addc(k, i0, r), bin(k, "arith.subi", k->S, k->c1, "index"), "index"));
  for (int64_t v0 = 0; v0 < nv; v0 += 4) {
    int64_t nc = nv - v0 < 4 ? nv - v0 : 4;
    V acc[PROJ_ROWS][4];
    for (int r = 0; r < PROJ_ROWS; r++)
      for (int64_t v = 0; v < nc; v++) {
        acc[r][v] = em_var(E, vt);
        em_set(E, acc[r][v], zero, vt);
      }
    V d = em_for(E, k->c0, em_index(E, D), k->c1);
    V pv[4];
    for (int64_t v = 0; v < nc; v++) {
      int64_t lanes = P - (v0 + v) * 8 < 8 ? P - (v0 + v) * 8 : 8;
      V at = addc(k, mulc(k, d, P), (v0 + v) * 8);
      pv[v] = lanes == 8 ? em(E, "vector.load %s[%s] : memref<?xf64>, %s", k->proj.s, at.s, vt)
                         : em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf64>, vector<8xi1>, %s into %s", k->proj.s, at.s,
                              em(E, "vector.constant_mask [%lld] : vector<8xi1>", (long long)lanes).s, zero.s, vt, vt);
    }
    for (int r = 0; r < PROJ_ROWS; r++) {
      V xb = em(E, "vector.broadcast %s : f64 to %s", sload(k, x, addx(k, xo[r], d), "f64").s, vt);
      for (int64_t v = 0; v < nc; v++)
        em_set(E, acc[r][v], em(E, "arith.addf %s, %s : %s", em_get(E, acc[r][v], vt).s,
                                em(E, "arith.mulf %s, %s : %s", xb.s, pv[v].s, vt).s, vt), vt);
    }
    em_end(E);
    for (int r = 0; r < PROJ_ROWS; r++)
      for (int64_t v = 0; v < nc; v++) {
        int64_t lanes = P - (v0 + v) * 8 < 8 ? P - (v0 + v) * 8 : 8;
        V at = em_index(E, r * P + (v0 + v) * 8);
        if (lanes == 8)
          em_do(E, "vector.store %s, %s[%s] : memref<?xf64>, %s", em_get(E, acc[r][v], vt).s, k->prow.s, at.s, vt);
        else
          em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<?xf64>, vector<8xi1>, %s", k->prow.s, at.s,
                em(E, "vector.constant_mask [%lld] : vector<8xi1>", (long long)lanes).s, em_get(E, acc[r][v], vt).s, vt);
      }
  }
  for (int r = 0; r < PROJ_ROWS; r++) {
    V i = addc(k, i0, r);
    em_if(E, cmpi(k, "ult", i, k->S, "index"));
    quant_row(k, (Buf){k->prow, BK_F64}, em_index(E, r * P), dst, mulc(k, i, P), P, k->s->predict_bits, steps, i);
    em_end(E);
  }
  em_end(E);
}

/* Quantizes every row i of head h of x (nh heads) into dst at row
 * (block * S + i), with its step at steps[block * S + i] when steps is
 * given (grid form). */
static void quant_head(K *k, Buf x, int64_t nh, V b, V h, V dst, int64_t block, int bits, V steps) {
  V i = em_for(E, k->c0, k->S, k->c1);
  V rowi = addx(k, mulx(k, em_index(E, block), k->S), i);
  quant_row(k, x, row_offset(k, nh, b, h, i), dst, mulc(k, rowi, k->D), k->D, bits, steps, rowi);
  em_end(E);
}

/* ------------------------------------------------------------------ */
/* Rows                                                               */

/* Row offsets of the key-indexed buffers, for list_scores_f64. */
static V k_row(K *k, V j) { return row_offset(k, k->KVH, k->cur_b, k->cur_kvh, j); }
static V kv_row(K *k, V j) { return addx(k, k->kv_base, mulx(k, j, k->kv_stride)); }
static V p_row(K *k, V j) { return mulc(k, j, k->P); }
static V d_row(K *k, V j) { return mulc(k, j, k->D); }
static V f_row(K *k, V j) { return mulc(k, addx(k, mulx(k, em_index(E, k->cur_round), k->S), j), k->D); }
static V f_step(K *k, V j) { return addx(k, mulx(k, em_index(E, k->cur_round), k->S), j); }
static V same_row(K *k, V j) { (void)k; return j; }

/* Stores the f32 vector x (first `tail` lanes if tail > 0) to the output at off. */
static void store_out(K *k, V x, V off, int tail) {
  const char *vt = "vector<16xf32>";
  BufKind ok = k->o.k;
  V y = x;
  if (ok == BK_F16) {
    y = em(E, "arith.truncf %s : %s to vector<16xf16>", x.s, vt);
  } else if (ok == BK_BF16) {
    /* round to nearest even on the bits; NaN stays a quiet NaN */
    V bits = em(E, "arith.bitcast %s : %s to vector<16xi32>", x.s, vt);
    V c16 = em(E, "arith.constant dense<16> : vector<16xi32>");
    V one = em(E, "arith.constant dense<1> : vector<16xi32>");
    V bias = em(E, "arith.constant dense<32767> : vector<16xi32>");
    V lsb = em(E, "arith.andi %s, %s : vector<16xi32>", em(E, "arith.shrui %s, %s : vector<16xi32>", bits.s, c16.s).s,
               one.s);
    V r = em(E, "arith.addi %s, %s : vector<16xi32>", em(E, "arith.addi %s, %s : vector<16xi32>", bits.s, bias.s).s,
             lsb.s);
    r = em(E, "arith.shrui %s, %s : vector<16xi32>", r.s, c16.s);
    V qn = em(E, "arith.ori %s, %s : vector<16xi32>", em(E, "arith.shrui %s, %s : vector<16xi32>", bits.s, c16.s).s,
              em(E, "arith.constant dense<64> : vector<16xi32>").s);
    V nan = em(E, "arith.cmpf uno, %s, %s : %s", x.s, x.s, vt);
    r = em(E, "arith.select %s, %s, %s : vector<16xi1>, vector<16xi32>", nan.s, qn.s, r.s);
    y = em(E, "arith.trunci %s : vector<16xi32> to vector<16xi16>", r.s);
  }
  const char *et = elem(ok);
  if (tail == 1) {
    /* one element as a scalar store: LLVM 22's x86 back end turns a
     * one-lane masked store of a truncated vector<16xi16> into a 4-byte
     * store, which wrote past the row (into the next row, another thread's
     * or the end of the output) for bf16 outputs with head_dim % 16 == 1 */
    store(k, em(E, "vector.extract %s[0] : %s from vector<16x%s>", y.s, et, et), k->o.m, off, memty(ok));
  } else if (tail > 0) {
    V mask = em(E, "vector.constant_mask [%d] : vector<16xi1>", tail);
    em_do(E, "vector.maskedstore %s[%s], %s, %s : %s, vector<16xi1>, vector<16x%s>", k->o.m.s, off.s, mask.s, y.s,
          memty(ok), et);
  } else {
    em_do(E, "vector.store %s, %s[%s] : %s, vector<16x%s>", y.s, k->o.m.s, off.s, memty(ok), et);
  }
}

static void zero_row(K *k, V off) {
  V z = em(E, "arith.constant dense<0.0> : vector<16xf32>");
  for (int64_t c = 0; c < k->D; c += VL32)
    store_out(k, z, addc(k, off, c), k->D - c < VL32 ? (int)(k->D - c) : 0);
}

/* Builds the candidate list of row i: keys the static mask allows, within
 * closed-form bounds, that token pruning kept. */
static void candidates(K *k, V i) {
  const SaSpec *s = k->s;
  bool tokens = s->token_keep < 1.0;
  em_set(E, k->n, k->c0, "index");
  V i64 = to_i64(k, i), lo = c64(k, 0), hi = k->S64;
  if (k->p->mask) {
    V l, h;
    if (mask_bounds(E, k->p->mask, i64, &l, &h)) {
      lo = bin(k, "arith.maxsi", l, lo, "i64");
      hi = bin(k, "arith.minsi", h, hi, "i64");
      hi = bin(k, "arith.maxsi", hi, lo, "i64");
    }
  }
  V j = em_for(E, to_index(k, lo), to_index(k, hi), k->c1);
  V ok = em_int(E, 1, "i1");
  if (k->p->mask)
    ok = mask_pred(E, k->p->mask, k->S64, i64, to_i64(k, j));
  if (tokens)
    ok = and1(k, ok, cmpi(k, "ne", load(k, k->tokkeep, j, "memref<?xi8>"), em_int(E, 0, "i8"), "i8"));
  em_if(E, ok);
  V nv = n_get(k);
  store(k, j, k->idx, nv, "memref<?xindex>");
  em_set(E, k->n, addc(k, nv, 1), "index");
  em_end(E);
  em_end(E);
}

/* The selection stages of row i: the list (idx, n) of the keys that reach
 * softmax, in key order. */
static V row_select(K *k, V i) {
  const SaSpec *s = k->s;
  Buf fq = {k->fq, BK_F32}, fk = {k->fk, BK_F32}, pqb = {k->pq, BK_F32}, pkb = {k->pk, BK_F32};
  /* the first selection stage (prediction, else filter round 0) ranks
   * every key's first-stage dot: f32 approximations first when it can */
  SaKeep keep0 = s->has_predict ? s->predict_keep : s->n_filter_rounds > 0 ? s->filter[0].keep : (SaKeep){KEEP_ALL, 0};
  bool fast = k->fsc_off.s[0] && !k->p->mask && s->token_keep >= 1.0 &&
              (keep0.kind == KEEP_TOP_RATIO || keep0.kind == KEEP_TOP_COUNT);
  V handled = {""};
  if (fast) {
    handled = em_var(E, "i1");
    em_set(E, handled, em_int(E, 0, "i1"), "i1");
    first_top_fast(k, keep0, s->has_predict ? k->pqs : k->fqs, s->has_predict ? k->pks : k->fks, i, handled);
    em_if(E, em(E, "arith.xori %s, %s : i1", em_get(E, handled, "i1").s, em_int(E, 1, "i1").s));
  }
  candidates(k, i);
  if (s->has_predict) {
    list_scores_f64(k, pqb, mulc(k, i, k->P), pkb, p_row, k->P, k->pqs, i, k->pks, same_row);
    select_rule(k, s->predict_keep, false);
  } else if (s->n_filter_rounds > 0) {
    k->cur_round = 0;
    list_scores_f64(k, fq, mulc(k, i, k->D), fk, f_row, k->D, k->fqs, i, k->fks, f_step);
    select_rule(k, s->filter[0].keep, false);
  }
  if (fast)
    em_end(E);
  V first = k->fsc_off;
  k->fsc_off = (V){""};
  for (int r = s->has_predict ? 0 : 1; r < s->n_filter_rounds; r++) {
    k->cur_round = r;
    V qo = mulc(k, addx(k, mulx(k, em_index(E, r), k->S), i), k->D);
    list_scores_f64(k, fq, qo, fk, f_row, k->D, k->fqs, addx(k, mulx(k, em_index(E, r), k->S), i), k->fks, f_step);
    select_rule(k, s->filter[r].keep, false);
  }
  k->fsc_off = first;
  return handled;
}

/* One kept query row i of head (cur_b, cur_h): selection, softmax, importance,
 * value pruning, A.V, output. */
static void row(K *k, V i) {
  const SaSpec *s = k->s;
  row_select(k, i);
  V qoff = row_offset(k, k->H, k->cur_b, k->cur_h, i);
  bool exact = s->nm_m > 0 || (s->value_keep < 1.0 && !s->has_progressive);
  if (exact)
    list_scores_f64(k, k->q, qoff, k->k, k_row, k->D, (V){""}, (V){""}, (V){""}, NULL);
  if (s->nm_m > 0)
    select_nm(k);
  if (s->has_progressive) {
    Buf msb = {k->kmsb, BK_F64}, full = {k->kfull, BK_F64};
    list_scores_f64(k, k->q, qoff, msb, d_row, k->D, (V){""}, (V){""}, (V){""}, NULL);
    V m = logits_from_val(k);
    softmax(k, true);
    /* max p = 1 / sum, in f64 as the reference has it (an f32 sum could
     * decide a row near the threshold the other way); recompute with
     * MSB+LSB when it is below the threshold */
    V pmax = bin(k, "arith.divf", em_float(E, 1.0, "f64"), softmax_sum64(k, m), "f64");
    V low = cmpf(k, "olt", pmax, em_float(E, s->requant_threshold, "f64"), "f64");
    em_if(E, and1(k, low, cmpi(k, "ugt", n_get(k), k->c0, "index")));
    list_scores_f64(k, k->q, qoff, full, d_row, k->D, (V){""}, (V){""}, (V){""}, NULL);
    logits_from_val(k);
    softmax(k, true);
    em_end(E);
  } else if (exact) {
    logits_from_val(k);
    softmax(k, true);
  } else {
    V c = em_for(E, k->c0, n_get(k), k->c1);
    V j = load(k, k->idx, c, "memref<?xindex>");
    V d = dot(k, k->q, qoff, k->k, k_row(k, j), k->D, "f32");
    store(k, bin(k, "arith.mulf", em_float(E, s->scale, "f32"), d, "f32"), k->pr, c, "memref<?xf32>");
    em_end(E);
    softmax(k, false);
  }
  /* token importance: probabilities before value pruning */
  em_if(E, k->has_to);
  V c = em_for(E, k->c0, n_get(k), k->c1);
  V j = load(k, k->idx, c, "memref<?xindex>");
  V pv = em(E, "arith.extf %s : f32 to f64", load(k, k->pr, c, "memref<?xf32>").s);
  store(k, bin(k, "arith.addf", load(k, k->tokacc, j, "memref<?xf64>"), pv, "f64"), k->tokacc, j, "memref<?xf64>");
  em_end(E);
  em_end(E);
  if (s->value_keep < 1.0)
    keep_top(k, ceil_ratio(k, s->value_keep, n_get(k)), true);

  /* o = sum_c p_c v_idx[c]; zero weights are skipped so that a pruned key's
   * Inf or NaN value row never reaches the output */
  V zero = em(E, "arith.constant dense<0.0> : vector<16xf32>");
  for (int64_t d = 0; d < k->D; d += VL32) {
    int tail = k->D - d < VL32 ? (int)(k->D - d) : 0;
    if (tail)
      em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<%lldxf32>, vector<16xi1>, vector<16xf32>", k->orow.s,
            em_index(E, d).s, em(E, "vector.constant_mask [%d] : vector<16xi1>", tail).s, zero.s, (long long)k->D);
    else
      em_do(E, "vector.store %s, %s[%s] : memref<%lldxf32>, vector<16xf32>", zero.s, k->orow.s, em_index(E, d).s,
            (long long)k->D);
  }
  c = em_for(E, k->c0, n_get(k), k->c1);
  V p = load(k, k->pr, c, "memref<?xf32>");
  em_if(E, cmpf(k, "une", p, em_float(E, 0.0, "f32"), "f32"));
  j = load(k, k->idx, c, "memref<?xindex>");
  V voff = k_row(k, j);
  V pb = em(E, "vector.broadcast %s : f32 to vector<16xf32>", p.s);
  for (int64_t d = 0; d < k->D; d += VL32) {
    int tail = k->D - d < VL32 ? (int)(k->D - d) : 0;
    V dx = em_index(E, d);
    V vv = vload(k, k->v, addc(k, voff, d), VL32, tail, "f32");
    V acc;
    if (tail) {
      V mask = em(E, "vector.constant_mask [%d] : vector<16xi1>", tail);
      acc = em(E, "vector.maskedload %s[%s], %s, %s : memref<%lldxf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>",
               k->orow.s, dx.s, mask.s, zero.s, (long long)k->D);
      acc = em(E, "vector.fma %s, %s, %s : vector<16xf32>", pb.s, vv.s, acc.s);
      em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<%lldxf32>, vector<16xi1>, vector<16xf32>", k->orow.s, dx.s,
            mask.s, acc.s, (long long)k->D);
    } else {
      acc = em(E, "vector.load %s[%s] : memref<%lldxf32>, vector<16xf32>", k->orow.s, dx.s, (long long)k->D);
      acc = em(E, "vector.fma %s, %s, %s : vector<16xf32>", pb.s, vv.s, acc.s);
      em_do(E, "vector.store %s, %s[%s] : memref<%lldxf32>, vector<16xf32>", acc.s, k->orow.s, dx.s, (long long)k->D);
    }
  }
  em_end(E);
  em_end(E);
  for (int64_t d = 0; d < k->D; d += VL32) {
    int tail = k->D - d < VL32 ? (int)(k->D - d) : 0;
    V dx = em_index(E, d), acc;
    if (tail)
      acc = em(E, "vector.maskedload %s[%s], %s, %s : memref<%lldxf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>",
               k->orow.s, dx.s, em(E, "vector.constant_mask [%d] : vector<16xi1>", tail).s, zero.s, (long long)k->D);
    else
      acc = em(E, "vector.load %s[%s] : memref<%lldxf32>, vector<16xf32>", k->orow.s, dx.s, (long long)k->D);
    V a = em(E, "vector.reduction <add>, %s : vector<16xf32> into f32", em(E, "math.absf %s : vector<16xf32>", acc.s).s);
    em_set(E, k->abssum,
           bin(k, "arith.addf", em_get(E, k->abssum, "f64"), em(E, "arith.extf %s : f32 to f64", a.s), "f64"), "f64");
    store_out(k, acc, addc(k, qoff, d), tail);
  }
}

/* ------------------------------------------------------------------ */
/* Batch-level pruning decisions                                      */

/* Marks in keep[0..count) the entries with the largest finite value among
 * vals, keeping `kk` of them (index), ties to the lower index. */
static void prune_decide(K *k, V count, V vals, const char *vals_t, V keep, const char *keep_t, V kk) {
  em_set(E, k->n, k->c0, "index");
  V t = em_for(E, k->c0, count, k->c1);
  V x = load(k, vals, t, vals_t);
  store(k, em_int(E, 0, "i8"), keep, t, keep_t);
  V fin = cmpf(k, "olt", em(E, "math.absf %s : f64", x.s), em_float(E, INFINITY, "f64"), "f64");
  em_if(E, fin);
  V nv = n_get(k);
  store(k, t, k->idx, nv, "memref<?xindex>");
  store(k, x, k->val, nv, "memref<?xf64>");
  em_set(E, k->n, addc(k, nv, 1), "index");
  em_end(E);
  em_end(E);
  keep_top(k, bin(k, "arith.minui", kk, n_get(k), "index"), false);
  t = em_for(E, k->c0, n_get(k), k->c1);
  store(k, em_int(E, 1, "i8"), keep, load(k, k->idx, t, "memref<?xindex>"), keep_t);
  em_end(E);
}

/* Offset of element (key j, column d) in a head's transposed K: key tiles
 * of TK keys one after another, each D rows of TK keys. A tile's loads in
 * the micro-kernels are then one contiguous block; with whole-sequence rows
 * (stride a multiple of 4 KiB for long sequences) every row of a tile fell
 * in the same L1 sets and the Q K^T loop ran from L2. */
static V kt_at(K *k, V j, V d, int64_t len) {
  V t = bin(k, "arith.divui", j, em_index(E, TK), "index");
  V c = bin(k, "arith.remui", j, em_index(E, TK), "index");
  return addx(k, mulc(k, t, len * TK), addx(k, mulc(k, d, TK), c));
}

/* The first selection stage (DSA's prediction, else filter round 0) scores
 * every candidate of every row, so its integer grid dots are computed for
 * FS_ROWS rows at a time against all keys by a register-blocked
 * micro-kernel (FS_ROWS x 64 keys in 24 vector accumulators) over the K
 * grid transposed once per head, rather than one dot and one horizontal
 * sum per candidate. Grid values are integers below 2^7 and head_dim at
 * most 256, so every partial sum is an integer below 2^24: exact in f32 in
 * any order, the same dots the per-candidate path computes. */
#define FS_ROWS 6

/* The first stage's grids: Q's and K's buffers and their row length. */
static void first_stage_grids(K *k, V *qg, V *kg, int64_t *len) {
  bool predict = k->s->has_predict;
  *qg = predict ? k->pq : k->fq; /* round 0 is the buffers' first block */
  *kg = predict ? k->pk : k->fk;
  *len = predict ? k->P : k->D;
}

/* fkt[kt_at(j, d)] = K grid[j][d], zero for j >= S. */
static void first_stage_transpose(K *k) {
  V qg, kg;
  int64_t len;
  first_stage_grids(k, &qg, &kg, &len);
  V j = em_for(E, k->c0, k->fsp, k->c1);
  V inside = cmpi(k, "ult", j, k->S, "index");
  V jr = sel(k, inside, j, k->c0, "index");
  V d = em_for(E, k->c0, em_index(E, len), k->c1);
  V x = load(k, kg, addx(k, mulc(k, jr, len), d), "memref<?xf32>");
  store(k, sel(k, inside, x, em_float(E, 0.0, "f32"), "f32"), k->fkt, kt_at(k, j, d, len), "memref<?xf32>");
  em_end(E);
  em_end(E);
}


/* The VNNI form of the first stage. vpdpbusd multiplies unsigned by signed
 * bytes and adds each group of four products to a 32-bit lane: 64
 * multiply-adds per instruction, four times an f32 FMA's 16 at the same
 * issue rate. Grids are at most 8-bit integers (|g| <= 127), so K's fit
 * in signed bytes and Q's, offset by 128, in unsigned ones; the offset
 * adds 128 * sum_d K[j][d] to key j's dot, which is subtracted again.
 * Lanes add at most 4 * 255 * 127 per column group, far inside i32, and
 * the dots come out as the same integers the f32 form computes. Columns
 * are padded to a multiple of 4 with Q = 0 (byte 128) and K = 0. */
static int64_t vnni_len(int64_t len) { return (len + 3) / 4 * 4; }

/* Offset of (key j, column d) in fkt8: key tiles of TK keys one after
 * another, each len4/4 groups of TK keys x 4 columns. */
static V kt8_at(K *k, V j, V d, int64_t len4) {
  V t = bin(k, "arith.divui", j, em_index(E, TK), "index");
  V c = bin(k, "arith.remui", j, em_index(E, TK), "index");
  V g = bin(k, "arith.divui", d, em_index(E, 4), "index");
  V r = bin(k, "arith.remui", d, em_index(E, 4), "index");
  return addx(k, addx(k, mulc(k, t, len4 * TK), mulc(k, g, TK * 4)), addx(k, mulc(k, c, 4), r));
}

/* The first stage's grids as bytes: fkt8 and fkc from K's, fq8 from Q's. */
static void first_stage_bytes(K *k) {
  V qg, kg;
  int64_t len;
  first_stage_grids(k, &qg, &kg, &len);
  int64_t len4 = vnni_len(len);
  V j = em_for(E, k->c0, k->fsp, k->c1);
  V inside = cmpi(k, "ult", j, k->S, "index");
  V jr = sel(k, inside, j, k->c0, "index");
  V sum = em_var(E, "i32");
  em_set(E, sum, em_int(E, 0, "i32"), "i32");
  V d = em_for(E, k->c0, em_index(E, len4), k->c1);
  V real = and1(k, inside, cmpi(k, "ult", d, em_index(E, len), "index"));
  V dr = bin(k, "arith.minui", d, em_index(E, len - 1), "index");
  V x = em(E, "arith.fptosi %s : f32 to i32", load(k, kg, addx(k, mulc(k, jr, len), dr), "memref<?xf32>").s);
  x = sel(k, real, x, em_int(E, 0, "i32"), "i32");
  em_set(E, sum, bin(k, "arith.addi", em_get(E, sum, "i32"), x, "i32"), "i32");
  store(k, em(E, "arith.trunci %s : i32 to i8", x.s), k->fkt8, kt8_at(k, j, d, len4), "memref<?xi8>");
  em_end(E);
  store(k, bin(k, "arith.muli", em_get(E, sum, "i32"), em_int(E, 128, "i32"), "i32"), k->fkc, j, "memref<?xi32>");
  em_end(E);
  V i = em_for(E, k->c0, k->S, k->c1);
  d = em_for(E, k->c0, em_index(E, len4), k->c1);
  real = cmpi(k, "ult", d, em_index(E, len), "index");
  dr = bin(k, "arith.minui", d, em_index(E, len - 1), "index");
  x = em(E, "arith.fptosi %s : f32 to i32", load(k, qg, addx(k, mulc(k, i, len), dr), "memref<?xf32>").s);
  x = bin(k, "arith.addi", sel(k, real, x, em_int(E, 0, "i32"), "i32"), em_int(E, 128, "i32"), "i32");
  store(k, em(E, "arith.trunci %s : i32 to i8", x.s), k->fq8, addx(k, mulc(k, i, len4), d), "memref<?xi8>");
  em_end(E);
  em_end(E);
}

/* fsc[r * fsp + j] = grid dot of rows i0 + r (r < FS_ROWS; rows past S
 * repeat the last) and key j, for every key: by FMAs over the f32 grids,
 * or with VNNI by vpdpbusd over the bytes, 4 columns a step, corrected
 * for Q's offset (the same integers either way). */
static void first_stage_block(K *k, V i0) {
  bool vnni = k->vnni;
  const char *vt = vnni ? "vector<16xi32>" : "vector<16xf32>";
  V qg, kg;
  int64_t len;
  first_stage_grids(k, &qg, &kg, &len);
  int64_t rowlen = vnni ? vnni_len(len) : len, step = vnni ? 4 : 1;
  V zero = em(E, "arith.constant dense<%s> : %s", vnni ? "0" : "0.0", vt);
  V acc[FS_ROWS][TK / VL32], qoff[FS_ROWS];
  for (int r = 0; r < FS_ROWS; r++) {
    V row = bin(k, "arith.minui", addc(k, i0, r), bin(k, "arith.subi", k->S, k->c1, "index"), "index");
    qoff[r] = mulc(k, row, rowlen);
    for (int v = 0; v < TK / VL32; v++)
      acc[r][v] = em_var(E, vt);
  }
  V t = em_for(E, k->c0, k->fsp, em_index(E, TK));
  for (int r = 0; r < FS_ROWS; r++)
    for (int v = 0; v < TK / VL32; v++)
      em_set(E, acc[r][v], zero, vt);
  V d = em_for(E, k->c0, em_index(E, rowlen), em_index(E, step));
  V kd = addx(k, mulc(k, t, rowlen), mulc(k, d, TK));
  V kv[TK / VL32];
  for (int v = 0; v < TK / VL32; v++)
    kv[v] = vnni ? em(E, "vector.load %s[%s] : memref<?xi8>, vector<64xi8>", k->fkt8.s, addc(k, kd, v * VL32 * 4).s)
                 : em(E, "vector.load %s[%s] : memref<?xf32>, %s", k->fkt.s, addc(k, kd, v * VL32).s, vt);
  for (int r = 0; r < FS_ROWS; r++) {
    V qb;
    if (vnni) { /* Q's 4 bytes as one i32, in every lane */
      V q4 = em(E, "vector.load %s[%s] : memref<?xi8>, vector<4xi8>", k->fq8.s, addx(k, qoff[r], d).s);
      V q32 = em(E, "vector.extract %s[0] : i32 from vector<1xi32>",
                 em(E, "vector.bitcast %s : vector<4xi8> to vector<1xi32>", q4.s).s);
      qb = em(E, "vector.bitcast %s : %s to vector<64xi8>", em(E, "vector.broadcast %s : i32 to %s", q32.s, vt).s, vt);
    } else {
      qb = em(E, "vector.broadcast %s : f32 to %s", load(k, qg, addx(k, qoff[r], d), "memref<?xf32>").s, vt);
    }
    for (int v = 0; v < TK / VL32; v++) {
      V old = em_get(E, acc[r][v], vt);
      V nw = vnni ? em(E,
                       "llvm.call_intrinsic \"llvm.x86.avx512.vpdpbusd.512\"(%s, %s, %s) : (%s, vector<64xi8>, "
                       "vector<64xi8>) -> %s",
                       old.s, qb.s, kv[v].s, vt, vt)
                  : em(E, "vector.fma %s, %s, %s : %s", qb.s, kv[v].s, old.s, vt);
      em_set(E, acc[r][v], nw, vt);
    }
  }
  em_end(E);
  for (int v = 0; v < TK / VL32; v++) {
    V at = addc(k, t, v * VL32);
    V corr = vnni ? em(E, "vector.load %s[%s] : memref<?xi32>, %s", k->fkc.s, at.s, vt) : (V){""};
    for (int r = 0; r < FS_ROWS; r++) {
      V dotv = em_get(E, acc[r][v], vt);
      if (vnni)
        dotv = em(E, "arith.sitofp %s : %s to vector<16xf32>", em(E, "arith.subi %s, %s : %s", dotv.s, corr.s, vt).s, vt);
      em_do(E, "vector.store %s, %s[%s] : memref<?xf32>, vector<16xf32>", dotv.s, k->fsc.s,
            addx(k, mulx(k, em_index(E, r), k->fsp), at).s);
    }
  }
  em_end(E);
}

/* The first stage's K grid in the micro-kernel's layout, and its K steps
 * in f32 for first_top_fast's approximations, once per head. */
static void first_stage_prepare(K *k) {
  if (k->vnni)
    first_stage_bytes(k);
  else
    first_stage_transpose(k);
  V steps = k->s->has_predict ? k->pks : k->fks; /* round 0's steps are fks's first S */
  V j = em_for(E, k->c0, k->S, k->c1);
  store(k, em(E, "arith.truncf %s : f64 to f32", load(k, steps, j, "memref<?xf64>").s), k->ks32, j, "memref<?xf32>");
  em_end(E);
}

/* Opens the loops over rows [lo, hi) (lo a multiple of FS_ROWS) that score
 * FS_ROWS rows at a time in the first stage and then visit each; returns
 * the row, whose dots start at fsc_off. first_stage_rows_close ends them. */
static V first_stage_rows_open(K *k, V lo, V hi) {
  V i0 = em_for(E, lo, hi, em_index(E, FS_ROWS));
  first_stage_block(k, i0);
  V r = em_for(E, k->c0, bin(k, "arith.minui", em_index(E, FS_ROWS), bin(k, "arith.subi", hi, i0, "index"), "index"), k->c1);
  k->fsc_off = mulx(k, r, k->fsp);
  return addx(k, i0, r);
}

static void first_stage_rows_close(K *k) {
  em_end(E);
  em_end(E);
  k->fsc_off = (V){""};
}

/* Whether the row path defers its rows' softmax and P V to attend_block:
 * in a rows task (no importance outputs), when the selection's first stage
 * is tiled and the rows' lists are all that softmax needs (no exact
 * scores: no N:M, value pruning or progressive scores; no token pruning). */
static bool row_blocked(const K *k) {
  const SaSpec *s = k->s;
  return k->rows_task && (s->has_predict || s->n_filter_rounds > 0) && s->nm_m == 0 && s->value_keep >= 1.0 &&
         !s->has_progressive && s->token_keep >= 1.0;
}

/* The scores of 16 listed keys, blist[lbase + c + l] for l < 16, into
 * pr[c, c + 16): each key's products with the query row summed over its
 * vectors into 16 lanes, then the 16 vectors reduced together by a
 * transpose tree (pairs of vectors halve their lanes per key at each of 4
 * levels: 30 shuffles and 15 adds for 16 keys, where a reduction per key
 * costs about 8 dependent operations). */
static void score_block16(K *k, V qoff, V lbase, V c) {
  const char *vt = "vector<16xf32>";
  int64_t D = k->D, nvd = (D + VL32 - 1) / VL32;
  V x[VL32], qv[16];
  for (int64_t v = 0; v < nvd; v++)
    qv[v] = vload(k, k->q, addc(k, qoff, v * VL32), VL32, D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0, "f32");
  for (int l = 0; l < VL32; l++) {
    V j = em(E, "arith.index_cast %s : i32 to index", load(k, k->blist, addx(k, lbase, addc(k, c, l)), "memref<?xi32>").s);
    V ko = kv_row(k, j);
    for (int64_t v = 0; v < nvd; v++) {
      int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
      V kv = vload(k, k->kb, addc(k, ko, v * VL32), VL32, tail, "f32");
      x[l] = v == 0 ? em(E, "arith.mulf %s, %s : %s", qv[v].s, kv.s, vt)
                    : em(E, "vector.fma %s, %s, %s : %s", qv[v].s, kv.s, x[l].s, vt);
    }
  }
  /* level w: vectors hold 16 / (2w) keys in blocks of 2w partial sums; a
   * pair (a, b) becomes one holding a's keys then b's, blocks of w */
  for (int w = 8, n = VL32; w >= 1; w /= 2, n /= 2) {
    int keys = VL32 / (2 * w); /* keys per input vector */
    char lo[256], hi[256];
    size_t pl = 0, ph = 0;
    for (int src = 0; src < 2; src++)
      for (int key = 0; key < keys; key++)
        for (int t = 0; t < w; t++) {
          int at = src * VL32 + key * 2 * w + t;
          pl += (size_t)snprintf(lo + pl, sizeof lo - pl, "%s%d", pl ? ", " : "", at);
          ph += (size_t)snprintf(hi + ph, sizeof hi - ph, "%s%d", ph ? ", " : "", at + w);
        }
    for (int i = 0; i < n / 2; i++) {
      V a = em(E, "vector.shuffle %s, %s [%s] : %s, %s", x[2 * i].s, x[2 * i + 1].s, lo, vt, vt);
      V b = em(E, "vector.shuffle %s, %s [%s] : %s, %s", x[2 * i].s, x[2 * i + 1].s, hi, vt, vt);
      x[i] = em(E, "arith.addf %s, %s : %s", a.s, b.s, vt);
    }
  }
  V sc = em(E, "vector.broadcast %s : f32 to %s", em_float(E, k->s->scale, "f32").s, vt);
  em_do(E, "vector.store %s, %s[%s] : memref<?xf32>, %s", em(E, "arith.mulf %s, %s : %s", x[0].s, sc.s, vt).s, k->pr.s, c.s, vt);
}

/* The first entry in [lo, n) of the sorted list blist[base + ...] whose
 * key is at least `key` (n if none), by a branch-free binary search. */
static V list_lower_bound(K *k, V base, V lo, V n, V key) {
  V at = em_var(E, "index"), len = em_var(E, "index");
  em_set(E, at, lo, "index");
  em_set(E, len, bin(k, "arith.subi", n, lo, "index"), "index");
  /* each step leaves at most half of len (rounded down): bit-length steps */
  V bits = bin(k, "arith.subi", em_index(E, 64),
               em(E, "arith.index_castui %s : i64 to index", em(E, "math.ctlz %s : i64", to_i64(k, em_get(E, len, "index")).s).s),
               "index");
  em_for(E, k->c0, bits, k->c1);
  V a = em_get(E, at, "index"), l = em_get(E, len, "index");
  V h = bin(k, "arith.shrui", l, k->c1, "index");
  V j = em(E, "arith.index_cast %s : i32 to index", load(k, k->blist, addx(k, base, addx(k, a, h)), "memref<?xi32>").s);
  /* len can reach 0 before the last step; then nothing moves */
  V below = and1(k, cmpi(k, "ne", l, k->c0, "index"), cmpi(k, "ult", j, key, "index"));
  em_set(E, at, sel(k, below, addx(k, a, addc(k, h, 1)), a, "index"), "index");
  em_set(E, len, sel(k, below, bin(k, "arith.subi", l, addc(k, h, 1), "index"), h, "index"), "index");
  em_end(E);
  return em_get(E, at, "index");
}

/* Entries from one blocked row's list to the next's: S and a cache line,
 * so that the rows' lists do not all fall into the same cache sets (S
 * entries of 4 bytes are a multiple of 4 KiB whenever S is of 1024). */
static V list_stride(K *k) { return addc(k, k->S, 16); }

/* Softmax and P V of rows [ib, ib + nrows) from their lists (blist), one
 * key part at a time: a row's survivors are scattered over the head's K
 * and V rows, which together outgrow L2 at long sequences, so the block's
 * rows all take their keys from the first part (K and V rows [0, plen),
 * at most KV_PART_BYTES of them), then all from the next, with an online
 * softmax (maximum, sum and O accumulators rescaled when a part raises
 * the maximum). Scores and P are f32 as in row(); zero weights are
 * skipped. */
static void attend_block(K *k, V ib, V nrows) {
  const char *vt = "vector<16xf32>";
  int64_t D = k->D, nvd = (D + VL32 - 1) / VL32, Dp = nvd * VL32;
  V zero = em(E, "arith.constant dense<0.0> : %s", vt), ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  V r = em_for(E, k->c0, nrows, k->c1);
  store(k, em_float(E, -INFINITY, "f32"), k->bm, r, RBF_T);
  store(k, em_float(E, 0.0, "f32"), k->bl, r, RBF_T);
  for (int64_t v = 0; v < nvd; v++)
    em_do(E, "vector.store %s, %s[%s] : memref<?xf32>, %s", zero.s, k->bacc.s, addc(k, mulc(k, r, Dp), v * VL32).s, vt);
  em_end(E);
  /* key parts of at most KV_PART_BYTES of K and V rows, at least one */
  V parts = bin(k, "arith.divui", addc(k, mulc(k, k->S, D * (elem_bytes(k->k.k) + elem_bytes(k->v.k))), KV_PART_BYTES - 1),
                em_index(E, KV_PART_BYTES), "index");
  V plen = bin(k, "arith.divui", bin(k, "arith.subi", addx(k, k->S, parts), k->c1, "index"), parts, "index");
  V pend = em_for(E, plen, addx(k, k->S, plen), plen);
  r = em_for(E, k->c0, nrows, k->c1);
  V n = load(k, k->bn, r, RBX_T), base = mulx(k, r, list_stride(k));
  V lo = sel(k, cmpi(k, "eq", pend, plen, "index"), k->c0, load(k, k->bcur, r, RBX_T), "index");
  V hi = list_lower_bound(k, base, lo, n, pend);
  store(k, hi, k->bcur, r, RBX_T);
  em_if(E, cmpi(k, "ult", lo, hi, "index"));
  V qoff = row_offset(k, k->H, k->cur_b, k->cur_h, addx(k, ib, r));
  V cnt = bin(k, "arith.subi", hi, lo, "index");
  /* scores into pr[0, cnt): 16 keys at a time, then one by one */
  V lbase = addx(k, base, lo);
  V full = bin(k, "arith.andi", cnt, em_index(E, -VL32), "index");
  V c = em_for(E, k->c0, full, em_index(E, VL32));
  score_block16(k, qoff, lbase, c);
  em_end(E);
  c = em_for(E, full, cnt, k->c1);
  V j = em(E, "arith.index_cast %s : i32 to index", load(k, k->blist, addx(k, lbase, c), "memref<?xi32>").s);
  V d = dot(k, k->q, qoff, k->kb, kv_row(k, j), D, "f32");
  store(k, bin(k, "arith.mulf", em_float(E, k->s->scale, "f32"), d, "f32"), k->pr, c, "memref<?xf32>");
  em_end(E);
  /* the new maximum (NaN propagates, as in softmax()) and the rescale */
  V mvar = em_var(E, vt);
  em_set(E, mvar, ninf, vt);
  c = em_for(E, k->c0, cnt, em_index(E, VL32));
  V mask = em(E, "vector.create_mask %s : vector<16xi1>", bin(k, "arith.subi", cnt, c, "index").s);
  V x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", k->pr.s, c.s, mask.s, ninf.s, vt, vt);
  em_set(E, mvar, em(E, "arith.maximumf %s, %s : %s", em_get(E, mvar, vt).s, x.s, vt), vt);
  em_end(E);
  V mo = load(k, k->bm, r, RBF_T);
  V mn = bin(k, "arith.maximumf", mo, em(E, "vector.reduction <maximumf>, %s : %s into f32", em_get(E, mvar, vt).s, vt), "f32");
  V diff = em(E, "vector.broadcast %s : f32 to %s", bin(k, "arith.subf", mo, mn, "f32").s, vt);
  /* equal maxima (both -inf included) keep the scale at 1 */
  V alpha = sel(k, cmpf(k, "oeq", mo, mn, "f32"), em_float(E, 1.0, "f32"),
                em(E, "vector.extract %s[0] : f32 from %s", vexp(k, diff).s, vt), "f32");
  store(k, mn, k->bm, r, RBF_T);
  V mb = em(E, "vector.broadcast %s : f32 to %s", mn.s, vt);
  V svar = em_var(E, vt);
  em_set(E, svar, zero, vt);
  c = em_for(E, k->c0, cnt, em_index(E, VL32));
  mask = em(E, "vector.create_mask %s : vector<16xi1>", bin(k, "arith.subi", cnt, c, "index").s);
  x = em(E, "vector.maskedload %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s into %s", k->pr.s, c.s, mask.s, ninf.s, vt, vt);
  V ex = em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", mask.s, vexp(k, em(E, "arith.subf %s, %s : %s", x.s, mb.s, vt)).s,
            zero.s, vt);
  em_do(E, "vector.maskedstore %s[%s], %s, %s : memref<?xf32>, vector<16xi1>, %s", k->pr.s, c.s, mask.s, ex.s, vt);
  em_set(E, svar, em(E, "arith.addf %s, %s : %s", em_get(E, svar, vt).s, ex.s, vt), vt);
  em_end(E);
  V sum = em(E, "vector.reduction <add>, %s : %s into f32", em_get(E, svar, vt).s, vt);
  store(k, bin(k, "arith.addf", bin(k, "arith.mulf", load(k, k->bl, r, RBF_T), alpha, "f32"), sum, "f32"), k->bl, r,
        RBF_T);
  /* O = alpha O + sum p V over the part's keys */
  V ab = em(E, "vector.broadcast %s : f32 to %s", alpha.s, vt);
  V acc[16];
  for (int64_t v = 0; v < nvd; v++) {
    acc[v] = em_var(E, vt);
    V o = em(E, "vector.load %s[%s] : memref<?xf32>, %s", k->bacc.s, addc(k, mulc(k, r, Dp), v * VL32).s, vt);
    em_set(E, acc[v], em(E, "arith.mulf %s, %s : %s", o.s, ab.s, vt), vt);
  }
  /* (a software prefetch of the V rows 24 entries ahead costs 1-2% now
   * that the rows read are aligned, measured) */
  c = em_for(E, k->c0, cnt, k->c1);
  V p = load(k, k->pr, c, "memref<?xf32>");
  em_if(E, cmpf(k, "une", p, em_float(E, 0.0, "f32"), "f32"));
  j = em(E, "arith.index_cast %s : i32 to index", load(k, k->blist, addx(k, lbase, c), "memref<?xi32>").s);
  V voff = kv_row(k, j);
  V pb = em(E, "vector.broadcast %s : f32 to %s", p.s, vt);
  for (int64_t v = 0; v < nvd; v++) {
    int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
    V vv = vload(k, k->vb, addc(k, voff, v * VL32), VL32, tail, "f32");
    em_set(E, acc[v], em(E, "vector.fma %s, %s, %s : %s", pb.s, vv.s, em_get(E, acc[v], vt).s, vt), vt);
  }
  em_end(E);
  em_end(E);
  for (int64_t v = 0; v < nvd; v++)
    em_do(E, "vector.store %s, %s[%s] : memref<?xf32>, %s", em_get(E, acc[v], vt).s, k->bacc.s, addc(k, mulc(k, r, Dp), v * VL32).s,
          vt);
  em_end(E);
  em_end(E);
  em_end(E);
  /* O / sum; a row with no key is zero */
  r = em_for(E, k->c0, nrows, k->c1);
  V l = load(k, k->bl, r, RBF_T);
  V inv = sel(k, cmpf(k, "oeq", l, em_float(E, 0.0, "f32"), "f32"), em_float(E, 0.0, "f32"),
              bin(k, "arith.divf", em_float(E, 1.0, "f32"), l, "f32"), "f32");
  V ib2 = em(E, "vector.broadcast %s : f32 to %s", inv.s, vt);
  V ooff = row_offset(k, k->H, k->cur_b, k->cur_h, addx(k, ib, r));
  for (int64_t v = 0; v < nvd; v++) {
    int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
    V o = em(E, "vector.load %s[%s] : memref<?xf32>, %s", k->bacc.s, addc(k, mulc(k, r, Dp), v * VL32).s, vt);
    store_out(k, em(E, "arith.mulf %s, %s : %s", o.s, ib2.s, vt), addc(k, ooff, v * VL32), tail);
  }
  em_end(E);
}

/* attend_block's views of K and V for head (b, cur_kvh). Its scores and
 * P V read a row's listed K and V rows wherever they lie, and a row that
 * is not 64-byte aligned costs 5 cache lines and split loads where an
 * aligned one costs 4 (at seq 4096, 10% kept: 187 against 152 ms). So f32
 * K and V that are not both aligned are copied, one head at a time, into
 * aligned buffers of padded rows (the copy costs about 1/10 of what it
 * saves); aligned ones are read in place. */
static void kv_views(K *k, V b) {
  V base = k_row(k, k->c0), stride = bin(k, "arith.subi", k_row(k, k->c1), base, "index");
  k->kb = k->k;
  k->vb = k->v;
  k->kv_base = base;
  k->kv_stride = stride;
  if (k->k.k != BK_F32 || k->v.k != BK_F32)
    return;
  int64_t D = k->D, nvd = (D + VL32 - 1) / VL32, Dp = nvd * VL32;
  V kp = em(E, "memref.extract_aligned_pointer_as_index %s : memref<?xf32> -> index", k->k.m.s);
  V vp = em(E, "memref.extract_aligned_pointer_as_index %s : memref<?xf32> -> index", k->v.m.s);
  V mis = cmpi(k, "ne", bin(k, "arith.andi", bin(k, "arith.ori", kp, vp, "index"), em_index(E, 63), "index"), k->c0, "index");
  em_if(E, mis);
  V j = em_for(E, k->c0, k->S, k->c1);
  V off = row_offset(k, k->KVH, b, k->cur_kvh, j);
  for (int64_t v = 0; v < nvd; v++) {
    int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
    V at = addc(k, mulc(k, j, Dp), v * VL32);
    em_do(E, "vector.store %s, %s[%s] : memref<?xf32>, vector<16xf32>", vload(k, k->k, addc(k, off, v * VL32), VL32, tail, "f32").s,
          k->kcopy.s, at.s);
    em_do(E, "vector.store %s, %s[%s] : memref<?xf32>, vector<16xf32>", vload(k, k->v, addc(k, off, v * VL32), VL32, tail, "f32").s,
          k->vcopy.s, at.s);
  }
  em_end(E);
  em_end(E);
  k->kb.m = em(E, "arith.select %s, %s, %s : memref<?xf32>", mis.s, k->kcopy.s, k->k.m.s);
  k->vb.m = em(E, "arith.select %s, %s, %s : memref<?xf32>", mis.s, k->vcopy.s, k->v.m.s);
  k->kv_base = sel(k, mis, k->c0, base, "index");
  k->kv_stride = sel(k, mis, em_index(E, Dp), stride, "index");
}

/* One kept head (b, h) on the row path: the quantized copies its selection
 * stages score with, then every query row (zero for pruned tokens). */
static void head_body(K *k, V b, V h) {
  const SaSpec *s = k->s;
  if (s->has_predict) {
    project_rows(k, k->q, k->H, b, h, k->pq, k->pqs);
    project_rows(k, k->k, k->KVH, b, k->cur_kvh, k->pk, k->pks);
  }
  for (int r = 0; r < s->n_filter_rounds; r++) {
    quant_head(k, k->q, k->H, b, h, k->fq, r, s->filter[r].q_bits, k->fqs);
    quant_head(k, k->k, k->KVH, b, k->cur_kvh, k->fk, r, s->filter[r].k_bits, k->fks);
  }
  if (s->has_progressive) {
    quant_head(k, k->k, k->KVH, b, k->cur_kvh, k->kmsb, 0, s->msb_bits, (V){""});
    quant_head(k, k->k, k->KVH, b, k->cur_kvh, k->kfull, 0, s->msb_bits + s->lsb_bits, (V){""});
  }
  bool tiled = s->has_predict || s->n_filter_rounds > 0;
  V i;
  if (row_blocked(k)) {
    kv_views(k, b);
    first_stage_prepare(k);
    V ib = em_for(E, k->c0, k->S, em_index(E, RB));
    V nrows = bin(k, "arith.minui", em_index(E, RB), bin(k, "arith.subi", k->S, ib, "index"), "index");
    i = first_stage_rows_open(k, ib, addx(k, ib, nrows));
    V rb = bin(k, "arith.subi", i, ib, "index"), base = mulx(k, rb, list_stride(k));
    /* the list, for the key parts of attend_block: written there by the
     * first stage when it is the last and the target has AVX-512 */
    bool direct = k->vnni && (s->has_predict ? s->n_filter_rounds == 0 : s->n_filter_rounds == 1);
    if (direct)
      k->blist_base = base;
    V handled = row_select(k, i);
    k->blist_base = (V){""};
    /* else (or when the first stage left the row to the list path) copy */
    bool maybe_written = direct && handled.s[0];
    if (maybe_written)
      em_if(E, em(E, "arith.xori %s, %s : i1", em_get(E, handled, "i1").s, em_int(E, 1, "i1").s));
    V c = em_for(E, k->c0, n_get(k), k->c1);
    store(k, em(E, "arith.index_cast %s : index to i32", load(k, k->idx, c, "memref<?xindex>").s), k->blist, addx(k, base, c),
          "memref<?xi32>");
    em_end(E);
    if (maybe_written)
      em_end(E);
    store(k, n_get(k), k->bn, rb, RBX_T);
    first_stage_rows_close(k);
    attend_block(k, ib, nrows);
    em_end(E);
    return;
  }
  if (tiled) {
    first_stage_prepare(k);
    i = first_stage_rows_open(k, k->c0, k->S);
  } else {
    i = em_for(E, k->c0, k->S, k->c1);
  }
  if (s->token_keep < 1.0) {
    V tk = cmpi(k, "ne", load(k, k->tokkeep, i, "memref<?xi8>"), em_int(E, 0, "i8"), "i8");
    em_if(E, tk);
    row(k, i);
    em_else(E);
    zero_row(k, row_offset(k, k->H, b, h, i));
    em_end(E);
  } else {
    row(k, i);
  }
  if (tiled)
    first_stage_rows_close(k);
  else
    em_end(E);
}

/* in[off] as f64 when the optional input `has` is given, else 0. */
static V optional_in(K *k, V has, V in, V off) {
  V x = em_var(E, "f64");
  em_set(E, x, em_float(E, 0.0, "f64"), "f64");
  em_if(E, has);
  em_set(E, x, em(E, "arith.extf %s : f32 to f64", load(k, in, off, "memref<?xf32>").s), "f64");
  em_end(E);
  return em_get(E, x, "f64");
}

static void batch(K *k, V b) {
  const SaSpec *s = k->s;
  char ht[32], hk[32];
  snprintf(ht, sizeof ht, "memref<%lldxf64>", (long long)k->H);
  snprintf(hk, sizeof hk, "memref<%lldxi8>", (long long)k->H);
  /* tokens */
  V t = em_for(E, k->c0, k->S, k->c1);
  store(k, optional_in(k, k->has_ti, k->ti, addx(k, mulx(k, b, k->S), t)), k->tokval, t, "memref<?xf64>");
  store(k, em_float(E, 0.0, "f64"), k->tokacc, t, "memref<?xf64>");
  store(k, em_int(E, 1, "i8"), k->tokkeep, t, "memref<?xi8>");
  em_end(E);
  if (s->token_keep < 1.0)
    prune_decide(k, k->S, k->tokval, "memref<?xf64>", k->tokkeep, "memref<?xi8>", ceil_ratio(k, s->token_keep, k->S));
  /* heads */
  V hh = em_for(E, k->c0, em_index(E, k->H), k->c1);
  store(k, optional_in(k, k->has_hi, k->hi, addx(k, mulc(k, b, k->H), hh)), k->headval, hh, ht);
  store(k, em_int(E, 1, "i8"), k->headkeep, hh, hk);
  em_end(E);
  if (s->head_keep < 1.0) {
    int64_t want = (int64_t)ceil(s->head_keep * (double)k->H);
    /* prune_decide reads a dynamic list; copy the static head arrays into the row lists' space */
    prune_decide(k, em_index(E, k->H), k->headval, ht, k->headkeep, hk, em_index(E, want));
  }

  V h = em_for(E, k->c0, em_index(E, k->H), k->c1);
  k->cur_b = b;
  k->cur_h = h;
  k->cur_kvh = bin(k, "arith.divui", h, em_index(E, k->H / k->KVH), "index");
  em_set(E, k->abssum, em_float(E, 0.0, "f64"), "f64");
  V kept = cmpi(k, "ne", load(k, k->headkeep, h, hk), em_int(E, 0, "i8"), "i8");
  em_if(E, kept);
  head_body(k, b, h);
  em_else(E);
  V i = em_for(E, k->c0, k->S, k->c1);
  zero_row(k, row_offset(k, k->H, b, h, i));
  em_end(E);
  em_end(E);
  em_if(E, k->has_ho);
  V tot = bin(k, "arith.addf", load(k, k->headval, h, ht), em_get(E, k->abssum, "f64"), "f64");
  V outv = sel(k, kept, em(E, "arith.truncf %s : f64 to f32", tot.s), em_float(E, -INFINITY, "f32"), "f32");
  store(k, outv, k->ho, addx(k, mulc(k, b, k->H), h), "memref<?xf32>");
  em_end(E);
  em_end(E);

  em_if(E, k->has_to);
  t = em_for(E, k->c0, k->S, k->c1);
  V tot2 = bin(k, "arith.addf", load(k, k->tokval, t, "memref<?xf64>"), load(k, k->tokacc, t, "memref<?xf64>"), "f64");
  V kt = cmpi(k, "ne", load(k, k->tokkeep, t, "memref<?xi8>"), em_int(E, 0, "i8"), "i8");
  V o2 = sel(k, kt, em(E, "arith.truncf %s : f64 to f32", tot2.s), em_float(E, -INFINITY, "f32"), "f32");
  store(k, o2, k->to, addx(k, mulx(k, b, k->S), t), "memref<?xf32>");
  em_end(E);
  em_end(E);
}

/* ------------------------------------------------------------------ */
/* Entry: argument checks, views, scratch                             */

#define DESC "!llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>"

/* A memref<?xT> view of `n` (i64) elements at pointer p. */
static V view(K *k, V p, V n, const char *mt) {
  V u = em(E, "llvm.mlir.undef : " DESC);
  u = em(E, "llvm.insertvalue %s, %s[0] : " DESC, p.s, u.s);
  u = em(E, "llvm.insertvalue %s, %s[1] : " DESC, p.s, u.s);
  u = em(E, "llvm.insertvalue %s, %s[2] : " DESC, em(E, "llvm.mlir.constant(0 : i64) : i64").s, u.s);
  u = em(E, "llvm.insertvalue %s, %s[3, 0] : " DESC, n.s, u.s);
  u = em(E, "llvm.insertvalue %s, %s[4, 0] : " DESC, em(E, "llvm.mlir.constant(1 : i64) : i64").s, u.s);
  return em(E, "builtin.unrealized_conversion_cast %s : " DESC " to %s", u.s, mt);
}

static V nonnull(K *k, const char *arg) {
  V i = em(E, "llvm.ptrtoint %s : !llvm.ptr to i64", arg);
  return cmpi(k, "ne", i, c64(k, 0), "i64");
}

/* memref.alloc of n (index) elements, 64-byte aligned (whole vectors
 * then never straddle cache lines); sets *ok to false when it failed. */
static V alloc(K *k, V n, const char *et, V *ok) {
  V m = em(E, "memref.alloc(%s) {alignment = 64} : memref<?x%s>", n.s, et);
  V p = em(E, "memref.extract_aligned_pointer_as_index %s : memref<?x%s> -> index", m.s, et);
  *ok = and1(k, *ok, cmpi(k, "ne", p, k->c0, "index"));
  return m;
}


/* ------------------------------------------------------------------ */
/* Flash-style path for static patterns                               */
/*
 * Patterns with no dynamic stage run as tiles: a task is one (batch, head,
 * 96-row query tile); it streams 64-key tiles, keeps the row maxima and sums
 * of an online softmax and the output rows in f32 accumulators on its own
 * stack, and never writes scores to memory. Key tiles outside closed-form
 * bounds are never visited; a tile the mask tree proves empty is skipped, one
 * it proves full needs no per-pair mask. Q K^T is a register-blocked
 * micro-kernel (6 rows x 64 keys, 24 vector accumulators) over K transposed
 * once per call into f32 (the "pack" task); P V is blocked the same way over
 * head_dim. Tasks run on the runtime's worker pool (sattn_cpu_parallel). */


/* Task functions read their arguments from a context block of i64 slots:
 * q, k, v, o, kt (pointers), batch, seq. */
static V ctx_ptr(K *k, V ctxm, int slot) {
  V x = load(k, ctxm, em_index(E, slot), "memref<?xi64>");
  return em(E, "llvm.inttoptr %s : i64 to !llvm.ptr", x.s);
}

static V ctx_i64(K *k, V ctxm, int slot) { return load(k, ctxm, em_index(E, slot), "memref<?xi64>"); }

/* Opens a task function NAME__suffix(ctx, task) and loads its views. */
static V task_begin(K *k, const char *suffix) {
  const SaSpec *s = k->s;
  BufKind in = kind_of(s->storage), out = kind_of(s->output);
  em_raw(E, "func.func private @%s__%s(%%ctx: !llvm.ptr, %%task: i64) {\n", s->name, suffix);
  k->c0 = em_index(E, 0);
  k->c1 = em_index(E, 1);
  V ctxm = view(k, (V){"%ctx"}, c64(k, 8), "memref<?xi64>");
  k->ctxm = ctxm;
  V batch = ctx_i64(k, ctxm, 5);
  k->S64 = ctx_i64(k, ctxm, 6);
  k->S = to_index(k, k->S64);
  k->B = to_index(k, batch);
  V bs = bin(k, "arith.muli", batch, k->S64, "i64");
  V nq = bin(k, "arith.muli", bs, c64(k, k->H * k->D), "i64");
  V nkv = bin(k, "arith.muli", bs, c64(k, k->KVH * k->D), "i64");
  k->q = (Buf){view(k, ctx_ptr(k, ctxm, 0), nq, memty(in)), in};
  k->k = (Buf){view(k, ctx_ptr(k, ctxm, 1), nkv, memty(in)), in};
  k->v = (Buf){view(k, ctx_ptr(k, ctxm, 2), nkv, memty(in)), in};
  k->o = (Buf){view(k, ctx_ptr(k, ctxm, 3), nq, memty(out)), out};
  V sp = bin(k, "arith.muli", bin(k, "arith.divsi", bin(k, "arith.addi", k->S64, c64(k, TK - 1), "i64"), c64(k, TK), "i64"),
             c64(k, TK), "i64");
  k->kt_len = sp;
  V nkt = bin(k, "arith.muli", batch, bin(k, "arith.muli", sp, c64(k, k->KVH * k->D), "i64"), "i64");
  k->kt_flags = to_index(k, nkt);
  V nflags = bin(k, "arith.muli", batch,
                 bin(k, "arith.muli", bin(k, "arith.divsi", sp, c64(k, TK), "i64"), c64(k, k->KVH * TILE_FACTS), "i64"), "i64");
  k->kt = view(k, ctx_ptr(k, ctxm, 4), bin(k, "arith.addi", nkt, nflags, "i64"), "memref<?xf32>");
  return em(E, "arith.index_cast %%task : i64 to index");
}

static void task_end(K *k) {
  em_do(E, "func.return");
  em_raw(E, "}\n");
}

/* Whether V rows [k0, k0 + n) of head (b, g) hold an Inf or NaN. */
static V v_nonfinite(K *k, V b, V g, V k0, V n) {
  const char *vt = "vector<16xf32>";
  V badv = em_var(E, "i1");
  em_set(E, badv, em_int(E, 0, "i1"), "i1");
  V c = em_for(E, k->c0, n, k->c1);
  V off = row_offset(k, k->KVH, b, g, addx(k, k0, c));
  for (int64_t v = 0; v * VL32 < k->D; v++) {
    int tail = k->D - v * VL32 < VL32 ? (int)(k->D - v * VL32) : 0;
    V x = vload(k, k->v, addc(k, off, v * VL32), VL32, tail, "f32");
    V dx = em(E, "arith.subf %s, %s : %s", x.s, x.s, vt); /* NaN exactly where x is Inf or NaN */
    V nf = em(E, "vector.reduction <or>, %s : vector<16xi1> into i1", em(E, "arith.cmpf uno, %s, %s : %s", dx.s, dx.s, vt).s);
    em_set(E, badv, or1(k, em_get(E, badv, "i1"), nf), "i1");
  }
  em_end(E);
  return em_get(E, badv, "i1");
}

/* Index in kt of key tile t's V flag for head (b, g); its largest key
 * norm follows. */
static V vflag_at(K *k, V b, V g, V t) {
  V ntl = bin(k, "arith.divui", to_index(k, k->kt_len), em_index(E, TK), "index");
  return addx(k, k->kt_flags, mulc(k, addx(k, mulx(k, addx(k, mulc(k, b, k->KVH), g), ntl), t), TILE_FACTS));
}

/* N:M's key tiles in slot order. With M = 2 or 4 the flash path stores a
 * 64-key tile's scores so that the M members of a group sit in the same
 * lane of M different 16-lane vectors: slot v * 16 + l holds key
 * (v / M) * 16 M + l M + v % M (for M = 4, vector v holds keys v, v + 4,
 * ..., v + 60). Ranking a group is then lane-wise min and max across
 * vectors, with no shuffles. The pack writes K^T in that order, so the
 * Q K^T block produces it, and P V reads each key's P from its slot.
 * Used when N < M and the mask (if any) gives each row one key range,
 * which a compare against each lane's key position applies in registers;
 * other N:M plans keep the natural order (0). */
static int nm_slots(const KernelPlan *p) {
  const SaSpec *s = &p->s;
  bool m_ok = s->nm_m == 2 || s->nm_m == 4;
  return m_ok && s->nm_n < s->nm_m && (!p->mask || mask_bounds_exact(p->mask)) ? (int)s->nm_m : 0;
}

/* The key offset in its tile of slot c (both in [0, TK)), for constants. */
static int slot_key_c(int M, int c) {
  if (!M)
    return c;
  int v = c / VL32, l = c % VL32;
  return v / M * VL32 * M + l * M + v % M;
}

/* The slot of key offset c in [0, TK) (k->slots' order). */
static V key_slot(K *k, V c) {
  int M = k->slots;
  if (!M)
    return c;
  V blk = bin(k, "arith.divui", c, em_index(E, VL32 * M), "index");
  V w = bin(k, "arith.remui", c, em_index(E, VL32 * M), "index");
  V v = addx(k, mulc(k, blk, M), bin(k, "arith.remui", c, em_index(E, M), "index"));
  return addx(k, mulc(k, v, VL32), bin(k, "arith.divui", w, em_index(E, M), "index"));
}

/* The key in slot j of kt's padded key axis (tiles of TK slots): the
 * inverse of key_slot, j itself in the natural order. */
static V slot_key(K *k, V j) {
  int M = k->slots;
  if (!M)
    return j;
  V w = bin(k, "arith.remui", j, em_index(E, TK), "index");
  V v = bin(k, "arith.divui", w, em_index(E, VL32), "index"), l = bin(k, "arith.remui", w, em_index(E, VL32), "index");
  V in_tile = addx(k, addx(k, mulc(k, bin(k, "arith.divui", v, em_index(E, M), "index"), VL32 * M), mulc(k, l, M)),
                   bin(k, "arith.remui", v, em_index(E, M), "index"));
  return addx(k, bin(k, "arith.subi", j, w, "index"), in_tile);
}

/* pack task (b, g): K[b, g, j, d] (zero past S) into the head's block of
 * kt at kt_at(j, d), and per key tile a flag (1.0) when its V rows are not
 * all finite, read once here rather than by every query tile. */
static void emit_pack(K *k) {
  V task = task_begin(k, "pack");
  V b = bin(k, "arith.divui", task, em_index(E, k->KVH), "index");
  V g = bin(k, "arith.remui", task, em_index(E, k->KVH), "index");
  V sp = to_index(k, k->kt_len);
  V base = mulx(k, mulc(k, addx(k, mulc(k, b, k->KVH), g), k->D), sp);
  V cTK = em_index(E, TK);
  if (k->k.k == BK_F32 && k->D % VL32 == 0) {
    /* 16 x 16 blocks (16 keys, 16 of d) transposed in registers: 4 rounds
     * of two-source shuffles, round b swapping the off-diagonal b x b
     * blocks of each pair of rows (i, i + b). Rows past S are zero. */
    const char *vt = "vector<16xf32>";
    V zero = em(E, "arith.constant dense<0.0> : %s", vt);
    V j0 = em_for(E, k->c0, sp, em_index(E, VL32));
    /* the key of the block's first slot; its slots' keys are M apart in
     * slot order (nm_slots), consecutive otherwise */
    V kb = slot_key(k, j0);
    int step = k->slots ? k->slots : 1;
    V d0 = em_for(E, k->c0, em_index(E, k->D), em_index(E, VL32));
    V x[VL32];
    for (int i = 0; i < VL32; i++) {
      V j = addc(k, kb, i * step);
      V inside = cmpi(k, "ult", j, k->S, "index");
      V off = row_offset(k, k->KVH, b, g, bin(k, "arith.minui", j, bin(k, "arith.subi", k->S, k->c1, "index"), "index"));
      V row = em(E, "vector.load %s[%s] : memref<?xf32>, %s", k->k.m.s, addx(k, off, d0).s, vt);
      x[i] = em(E, "arith.select %s, %s, %s : %s", inside.s, row.s, zero.s, vt);
    }
    for (int bs = 8; bs >= 1; bs /= 2)
      for (int i = 0; i < VL32; i++) {
        if (i & bs)
          continue;
        char lo[200], hi[200];
        int nl = 0, nh = 0;
        for (int c = 0; c < VL32; c++) {
          /* operand lanes: 0..15 are row i, 16..31 row i + bs */
          int a = (c & bs) ? 16 + c - bs : c, h = (c & bs) ? 16 + c : c + bs;
          nl += snprintf(lo + nl, sizeof lo - (size_t)nl, "%s%d", c ? ", " : "", a);
          nh += snprintf(hi + nh, sizeof hi - (size_t)nh, "%s%d", c ? ", " : "", h);
        }
        V a = em(E, "vector.shuffle %s, %s [%s] : %s, %s", x[i].s, x[i + bs].s, lo, vt, vt);
        V h = em(E, "vector.shuffle %s, %s [%s] : %s, %s", x[i].s, x[i + bs].s, hi, vt, vt);
        x[i] = a, x[i + bs] = h;
      }
    for (int c = 0; c < VL32; c++)
      em_do(E, "vector.store %s, %s[%s] : memref<?xf32>, %s", x[c].s, k->kt.s,
            addx(k, base, kt_at(k, j0, addc(k, d0, c), k->D)).s, vt);
    em_end(E);
    em_end(E);
  } else {
    V j = em_for(E, k->c0, sp, k->c1); /* a slot */
    V jk = slot_key(k, j);
    V inside = cmpi(k, "ult", jk, k->S, "index");
    V jr = sel(k, inside, jk, k->c0, "index");
    V off = row_offset(k, k->KVH, b, g, jr);
    V d = em_for(E, k->c0, em_index(E, k->D), k->c1);
    V x = sload(k, k->k, addx(k, off, d), "f32");
    x = sel(k, inside, x, em_float(E, 0.0, "f32"), "f32");
    store(k, x, k->kt, addx(k, base, kt_at(k, j, d, k->D)), "memref<?xf32>");
    em_end(E);
    em_end(E);
  }
  V t = em_for(E, k->c0, bin(k, "arith.divui", sp, cTK, "index"), k->c1);
  V k0 = mulc(k, t, TK);
  V bad = v_nonfinite(k, b, g, k0, bin(k, "arith.minui", cTK, bin(k, "arith.subi", k->S, k0, "index"), "index"));
  V at = vflag_at(k, b, g, t);
  store(k, sel(k, bad, em_float(E, 1.0, "f32"), em_float(E, 0.0, "f32"), "f32"), k->kt, at, "memref<?xf32>");
  if (k->s->nm_m > 0) {
    /* N:M's bound on f32 error takes the tile's largest key norm (padding
     * keys are zero), found here once rather than by every query tile */
    const char *vt = "vector<16xf32>";
    V sq[TK / VL32];
    for (int v = 0; v < TK / VL32; v++)
      sq[v] = em_var(E, vt), em_set(E, sq[v], em(E, "arith.constant dense<0.0> : %s", vt), vt);
    V dd = em_for(E, k->c0, em_index(E, k->D), k->c1);
    V kd = addx(k, base, addx(k, mulc(k, k0, k->D), mulc(k, dd, TK)));
    for (int v = 0; v < TK / VL32; v++) {
      V x = em(E, "vector.load %s[%s] : memref<?xf32>, %s", k->kt.s, addc(k, kd, v * VL32).s, vt);
      em_set(E, sq[v], em(E, "vector.fma %s, %s, %s : %s", x.s, x.s, em_get(E, sq[v], vt).s, vt), vt);
    }
    em_end(E);
    V mx2 = em_get(E, sq[0], vt);
    for (int v = 1; v < TK / VL32; v++)
      mx2 = em(E, "arith.maximumf %s, %s : %s", mx2.s, em_get(E, sq[v], vt).s, vt);
    V kmax = em(E, "math.sqrt %s : f32", em(E, "vector.reduction <maximumf>, %s : %s into f32", mx2.s, vt).s);
    store(k, kmax, k->kt, addc(k, at, 1), "memref<?xf32>");
  }
  em_end(E);
  task_end(k);
}

/* Row r of a score tile ranked exactly: f64 scores of its candidates (the
 * lanes of pt's row other than -inf, in k->slots' order), as the row path
 * computes them, ranked in their groups of M keys in the reference's order
 * (rank_beats); those ranked N or worse become -inf in pt. For rows whose f32 ranking
 * is within rounding of a tie. With `near` (an i32; slot order only), just
 * the groups whose bits it sets (bit p * 16 + l: lane l of the vectors
 * [p M, p M + M)); the others are already ranked. */
static void nm_exact_row(K *k, V pt, const char *pmt, V r, V b, V h, V g, V i0, V k0, V val64, V near) {
  const SaSpec *s = k->s;
  int M = (int)s->nm_m, N = (int)s->nm_n;
  char vt64[32];
  snprintf(vt64, sizeof vt64, "memref<%dxf64>", TK);
  V qoff = row_offset(k, k->H, b, h, addx(k, i0, r));
  for (int pass = 0; pass < 2; pass++) {
    V c = em_for(E, k->c0, em_index(E, TK), k->c1);
    V in_near = em_int(E, 1, "i1");
    if (near.s[0]) {
      V bit = addx(k, mulc(k, bin(k, "arith.divui", c, em_index(E, VL32 * M), "index"), VL32),
                   bin(k, "arith.divui", bin(k, "arith.remui", c, em_index(E, VL32 * M), "index"), em_index(E, M), "index"));
      V sh = bin(k, "arith.shrui", near, em(E, "arith.index_cast %s : index to i32", bit.s), "i32");
      in_near = cmpi(k, "ne", bin(k, "arith.andi", sh, em_int(E, 1, "i32"), "i32"), em_int(E, 0, "i32"), "i32");
    }
    em_if(E, in_near);
    if (pass == 0) {
      V x = load(k, pt, addx(k, mulc(k, r, TK), key_slot(k, c)), pmt);
      em_if(E, cmpf(k, "une", x, em_float(E, -INFINITY, "f32"), "f32")); /* -inf: not a candidate */
      V d = dot(k, k->q, qoff, k->k, row_offset(k, k->KVH, b, g, addx(k, k0, c)), k->D, "f64");
      store(k, bin(k, "arith.mulf", em_float(E, s->scale, "f64"), d, "f64"), val64, c, vt64);
      em_else(E);
      store(k, em_float(E, -INFINITY, "f64"), val64, c, vt64);
      em_end(E);
    } else {
      V a = load(k, val64, c, vt64);
      V lo = mulc(k, bin(k, "arith.divui", c, em_index(E, M), "index"), M);
      V rank = em_var(E, "index");
      em_set(E, rank, k->c0, "index");
      V t = em_for(E, lo, addc(k, lo, M), k->c1);
      V at = load(k, val64, t, vt64);
      V better = and1(k, cmpf(k, "une", at, em_float(E, -INFINITY, "f64"), "f64"),
                      rank_beats(k, at, a, cmpi(k, "ult", t, c, "index"), "f64"));
      V rv = em_get(E, rank, "index");
      em_set(E, rank, sel(k, better, addc(k, rv, 1), rv, "index"), "index");
      em_end(E);
      em_if(E, cmpi(k, "uge", em_get(E, rank, "index"), em_index(E, N), "index"));
      store(k, em_float(E, -INFINITY, "f32"), pt, addx(k, mulc(k, r, TK), key_slot(k, c)), pmt);
      em_end(E);
    }
    em_end(E);
    em_end(E);
  }
}

/* N:M on a score tile (docs/semantics.md 4.7), for plans whose only
 * dynamic stage is N:M with M dividing 16: the groups [g*M, (g+1)*M) then
 * lie inside one 16-lane vector of a 64-key tile, and each lane's rank in
 * its group is M - 1 shuffles and compares. Lanes ranked N or worse become
 * -inf, so the online softmax and P V that follow give them nothing.
 *
 * N:M ranks exact scores; the tile's are f32. Each differs from the exact
 * one by at most |scale| (D + 1) 2^-24 |q| |k| (an f32 dot of length D and
 * the scaling, with Cauchy-Schwarz for the sum of |q_d k_d|), so the f32
 * ranking is the exact one unless a kept and a dropped candidate of a
 * group lie within twice that. When any do in a row of the tile (rare on
 * real data), the row's groups are ranked again on scores in f64, as the
 * row path computes them. qn holds the tile rows' norms |q|; kmax bounds
 * |k| over the key tile. */
static void nm_select_tile(K *k, V pt, const char *pmt, V nr, V b, V h, V g, V i0, V k0, V qn, V kmax, V val64) {
  const SaSpec *s = k->s;
  int M = (int)s->nm_m, N = (int)s->nm_n;
  const char *vt = "vector<16xf32>";
  char qnt[32]; /* the type of qn (TQ rows) */
  snprintf(qnt, sizeof qnt, "memref<%dxf32>", TQ);
  V ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  V pinf = em(E, "arith.constant dense<0x7F800000> : %s", vt);
  /* Each group's N-th largest score (tn) and the next (tn1), by one of two
   * networks over lane shuffles (lane xor d): a merge of sorted lists of
   * the n + 1 largest (or smallest, when most are kept), n the fewer of
   * the kept and the dropped, about (n + 1)(n + 2) operations per halving
   * of the group; or a bitonic sort of the group, log2(M)(log2(M) + 1) / 2
   * stages of a shuffle, a minimum, a maximum and a select. Measured at
   * seq 4096, the merge is the faster up to n = 2 (2:8 and 6:8: 3%), the
   * sort beyond (4:8: 254 ms, where ranking each lane against its 7
   * partners took 318). */
  int levels = 0;
  while ((1 << levels) < M)
    levels++;
  bool low = M - N < N; /* most kept: the dropped are the few smallest */
  int n = low ? M - N : N;
  bool net = levels * (n + 1) * (n + 2) <= 6 * levels * (levels + 1) / 2;
  char xperm[17][128];
  for (int d = 1; d < M && d < 17; d *= 2) {
    size_t a = 0;
    for (int lane = 0; lane < 16; lane++)
      a += (size_t)snprintf(xperm[d] + a, sizeof xperm[d] - a, "%s%d", lane ? ", " : "", lane ^ d);
  }
  /* the bitonic sort's stages (ascending within each group): at stage
   * (kk, d), lane i takes the smaller of itself and lane i xor d when it
   * is the pair's lower lane in an ascending block (i mod M has bit kk
   * clear, as every lane has in the last merge, kk = M) or the upper lane
   * in a descending one */
  char takemin[64][160];
  int nst = 0, st_d[64];
  for (int kk = 2; kk <= M; kk *= 2)
    for (int d = kk / 2; d >= 1; d /= 2) {
      size_t a = 0;
      for (int lane = 0; lane < 16; lane++) {
        int il = lane % M;
        bool lower = (il & d) == 0, asc = (il & kk) == 0;
        a += (size_t)snprintf(takemin[nst] + a, sizeof takemin[nst] - a, "%s%s", lane ? ", " : "",
                              lower == asc ? "true" : "false");
      }
      st_d[nst++] = d;
    }
  /* after the sort, lane base + M - N holds the N-th largest */
  char at_n[128], at_n1[128];
  {
    size_t a = 0, c = 0;
    for (int lane = 0; lane < 16; lane++) {
      int base = lane - lane % M;
      a += (size_t)snprintf(at_n + a, sizeof at_n - a, "%s%d", lane ? ", " : "", base + M - N);
      c += (size_t)snprintf(at_n1 + c, sizeof at_n1 - c, "%s%d", lane ? ", " : "", base + M - N - 1);
    }
  }
  double slack = fabs(s->scale) * (double)(k->D + 4) * 0x1p-22;
  V r = em_for(E, k->c0, nr, k->c1);
  V thr = bin(k, "arith.mulf", bin(k, "arith.mulf", load(k, qn, r, qnt), kmax, "f32"),
              em_float(E, slack, "f32"), "f32");
  V thrb = em(E, "vector.broadcast %s : f32 to %s", thr.s, vt);
  V near = em_int(E, 0, "i1");
  V kept[TK / VL32];
  for (int v = 0; v < TK / VL32; v++) {
    V at = addc(k, mulc(k, r, TK), v * VL32);
    V x = em(E, "vector.load %s[%s] : %s, %s", pt.s, at.s, pmt, vt);
    /* a NaN score ranks after every number (ref_rank_cmp): exact path */
    near = or1(k, near, em(E, "vector.reduction <or>, %s : vector<16xi1> into i1", cmpf(k, "uno", x, x, vt).s));
    V tn, tn1;
    if (net) {
      /* every lane gets its group's n + 1 largest (or, when most are
       * kept, smallest), in order: lists of one merged with the partner
       * lane's (lane xor d) for d = 1, 2, 4, ..: the k-th largest of two
       * sorted lists A and B is the largest of A[k], B[k] and
       * min(A[i - 1], B[k - i]) for 0 < i <= k (and the same with min
       * and max swapped) */
      V L[17], P[17], Mg[17];
      V (*outer)(K *, V, V) = low ? vminf : vmaxf, (*inner)(K *, V, V) = low ? vmaxf : vminf;
      L[0] = x;
      for (int q = 1; q <= n; q++)
        L[q] = low ? pinf : ninf;
      for (int d = 1; d < M; d *= 2) {
        for (int q = 0; q <= n; q++)
          P[q] = em(E, "vector.shuffle %s, %s [%s] : %s, %s", L[q].s, L[q].s, xperm[d], vt, vt);
        for (int q = 0; q <= n; q++) {
          V m = outer(k, L[q], P[q]);
          for (int i = 1; i <= q; i++)
            m = outer(k, m, inner(k, L[i - 1], P[q - i]));
          Mg[q] = m;
        }
        for (int q = 0; q <= n; q++)
          L[q] = Mg[q];
      }
      /* from the smallest: the (M - N + 1)-th smallest is the N-th
       * largest, the (M - N)-th the next */
      tn = low ? L[n] : L[N - 1];
      tn1 = low ? L[n - 1] : L[N];
    } else {
      V y = x;
      for (int st = 0; st < nst; st++) {
        V pr = em(E, "vector.shuffle %s, %s [%s] : %s, %s", y.s, y.s, xperm[st_d[st]], vt, vt);
        V tm = em(E, "arith.constant dense<[%s]> : vector<16xi1>", takemin[st]);
        y = em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", tm.s, vminf(k, y, pr).s, vmaxf(k, y, pr).s, vt);
      }
      tn = em(E, "vector.shuffle %s, %s [%s] : %s, %s", y.s, y.s, at_n, vt, vt);
      tn1 = em(E, "vector.shuffle %s, %s [%s] : %s, %s", y.s, y.s, at_n1, vt, vt);
    }
    /* the N-th largest against the next: apart by more than the f32
     * error bound, {x >= tn} is the exact top N; else (a tie included)
     * the exact path ranks the row. A group of fewer than N + 1
     * candidates has tn1 = -inf: nothing to confuse. */
    V close = em(E, "arith.andi %s, %s : vector<16xi1>", cmpf(k, "ogt", tn1, ninf, vt).s,
                 cmpf(k, "ole", em(E, "arith.subf %s, %s : %s", tn.s, tn1.s, vt), thrb, vt).s);
    near = or1(k, near, em(E, "vector.reduction <or>, %s : vector<16xi1> into i1", close.s));
    kept[v] = em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", cmpf(k, "oge", x, tn, vt).s, x.s, ninf.s, vt);
  }
  em_if(E, near);
  nm_exact_row(k, pt, pmt, r, b, h, g, i0, k0, val64, (V){""});
  em_else(E);
  for (int v = 0; v < TK / VL32; v++)
    em_do(E, "vector.store %s, %s[%s] : %s, %s", kept[v].s, pt.s, addc(k, mulc(k, r, TK), v * VL32).s, pmt, vt);
  em_end(E);
  em_end(E);
}

/* N:M (docs/semantics.md 4.7) on one row's TK scores pv in slot order
 * (nm_slots, M = 2 or 4), in registers: lane l of vectors [p M, p M + M)
 * is one group, so sorting each lane's M values (a network of
 * compare-exchanges across vectors) gives every group's N-th and (N+1)-th
 * best, t (into tsel[p / M]) and u. A group's selection is the exact one
 * (as nm_select_tile argues) unless t - u is within thr (the bound on two
 * scores' f32 error) or a score is NaN; a group whose t is -inf has fewer
 * than N candidates and keeps them all. good[p / M] says which groups'
 * selections are exact; returns whether all are. With `kept`, the
 * network carries each value's key offset in the tile (times vstride)
 * along: kept and kidx get the N best of every group, vector j of group
 * set p at p / M * N + j, which are the row's kept scores when all
 * groups are exact (-inf ones included). */
static V nm_rank_row(K *k, const V *pv, V thr, V *good, V *tsel, V *kept, V *kidx, int64_t vstride) {
  const char *vt = "vector<16xf32>", *bt = "vector<16xi1>", *it = "vector<16xi32>";
  int M = k->slots, N = (int)k->s->nm_n;
  V ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  V thrb = em(E, "vector.broadcast %s : f32 to %s", thr.s, vt);
  V all = em(E, "arith.constant dense<true> : %s", bt);
  for (int p = 0; p < TK / VL32; p += M) {
    V x[4], ix[4];
    for (int m = 0; m < M; m++) {
      x[m] = pv[p + m];
      if (!kept)
        continue;
      char lanes[400];
      int n = 0;
      for (int ln = 0; ln < VL32; ln++)
        n += snprintf(lanes + n, sizeof lanes - (size_t)n, "%s%lld", ln ? ", " : "",
                      (long long)slot_key_c(M, (p + m) * VL32 + ln) * (long long)vstride);
      ix[m] = em(E, "arith.constant dense<[%s]> : %s", lanes, it);
    }
    /* compare-exchanges (i, j): x[i] gets the larger, x[j] the smaller;
     * five sort four values */
    static const int ce4[5][2] = {{0, 1}, {2, 3}, {0, 2}, {1, 3}, {1, 2}};
    for (int e = 0; e < (M == 2 ? 1 : 5); e++) {
      int i = ce4[e][0], j = ce4[e][1];
      if (!kept) { /* a vmaxps and a vminps */
        V hi = vmaxf(k, x[i], x[j]), lo = vminf(k, x[i], x[j]);
        x[i] = hi, x[j] = lo;
        continue;
      }
      V ge = cmpf(k, "oge", x[i], x[j], vt);
      V hi = em(E, "arith.select %s, %s, %s : %s, %s", ge.s, x[i].s, x[j].s, bt, vt);
      V lo = em(E, "arith.select %s, %s, %s : %s, %s", ge.s, x[j].s, x[i].s, bt, vt);
      V ihi = em(E, "arith.select %s, %s, %s : %s, %s", ge.s, ix[i].s, ix[j].s, bt, it);
      V ilo = em(E, "arith.select %s, %s, %s : %s, %s", ge.s, ix[j].s, ix[i].s, bt, it);
      x[i] = hi, x[j] = lo, ix[i] = ihi, ix[j] = ilo;
    }
    V t = x[N - 1], u = x[N];
    V apart = cmpf(k, "ogt", em(E, "arith.subf %s, %s : %s", t.s, u.s, vt), thrb, vt);
    V few = cmpf(k, "oeq", t, ninf, vt);
    V ok = em(E, "arith.ori %s, %s : %s", apart.s, few.s, bt);
    for (int m = 0; m < M; m += 2) /* ord: neither operand NaN */
      ok = em(E, "arith.andi %s, %s : %s", ok.s, cmpf(k, "ord", pv[p + m], pv[p + m + 1], vt).s, bt);
    good[p / M] = ok;
    tsel[p / M] = t;
    for (int j = 0; kept && j < N; j++)
      kept[p / M * N + j] = x[j], kidx[p / M * N + j] = ix[j];
    all = em(E, "arith.andi %s, %s : %s", all.s, ok.s, bt);
  }
  return em(E, "vector.reduction <and>, %s : %s into i1", all.s, bt);
}

/* pv's lanes below their group's t (nm_rank_row's tsel) become -inf. */
static void nm_keep_apply(K *k, V *pv, const V *tsel) {
  const char *vt = "vector<16xf32>";
  V ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  for (int v = 0; v < TK / VL32; v++)
    pv[v] = em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", cmpf(k, "oge", pv[v], tsel[v / k->slots], vt).s, pv[v].s, ninf.s,
               vt);
}

/* tile task (b, h, query tile). */
/* The tile kernel's buffers, for the online softmax's row update. */
typedef struct {
  V pt, m, l, acc_o;       /* P tile, row maxima, row partial sums, O accumulators */
  const char *pmt, *rt, *lt, *ot;
  int64_t Dp, nvd;
  /* N:M packed (pc set; emit_tile says when): each row's live scores,
   * then their P, packed (pc), their V rows' offsets from key k0's (pk),
   * and their count (pn); P V reads these rather than the whole P tile */
  V pc, pk, pn;
  const char *pct, *pkt, *pnt;
  int64_t vstride; /* elements between consecutive keys' V rows */
  V vcap;          /* the tile's last V row's offset, 16 i32 lanes (online_kept) */
} Tile;

/* Entries per row of the packed P (Tile.pc): TK and 16 of padding
 * (pack_row), a multiple of 16. */
#define PCW (TK + VL32)
/* Packed P V's entries per step (at most 16, the padding). */
#define PV_STEP 4

/* Row r's P (p) of its live scores (pv's lanes other than -inf; NaN
 * included) packed into tl->pc in slot order, their V rows' offsets into
 * tl->pk, 16 lanes at a time by vpcompressd, and their count into tl->pn;
 * returns the count. The 16 entries after the last get P = 0 and offset
 * 0, so that P V can take entries PV_STEP at a time. A masked or
 * N:M-dropped pair has P = 0 and adds nothing to O, so P V reads only the
 * kept: N/M of the tile. */
static V pack_row(K *k, const Tile *tl, V r, const V *pv, const V *p) {
  const char *vt = "vector<16xf32>";
  V ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  V crow = mulc(k, r, PCW);
  V cnt = k->c0;
  for (int v = 0; v < TK / VL32; v++) {
    char lanes[400];
    int n = 0;
    for (int ln = 0; ln < VL32; ln++)
      n += snprintf(lanes + n, sizeof lanes - (size_t)n, "%s%lld", ln ? ", " : "",
                    (long long)slot_key_c(k->slots, v * VL32 + ln) * (long long)tl->vstride);
    V off = em(E, "arith.constant dense<[%s]> : vector<16xi32>", lanes);
    V m = cmpf(k, "une", pv[v], ninf, vt);
    V at = addx(k, crow, cnt);
    em_do(E, "vector.store %s, %s[%s] : %s, %s",
          em(E, "x86vector.avx512.mask.compress %s, %s, %s : %s, %s", m.s, p[v].s, zero.s, vt, vt).s, tl->pc.s, at.s,
          tl->pct, vt);
    em_do(E, "vector.store %s, %s[%s] : %s, vector<16xi32>",
          em(E, "x86vector.avx512.mask.compress %s, %s : vector<16xi32>", m.s, off.s).s, tl->pk.s, at.s, tl->pkt);
    cnt = addx(k, cnt, mask_count(k, m, VL32));
  }
  V end = addx(k, crow, cnt);
  em_do(E, "vector.store %s, %s[%s] : %s, %s", zero.s, tl->pc.s, end.s, tl->pct, vt);
  em_do(E, "vector.store %s, %s[%s] : %s, vector<16xi32>", em(E, "arith.constant dense<0> : vector<16xi32>").s, tl->pk.s,
        end.s, tl->pkt);
  store(k, em(E, "arith.index_cast %s : index to i32", cnt.s), tl->pn, r, tl->pnt);
  return cnt;
}

/* The online softmax's running maximum of row r, given the tile's lane
 * maxima mx (in exp2's units): when some lane exceeds it, the new maximum
 * is found and what the row gathered so far (its sums and O accumulators)
 * is rescaled by 2^(old - new); once the maximum settles (most tiles) a
 * compare of mx's lanes is all it costs. Returns the maximum. */
static V online_max(K *k, const Tile *tl, V r, V mx) {
  const char *vt = "vector<16xf32>";
  V lrow = mulc(k, r, VL32);
  V mo = load(k, tl->m, r, tl->rt);
  V mob = em(E, "vector.broadcast %s : f32 to %s", mo.s, vt);
  V grow = em(E, "vector.reduction <or>, %s : vector<16xi1> into i1", cmpf(k, "ogt", mx, mob, vt).s);
  em_if(E, grow);
  {
    V mn = hmaxf(k, mx);
    V mnb = em(E, "vector.broadcast %s : f32 to %s", mn.s, vt);
    V ab = vexp2(k, em(E, "arith.subf %s, %s : %s", mob.s, mnb.s, vt));
    V lo16 = em(E, "vector.load %s[%s] : %s, %s", tl->l.s, lrow.s, tl->lt, vt);
    em_do(E, "vector.store %s, %s[%s] : %s, %s", em(E, "arith.mulf %s, %s : %s", lo16.s, ab.s, vt).s, tl->l.s, lrow.s, tl->lt,
          vt);
    store(k, mn, tl->m, r, tl->rt);
    for (int64_t v = 0; v < tl->nvd; v++) {
      V at = addc(k, mulc(k, r, tl->Dp), v * VL32);
      V o = em(E, "vector.load %s[%s] : %s, %s", tl->acc_o.s, at.s, tl->ot, vt);
      em_do(E, "vector.store %s, %s[%s] : %s, %s", em(E, "arith.mulf %s, %s : %s", o.s, ab.s, vt).s, tl->acc_o.s, at.s,
            tl->ot, vt);
    }
  }
  em_end(E);
  return load(k, tl->m, r, tl->rt);
}

/* Row r's 16 partial sums of exponentials (tl->l) += sum. */
static void add_row_sum(K *k, const Tile *tl, V r, V sum) {
  const char *vt = "vector<16xf32>";
  V lrow = mulc(k, r, VL32);
  V l16 = em(E, "vector.load %s[%s] : %s, %s", tl->l.s, lrow.s, tl->lt, vt);
  em_do(E, "vector.store %s, %s[%s] : %s, %s", em(E, "arith.addf %s, %s : %s", l16.s, sum.s, vt).s, tl->l.s, lrow.s, tl->lt, vt);
}

/* N:M's packed online softmax of row r for one key tile when every group's
 * selection is exact: its kept scores come straight from nm_rank_row
 * (nk vectors, in base 2 after times coef, their V rows' offsets in kidx),
 * N of every M with no compress; -inf ones (masked keys, a group with
 * fewer than N) get P = 0. P and the offsets go to tl->pc and tl->pk,
 * nk * 16 entries (P V's usual count, straight-line code there). */
static void online_kept(K *k, const Tile *tl, V r, const V *kept, const V *kidx, int nk, V coef) {
  const char *vt = "vector<16xf32>";
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  V cb = em(E, "vector.broadcast %s : f32 to %s", coef.s, vt);
  V mx = kept[0];
  for (int j = 1; j < nk; j++)
    mx = vmaxf(k, mx, kept[j]);
  V m = online_max(k, tl, r, em(E, "arith.mulf %s, %s : %s", mx.s, cb.s, vt));
  /* a row with no number yet (m = -inf) has P = 0 */
  V live = cmpf(k, "ogt", m, em_float(E, -INFINITY, "f32"), "f32");
  V mb = em(E, "vector.broadcast %s : f32 to %s", m.s, vt);
  V crow = mulc(k, r, PCW);
  V sum = zero;
  for (int j = 0; j < nk; j++) {
    V e = vexp2(k, em(E, "arith.subf %s, %s : %s", em(E, "arith.mulf %s, %s : %s", kept[j].s, cb.s, vt).s, mb.s, vt));
    e = sel(k, live, e, zero, vt);
    sum = em(E, "arith.addf %s, %s : %s", sum.s, e.s, vt);
    V at = addc(k, crow, j * VL32);
    em_do(E, "vector.store %s, %s[%s] : %s, %s", e.s, tl->pc.s, at.s, tl->pct, vt);
    /* a key past the sequence's end (its P is 0) reads the tile's last
     * row instead, which is there */
    V off = em(E, "arith.minsi %s, %s : vector<16xi32>", kidx[j].s, tl->vcap.s);
    em_do(E, "vector.store %s, %s[%s] : %s, vector<16xi32>", off.s, tl->pk.s, at.s, tl->pkt);
  }
  add_row_sum(k, tl, r, sum);
  store(k, em_int(E, nk * VL32, "i32"), tl->pn, r, tl->pnt);
}

/* The online softmax of row r for one key tile, its TK scores in pv (masked
 * to -inf), which times `coef` (scale * log2 e, or log2 e for scores
 * already scaled) are in base 2: the row maximum m is kept in those units
 * (online_max), so P = 2^(s * coef - m) is a multiply, a subtract and
 * vexp2. A row with no live score yet gets P = 0. */
static void online_row(K *k, const Tile *tl, V r, V *pv, V coef) {
  const char *vt = "vector<16xf32>";
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  V ninf = em(E, "arith.constant dense<0xFF800000> : %s", vt);
  V prow = mulc(k, r, TK);
  V cb = em(E, "vector.broadcast %s : f32 to %s", coef.s, vt);
  V mx = ninf;
  for (int v = 0; v < TK / VL32; v++)
    mx = vmaxf(k, mx, pv[v]);
  /* NaN scores are left out of the maximum, so that exp turns them into
   * NaN probabilities, as the reference's softmax does, rather than a NaN
   * maximum taking the whole row for dead */
  V m = online_max(k, tl, r, em(E, "arith.mulf %s, %s : %s", mx.s, cb.s, vt));
  V live = cmpf(k, "ogt", m, em_float(E, -INFINITY, "f32"), "f32");
  V mb = em(E, "vector.broadcast %s : f32 to %s", m.s, vt);
  if (tl->pc.s[0]) {
    /* packed (pack_row): P in registers, then packed, P of the live
     * scores only (exponentiating the packed P in place would load what
     * the packing just stored, at other offsets: a store-forwarding
     * stall per vector) */
    V e[TK / VL32], sum = zero;
    for (int v = 0; v < TK / VL32; v++) {
      V x = vexp2(k, em(E, "arith.subf %s, %s : %s", em(E, "arith.mulf %s, %s : %s", pv[v].s, cb.s, vt).s, mb.s, vt));
      sum = em(E, "arith.addf %s, %s : %s", sum.s, x.s, vt);
      /* no number yet: P is 0, but NaN for a NaN score */
      V nanp = em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", cmpf(k, "uno", pv[v], pv[v], vt).s, pv[v].s, zero.s, vt);
      e[v] = sel(k, live, x, nanp, vt);
    }
    pack_row(k, tl, r, pv, e);
    add_row_sum(k, tl, r, sel(k, live, sum, zero, vt));
    return;
  }
  em_if(E, live);
  V sum = zero;
  for (int v = 0; v < TK / VL32; v++) {
    /* a multiply and a subtract rather than one FMA: the largest score's
     * product is then the maximum itself, its P exactly 1 */
    V e = vexp2(k, em(E, "arith.subf %s, %s : %s", em(E, "arith.mulf %s, %s : %s", pv[v].s, cb.s, vt).s, mb.s, vt));
    sum = em(E, "arith.addf %s, %s : %s", sum.s, e.s, vt);
    em_do(E, "vector.store %s, %s[%s] : %s, %s", e.s, tl->pt.s, addc(k, prow, v * VL32).s, tl->pmt, vt);
  }
  add_row_sum(k, tl, r, sum);
  em_else(E);
  /* no number yet: P is 0, but NaN for a NaN score, whose row the
   * reference's softmax makes NaN whatever else it holds */
  for (int v = 0; v < TK / VL32; v++) {
    V nanp = em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", cmpf(k, "uno", pv[v], pv[v], vt).s, pv[v].s, zero.s, vt);
    em_do(E, "vector.store %s, %s[%s] : %s, %s", nanp.s, tl->pt.s, addc(k, prow, v * VL32).s, tl->pmt, vt);
  }
  em_end(E);
}

/* Keys outside row i's allowed range get -inf in the tile's scores pv (TK
 * lanes from key k0; kl of them inside the sequence), for masks whose
 * range is exact (or none). Nothing to do on a full tile. */
static void mask_row_range(K *k, V *pv, V i, V k064, V kl, V full) {
  V out[TK / VL32];
  for (int v = 0; v < TK / VL32; v++)
    out[v] = em_var(E, "vector<16xf32>");
  em_if(E, em(E, "arith.xori %s, %s : i1", full.s, em_int(E, 1, "i1").s));
  V lo = c64(k, 0), hi = to_i64(k, kl);
  V ml, mh;
  if (k->p->mask && mask_bounds(E, k->p->mask, to_i64(k, i), &ml, &mh)) {
    lo = bin(k, "arith.maxsi", bin(k, "arith.subi", ml, k064, "i64"), lo, "i64");
    hi = bin(k, "arith.minsi", bin(k, "arith.subi", mh, k064, "i64"), hi, "i64");
  }
  /* within [0, TK] now, so i32 lanes hold them */
  lo = bin(k, "arith.minsi", lo, c64(k, TK), "i64");
  hi = bin(k, "arith.maxsi", hi, c64(k, 0), "i64");
  V lo32 = em(E, "vector.broadcast %s : i32 to vector<16xi32>", em(E, "arith.trunci %s : i64 to i32", lo.s).s);
  V hi32 = em(E, "vector.broadcast %s : i32 to vector<16xi32>", em(E, "arith.trunci %s : i64 to i32", hi.s).s);
  V ninf = em(E, "arith.constant dense<0xFF800000> : vector<16xf32>");
  for (int v = 0; v < TK / VL32; v++) {
    char lanes[160];
    int n = 0;
    for (int ln = 0; ln < VL32; ln++)
      n += snprintf(lanes + n, sizeof lanes - (size_t)n, "%s%d", ln ? ", " : "", slot_key_c(k->slots, v * VL32 + ln));
    V pos = em(E, "arith.constant dense<[%s]> : vector<16xi32>", lanes);
    V in = em(E, "arith.andi %s, %s : vector<16xi1>", em(E, "arith.cmpi sge, %s, %s : vector<16xi32>", pos.s, lo32.s).s,
              em(E, "arith.cmpi slt, %s, %s : vector<16xi32>", pos.s, hi32.s).s);
    em_set(E, out[v], em(E, "arith.select %s, %s, %s : vector<16xi1>, vector<16xf32>", in.s, pv[v].s, ninf.s), "vector<16xf32>");
  }
  em_else(E);
  for (int v = 0; v < TK / VL32; v++)
    em_set(E, out[v], pv[v], "vector<16xf32>");
  em_end(E);
  for (int v = 0; v < TK / VL32; v++)
    pv[v] = em_get(E, out[v], "vector<16xf32>");
}

/* Whether the tile's row block [rb, rb + n) (of nr rows from i0) has a
 * row inside the sequence and a pair the mask allows in keys [k0, k1);
 * *full: whether the mask allows all its pairs there. */
static V block_facts(K *k, V i0, V nr, V rb, int64_t n, V k0, V k1, V *full) {
  V in = cmpi(k, "ult", rb, nr, "index");
  *full = em_int(E, 1, "i1");
  if (!k->p->mask)
    return in;
  V b0 = addx(k, i0, rb), b1 = addx(k, i0, bin(k, "arith.minui", addc(k, rb, n), nr, "index"));
  V need;
  mask_tile_facts(E, k->p->mask, to_i64(k, b0), to_i64(k, b1), k0, k1, &need, full);
  return and1(k, in, need);
}

/* O += p V for packed entry `at` of tl->pc and tl->pk into the
 * accumulators acc (nvd vectors). */
static void packed_entry(K *k, const Tile *tl, V at, V vsrc, V vbase, const char *vty, bool safe, V *acc) {
  const char *vt = "vector<16xf32>";
  V p = load(k, tl->pc, at, tl->pct);
  V pb = em(E, "vector.broadcast %s : f32 to %s", p.s, vt);
  /* une: a NaN p still adds (NaN) */
  V nonzero = safe ? cmpf(k, "une", p, em_float(E, 0.0, "f32"), "f32") : (V){""};
  V off = addx(k, vbase, em(E, "arith.index_cast %s : i32 to index", load(k, tl->pk, at, tl->pkt).s));
  for (int64_t v = 0; v < tl->nvd; v++) {
    V x = em(E, "vector.load %s[%s] : %s, %s", vsrc.s, addc(k, off, v * VL32).s, vty, vt);
    V old = em_get(E, acc[v], vt);
    V nw = em(E, "vector.fma %s, %s, %s : %s", pb.s, x.s, old.s, vt);
    if (safe)
      nw = em(E, "arith.select %s, %s, %s : %s", nonzero.s, nw.s, old.s, vt);
    em_set(E, acc[v], nw, vt);
  }
}

/* O += P V from each row's packed P (pack_row); with `safe` (a tile whose
 * V rows are not all finite) an entry with P = 0, such as the padding,
 * adds nothing. Per row, its entries go into up to 4 sets of accumulators, at
 * least 16 vectors of head_dim in all, so that enough FMA chains are in
 * flight to cover the FMA's latency; each entry's V row is read in vsrc
 * (vf, or V itself) at its offset from vbase, key k0's row. A row with N/M of
 * the tile's keys (N:M's usual count) runs straight-line code, others a
 * loop of PV_STEP entries a step. */
static void packed_pv(K *k, const Tile *tl, V nr, V vsrc, V vbase, const char *vty, bool safe) {
  const char *vt = "vector<16xf32>";
  int64_t nvd = tl->nvd;
  int sets = nvd <= 4 ? 4 : nvd <= 8 ? 2 : 1;
  int64_t usual = TK / k->s->nm_m * k->s->nm_n;
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  V acc[4][16];
  for (int u = 0; u < sets; u++)
    for (int v = 0; v < nvd; v++)
      acc[u][v] = em_var(E, vt);
  V r = em_for(E, k->c0, nr, k->c1);
  V cnt = em(E, "arith.index_cast %s : i32 to index", load(k, tl->pn, r, tl->pnt).s);
  em_if(E, cmpi(k, "ne", cnt, k->c0, "index"));
  V orow = mulc(k, r, tl->Dp), crow = mulc(k, r, PCW);
  for (int v = 0; v < nvd; v++) {
    em_set(E, acc[0][v], em(E, "vector.load %s[%s] : %s, %s", tl->acc_o.s, addc(k, orow, v * VL32).s, tl->ot, vt), vt);
    for (int u = 1; u < sets; u++)
      em_set(E, acc[u][v], zero, vt);
  }
  em_if(E, cmpi(k, "eq", cnt, em_index(E, usual), "index"));
  for (int64_t e = 0; e < usual; e++)
    packed_entry(k, tl, addc(k, crow, e), vsrc, vbase, vty, safe, acc[e % sets]);
  em_else(E);
  V j = em_for(E, k->c0, bin(k, "arith.andi", addc(k, cnt, PV_STEP - 1), em_index(E, -PV_STEP), "index"), em_index(E, PV_STEP));
  for (int e = 0; e < PV_STEP; e++)
    packed_entry(k, tl, addx(k, crow, addc(k, j, e)), vsrc, vbase, vty, safe, acc[e % sets]);
  em_end(E);
  em_end(E);
  for (int v = 0; v < nvd; v++) {
    V o = em_get(E, acc[0][v], vt);
    for (int u = 1; u < sets; u++)
      o = em(E, "arith.addf %s, %s : %s", o.s, em_get(E, acc[u][v], vt).s, vt);
    em_do(E, "vector.store %s, %s[%s] : %s, %s", o.s, tl->acc_o.s, addc(k, orow, v * VL32).s, tl->ot, vt);
  }
  em_end(E);
  em_end(E);
}

static void emit_tile(K *k) {
  const SaSpec *s = k->s;
  int64_t D = k->D, nvd = (D + VL32 - 1) / VL32, Dp = nvd * VL32;
  /* Row blocks keep 24 of the 32 vector registers as accumulators: Q K^T
   * takes 6 rows x 4 key vectors; P V as many rows as fit head_dim's
   * vectors, a divisor of TQ. */
  int rq = 6, rv = 1;
  for (int c = 6; c >= 1; c--)
    if (TQ % c == 0 && c * nvd <= 24) {
      rv = c;
      break;
    }
  const char *vt = "vector<16xf32>";
  V task = task_begin(k, "tile");
  V acc_o = em_alloca(E, TQ * Dp, "f32"), m = em_alloca(E, TQ, "f32");
  /* each row's sum of exponentials, as 16 partial sums: reduced once, when
   * the row is normalized, not once per key tile */
  V l = em_alloca(E, TQ * VL32, "f32");
  V pt = em_alloca(E, TQ * TK, "f32");
  char ot[32], pmt[32], rt[32], lt[32];
  snprintf(ot, sizeof ot, "memref<%lldxf32>", (long long)(TQ * Dp));
  snprintf(pmt, sizeof pmt, "memref<%dxf32>", TQ * TK);
  snprintf(rt, sizeof rt, "memref<%dxf32>", TQ);
  snprintf(lt, sizeof lt, "memref<%dxf32>", TQ * VL32);
  V qacc[6][TK / VL32], oacc[6][16];
  for (int r = 0; r < rq; r++)
    for (int v = 0; v < TK / VL32; v++)
      qacc[r][v] = em_var(E, vt);
  for (int r = 0; r < rv; r++)
    for (int v = 0; v < nvd; v++)
      oacc[r][v] = em_var(E, vt);

  V nqt = bin(k, "arith.divui", addc(k, k->S, TQ - 1), em_index(E, TQ), "index");
  V bh = bin(k, "arith.divui", task, nqt, "index"), qt = bin(k, "arith.remui", task, nqt, "index");
  V b = bin(k, "arith.divui", bh, em_index(E, k->H), "index"), h = bin(k, "arith.remui", bh, em_index(E, k->H), "index");
  V g = bin(k, "arith.divui", h, em_index(E, k->H / k->KVH), "index");
  V i0 = mulc(k, qt, TQ);
  V nr = bin(k, "arith.minui", em_index(E, TQ), bin(k, "arith.subi", k->S, i0, "index"), "index");
  V sp = to_index(k, k->kt_len);
  V ktbase = mulx(k, mulc(k, addx(k, mulc(k, b, k->KVH), g), D), sp);
  V zero = em(E, "arith.constant dense<0.0> : %s", vt);
  V cTK = em_index(E, TK);

  /* N:M: the norms of the tile's query rows, for the bound on f32 error;
   * in slot order (k->slots), a flag per row whose ranking waits for
   * nm_exact_row */
  bool nm = s->nm_m > 0, slots = k->slots > 0;
  V qn = {""}, val64 = {""}, later = {""};
  char qnt[32], lat[32];
  snprintf(qnt, sizeof qnt, "memref<%dxf32>", TQ);
  snprintf(lat, sizeof lat, "memref<%dxi32>", TQ);
  if (slots)
    later = em_alloca(E, TQ, "i32");
  /* N:M's packed P, on targets with vpcompressd, when at most half the
   * keys are kept: each row's kept P and their V rows' offsets, which P V
   * reads rather than the whole P tile. A packed entry reads its whole V
   * row for one query row, where the P V of the full tile reads each V row
   * once for six: an entry costs about 1.5 times a key of the full tile
   * (the loads, not the FMAs, bound it), so packing pays when the packing
   * is cheap. In slot order the ranking network hands over the kept
   * scores with their keys (online_kept); otherwise pack_row packs by
   * vpcompressd. Measured at 4096 (bench/README.md; dense 187 ms): 2:4
   * from 200 to 179 ms, 1:4 180 to 142, 1:8 205 to 182, 2:8 229 to 209,
   * 4:8 252 to 245, 8:16 285 to 276. */
  bool packed = nm && k->vnni && s->nm_n * 2 <= s->nm_m;
  V pc = {""}, pk = {""}, pn = {""};
  char pct[32], pkt[32];
  snprintf(pct, sizeof pct, "memref<%dxf32>", TQ * PCW);
  snprintf(pkt, sizeof pkt, "memref<%dxi32>", TQ * PCW);
  if (packed) {
    pc = em_alloca(E, TQ * PCW, "f32");
    pk = em_alloca(E, TQ * PCW, "i32");
    pn = em_alloca(E, TQ, "i32");
  }
  if (nm) {
    qn = em_alloca(E, TQ, "f32");
    val64 = em_alloca(E, TK, "f64");
    V rq0 = em_for(E, k->c0, em_index(E, TQ), k->c1);
    V row = bin(k, "arith.minui", addx(k, i0, rq0), bin(k, "arith.subi", k->S, k->c1, "index"), "index");
    V qo = row_offset(k, k->H, b, h, row);
    store(k, em(E, "math.sqrt %s : f32", dot(k, k->q, qo, k->q, qo, D, "f32").s), qn, rq0, rt);
    em_end(E);
  }

  /* init accumulators */
  V r = em_for(E, k->c0, em_index(E, TQ), k->c1);
  store(k, em_float(E, -INFINITY, "f32"), m, r, rt);
  if (slots)
    store(k, em_int(E, 0, "i32"), later, r, lat);
  em_do(E, "vector.store %s, %s[%s] : %s, %s", zero.s, l.s, mulc(k, r, VL32).s, lt, vt);
  for (int v = 0; v < nvd; v++)
    em_do(E, "vector.store %s, %s[%s] : %s, %s", zero.s, acc_o.s, addc(k, mulc(k, r, Dp), v * VL32).s, ot, vt);
  em_end(E);

  /* Narrower storage (fp16, bf16, fp8) is widened once per tile: Q's rows
   * into qf (zero past the sequence), each key tile's V rows into vf, so
   * that the Q K^T and P V loops load f32 as they do for f32 storage
   * rather than converting every element each time a row block uses it
   * (Q's once per key tile, V's once per row block). N:M's packed P V
   * copies f32 V rows there too, 64-byte aligned: it reads each row whole
   * for one entry, so a row that straddles cache lines (V from malloc) or
   * shares its L1 sets with the others (rows a head stride apart) costs
   * every entry; measured, the copy is the cheaper. */
  bool wq = k->q.k != BK_F32, wv = k->v.k != BK_F32 || packed;
  V qf = {""}, vf = {""};
  char qft[48], vft[48];
  snprintf(qft, sizeof qft, "memref<%lldxf32>", (long long)(TQ * Dp));
  snprintf(vft, sizeof vft, "memref<%lldxf32>", (long long)(TK * Dp));
  if (wq) {
    qf = em_alloca(E, TQ * Dp, "f32");
    V rq1 = em_for(E, k->c0, em_index(E, TQ), k->c1);
    V live = cmpi(k, "ult", rq1, nr, "index");
    V qo = row_offset(k, k->H, b, h, bin(k, "arith.minui", addx(k, i0, rq1), bin(k, "arith.subi", k->S, k->c1, "index"), "index"));
    for (int v = 0; v < nvd; v++) {
      int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
      V x = vload(k, k->q, addc(k, qo, v * VL32), VL32, tail, "f32");
      x = em(E, "arith.select %s, %s, %s : %s", live.s, x.s, zero.s, vt);
      em_do(E, "vector.store %s, %s[%s] : %s, %s", x.s, qf.s, addc(k, mulc(k, rq1, Dp), v * VL32).s, qft, vt);
    }
    em_end(E);
  }
  if (wv)
    vf = em_alloca(E, TK * Dp, "f32");
  /* N:M's packed P V may read V in place (below) */
  V vdirect = {""};
  if (packed && k->v.k == BK_F32 && D % VL32 == 0 && (s->layout == LAYOUT_BHSD || k->KVH == 1)) {
    V vp = em(E, "memref.extract_aligned_pointer_as_index %s : memref<?xf32> -> index", k->v.m.s);
    vdirect = cmpi(k, "eq", bin(k, "arith.andi", vp, em_index(E, 63), "index"), k->c0, "index");
  }

  /* key range: the row bounds at the tile's first and last rows */
  V i064 = to_i64(k, i0), il64 = to_i64(k, addx(k, i0, bin(k, "arith.subi", nr, k->c1, "index")));
  V lo = c64(k, 0), hi = k->S64;
  if (k->p->mask) {
    V l1, h1, l2, h2;
    if (mask_bounds(E, k->p->mask, i064, &l1, &h1) && mask_bounds(E, k->p->mask, il64, &l2, &h2)) {
      lo = bin(k, "arith.maxsi", bin(k, "arith.minsi", l1, l2, "i64"), lo, "i64");
      hi = bin(k, "arith.minsi", bin(k, "arith.maxsi", h1, h2, "i64"), hi, "i64");
      hi = bin(k, "arith.maxsi", hi, lo, "i64");
    }
  }
  V t0 = bin(k, "arith.divui", to_index(k, lo), cTK, "index");
  V t1 = bin(k, "arith.divui", addc(k, to_index(k, hi), TK - 1), cTK, "index");
  V t = em_for(E, t0, t1, k->c1);
  V k0 = mulc(k, t, TK);
  V kl = bin(k, "arith.minui", cTK, bin(k, "arith.subi", k->S, k0, "index"), "index");
  V k064 = to_i64(k, k0), k164 = to_i64(k, addx(k, k0, kl)), i164 = to_i64(k, addx(k, i0, nr));
  V need = em_int(E, 1, "i1"), full = em_int(E, 1, "i1");
  if (k->p->mask)
    mask_tile_facts(E, k->p->mask, i064, i164, k064, k164, &need, &full);
  full = and1(k, full, cmpi(k, "eq", kl, cTK, "index"));
  em_if(E, need);
  if (packed) { /* rows that get no online softmax on this tile have no P */
    V z = em(E, "arith.constant dense<0> : vector<16xi32>");
    for (int v = 0; v < TQ / VL32; v++)
      em_do(E, "vector.store %s, %s[%s] : %s, vector<16xi32>", z.s, pn.s, em_index(E, v * VL32).s, lat);
  }
  /* A tile runs each row's online softmax right after its Q K^T block, on
   * the scores still in registers (no round trip through the P tile, and
   * exp's work interleaves with the FMAs of the next block) when no pair
   * is masked, or when the mask allows one range of keys per row (causal,
   * windows, their intersections; mask_bounds_exact), which a compare
   * against the lanes' key positions applies there. N:M ranks the whole
   * tile first and takes the P tile. */
  /* the largest key norm of the tile (emit_pack) */
  V kmax = nm ? load(k, k->kt, addc(k, vflag_at(k, b, g, t), 1), "memref<?xf32>") : (V){""};
  bool ranged = !k->p->mask || mask_bounds_exact(k->p->mask);
  bool inreg = ranged && (!nm || slots); /* masks (and N:M) applied in registers */
  V fused = nm && !slots ? em_int(E, 0, "i1") : ranged ? em_int(E, 1, "i1") : full;
  /* the fused rows' scores into exp2's units: a positive scale is applied
   * there, not to the raw scores */
  double fused_coef = (s->scale > 0 ? s->scale : 1.0) * LOG2_E;
  Tile tl = {pt, m, l, acc_o, pmt, rt, lt, ot, Dp, nvd, .pc = {""}, .pk = {""}, .pn = {""}, .vcap = {""}};
  if (packed) {
    tl.pc = pc, tl.pk = pk, tl.pn = pn;
    tl.pct = pct, tl.pkt = pkt, tl.pnt = lat;
    tl.vstride = Dp; /* vf's, and V's when read in place (vdirect) */
    V last = em(E, "arith.index_cast %s : index to i32", mulc(k, bin(k, "arith.subi", kl, k->c1, "index"), Dp).s);
    tl.vcap = em(E, "vector.broadcast %s : i32 to vector<16xi32>", last.s);
  }

  /* S = scale * Q K^T, rq rows at a time. A row block the mask gives no
   * key of this tile (the edges of causal and window bands, where the
   * query tile is wider than the band's slope) or past the sequence end is
   * skipped, its P rows zero. */
  V rb = em_for(E, k->c0, em_index(E, TQ), em_index(E, rq));
  V bfull;
  V bneed = block_facts(k, i0, nr, rb, rq, k064, k164, &bfull);
  bfull = and1(k, bfull, cmpi(k, "eq", kl, cTK, "index"));
  em_if(E, bneed);
  for (int rr = 0; rr < rq; rr++)
    for (int v = 0; v < TK / VL32; v++)
      em_set(E, qacc[rr][v], zero, vt);
  /* The V tile the P V below reads comes to L1 meanwhile: each row block
   * prefetches its share of the tile's rows. */
  int64_t vrows = TK / (TQ / rq), per_line = 64 / elem_bytes(k->v.k);
  for (int64_t j = 0; j < vrows; j++) {
    V kr = addx(k, k0, addc(k, mulc(k, bin(k, "arith.divui", rb, em_index(E, rq), "index"), vrows), j));
    kr = bin(k, "arith.minui", kr, bin(k, "arith.subi", k->S, k->c1, "index"), "index");
    V vo = row_offset(k, k->KVH, b, g, kr);
    for (int64_t ln = 0; ln * per_line < D; ln++)
      em_do(E, "memref.prefetch %s[%s], read, locality<3>, data : %s", k->v.m.s, addc(k, vo, ln * per_line).s, memty(k->v.k));
  }
  V qoff[6];
  for (int rr = 0; rr < rq; rr++) {
    V row = bin(k, "arith.minui", addx(k, i0, addc(k, rb, rr)), bin(k, "arith.subi", k->S, k->c1, "index"), "index");
    qoff[rr] = row_offset(k, k->H, b, h, row);
  }
  V d = em_for(E, k->c0, em_index(E, D), k->c1);
  V kv[TK / VL32];
  V kd = addx(k, ktbase, addx(k, mulc(k, k0, D), mulc(k, d, TK)));
  for (int v = 0; v < TK / VL32; v++)
    kv[v] = em(E, "vector.load %s[%s] : memref<?xf32>, %s", k->kt.s, addc(k, kd, v * VL32).s, vt);
  for (int rr = 0; rr < rq; rr++) {
    V qx = wq ? load(k, qf, addx(k, mulc(k, addc(k, rb, rr), Dp), d), qft) : sload(k, k->q, addx(k, qoff[rr], d), "f32");
    V qb = em(E, "vector.broadcast %s : f32 to %s", qx.s, vt);
    for (int v = 0; v < TK / VL32; v++)
      em_set(E, qacc[rr][v], em(E, "vector.fma %s, %s, %s : %s", qb.s, kv[v].s, em_get(E, qacc[rr][v], vt).s, vt), vt);
  }
  em_end(E);
  V scale = em(E, "vector.broadcast %s : f32 to %s", em_float(E, s->scale, "f32").s, vt);
  em_if(E, fused);
  for (int rr = 0; rr < rq; rr++) {
    /* a positive scale folds into the softmax's FMA (the maximum of the
     * raw scores is the maximum of the scaled ones) */
    V pv[TK / VL32];
    for (int v = 0; v < TK / VL32; v++) {
      pv[v] = em_get(E, qacc[rr][v], vt);
      if (!(s->scale > 0))
        pv[v] = em(E, "arith.mulf %s, %s : %s", pv[v].s, scale.s, vt);
    }
    if (inreg)
      mask_row_range(k, pv, addx(k, i0, addc(k, rb, rr)), k064, kl, bfull);
    V coef = em_float(E, fused_coef, "f32");
    if (!slots) {
      online_row(k, &tl, addc(k, rb, rr), pv, coef);
      continue;
    }
    /* the bound on f32 error, in pv's units (scaled unless scale > 0) */
    double slack = (s->scale > 0 ? 1.0 : fabs(s->scale)) * (double)(D + 4) * 0x1p-22;
    V thr = bin(k, "arith.mulf", bin(k, "arith.mulf", load(k, qn, addc(k, rb, rr), qnt), kmax, "f32"),
                em_float(E, slack, "f32"), "f32");
    V good[2], tsel[2], kept[TK / VL32], kidx[TK / VL32], kp[TK / VL32];
    em_if(E, nm_rank_row(k, pv, thr, good, tsel, packed ? kept : NULL, kidx, tl.vstride));
    if (packed) {
      online_kept(k, &tl, addc(k, rb, rr), kept, kidx, TK / VL32 / k->slots * (int)s->nm_n, coef);
    } else {
      memcpy(kp, pv, sizeof kp);
      nm_keep_apply(k, kp, tsel);
      online_row(k, &tl, addc(k, rb, rr), kp, coef);
    }
    em_else(E);
    /* the row waits: its exact groups' selections and the others' raw
     * scores in pt, and which groups those are (bit p * 16 + l) */
    memcpy(kp, pv, sizeof kp);
    nm_keep_apply(k, kp, tsel);
    V near = em_int(E, 0, "i32");
    for (int v = 0; v < TK / VL32; v++) {
      V gd = good[v / k->slots];
      em_do(E, "vector.store %s, %s[%s] : %s, %s", em(E, "arith.select %s, %s, %s : vector<16xi1>, %s", gd.s, kp[v].s, pv[v].s, vt).s,
            pt.s, addc(k, mulc(k, addc(k, rb, rr), TK), v * VL32).s, pmt, vt);
      if (v % k->slots)
        continue;
      V off = em(E, "arith.xori %s, %s : vector<16xi1>", gd.s, em(E, "arith.constant dense<true> : vector<16xi1>").s);
      V bits = em(E, "arith.extui %s : i16 to i32", mask_bits(k, off, VL32).s);
      near = bin(k, "arith.ori", near, bin(k, "arith.shli", bits, em_int(E, VL32 * (v / k->slots), "i32"), "i32"), "i32");
    }
    store(k, near, later, addc(k, rb, rr), lat);
    em_end(E);
  }
  em_else(E);
  for (int rr = 0; rr < rq; rr++)
    for (int v = 0; v < TK / VL32; v++)
      em_do(E, "vector.store %s, %s[%s] : %s, %s", em(E, "arith.mulf %s, %s : %s", em_get(E, qacc[rr][v], vt).s, scale.s, vt).s,
            pt.s, addc(k, mulc(k, addc(k, rb, rr), TK), v * VL32).s, pmt, vt);
  em_end(E);
  em_else(E);
  for (int rr = 0; rr < rq; rr++)
    for (int v = 0; v < TK / VL32; v++)
      em_do(E, "vector.store %s, %s[%s] : %s, %s", zero.s, pt.s, addc(k, mulc(k, addc(k, rb, rr), TK), v * VL32).s, pmt, vt);
  em_end(E);
  em_end(E);

  /* rows whose N:M ranking was within rounding of a tie: ranked exactly,
   * then their online softmax */
  if (slots) {
    r = em_for(E, k->c0, nr, k->c1);
    V near = load(k, later, r, lat);
    em_if(E, cmpi(k, "ne", near, em_int(E, 0, "i32"), "i32"));
    store(k, em_int(E, 0, "i32"), later, r, lat);
    nm_exact_row(k, pt, pmt, r, b, h, g, i0, k0, val64, near);
    V pv[TK / VL32];
    for (int v = 0; v < TK / VL32; v++)
      pv[v] = em(E, "vector.load %s[%s] : %s, %s", pt.s, addc(k, mulc(k, r, TK), v * VL32).s, pmt, vt);
    online_row(k, &tl, r, pv, em_float(E, fused_coef, "f32"));
    em_end(E);
    em_end(E);
  }

  /* pairs the mask or the sequence end exclude get -inf (the fused rows
   * were masked in registers) */
  V c;
  if (!inreg) {
    em_if(E, em(E, "arith.xori %s, %s : i1", full.s, em_int(E, 1, "i1").s));
    r = em_for(E, k->c0, nr, k->c1);
    V ir = to_i64(k, addx(k, i0, r));
    c = em_for(E, k->c0, cTK, k->c1);
    V ok = cmpi(k, "ult", c, kl, "index");
    if (k->p->mask)
      ok = and1(k, ok, mask_pred(E, k->p->mask, k->S64, ir, to_i64(k, addx(k, k0, c))));
    em_if(E, em(E, "arith.xori %s, %s : i1", ok.s, em_int(E, 1, "i1").s));
    store(k, em_float(E, -INFINITY, "f32"), pt, addx(k, mulc(k, r, TK), c), pmt);
    em_end(E);
    em_end(E);
    em_end(E);
    em_end(E);
  }

  if (nm && !slots)
    nm_select_tile(k, pt, pmt, nr, b, h, g, i0, k0, qn, kmax, val64);

  /* online softmax, row by row (full tiles did it in the Q K^T blocks) */
  em_if(E, em(E, "arith.xori %s, %s : i1", fused.s, em_int(E, 1, "i1").s));
  r = em_for(E, k->c0, nr, k->c1);
  {
    V pv[TK / VL32];
    for (int v = 0; v < TK / VL32; v++)
      pv[v] = em(E, "vector.load %s[%s] : %s, %s", pt.s, addc(k, mulc(k, r, TK), v * VL32).s, pmt, vt);
    online_row(k, &tl, r, pv, em_float(E, LOG2_E, "f32"));
  }
  em_end(E);
  em_end(E);

  /* V's tile into vf, after Q K^T, whose row blocks prefetched it. N:M's
   * packed P V reads f32 V in place when its rows are consecutive and
   * 64-byte aligned (vdirect), except on tiles whose V rows are not all
   * finite, whose P V reads vf. */
  V bad = cmpf(k, "ogt", load(k, k->kt, vflag_at(k, b, g, t), "memref<?xf32>"), em_float(E, 0.0, "f32"), "f32");
  if (vdirect.s[0])
    em_if(E, em(E, "arith.ori %s, %s : i1", bad.s, em(E, "arith.xori %s, %s : i1", vdirect.s, em_int(E, 1, "i1").s).s));
  if (wv) {
    V cv = em_for(E, k->c0, kl, k->c1);
    V vo = row_offset(k, k->KVH, b, g, addx(k, k0, cv));
    for (int v = 0; v < nvd; v++) {
      int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
      em_do(E, "vector.store %s, %s[%s] : %s, %s", vload(k, k->v, addc(k, vo, v * VL32), VL32, tail, "f32").s, vf.s,
            addc(k, mulc(k, cv, Dp), v * VL32).s, vft, vt);
    }
    em_end(E);
  }
  if (vdirect.s[0])
    em_end(E);
  /* O += P V. A key the mask excluded has p = 0 and must add nothing even
   * if its value row holds an Inf or NaN (0 * Inf is NaN): tiles whose V rows
   * are not all finite (the pack task's flag) take the same loop with a
   * select, the others (every tile of sane data) the plain FMA. */
  for (int safe = 0; safe < 2; safe++) {
    if (safe == 0)
      em_if(E, em(E, "arith.xori %s, %s : i1", bad.s, em_int(E, 1, "i1").s));
    else
      em_else(E);
    if (packed) { /* vf holds the tile when it is not finite */
      if (vdirect.s[0] && safe == 0) {
        V vfd = em(E, "memref.cast %s : %s to memref<?xf32>", vf.s, vft);
        V vsrc = em(E, "arith.select %s, %s, %s : memref<?xf32>", vdirect.s, k->v.m.s, vfd.s);
        V vbase = sel(k, vdirect, row_offset(k, k->KVH, b, g, k0), k->c0, "index");
        packed_pv(k, &tl, nr, vsrc, vbase, "memref<?xf32>", false);
      } else {
        packed_pv(k, &tl, nr, vf, k->c0, vft, safe);
      }
      continue;
    }
    rb = em_for(E, k->c0, em_index(E, TQ), em_index(E, rv));
    V unused;
    em_if(E, block_facts(k, i0, nr, rb, rv, k064, k164, &unused));
    for (int rr = 0; rr < rv; rr++)
      for (int v = 0; v < nvd; v++)
        em_set(E, oacc[rr][v], em(E, "vector.load %s[%s] : %s, %s", acc_o.s, addc(k, mulc(k, addc(k, rb, rr), Dp), v * VL32).s, ot, vt), vt);
    /* keys [c_lo, c_hi) of the tile: with one key range per row (fused
     * rows, their masked lanes' P exactly 0) only the block's rows' ranges;
     * at a band's edge that is part of the tile */
    V c_lo = k->c0, c_hi = kl;
    if (inreg && k->p->mask) {
      V ml1, mh1, ml2, mh2;
      V r1 = to_i64(k, addx(k, i0, rb)), r2 = to_i64(k, addx(k, i0, addc(k, rb, rv - 1)));
      if (mask_bounds(E, k->p->mask, r1, &ml1, &mh1) && mask_bounds(E, k->p->mask, r2, &ml2, &mh2)) {
        V lo64 = bin(k, "arith.subi", bin(k, "arith.minsi", ml1, ml2, "i64"), k064, "i64");
        V hi64 = bin(k, "arith.subi", bin(k, "arith.maxsi", mh1, mh2, "i64"), k064, "i64");
        V kl64 = to_i64(k, kl);
        lo64 = bin(k, "arith.minsi", bin(k, "arith.maxsi", lo64, c64(k, 0), "i64"), kl64, "i64");
        hi64 = bin(k, "arith.minsi", bin(k, "arith.maxsi", hi64, lo64, "i64"), kl64, "i64");
        c_lo = to_index(k, lo64);
        c_hi = to_index(k, hi64);
      }
    }
    /* In slot order, one loop per slot vector sv, whose lane l holds key
     * base + l M: P's slots and V's rows both advance by a constant step */
    int M = k->slots;
    for (int sv = 0; sv < (M ? TK / VL32 : 1); sv++) {
      V slot;
      if (!M) {
        c = em_for(E, c_lo, c_hi, k->c1);
        slot = c;
      } else {
        int base = sv / M * VL32 * M + sv % M;
        V lane_bound[2], cb[2] = {c_lo, c_hi};
        for (int e = 0; e < 2; e++) {
          V x = bin(k, "arith.maxsi", bin(k, "arith.subi", to_i64(k, cb[e]), c64(k, base), "i64"), c64(k, 0), "i64");
          x = bin(k, "arith.divui", bin(k, "arith.addi", x, c64(k, M - 1), "i64"), c64(k, M), "i64");
          lane_bound[e] = to_index(k, bin(k, "arith.minui", x, c64(k, VL32), "i64"));
        }
        V ln = em_for(E, lane_bound[0], lane_bound[1], k->c1);
        c = addc(k, mulc(k, ln, M), base);
        slot = addc(k, ln, sv * VL32);
      }
      V voff = row_offset(k, k->KVH, b, g, addx(k, k0, c));
      V vv[16];
      for (int v = 0; v < nvd; v++) {
        int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
        vv[v] = wv ? em(E, "vector.load %s[%s] : %s, %s", vf.s, addc(k, mulc(k, c, Dp), v * VL32).s, vft, vt)
                   : vload(k, k->v, addc(k, voff, v * VL32), VL32, tail, "f32");
      }
      for (int rr = 0; rr < rv; rr++) {
        V p = load(k, pt, addx(k, mulc(k, addc(k, rb, rr), TK), slot), pmt);
        V pb = em(E, "vector.broadcast %s : f32 to %s", p.s, vt);
        /* une: a NaN p still adds (NaN) */
        V nonzero = safe ? cmpf(k, "une", p, em_float(E, 0.0, "f32"), "f32") : (V){""};
        for (int v = 0; v < nvd; v++) {
          V old = em_get(E, oacc[rr][v], vt);
          V nw = em(E, "vector.fma %s, %s, %s : %s", pb.s, vv[v].s, old.s, vt);
          if (safe)
            nw = em(E, "arith.select %s, %s, %s : %s", nonzero.s, nw.s, old.s, vt);
          em_set(E, oacc[rr][v], nw, vt);
        }
      }
      em_end(E);
    }
    for (int rr = 0; rr < rv; rr++)
      for (int v = 0; v < nvd; v++)
        em_do(E, "vector.store %s, %s[%s] : %s, %s", em_get(E, oacc[rr][v], vt).s, acc_o.s,
              addc(k, mulc(k, addc(k, rb, rr), Dp), v * VL32).s, ot, vt);
    em_end(E);
    em_end(E);
  }
  em_end(E);
  em_end(E); /* need */
  em_end(E); /* key tiles */

  /* normalize and store; a row that saw no key (l = 0) is zero */
  r = em_for(E, k->c0, nr, k->c1);
  V lr = em(E, "vector.reduction <add>, %s : %s into f32",
            em(E, "vector.load %s[%s] : %s, %s", l.s, mulc(k, r, VL32).s, lt, vt).s, vt);
  V inv = sel(k, cmpf(k, "ogt", lr, em_float(E, 0.0, "f32"), "f32"), em(E, "arith.divf %s, %s : f32", em_float(E, 1.0, "f32").s, lr.s),
              em_float(E, 0.0, "f32"), "f32");
  V ib = em(E, "vector.broadcast %s : f32 to %s", inv.s, vt);
  V ooff = row_offset(k, k->H, b, h, addx(k, i0, r));
  for (int v = 0; v < nvd; v++) {
    int tail = D - v * VL32 < VL32 ? (int)(D - v * VL32) : 0;
    V o = em(E, "vector.load %s[%s] : %s, %s", acc_o.s, addc(k, mulc(k, r, Dp), v * VL32).s, ot, vt);
    store_out(k, em(E, "arith.mulf %s, %s : %s", o.s, ib.s, vt), addc(k, ooff, v * VL32), tail);
  }
  em_end(E);
  task_end(k);
}

/* The flash path's part of the entry function: pack K, then the tiles. */
static void flash_main(K *k) {
  const SaSpec *s = k->s;
  V sp = bin(k, "arith.muli", bin(k, "arith.divsi", bin(k, "arith.addi", k->S64, c64(k, TK - 1), "i64"), c64(k, TK), "i64"),
             c64(k, TK), "i64");
  V ok = em_int(E, 1, "i1");
  /* K transposed, then the per-tile V flags */
  V per = bin(k, "arith.addi", bin(k, "arith.muli", sp, c64(k, k->KVH * k->D), "i64"),
              bin(k, "arith.muli", bin(k, "arith.divsi", sp, c64(k, TK), "i64"), c64(k, k->KVH * TILE_FACTS), "i64"), "i64");
  V n = to_index(k, em(E, "arith.muli %%batch, %s : i64", per.s));
  V kt = alloc(k, n, "f32", &ok);
  em_if(E, ok);
  V ctx = em_alloca(E, 8, "i64");
  const char *args[] = {"%q", "%k", "%v", "%o"};
  for (int a = 0; a < 4; a++)
    store(k, em(E, "llvm.ptrtoint %s : !llvm.ptr to i64", args[a]), ctx, em_index(E, a), "memref<8xi64>");
  V ktp = em(E, "memref.extract_aligned_pointer_as_index %s : memref<?xf32> -> index", kt.s);
  store(k, em(E, "arith.index_cast %s : index to i64", ktp.s), ctx, em_index(E, 4), "memref<8xi64>");
  store(k, em(E, "arith.addi %%batch, %s : i64", c64(k, 0).s), ctx, em_index(E, 5), "memref<8xi64>");
  store(k, em(E, "arith.addi %%seq, %s : i64", c64(k, 0).s), ctx, em_index(E, 6), "memref<8xi64>");
  V cp = em(E, "memref.extract_aligned_pointer_as_index %s : memref<8xi64> -> index", ctx.s);
  V cptr = em(E, "llvm.inttoptr %s : i64 to !llvm.ptr", em(E, "arith.index_cast %s : index to i64", cp.s).s);
  const char *fty = "(!llvm.ptr, i64) -> ()";
  V fpack = em(E, "func.constant @%s__pack : %s", s->name, fty);
  V ftile = em(E, "func.constant @%s__tile : %s", s->name, fty);
  V npack = em(E, "arith.muli %%batch, %s : i64", c64(k, k->KVH).s);
  V nqt = bin(k, "arith.divsi", bin(k, "arith.addi", k->S64, c64(k, TQ - 1), "i64"), c64(k, TQ), "i64");
  V ntile = em(E, "arith.muli %%batch, %s : i64", bin(k, "arith.muli", nqt, c64(k, k->H), "i64").s);
  em(E, "func.call @sattn_cpu_parallel(%s, %s, %s) : (%s, !llvm.ptr, i64) -> i32", fpack.s, cptr.s, npack.s, fty);
  em(E, "func.call @sattn_cpu_parallel(%s, %s, %s) : (%s, !llvm.ptr, i64) -> i32", ftile.s, cptr.s, ntile.s, fty);
  em_else(E);
  em_set(E, k->status, em_int(E, 2, "i32"), "i32");
  em_end(E);
  em_do(E, "memref.dealloc %s : memref<?xf32>", kt.s);
}

/* Whether the plan runs on the flash path: no stage that ranks or prunes
 * but N:M with groups inside a 16-lane vector (M dividing 16), which the
 * tiles select in registers. */
static bool flash_eligible(const SaSpec *s) {
  bool nm_ok = s->nm_m == 0 || 16 % s->nm_m == 0;
  return !s->has_predict && s->n_filter_rounds == 0 && nm_ok && !s->has_progressive && s->value_keep >= 1.0 &&
         s->token_keep >= 1.0 && s->head_keep >= 1.0;
}

int64_t cg_cpu_query_tile(const SaSpec *s, bool *per_head) {
  *per_head = !flash_eligible(s) && s->token_keep >= 1.0 && s->head_keep >= 1.0;
  return flash_eligible(s) ? TQ : 0;
}

/* The row path's scratch: lists of `len` entries and the quantized
 * copies of one head. */
#define MAX_SCRATCH 32

typedef struct {
  V m[MAX_SCRATCH];
  const char *t[MAX_SCRATCH];
  int n;
} RowScratch;

static V scratch(K *k, RowScratch *rs, V n, const char *et, V *ok) {
  if (rs->n == MAX_SCRATCH) {
    fprintf(stderr, "%s:%d: internal error: more than %d scratch buffers\n", __FILE__, __LINE__, MAX_SCRATCH);
    abort();
  }
  V m = alloc(k, n, et, ok);
  rs->m[rs->n] = m;
  rs->t[rs->n++] = et;
  return m;
}

static void row_scratch_alloc(K *k, RowScratch *rs, V *ok, V len) {
  const SaSpec *s = k->s;
  rs->n = 0;
  V one = em_index(E, 1), sd = mulc(k, k->S, k->D);
  k->L = len;
  k->idx = scratch(k, rs, len, "index", ok);
  k->val = scratch(k, rs, len, "f64", ok);
  k->pr = scratch(k, rs, len, "f32", ok);
  k->flag = scratch(k, rs, addc(k, len, 64), "i8", ok); /* 64 past the end: flag_bits */
  k->gstart = scratch(k, rs, s->nm_m ? len : one, "index", ok);
  k->keys = scratch(k, rs, len, "i64", ok);
  k->tokkeep = scratch(k, rs, k->S, "i8", ok);
  k->tokval = scratch(k, rs, k->S, "f64", ok);
  k->tokacc = scratch(k, rs, k->S, "f64", ok);
  k->proj = scratch(k, rs, em_index(E, k->P ? k->D * k->P : 1), "f64", ok);
  k->pq = scratch(k, rs, k->P ? mulc(k, k->S, k->P) : one, "f32", ok);
  k->pk = scratch(k, rs, k->P ? mulc(k, k->S, k->P) : one, "f32", ok);
  k->prow = scratch(k, rs, em_index(E, k->P ? PROJ_ROWS * k->P : 1), "f64", ok);
  k->fq = scratch(k, rs, k->R ? mulc(k, sd, k->R) : one, "f32", ok);
  k->fk = scratch(k, rs, k->R ? mulc(k, sd, k->R) : one, "f32", ok);
  k->pqs = scratch(k, rs, k->P ? k->S : one, "f64", ok);
  k->pks = scratch(k, rs, k->P ? k->S : one, "f64", ok);
  k->fqs = scratch(k, rs, k->R ? mulc(k, k->S, k->R) : one, "f64", ok);
  k->fks = scratch(k, rs, k->R ? mulc(k, k->S, k->R) : one, "f64", ok);
  k->kmsb = scratch(k, rs, s->has_progressive ? sd : one, "f64", ok);
  k->kfull = scratch(k, rs, s->has_progressive ? sd : one, "f64", ok);
  /* the first selection stage's tiles: keys padded to whole 64-key tiles */
  bool tiled = s->has_predict || s->n_filter_rounds > 0;
  k->fsp = mulc(k, bin(k, "arith.divui", addc(k, k->S, TK - 1), em_index(E, TK), "index"), TK);
  int64_t fs_len = s->has_predict ? k->P : k->D;
  bool bytes = tiled && k->vnni;
  k->fkt = scratch(k, rs, tiled && !bytes ? mulc(k, k->fsp, fs_len) : one, "f32", ok);
  k->fkt8 = scratch(k, rs, bytes ? mulc(k, k->fsp, vnni_len(fs_len)) : one, "i8", ok);
  k->fq8 = scratch(k, rs, bytes ? mulc(k, k->S, vnni_len(fs_len)) : one, "i8", ok);
  k->fkc = scratch(k, rs, bytes ? k->fsp : one, "i32", ok);
  k->fsc = scratch(k, rs, tiled ? mulc(k, k->fsp, FS_ROWS) : one, "f32", ok);
  k->ks32 = scratch(k, rs, tiled ? k->S : one, "f32", ok);
  k->fsc_off = (V){""};
  bool blocked = row_blocked(k);
  k->blist = scratch(k, rs, blocked ? addc(k, mulc(k, list_stride(k), RB), VL32) : one, "i32", ok);
  k->bacc = scratch(k, rs, em_index(E, blocked ? RB * ((k->D + VL32 - 1) / VL32) * VL32 : 1), "f32", ok);
  /* kv_views' copies: touched only when K or V is not aligned */
  bool copies = blocked && k->k.k == BK_F32 && k->v.k == BK_F32;
  V kvlen = copies ? mulc(k, k->S, (k->D + VL32 - 1) / VL32 * VL32) : one;
  k->kcopy = scratch(k, rs, kvlen, "f32", ok);
  k->vcopy = scratch(k, rs, kvlen, "f32", ok);
  k->bn = em_alloca(E, RB, "index");
  k->bcur = em_alloca(E, RB, "index");
  k->bm = em_alloca(E, RB, "f32");
  k->bl = em_alloca(E, RB, "f32");
}

static void row_scratch_free(K *k, RowScratch *rs) {
  for (int a = 0; a < rs->n; a++)
    em_do(E, "memref.dealloc %s : memref<?x%s>", rs->m[a].s, rs->t[a]);
}

/* DSA's projection, drawn from its seed at the start of a call. */
static void emit_projection(K *k) {
  const SaSpec *s = k->s;
  if (!k->P)
    return;
  V state = em_var(E, "i64");
  em_set(E, state, c64(k, (int64_t)s->predict_seed), "i64");
  double mag = 1.0 / sqrt((double)k->P);
  V t = em_for(E, k->c0, em_index(E, k->D * k->P), k->c1);
  V st0 = em_get(E, state, "i64");
  em_set(E, state, bin(k, "arith.addi", st0, c64(k, (int64_t)UINT64_C(0x9E3779B97F4A7C15)), "i64"), "i64");
  V z = mask_splitmix(E, st0);
  V odd = cmpi(k, "ne", bin(k, "arith.andi", z, c64(k, 1), "i64"), c64(k, 0), "i64");
  store(k, sel(k, odd, em_float(E, mag, "f64"), em_float(E, -mag, "f64"), "f64"), k->proj, t, "memref<?xf64>");
  em_end(E);
}

/* rows task (b, h): the row path for one head with its own scratch. A
 * failed allocation sets the context's status slot. */
static void emit_rows_task(K *k) {
  V task = task_begin(k, "rows");
  k->rows_task = true;
  k->n = em_var(E, "index");
  k->abssum = em_var(E, "f64");
  k->orow = em_alloca(E, k->D, "f32");
  k->has_to = em_int(E, 0, "i1");
  k->has_ho = k->has_to;
  V b = bin(k, "arith.divui", task, em_index(E, k->H), "index");
  V h = bin(k, "arith.remui", task, em_index(E, k->H), "index");
  k->cur_b = b;
  k->cur_h = h;
  k->cur_kvh = bin(k, "arith.divui", h, em_index(E, k->H / k->KVH), "index");
  V ok = em_int(E, 1, "i1");
  RowScratch rs;
  row_scratch_alloc(k, &rs, &ok, k->S);
  em_if(E, ok);
  emit_projection(k);
  head_body(k, b, h);
  em_else(E);
  store(k, c64(k, 2), k->ctxm, em_index(E, 7), "memref<?xi64>");
  em_end(E);
  row_scratch_free(k, &rs);
  task_end(k);
  k->rows_task = false;
}

/* The dynamic path's part of the entry function: one task per (batch, head). */
static void rows_main(K *k) {
  const SaSpec *s = k->s;
  V ctx = em_alloca(E, 8, "i64");
  const char *args[] = {"%q", "%k", "%v", "%o"};
  for (int a = 0; a < 4; a++)
    store(k, em(E, "llvm.ptrtoint %s : !llvm.ptr to i64", args[a]), ctx, em_index(E, a), "memref<8xi64>");
  store(k, c64(k, 0), ctx, em_index(E, 4), "memref<8xi64>");
  store(k, em(E, "arith.addi %%batch, %s : i64", c64(k, 0).s), ctx, em_index(E, 5), "memref<8xi64>");
  store(k, em(E, "arith.addi %%seq, %s : i64", c64(k, 0).s), ctx, em_index(E, 6), "memref<8xi64>");
  store(k, c64(k, 0), ctx, em_index(E, 7), "memref<8xi64>");
  V cp = em(E, "memref.extract_aligned_pointer_as_index %s : memref<8xi64> -> index", ctx.s);
  V cptr = em(E, "llvm.inttoptr %s : i64 to !llvm.ptr", em(E, "arith.index_cast %s : index to i64", cp.s).s);
  const char *fty = "(!llvm.ptr, i64) -> ()";
  V fn = em(E, "func.constant @%s__rows : %s", s->name, fty);
  V ntask = em(E, "arith.muli %%batch, %s : i64", c64(k, k->H).s);
  em(E, "func.call @sattn_cpu_parallel(%s, %s, %s) : (%s, !llvm.ptr, i64) -> i32", fn.s, cptr.s, ntask.s, fty);
  V failed = cmpi(k, "ne", load(k, ctx, em_index(E, 7), "memref<8xi64>"), c64(k, 0), "i64");
  em_if(E, failed);
  em_set(E, k->status, em_int(E, 2, "i32"), "i32");
  em_end(E);
}

/* The signature (first line of the body) goes before the entry allocas. */
static char *finish_func(Em *e) {
  char *body = e->body.buf;
  char *nl = body ? strchr(body, '\n') : NULL;
  if (e->oom || !nl) {
    em_free(e);
    return NULL;
  }
  size_t sig = (size_t)(nl - body) + 1, n = e->head.len + e->body.len;
  char *text = malloc(n + 1);
  if (text) {
    memcpy(text, body, sig);
    if (e->head.len)
      memcpy(text + sig, e->head.buf, e->head.len);
    memcpy(text + sig + e->head.len, body + sig, e->body.len - sig);
    text[n] = '\0';
  }
  em_free(e);
  return text;
}

char *cg_cpu_kernel(const KernelPlan *plan, bool vnni) {
  K kk = {0}, *k = &kk;
  const SaSpec *s = &plan->s;
  k->p = plan;
  k->vnni = vnni;
  k->s = s;
  k->H = s->heads;
  k->KVH = s->kv_heads;
  k->D = s->head_dim;
  k->R = s->n_filter_rounds;
  k->P = s->has_predict ? s->predict_dim : 0;
  BufKind in = kind_of(s->storage), out = kind_of(s->output);

  em_raw(E, "func.func @%s(%%q: !llvm.ptr, %%k: !llvm.ptr, %%v: !llvm.ptr, %%o: !llvm.ptr, %%batch: i64, %%seq: i64, "
            "%%tin: !llvm.ptr, %%tout: !llvm.ptr, %%hin: !llvm.ptr, %%hout: !llvm.ptr) -> i32 {\n",
         s->name);
  k->status = em_var(E, "i32");
  k->n = em_var(E, "index");
  k->abssum = em_var(E, "f64");
  k->orow = em_alloca(E, k->D, "f32");
  k->headkeep = em_alloca(E, k->H, "i8");
  k->headval = em_alloca(E, k->H, "f64");
  k->c0 = em_index(E, 0);
  k->c1 = em_index(E, 1);

  /* Status: invalid arguments, then shapes (SaStatus values). */
  V bad = cmpi(k, "slt", em(E, "arith.minsi %%batch, %%seq : i64"), c64(k, 1), "i64");
  V ptrs_ok = and1(k, and1(k, nonnull(k, "%q"), nonnull(k, "%k")), and1(k, nonnull(k, "%v"), nonnull(k, "%o")));
  bad = or1(k, bad, em(E, "arith.xori %s, %s : i1", ptrs_ok.s, em_int(E, 1, "i1").s));
  V shape_bad = em_int(E, 0, "i1");
  if (s->batch != SA_DYNAMIC)
    shape_bad = or1(k, shape_bad, em(E, "arith.cmpi ne, %%batch, %s : i64", c64(k, s->batch).s));
  if (s->seq != SA_DYNAMIC)
    shape_bad = or1(k, shape_bad, em(E, "arith.cmpi ne, %%seq, %s : i64", c64(k, s->seq).s));
  /* B and S below 2^31 and B*S*H*D*64 within 2^62 keep every index and
   * scratch size in range */
  int64_t limit = (INT64_C(1) << 56) / (k->H * k->D);
  V big = or1(k, em(E, "arith.cmpi sgt, %%batch, %s : i64", c64(k, INT32_MAX).s),
              em(E, "arith.cmpi sgt, %%seq, %s : i64", c64(k, INT32_MAX).s));
  big = or1(k, big, em(E, "arith.cmpi sgt, %s, %s : i64", em(E, "arith.muli %%batch, %%seq : i64").s, c64(k, limit).s));
  shape_bad = or1(k, shape_bad, big);
  V st = sel(k, shape_bad, em_int(E, 3, "i32"), em_int(E, 0, "i32"), "i32");
  st = sel(k, bad, em_int(E, 1, "i32"), st, "i32");
  em_set(E, k->status, st, "i32");
  em_if(E, cmpi(k, "eq", st, em_int(E, 0, "i32"), "i32"));

  k->S64 = em(E, "arith.addi %%seq, %s : i64", c64(k, 0).s);
  k->S = to_index(k, k->S64);
  k->B = em(E, "arith.index_cast %%batch : i64 to index");
  V nq = em(E, "arith.muli %s, %s : i64", em(E, "arith.muli %%batch, %%seq : i64").s, c64(k, k->H * k->D).s);
  V nkv = em(E, "arith.muli %s, %s : i64", em(E, "arith.muli %%batch, %%seq : i64").s, c64(k, k->KVH * k->D).s);
  V nt = em(E, "arith.muli %%batch, %%seq : i64");
  V nh = em(E, "arith.muli %%batch, %s : i64", c64(k, k->H).s);
  k->q = (Buf){view(k, (V){"%q"}, nq, memty(in)), in};
  k->k = (Buf){view(k, (V){"%k"}, nkv, memty(in)), in};
  k->v = (Buf){view(k, (V){"%v"}, nkv, memty(in)), in};
  k->o = (Buf){view(k, (V){"%o"}, nq, memty(out)), out};
  k->ti = view(k, (V){"%tin"}, nt, "memref<?xf32>");
  k->to = view(k, (V){"%tout"}, nt, "memref<?xf32>");
  k->hi = view(k, (V){"%hin"}, nh, "memref<?xf32>");
  k->ho = view(k, (V){"%hout"}, nh, "memref<?xf32>");
  k->has_ti = nonnull(k, "%tin");
  k->has_to = nonnull(k, "%tout");
  k->has_hi = nonnull(k, "%hin");
  k->has_ho = nonnull(k, "%hout");

  /* Unless the caller asks for the importance outputs (which add up over
   * heads), the work is split into tasks on the worker pool: static
   * patterns take the flash path's tiles, dynamic ones (without token or
   * head pruning, which decide over all heads) one task per (batch, head). */
  bool flash = flash_eligible(s), tasks = flash || (s->token_keep >= 1.0 && s->head_keep >= 1.0);
  if (tasks)
    em_if(E, or1(k, k->has_to, k->has_ho));
  V ok = em_int(E, 1, "i1");
  RowScratch rs;
  row_scratch_alloc(k, &rs, &ok, bin(k, "arith.maxui", k->S, em_index(E, k->H), "index"));
  em_if(E, ok);
  emit_projection(k);
  V b = em_for(E, k->c0, k->B, k->c1);
  batch(k, b);
  em_end(E);
  em_else(E);
  em_set(E, k->status, em_int(E, 2, "i32"), "i32");
  em_end(E);
  row_scratch_free(k, &rs);
  if (tasks) {
    em_else(E);
    if (flash)
      flash_main(k);
    else
      rows_main(k);
    em_end(E);
  }
  em_end(E);
  em_do(E, "func.return %s : i32", em_get(E, k->status, "i32").s);
  em_raw(E, "}\n");
  char *main_text = finish_func(E);
  if (!tasks)
    return main_text;
  /* the task functions and the runtime entry they run on */
  K pk = {.p = plan, .s = s, .H = k->H, .KVH = k->KVH, .D = k->D, .R = k->R, .P = k->P, .vnni = vnni,
          .slots = flash ? nm_slots(plan) : 0};
  K tk = pk;
  char *pack_text = NULL, *tile_text = NULL;
  if (flash) {
    emit_pack(&pk);
    pack_text = finish_func(&pk.e);
    emit_tile(&tk);
    tile_text = finish_func(&tk.e);
  } else {
    pack_text = calloc(1, 1);
    emit_rows_task(&tk);
    tile_text = finish_func(&tk.e);
  }
  static const char decl[] = "func.func private @sattn_cpu_parallel((!llvm.ptr, i64) -> (), !llvm.ptr, i64) -> i32\n";
  char *all = NULL;
  if (main_text && pack_text && tile_text) {
    size_t n = strlen(main_text) + strlen(pack_text) + strlen(tile_text) + sizeof decl;
    all = malloc(n);
    if (all)
      snprintf(all, n, "%s%s%s%s", main_text, pack_text, tile_text, decl);
  }
  free(main_text), free(pack_text), free(tile_text);
  return all;
}
