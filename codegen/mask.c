/* mask.c: the static mask tree as MLIR arith ops on i64 (mask.h). */
#include "mask.h"

#include <stdint.h>

static V bin(Em *e, const char *op, V a, V b, const char *ty) { return em(e, "%s %s, %s : %s", op, a.s, b.s, ty); }
static V cmpi(Em *e, const char *pred, V a, V b, const char *ty) {
  return em(e, "arith.cmpi %s, %s, %s : %s", pred, a.s, b.s, ty);
}
static V sel(Em *e, V c, V a, V b, const char *ty) { return em(e, "arith.select %s, %s, %s : %s", c.s, a.s, b.s, ty); }
static V and1(Em *e, V a, V b) { return bin(e, "arith.andi", a, b, "i1"); }
static V or1(Em *e, V a, V b) { return bin(e, "arith.ori", a, b, "i1"); }
static V c64(Em *e, int64_t v) { return em_int(e, v, "i64"); }

static V abs_diff(Em *e, V a, V b) {
  V d = bin(e, "arith.subi", a, b, "i64");
  V nd = bin(e, "arith.subi", b, a, "i64");
  return sel(e, cmpi(e, "sge", d, em_int(e, 0, "i64"), "i64"), d, nd, "i64");
}


/* SplitMix64 on i64 values with wrapping arithmetic (docs/semantics.md §8). */
V mask_splitmix(Em *e, V state) {
  V z = bin(e, "arith.addi", state, c64(e, (int64_t)UINT64_C(0x9E3779B97F4A7C15)), "i64");
  z = bin(e, "arith.muli", bin(e, "arith.xori", z, bin(e, "arith.shrui", z, c64(e, 30), "i64"), "i64"),
          c64(e, (int64_t)UINT64_C(0xBF58476D1CE4E5B9)), "i64");
  z = bin(e, "arith.muli", bin(e, "arith.xori", z, bin(e, "arith.shrui", z, c64(e, 27), "i64"), "i64"),
          c64(e, (int64_t)UINT64_C(0x94D049BB133111EB)), "i64");
  return bin(e, "arith.xori", z, bin(e, "arith.shrui", z, c64(e, 31), "i64"), "i64");
}


/* allowed(i, j) of one mask node as i1; i, j, S as i64. */
V mask_pred(Em *e, const MaskNode *m, V seq, V i, V j) {
  switch (m->kind) {
  case MK_ALL:
    return em_int(e, 1, "i1");
  case MK_CAUSAL:
    return cmpi(e, "sle", j, i, "i64");
  case MK_WINDOW: {
    V dist = abs_diff(e, i, j);
    V ok = cmpi(e, "sle", dist, c64(e, (m->a[0] / 2) * m->a[1]), "i64");
    if (m->a[1] > 1)
      ok = and1(e, ok, cmpi(e, "eq", bin(e, "arith.remsi", dist, c64(e, m->a[1]), "i64"), c64(e, 0), "i64"));
    return ok;
  }
  case MK_WINDOW2D: {
    int64_t ih = m->a[0], iw = m->a[1], wh = m->a[2], ww = m->a[3], off = m->a[4];
    V ri = bin(e, "arith.subi", i, c64(e, off), "i64"), rj = bin(e, "arith.subi", j, c64(e, off), "i64");
    V in_i = and1(e, cmpi(e, "sge", ri, c64(e, 0), "i64"), cmpi(e, "slt", ri, c64(e, ih * iw), "i64"));
    V in_j = and1(e, cmpi(e, "sge", rj, c64(e, 0), "i64"), cmpi(e, "slt", rj, c64(e, ih * iw), "i64"));
    V w = c64(e, iw);
    V dr = abs_diff(e, bin(e, "arith.divsi", ri, w, "i64"), bin(e, "arith.divsi", rj, w, "i64"));
    V dc = abs_diff(e, bin(e, "arith.remsi", ri, w, "i64"), bin(e, "arith.remsi", rj, w, "i64"));
    V ok = and1(e, cmpi(e, "sle", dr, c64(e, wh / 2), "i64"), cmpi(e, "sle", dc, c64(e, ww / 2), "i64"));
    return and1(e, and1(e, in_i, in_j), ok);
  }
  case MK_GLOBAL: {
    V any = em_int(e, 0, "i1");
    for (int g = 0; g < m->n_list; g++) {
      V t = c64(e, m->list[g]);
      any = or1(e, any, or1(e, cmpi(e, "eq", i, t, "i64"), cmpi(e, "eq", j, t, "i64")));
    }
    return any;
  }
  case MK_BLOCKS: {
    V blk = c64(e, m->a[0]);
    V qb = bin(e, "arith.divsi", i, blk, "i64"), kb = bin(e, "arith.divsi", j, blk, "i64");
    V any = em_int(e, 0, "i1");
    for (int n = 0; n + 1 < m->n_list; n += 2)
      any = or1(e, any, and1(e, cmpi(e, "eq", qb, c64(e, m->list[n]), "i64"),
                             cmpi(e, "eq", kb, c64(e, m->list[n + 1]), "i64")));
    return any;
  }
  case MK_BIGBIRD: {
    V blk = c64(e, m->a[0]);
    V nb = bin(e, "arith.divsi", bin(e, "arith.addi", seq, c64(e, m->a[0] - 1), "i64"), blk, "i64");
    V qb = bin(e, "arith.divsi", i, blk, "i64"), kb = bin(e, "arith.divsi", j, blk, "i64");
    V any = cmpi(e, "sle", abs_diff(e, qb, kb), c64(e, m->a[1] / 2), "i64");
    any = or1(e, any, cmpi(e, "slt", qb, c64(e, m->a[3]), "i64"));
    any = or1(e, any, cmpi(e, "slt", kb, c64(e, m->a[3]), "i64"));
    V qmix = bin(e, "arith.muli", qb, c64(e, (int64_t)UINT64_C(0x9E3779B97F4A7C15)), "i64");
    for (int64_t r = 0; r < m->a[2]; r++) {
      uint64_t rmix = (uint64_t)r * UINT64_C(0xBF58476D1CE4E5B9) + 1;
      V st = bin(e, "arith.xori", bin(e, "arith.xori", c64(e, m->a[4]), qmix, "i64"), c64(e, (int64_t)rmix), "i64");
      V pick = bin(e, "arith.remui", mask_splitmix(e, st), nb, "i64");
      any = or1(e, any, cmpi(e, "eq", pick, kb, "i64"));
    }
    return any;
  }
  case MK_AND:
    return and1(e, mask_pred(e, m->lhs, seq, i, j), mask_pred(e, m->rhs, seq, i, j));
  case MK_OR:
    return or1(e, mask_pred(e, m->lhs, seq, i, j), mask_pred(e, m->rhs, seq, i, j));
  }
  return em_int(e, 1, "i1");
}

/* Closed-form key range [lo, hi) outside which node m allows nothing for
 * row i (i64). Returns false when the node bounds nothing. */
bool mask_bounds_exact(const MaskNode *m) {
  switch (m->kind) {
  case MK_ALL:
  case MK_CAUSAL:
    return true;
  case MK_WINDOW:
    return m->a[1] == 1; /* a dilated window has holes */
  case MK_AND:
    return mask_bounds_exact(m->lhs) && mask_bounds_exact(m->rhs);
  default:
    return false; /* a union, or a pattern the bounds only enclose */
  }
}

bool mask_bounds(Em *e, const MaskNode *m, V i, V *lo, V *hi) {
  V l1, h1, l2, h2;
  switch (m->kind) {
  case MK_CAUSAL:
    *lo = c64(e, 0);
    *hi = bin(e, "arith.addi", i, c64(e, 1), "i64");
    return true;
  case MK_WINDOW: {
    int64_t reach = (m->a[0] / 2) * m->a[1];
    *lo = bin(e, "arith.subi", i, c64(e, reach), "i64");
    *hi = bin(e, "arith.addi", i, c64(e, reach + 1), "i64");
    return true;
  }
  case MK_AND: {
    bool a = mask_bounds(e, m->lhs, i, &l1, &h1), b = mask_bounds(e, m->rhs, i, &l2, &h2);
    if (a && b) {
      *lo = bin(e, "arith.maxsi", l1, l2, "i64");
      *hi = bin(e, "arith.minsi", h1, h2, "i64");
    } else if (a || b) {
      *lo = a ? l1 : l2;
      *hi = a ? h1 : h2;
    }
    return a || b;
  }
  case MK_OR:
    if (!mask_bounds(e, m->lhs, i, &l1, &h1) || !mask_bounds(e, m->rhs, i, &l2, &h2))
      return false;
    *lo = bin(e, "arith.minsi", l1, l2, "i64");
    *hi = bin(e, "arith.maxsi", h1, h2, "i64");
    return true;
  default:
    return false;
  }
}


/* Closed-form facts about the rectangle rows [i0, i1) x keys [k0, k1) for
 * mask node m (i64 values): *need is false only when no pair is allowed,
 * *full true only when every pair is. */
void mask_tile_facts(Em *e, const MaskNode *m, V i0, V i1, V k0, V k1, V *need, V *full) {
  V t = em_int(e, 1, "i1"), f = em_int(e, 0, "i1");
  V ilast = bin(e, "arith.subi", i1, c64(e, 1), "i64"), klast = bin(e, "arith.subi", k1, c64(e, 1), "i64");
  switch (m->kind) {
  case MK_ALL:
    *need = t, *full = t;
    return;
  case MK_CAUSAL:
    *need = cmpi(e, "sle", k0, ilast, "i64");
    *full = cmpi(e, "sle", klast, i0, "i64");
    return;
  case MK_WINDOW: {
    V rd = c64(e, (m->a[0] / 2) * m->a[1]);
    *need = and1(e, cmpi(e, "sle", k0, bin(e, "arith.addi", ilast, rd, "i64"), "i64"),
                 cmpi(e, "sge", klast, bin(e, "arith.subi", i0, rd, "i64"), "i64"));
    V far = bin(e, "arith.maxsi", bin(e, "arith.subi", ilast, k0, "i64"), bin(e, "arith.subi", klast, i0, "i64"), "i64");
    *full = m->a[1] == 1 ? cmpi(e, "sle", far, rd, "i64") : f;
    return;
  }
  case MK_GLOBAL: {
    V any = f;
    for (int g = 0; g < m->n_list; g++) {
      V tok = c64(e, m->list[g]);
      V in_rows = and1(e, cmpi(e, "sge", tok, i0, "i64"), cmpi(e, "slt", tok, i1, "i64"));
      V in_keys = and1(e, cmpi(e, "sge", tok, k0, "i64"), cmpi(e, "slt", tok, k1, "i64"));
      any = or1(e, any, or1(e, in_rows, in_keys));
    }
    *need = any, *full = f;
    return;
  }
  case MK_BLOCKS: {
    V any = f;
    int64_t blk = m->a[0];
    for (int n = 0; n + 1 < m->n_list; n += 2) {
      V qa = c64(e, m->list[n] * blk), qb = c64(e, (m->list[n] + 1) * blk);
      V ka = c64(e, m->list[n + 1] * blk), kb = c64(e, (m->list[n + 1] + 1) * blk);
      V rows = and1(e, cmpi(e, "slt", qa, i1, "i64"), cmpi(e, "sgt", qb, i0, "i64"));
      V keys = and1(e, cmpi(e, "slt", ka, k1, "i64"), cmpi(e, "sgt", kb, k0, "i64"));
      any = or1(e, any, and1(e, rows, keys));
    }
    *need = any, *full = f;
    return;
  }
  case MK_AND:
  case MK_OR: {
    V n1, f1, n2, f2;
    mask_tile_facts(e, m->lhs, i0, i1, k0, k1, &n1, &f1);
    mask_tile_facts(e, m->rhs, i0, i1, k0, k1, &n2, &f2);
    *need = m->kind == MK_AND ? and1(e, n1, n2) : or1(e, n1, n2);
    *full = m->kind == MK_AND ? and1(e, f1, f2) : or1(e, f1, f2);
    return;
  }
  default: /* window2d, bigbird: visited, masked per pair */
    *need = t, *full = f;
    return;
  }
}

