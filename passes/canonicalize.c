/* canonicalize.c: sattn-canonicalize. Rewrites that make a spec's IR say
 * the same thing more simply, so later passes see fewer cases:
 *   - a selection that keeps everything disappears (N:M with N = M, a filter
 *     round or prediction keeping 100% or at least every key);
 *   - a window at least as long as the sequence allows everything (mask_all);
 *   - mask algebra with mask_all folds (and: the other side; or: all), and
 *     applying mask_all disappears;
 *   - sattn ops whose results are unused are erased (IRDL ops carry no
 *     Pure trait, so upstream canonicalize and cse leave them).
 * Token and head pruning stay whatever their ratio: they also feed the
 * importance outputs of the cascade. Runs to a fixed point. */
#include <stdlib.h>
#include <string.h>

#include "../dialect/dialect.h"
#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/Diagnostics.h"
#include "passes.h"

typedef struct {
  MlirOperation *ops;
  size_t n, cap;
  bool oom;
} OpList;

static MlirWalkResult collect(MlirOperation op, void *ud) {
  OpList *l = ud;
  MlirStringRef name = mlirIdentifierStr(mlirOperationGetName(op));
  if (name.length < 6 || memcmp(name.data, "sattn.", 6) != 0)
    return MlirWalkResultAdvance;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    MlirOperation *g = realloc(l->ops, cap * sizeof *g);
    if (!g) {
      l->oom = true;
      return MlirWalkResultInterrupt;
    }
    l->ops = g;
    l->cap = cap;
  }
  l->ops[l->n++] = op;
  return MlirWalkResultAdvance;
}

static void replace(MlirOperation op, MlirValue with) {
  mlirValueReplaceAllUsesOfWith(mlirOperationGetResult(op, 0), with);
  mlirOperationDestroy(op);
}

static bool defined_by(MlirValue v, const char *short_name) {
  return mlirValueIsAOpResult(v) && dl_is(mlirOpResultGetOwner(v), short_name);
}

/* The static sequence length from a [..., S, S] type, or -1. */
static int64_t static_seq(MlirType t) {
  if (!mlirTypeIsARankedTensor(t))
    return -1;
  intptr_t r = mlirShapedTypeGetRank(t);
  return mlirShapedTypeIsDynamicDim(t, r - 1) ? -1 : mlirShapedTypeGetDimSize(t, r - 1);
}

static bool keeps_everything(MlirOperation op) {
  char kind[32];
  double v;
  if (!dl_get_str(op, "keep", kind, sizeof kind) || !dl_get_f64(op, "keep_value", &v))
    return false;
  if (!strcmp(kind, "top_ratio"))
    return v >= 1.0;
  int64_t s = static_seq(mlirValueGetType(mlirOperationGetResult(op, 0)));
  return !strcmp(kind, "top_count") && s > 0 && v >= (double)s;
}

static bool unused(MlirOperation op) {
  for (intptr_t i = 0; i < mlirOperationGetNumResults(op); i++)
    if (!mlirOpOperandIsNull(mlirValueGetFirstUse(mlirOperationGetResult(op, i))))
      return false;
  return true;
}

/* Applies the first rule that matches op; true when op was replaced. */
static bool rewrite(MlirOperation op) {
  MlirValue in0 = mlirOperationGetNumOperands(op) > 0 ? mlirOperationGetOperand(op, 0) : (MlirValue){0};
  if (unused(op)) {
    mlirOperationDestroy(op);
    return true;
  }
  if (dl_is(op, "select_nm")) {
    int64_t n, m;
    if (dl_get_i64(op, "n", &n) && dl_get_i64(op, "m", &m) && n == m) {
      replace(op, in0);
      return true;
    }
    return false;
  }
  if (dl_is(op, "filter_round") || dl_is(op, "predict")) {
    if (keeps_everything(op)) {
      replace(op, in0);
      return true;
    }
    return false;
  }
  if (dl_is(op, "prune_values")) {
    double keep;
    if (dl_get_f64(op, "keep", &keep) && keep >= 1.0) {
      replace(op, in0);
      return true;
    }
    return false;
  }
  if (dl_is(op, "mask_window")) {
    int64_t size, dil, s = static_seq(mlirValueGetType(mlirOperationGetResult(op, 0)));
    if (s > 0 && dl_get_i64(op, "size", &size) && dl_get_i64(op, "dilation", &dil) && dil == 1 &&
        size / 2 >= s - 1) {
      MlirOperationState st = mlirOperationStateGet(dl_ref("sattn.mask_all"), mlirOperationGetLocation(op));
      MlirType t = mlirValueGetType(mlirOperationGetResult(op, 0));
      mlirOperationStateAddResults(&st, 1, &t);
      MlirOperation all = mlirOperationCreate(&st);
      mlirBlockInsertOwnedOperationBefore(mlirOperationGetBlock(op), op, all);
      replace(op, mlirOperationGetResult(all, 0));
      return true;
    }
    return false;
  }
  if (dl_is(op, "mask_and") || dl_is(op, "mask_or")) {
    MlirValue a = in0, b = mlirOperationGetOperand(op, 1);
    bool is_and = dl_is(op, "mask_and");
    if (mlirValueEqual(a, b))
      replace(op, a);
    else if (defined_by(a, "mask_all"))
      replace(op, is_and ? b : a);
    else if (defined_by(b, "mask_all"))
      replace(op, is_and ? a : b);
    else
      return false;
    return true;
  }
  if (dl_is(op, "apply_mask") && defined_by(mlirOperationGetOperand(op, 1), "mask_all")) {
    replace(op, in0);
    return true;
  }
  return false;
}

bool pass_canonicalize_run(MlirOperation module) {
  bool changed = true;
  while (changed) {
    changed = false;
    OpList l = {0};
    mlirOperationWalk(module, collect, &l, MlirWalkPostOrder);
    if (l.oom) {
      free(l.ops);
      mlirEmitError(mlirOperationGetLocation(module), "sattn-canonicalize: out of memory");
      return false;
    }
    /* Users come after producers; visiting in reverse lets a dead user go
     * before its producer is looked at, in the same sweep. */
    for (size_t i = l.n; i-- > 0;)
      changed |= rewrite(l.ops[i]);
    free(l.ops);
  }
  return true;
}
