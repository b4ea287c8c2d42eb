/* kernel.c: the CUDA code generator. One fused, flash-style attention
 * kernel per spec, written as a gpu.func in the gpu, nvvm, llvm, scf and
 * arith dialects; MLIR's NVVM target and LLVM's NVPTX back end turn it
 * into PTX (docs/cuda.md).
 *
 * Shape of the kernel (sm_80 and later). A block of 4 warps owns 64 query
 * rows of one (batch, head); each warp owns 16 of them. The Q tile stays in
 * shared memory (and in registers when head_dim <= 128); K and V tiles of
 * BN keys stream through two shared buffers with cp.async, the next tile
 * loading while the current one is used. Per tile:
 *   S = Q K^T       mma.sync m16n8k16, A from ldmatrix (Q), B from ldmatrix (K)
 *   mask            only on tiles the closed-form facts cannot prove full
 *   N:M             groups ranked in registers, losers set to -inf (nm_select);
 *                   keeping at most 2 of 4: kept scores compressed (nm_compress)
 *   online softmax  row max and sum across the 4 lanes that share a row
 *   O += P V        P goes from the accumulators' layout to the A operand's
 *                   in registers (it is the same layout); V by ldmatrix.trans;
 *                   compressed N:M by mma.sp on half the work (pv_sparse)
 * Key tiles outside the mask's closed-form bounds are never loaded; inside
 * them, tiles that mask_tile_facts proves empty are skipped when choosing
 * the next tile to load. Shared rows are padded by 16 bytes so that the 8
 * row addresses of an ldmatrix fall in different banks.
 *
 * Numbers: inputs fp16 or bf16, products and sums in f32 (the mma
 * accumulators), P rounded to the input type for the second mma, as every
 * flash kernel does; exp2 by ex2.approx on scores pre-scaled by log2(e).
 *
 * fp32 inputs go through the tf32 mma (m16n8k8): Q, K, V and P are rounded
 * to tf32 (cvt.rna, 10 explicit mantissa bits) as they enter it, which is
 * what PyTorch's allow_tf32 does. ldmatrix moves 16-bit elements, so the
 * fragments are single 4-byte shared loads, laid out so that the 32 lanes
 * hit 32 banks (rows padded by 4 elements). The score accumulators of an
 * 8-key block become P's A operand without moving between lanes: lane
 * (g, t) holds keys 2t and 2t+1, and the A operand wants keys t and t+4, so
 * P V runs over the block's keys in the order (0, 2, 4, 6, 1, 3, 5, 7),
 * and V's B fragments are loaded in that order too. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../codegen.h"
#include "../emit.h"
#include "../mask.h"
#include "sattn/cuda.h"

enum { WARPS = 4, THREADS = 128, BM = 64 };
#define LAZY_RESCALE 8.0 /* log2 units a row's maximum may pass its softmax offset by */

typedef struct {
  Em e;
  const KernelPlan *p;
  const SaSpec *s;
  int64_t H, KVH, D;
  int Dp, BN, STR; /* head_dim padded to the mma's k; keys per tile; shared row stride (elements) */
  int qbytes, kvbytes; /* bytes of the Q tile and of one K (or V) buffer */
  int es;       /* bytes of an input element: 2, or 4 for fp32 (tf32 mma) */
  bool tf32;    /* fp32 inputs */
  bool async;   /* rows of 16-byte multiples: cp.async */
  bool q_regs;  /* Q fragments held in registers */
  bool sparse;  /* N:M keeping at most 2 of each 4 keys: P V by mma.sp (nm_compress) */
  bool lane_groups; /* lane t holds keys 4t .. 4t + 3 of each 16-key step (key_col) */
  const char *et; /* "f16", "bf16" or "tf32" */
  V smem, tid, lane, warp, g, tq, S32, S64;
  V l8, l8b, l16; /* lane % 8, (lane / 8) % 2, lane / 16: the parts of ldmatrix row addresses */
  V q, k, v, o;
} G;

#define E (&c->e)

bool cg_cuda_supported(const SaSpec *s, char *why, size_t cap) {
  const char *no = NULL;
  if (s->storage != DT_FP16 && s->storage != DT_BF16 && s->storage != DT_FP32)
    no = "the CUDA target reads fp16, bf16 or fp32 storage";
  else if (s->output != DT_FP32 && s->output != DT_FP16 && s->output != DT_BF16)
    no = "the CUDA target writes fp32, fp16 or bf16 outputs";
  else if (s->head_dim > 256)
    no = "the CUDA target supports head_dim up to 256";
  else if (s->has_predict || s->n_filter_rounds > 0)
    return cg_cuda_select_supported(s, why, cap);
  else if (s->token_keep < 1 || s->head_keep < 1 || s->value_keep < 1 || s->has_progressive ||
           (s->nm_m > 0 && 8 % s->nm_m != 0))
    return cg_cuda_prune_supported(s, why, cap); /* groups past the flash kernel's 8-key blocks: the row kernel */
  if (no && why)
    snprintf(why, cap, "%s", no);
  return !no;
}

/* ---- small emitters ---- */

static V c32(G *c, int64_t x) { return em_int(E, x, "i32"); }
static V c64(G *c, int64_t x) { return em_int(E, x, "i64"); }
static V bin(G *c, const char *op, V a, V b, const char *ty) { return em(E, "%s %s, %s : %s", op, a.s, b.s, ty); }
static V add(G *c, V a, V b) { return bin(c, "arith.addi", a, b, "i32"); }
static V addk(G *c, V a, int64_t k) { return k ? add(c, a, c32(c, k)) : a; }
static V mul(G *c, V a, V b) { return bin(c, "arith.muli", a, b, "i32"); }
static V mulk(G *c, V a, int64_t k) { return mul(c, a, c32(c, k)); }
static V cmp(G *c, const char *pred, V a, V b, const char *ty) {
  return em(E, "arith.cmpi %s, %s, %s : %s", pred, a.s, b.s, ty);
}
static V sel(G *c, V cond, V a, V b, const char *ty) {
  return em(E, "arith.select %s, %s, %s : %s", cond.s, a.s, b.s, ty);
}
static V ext64(G *c, V x) { return em(E, "arith.extsi %s : i32 to i64", x.s); }
static V fadd(G *c, V a, V b) { return bin(c, "arith.addf", a, b, "f32"); }
static V fmul(G *c, V a, V b) { return bin(c, "arith.mulf", a, b, "f32"); }
static V fsub(G *c, V a, V b) { return bin(c, "arith.subf", a, b, "f32"); }
static V fmaxv(G *c, V a, V b) { return bin(c, "arith.maximumf", a, b, "f32"); }
static V ex2(G *c, V x) { return em(E, "llvm.inline_asm \"ex2.approx.ftz.f32 $0, $1;\", \"=f,f\" %s : (f32) -> f32", x.s); }
static V shfl_xor(G *c, V x, int lanes) {
  V all = em(E, "llvm.mlir.constant(-1 : i32) : i32");
  return em(E, "nvvm.shfl.sync bfly %s, %s, %s, %s : f32 -> f32", all.s, x.s, c32(c, lanes).s, c32(c, 31).s);
}

static V shfl_xor_i32(G *c, V x, int lanes) {
  V all = em(E, "llvm.mlir.constant(-1 : i32) : i32");
  return em(E, "nvvm.shfl.sync bfly %s, %s, %s, %s : i32 -> i32", all.s, x.s, c32(c, lanes).s, c32(c, 31).s);
}

/* The key (offset in the tile) of this lane's score accumulator e (0, 1)
 * of 8-key block nb. Normally lane (g, t) holds keys 8 nb + 2t + e. For
 * N:M with groups of 4 (c->lane_groups) the K rows of each 16-key step go
 * in so that lane t holds the step's whole group of keys 4t .. 4t + 3:
 * block 2j + h has keys 16 j + 4t + 2h + e. */
static V key_col(G *c, int nb, int e) {
  if (c->lane_groups)
    return addk(c, mulk(c, c->tq, 4), 16 * (nb / 2) + 2 * (nb % 2) + e);
  return addk(c, mulk(c, c->tq, 2), nb * 8 + e);
}

/* With c->lane_groups, the key (row of a 16-key step) that lane l8 of the
 * 8-key block h of that step holds: 4 (l8 / 2) + 2 h + l8 % 2. */
static V group_row(G *c, V h) {
  return add(c, add(c, mulk(c, bin(c, "arith.shrui", c->l8, c32(c, 1), "i32"), 4), mulk(c, h, 2)),
             bin(c, "arith.andi", c->l8, c32(c, 1), "i32"));
}

/* A shared-memory address `bytes` into the dynamic shared block. */
static V sptr(G *c, V bytes) {
  return em(E, "llvm.getelementptr %s[%s] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8", c->smem.s, bytes.s);
}
/* A global address of element `off` (i64) of `base`, elements of type ty. */
static V gptr(G *c, V base, V off, const char *ty) {
  return em(E, "llvm.getelementptr %s[%s] : (!llvm.ptr<1>, i64) -> !llvm.ptr<1>, %s", base.s, off.s, ty);
}

/* ldmatrix .x4 at a shared byte offset; trans for the B operand of P V. */
static void ldsm4(G *c, V bytes, bool trans, V out[4]) {
  V r = em(E,
           "nvvm.ldmatrix %s {eltType = #nvvm.ld_st_matrix_elt_type<b16>, layout = #nvvm.mma_layout<%s>, num = 4 : "
           "i32, shape = #nvvm.ld_st_matrix_shape<m = 8, n = 8>} : (!llvm.ptr<3>) -> !llvm.struct<(i32, i32, i32, i32)>",
           sptr(c, bytes).s, trans ? "col" : "row");
  for (int i = 0; i < 4; i++)
    out[i] = em(E, "llvm.extractvalue %s[%d] : !llvm.struct<(i32, i32, i32, i32)>", r.s, i);
}

/* The four f32 of an mma's result struct r into acc. */
static void unpack4(G *c, V r, V acc[4]) {
  for (int i = 0; i < 4; i++)
    acc[i] = em(E, "llvm.extractvalue %s[%d] : !llvm.struct<(f32, f32, f32, f32)>", r.s, i);
}

/* A packed pair (i32) as an mma operand: vector<2xf16> for f16, the i32
 * itself for bf16 (whose type the op's attributes name). */
static const char *operand_type(G *c) { return strcmp(c->et, "f16") ? "i32" : "vector<2xf16>"; }
static V operand(G *c, V w) {
  return strcmp(c->et, "f16") ? w : em(E, "llvm.bitcast %s : i32 to vector<2xf16>", w.s);
}

/* acc += A B for one m16n8k16 tile; a and b hold packed pairs (i32). */
static void mma(G *c, const V a[4], const V b[2], V acc[4]) {
  V x[6];
  for (int i = 0; i < 6; i++)
    x[i] = operand(c, i < 4 ? a[i] : b[i - 4]);
  const char *ot = operand_type(c);
  V r = em(E,
           "nvvm.mma.sync A[%s, %s, %s, %s] B[%s, %s] C[%s, %s, %s, %s] {layoutA = #nvvm.mma_layout<row>, layoutB = "
           "#nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<%s>, multiplicandBPtxType = "
           "#nvvm.mma_type<%s>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (%s, %s, f32) -> !llvm.struct<(f32, "
           "f32, f32, f32)>",
           x[0].s, x[1].s, x[2].s, x[3].s, x[4].s, x[5].s, acc[0].s, acc[1].s, acc[2].s, acc[3].s, c->et, c->et, ot,
           ot);
  unpack4(c, r, acc);
}

/* Two f32 rounded to the input type and packed in an i32 (lower index in
 * the low half, as the mma operands want). */
static V pack2(G *c, V lo, V hi) {
  V u = em(E, "llvm.mlir.undef : vector<2xf32>");
  u = em(E, "llvm.insertelement %s, %s[%s : i32] : vector<2xf32>", lo.s, u.s, c32(c, 0).s);
  u = em(E, "llvm.insertelement %s, %s[%s : i32] : vector<2xf32>", hi.s, u.s, c32(c, 1).s);
  V h = em(E, "llvm.fptrunc %s : vector<2xf32> to vector<2x%s>", u.s, c->et);
  return em(E, "llvm.bitcast %s : vector<2x%s> to i32", h.s, c->et);
}

/* ---- pieces of the kernel ---- */

/* Element offset (i64) of row `row` (i32) of head (b, h) of a tensor with
 * nh heads, in the spec's layout. */
static V row_offset(G *c, V b, V h, int64_t nh, V row) {
  V r64 = ext64(c, row), b64 = ext64(c, b), h64 = ext64(c, h);
  V x;
  if (c->s->layout == LAYOUT_BHSD) {
    V bh = bin(c, "arith.addi", bin(c, "arith.muli", b64, c64(c, nh), "i64"), h64, "i64");
    x = bin(c, "arith.addi", bin(c, "arith.muli", bh, c->S64, "i64"), r64, "i64");
  } else {
    V bs = bin(c, "arith.addi", bin(c, "arith.muli", b64, c->S64, "i64"), r64, "i64");
    x = bin(c, "arith.addi", bin(c, "arith.muli", bs, c64(c, nh), "i64"), h64, "i64");
  }
  return bin(c, "arith.muli", x, c64(c, c->D), "i64");
}

/* Copies rows [row0, row0 + rows) of head (b, h) of `src` (nh heads) into
 * the shared tile at byte `dst`: head_dim columns, zeros in the padding
 * columns and in rows at or past seq. With 16-byte rows this is cp.async
 * (src-size 0 fills zeros); otherwise plain loads and stores. */
static void load_tile(G *c, V src, V b, V h, int64_t nh, V row0, int rows, V dst) {
  int64_t D = c->D;
  int es = c->es;
  if (c->async) {
    int cpe = 16 / es, cpr = c->Dp / cpe, total = rows * cpr; /* elements per copy, copies per row */
    int iters = (total + THREADS - 1) / THREADS;
    V lo = c32(c, 0), hi = c32(c, iters), one = c32(c, 1);
    V it = em_fresh(E);
    em_do(E, "scf.for %s = %s to %s step %s : i32 {", it.s, lo.s, hi.s, one.s);
    E->depth++;
    V ch = add(c, c->tid, mulk(c, it, THREADS));
    if (total % THREADS)
      em_if(E, cmp(c, "slt", ch, c32(c, total), "i32"));
    V r = bin(c, "arith.divui", ch, c32(c, cpr), "i32");
    V col = mulk(c, bin(c, "arith.remui", ch, c32(c, cpr), "i32"), cpe);
    V gr = add(c, row0, r);
    V valid = cmp(c, "slt", gr, c->S32, "i32");
    V left = bin(c, "arith.subi", c32(c, D), col, "i32");
    left = bin(c, "arith.maxsi", bin(c, "arith.minsi", left, c32(c, cpe), "i32"), c32(c, 0), "i32");
    V bytes = sel(c, valid, mulk(c, left, es), c32(c, 0), "i32");
    V srow = bin(c, "arith.minsi", gr, bin(c, "arith.subi", c->S32, c32(c, 1), "i32"), "i32");
    V scol = bin(c, "arith.minsi", col, c32(c, D - cpe), "i32");
    V goff = bin(c, "arith.addi", row_offset(c, b, h, nh, srow), ext64(c, scol), "i64");
    V gp = gptr(c, src, goff, es == 4 ? "i32" : "i16");
    V sp = sptr(c, add(c, dst, mulk(c, add(c, mulk(c, r, c->STR), col), es)));
    em_do(E, "nvvm.cp.async.shared.global %s, %s, 16, cache = cg, %s : !llvm.ptr<3>, !llvm.ptr<1>, i32", sp.s, gp.s,
          bytes.s);
    if (total % THREADS)
      em_end(E);
    em_end(E);
    return;
  }
  int total = rows * c->Dp;
  V step = c32(c, THREADS), hi = c32(c, total);
  V el = em_fresh(E);
  em_do(E, "scf.for %s = %s to %s step %s : i32 {", el.s, c->tid.s, hi.s, step.s);
  E->depth++;
  V r = bin(c, "arith.divui", el, c32(c, c->Dp), "i32");
  V col = bin(c, "arith.remui", el, c32(c, c->Dp), "i32");
  V gr = add(c, row0, r);
  V valid = bin(c, "arith.andi", cmp(c, "slt", gr, c->S32, "i32"), cmp(c, "slt", col, c32(c, D), "i32"), "i1");
  V srow = bin(c, "arith.minsi", gr, bin(c, "arith.subi", c->S32, c32(c, 1), "i32"), "i32");
  V scol = bin(c, "arith.minsi", col, c32(c, D - 1), "i32");
  V goff = bin(c, "arith.addi", row_offset(c, b, h, nh, srow), ext64(c, scol), "i64");
  const char *it = es == 4 ? "i32" : "i16";
  V x = em(E, "llvm.load %s : !llvm.ptr<1> -> %s", gptr(c, src, goff, it).s, it);
  x = sel(c, valid, x, em_int(E, 0, it), it);
  V sp = sptr(c, add(c, dst, mulk(c, add(c, mulk(c, r, c->STR), col), es)));
  em_do(E, "llvm.store %s, %s : %s, !llvm.ptr<3>", x.s, sp.s, it);
  em_end(E);
}

/* The first tile index in [t, t_hi) that the mask may need for rows
 * [i0, i1) (i64), or t_hi. */
static V next_tile(G *c, V t, V t_hi, V i0, V i1) {
  if (!c->p->mask)
    return t;
  V w = em_fresh(E), a = em_fresh(E);
  em_do(E, "%s = scf.while (%s = %s) : (i32) -> i32 {", w.s, a.s, t.s);
  E->depth++;
  V k0 = ext64(c, mulk(c, a, c->BN));
  V k1 = bin(c, "arith.addi", k0, c64(c, c->BN), "i64");
  V need, full;
  mask_tile_facts(E, c->p->mask, i0, i1, k0, k1, &need, &full);
  V in = cmp(c, "slt", a, t_hi, "i32");
  V go = bin(c, "arith.andi", in, bin(c, "arith.xori", need, em_int(E, 1, "i1"), "i1"), "i1");
  em_do(E, "scf.condition(%s) %s : i32", go.s, a.s);
  E->depth--;
  V a2 = em_fresh(E);
  em_do(E, "} do {");
  em_do(E, "^bb0(%s: i32):", a2.s);
  E->depth++;
  em_do(E, "scf.yield %s : i32", addk(c, a2, 1).s);
  E->depth--;
  em_do(E, "}");
  return w;
}

/* Starts the loads of key tile t (K and V) into buffer buf, when t < t_hi. */
static void load_kv(G *c, V t, V t_hi, V buf, V b, V kvh) {
  em_if(E, cmp(c, "slt", t, t_hi, "i32"));
  V row0 = mulk(c, t, c->BN);
  V kdst = add(c, c32(c, c->qbytes), mulk(c, buf, c->kvbytes));
  V vdst = add(c, c32(c, c->qbytes + 2 * c->kvbytes), mulk(c, buf, c->kvbytes));
  load_tile(c, c->k, b, kvh, c->KVH, row0, c->BN, kdst);
  load_tile(c, c->v, b, kvh, c->KVH, row0, c->BN, vdst);
  em_end(E);
}

/* Names "%x, %y, ..." of n values into buf. */
static void list(char *buf, size_t cap, const V *v, int n) {
  size_t at = 0;
  buf[0] = 0;
  for (int i = 0; i < n && at < cap; i++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", v[i].s);
}
static void types(char *buf, size_t cap, const char *ty, int n) {
  size_t at = 0;
  buf[0] = 0;
  for (int i = 0; i < n && at < cap; i++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", ty);
}

#define MAX_NB 32 /* n8 blocks of the score tile (BN / 8) or of head_dim (Dp / 8) */

typedef struct {
  V o[MAX_NB][4]; /* O accumulators: block nb of head_dim, (row g, g + 8) x (2 tq, 2 tq + 1) */
  V m[2], l[2];   /* running max (log2 units) and this lane's part of the row sum */
} Acc;

/* The key loop's carried values after (t, buf): O's accumulators, m, l. */
static int acc_flatten(const Acc *a, int nbo, V *out) {
  int n = 0;
  for (int nb = 0; nb < nbo; nb++)
    for (int r = 0; r < 4; r++)
      out[n++] = a->o[nb][r];
  out[n++] = a->m[0], out[n++] = a->m[1], out[n++] = a->l[0], out[n++] = a->l[1];
  return n;
}

static void acc_unflatten(Acc *a, int nbo, const V *in) {
  int n = 0;
  for (int nb = 0; nb < nbo; nb++)
    for (int r = 0; r < 4; r++)
      a->o[nb][r] = in[n++];
  a->m[0] = in[n++], a->m[1] = in[n++], a->l[0] = in[n++], a->l[1] = in[n++];
}

/* Byte offsets of the K and V buffers `buf` in shared memory. */
static V k_base(G *c, V buf) { return add(c, c32(c, c->qbytes), mulk(c, buf, c->kvbytes)); }
static V v_base(G *c, V buf) { return add(c, c32(c, c->qbytes + 2 * c->kvbytes), mulk(c, buf, c->kvbytes)); }

/* S = Q K^T for 16-bit inputs: m16n8k16, fragments by ldmatrix. */
static void scores_16(G *c, V buf, const V qf[][4], V s[][4]) {
  int nbs = c->BN / 8, ks = c->Dp / 16;
  V l8 = c->l8, l8b = c->l8b, l16 = c->l16;
  /* K as B of Q K^T: matrices (keys 0-7, d 0-7), (0-7, 8-15), (8-15, 0-7),
   * (8-15, 8-15), each 8-key block's rows in key_col's order. */
  V krow = add(c, l8, mulk(c, l16, 8)), kcol = mulk(c, l8b, 8);
  if (c->lane_groups) /* block h of a 16-key step: keys 4 (n / 2) + 2 h + n % 2 */
    krow = group_row(c, l16);
  V koff = add(c, k_base(c, buf), mulk(c, add(c, mulk(c, krow, c->STR), kcol), 2));
  V qoff = {{0}};
  if (!c->q_regs) {
    V qrow = add(c, mulk(c, c->warp, 16), add(c, l8, mulk(c, l8b, 8)));
    qoff = mulk(c, add(c, mulk(c, qrow, c->STR), mulk(c, l16, 8)), 2);
  }
  for (int k = 0; k < ks; k++) {
    V a[4];
    if (c->q_regs)
      memcpy(a, qf[k], sizeof a);
    else
      ldsm4(c, addk(c, qoff, k * 32), false, a);
    for (int np = 0; np < nbs / 2; np++) {
      V bf[4];
      ldsm4(c, addk(c, koff, (np * 16 * c->STR + k * 16) * 2), false, bf);
      mma(c, a, bf, s[2 * np]);
      mma(c, a, bf + 2, s[2 * np + 1]);
    }
  }
}

/* O += P V for 16-bit inputs. The accumulators of score blocks 2kk and
 * 2kk+1 are, lane for lane, the A operand of keys [16 kk, 16 kk + 16)
 * (in key_col's order, which V's rows follow). */
static void pv_16(G *c, V buf, V s[][4], Acc *acc) {
  int nbs = c->BN / 8, nbo = c->Dp / 8;
  /* V as B of P V (transposed): (keys 0-7, d 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15). */
  V vrow = c->lane_groups ? group_row(c, c->l8b) : add(c, c->l8, mulk(c, c->l8b, 8)), vcol = mulk(c, c->l16, 8);
  V voff = add(c, v_base(c, buf), mulk(c, add(c, mulk(c, vrow, c->STR), vcol), 2));
  for (int kk = 0; kk < nbs / 2; kk++) {
    V a[4] = {pack2(c, s[2 * kk][0], s[2 * kk][1]), pack2(c, s[2 * kk][2], s[2 * kk][3]),
              pack2(c, s[2 * kk + 1][0], s[2 * kk + 1][1]), pack2(c, s[2 * kk + 1][2], s[2 * kk + 1][3])};
    for (int dp = 0; dp < nbo / 2; dp++) {
      V bf[4];
      ldsm4(c, addk(c, voff, (kk * 16 * c->STR + dp * 16) * 2), true, bf);
      mma(c, a, bf, acc->o[2 * dp]);
      mma(c, a, bf + 2, acc->o[2 * dp + 1]);
    }
  }
}

/* An f32 rounded to tf32 (to nearest, ties away), as the mma operand. */
static V tf32(G *c, V x) {
  return em(E, "llvm.inline_asm \"cvt.rna.tf32.f32 $0, $1;\", \"=r,f\" %s : (f32) -> i32", x.s);
}

/* The f32 at shared byte offset `bytes`, rounded to tf32. */
static V lds_tf32(G *c, V bytes) { return tf32(c, em(E, "llvm.load %s : !llvm.ptr<3> -> f32", sptr(c, bytes).s)); }

/* acc += A B for one m16n8k8 tf32 tile. */
static void mma_tf32(G *c, const V a[4], const V b[2], V acc[4]) {
  V r = em(E,
           "nvvm.mma.sync A[%s, %s, %s, %s] B[%s, %s] C[%s, %s, %s, %s] {layoutA = #nvvm.mma_layout<row>, layoutB = "
           "#nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<tf32>, multiplicandBPtxType = "
           "#nvvm.mma_type<tf32>, shape = #nvvm.shape<m = 16, n = 8, k = 8>} : (i32, i32, f32) -> "
           "!llvm.struct<(f32, f32, f32, f32)>",
           a[0].s, a[1].s, a[2].s, a[3].s, b[0].s, b[1].s, acc[0].s, acc[1].s, acc[2].s, acc[3].s);
  unpack4(c, r, acc);
}

/* Q's A fragments of k step k (columns 8k to 8k + 8) from the shared Q
 * tile: (row g, col t), (g + 8, t), (g, t + 4), (g + 8, t + 4) of the warp's
 * 16 rows. */
static void q_frag_tf32(G *c, int k, V a[4]) {
  V row = add(c, mulk(c, c->warp, 16), c->g);
  V off = mulk(c, add(c, mulk(c, row, c->STR), addk(c, c->tq, 8 * k)), 4);
  for (int i = 0; i < 4; i++)
    a[i] = lds_tf32(c, addk(c, off, ((i & 1) * 8 * c->STR + (i >> 1) * 4) * 4));
}

/* S = Q K^T for fp32 inputs: m16n8k8 tf32. K's B fragment of key block nb
 * is (key g, d t) and (key g, d t + 4). */
static void scores_tf32(G *c, V buf, const V qf[][4], V s[][4]) {
  int nbs = c->BN / 8, ks = c->Dp / 8;
  V koff = add(c, k_base(c, buf), mulk(c, add(c, mulk(c, c->g, c->STR), c->tq), 4));
  for (int k = 0; k < ks; k++) {
    V a[4];
    if (c->q_regs)
      memcpy(a, qf[k], sizeof a);
    else
      q_frag_tf32(c, k, a);
    for (int nb = 0; nb < nbs; nb++) {
      int at = (nb * 8 * c->STR + k * 8) * 4;
      V b[2] = {lds_tf32(c, addk(c, koff, at)), lds_tf32(c, addk(c, koff, at + 16))};
      mma_tf32(c, a, b, s[nb]);
    }
  }
}

/* O += P V for fp32 inputs, 8 keys per k step. Lane (g, t) holds P at keys
 * 2t and 2t + 1 of rows g and g + 8; taken as the A operand's columns t and
 * t + 4, they need V's rows 2t and 2t + 1 as the B operand's rows t and
 * t + 4: (key 2t, d g) and (key 2t + 1, d g). */
static void pv_tf32(G *c, V buf, V s[][4], Acc *acc) {
  int nbs = c->BN / 8, nbo = c->Dp / 8;
  V voff = add(c, v_base(c, buf), mulk(c, add(c, mulk(c, mulk(c, c->tq, 2), c->STR), c->g), 4));
  for (int kk = 0; kk < nbs; kk++) {
    V a[4] = {tf32(c, s[kk][0]), tf32(c, s[kk][2]), tf32(c, s[kk][1]), tf32(c, s[kk][3])};
    for (int nb = 0; nb < nbo; nb++) {
      int at = (kk * 8 * c->STR + nb * 8) * 4;
      V b[2] = {lds_tf32(c, addk(c, voff, at)), lds_tf32(c, addk(c, voff, at + c->STR * 4))};
      mma_tf32(c, a, b, acc->o[nb]);
    }
  }
}

/* One key tile: S, mask, online softmax, O += P V. */
/* N:M (docs/semantics.md 4.7) on the score tile, in registers, after the
 * mask. Lane (g, t) holds keys 8 nb + 2t + e (e = 0, 1) of rows g and
 * g + 8, so a group of M <= 8 keys lies in one 8-key block, on the M / 2
 * lanes t ^ x (x < M / 2) of the quad: each lane takes its partners' two
 * scores by butterfly shuffles. A score's rank counts the group's
 * candidates that beat it (a larger score, or an equal one at a lower
 * key, a NaN after every number, as ref_rank_cmp orders them); ranks N
 * and worse become -inf, so softmax and P V give them
 * nothing. The scores ranked are the f32 accumulators of rounded inputs:
 * where two of a group lie within f32 rounding of a tie, the choice can
 * differ from the reference's f64 (docs/cuda.md). */
static void nm_select(G *c, V s[][4], int nbs) {
  int M = (int)c->s->nm_m, N = (int)c->s->nm_n;
  if (N >= M)
    return; /* every candidate kept */
  V ninf = em_float(E, -INFINITY, "f32");
  int nx = M / 2; /* lanes per group */
  V lower[4];     /* whether partner lane t ^ x holds lower keys than this lane */
  for (int x = 1; x < nx; x++)
    lower[x] = cmp(c, "ult", bin(c, "arith.xori", c->tq, c32(c, x), "i32"), c->tq, "i32");
  for (int nb = 0; nb < nbs; nb++)
    for (int hr = 0; hr < 2; hr++) {
      V val[4][2];
      for (int x = 0; x < nx; x++)
        for (int e = 0; e < 2; e++)
          val[x][e] = x ? shfl_xor(c, s[nb][2 * hr + e], x) : s[nb][2 * hr + e];
      V kept[2];
      for (int e = 0; e < 2; e++) {
        V me = val[0][e], rank = c32(c, 0);
        for (int x = 0; x < nx; x++)
          for (int f = 0; f < 2; f++) {
            if (x == 0 && f == e)
              continue;
            V other = val[x][f];
            V first = x ? lower[x] : em_int(E, f < e, "i1"); /* the other key is the lower one */
            /* the reference's order: a NaN after every number, NaNs among
             * themselves and equal numbers by key; -inf is no candidate */
            V nan_o = em(E, "arith.cmpf uno, %s, %s : f32", other.s, other.s);
            V nan_m = em(E, "arith.cmpf uno, %s, %s : f32", me.s, me.s);
            V tie = bin(c, "arith.ori", em(E, "arith.cmpf oeq, %s, %s : f32", other.s, me.s),
                        bin(c, "arith.andi", nan_o, nan_m, "i1"), "i1");
            V num_over_nan = bin(c, "arith.andi", nan_m, bin(c, "arith.xori", nan_o, em_int(E, 1, "i1"), "i1"), "i1");
            V beats = bin(c, "arith.ori", em(E, "arith.cmpf ogt, %s, %s : f32", other.s, me.s),
                          bin(c, "arith.ori", num_over_nan, bin(c, "arith.andi", tie, first, "i1"), "i1"), "i1");
            beats = bin(c, "arith.andi", beats, em(E, "arith.cmpf une, %s, %s : f32", other.s, ninf.s), "i1");
            rank = add(c, rank, em(E, "arith.extui %s : i1 to i32", beats.s));
          }
        kept[e] = sel(c, cmp(c, "slt", rank, c32(c, N), "i32"), me, ninf, "f32");
      }
      for (int e = 0; e < 2; e++)
        s[nb][2 * hr + e] = kept[e];
    }
}

/* A signed integer that orders scores as N:M's strict ranking does:
 * numbers by value (the float's bits, negative numbers' magnitude
 * negated, so that -0 = +0), below them every NaN, below those -inf (no
 * candidate). Ties go to the lower key, so a (the lower key) ranks before
 * b iff key(a) >= key(b). Among candidates this is the reference's order
 * (ref_rank_cmp); ranking -inf too makes every rank in a group distinct. */
static V rank_key(G *c, V x) {
  V u = em(E, "llvm.bitcast %s : f32 to i32", x.s);
  V mag = bin(c, "arith.andi", u, c32(c, 0x7fffffff), "i32");
  V k = sel(c, cmp(c, "slt", u, c32(c, 0), "i32"), bin(c, "arith.subi", c32(c, 0), mag, "i32"), u, "i32");
  k = sel(c, em(E, "arith.cmpf uno, %s, %s : f32", x.s, x.s), c32(c, -0x7f800000), k, "i32"); /* -inf's own */
  return sel(c, cmp(c, "eq", u, c32(c, (int32_t)0xff800000), "i32"), c32(c, INT32_MIN), k, "i32");
}

static V not1(G *c, V a) { return bin(c, "arith.xori", a, em_int(E, 1, "i1"), "i1"); }
static V and1(G *c, V a, V b) { return bin(c, "arith.andi", a, b, "i1"); }
static V or1(G *c, V a, V b) { return bin(c, "arith.ori", a, b, "i1"); }
/* At least two of a, b, d. */
static V maj3(G *c, V a, V b, V d) { return or1(c, and1(c, a, b), and1(c, d, or1(c, a, b))); }

/* The comparisons nm_compress ranks by, for each of this lane's groups
 * (4 scores x[g][0..3] in key order): the pairs (0,1), (0,2), (0,3),
 * (1,2), (1,3), (2,3), or with M = 2 the pairs (0,1) and (2,3); each
 * true when the lower key ranks first. With no NaN among the lane's
 * scores that is a >= b on the floats (-inf last, -0 = +0, ties to the
 * lower key); a lane that holds a NaN takes rank_key's integers instead,
 * which rank NaNs after every number and before -inf. */
static const int pair_of[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};

static void rank_compares(G *c, V x[][4], int ng, int M, V out[][6]) {
  int np = M == 2 ? 2 : 6;
  const int(*pairs)[2] = pair_of;
  static const int pair2[2][2] = {{0, 1}, {2, 3}};
  if (M == 2)
    pairs = pair2;
  V nan = em_int(E, 0, "i1");
  for (int g = 0; g < ng; g++)
    for (int i = 0; i < 4; i += 2)
      nan = or1(c, nan, em(E, "arith.cmpf uno, %s, %s : f32", x[g][i].s, x[g][i + 1].s));
  char tys[1024];
  types(tys, sizeof tys, "i1", ng * np);
  V r = em_multi(E, ng * np, "scf.if %s -> (%s) {", nan.s, tys);
  for (int slow = 1; slow >= 0; slow--) {
    E->depth++;
    V v[MAX_NB * 3];
    for (int g = 0; g < ng; g++) {
      V key[4];
      for (int i = 0; slow && i < 4; i++)
        key[i] = rank_key(c, x[g][i]);
      for (int q = 0; q < np; q++) {
        int i = pairs[q][0], j = pairs[q][1];
        v[g * np + q] = slow ? cmp(c, "sge", key[i], key[j], "i32")
                             : em(E, "arith.cmpf oge, %s, %s : f32", x[g][i].s, x[g][j].s);
      }
    }
    char names[4096];
    list(names, sizeof names, v, ng * np);
    em_do(E, "scf.yield %s : %s", names, tys);
    E->depth--;
    em_do(E, slow ? "} else {" : "}");
  }
  for (int g = 0; g < ng; g++)
    for (int q = 0; q < np; q++)
      out[g][q] = em_res(r, g * np + q);
}

/* This lane's groups of 4 keys (c->lane_groups), x[2 kk + hr] for step kk
 * and row half hr, in key order, and their rank_compares. */
static void lane_groups(G *c, V s[][4], int nbs, V x[][4], V before[][6]) {
  for (int kk = 0; kk < nbs / 2; kk++)
    for (int hr = 0; hr < 2; hr++) {
      V *g = x[2 * kk + hr];
      g[0] = s[2 * kk][2 * hr], g[1] = s[2 * kk][2 * hr + 1], g[2] = s[2 * kk + 1][2 * hr], g[3] = s[2 * kk + 1][2 * hr + 1];
    }
  rank_compares(c, x, nbs, (int)c->s->nm_m, before);
}

/* N:M 3:4 with lane_groups: each lane drops the last of its groups (the
 * key that every other key of the group ranks before) to -inf, for the
 * dense P V; no other lane takes part. */
static void nm_drop_last(G *c, V s[][4], int nbs) {
  V ninf = em_float(E, -INFINITY, "f32");
  V x[MAX_NB][4], b[MAX_NB][6];
  lane_groups(c, s, nbs, x, b);
  for (int kk = 0; kk < nbs / 2; kk++)
    for (int hr = 0; hr < 2; hr++) {
      V *q = b[2 * kk + hr], *g = x[2 * kk + hr];
      /* q[0..5] = (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) */
      V last[4] = {and1(c, and1(c, not1(c, q[0]), not1(c, q[1])), not1(c, q[2])),
                   and1(c, and1(c, q[0], not1(c, q[3])), not1(c, q[4])), and1(c, and1(c, q[1], q[3]), not1(c, q[5])),
                   and1(c, and1(c, q[2], q[4]), q[5])};
      V kept[4];
      for (int i = 0; i < 4; i++)
        kept[i] = sel(c, last[i], ninf, g[i], "f32");
      s[2 * kk][2 * hr] = kept[0], s[2 * kk][2 * hr + 1] = kept[1];
      s[2 * kk + 1][2 * hr] = kept[2], s[2 * kk + 1][2 * hr + 1] = kept[3];
    }
}

/* N:M for mma.sp (c->sparse: M = 4 with N <= 2, or 1:2). Lane t holds
 * the whole group of keys 4t .. 4t + 3 of each 16-key step kk (key_col),
 * for rows g and g + 8, so the ranking needs no other lane. Each group
 * gives the mma.sp its two positions i0 < i1 (every kept key among them;
 * a 1:4 group or a group short of candidates adds a key whose score is
 * -inf, so P = 0) and their scores, dropped keys -inf: s[kk][2 hr + e]
 * becomes position e's score of row half hr, nib[kk][hr] = i0 | i1 << 2,
 * the group's metadata nibble. s keeps nbs / 2 blocks. */
static void nm_compress(G *c, V s[][4], int nbs, V nib[][2]) {
  int M = (int)c->s->nm_m, N = (int)c->s->nm_n;
  V ninf = em_float(E, -INFINITY, "f32");
  V x[MAX_NB][4], before[MAX_NB][6];
  lane_groups(c, s, nbs, x, before);
  for (int kk = 0; kk < nbs / 2; kk++) {
    V out[4];
    for (int hr = 0; hr < 2; hr++) {
      V *g = x[2 * kk + hr], *b = before[2 * kk + hr];
      V i0, i1, v0, v1;
      if (M == 2) { /* two groups of 2, one key kept of each */
        i0 = sel(c, b[0], c32(c, 0), c32(c, 1), "i32");
        i1 = sel(c, b[1], c32(c, 2), c32(c, 3), "i32");
        v0 = sel(c, b[0], g[0], g[1], "f32");
        v1 = sel(c, b[1], g[2], g[3], "f32");
      } else {
        /* key i is in the first two when at most one other key ranks
         * before it: b[0..5] = (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) */
        V pick[4] = {maj3(c, b[0], b[1], b[2]), maj3(c, not1(c, b[0]), b[3], b[4]),
                     maj3(c, not1(c, b[1]), not1(c, b[3]), b[5]), maj3(c, not1(c, b[2]), not1(c, b[4]), not1(c, b[5]))};
        V val[4] = {g[0], g[1], g[2], g[3]};
        if (N == 1) { /* only the first keeps its score */
          V first[4] = {and1(c, and1(c, b[0], b[1]), b[2]), and1(c, and1(c, not1(c, b[0]), b[3]), b[4]),
                        and1(c, and1(c, not1(c, b[1]), not1(c, b[3])), b[5]),
                        and1(c, and1(c, not1(c, b[2]), not1(c, b[4])), not1(c, b[5]))};
          for (int i = 0; i < 4; i++)
            val[i] = sel(c, first[i], g[i], ninf, "f32");
        }
        /* exactly two picks: the first of them, and the last */
        i0 = sel(c, pick[0], c32(c, 0), sel(c, pick[1], c32(c, 1), c32(c, 2), "i32"), "i32");
        i1 = sel(c, pick[3], c32(c, 3), sel(c, pick[2], c32(c, 2), c32(c, 1), "i32"), "i32");
        v0 = sel(c, pick[0], val[0], sel(c, pick[1], val[1], val[2], "f32"), "f32");
        v1 = sel(c, pick[3], val[3], sel(c, pick[2], val[2], val[1], "f32"), "f32");
      }
      out[2 * hr] = v0;
      out[2 * hr + 1] = v1;
      nib[kk][hr] = bin(c, "arith.ori", i0, bin(c, "arith.shli", i1, c32(c, 2), "i32"), "i32");
    }
    memcpy(s[kk], out, sizeof out);
  }
}

/* acc += A B for one m16n8k32 mma.sp: A (4 packed pairs) holds the two
 * kept of each group of 4 keys, meta their positions (selector 0: lanes
 * t = 0 and 1 of each quad give rows g and g + 8 of groups 0-3 and 4-7).
 * The metadata is always ordered (i0 < i1), so the PTX 8.5 form that says
 * so, which sm_90a's sparse tensor cores are built for, serves every chip. */
static void mma_sp(G *c, const V a[4], const V b[4], V meta, V acc[4]) {
  V x[8];
  for (int i = 0; i < 8; i++)
    x[i] = operand(c, i < 4 ? a[i] : b[i - 4]);
  const char *ot = operand_type(c);
  V r = em(E,
           "nvvm.mma.sp.sync A[%s, %s, %s, %s] B[%s, %s, %s, %s] C[%s, %s, %s, %s] sparseMetadata[%s] selector[%s] "
           "{multiplicandAPtxType = #nvvm.mma_type<%s>, multiplicandBPtxType = #nvvm.mma_type<%s>, orderedMetadata, "
           "shape = #nvvm.shape<m = 16, n = 8, k = 32>} : (%s, %s, f32) -> !llvm.struct<(f32, f32, f32, f32)>",
           x[0].s, x[1].s, x[2].s, x[3].s, x[4].s, x[5].s, x[6].s, x[7].s, acc[0].s, acc[1].s, acc[2].s, acc[3].s,
           meta.s, c32(c, 0).s, c->et, c->et, ot, ot);
  unpack4(c, r, acc);
}

/* O += P V by mma.sp over 32 keys at a time (steps 2j and 2j + 1 of
 * nm_compress): lane t's pair of step 2j is group t of the mma's 8, of
 * step 2j + 1 group t + 4, which is the sparse A operand's layout. The
 * metadata of a row is gathered from the quad's 4 lanes by two OR
 * shuffles. V's B fragments are its 32 rows in key order, one ldmatrix.x4
 * per 8 columns of head_dim: half the mma work of pv_16 for the same keys. */
static void pv_sparse(G *c, V buf, V s[][4], V nib[][2], Acc *acc) {
  int nbo = c->Dp / 8, steps = c->BN / 32;
  V voff = add(c, v_base(c, buf), mulk(c, mulk(c, c->lane, c->STR), 2));
  V shift = mulk(c, c->tq, 4);
  V odd = cmp(c, "ne", bin(c, "arith.andi", c->tq, c32(c, 1), "i32"), c32(c, 0), "i32");
  for (int j = 0; j < steps; j++) {
    V half[2];
    for (int h = 0; h < 2; h++) {
      V lo = bin(c, "arith.shli", nib[2 * j + h][0], shift, "i32");
      V hi = bin(c, "arith.shli", nib[2 * j + h][1], addk(c, shift, 16), "i32");
      V w = bin(c, "arith.ori", lo, hi, "i32");
      w = bin(c, "arith.ori", w, shfl_xor_i32(c, w, 1), "i32");
      half[h] = bin(c, "arith.ori", w, shfl_xor_i32(c, w, 2), "i32");
    }
    V meta = sel(c, odd, half[1], half[0], "i32");
    V a[4] = {pack2(c, s[2 * j][0], s[2 * j][1]), pack2(c, s[2 * j][2], s[2 * j][3]),
              pack2(c, s[2 * j + 1][0], s[2 * j + 1][1]), pack2(c, s[2 * j + 1][2], s[2 * j + 1][3])};
    for (int db = 0; db < nbo; db++) {
      V bf[4];
      ldsm4(c, addk(c, voff, (j * 32 * c->STR + db * 8) * 2), true, bf);
      mma_sp(c, a, bf, meta, acc->o[db]);
    }
  }
}

static void tile_body(G *c, Acc *acc, V t, V buf, const V qf[][4], V i0, V i1_64) {
  int nbs = c->BN / 8, nbo = c->Dp / 8;
  V s[MAX_NB][4];
  V zero = em_float(E, 0.0, "f32");
  for (int nb = 0; nb < nbs; nb++)
    for (int r = 0; r < 4; r++)
      s[nb][r] = zero;
  if (c->tf32)
    scores_tf32(c, buf, qf, s);
  else
    scores_16(c, buf, qf, s);
  /* Scores go into log2 units (times scale log2 e). With a positive scale
   * that is folded into the exponent's FMA below, and the row max is taken
   * on the raw scores and scaled once: one instruction per score fewer, in
   * the part of the loop that competes with the mma for issue slots. */
  V sc = em_float(E, c->s->scale * 1.4426950408889634, "f32");
  bool fold = c->s->scale > 0;
  for (int nb = 0; !fold && nb < nbs; nb++)
    for (int r = 0; r < 4; r++)
      s[nb][r] = fmul(c, s[nb][r], sc);

  /* Mask: tiles proven full (and inside seq) skip it. */
  V k0 = mulk(c, t, c->BN);
  V k064 = ext64(c, k0);
  V k164 = bin(c, "arith.addi", k064, c64(c, c->BN), "i64");
  V full = cmp(c, "sle", k164, c->S64, "i64");
  if (c->p->mask) {
    V need, f;
    mask_tile_facts(E, c->p->mask, i0, i1_64, k064, k164, &need, &f);
    full = bin(c, "arith.andi", full, f, "i1");
  }
  int ns = nbs * 4;
  V flat[MAX_NB * 4];
  for (int nb = 0; nb < nbs; nb++)
    for (int r = 0; r < 4; r++)
      flat[nb * 4 + r] = s[nb][r];
  char names[4096], tys[1024];
  types(tys, sizeof tys, "f32", ns);
  V mres = em_multi(E, ns, "scf.if %s -> (%s) {", full.s, tys);
  E->depth++;
  list(names, sizeof names, flat, ns);
  em_do(E, "scf.yield %s : %s", names, tys);
  E->depth--;
  em_do(E, "} else {");
  E->depth++;
  {
    V ninf = em_float(E, -INFINITY, "f32");
    V row0 = add(c, add(c, mulk(c, c->warp, 16), c->g), em(E, "arith.trunci %s : i64 to i32", i0.s));
    V rows[2] = {ext64(c, row0), ext64(c, addk(c, row0, 8))};
    V masked[MAX_NB * 4];
    for (int nb = 0; nb < nbs; nb++)
      for (int e = 0; e < 2; e++) {
        V col = ext64(c, add(c, k0, key_col(c, nb, e)));
        V in = cmp(c, "slt", col, c->S64, "i64");
        for (int hr = 0; hr < 2; hr++) {
          V ok = in;
          if (c->p->mask)
            ok = bin(c, "arith.andi", ok, mask_pred(E, c->p->mask, c->S64, rows[hr], col), "i1");
          int r = hr * 2 + e;
          masked[nb * 4 + r] = sel(c, ok, s[nb][r], ninf, "f32");
        }
      }
    list(names, sizeof names, masked, ns);
    em_do(E, "scf.yield %s : %s", names, tys);
  }
  E->depth--;
  em_do(E, "}");
  for (int nb = 0; nb < nbs; nb++)
    for (int r = 0; r < 4; r++)
      s[nb][r] = em_res(mres, nb * 4 + r);
  V nib[MAX_NB / 2][2];
  int nsb = nbs; /* score blocks of 4 per lane after N:M */
  if (c->sparse) {
    nm_compress(c, s, nbs, nib);
    nsb = nbs / 2;
  } else if (c->lane_groups) {
    nm_drop_last(c, s, nbs);
  } else if (c->s->nm_m > 0)
    nm_select(c, s, nbs);

  /* Online softmax over the rows g and g + 8 of this lane. The offset
   * subtracted before ex2 (acc->m) moves only when the tile's maximum
   * passes it by more than LAZY_RESCALE (log2 units): P then stays below
   * 2^LAZY_RESCALE, far inside f16's and bf16's range, and most tiles skip
   * rescaling O and l (a branch around nbo * 4 + 2 multiplies). */
  V ninf = em_float(E, -INFINITY, "f32");
  V base[2], old[2], need[2];
  for (int hr = 0; hr < 2; hr++) {
    V mx = ninf;
    for (int nb = 0; nb < nsb; nb++)
      mx = fmaxv(c, fmaxv(c, mx, s[nb][2 * hr]), s[nb][2 * hr + 1]);
    mx = fmaxv(c, mx, shfl_xor(c, mx, 1));
    mx = fmaxv(c, mx, shfl_xor(c, mx, 2));
    if (fold)
      mx = fmul(c, mx, sc);
    old[hr] = acc->m[hr];
    /* -inf + LAZY_RESCALE is -inf: the first finite maximum moves it; a
     * NaN maximum does not (the row's sum is NaN already) */
    need[hr] = em(E, "arith.cmpf ogt, %s, %s : f32", mx.s, fadd(c, old[hr], em_float(E, LAZY_RESCALE, "f32")).s);
    V mnew = sel(c, need[hr], mx, old[hr], "f32");
    V none = em(E, "arith.cmpf oeq, %s, %s : f32", mnew.s, ninf.s);
    base[hr] = sel(c, none, zero, mnew, "f32");
    acc->m[hr] = mnew;
  }
  {
    int nr = nbo * 4 + 2;
    V cur[MAX_NB * 4 + 2], res[MAX_NB * 4 + 2];
    for (int nb = 0; nb < nbo; nb++)
      for (int r = 0; r < 4; r++)
        cur[nb * 4 + r] = acc->o[nb][r];
    cur[nr - 2] = acc->l[0], cur[nr - 1] = acc->l[1];
    char rtys[4096], rnames[8192];
    types(rtys, sizeof rtys, "f32", nr);
    V any = bin(c, "arith.ori", need[0], need[1], "i1");
    V r = em_multi(E, nr, "scf.if %s -> (%s) {", any.s, rtys);
    E->depth++;
    V alpha[2];
    for (int hr = 0; hr < 2; hr++)
      alpha[hr] = sel(c, need[hr], ex2(c, fsub(c, old[hr], base[hr])), em_float(E, 1.0, "f32"), "f32");
    for (int i = 0; i < nr; i++)
      res[i] = fmul(c, cur[i], alpha[i < nr - 2 ? (i % 4) / 2 : i - (nr - 2)]);
    list(rnames, sizeof rnames, res, nr);
    em_do(E, "scf.yield %s : %s", rnames, rtys);
    E->depth--;
    em_do(E, "} else {");
    E->depth++;
    list(rnames, sizeof rnames, cur, nr);
    em_do(E, "scf.yield %s : %s", rnames, rtys);
    E->depth--;
    em_do(E, "}");
    for (int nb = 0; nb < nbo; nb++)
      for (int q = 0; q < 4; q++)
        acc->o[nb][q] = em_res(r, nb * 4 + q);
    acc->l[0] = em_res(r, nr - 2), acc->l[1] = em_res(r, nr - 1);
  }
  V sum[2] = {zero, zero}, nbase[2];
  for (int hr = 0; fold && hr < 2; hr++)
    nbase[hr] = em(E, "arith.negf %s : f32", base[hr].s);
  for (int nb = 0; nb < nsb; nb++)
    for (int r = 0; r < 4; r++) {
      s[nb][r] = ex2(c, fold ? em(E, "llvm.intr.fma(%s, %s, %s) : (f32, f32, f32) -> f32", s[nb][r].s, sc.s,
                                  nbase[r / 2].s)
                             : fsub(c, s[nb][r], base[r / 2]));
      sum[r / 2] = fadd(c, sum[r / 2], s[nb][r]);
    }
  for (int hr = 0; hr < 2; hr++)
    acc->l[hr] = fadd(c, acc->l[hr], sum[hr]);

  if (c->tf32)
    pv_tf32(c, buf, s, acc);
  else if (c->sparse)
    pv_sparse(c, buf, s, nib, acc);
  else
    pv_16(c, buf, s, acc);
}

/* Normalizes the accumulators and writes this lane's part of the output. */
static void epilogue(G *c, Acc *acc, V b, V h, V i0_32) {
  int nbo = c->Dp / 8;
  V zero = em_float(E, 0.0, "f32"), one = em_float(E, 1.0, "f32");
  const char *ot = c->s->output == DT_FP32 ? "f32" : c->s->output == DT_FP16 ? "f16" : "bf16";
  for (int hr = 0; hr < 2; hr++) {
    V l = acc->l[hr];
    l = fadd(c, l, shfl_xor(c, l, 1));
    l = fadd(c, l, shfl_xor(c, l, 2));
    V pos = em(E, "arith.cmpf ogt, %s, %s : f32", l.s, zero.s);
    V inv = sel(c, pos, bin(c, "arith.divf", one, l, "f32"), zero, "f32");
    V row = add(c, add(c, i0_32, add(c, mulk(c, c->warp, 16), c->g)), c32(c, hr * 8));
    em_if(E, cmp(c, "slt", row, c->S32, "i32"));
    V base = row_offset(c, b, h, c->H, row);
    for (int nb = 0; nb < nbo; nb++) {
      int first = nb * 8; /* columns first + 2 tq, first + 2 tq + 1 */
      if (first >= c->D)
        break;
      V col = addk(c, mulk(c, c->tq, 2), first);
      V x0 = fmul(c, acc->o[nb][2 * hr], inv), x1 = fmul(c, acc->o[nb][2 * hr + 1], inv);
      V off = bin(c, "arith.addi", base, ext64(c, col), "i64");
      bool guard = first + 8 > c->D;
      if (c->D % 2 == 0) {
        if (guard)
          em_if(E, cmp(c, "slt", col, c32(c, c->D), "i32"));
        V u = em(E, "llvm.mlir.undef : vector<2xf32>");
        u = em(E, "llvm.insertelement %s, %s[%s : i32] : vector<2xf32>", x0.s, u.s, c32(c, 0).s);
        u = em(E, "llvm.insertelement %s, %s[%s : i32] : vector<2xf32>", x1.s, u.s, c32(c, 1).s);
        if (strcmp(ot, "f32"))
          u = em(E, "llvm.fptrunc %s : vector<2xf32> to vector<2x%s>", u.s, ot);
        em_do(E, "llvm.store %s, %s : vector<2x%s>, !llvm.ptr<1>", u.s, gptr(c, c->o, off, ot).s, ot);
        if (guard)
          em_end(E);
      } else {
        for (int e = 0; e < 2; e++) {
          V ce = addk(c, col, e);
          em_if(E, cmp(c, "slt", ce, c32(c, c->D), "i32"));
          V x = e ? x1 : x0;
          if (strcmp(ot, "f32"))
            x = em(E, "arith.truncf %s : f32 to %s", x.s, ot);
          V oe = bin(c, "arith.addi", base, ext64(c, ce), "i64");
          em_do(E, "llvm.store %s, %s : %s, !llvm.ptr<1>", x.s, gptr(c, c->o, oe, ot).s, ot);
          em_end(E);
        }
      }
    }
    em_end(E);
  }
}

char *cg_cuda_kernel(const KernelPlan *p) {
  G cs = {0}, *c = &cs;
  c->p = p;
  c->s = &p->s;
  c->H = p->s.heads;
  c->KVH = p->s.kv_heads;
  c->D = p->s.head_dim;
  SaCudaKernel geo;
  sa_cuda_describe(&p->s, &geo);
  if (geo.threads != THREADS || geo.query_tile != BM)
    return NULL; /* the runtime's contract and this generator disagree */
  c->tf32 = p->s.storage == DT_FP32;
  c->es = c->tf32 ? 4 : 2;
  int kstep = c->tf32 ? 8 : 16;
  c->Dp = (int)((c->D + kstep - 1) / kstep * kstep);
  c->BN = geo.key_tile;
  c->STR = c->Dp + (c->tf32 ? 4 : 8);
  c->qbytes = BM * c->STR * c->es;
  c->kvbytes = c->BN * c->STR * c->es;
  if (c->qbytes + 4 * c->kvbytes != geo.shared_bytes || c->BN % kstep)
    return NULL;
  c->async = c->D * c->es % 16 == 0;
  /* Q's fragments take Dp / 2 registers per lane in tf32, Dp / 4 otherwise. */
  c->q_regs = c->Dp <= (c->tf32 ? 64 : 128);
  c->et = c->tf32 ? "tf32" : p->s.storage == DT_BF16 ? "bf16" : "f16";
  /* mma.sp's A keeps 2 of each 4: N:M whose groups keep no more (2:4,
   * 1:4, 1:2; in 32-key steps) attends only its kept keys. */
  c->sparse = !c->tf32 && c->BN % 32 == 0 &&
              ((c->s->nm_m == 4 && c->s->nm_n <= 2) || (c->s->nm_m == 2 && c->s->nm_n == 1));
  /* 3:4 ranks in one lane too, and keeps the dense P V */
  c->lane_groups = c->sparse || (!c->tf32 && c->s->nm_m == 4 && c->s->nm_n == 3);
  int nbo = c->Dp / 8;

  em_raw(E, "gpu.func @%s(%%q: !llvm.ptr<1>, %%k: !llvm.ptr<1>, %%v: !llvm.ptr<1>, %%o: !llvm.ptr<1>, %%seq: i64) "
            "kernel attributes {known_block_size = array<i32: %d, 1, 1>, nvvm.minctasm = 2 : i32, sattn.query_tile = %d : i32, "
            "sattn.key_tile = %d : i32, sattn.shared_bytes = %d : i32} {\n",
         p->s.name, THREADS, BM, c->BN, geo.shared_bytes);
  strcpy(c->q.s, "%q");
  strcpy(c->k.s, "%k");
  strcpy(c->v.s, "%v");
  strcpy(c->o.s, "%o");
  strcpy(c->S64.s, "%seq");
  c->smem = em(E, "llvm.mlir.addressof @sattn_smem : !llvm.ptr<3>");
  c->S32 = em(E, "arith.trunci %%seq : i64 to i32");
  c->tid = em(E, "nvvm.read.ptx.sreg.tid.x : i32");
  V qt = em(E, "nvvm.read.ptx.sreg.ctaid.x : i32");
  V bh = em(E, "nvvm.read.ptx.sreg.ctaid.y : i32");
  c->warp = bin(c, "arith.divui", c->tid, c32(c, 32), "i32");
  c->lane = bin(c, "arith.remui", c->tid, c32(c, 32), "i32");
  c->g = bin(c, "arith.divui", c->lane, c32(c, 4), "i32");
  c->tq = bin(c, "arith.remui", c->lane, c32(c, 4), "i32");
  c->l8 = bin(c, "arith.remui", c->lane, c32(c, 8), "i32");
  c->l8b = bin(c, "arith.remui", bin(c, "arith.divui", c->lane, c32(c, 8), "i32"), c32(c, 2), "i32");
  c->l16 = bin(c, "arith.divui", c->lane, c32(c, 16), "i32");
  V b = bin(c, "arith.divui", bh, c32(c, c->H), "i32");
  V h = bin(c, "arith.remui", bh, c32(c, c->H), "i32");
  V kvh = bin(c, "arith.divui", h, c32(c, c->H / c->KVH), "i32");

  /* Rows [i0, i1) of this block, keys [kv_lo, kv_hi) from the mask's bounds. */
  V i0 = mulk(c, qt, BM);
  V i1 = bin(c, "arith.minsi", addk(c, i0, BM), c->S32, "i32");
  V i064 = ext64(c, i0), i164 = ext64(c, i1);
  V kv_lo = c64(c, 0), kv_hi = c->S64;
  V l1, h1, l2, h2;
  if (p->mask && mask_bounds(E, p->mask, i064, &l1, &h1) &&
      mask_bounds(E, p->mask, bin(c, "arith.subi", i164, c64(c, 1), "i64"), &l2, &h2)) {
    kv_lo = bin(c, "arith.maxsi", l1, kv_lo, "i64");
    kv_hi = bin(c, "arith.minsi", h2, kv_hi, "i64");
    kv_hi = bin(c, "arith.maxsi", kv_hi, kv_lo, "i64");
  }
  V t_lo = em(E, "arith.trunci %s : i64 to i32", bin(c, "arith.divsi", kv_lo, c64(c, c->BN), "i64").s);
  V t_hi = em(E, "arith.trunci %s : i64 to i32",
              bin(c, "arith.divsi", bin(c, "arith.addi", kv_hi, c64(c, c->BN - 1), "i64"), c64(c, c->BN), "i64").s);

  /* Q tile, then the first key tile; wait for Q. */
  load_tile(c, c->q, b, h, c->H, i0, BM, c32(c, 0));
  em_do(E, "nvvm.cp.async.commit.group");
  V t0 = next_tile(c, t_lo, t_hi, i064, i164);
  load_kv(c, t0, t_hi, c32(c, 0), b, kvh);
  em_do(E, "nvvm.cp.async.commit.group");
  em_do(E, "nvvm.cp.async.wait.group 1");
  em_do(E, "nvvm.barrier0");
  V qf[16][4];
  if (c->q_regs && c->tf32) {
    for (int k = 0; k < c->Dp / 8; k++)
      q_frag_tf32(c, k, qf[k]);
  } else if (c->q_regs) {
    V qrow = add(c, mulk(c, c->warp, 16), add(c, c->l8, mulk(c, c->l8b, 8)));
    V qoff = mulk(c, add(c, mulk(c, qrow, c->STR), mulk(c, c->l16, 8)), 2);
    for (int k = 0; k < c->Dp / 16; k++)
      ldsm4(c, addk(c, qoff, k * 32), false, qf[k]);
  }

  /* The key loop: (t, buf, O, m, l) carried. */
  Acc acc;
  V zero = em_float(E, 0.0, "f32"), ninf = em_float(E, -INFINITY, "f32");
  int nstate = 2 + nbo * 4 + 4;
  V init[2 + MAX_NB * 4 + 4], args[2 + MAX_NB * 4 + 4];
  for (int nb = 0; nb < nbo; nb++)
    for (int r = 0; r < 4; r++)
      acc.o[nb][r] = zero;
  acc.m[0] = acc.m[1] = ninf;
  acc.l[0] = acc.l[1] = zero;
  init[0] = t0;
  init[1] = c32(c, 0);
  acc_flatten(&acc, nbo, init + 2);
  char tys[2048], names[8192], binds[12288];
  size_t at = 0;
  at += (size_t)snprintf(tys + at, sizeof tys - at, "i32, i32");
  for (int i = 2; i < nstate; i++)
    at += (size_t)snprintf(tys + at, sizeof tys - at, ", f32");
  at = 0;
  for (int i = 0; i < nstate; i++) {
    args[i] = em_fresh(E);
    at += (size_t)snprintf(binds + at, sizeof binds - at, "%s%s = %s", i ? ", " : "", args[i].s, init[i].s);
  }
  V w = em_multi(E, nstate, "scf.while (%s) : (%s) -> (%s) {", binds, tys, tys);
  E->depth++;
  V go = cmp(c, "slt", args[0], t_hi, "i32");
  list(names, sizeof names, args, nstate);
  em_do(E, "scf.condition(%s) %s : %s", go.s, names, tys);
  E->depth--;
  V body[2 + MAX_NB * 4 + 4];
  for (int i = 0; i < nstate; i++)
    body[i] = em_fresh(E);
  at = 0;
  for (int i = 0; i < nstate; i++)
    at += (size_t)snprintf(binds + at, sizeof binds - at, "%s%s: %s", i ? ", " : "", body[i].s, i < 2 ? "i32" : "f32");
  em_do(E, "} do {");
  em_do(E, "^bb0(%s):", binds);
  E->depth++;
  {
    V t = body[0], buf = body[1];
    acc_unflatten(&acc, nbo, body + 2);
    V tn = next_tile(c, addk(c, t, 1), t_hi, i064, i164);
    V nbuf = bin(c, "arith.xori", buf, c32(c, 1), "i32");
    load_kv(c, tn, t_hi, nbuf, b, kvh);
    em_do(E, "nvvm.cp.async.commit.group");
    em_do(E, "nvvm.cp.async.wait.group 1");
    em_do(E, "nvvm.barrier0");
    tile_body(c, &acc, t, buf, (const V(*)[4])qf, i064, i164);
    em_do(E, "nvvm.barrier0");
    V out[2 + MAX_NB * 4 + 4];
    out[0] = tn;
    out[1] = nbuf;
    acc_flatten(&acc, nbo, out + 2);
    list(names, sizeof names, out, nstate);
    em_do(E, "scf.yield %s : %s", names, tys);
  }
  E->depth--;
  em_do(E, "}");
  V res[MAX_NB * 4 + 4];
  for (int i = 0; i < nstate - 2; i++)
    res[i] = em_res(w, 2 + i);
  acc_unflatten(&acc, nbo, res);
  em_do(E, "nvvm.cp.async.wait.group 0");
  epilogue(c, &acc, b, h, i0);
  em_do(E, "gpu.return");
  em_raw(E, "}\n");
  return em_take(E);
}
