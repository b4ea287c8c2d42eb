/* select.c: the CUDA row kernels, a warp per query row: filter rounds and
 * DSA prediction (docs/semantics.md 4.5, 4.6; docs/cuda.md), and SpAtten's
 * pruning further down, which shares the radix select and the candidate
 * walks. Selection: three kernels per spec, all
 * gpu.funcs in the gpu, nvvm, llvm, scf and arith dialects like
 * kernel.c's, launched in order on one workspace (sattn/cuda.h):
 *
 *   name_grids   a thread per Q or K row: for every stage, the row's
 *                integer grid (DSA: of its random projection) and step,
 *                in f64 with the reference's operations in its order, so
 *                the grids are the same integers
 *   name_select  a warp per query row: each stage's scores
 *                ((scale step_q) step_k) dot, the dot exact in i32 (dp4a)
 *                and the products in f64 as the reference forms them, and
 *                the stage's exact top-k (ties to the lower key) by a
 *                radix select over the scores' order-preserving 64-bit
 *                keys, 8 bits a pass, in a shared-memory histogram, until
 *                at most 32 keys remain to rank within the warp (or
 *                Energon's mean threshold, its sum formed in key order);
 *                the survivors go to the row's list in key order. Later
 *                stages rank the list and compact it in place.
 *   name         a warp per query row: softmax and P V over the row's
 *                list, the keys' K and V rows read where they lie, with
 *                an online softmax over 32 survivors at a time.
 *
 * No score is ever written: the select kernel recomputes each stage's
 * low-precision scores on every pass, and the exact scores live in
 * registers. Grids are at most 8 bits (one signed byte each). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../codegen.h"
#include "../emit.h"
#include "../mask.h"
#include "sattn/cuda.h"
#include "sattn/reference.h"

enum { THREADS = 128, WARP_ROWS = 4, GRID_ROWS = 128, HIST = 256 };
/* The selection kernels' first radix digit: the sign and the exponent of
 * the f64 scores (2048 bins a warp, SA_CUDA_SELECT_SHARED in all) */
enum { SELECT_FIRST_BITS = 11 };
/* Rows of more candidates than this take the wide first digit: a model
 * of the passes (bench/gpu/radix_passes.py: 4-bit DSA grids of standard
 * normals, 10% kept) needs about 2.0 of them at 2048 keys with either
 * digit, 2.4 against 2.0 at 3072, 2.8 against 2.0 at 4096 */
enum { WIDE_FIRST_MIN = 2048 };
_Static_assert(WARP_ROWS * (1 << SELECT_FIRST_BITS) * 4 == SA_CUDA_SELECT_SHARED,
               "name_select's bins and the runtime's shared memory for it disagree");
/* SpAtten's score stash: keys per warp (sa_cuda_describe's SA_CUDA_STASH_KEYS) */
enum { STASH_KEYS = 2048, STASH_NONE = 0, STASH_WRITE, STASH_READ };
/* The most head_dim x predict_dim terms a projection unrolls (projected_grid). */
enum { PROJECT_UNROLLED = 4096 };
#define LOG2E 1.4426950408889634

typedef struct {
  bool predict;     /* DSA's projection; otherwise a filter round */
  int len, lp;      /* grid columns, and padded to 16 bytes */
  int qbits, kbits; /* grid widths */
  SaKeep keep;
} Stage;

typedef struct {
  Em e;
  const KernelPlan *p;
  const SaSpec *s;
  int64_t H, KVH, D;
  int R, grid_bytes;
  Stage st[SA_MAX_FILTER_ROUNDS + 1];
  SaCudaKernel geo;
  bool importance; /* SpAtten's kernels: four more arguments, the importance vectors */
  bool blocks_per_sm; /* .minnctapersm 2: without it ptxas holds a kernel with .maxntid 128
                       * to 64 registers (8 blocks an SM) and spills */
  V S64, S32, ws, lane, warp;
  V q, k, v, o;
  /* the candidate walk's position (i32), whether it lies in the walk's
   * range, and the range's start: cand_at sets them for scorers that
   * stash scores by position (prune_score) */
  V pos, pos_ok, pos_lo;
} C;

#define E (&c->e)

/* ---- small emitters ---- */

static V c32(C *c, int64_t x) { return em_int(E, x, "i32"); }
static V c64(C *c, int64_t x) { return em_int(E, x, "i64"); }
static V f64c(C *c, double x) { return em_float(E, x, "f64"); }
static V bin(C *c, const char *op, V a, V b, const char *ty) { return em(E, "%s %s, %s : %s", op, a.s, b.s, ty); }
static V add32(C *c, V a, V b) { return bin(c, "arith.addi", a, b, "i32"); }
static V add64(C *c, V a, V b) { return bin(c, "arith.addi", a, b, "i64"); }
static V mul64(C *c, V a, V b) { return bin(c, "arith.muli", a, b, "i64"); }
static V cmp(C *c, const char *pred, V a, V b, const char *ty) {
  return em(E, "arith.cmpi %s, %s, %s : %s", pred, a.s, b.s, ty);
}
static V fcmp(C *c, const char *pred, V a, V b, const char *ty) {
  return em(E, "arith.cmpf %s, %s, %s : %s", pred, a.s, b.s, ty);
}
static V sel(C *c, V cond, V a, V b, const char *ty) {
  return em(E, "arith.select %s, %s, %s : %s", cond.s, a.s, b.s, ty);
}
static V ext64(C *c, V x) { return em(E, "arith.extsi %s : i32 to i64", x.s); }
static V and1(C *c, V a, V b) { return bin(c, "arith.andi", a, b, "i1"); }
static V or1(C *c, V a, V b) { return bin(c, "arith.ori", a, b, "i1"); }

/* f64 products and sums rounded once each, as in the reference: PTX's
 * .rn forms (op is mul, add or sub), which ptxas never contracts into an
 * fma. */
static V drn(C *c, const char *op, V a, V b) {
  return em(E, "llvm.inline_asm \"%s.rn.f64 $0, $1, $2;\", \"=d,d,d\" %s, %s : (f64, f64) -> f64", op, a.s, b.s);
}
static V dmul(C *c, V a, V b) { return drn(c, "mul", a, b); }
static V dadd(C *c, V a, V b) { return drn(c, "add", a, b); }
static V dsub(C *c, V a, V b) { return drn(c, "sub", a, b); }

/* |x| by clearing the sign bit (the NVVM lowering refuses fabs on f64) */
static V dabs(C *c, V x) {
  V u = em(E, "arith.bitcast %s : f64 to i64", x.s);
  return em(E, "arith.bitcast %s : i64 to f64", bin(c, "arith.andi", u, c64(c, INT64_MAX), "i64").s);
}

static V shfl(C *c, const char *mode, V x, V lane_or_delta, const char *ty) {
  V all = em(E, "llvm.mlir.constant(-1 : i32) : i32");
  return em(E, "nvvm.shfl.sync %s %s, %s, %s, %s : %s -> %s", mode, all.s, x.s, lane_or_delta.s,
            c32(c, strcmp(mode, "up") ? 31 : 0).s, ty, ty);
}
static V ballot(C *c, V pred) {
  V all = em(E, "llvm.mlir.constant(-1 : i32) : i32");
  return em(E, "nvvm.vote.sync ballot %s, %s -> i32", all.s, pred.s);
}
static void syncwarp(C *c) {
  V all = em(E, "llvm.mlir.constant(-1 : i32) : i32");
  em_do(E, "nvvm.bar.warp.sync %s : i32", all.s);
}
static V popc(C *c, V x) { return em(E, "llvm.intr.ctpop(%s) : (i32) -> i32", x.s); }

/* Address of byte `off` (i64) of global pointer p, and loads and stores. */
static V gbyte(C *c, V p, V off) {
  return em(E, "llvm.getelementptr %s[%s] : (!llvm.ptr<1>, i64) -> !llvm.ptr<1>, i8", p.s, off.s);
}
static V gload(C *c, V p, V off, const char *ty) { return em(E, "llvm.load %s : !llvm.ptr<1> -> %s", gbyte(c, p, off).s, ty); }
static void gstore(C *c, V x, V p, V off, const char *ty) {
  em_do(E, "llvm.store %s, %s : %s, !llvm.ptr<1>", x.s, gbyte(c, p, off).s, ty);
}
static V sbyte(C *c, V off32) {
  V base = em(E, "llvm.mlir.addressof @sattn_smem : !llvm.ptr<3>");
  return em(E, "llvm.getelementptr %s[%s] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8", base.s, off32.s);
}

/* Element offset (i64) of row `row` (i32) of head (b, h) of a tensor with
 * nh heads (i32 values b, h), in the spec's layout. */
static V row_offset(C *c, V b, V h, V nh, V row) {
  V r64 = ext64(c, row), b64 = ext64(c, b), h64 = ext64(c, h), n64 = ext64(c, nh);
  V x = c->s->layout == LAYOUT_BHSD ? add64(c, mul64(c, add64(c, mul64(c, b64, n64), h64), c->S64), r64)
                                    : add64(c, mul64(c, add64(c, mul64(c, b64, c->S64), r64), n64), h64);
  return mul64(c, x, c64(c, c->D));
}

/* Element e (i64 offset) of an input tensor as f32. */
static V load_in(C *c, V p, V e) {
  int es = c->s->storage == DT_FP32 ? 4 : 2;
  V off = mul64(c, e, c64(c, es));
  if (es == 4)
    return gload(c, p, off, "f32");
  const char *t = c->s->storage == DT_FP16 ? "f16" : "bf16";
  return em(E, "arith.extf %s : %s to f32", gload(c, p, off, t).s, t);
}

/* Loops with carried values: opens `scf.for iv = lo to hi step st` (i32)
 * carrying n values of types ty (init); the body's values come back in
 * args, the iv is returned. loop_close yields next and gives the loop's
 * results in res. */
typedef struct {
  V r;
  int n;
  const char *ty[12];
} Loop;

static V loop_open(C *c, Loop *l, V lo, V hi, V st, int n, const V *init, const char *const *ty, V *args) {
  l->n = n;
  char binds[1024] = "", tys[256] = "";
  size_t bp = 0, tp = 0;
  V iv = em_fresh(E);
  for (int i = 0; i < n; i++) {
    l->ty[i] = ty[i];
    args[i] = em_fresh(E);
    bp += (size_t)snprintf(binds + bp, sizeof binds - bp, "%s%s = %s", i ? ", " : "", args[i].s, init[i].s);
    tp += (size_t)snprintf(tys + tp, sizeof tys - tp, "%s%s", i ? ", " : "", ty[i]);
  }
  if (n)
    l->r = em_multi(E, n, "scf.for %s = %s to %s step %s iter_args(%s) -> (%s) : i32 {", iv.s, lo.s, hi.s, st.s, binds,
                    tys);
  else
    em_do(E, "scf.for %s = %s to %s step %s : i32 {", iv.s, lo.s, hi.s, st.s);
  E->depth++;
  return iv;
}

static void loop_close(C *c, Loop *l, const V *next, V *res) {
  char names[1024] = "", tys[256] = "";
  size_t np = 0, tp = 0;
  for (int i = 0; i < l->n; i++) {
    np += (size_t)snprintf(names + np, sizeof names - np, "%s%s", i ? ", " : "", next[i].s);
    tp += (size_t)snprintf(tys + tp, sizeof tys - tp, "%s%s", i ? ", " : "", l->ty[i]);
  }
  if (l->n)
    em_do(E, "scf.yield %s : %s", names, tys);
  E->depth--;
  em_do(E, "}");
  for (int i = 0; i < l->n; i++)
    res[i] = em_res(l->r, i);
}

/* `scf.if cond -> (tylist)` ("i64, i32"); the caller writes the branches'
 * yields between if_open_list / if_else / if_close. if_open: n results of
 * one type. */
static V if_open_list(C *c, V cond, int n, const char *tylist) {
  V r = n == 1 ? em(E, "scf.if %s -> (%s) {", cond.s, tylist) : em_multi(E, n, "scf.if %s -> (%s) {", cond.s, tylist);
  E->depth++;
  return r;
}
static V if_open(C *c, V cond, int n, const char *ty) {
  char tys[256] = "";
  size_t tp = 0;
  for (int i = 0; i < n; i++)
    tp += (size_t)snprintf(tys + tp, sizeof tys - tp, "%s%s", i ? ", " : "", ty);
  return if_open_list(c, cond, n, tys);
}
static void if_yield(C *c, int n, const V *x, const char *ty) {
  char names[1024] = "", tys[256] = "";
  size_t np = 0, tp = 0;
  for (int i = 0; i < n; i++) {
    np += (size_t)snprintf(names + np, sizeof names - np, "%s%s", i ? ", " : "", x[i].s);
    tp += (size_t)snprintf(tys + tp, sizeof tys - tp, "%s%s", i ? ", " : "", ty);
  }
  em_do(E, "scf.yield %s : %s", names, tys);
}
static void if_else(C *c) {
  E->depth--;
  em_do(E, "} else {");
  E->depth++;
}
static void if_close(C *c) {
  E->depth--;
  em_do(E, "}");
}

/* ---- the workspace (docs/cuda.md; sa_cuda_workspace_bytes) ---- */

/* i64 byte offsets inside one batch's block, S = seq. */
static V ws_qstep(C *c, int r) { return mul64(c, c64(c, 8 * r * (c->H + c->KVH)), c->S64); }
static V ws_kstep(C *c, int r) { return mul64(c, c64(c, 8 * (r * (c->H + c->KVH) + c->H)), c->S64); }
static V ws_count(C *c) { return mul64(c, c64(c, 8 * c->R * (c->H + c->KVH)), c->S64); }
static V ws_grid0(C *c) {
  V end = add64(c, ws_count(c), mul64(c, c64(c, 4 * c->H), c->S64));
  return bin(c, "arith.andi", add64(c, end, c64(c, 15)), c64(c, -16), "i64");
}
static V ws_qgrid(C *c, int r) {
  int64_t before = 0;
  for (int i = 0; i < r; i++)
    before += c->st[i].lp;
  return add64(c, ws_grid0(c), mul64(c, c64(c, (c->H + c->KVH) * before), c->S64));
}
static V ws_kgrid(C *c, int r) { return add64(c, ws_qgrid(c, r), mul64(c, c64(c, c->H * c->st[r].lp), c->S64)); }
static V ws_list(C *c) { return add64(c, ws_grid0(c), mul64(c, c64(c, (c->H + c->KVH) * c->grid_bytes), c->S64)); }

/* ceil(y) of a non-negative f64 below 2^62, as i64. */
static V ceil64(C *c, V y) {
  V t = em(E, "arith.fptosi %s : f64 to i64", y.s);
  V back = em(E, "arith.sitofp %s : i64 to f64", t.s);
  return sel(c, fcmp(c, "olt", back, y, "f64"), add64(c, t, c64(c, 1)), t, "i64");
}

/* A row's list capacity (list_cap in runtime/cuda/cuda.c): the first
 * stage's keep and 32 more (write_band's slack), at most seq. */
static V list_cap(C *c) {
  V k = c->S64;
  if (c->geo.list_count > 0)
    k = bin(c, "arith.minsi", c64(c, c->geo.list_count), c->S64, "i64");
  else if (c->geo.list_ratio > 0)
    k = ceil64(c, dmul(c, f64c(c, c->geo.list_ratio), em(E, "arith.sitofp %s : i64 to f64", c->S64.s)));
  return bin(c, "arith.minsi", add64(c, k, c64(c, 32)), c->S64, "i64");
}

/* A batch's block of the selection kernels' workspace, in bytes (0
 * without selection stages). */
static V select_block(C *c) {
  if (c->R == 0)
    return c64(c, 0);
  V per = add64(c, ws_list(c), mul64(c, mul64(c, c64(c, 4 * c->H), c->S64), list_cap(c)));
  return bin(c, "arith.andi", add64(c, per, c64(c, 255)), c64(c, -256), "i64");
}

/* SpAtten's part of the workspace (further down) */
static V prune_block(C *c);
static V prune_base(C *c, V b);
static V pw_tkept(C *c);
static V pw_hkept(C *c);

/* Batch b's block: the selection's part, then the pruning kernels' (each
 * a multiple of 256 bytes). */
static V batch_base(C *c, V b) {
  return gbyte(c, c->ws, mul64(c, ext64(c, b), add64(c, select_block(c), prune_block(c))));
}

/* The candidate keys' closed-form range [lo, hi) of query row i (i64):
 * the mask's bounds, else every key. */
static void row_range(C *c, V i64, V *lo, V *hi) {
  V l1, h1;
  *lo = c64(c, 0), *hi = c->S64;
  if (c->p->mask && mask_bounds(E, c->p->mask, i64, &l1, &h1)) {
    *lo = bin(c, "arith.maxsi", l1, *lo, "i64");
    *hi = bin(c, "arith.maxsi", bin(c, "arith.minsi", h1, *hi, "i64"), *lo, "i64");
  }
}

/* ---- the kernels' openings ---- */

/* The gpu.func line of kernel name + suffix (the arguments of every
 * stage, sattn/cuda.h) and its thread and block indices. */
static void func_open(C *c, const char *suffix, V *tid, V *bx, V *by) {
  em_raw(E, "gpu.func @%s%s(%%q: !llvm.ptr<1>, %%k: !llvm.ptr<1>, %%v: !llvm.ptr<1>, %%o: !llvm.ptr<1>, %%seq: i64, "
            "%%ws: !llvm.ptr<1>%s) kernel attributes {known_block_size = array<i32: %d, 1, 1>%s} {\n",
         c->s->name, suffix,
         c->importance ? ", %tin: !llvm.ptr<1>, %hin: !llvm.ptr<1>, %tout: !llvm.ptr<1>, %hout: !llvm.ptr<1>" : "",
         THREADS, c->blocks_per_sm ? ", nvvm.minctasm = 2 : i32" : "");
  *tid = em(E, "nvvm.read.ptx.sreg.tid.x : i32");
  *bx = em(E, "nvvm.read.ptx.sreg.ctaid.x : i32");
  *by = em(E, "nvvm.read.ptx.sreg.ctaid.y : i32");
  c->S32 = em(E, "arith.trunci %%seq : i64 to i32");
}

/* A warp per query row: this warp's row i, batch b, head h and kv head. */
static void warp_row(C *c, V tid, V bx, V by, V *i, V *b, V *h, V *kvh) {
  c->warp = bin(c, "arith.divui", tid, c32(c, 32), "i32");
  c->lane = bin(c, "arith.remui", tid, c32(c, 32), "i32");
  *i = add32(c, bin(c, "arith.muli", bx, c32(c, WARP_ROWS), "i32"), c->warp);
  *b = bin(c, "arith.divui", by, c32(c, (int)c->H), "i32");
  *h = bin(c, "arith.remui", by, c32(c, (int)c->H), "i32");
  *kvh = bin(c, "arith.divui", *h, c32(c, (int)(c->H / c->KVH)), "i32");
}

/* ---- name_grids ---- */

/* The reference's grid value of x (f64) given the row's amax and step:
 * 0 when amax is 0, else clamp(round half away(x / step), -qmax, qmax),
 * where a NaN quotient clamps to -qmax (fmax(NaN, -qmax)); as i32. */
static V grid_value(C *c, V x, V amax, V step, V qmax) {
  V y = bin(c, "arith.divf", x, step, "f64");
  V a = dabs(c, y);
  V f = em(E, "arith.sitofp %s : i64 to f64", em(E, "arith.fptosi %s : f64 to i64", a.s).s);
  V frac = bin(c, "arith.subf", a, f, "f64");
  V r = sel(c, fcmp(c, "oge", frac, f64c(c, 0.5), "f64"), dadd(c, f, f64c(c, 1.0)), f, "f64");
  r = sel(c, fcmp(c, "olt", y, f64c(c, 0.0), "f64"), em(E, "arith.negf %s : f64", r.s), r, "f64");
  V nq = em(E, "arith.negf %s : f64", qmax.s);
  r = sel(c, fcmp(c, "uno", y, y, "f64"), nq, bin(c, "arith.minimumf", bin(c, "arith.maximumf", r, nq, "f64"), qmax, "f64"), "f64");
  r = sel(c, fcmp(c, "oeq", amax, f64c(c, 0.0), "f64"), f64c(c, 0.0), r, "f64");
  return em(E, "arith.fptosi %s : f64 to i32", r.s);
}

/* Column col (i32) of DSA's projection of the row at element offset x0:
 * sum over d of x[d] * proj[d][col], in order, each product and sum
 * rounded; proj[d][col] = +-1/sqrt(predict_dim) by the low bit of the
 * (d * predict_dim + col)-th SplitMix64 draw from the seed. */
static V project(C *c, V src, V x0, V col) {
  int64_t pd = c->s->predict_dim;
  double mag = 1.0 / sqrt((double)pd);
  Loop l;
  V acc0 = f64c(c, 0.0), args[1], res[1];
  const char *ty[1] = {"f64"};
  V d = loop_open(c, &l, c32(c, 0), c32(c, (int)c->D), c32(c, 1), 1, &acc0, ty, args);
  V n = ext64(c, add32(c, bin(c, "arith.muli", d, c32(c, (int)pd), "i32"), col));
  V state = add64(c, c64(c, (int64_t)c->s->predict_seed), mul64(c, n, c64(c, (int64_t)UINT64_C(0x9E3779B97F4A7C15))));
  V bit = bin(c, "arith.andi", mask_splitmix(E, state), c64(c, 1), "i64");
  V p = sel(c, cmp(c, "ne", bit, c64(c, 0), "i64"), f64c(c, mag), f64c(c, -mag), "f64");
  V x = em(E, "arith.extf %s : f32 to f64", load_in(c, src, add64(c, x0, ext64(c, d))).s);
  V nx = dadd(c, args[0], dmul(c, x, p));
  loop_close(c, &l, &nx, res);
  return res[0];
}

/* The value of stage r's grid column col of the row: a projection column
 * or an input element (f64). */
static V stage_value(C *c, const Stage *st, V src, V x0, V col) {
  if (st->predict)
    return project(c, src, x0, col);
  return em(E, "arith.extf %s : f32 to f64", load_in(c, src, add64(c, x0, ext64(c, col))).s);
}

/* DSA's grid row by an unrolled projection, where head_dim x predict_dim
 * is small enough (PROJECT_UNROLLED terms): the signs are the compiler's
 * constants (SplitMix64 drawn here as the reference draws them), so each
 * term is one add or subtract of x[d] / sqrt(predict_dim) (x * -m is
 * exactly -(x * m)), in d's order per column as the reference sums; the
 * columns stay in registers for their maximum and their grid values. */
static void projected_grid(C *c, const Stage *st, V src, V x0, V qmax, V base, V isq, V hrow, int r) {
  int64_t pd = st->len;
  double mag = 1.0 / sqrt((double)pd);
  uint64_t state = c->s->predict_seed;
  V acc[256]; /* predict_dim <= head_dim <= 256 */
  for (int64_t col = 0; col < pd; col++)
    acc[col] = f64c(c, 0.0);
  for (int64_t d = 0; d < c->D; d++) {
    V x = em(E, "arith.extf %s : f32 to f64", load_in(c, src, add64(c, x0, c64(c, d))).s);
    V xm = dmul(c, x, f64c(c, mag));
    for (int64_t col = 0; col < pd; col++) {
      bool plus = (sa_splitmix64(&state) & 1) != 0; /* proj[d][col], drawn row-major */
      acc[col] = plus ? dadd(c, acc[col], xm) : dsub(c, acc[col], xm);
    }
  }
  V amax = f64c(c, 0.0);
  for (int64_t col = 0; col < pd; col++)
    amax = bin(c, "arith.maxnumf", amax, dabs(c, acc[col]), "f64");
  V step = bin(c, "arith.divf", amax, qmax, "f64");
  gstore(c, step, base, add64(c, sel(c, isq, ws_qstep(c, r), ws_kstep(c, r), "i64"), mul64(c, hrow, c64(c, 8))), "f64");
  V gbase = add64(c, sel(c, isq, ws_qgrid(c, r), ws_kgrid(c, r), "i64"), mul64(c, hrow, c64(c, st->lp)));
  for (int64_t col = 0; col < st->lp; col++) {
    V g = col < pd ? grid_value(c, acc[col], amax, step, qmax) : c32(c, 0);
    gstore(c, em(E, "arith.trunci %s : i32 to i8", g.s), base, add64(c, gbase, c64(c, col)), "i8");
  }
}

static void emit_grids(C *c) {
  V tid, bx, by;
  func_open(c, "_grids", &tid, &bx, &by);
  V row = add32(c, bin(c, "arith.muli", bx, c32(c, GRID_ROWS), "i32"), tid);
  int64_t nh = c->H + c->KVH;
  V b = bin(c, "arith.divui", by, c32(c, (int)nh), "i32");
  V which = bin(c, "arith.remui", by, c32(c, (int)nh), "i32");
  em_if(E, cmp(c, "slt", row, c->S32, "i32"));
  V isq = cmp(c, "slt", which, c32(c, (int)c->H), "i32");
  V head = sel(c, isq, which, bin(c, "arith.subi", which, c32(c, (int)c->H), "i32"), "i32");
  V src = em(E, "llvm.select %s, %%q, %%k : i1, !llvm.ptr<1>", isq.s);
  V x0 = row_offset(c, b, head, sel(c, isq, c32(c, (int)c->H), c32(c, (int)c->KVH), "i32"), row);
  V base = batch_base(c, b);
  /* this row's index among Q's rows (h * S + i), or among K's */
  V hrow = add64(c, mul64(c, ext64(c, head), c->S64), ext64(c, row));
  for (int r = 0; r < c->R; r++) {
    const Stage *st = &c->st[r];
    V qmax = sel(c, isq, f64c(c, ldexp(1.0, st->qbits - 1) - 1.0), f64c(c, ldexp(1.0, st->kbits - 1) - 1.0), "f64");
    if (st->predict && c->D * st->len <= PROJECT_UNROLLED) {
      projected_grid(c, st, src, x0, qmax, base, isq, hrow, r);
      continue;
    }
    Loop l;
    V z = f64c(c, 0.0), args[1], amax[1];
    const char *ty[1] = {"f64"};
    V col = loop_open(c, &l, c32(c, 0), c32(c, st->len), c32(c, 1), 1, &z, ty, args);
    V x = stage_value(c, st, src, x0, col);
    /* fmax(amax, |x|): a NaN x leaves amax as it was */
    V nx = bin(c, "arith.maxnumf", args[0], dabs(c, x), "f64");
    loop_close(c, &l, &nx, amax);
    V step = bin(c, "arith.divf", amax[0], qmax, "f64");
    V stepoff = add64(c, sel(c, isq, ws_qstep(c, r), ws_kstep(c, r), "i64"), mul64(c, hrow, c64(c, 8)));
    gstore(c, step, base, stepoff, "f64");
    V gbase = add64(c, sel(c, isq, ws_qgrid(c, r), ws_kgrid(c, r), "i64"), mul64(c, hrow, c64(c, st->lp)));
    col = em_for(E, em_index(E, 0), em_index(E, st->lp), em_index(E, 1));
    V c32v = em(E, "arith.index_cast %s : index to i32", col.s);
    V inside = cmp(c, "slt", c32v, c32(c, st->len), "i32");
    V gv = if_open(c, inside, 1, "i32");
    V g = grid_value(c, stage_value(c, st, src, x0, c32v), amax[0], step, qmax);
    if_yield(c, 1, &g, "i32");
    if_else(c);
    V zero = c32(c, 0);
    if_yield(c, 1, &zero, "i32");
    if_close(c);
    gstore(c, em(E, "arith.trunci %s : i32 to i8", gv.s), base, add64(c, gbase, ext64(c, c32v)), "i8");
    em_end(E);
  }
  em_end(E);
  em_do(E, "gpu.return");
  em_raw(E, "}\n");
}

/* ---- name_select ---- */

/* The order-preserving key of an f64 score: larger scores have larger
 * keys, -0 and +0 the same, and every NaN key 0, below -inf's (the
 * reference ranks NaN after every number). */
static V order_key(C *c, V a) {
  V z = sel(c, fcmp(c, "oeq", a, f64c(c, 0.0), "f64"), f64c(c, 0.0), a, "f64");
  V u = em(E, "arith.bitcast %s : f64 to i64", z.s);
  V neg = cmp(c, "slt", u, c64(c, 0), "i64");
  V k = sel(c, neg, bin(c, "arith.xori", u, c64(c, -1), "i64"), bin(c, "arith.ori", u, c64(c, INT64_MIN), "i64"), "i64");
  return sel(c, fcmp(c, "uno", a, a, "f64"), c64(c, 0), k, "i64");
}

/* What a stage's scores need of its query row. value, when set, scores
 * instead of the stage's grids (SpAtten's exact scores, importance). */
typedef struct Scorer Scorer;
struct Scorer {
  V (*value)(C *c, const Scorer *sc, V j);
  int r;
  V coef;        /* scale * step_q (f64) */
  V qw[64];      /* the Q grid row as words of 4 bytes */
  V kgrid, kstep; /* byte offsets of key 0 of this head's K grid rows and steps */
  V base;        /* the batch's workspace block */
  /* SpAtten (prune_score): the query row in shared memory; key 0's K row
   * (element offset) and the key stride, or with progressive quantization
   * kstep and kgrid above at the grids in use; the row's score stash in
   * shared memory (stash: STASH_WRITE or STASH_READ where stash_ok) */
  V qs, kbase, kstride;
  bool exact; /* K as stored even with progressive quantization (N:M's ranking) */
  V minf; /* value pruning's rank (prune_rank): the row maximum is +inf */
  int stash;
  V stash_at, stash_ok;
  V vec;         /* importance: the vector's pointer and first element */
  V vec0;
};

static V grid_score(C *c, const Scorer *sc, V j) {
  const Stage *st = &c->st[sc->r];
  V j64 = ext64(c, j);
  V kg = add64(c, sc->kgrid, mul64(c, j64, c64(c, st->lp)));
  V dot = c32(c, 0), kv4 = {""};
  for (int w = 0; w < st->lp / 4; w++) {
    /* grid rows are 16-byte multiples at 16-byte aligned offsets of a
     * 256-byte aligned workspace: 16 bytes a load */
    if (w % 4 == 0)
      kv4 = em(E, "llvm.load %s {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xi32>",
               gbyte(c, sc->base, add64(c, kg, c64(c, 4 * w))).s);
    V kw = em(E, "llvm.extractelement %s[%s : i32] : vector<4xi32>", kv4.s, c32(c, w % 4).s);
    dot = em(E, "llvm.inline_asm \"dp4a.s32.s32 $0, $1, $2, $3;\", \"=r,r,r,r\" %s, %s, %s : (i32, i32, i32) -> i32",
             sc->qw[w].s, kw.s, dot.s);
  }
  V ks = gload(c, sc->base, add64(c, sc->kstep, mul64(c, j64, c64(c, 8))), "f64");
  return dmul(c, dmul(c, sc->coef, ks), em(E, "arith.sitofp %s : i32 to f64", dot.s));
}

static V score_value(C *c, const Scorer *sc, V j) { return sc->value ? sc->value(c, sc, j) : grid_score(c, sc, j); }

/* Key j's (i32) score (f64) under stage sc->r, and its order key. */
static V score_key(C *c, const Scorer *sc, V j) { return order_key(c, score_value(c, sc, j)); }

/* One chunk of 32 candidates: lane's candidate j and whether it is one.
 * Stage 0 walks keys [lo, hi) with the mask; later stages the list. */
typedef struct Cands Cands;
struct Cands {
  bool from_list;
  bool unmasked; /* the spec's mask does not apply (importance vectors) */
  V (*also)(C *c, const Cands *cd, V j); /* a further condition on key j (i1), or NULL */
  V lo, hi;  /* i32: keys (stage 0) or list positions */
  V i64row;  /* the query row, i64 */
  V list;    /* byte offset of the row's list */
  V base;
  V vec, vec0; /* for also: a vector it reads, and the element of key 0 */
  V flags;     /* for also: the batch's block of the pruning kernels' workspace */
  const Scorer *nm; /* for also: N:M's exact scores (nm_keep) */
};

static V cand_at(C *c, const Cands *cd, V chunk, V *valid) {
  V at = add32(c, chunk, c->lane);
  V ok = cmp(c, "slt", at, cd->hi, "i32");
  c->pos = at, c->pos_ok = ok, c->pos_lo = cd->lo;
  if (cd->from_list) {
    V safe = sel(c, ok, at, chunk, "i32");
    V j = gload(c, cd->base, add64(c, cd->list, mul64(c, ext64(c, safe), c64(c, 4))), "i32");
    if (cd->also)
      ok = and1(c, ok, cd->also(c, cd, j));
    *valid = ok;
    return j;
  }
  if (c->p->mask && !cd->unmasked)
    ok = and1(c, ok, mask_pred(E, c->p->mask, c->S64, cd->i64row, ext64(c, at)));
  V j = sel(c, cmp(c, "slt", at, cd->hi, "i32"), at, cd->lo, "i32");
  if (cd->also)
    ok = and1(c, ok, cd->also(c, cd, j));
  *valid = ok;
  return j;
}

/* The lanes below this one, as a ballot mask. */
static V lanes_below(C *c) {
  return bin(c, "arith.subi", bin(c, "arith.shli", c32(c, 1), c->lane, "i32"), c32(c, 1), "i32");
}

/* The candidates' count (i32, warp-uniform). */
static V count_cands(C *c, const Cands *cd) {
  if (!cd->also && (cd->from_list || !c->p->mask || cd->unmasked)) /* every position in [lo, hi) is one */
    return bin(c, "arith.subi", cd->hi, cd->lo, "i32");
  Loop l;
  V z = c32(c, 0), args[1], res[1];
  const char *ty[1] = {"i32"};
  V chunk = loop_open(c, &l, cd->lo, cd->hi, c32(c, 32), 1, &z, ty, args);
  V valid;
  cand_at(c, cd, chunk, &valid);
  V n = add32(c, args[0], popc(c, ballot(c, valid)));
  loop_close(c, &l, &n, res);
  return res[0];
}

/* k of the stage's rule for cnt candidates (i32), at most cnt. */
static V rule_k(C *c, SaKeep keep, V cnt) {
  V k;
  if (keep.kind == KEEP_TOP_COUNT)
    k = c32(c, (int64_t)keep.value > INT32_MAX ? INT32_MAX : (int64_t)keep.value);
  else if (keep.kind == KEEP_TOP_RATIO)
    k = em(E, "arith.trunci %s : i64 to i32",
           ceil64(c, dmul(c, f64c(c, keep.value), em(E, "arith.sitofp %s : i32 to f64", cnt.s))).s);
  else
    k = cnt;
  return bin(c, "arith.minsi", k, cnt, "i32");
}

/* A u64 from lane `src` (i32). */
static V shfl_u64(C *c, V x, V src) {
  V lo = em(E, "arith.trunci %s : i64 to i32", x.s);
  V hi = em(E, "arith.trunci %s : i64 to i32", bin(c, "arith.shrui", x, c64(c, 32), "i64").s);
  lo = em(E, "arith.extui %s : i32 to i64", shfl(c, "idx", lo, src, "i32").s);
  hi = em(E, "arith.extui %s : i32 to i64", shfl(c, "idx", hi, src, "i32").s);
  return bin(c, "arith.ori", lo, bin(c, "arith.shli", hi, c64(c, 32), "i64"), "i64");
}

/* The lowest lane of a non-zero ballot. */
static V lowest_lane(C *c, V ball) {
  V low = bin(c, "arith.andi", ball, bin(c, "arith.subi", c32(c, 0), ball, "i32"), "i32");
  return popc(c, bin(c, "arith.subi", low, c32(c, 1), "i32"));
}

/* One pass of radix_select: the keys matching prefix (under pmask) counted
 * into the warp's `bins` bins (shared, by the digit of log2(bins) bits at
 * `shift`); the digit where the count from above reaches want, how many
 * matching keys lie above it (*gt) and how many in it (*in). */
static V radix_pass(C *c, const Scorer *sc, const Cands *cd, V hist, int bins, V prefix, V pmask, V shift, V want, V *gt,
                    V *in) {
  int per = bins / 32; /* bins a lane scans */
  for (int t = 0; t < per; t++)
    em_do(E, "llvm.store %s, %s : i32, !llvm.ptr<3>", c32(c, 0).s,
          sbyte(c, add32(c, hist, bin(c, "arith.muli", add32(c, bin(c, "arith.muli", c->lane, c32(c, per), "i32"), c32(c, t)),
                                      c32(c, 4), "i32"))).s);
  syncwarp(c);
  {
    Loop cl;
    V chunk = loop_open(c, &cl, cd->lo, cd->hi, c32(c, 32), 0, NULL, NULL, NULL);
    V valid;
    V j = cand_at(c, cd, chunk, &valid);
    V key = score_key(c, sc, j);
    V match = cmp(c, "eq", bin(c, "arith.andi", key, pmask, "i64"), prefix, "i64");
    em_if(E, and1(c, valid, match));
    V digit = em(E, "arith.trunci %s : i64 to i32",
                 bin(c, "arith.andi", bin(c, "arith.shrui", key, shift, "i64"), c64(c, bins - 1), "i64").s);
    em(E, "llvm.atomicrmw add %s, %s monotonic : !llvm.ptr<3>, i32",
       sbyte(c, add32(c, hist, bin(c, "arith.muli", digit, c32(c, 4), "i32"))).s, c32(c, 1).s);
    em_end(E);
    loop_close(c, &cl, NULL, NULL);
  }
  syncwarp(c);
  /* lane l holds digits bins - 1 - per l down to bins - per (l + 1):
   * their counts (unrolled for 8 a lane; for more, loops that read the
   * bins again, so that they are not all held in registers) */
  V s = c32(c, 0), h[8], dig[8];
  if (per <= 8) {
    for (int t = 0; t < per; t++) {
      dig[t] = bin(c, "arith.subi", c32(c, bins - 1 - t), bin(c, "arith.muli", c->lane, c32(c, per), "i32"), "i32");
      h[t] = em(E, "llvm.load %s : !llvm.ptr<3> -> i32", sbyte(c, add32(c, hist, bin(c, "arith.muli", dig[t], c32(c, 4), "i32"))).s);
      s = add32(c, s, h[t]);
    }
  } else {
    Loop sl;
    V sa[1], sr[1];
    const char *sty[1] = {"i32"};
    V t = loop_open(c, &sl, c32(c, 0), c32(c, per), c32(c, 1), 1, &s, sty, sa);
    V d = bin(c, "arith.subi", c32(c, bins - 1), add32(c, bin(c, "arith.muli", c->lane, c32(c, per), "i32"), t), "i32");
    V nx = add32(c, sa[0], em(E, "llvm.load %s : !llvm.ptr<3> -> i32", sbyte(c, add32(c, hist, bin(c, "arith.muli", d, c32(c, 4), "i32"))).s));
    loop_close(c, &sl, &nx, sr);
    s = sr[0];
  }
  V incl = s;
  for (int d = 1; d < 32; d *= 2) {
    V up = shfl(c, "up", incl, c32(c, d), "i32");
    incl = add32(c, incl, sel(c, cmp(c, "sge", c->lane, c32(c, d), "i32"), up, c32(c, 0), "i32"));
  }
  /* the lowest lane whose running count reaches want */
  V src = lowest_lane(c, ballot(c, cmp(c, "sge", incl, want, "i32")));
  /* this lane's first digit (from the top) where the running count reaches
   * want: the digit, the count above it and its own count */
  V st[5] = {bin(c, "arith.subi", incl, s, "i32"), em_int(E, 0, "i1"), c32(c, 0), c32(c, 0), c32(c, 0)};
  Loop fl;
  V fa[5], fr[5];
  const char *fty[5] = {"i32", "i1", "i32", "i32", "i32"};
  V t = c32(c, 0);
  if (per <= 8)
    memcpy(fa, st, sizeof fa);
  else
    t = loop_open(c, &fl, c32(c, 0), c32(c, per), c32(c, 1), 5, st, fty, fa);
  for (int u = 0; u < (per <= 8 ? per : 1); u++) {
    V d = dig[u], hx = h[u];
    if (per > 8) {
      d = bin(c, "arith.subi", c32(c, bins - 1), add32(c, bin(c, "arith.muli", c->lane, c32(c, per), "i32"), t), "i32");
      hx = em(E, "llvm.load %s : !llvm.ptr<3> -> i32", sbyte(c, add32(c, hist, bin(c, "arith.muli", d, c32(c, 4), "i32"))).s);
    }
    V nrun = add32(c, fa[0], hx);
    V hit = and1(c, bin(c, "arith.xori", fa[1], em_int(E, 1, "i1"), "i1"), cmp(c, "sge", nrun, want, "i32"));
    V nx[5] = {nrun, or1(c, fa[1], hit), sel(c, hit, d, fa[2], "i32"), sel(c, hit, fa[0], fa[3], "i32"),
               sel(c, hit, hx, fa[4], "i32")};
    memcpy(fa, nx, sizeof fa);
  }
  if (per <= 8)
    memcpy(fr, fa, sizeof fr);
  else
    loop_close(c, &fl, fa, fr);
  V dsel = fr[2], above = fr[3], inbin = fr[4];
  *gt = shfl(c, "idx", above, src, "i32");
  *in = shfl(c, "idx", inbin, src, "i32");
  dsel = shfl(c, "idx", dsel, src, "i32");
  syncwarp(c);
  return dsel;
}

/* One radix step of radix_select, where more than 32 keys are left: the
 * digit of `bits` bits at `shift` (i64) by radix_pass, and the state
 * (prefix, pmask, want, left) it leaves; else the state as it was. */
static void radix_step(C *c, const Scorer *sc, const Cands *cd, V hist, int bits, V shift, V st[4]) {
  V r = if_open_list(c, cmp(c, "sgt", st[3], c32(c, 32), "i32"), 4, "i64, i64, i32, i32");
  {
    V gt, in;
    V dsel = radix_pass(c, sc, cd, hist, 1 << bits, st[0], st[1], shift, st[2], &gt, &in);
    V next[4] = {bin(c, "arith.ori", st[0], bin(c, "arith.shli", ext64(c, dsel), shift, "i64"), "i64"),
                 bin(c, "arith.ori", st[1], bin(c, "arith.shli", c64(c, (1 << bits) - 1), shift, "i64"), "i64"),
                 bin(c, "arith.subi", st[2], gt, "i32"), in};
    em_do(E, "scf.yield %s, %s, %s, %s : i64, i64, i32, i32", next[0].s, next[1].s, next[2].s, next[3].s);
  }
  if_else(c);
  em_do(E, "scf.yield %s, %s, %s, %s : i64, i64, i32, i32", st[0].s, st[1].s, st[2].s, st[3].s);
  if_close(c);
  for (int i = 0; i < 4; i++)
    st[i] = em_res(r, i);
}

/* radix_narrow: the state (prefix, pmask, want, left) of the radix passes
 * for the k-th largest key among the cnt candidates. radix_select: that
 * key (as T), and how many keys equal to T the top k holds (need).
 * Radix passes from the top (radix_pass)
 * narrow the keys to those sharing T's leading digits, until at most 32
 * remain or all 64 bits are known; 32 or fewer are then gathered into
 * shared memory, a key a lane, and ranked against each other. The first
 * pass takes `first_bits` bits (hist holds 2^first_bits bins), the later
 * ones 8 (the last one overlapping bits already known, which all the
 * matching keys share). With 4-bit grids at 10% kept, two or three passes
 * leave a few keys, where all of them would be needed otherwise; a first
 * digit of 11 bits (the sign and the exponent) saves one of three at seq
 * 4096 to 16384 (bench/results/select-counts.txt). The first digit must be
 * 8 to 14 bits (7 passes of 8 follow). */
static void radix_narrow(C *c, const Scorer *sc, const Cands *cd, V cnt, V k, V hist, int first_bits, V out[4]) {
  V st[4] = {c64(c, 0), c64(c, 0), k, cnt}, base = c32(c, 56);
  if (first_bits > 8) {
    /* the wide first digit where the row has more than WIDE_FIRST_MIN
     * candidates; shorter rows take 8 bits, as the wide digit's bins cost
     * more to clear and scan than the passes it saves there */
    V wide = cmp(c, "sgt", cnt, c32(c, WIDE_FIRST_MIN), "i32");
    V r = if_open_list(c, wide, 4, "i64, i64, i32, i32");
    V w[4] = {st[0], st[1], st[2], st[3]};
    radix_step(c, sc, cd, hist, first_bits, c64(c, 64 - first_bits), w);
    em_do(E, "scf.yield %s, %s, %s, %s : i64, i64, i32, i32", w[0].s, w[1].s, w[2].s, w[3].s);
    if_else(c);
    radix_step(c, sc, cd, hist, 8, c64(c, 56), st);
    em_do(E, "scf.yield %s, %s, %s, %s : i64, i64, i32, i32", st[0].s, st[1].s, st[2].s, st[3].s);
    if_close(c);
    for (int i = 0; i < 4; i++)
      st[i] = em_res(r, i);
    base = sel(c, wide, c32(c, 64 - first_bits), c32(c, 56), "i32");
  } else {
    radix_step(c, sc, cd, hist, 8, c64(c, 56), st);
  }
  /* then 8 bits a pass down to bit 0: 7 passes after a first digit of 8
   * to 14 bits */
  Loop pl;
  V a[4];
  const char *ty[4] = {"i64", "i64", "i32", "i32"};
  V pass = loop_open(c, &pl, c32(c, 1), c32(c, 8), c32(c, 1), 4, st, ty, a);
  V shift = ext64(c, bin(c, "arith.maxsi", bin(c, "arith.subi", base, bin(c, "arith.muli", pass, c32(c, 8), "i32"), "i32"),
                         c32(c, 0), "i32"));
  radix_step(c, sc, cd, hist, 8, shift, a);
  loop_close(c, &pl, a, out);
}

static void radix_select(C *c, const Scorer *sc, const Cands *cd, V cnt, V k, V hist, V *T, V *need) {
  V res[4];
  radix_narrow(c, sc, cd, cnt, k, hist, 8, res);
  V prefix = res[0], pmask = res[1], want = res[2], left = res[3];
  /* at most 32 keys left: gather them (shared, the warp's bins reused as
   * 8-byte slots) and rank each against the others */
  V out = if_open_list(c, cmp(c, "sle", left, c32(c, 32), "i32"), 2, "i64, i64");
  {
    Loop gl;
    V z = c32(c, 0), ga[1], gr[1];
    const char *gty[1] = {"i32"};
    V chunk = loop_open(c, &gl, cd->lo, cd->hi, c32(c, 32), 1, &z, gty, ga);
    V valid;
    V j = cand_at(c, cd, chunk, &valid);
    V key = score_key(c, sc, j);
    V match = and1(c, valid, cmp(c, "eq", bin(c, "arith.andi", key, pmask, "i64"), prefix, "i64"));
    V bm = ballot(c, match);
    V pos = add32(c, ga[0], popc(c, bin(c, "arith.andi", bm, lanes_below(c), "i32")));
    em_if(E, match);
    em_do(E, "llvm.store %s, %s : i64, !llvm.ptr<3>", key.s, sbyte(c, add32(c, hist, bin(c, "arith.muli", pos, c32(c, 8), "i32"))).s);
    em_end(E);
    V nn = add32(c, ga[0], popc(c, bm));
    loop_close(c, &gl, &nn, gr);
    syncwarp(c);
    V mine_in = cmp(c, "slt", c->lane, left, "i32");
    V mine = em(E, "llvm.load %s : !llvm.ptr<3> -> i64", sbyte(c, add32(c, hist, bin(c, "arith.muli", c->lane, c32(c, 8), "i32"))).s);
    /* this lane's key: how many of the others are larger, how many equal */
    Loop rl;
    V rz[2] = {c32(c, 0), c32(c, 0)}, ra[2], rr[2];
    const char *rty[2] = {"i32", "i32"};
    V m = loop_open(c, &rl, c32(c, 0), left, c32(c, 1), 2, rz, rty, ra);
    V other = shfl_u64(c, mine, m);
    V rn[2] = {add32(c, ra[0], em(E, "arith.extui %s : i1 to i32", cmp(c, "ugt", other, mine, "i64").s)),
               add32(c, ra[1], em(E, "arith.extui %s : i1 to i32", cmp(c, "eq", other, mine, "i64").s))};
    loop_close(c, &rl, rn, rr);
    V is_t = and1(c, mine_in, and1(c, cmp(c, "slt", rr[0], want, "i32"), cmp(c, "sge", add32(c, rr[0], rr[1]), want, "i32")));
    V src = lowest_lane(c, ballot(c, is_t));
    syncwarp(c);
    V x[2] = {shfl_u64(c, mine, src), ext64(c, bin(c, "arith.subi", want, shfl(c, "idx", rr[0], src, "i32"), "i32"))};
    em_do(E, "scf.yield %s, %s : i64, i64", x[0].s, x[1].s);
  }
  if_else(c);
  em_do(E, "scf.yield %s, %s : i64, i64", prefix.s, ext64(c, want).s);
  if_close(c);
  *T = em_res(out, 0);
  *need = em(E, "arith.trunci %s : i64 to i32", em_res(out, 1).s);
}

/* An f64 from lane `src` (i32). */
static V shfl_f64(C *c, V x, V src) {
  V v = em(E, "llvm.bitcast %s : f64 to vector<2xi32>", x.s);
  for (int h = 0; h < 2; h++) {
    V part = em(E, "llvm.extractelement %s[%s : i32] : vector<2xi32>", v.s, c32(c, h).s);
    v = em(E, "llvm.insertelement %s, %s[%s : i32] : vector<2xi32>", shfl(c, "idx", part, src, "i32").s, v.s, c32(c, h).s);
  }
  return em(E, "llvm.bitcast %s : vector<2xi32> to f64", v.s);
}

/* Energon's threshold (docs/semantics.md 4.1, keep=mean+alpha) over the
 * cnt candidates: their sum in key order, one add at a time as the
 * reference forms it (each chunk's 32 scores pass through every lane in
 * lane order), their maximum and minimum (fmax and fmin, which pass NaN
 * over); then theta = alpha max + (1 - alpha) mean (alpha >= 0) or -alpha
 * min + (1 + alpha) mean, at most the maximum. */
static V mean_theta(C *c, const Scorer *sc, const Cands *cd, V cnt, double alpha) {
  Loop l;
  V init[3] = {f64c(c, 0.0), f64c(c, -INFINITY), f64c(c, INFINITY)}, a[3], res[3];
  const char *ty[3] = {"f64", "f64", "f64"};
  V chunk = loop_open(c, &l, cd->lo, cd->hi, c32(c, 32), 3, init, ty, a);
  V valid;
  V j = cand_at(c, cd, chunk, &valid);
  V x = score_value(c, sc, j);
  V vb = ballot(c, valid);
  Loop el;
  V ea[3], er[3];
  V e = loop_open(c, &el, c32(c, 0), bin(c, "arith.minsi", bin(c, "arith.subi", cd->hi, chunk, "i32"), c32(c, 32), "i32"),
                  c32(c, 1), 3, a, ty, ea);
  V xe = shfl_f64(c, x, e);
  V ok = cmp(c, "ne", bin(c, "arith.andi", bin(c, "arith.shrui", vb, e, "i32"), c32(c, 1), "i32"), c32(c, 0), "i32");
  V nx[3] = {sel(c, ok, dadd(c, ea[0], xe), ea[0], "f64"), sel(c, ok, bin(c, "arith.maxnumf", ea[1], xe, "f64"), ea[1], "f64"),
             sel(c, ok, bin(c, "arith.minnumf", ea[2], xe, "f64"), ea[2], "f64")};
  loop_close(c, &el, nx, er);
  loop_close(c, &l, er, res);
  V mean = bin(c, "arith.divf", res[0], em(E, "arith.sitofp %s : i32 to f64", cnt.s), "f64");
  V theta = alpha >= 0 ? dadd(c, dmul(c, f64c(c, alpha), res[1]), dmul(c, f64c(c, 1 - alpha), mean))
                       : dadd(c, dmul(c, f64c(c, -alpha), res[2]), dmul(c, f64c(c, 1 + alpha), mean));
  return bin(c, "arith.minnumf", theta, res[1], "f64");
}

/* Opens a walk over the candidates, 32 a step, carrying two i32 counts
 * from 0 (a); returns the lane's candidate and whether it is one. */
static V walk_open2(C *c, Loop *l, const Cands *cd, V a[2], V *valid) {
  V init[2] = {c32(c, 0), c32(c, 0)};
  const char *ty[2] = {"i32", "i32"};
  V chunk = loop_open(c, l, cd->lo, cd->hi, c32(c, 32), 2, init, ty, a);
  return cand_at(c, cd, chunk, valid);
}

/* Appends key j of the lanes where take to the row's list after `at`
 * entries, in lane order; *pos (when given) gets each lane's position.
 * Returns the new length. */
static V list_append(C *c, const Cands *cd, V j, V take, V at, V *pos) {
  V bt = ballot(c, take);
  V p = add32(c, at, popc(c, bin(c, "arith.andi", bt, lanes_below(c), "i32")));
  em_if(E, take);
  gstore(c, j, cd->base, add64(c, cd->list, mul64(c, ext64(c, p), c64(c, 4))), "i32");
  em_end(E);
  if (pos)
    *pos = p;
  return add32(c, at, popc(c, bt));
}

/* Writes the kept candidates (every one when all, else keys above T and
 * the first `need` equal to T; with theta, the mean rule's scores at
 * least theta) to the row's list in order; returns their count. In place for a stage reading the list: a chunk is read before
 * any of it is written, and writes never pass the chunk being read. */
static V write_list(C *c, const Scorer *sc, const Cands *cd, V all, V T, V need, V theta) {
  Loop l;
  V a[2], res[2], valid;
  V j = walk_open2(c, &l, cd, a, &valid);
  V below = lanes_below(c), take, beq;
  if (theta.s[0]) { /* the mean rule: scores at least theta (never a NaN) */
    take = and1(c, valid, fcmp(c, "oge", score_value(c, sc, j), theta, "f64"));
    beq = c32(c, 0);
  } else {
    V key = score_key(c, sc, j);
    V eq = and1(c, valid, cmp(c, "eq", key, T, "i64"));
    beq = ballot(c, eq);
    V rank = add32(c, a[1], popc(c, bin(c, "arith.andi", beq, below, "i32")));
    take = or1(c, cmp(c, "ugt", key, T, "i64"), and1(c, eq, cmp(c, "slt", rank, need, "i32")));
    take = and1(c, valid, or1(c, all, take));
  }
  V next[2] = {list_append(c, cd, j, take, a[0], NULL), add32(c, a[1], popc(c, beq))};
  loop_close(c, &l, next, res);
  return res[0];
}

/* The stage's top k after radix_narrow left at most 32 keys in the band
 * (the keys matching prefix under pmask), in one pass instead of a pass
 * gathering the band and another writing the list: every candidate above
 * the band or in it goes to the row's list in key order (at most k - want
 * + 32 entries: list_cap's slack), the band's keys and list positions to
 * the warp's slots in shared memory (hist, 16 bytes each); then each band
 * key is ranked against the others (ties to the lower key, which is the
 * earlier slot), the want best stay, the losers are marked -1 and packed
 * out of the list. Returns the list's length. In place for a stage
 * reading the list, as write_list. */
static V write_band(C *c, const Scorer *sc, const Cands *cd, V prefix, V pmask, V want, V hist) {
  Loop l;
  V a[2], res[2], valid;
  V j = walk_open2(c, &l, cd, a, &valid);
  V below = lanes_below(c);
  V key = score_key(c, sc, j);
  V top = bin(c, "arith.andi", key, pmask, "i64");
  V inb = and1(c, valid, cmp(c, "eq", top, prefix, "i64"));
  V take = and1(c, valid, cmp(c, "uge", top, prefix, "i64"));
  V pos, bb = ballot(c, inb);
  V n0 = list_append(c, cd, j, take, a[0], &pos);
  em_if(E, inb);
  V slot = add32(c, hist, bin(c, "arith.muli", add32(c, a[1], popc(c, bin(c, "arith.andi", bb, below, "i32"))), c32(c, 16), "i32"));
  em_do(E, "llvm.store %s, %s : i64, !llvm.ptr<3>", key.s, sbyte(c, slot).s);
  em_do(E, "llvm.store %s, %s : i32, !llvm.ptr<3>", pos.s, sbyte(c, add32(c, slot, c32(c, 8))).s);
  em_end(E);
  V next[2] = {n0, add32(c, a[1], popc(c, bb))};
  loop_close(c, &l, next, res);
  V n = res[0], nb = res[1];
  syncwarp(c);
  /* lane b holds band key b: how many of the band outrank it */
  V mine_in = cmp(c, "slt", c->lane, nb, "i32");
  V mslot = add32(c, hist, bin(c, "arith.muli", c->lane, c32(c, 16), "i32"));
  V mine = em(E, "llvm.load %s : !llvm.ptr<3> -> i64", sbyte(c, mslot).s);
  V mpos = em(E, "llvm.load %s : !llvm.ptr<3> -> i32", sbyte(c, add32(c, mslot, c32(c, 8))).s);
  Loop rl;
  V rz = c32(c, 0), ra[1], rr[1];
  const char *rty[1] = {"i32"};
  V m = loop_open(c, &rl, c32(c, 0), nb, c32(c, 1), 1, &rz, rty, ra);
  V other = shfl_u64(c, mine, m);
  V over = or1(c, cmp(c, "ugt", other, mine, "i64"), and1(c, cmp(c, "eq", other, mine, "i64"), cmp(c, "slt", m, c->lane, "i32")));
  V rn = add32(c, ra[0], em(E, "arith.extui %s : i1 to i32", over.s));
  loop_close(c, &rl, &rn, rr);
  V lose = and1(c, mine_in, cmp(c, "sge", rr[0], want, "i32"));
  em_if(E, lose);
  gstore(c, c32(c, -1), cd->base, add64(c, cd->list, mul64(c, ext64(c, mpos), c64(c, 4))), "i32");
  em_end(E);
  V nlose = popc(c, ballot(c, lose));
  syncwarp(c);
  /* pack the losers out: from the first of them on (the band's slots are
   * in list order), each kept entry moves down over the losers before it */
  V first = shfl(c, "idx", mpos, lowest_lane(c, ballot(c, lose)), "i32");
  V from = sel(c, cmp(c, "sgt", nlose, c32(c, 0), "i32"), first, n, "i32");
  Loop kl;
  V kz = from, ka[1], kr[1];
  const char *kty[1] = {"i32"};
  V kc = loop_open(c, &kl, from, n, c32(c, 32), 1, &kz, kty, ka);
  V at = add32(c, kc, c->lane);
  V in = cmp(c, "slt", at, n, "i32");
  V e = gload(c, cd->base, add64(c, cd->list, mul64(c, ext64(c, sel(c, in, at, kc, "i32")), c64(c, 4))), "i32");
  V keep = and1(c, in, cmp(c, "ne", e, c32(c, -1), "i32"));
  syncwarp(c);
  V kn = list_append(c, cd, e, keep, ka[0], NULL);
  loop_close(c, &kl, &kn, kr);
  return bin(c, "arith.subi", n, nlose, "i32");
}

/* Keeping the top k of cnt candidates: *all when k >= cnt, else the k-th
 * largest key *T and how many keys equal to it the top k holds (*need),
 * by radix_select, which runs only when the rule drops someone. */
static void top_k(C *c, const Scorer *sc, const Cands *cd, V cnt, V k, V hist, V *all, V *T, V *need) {
  *all = cmp(c, "sge", k, cnt, "i32");
  V tn = if_open(c, *all, 2, "i64");
  V x[2] = {c64(c, 0), c64(c, 0)};
  if_yield(c, 2, x, "i64");
  if_else(c);
  V t, nd;
  radix_select(c, sc, cd, cnt, k, hist, &t, &nd);
  x[0] = t, x[1] = ext64(c, nd);
  if_yield(c, 2, x, "i64");
  if_close(c);
  *T = em_res(tn, 0), *need = em(E, "arith.trunci %s : i64 to i32", em_res(tn, 1).s);
}

static V tok_kept(C *c, const Cands *cd, V j); /* SpAtten's token flags, further down */

/* Whether query row i of head h survives token and head pruning (the
 * flags in the batch's pruning block pbase). */
static V row_live(C *c, V pbase, V h, V i) {
  V hk = gload(c, pbase, add64(c, pw_hkept(c), ext64(c, h)), "i8");
  V tk = gload(c, pbase, add64(c, pw_tkept(c), ext64(c, i)), "i8");
  return and1(c, cmp(c, "ne", hk, em_int(E, 0, "i8"), "i8"), cmp(c, "ne", tk, em_int(E, 0, "i8"), "i8"));
}

static void emit_select(C *c) {
  V tid, bx, by;
  func_open(c, "_select", &tid, &bx, &by);
  V i, b, h, kvh;
  warp_row(c, tid, bx, by, &i, &b, &h, &kvh);
  V hist = bin(c, "arith.muli", c->warp, c32(c, (1 << SELECT_FIRST_BITS) * 4), "i32");
  em_if(E, cmp(c, "slt", i, c->S32, "i32"));
  V base = batch_base(c, b);
  V i64 = ext64(c, i);
  V qrow = add64(c, mul64(c, ext64(c, h), c->S64), ext64(c, i));
  V krow0 = mul64(c, ext64(c, kvh), c->S64);
  V list = add64(c, ws_list(c), mul64(c, mul64(c, qrow, list_cap(c)), c64(c, 4)));
  /* stage 0's keys: the mask's closed-form range, else all */
  V lo, hi;
  row_range(c, i64, &lo, &hi);
  /* with SpAtten's pruning after the selection: a pruned head or token
   * keeps nothing, and stage 0's candidates are the kept tokens */
  V pbase = {""}, nlive = {""};
  if (c->geo.pruning) {
    pbase = prune_base(c, b);
    nlive = if_open(c, row_live(c, pbase, h, i), 1, "i32");
  }
  V n = c32(c, 0);
  for (int r = 0; r < c->R; r++) {
    const Stage *st = &c->st[r];
    Scorer sc = {.r = r, .base = base};
    V qs = gload(c, base, add64(c, ws_qstep(c, r), mul64(c, qrow, c64(c, 8))), "f64");
    sc.coef = dmul(c, f64c(c, c->s->scale), qs);
    V qg = add64(c, ws_qgrid(c, r), mul64(c, qrow, c64(c, st->lp)));
    for (int w = 0; w < st->lp / 4; w++)
      sc.qw[w] = gload(c, base, add64(c, qg, c64(c, 4 * w)), "i32");
    sc.kgrid = add64(c, ws_kgrid(c, r), mul64(c, krow0, c64(c, st->lp)));
    sc.kstep = add64(c, ws_kstep(c, r), mul64(c, krow0, c64(c, 8)));
    Cands cd = {.from_list = r > 0, .i64row = i64, .list = list, .base = base};
    if (r == 0) {
      cd.lo = em(E, "arith.trunci %s : i64 to i32", lo.s);
      cd.hi = em(E, "arith.trunci %s : i64 to i32", hi.s);
      if (c->geo.pruning && c->s->token_keep < 1.0)
        cd.also = tok_kept, cd.flags = pbase;
    } else {
      cd.lo = c32(c, 0);
      cd.hi = n;
    }
    V cnt = count_cands(c, &cd);
    if (st->keep.kind == KEEP_MEAN) {
      V none = c64(c, 0);
      n = write_list(c, &sc, &cd, em_int(E, 0, "i1"), none, c32(c, 0), mean_theta(c, &sc, &cd, cnt, st->keep.value));
      continue;
    }
    /* every candidate when the rule keeps them all; else the radix
     * passes, then the band's pass (write_band) where at most 32 keys share
     * the k-th's leading digits, or, where more tie through all 64 bits,
     * the keys above it and the first `want` equal to it */
    V kk = rule_k(c, st->keep, cnt);
    V all = cmp(c, "sge", kk, cnt, "i32");
    V nr = if_open(c, all, 1, "i32");
    V n1 = write_list(c, &sc, &cd, all, c64(c, 0), c32(c, 0), (V){""});
    if_yield(c, 1, &n1, "i32");
    if_else(c);
    V rs[4];
    radix_narrow(c, &sc, &cd, cnt, kk, hist, SELECT_FIRST_BITS, rs);
    V nb = if_open(c, cmp(c, "sle", rs[3], c32(c, 32), "i32"), 1, "i32");
    V n2 = write_band(c, &sc, &cd, rs[0], rs[1], rs[2], hist);
    if_yield(c, 1, &n2, "i32");
    if_else(c);
    V n3 = write_list(c, &sc, &cd, em_int(E, 0, "i1"), rs[0], rs[2], (V){""});
    if_yield(c, 1, &n3, "i32");
    if_close(c);
    if_yield(c, 1, &nb, "i32");
    if_close(c);
    n = nr;
  }
  if (c->geo.pruning) {
    if_yield(c, 1, &n, "i32");
    if_else(c);
    V none = c32(c, 0);
    if_yield(c, 1, &none, "i32");
    if_close(c);
    n = nlive;
  }
  gstore(c, n, base, add64(c, ws_count(c), mul64(c, qrow, c64(c, 4))), "i32");
  em_end(E);
  em_do(E, "gpu.return");
  em_raw(E, "}\n");
}

/* O += p_e V[j_e] for the chunk's cnt entries, p and j from lane e, O
 * (dl columns a lane, in o) into out; a zero weight is skipped, so a
 * pruned or masked key's Inf or NaN V row never reaches O. vbase: key 0's
 * V row (elements), kstride: from one key's row to the next's. */
static void pv_chunk(C *c, V p, V j, V cnt, V vbase, V kstride, int dl, const V *o, V *out) {
  V zero = em_float(E, 0.0, "f32");
  Loop el;
  V ea[8], er[8];
  const char *ety[8];
  for (int t = 0; t < dl; t++)
    ety[t] = "f32";
  V e = loop_open(c, &el, c32(c, 0), cnt, c32(c, 1), dl, o, ety, ea);
  V pe = shfl(c, "idx", p, e, "f32");
  V je = shfl(c, "idx", j, e, "i32");
  V vr = if_open(c, fcmp(c, "une", pe, zero, "f32"), dl, "f32");
  V voff = add64(c, vbase, mul64(c, ext64(c, je), kstride));
  V nv[8];
  for (int t = 0; t < dl; t++) {
    V d = add32(c, c->lane, c32(c, 32 * t));
    V vx;
    if (32 * (t + 1) > c->D) { /* columns past head_dim read nothing */
      vx = if_open(c, cmp(c, "slt", d, c32(c, (int)c->D), "i32"), 1, "f32");
      V lv = load_in(c, c->v, add64(c, voff, ext64(c, d)));
      if_yield(c, 1, &lv, "f32");
      if_else(c);
      if_yield(c, 1, &zero, "f32");
      if_close(c);
    } else {
      vx = load_in(c, c->v, add64(c, voff, ext64(c, d)));
    }
    nv[t] = em(E, "llvm.intr.fma(%s, %s, %s) : (f32, f32, f32) -> f32", pe.s, vx.s, ea[t].s);
  }
  if_yield(c, dl, nv, "f32");
  if_else(c);
  if_yield(c, dl, ea, "f32");
  if_close(c);
  for (int t = 0; t < dl; t++)
    nv[t] = dl == 1 ? vr : em_res(vr, t);
  loop_close(c, &el, nv, er);
  for (int t = 0; t < dl; t++)
    out[t] = er[t];
}

/* Stores a warp's output row (element offset qoff): lane l holds columns
 * l, l + 32, ... in x, converted to the output type; columns past
 * head_dim are not stored. */
static void store_row(C *c, V qoff, int dl, const V *x) {
  const char *ot = c->s->output == DT_FP32 ? "f32" : c->s->output == DT_FP16 ? "f16" : "bf16";
  int ob = c->s->output == DT_FP32 ? 4 : 2;
  for (int t = 0; t < dl; t++) {
    V d = add32(c, c->lane, c32(c, 32 * t));
    bool guard = 32 * (t + 1) > c->D;
    if (guard)
      em_if(E, cmp(c, "slt", d, c32(c, (int)c->D), "i32"));
    V y = x[t];
    if (strcmp(ot, "f32"))
      y = em(E, "arith.truncf %s : f32 to %s", y.s, ot);
    gstore(c, y, c->o, mul64(c, add64(c, qoff, ext64(c, d)), c64(c, ob)), ot);
    if (guard)
      em_end(E);
  }
}

/* ---- name: attention over the lists ---- */

static void emit_attend(C *c) {
  int dp = (int)((c->D + 31) / 32 * 32), dl = dp / 32;
  V tid, bx, by;
  func_open(c, "", &tid, &bx, &by);
  V i, b, h, kvh;
  warp_row(c, tid, bx, by, &i, &b, &h, &kvh);
  V Hc = c32(c, (int)c->H), KVHc = c32(c, (int)c->KVH);
  em_if(E, cmp(c, "slt", i, c->S32, "i32"));
  V base = batch_base(c, b);
  V qrow = add64(c, mul64(c, ext64(c, h), c->S64), ext64(c, i));
  V list = add64(c, ws_list(c), mul64(c, mul64(c, qrow, list_cap(c)), c64(c, 4)));
  V n = gload(c, base, add64(c, ws_count(c), mul64(c, qrow, c64(c, 4))), "i32");
  /* the query row into this warp's shared row (f32, zero past head_dim) */
  V qs = bin(c, "arith.muli", c->warp, c32(c, dp * 4), "i32");
  V qoff = row_offset(c, b, h, Hc, i);
  for (int t = 0; t < dl; t++) {
    V d = add32(c, c->lane, c32(c, 32 * t));
    V in = cmp(c, "slt", d, c32(c, (int)c->D), "i32");
    V x = if_open(c, in, 1, "f32");
    V lx = load_in(c, c->q, add64(c, qoff, ext64(c, d)));
    if_yield(c, 1, &lx, "f32");
    if_else(c);
    V z = em_float(E, 0.0, "f32");
    if_yield(c, 1, &z, "f32");
    if_close(c);
    em_do(E, "llvm.store %s, %s : f32, !llvm.ptr<3>", x.s, sbyte(c, add32(c, qs, bin(c, "arith.muli", d, c32(c, 4), "i32"))).s);
  }
  syncwarp(c);
  V kbase = row_offset(c, b, kvh, KVHc, c32(c, 0));
  /* elements from one key's K (or V) row to the next's */
  V kstride = c64(c, c->s->layout == LAYOUT_BHSD ? c->D : c->KVH * c->D);
  V sc = em_float(E, c->s->scale * LOG2E, "f32");
  V ninf = em_float(E, -INFINITY, "f32"), zero = em_float(E, 0.0, "f32");
  /* carried: m (log2 units), this lane's part of l, O's dl columns */
  int nc = 2 + dl;
  V init[2 + 8], a[2 + 8], res[2 + 8];
  const char *ty[2 + 8];
  init[0] = ninf, init[1] = zero;
  for (int t = 0; t < nc; t++)
    ty[t] = "f32";
  for (int t = 0; t < dl; t++)
    init[2 + t] = zero;
  Loop l;
  V chunk = loop_open(c, &l, c32(c, 0), n, c32(c, 32), nc, init, ty, a);
  V at = add32(c, chunk, c->lane);
  V valid = cmp(c, "slt", at, n, "i32");
  V j = gload(c, base, add64(c, list, mul64(c, ext64(c, sel(c, valid, at, chunk, "i32")), c64(c, 4))), "i32");
  /* this lane's score: q . K[j], in f32 */
  V koff = add64(c, kbase, mul64(c, ext64(c, j), kstride));
  /* 16 columns a step (a loop, so that long rows' loads are not all
   * hoisted into registers), the rest unrolled */
  V dot = zero;
  int64_t full = c->D / 16 * 16;
  if (full) {
    Loop dl16;
    V da[1], dr[1];
    const char *dty[1] = {"f32"};
    V d0 = loop_open(c, &dl16, c32(c, 0), c32(c, (int)full), c32(c, 16), 1, &zero, dty, da);
    V acc = da[0];
    int es = c->s->storage == DT_FP32 ? 4 : 2;
    if (c->D * es % 16 == 0) {
      /* rows of 16-byte multiples start 16-byte aligned (sattn/cuda.h):
       * K in 16-byte vectors, the query row in 4 f32 a load */
      const char *et = es == 4 ? "f32" : c->s->storage == DT_FP16 ? "f16" : "bf16";
      int per = 16 / es;
      V q4[4];
      for (int u = 0; u < 4; u++)
        q4[u] = em(E, "llvm.load %s {alignment = 16 : i64} : !llvm.ptr<3> -> vector<4xf32>",
                   sbyte(c, add32(c, qs, bin(c, "arith.muli", add32(c, d0, c32(c, 4 * u)), c32(c, 4), "i32"))).s);
      for (int u = 0; u < 16 / per; u++) {
        V kat = mul64(c, add64(c, koff, ext64(c, add32(c, d0, c32(c, u * per)))), c64(c, es));
        V kv = em(E, "llvm.load %s {alignment = 16 : i64} : !llvm.ptr<1> -> vector<%dx%s>", gbyte(c, c->k, kat).s, per, et);
        if (es == 2)
          kv = em(E, "llvm.fpext %s : vector<%dx%s> to vector<%dxf32>", kv.s, per, et, per);
        for (int e = 0; e < per; e++) {
          int col = u * per + e;
          V qe = em(E, "llvm.extractelement %s[%s : i32] : vector<4xf32>", q4[col / 4].s, c32(c, col % 4).s);
          V ke = em(E, "llvm.extractelement %s[%s : i32] : vector<%dxf32>", kv.s, c32(c, e).s, per);
          acc = em(E, "llvm.intr.fma(%s, %s, %s) : (f32, f32, f32) -> f32", qe.s, ke.s, acc.s);
        }
      }
    } else {
      for (int u = 0; u < 16; u++) {
        V d = add32(c, d0, c32(c, u));
        V qv = em(E, "llvm.load %s : !llvm.ptr<3> -> f32", sbyte(c, add32(c, qs, bin(c, "arith.muli", d, c32(c, 4), "i32"))).s);
        V kv = load_in(c, c->k, add64(c, koff, ext64(c, d)));
        acc = em(E, "llvm.intr.fma(%s, %s, %s) : (f32, f32, f32) -> f32", qv.s, kv.s, acc.s);
      }
    }
    loop_close(c, &dl16, &acc, dr);
    dot = dr[0];
  }
  for (int64_t d = full; d < c->D; d++) {
    V qv = em(E, "llvm.load %s : !llvm.ptr<3> -> f32", sbyte(c, add32(c, qs, c32(c, (int)(4 * d)))).s);
    V kv = load_in(c, c->k, add64(c, koff, c64(c, d)));
    dot = em(E, "llvm.intr.fma(%s, %s, %s) : (f32, f32, f32) -> f32", qv.s, kv.s, dot.s);
  }
  V s = sel(c, valid, bin(c, "arith.mulf", dot, sc, "f32"), ninf, "f32");
  V mx = s;
  for (int m = 16; m >= 1; m /= 2)
    mx = bin(c, "arith.maximumf", mx, shfl(c, "bfly", mx, c32(c, m), "f32"), "f32");
  V mnew = bin(c, "arith.maximumf", a[0], mx, "f32");
  V alpha = sel(c, fcmp(c, "oeq", mnew, a[0], "f32"), em_float(E, 1.0, "f32"),
                em(E, "llvm.inline_asm \"ex2.approx.ftz.f32 $0, $1;\", \"=f,f\" %s : (f32) -> f32",
                   bin(c, "arith.subf", a[0], mnew, "f32").s),
                "f32");
  V off = sel(c, fcmp(c, "oeq", mnew, ninf, "f32"), zero, mnew, "f32");
  V p = em(E, "llvm.inline_asm \"ex2.approx.ftz.f32 $0, $1;\", \"=f,f\" %s : (f32) -> f32",
           bin(c, "arith.subf", s, off, "f32").s);
  V next[2 + 8];
  next[0] = mnew;
  next[1] = bin(c, "arith.addf", bin(c, "arith.mulf", a[1], alpha, "f32"), p, "f32");
  V o[8];
  for (int t = 0; t < dl; t++)
    o[t] = bin(c, "arith.mulf", a[2 + t], alpha, "f32");
  V cnt = bin(c, "arith.minsi", bin(c, "arith.subi", n, chunk, "i32"), c32(c, 32), "i32");
  pv_chunk(c, p, j, cnt, kbase, kstride, dl, o, next + 2);
  loop_close(c, &l, next, res);
  V lsum = res[1];
  for (int m = 16; m >= 1; m /= 2)
    lsum = bin(c, "arith.addf", lsum, shfl(c, "bfly", lsum, c32(c, m), "f32"), "f32");
  V inv = sel(c, fcmp(c, "ogt", lsum, zero, "f32"), bin(c, "arith.divf", em_float(E, 1.0, "f32"), lsum, "f32"), zero, "f32");
  V out[8];
  for (int t = 0; t < dl; t++)
    out[t] = bin(c, "arith.mulf", res[2 + t], inv, "f32");
  store_row(c, qoff, dl, out);
  em_end(E);
  em_do(E, "gpu.return");
  em_raw(E, "}\n");
}

/* ---- SpAtten: token and head pruning, progressive quantization, value
 * pruning (docs/semantics.md 4.2-4.4, 5, 6; docs/cuda.md) ----
 *
 *   name_prune   grid (ceil(seq / 128), batch): zeroes the importance
 *                sums; block 0's warp 0 keeps the top tokens of
 *                token_in, warp 1 the top heads of head_in (radix select
 *                over the values' order keys, non-finite values dropped),
 *                as flags; with progressive quantization each thread
 *                quantizes its K rows (MSB and MSB + LSB grids, i16, with
 *                their f64 steps)
 *   name         a warp per query row: the scores in f64 as the reference
 *                forms them (recomputed per pass, never stored); the
 *                softmax's maximum and sum in one online pass; with
 *                progressive quantization a second pass on the full grids
 *                when the top probability falls below the threshold; value
 *                pruning's top-k by a radix select over the scores' keys
 *                (softmax keeps their order); then P V over the kept keys,
 *                adding each probability to its token's sum and sum |O| to
 *                the head's (f64 atomics)
 *   name_finish  importance outputs: value + sum for kept tokens and
 *                heads, -inf for pruned ones */

/* Byte offsets in one batch's block of SpAtten's workspace: token sums
 * (f64, seq), head sums (f64, heads), token flags (u8, seq), head flags (u8,
 * heads), then, from a 16-byte boundary, progressive quantization's K
 * steps (f64, kv_heads x seq, MSB then full) and grids (i16, kv_heads x seq
 * rows of head_dim rounded up to 8, MSB then full). */
static int64_t prune_dp(C *c) { return (c->D + 7) / 8 * 8; }
static V pw_tacc(C *c) { return c64(c, 0); }
static V pw_hacc(C *c) { return mul64(c, c->S64, c64(c, 8)); }
static V pw_tkept(C *c) { return add64(c, mul64(c, c->S64, c64(c, 8)), c64(c, 8 * c->H)); }
static V pw_hkept(C *c) { return add64(c, mul64(c, c->S64, c64(c, 9)), c64(c, 8 * c->H)); }
static V pw_prog(C *c) {
  V end = add64(c, mul64(c, c->S64, c64(c, 9)), c64(c, 9 * c->H));
  return bin(c, "arith.andi", add64(c, end, c64(c, 15)), c64(c, -16), "i64");
}
static V pw_kstep(C *c, V full) {
  V msb = pw_prog(c);
  return sel(c, full, add64(c, msb, mul64(c, c->S64, c64(c, 8 * c->KVH))), msb, "i64");
}
static V pw_kgrid(C *c, V full) {
  V msb = add64(c, pw_prog(c), mul64(c, c->S64, c64(c, 16 * c->KVH)));
  return sel(c, full, add64(c, msb, mul64(c, c->S64, c64(c, 2 * c->KVH * prune_dp(c)))), msb, "i64");
}
static V prune_block(C *c) {
  if (!c->geo.pruning)
    return c64(c, 0);
  V per = pw_prog(c);
  if (c->s->has_progressive)
    per = add64(c, per, mul64(c, c->S64, c64(c, c->KVH * (16 + 4 * prune_dp(c)))));
  return bin(c, "arith.andi", add64(c, per, c64(c, 255)), c64(c, -256), "i64");
}
static V prune_base(C *c, V b) { return gbyte(c, batch_base(c, b), select_block(c)); }

static V is_null(C *c, V ptr) {
  V z = em(E, "llvm.mlir.zero : !llvm.ptr<1>");
  return em(E, "llvm.icmp \"eq\" %s, %s : !llvm.ptr<1>", ptr.s, z.s);
}
static V is_set(C *c, V ptr) { return bin(c, "arith.xori", is_null(c, ptr), em_int(E, 1, "i1"), "i1"); }

/* Element e (i64) of an f32 importance vector as f64; 0 when the vector
 * is absent (NULL), as the reference reads a missing input. */
static V vec_value(C *c, V ptr, V e) {
  V r = if_open(c, is_null(c, ptr), 1, "f64");
  V z = f64c(c, 0.0);
  if_yield(c, 1, &z, "f64");
  if_else(c);
  V x = em(E, "arith.extf %s : f32 to f64", gload(c, ptr, mul64(c, e, c64(c, 4)), "f32").s);
  if_yield(c, 1, &x, "f64");
  if_close(c);
  return r;
}
static V vec_score(C *c, const Scorer *sc, V j) { return vec_value(c, sc->vec, add64(c, sc->vec0, ext64(c, j))); }
static V vec_finite(C *c, const Cands *cd, V j) {
  V x = vec_value(c, cd->vec, add64(c, cd->vec0, ext64(c, j)));
  return fcmp(c, "one", dabs(c, x), f64c(c, INFINITY), "f64");
}

/* One warp keeps the top ceil(keep x n) of the n values of an importance
 * vector (ties to the lower index, non-finite values never), or every
 * entry when keep is 1, writing a flag (u8) per entry at byte `flags` of
 * base. */
static void keep_flags(C *c, double keep, V vec, V vec0, V n, V base, V flags, V hist) {
  Scorer sc = {.value = vec_score, .vec = vec, .vec0 = vec0};
  Cands cd = {.unmasked = true, .also = keep < 1.0 ? vec_finite : NULL, .vec = vec, .vec0 = vec0, .lo = c32(c, 0), .hi = n};
  V all = em_int(E, 1, "i1"), T = c64(c, 0), need = c32(c, 0);
  if (keep < 1.0) {
    V cnt = count_cands(c, &cd);
    V want = em(E, "arith.trunci %s : i64 to i32", ceil64(c, dmul(c, f64c(c, keep), em(E, "arith.sitofp %s : i32 to f64", n.s))).s);
    want = bin(c, "arith.minsi", want, cnt, "i32");
    top_k(c, &sc, &cd, cnt, want, hist, &all, &T, &need);
  }
  Loop l;
  V z = c32(c, 0), a[1], res[1];
  const char *ty[1] = {"i32"};
  V chunk = loop_open(c, &l, c32(c, 0), n, c32(c, 32), 1, &z, ty, a);
  V valid;
  V j = cand_at(c, &cd, chunk, &valid);
  V inside = cmp(c, "slt", add32(c, chunk, c->lane), n, "i32");
  V take = valid, beq = c32(c, 0);
  if (keep < 1.0) {
    V key = score_key(c, &sc, j);
    V eq = and1(c, valid, cmp(c, "eq", key, T, "i64"));
    beq = ballot(c, eq);
    V rank = add32(c, a[0], popc(c, bin(c, "arith.andi", beq, lanes_below(c), "i32")));
    take = and1(c, valid, or1(c, all, or1(c, cmp(c, "ugt", key, T, "i64"), and1(c, eq, cmp(c, "slt", rank, need, "i32")))));
  }
  em_if(E, inside);
  gstore(c, em(E, "arith.extui %s : i1 to i8", take.s), base, add64(c, flags, ext64(c, j)), "i8");
  em_end(E);
  V nx = add32(c, a[0], popc(c, beq));
  loop_close(c, &l, &nx, res);
}

/* The reference's quantization of K row (b, kvh, row) for progressive
 * quantization (ref_quant_rows): step = amax / qmax and the integer grid,
 * stored as i16 (MSB + LSB bits are at most 16) with the step in f64. */
static void quantize_k_row(C *c, V base, V b, V kvh, V row, int bits, V full) {
  V x0 = row_offset(c, b, kvh, c32(c, (int)c->KVH), row);
  V qmax = f64c(c, ldexp(1.0, bits - 1) - 1.0);
  Loop l;
  V z = f64c(c, 0.0), a[1], amax[1];
  const char *ty[1] = {"f64"};
  V d = loop_open(c, &l, c32(c, 0), c32(c, (int)c->D), c32(c, 1), 1, &z, ty, a);
  V x = em(E, "arith.extf %s : f32 to f64", load_in(c, c->k, add64(c, x0, ext64(c, d))).s);
  V nx = bin(c, "arith.maxnumf", a[0], dabs(c, x), "f64");
  loop_close(c, &l, &nx, amax);
  V step = bin(c, "arith.divf", amax[0], qmax, "f64");
  V krow = add64(c, mul64(c, ext64(c, kvh), c->S64), ext64(c, row));
  gstore(c, step, base, add64(c, pw_kstep(c, full), mul64(c, krow, c64(c, 8))), "f64");
  V g0 = add64(c, pw_kgrid(c, full), mul64(c, krow, c64(c, 2 * prune_dp(c))));
  d = em_for(E, em_index(E, 0), em_index(E, c->D), em_index(E, 1));
  V d32 = em(E, "arith.index_cast %s : index to i32", d.s);
  x = em(E, "arith.extf %s : f32 to f64", load_in(c, c->k, add64(c, x0, ext64(c, d32))).s);
  V g = grid_value(c, x, amax[0], step, qmax);
  gstore(c, em(E, "arith.trunci %s : i32 to i16", g.s), base, add64(c, g0, mul64(c, ext64(c, d32), c64(c, 2))), "i16");
  em_end(E);
}

static void emit_prune(C *c) {
  const SaSpec *s = c->s;
  V tid, bx, by;
  c->blocks_per_sm = true;
  func_open(c, "_prune", &tid, &bx, &by);
  c->blocks_per_sm = false;
  c->warp = bin(c, "arith.divui", tid, c32(c, 32), "i32");
  c->lane = bin(c, "arith.remui", tid, c32(c, 32), "i32");
  V base = prune_base(c, by);
  V row = add32(c, bin(c, "arith.muli", bx, c32(c, GRID_ROWS), "i32"), tid);
  V first = cmp(c, "eq", bx, c32(c, 0), "i32");
  em_if(E, cmp(c, "slt", row, c->S32, "i32"));
  gstore(c, f64c(c, 0.0), base, add64(c, pw_tacc(c), mul64(c, ext64(c, row), c64(c, 8))), "f64");
  if (s->has_progressive) {
    V kvh = em_for(E, em_index(E, 0), em_index(E, c->KVH), em_index(E, 1));
    V kvh32 = em(E, "arith.index_cast %s : index to i32", kvh.s);
    quantize_k_row(c, base, by, kvh32, row, s->msb_bits, em_int(E, 0, "i1"));
    quantize_k_row(c, base, by, kvh32, row, s->msb_bits + s->lsb_bits, em_int(E, 1, "i1"));
    em_end(E);
  }
  em_end(E);
  em_if(E, first);
  {
    Loop l;
    V hh = loop_open(c, &l, tid, c32(c, (int)c->H), c32(c, THREADS), 0, NULL, NULL, NULL);
    gstore(c, f64c(c, 0.0), base, add64(c, pw_hacc(c), mul64(c, ext64(c, hh), c64(c, 8))), "f64");
    loop_close(c, &l, NULL, NULL);
  }
  em_end(E);
  /* block 0: warp 0 the tokens, warp 1 the heads */
  V hist = bin(c, "arith.muli", c->warp, c32(c, HIST * 4), "i32");
  em_if(E, and1(c, first, cmp(c, "eq", c->warp, c32(c, 0), "i32")));
  keep_flags(c, s->token_keep, (V){"%tin"}, mul64(c, ext64(c, by), c->S64), c->S32, base, pw_tkept(c), hist);
  em_end(E);
  em_if(E, and1(c, first, cmp(c, "eq", c->warp, c32(c, 1), "i32")));
  keep_flags(c, s->head_keep, (V){"%hin"}, mul64(c, ext64(c, by), c64(c, c->H)), c32(c, (int)c->H), base, pw_hkept(c),
             hist);
  em_end(E);
  em_do(E, "gpu.return");
  em_raw(E, "}\n");
}

/* SpAtten's exact score of key j: scale x (q . k) in f64, each product and
 * sum rounded once in d's order as the reference forms them, with K's row
 * as stored or, with progressive quantization, its MSB or full grid times
 * the row's step (prune_grids sets which). */
static V prune_score_compute(C *c, const Scorer *sc, V j);

/* A row's scores by walk position in the warp's shared stash, where the
 * walk has at most STASH_KEYS positions: the first pass computes and
 * stores them (STASH_WRITE), later passes read them back (STASH_READ)
 * instead of recomputing head_dim f64 products per key. */
static V stash_slot(C *c, const Scorer *sc) {
  V slot = sel(c, c->pos_ok, bin(c, "arith.subi", c->pos, c->pos_lo, "i32"), c32(c, 0), "i32");
  return sbyte(c, add32(c, sc->stash_at, bin(c, "arith.muli", slot, c32(c, 8), "i32")));
}

static V prune_score(C *c, const Scorer *sc, V j) {
  if (sc->stash == STASH_READ) {
    V r = if_open(c, sc->stash_ok, 1, "f64");
    V x = em(E, "llvm.load %s : !llvm.ptr<3> -> f64", stash_slot(c, sc).s);
    if_yield(c, 1, &x, "f64");
    if_else(c);
    x = prune_score_compute(c, sc, j);
    if_yield(c, 1, &x, "f64");
    if_close(c);
    return r;
  }
  V x = prune_score_compute(c, sc, j);
  if (sc->stash == STASH_WRITE) {
    em_if(E, and1(c, sc->stash_ok, c->pos_ok));
    em_do(E, "llvm.store %s, %s : f64, !llvm.ptr<3>", x.s, stash_slot(c, sc).s);
    em_end(E);
  }
  return x;
}

/* K's element d of the key (f64): its grid value times the row's step,
 * or the stored element. */
static V prune_k(C *c, const Scorer *sc, V step, V g0, V koff, V d) {
  if (c->s->has_progressive && !sc->exact) {
    V g = gload(c, sc->base, add64(c, g0, mul64(c, ext64(c, d), c64(c, 2))), "i16");
    return dmul(c, em(E, "arith.sitofp %s : i16 to f64", g.s), step);
  }
  return em(E, "arith.extf %s : f32 to f64", load_in(c, c->k, add64(c, koff, ext64(c, d))).s);
}

static V prune_score_compute(C *c, const Scorer *sc, V j) {
  const SaSpec *s = c->s;
  V j64 = ext64(c, j);
  V step = {""}, g0 = {""}, koff = {""};
  bool grids = s->has_progressive && !sc->exact;
  if (grids) {
    step = gload(c, sc->base, add64(c, sc->kstep, mul64(c, j64, c64(c, 8))), "f64");
    g0 = add64(c, sc->kgrid, mul64(c, j64, c64(c, 2 * prune_dp(c))));
  } else {
    koff = add64(c, sc->kbase, mul64(c, j64, sc->kstride));
  }
  int es = s->storage == DT_FP32 ? 4 : 2;
  /* 8 elements a step with 16-byte loads where K's rows allow them (the
   * grids' rows always do: padded to 8 at 16-byte offsets), the sum still
   * one element at a time in d's order */
  bool vec = grids || c->D * es % 16 == 0;
  int64_t full = vec ? c->D / 8 * 8 : 0;
  V acc = f64c(c, 0.0);
  if (full) {
    Loop l;
    V a[1], r[1];
    const char *ty[1] = {"f64"};
    V d0 = loop_open(c, &l, c32(c, 0), c32(c, (int)full), c32(c, 8), 1, &acc, ty, a);
    V q4[2];
    for (int u = 0; u < 2; u++)
      q4[u] = em(E, "llvm.load %s {alignment = 16 : i64} : !llvm.ptr<3> -> vector<4xf32>",
                 sbyte(c, add32(c, sc->qs, bin(c, "arith.muli", add32(c, d0, c32(c, 4 * u)), c32(c, 4), "i32"))).s);
    V kd[8];
    if (grids) {
      V gv = em(E, "llvm.load %s {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xi16>",
                gbyte(c, sc->base, add64(c, g0, mul64(c, ext64(c, d0), c64(c, 2)))).s);
      for (int e = 0; e < 8; e++) {
        V g = em(E, "llvm.extractelement %s[%s : i32] : vector<8xi16>", gv.s, c32(c, e).s);
        kd[e] = dmul(c, em(E, "arith.sitofp %s : i16 to f64", g.s), step);
      }
    } else {
      const char *et = es == 4 ? "f32" : s->storage == DT_FP16 ? "f16" : "bf16";
      int per = 16 / es;
      for (int u = 0; u < 8 / per; u++) {
        V kat = mul64(c, add64(c, koff, ext64(c, add32(c, d0, c32(c, u * per)))), c64(c, es));
        V kv = em(E, "llvm.load %s {alignment = 16 : i64} : !llvm.ptr<1> -> vector<%dx%s>", gbyte(c, c->k, kat).s, per, et);
        for (int e = 0; e < per; e++) {
          V x = em(E, "llvm.extractelement %s[%s : i32] : vector<%dx%s>", kv.s, c32(c, e).s, per, et);
          kd[u * per + e] = em(E, "arith.extf %s : %s to f64", x.s, et);
        }
      }
    }
    V x = a[0];
    for (int e = 0; e < 8; e++) {
      V qe = em(E, "llvm.extractelement %s[%s : i32] : vector<4xf32>", q4[e / 4].s, c32(c, e % 4).s);
      x = dadd(c, x, dmul(c, em(E, "arith.extf %s : f32 to f64", qe.s), kd[e]));
    }
    loop_close(c, &l, &x, r);
    acc = r[0];
  }
  if (full < c->D) {
    Loop l;
    V a[1], r[1];
    const char *ty[1] = {"f64"};
    V d = loop_open(c, &l, c32(c, (int)full), c32(c, (int)c->D), c32(c, 1), 1, &acc, ty, a);
    V qv = em(E, "llvm.load %s : !llvm.ptr<3> -> f32", sbyte(c, add32(c, sc->qs, bin(c, "arith.muli", d, c32(c, 4), "i32"))).s);
    V nx = dadd(c, a[0], dmul(c, em(E, "arith.extf %s : f32 to f64", qv.s), prune_k(c, sc, step, g0, koff, d)));
    loop_close(c, &l, &nx, r);
    acc = r[0];
  }
  return dmul(c, f64c(c, s->scale), acc);
}

/* Value pruning ranks the probabilities exp(s - max), NaN last, ties to
 * the lower key: the scores' order, except where the maximum is +inf,
 * when the +inf and NaN scores' weights are NaN (last) and the others' 0
 * (all tied). */
static V rank_value(C *c, V minf, V x) {
  V bad = or1(c, fcmp(c, "oeq", x, f64c(c, INFINITY), "f64"), fcmp(c, "uno", x, x, "f64"));
  return sel(c, minf, sel(c, bad, f64c(c, NAN), f64c(c, 0.0), "f64"), x, "f64");
}
static V prune_rank(C *c, const Scorer *sc, V j) { return rank_value(c, sc->minf, prune_score(c, sc, j)); }

/* Points sc at the kv head's MSB grids (full false) or full ones. */
static void prune_grids(C *c, Scorer *sc, V kvh, V full) {
  V krow0 = mul64(c, ext64(c, kvh), c->S64);
  sc->kstep = add64(c, pw_kstep(c, full), mul64(c, krow0, c64(c, 8)));
  sc->kgrid = add64(c, pw_kgrid(c, full), mul64(c, krow0, c64(c, 2 * prune_dp(c))));
}

static V tok_kept(C *c, const Cands *cd, V j) {
  V f = gload(c, cd->flags, add64(c, pw_tkept(c), ext64(c, j)), "i8");
  return cmp(c, "ne", f, em_int(E, 0, "i8"), "i8");
}

/* The exact score of the key at walk position p (i32), whether that
 * position holds a candidate before N:M, and its key: from the stash
 * where the row fits it, else computed. */
static V nm_mate(C *c, const Cands *cd, V p, V *ok, V *key) {
  const Scorer *sc = cd->nm;
  V in = and1(c, cmp(c, "sge", p, cd->lo, "i32"), cmp(c, "slt", p, cd->hi, "i32"));
  V safe = sel(c, in, p, cd->lo, "i32");
  V j;
  if (cd->from_list) {
    j = gload(c, cd->base, add64(c, cd->list, mul64(c, ext64(c, safe), c64(c, 4))), "i32");
    *ok = in;
  } else {
    j = safe;
    V v = in;
    if (c->p->mask)
      v = and1(c, v, mask_pred(E, c->p->mask, c->S64, cd->i64row, ext64(c, j)));
    if (c->s->token_keep < 1.0)
      v = and1(c, v, tok_kept(c, cd, j));
    *ok = v;
  }
  V slot = sbyte(c, add32(c, sc->stash_at, bin(c, "arith.muli", bin(c, "arith.subi", safe, cd->lo, "i32"), c32(c, 8), "i32")));
  V x = if_open(c, sc->stash_ok, 1, "f64");
  V ld = em(E, "llvm.load %s : !llvm.ptr<3> -> f64", slot.s);
  if_yield(c, 1, &ld, "f64");
  if_else(c);
  V cx = prune_score_compute(c, sc, j);
  if_yield(c, 1, &cx, "f64");
  if_close(c);
  *key = order_key(c, x);
  return j;
}

/* N:M after the selection and token pruning (docs/semantics.md 4.7): key
 * j survives when fewer than N candidates of its group of M keys rank
 * above it by exact score (NaN last, ties to the lower key). Its group's
 * other candidates lie within M - 1 walk positions of it (the walk is in
 * key order). Also applies token pruning on a range walk. */
static V nm_keep(C *c, const Cands *cd, V j) {
  V p = c->pos, own = {""}, okp, kp;
  if (!cd->from_list && c->s->token_keep < 1.0)
    own = tok_kept(c, cd, j);
  nm_mate(c, cd, p, &okp, &kp);
  int64_t M = c->s->nm_m;
  V g = bin(c, "arith.divsi", j, c32(c, (int)M), "i32");
  Loop l;
  V z = c32(c, 0), a[1], r[1];
  const char *ty[1] = {"i32"};
  V d = loop_open(c, &l, c32(c, (int)(1 - M)), c32(c, (int)M), c32(c, 1), 1, &z, ty, a);
  V ok, kq;
  V q = nm_mate(c, cd, add32(c, p, d), &ok, &kq);
  V same = and1(c, ok, and1(c, cmp(c, "ne", d, c32(c, 0), "i32"),
                            cmp(c, "eq", bin(c, "arith.divsi", q, c32(c, (int)M), "i32"), g, "i32")));
  V above = or1(c, cmp(c, "ugt", kq, kp, "i64"), and1(c, cmp(c, "eq", kq, kp, "i64"), cmp(c, "slt", q, j, "i32")));
  V nx = add32(c, a[0], em(E, "arith.extui %s : i1 to i32", and1(c, same, above).s));
  loop_close(c, &l, &nx, r);
  V keep = cmp(c, "slt", r[0], c32(c, (int)c->s->nm_n), "i32");
  return own.s[0] ? and1(c, own, keep) : keep;
}

/* 2^(x log2 e) in f32 for an f64 x <= 0 (ex2.approx; -inf gives 0). */
static V exp_f32(C *c, V x) {
  V y = em(E, "arith.truncf %s : f64 to f32", bin(c, "arith.mulf", x, f64c(c, LOG2E), "f64").s);
  return em(E, "llvm.inline_asm \"ex2.approx.ftz.f32 $0, $1;\", \"=f,f\" %s : (f32) -> f32", y.s);
}

static V shfl_bfly_f64(C *c, V x, int m) {
  V v = em(E, "llvm.bitcast %s : f64 to vector<2xi32>", x.s);
  for (int h = 0; h < 2; h++) {
    V part = em(E, "llvm.extractelement %s[%s : i32] : vector<2xi32>", v.s, c32(c, h).s);
    v = em(E, "llvm.insertelement %s, %s[%s : i32] : vector<2xi32>", shfl(c, "bfly", part, c32(c, m), "i32").s, v.s,
           c32(c, h).s);
  }
  return em(E, "llvm.bitcast %s : vector<2xi32> to f64", v.s);
}

/* The softmax's maximum score (f64; fmax, which passes NaN over) and sum
 * of exp(score - max) (f32; NaN when a score is) over the candidates, in
 * one pass: each lane keeps its own running pair, merged at the end. */
static void softmax_stats(C *c, const Scorer *sc, const Cands *cd, V *m, V *l) {
  Loop lp;
  V init[2] = {f64c(c, -INFINITY), em_float(E, 0.0, "f32")}, a[2], res[2];
  const char *ty[2] = {"f64", "f32"};
  V chunk = loop_open(c, &lp, cd->lo, cd->hi, c32(c, 32), 2, init, ty, a);
  V valid;
  V j = cand_at(c, cd, chunk, &valid);
  V x = score_value(c, sc, j);
  V mn = sel(c, valid, bin(c, "arith.maxnumf", a[0], x, "f64"), a[0], "f64");
  V alpha = sel(c, fcmp(c, "oeq", mn, a[0], "f64"), em_float(E, 1.0, "f32"), exp_f32(c, bin(c, "arith.subf", a[0], mn, "f64")), "f32");
  /* a -inf score weighs 0 here even beside a lane maximum of -inf, as
   * beside the finite row maximum the reference compares it with (a row of
   * -inf scores alone gets its NaN weights in the last pass); a NaN score
   * weighs NaN */
  V live = and1(c, valid, fcmp(c, "une", x, f64c(c, -INFINITY), "f64"));
  V p = sel(c, live, exp_f32(c, bin(c, "arith.subf", x, mn, "f64")), em_float(E, 0.0, "f32"), "f32");
  V next[2] = {mn, em(E, "llvm.intr.fma(%s, %s, %s) : (f32, f32, f32) -> f32", a[1].s, alpha.s, p.s)};
  loop_close(c, &lp, next, res);
  V M = res[0];
  for (int k = 16; k >= 1; k /= 2)
    M = bin(c, "arith.maxnumf", M, shfl_bfly_f64(c, M, k), "f64");
  V f = sel(c, fcmp(c, "oeq", res[0], M, "f64"), em_float(E, 1.0, "f32"), exp_f32(c, bin(c, "arith.subf", res[0], M, "f64")), "f32");
  V L = bin(c, "arith.mulf", res[1], f, "f32");
  for (int k = 16; k >= 1; k /= 2)
    L = bin(c, "arith.addf", L, shfl(c, "bfly", L, c32(c, k), "f32"), "f32");
  *m = M, *l = L;
}

static void atomic_add_f64(C *c, V base, V off, V x) {
  em(E, "llvm.atomicrmw fadd %s, %s monotonic : !llvm.ptr<1>, f64", gbyte(c, base, off).s, x.s);
}

static void emit_prune_attend(C *c) {
  const SaSpec *s = c->s;
  int dp = (int)((c->D + 31) / 32 * 32), dl = dp / 32;
  V tid, bx, by;
  c->blocks_per_sm = true; /* the stash allows 2 or 3 blocks an SM anyway */
  func_open(c, "", &tid, &bx, &by);
  c->blocks_per_sm = false;
  V i, b, h, kvh;
  warp_row(c, tid, bx, by, &i, &b, &h, &kvh);
  V zero = em_float(E, 0.0, "f32");
  em_if(E, cmp(c, "slt", i, c->S32, "i32"));
  V base = prune_base(c, b);
  V qoff = row_offset(c, b, h, c32(c, (int)c->H), i);
  /* the query row into this warp's shared row (f32, zero past head_dim) */
  V qs = bin(c, "arith.muli", c->warp, c32(c, dp * 4), "i32");
  for (int t = 0; t < dl; t++) {
    V d = add32(c, c->lane, c32(c, 32 * t));
    V x = if_open(c, cmp(c, "slt", d, c32(c, (int)c->D), "i32"), 1, "f32");
    V lx = load_in(c, c->q, add64(c, qoff, ext64(c, d)));
    if_yield(c, 1, &lx, "f32");
    if_else(c);
    if_yield(c, 1, &zero, "f32");
    if_close(c);
    em_do(E, "llvm.store %s, %s : f32, !llvm.ptr<3>", x.s, sbyte(c, add32(c, qs, bin(c, "arith.muli", d, c32(c, 4), "i32"))).s);
  }
  syncwarp(c);
  V O = if_open(c, row_live(c, base, h, i), dl, "f32");
  {
    V i64 = ext64(c, i);
    Cands cd;
    if (c->R > 0) { /* after selection: the row's list, token pruning applied before it */
      V qrow = add64(c, mul64(c, ext64(c, h), c->S64), ext64(c, i));
      cd = (Cands){.from_list = true, .base = batch_base(c, b), .lo = c32(c, 0),
                   .list = add64(c, ws_list(c), mul64(c, mul64(c, qrow, list_cap(c)), c64(c, 4))),
                   .hi = gload(c, batch_base(c, b), add64(c, ws_count(c), mul64(c, qrow, c64(c, 4))), "i32")};
    } else { /* the pattern's keys that token pruning kept */
      V lo, hi;
      row_range(c, i64, &lo, &hi);
      cd = (Cands){.also = s->token_keep < 1.0 ? tok_kept : NULL, .i64row = i64, .flags = base,
                   .lo = em(E, "arith.trunci %s : i64 to i32", lo.s), .hi = em(E, "arith.trunci %s : i64 to i32", hi.s)};
    }
    Scorer sc = {.value = prune_score, .base = base, .qs = qs, .stash = STASH_WRITE};
    /* the warp's stash, after the query rows and value pruning's histograms */
    sc.stash_at = add32(c, c32(c, 4 * dp * 4 + (s->value_keep < 1.0 ? 4 * HIST * 4 : 0)),
                        bin(c, "arith.muli", c->warp, c32(c, STASH_KEYS * 8), "i32"));
    sc.stash_ok = cmp(c, "sle", bin(c, "arith.subi", cd.hi, cd.lo, "i32"), c32(c, STASH_KEYS), "i32");
    sc.kbase = row_offset(c, b, kvh, c32(c, (int)c->KVH), c32(c, 0));
    sc.kstride = c64(c, s->layout == LAYOUT_BHSD ? c->D : c->KVH * c->D);
    if (s->has_progressive)
      prune_grids(c, &sc, kvh, em_int(E, 0, "i1"));
    /* N:M ranks exact scores (K as stored, also under progressive
     * quantization, whose softmax then scores with the grids): the stash
     * first, then the candidates are those N:M keeps (nm_keep reads their
     * groups from it). With progressive quantization the stash keeps the
     * exact scores for N:M, and the softmax's passes recompute theirs. */
    Scorer nsc = sc;
    bool stash_exact = s->nm_m > 0 && s->has_progressive; /* the stash keeps N:M's scores, not the softmax's */
    if (s->nm_m > 0) {
      nsc.exact = true;
      em_if(E, nsc.stash_ok);
      {
        Loop pl;
        V chunk = loop_open(c, &pl, cd.lo, cd.hi, c32(c, 32), 0, NULL, NULL, NULL);
        V valid;
        prune_score(c, &nsc, cand_at(c, &cd, chunk, &valid));
        loop_close(c, &pl, NULL, NULL);
      }
      em_end(E);
      nsc.stash = STASH_READ;
      sc.stash = stash_exact ? STASH_NONE : STASH_READ;
      cd.also = nm_keep, cd.nm = &nsc;
    }
    V m, l;
    softmax_stats(c, &sc, &cd, &m, &l);
    if (s->has_progressive) {
      /* the top probability is 1 / sum; 0 for an empty row; when a NaN
       * score makes the sum NaN the reference leaves the weights
       * unnormalized and fmax passes the NaN over: 1 (the maximum's
       * weight) where the maximum is finite, else 0. Under the threshold
       * the row scores again with the MSB + LSB grids. 1 / sum < t as t x
       * sum > 1: no f64 division (a ptxas subroutine that spills) */
      double t = s->requant_threshold;
      V again = sel(c, fcmp(c, "ogt", l, zero, "f32"),
                    fcmp(c, "ogt", bin(c, "arith.mulf", f64c(c, t), em(E, "arith.extf %s : f32 to f64", l.s), "f64"),
                         f64c(c, 1.0), "f64"),
                    sel(c, and1(c, fcmp(c, "uno", l, l, "f32"), fcmp(c, "one", dabs(c, m), f64c(c, INFINITY), "f64")),
                        em_int(E, 1.0 < t, "i1"), em_int(E, 0.0 < t, "i1"), "i1"),
                    "i1");
      V r = if_open_list(c, again, 2, "f64, f32");
      Scorer fs = sc;
      prune_grids(c, &fs, kvh, em_int(E, 1, "i1"));
      V m2, l2;
      softmax_stats(c, &fs, &cd, &m2, &l2);
      em_do(E, "scf.yield %s, %s : f64, f32", m2.s, l2.s);
      if_else(c);
      em_do(E, "scf.yield %s, %s : f64, f32", m.s, l.s);
      if_close(c);
      m = em_res(r, 0), l = em_res(r, 1);
      prune_grids(c, &sc, kvh, again);
    }
    if (!stash_exact)
      sc.stash = STASH_READ; /* the stash holds the scores of the pass the row ended with */
    /* 1 / sum by rcp.approx (within an ulp or two; rcp.rn is a ptxas
     * subroutine whose call spills here). A NaN sum leaves the weights
     * exp(s - max) unnormalized, as the reference's softmax does (it
     * divides only by a positive sum): NaN for the NaN scores alone. */
    V rcp = em(E, "llvm.inline_asm \"rcp.approx.ftz.f32 $0, $1;\", \"=f,f\" %s : (f32) -> f32", l.s);
    V inv = sel(c, fcmp(c, "ogt", l, zero, "f32"), rcp, em_float(E, 1.0, "f32"), "f32");
    /* value pruning: the top ceil(value x survivors) probabilities, which
     * are the top scores (exp keeps their order), ties to the lower key */
    V all = em_int(E, 1, "i1"), T = c64(c, 0), need = c32(c, 0);
    V minf = fcmp(c, "oeq", m, f64c(c, INFINITY), "f64"); /* value pruning ranks NaN and zero weights then */
    if (s->value_keep < 1.0) {
      V cnt = count_cands(c, &cd);
      SaKeep vk = {.kind = KEEP_TOP_RATIO, .value = s->value_keep};
      V hist = bin(c, "arith.muli", c->warp, c32(c, HIST * 4), "i32");
      Scorer rs = sc;
      rs.value = prune_rank, rs.minf = minf;
      top_k(c, &rs, &cd, cnt, rule_k(c, vk, cnt), add32(c, hist, c32(c, 4 * dp * 4)), &all, &T, &need);
    }
    V tout_on = is_set(c, (V){"%tout"});
    /* the final pass: probabilities, token sums, O += p V over the kept */
    Loop lp;
    V init[1 + 8], a[1 + 8], res[1 + 8];
    const char *ty[1 + 8];
    init[0] = c32(c, 0), ty[0] = "i32";
    for (int t = 0; t < dl; t++)
      init[1 + t] = zero, ty[1 + t] = "f32";
    V chunk = loop_open(c, &lp, cd.lo, cd.hi, c32(c, 32), 1 + dl, init, ty, a);
    V valid;
    V j = cand_at(c, &cd, chunk, &valid);
    V x = score_value(c, &sc, j);
    V p = sel(c, valid, bin(c, "arith.mulf", exp_f32(c, bin(c, "arith.subf", x, m, "f64")), inv, "f32"), zero, "f32");
    em_if(E, and1(c, valid, tout_on));
    atomic_add_f64(c, base, add64(c, pw_tacc(c), mul64(c, ext64(c, j), c64(c, 8))), em(E, "arith.extf %s : f32 to f64", p.s));
    em_end(E);
    V take = valid, beq = c32(c, 0);
    if (s->value_keep < 1.0) {
      V key = order_key(c, rank_value(c, minf, x));
      V eq = and1(c, valid, cmp(c, "eq", key, T, "i64"));
      beq = ballot(c, eq);
      V rank = add32(c, a[0], popc(c, bin(c, "arith.andi", beq, lanes_below(c), "i32")));
      take = and1(c, valid, or1(c, all, or1(c, cmp(c, "ugt", key, T, "i64"), and1(c, eq, cmp(c, "slt", rank, need, "i32")))));
    }
    V pw = sel(c, take, p, zero, "f32");
    V kstride = c64(c, s->layout == LAYOUT_BHSD ? c->D : c->KVH * c->D);
    V vbase = row_offset(c, b, kvh, c32(c, (int)c->KVH), c32(c, 0));
    V cnt32 = bin(c, "arith.minsi", bin(c, "arith.subi", cd.hi, chunk, "i32"), c32(c, 32), "i32");
    V ov[8];
    pv_chunk(c, pw, j, cnt32, vbase, kstride, dl, a + 1, ov);
    V next[1 + 8];
    next[0] = add32(c, a[0], popc(c, beq));
    for (int t = 0; t < dl; t++)
      next[1 + t] = ov[t];
    loop_close(c, &lp, next, res);
    /* the head's importance: sum |O| over the row */
    V hs = zero;
    for (int t = 0; t < dl; t++) {
      V u = em(E, "arith.bitcast %s : f32 to i32", res[1 + t].s);
      V ax = em(E, "arith.bitcast %s : i32 to f32", bin(c, "arith.andi", u, c32(c, INT32_MAX), "i32").s);
      hs = bin(c, "arith.addf", hs, ax, "f32");
    }
    for (int k = 16; k >= 1; k /= 2)
      hs = bin(c, "arith.addf", hs, shfl(c, "bfly", hs, c32(c, k), "f32"), "f32");
    V hout_on = is_set(c, (V){"%hout"});
    em_if(E, and1(c, hout_on, cmp(c, "eq", c->lane, c32(c, 0), "i32")));
    atomic_add_f64(c, base, add64(c, pw_hacc(c), mul64(c, ext64(c, h), c64(c, 8))), em(E, "arith.extf %s : f32 to f64", hs.s));
    em_end(E);
    if_yield(c, dl, res + 1, "f32");
  }
  if_else(c);
  {
    V zs[8];
    for (int t = 0; t < dl; t++)
      zs[t] = zero;
    if_yield(c, dl, zs, "f32"); /* a pruned head or token: zeros */
  }
  if_close(c);
  V out[8];
  for (int t = 0; t < dl; t++)
    out[t] = dl == 1 ? O : em_res(O, t);
  store_row(c, qoff, dl, out);
  em_end(E);
  em_do(E, "gpu.return");
  em_raw(E, "}\n");
}

/* One importance output: value + sum (f64, rounded to f32) where kept,
 * -inf where pruned. */
static void finish_one(C *c, V out, V in, V e, V base, V flag_off, V acc_off) {
  V kept = cmp(c, "ne", gload(c, base, flag_off, "i8"), em_int(E, 0, "i8"), "i8");
  V x = em(E, "arith.truncf %s : f64 to f32", dadd(c, vec_value(c, in, e), gload(c, base, acc_off, "f64")).s);
  gstore(c, sel(c, kept, x, em_float(E, -INFINITY, "f32"), "f32"), out, mul64(c, e, c64(c, 4)), "f32");
}

static void emit_finish(C *c) {
  V tid, bx, by;
  func_open(c, "_finish", &tid, &bx, &by);
  V base = prune_base(c, by);
  V row = add32(c, bin(c, "arith.muli", bx, c32(c, GRID_ROWS), "i32"), tid);
  V tout = {"%tout"}, hout = {"%hout"};
  em_if(E, and1(c, is_set(c, tout), cmp(c, "slt", row, c->S32, "i32")));
  V r64 = ext64(c, row);
  finish_one(c, tout, (V){"%tin"}, add64(c, mul64(c, ext64(c, by), c->S64), r64), base, add64(c, pw_tkept(c), r64),
             add64(c, pw_tacc(c), mul64(c, r64, c64(c, 8))));
  em_end(E);
  em_if(E, and1(c, is_set(c, hout), cmp(c, "eq", bx, c32(c, 0), "i32")));
  Loop l;
  V hh = loop_open(c, &l, tid, c32(c, (int)c->H), c32(c, THREADS), 0, NULL, NULL, NULL);
  V t64 = ext64(c, hh);
  finish_one(c, hout, (V){"%hin"}, add64(c, mul64(c, ext64(c, by), c64(c, c->H)), t64), base, add64(c, pw_hkept(c), t64),
             add64(c, pw_hacc(c), mul64(c, t64, c64(c, 8))));
  loop_close(c, &l, NULL, NULL);
  em_end(E);
  em_do(E, "gpu.return");
  em_raw(E, "}\n");
}

bool cg_cuda_prune_supported(const SaSpec *s, char *why, size_t cap) {
  const char *no = NULL;
  if (s->has_predict || s->n_filter_rounds > 0)
    return cg_cuda_select_supported(s, why, cap); /* pruning after a selection */
  if (s->has_progressive && s->msb_bits + s->lsb_bits > 16)
    no = "the CUDA target's progressive quantization keeps K at most 16 bits wide (msb + lsb)";
  if (no && why)
    snprintf(why, cap, "%s", no);
  return !no;
}

/* The generator's state for plan p: the shape, the launch contract, the
 * kernels' argument names. */
static void gen_init(C *c, const KernelPlan *p) {
  c->p = p;
  c->s = &p->s;
  c->H = p->s.heads;
  c->KVH = p->s.kv_heads;
  c->D = p->s.head_dim;
  sa_cuda_describe(&p->s, &c->geo);
  strcpy(c->S64.s, "%seq");
  strcpy(c->ws.s, "%ws");
  strcpy(c->q.s, "%q");
  strcpy(c->k.s, "%k");
  strcpy(c->v.s, "%v");
  strcpy(c->o.s, "%o");
}

char *cg_cuda_prune_kernels(const KernelPlan *p) {
  C cs = {0}, *c = &cs;
  gen_init(c, p);
  c->importance = true;
  if (!c->geo.pruning || c->geo.threads != THREADS || c->geo.query_tile != WARP_ROWS)
    return NULL; /* the runtime's contract and this generator disagree */
  emit_prune(c);
  emit_prune_attend(c);
  emit_finish(c);
  return em_take(E);
}

bool cg_cuda_select_supported(const SaSpec *s, char *why, size_t cap) {
  const char *no = NULL;
  int stage[SA_MAX_FILTER_ROUNDS + 1];
  int rounds = sa_cuda_select_stages(s, stage);
  for (int r = 0; r < rounds && !no; r++) {
    bool pred = stage[r] < 0;
    const SaFilterRound *f = pred ? NULL : &s->filter[stage[r]];
    int qb = pred ? s->predict_bits : f->q_bits, kb = pred ? s->predict_bits : f->k_bits;
    if (qb > 8 || kb > 8)
      no = "the CUDA target's filter rounds and DSA prediction use grids of at most 8 bits";
  }
  if (!no && s->has_predict && s->predict_dim > 256)
    no = "the CUDA target projects DSA's rows to at most 256 columns";
  if (!no && s->has_progressive && s->msb_bits + s->lsb_bits > 16)
    no = "the CUDA target's progressive quantization keeps K at most 16 bits wide (msb + lsb)";
  if (no && why)
    snprintf(why, cap, "%s", no);
  return !no;
}

char *cg_cuda_select_kernels(const KernelPlan *p) {
  C cs = {0}, *c = &cs;
  gen_init(c, p);
  int stage[SA_MAX_FILTER_ROUNDS + 1];
  c->R = sa_cuda_select_stages(&p->s, stage);
  for (int r = 0; r < c->R; r++) {
    Stage *st = &c->st[r];
    st->predict = stage[r] < 0;
    const SaFilterRound *f = st->predict ? NULL : &p->s.filter[stage[r]];
    st->len = (int)(st->predict ? p->s.predict_dim : c->D);
    st->lp = (st->len + 15) / 16 * 16;
    st->qbits = st->predict ? p->s.predict_bits : f->q_bits;
    st->kbits = st->predict ? p->s.predict_bits : f->k_bits;
    st->keep = st->predict ? p->s.predict_keep : f->keep;
    c->grid_bytes += st->lp;
  }
  if (c->R < 1 || c->R != c->geo.select_rounds || c->grid_bytes != c->geo.grid_bytes || c->geo.threads != THREADS || c->geo.query_tile != WARP_ROWS)
    return NULL; /* the runtime's contract and this generator disagree */
  c->importance = c->geo.pruning;
  emit_grids(c);
  if (c->geo.pruning) { /* SpAtten's pruning after the selection: five kernels */
    emit_prune(c);
    emit_select(c);
    emit_prune_attend(c);
    emit_finish(c);
  } else {
    emit_select(c);
    emit_attend(c);
  }
  return em_take(E);
}
