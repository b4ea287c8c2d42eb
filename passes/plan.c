/* plan.c: reading a sattn func into a KernelPlan, for the lowering passes
 * (sattn-lower-cpu, sattn-lower-accel): shapes and precisions from the
 * types, the static mask as a tree of mask ops, the dynamic stages with
 * their attributes. Stages must come in the order the fused kernels run
 * them (docs/semantics.md); a func in another order is rejected rather than
 * silently reordered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dialect/dialect.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/Diagnostics.h"
#include "passes.h"
#include "plan.h"

/* The order in which the fused kernel runs the stages; a func whose ops
 * come in another order is rejected rather than silently reordered. */
#define STAGES(X)                                                                                \
  X("qk") X("apply_mask") X("prune_tokens") X("prune_heads") X("predict") X("filter_round")    \
  X("select_nm") X("softmax") X("requantize") X("token_importance") X("prune_values") X("av") \
  X("head_importance")

static const char *const stage_names[] = {
#define X(n) n,
    STAGES(X)
#undef X
};
enum { N_STAGES = sizeof stage_names / sizeof *stage_names };

void plan_error(PlanReader *l, MlirOperation op, const char *msg) {
  char full[512];
  snprintf(full, sizeof full, "%s: %s", l->pass, msg);
  mlirEmitError(mlirOperationGetLocation(op), full);
  l->failed = true;
}

bool plan_dtype(MlirType t, SaDtype *out) {
  if (mlirTypeIsAF32(t))
    *out = DT_FP32;
  else if (mlirTypeIsAF16(t))
    *out = DT_FP16;
  else if (mlirTypeIsABF16(t))
    *out = DT_BF16;
  else if (mlirTypeIsAFloat8E4M3FN(t))
    *out = DT_FP8E4M3;
  else if (mlirTypeIsAFloat8E5M2(t))
    *out = DT_FP8E5M2;
  else
    return false;
  return true;
}

static int64_t *copy_i64_array(MlirAttribute a, int *out_n) {
  intptr_t n = mlirDenseArrayGetNumElements(a);
  int64_t *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
  if (!v)
    return NULL;
  for (intptr_t i = 0; i < n; i++)
    v[i] = mlirDenseI64ArrayGetElement(a, i);
  *out_n = (int)n;
  return v;
}

/* The mask tree of the value `m`, or NULL with an error. */
static MaskNode *mask_tree(PlanReader *l, MlirValue m) {
  if (!mlirValueIsAOpResult(m)) {
    plan_error(l, l->func, "a mask must be computed by sattn mask ops");
    return NULL;
  }
  MlirOperation op = mlirOpResultGetOwner(m);
  if (l->n_nodes == (int)(sizeof l->nodes / sizeof *l->nodes)) {
    plan_error(l, op, "the mask has more than 64 terms");
    return NULL;
  }
  MaskNode *n = calloc(1, sizeof *n);
  if (!n) {
    plan_error(l, op, "out of memory");
    return NULL;
  }
  l->nodes[l->n_nodes++] = n;
  static const char *const kinds[] = {
#define X(e, s) s,
      CG_MASK_KINDS(X)
#undef X
  };
  char full[32];
  int kind = -1;
  for (int k = 0; k < (int)(sizeof kinds / sizeof *kinds); k++) {
    snprintf(full, sizeof full, "mask_%s", kinds[k]);
    if (dl_is(op, full))
      kind = k;
  }
  if (kind < 0) {
    plan_error(l, op, "not a mask op");
    return NULL;
  }
  n->kind = (MaskKind)kind;
  static const char *const attrs[][5] = {
      [MK_WINDOW] = {"size", "dilation"},
      [MK_WINDOW2D] = {"image_h", "image_w", "win_h", "win_w", "offset"},
      [MK_BLOCKS] = {"block"},
      [MK_BIGBIRD] = {"block", "window", "random", "global", "seed"},
  };
  for (int a = 0; a < 5 && kind < (int)(sizeof attrs / sizeof *attrs) && attrs[kind][a]; a++)
    if (!dl_get_i64(op, attrs[kind][a], &n->a[a]))
      plan_error(l, op, "a mask attribute is missing");
  const char *list = n->kind == MK_GLOBAL ? "tokens" : n->kind == MK_BLOCKS ? "pairs" : NULL;
  if (list) {
    MlirAttribute a = mlirOperationGetAttributeByName(op, dl_ref(list));
    if (mlirAttributeIsNull(a) || !mlirAttributeIsADenseI64Array(a) || !(n->list = copy_i64_array(a, &n->n_list)))
      plan_error(l, op, "the mask's index list is missing");
  }
  if ((n->kind == MK_WINDOW && n->a[1] < 1) || ((n->kind == MK_BLOCKS || n->kind == MK_BIGBIRD) && n->a[0] < 1) ||
      (n->kind == MK_WINDOW2D && (n->a[0] < 1 || n->a[1] < 1)))
    plan_error(l, op, "mask attribute out of range");
  if (n->kind == MK_AND || n->kind == MK_OR) {
    n->lhs = mask_tree(l, mlirOperationGetOperand(op, 0));
    n->rhs = n->lhs ? mask_tree(l, mlirOperationGetOperand(op, 1)) : NULL;
  }
  return l->failed ? NULL : n;
}

static SaKeep read_keep(MlirOperation op) {
  char kind[32] = "";
  double v = 1.0;
  dl_get_str(op, "keep", kind, sizeof kind);
  dl_get_f64(op, "keep_value", &v);
  SaKeep k = {KEEP_TOP_RATIO, v};
  if (!strcmp(kind, "top_count"))
    k.kind = KEEP_TOP_COUNT;
  else if (!strcmp(kind, "mean"))
    k.kind = KEEP_MEAN;
  return k;
}

static int64_t i64_or(MlirOperation op, const char *name, int64_t dflt) {
  int64_t v = dflt;
  dl_get_i64(op, name, &v);
  return v;
}

static double f64_or(MlirOperation op, const char *name, double dflt) {
  double v = dflt;
  dl_get_f64(op, name, &v);
  return v;
}

/* Reads one stage op into the plan. */
static void read_stage(PlanReader *l, MlirOperation op, int stage) {
  SaSpec *s = &l->plan.s;
  const char *name = stage_names[stage];
  if (!strcmp(name, "qk")) {
    s->scale = f64_or(op, "scale", s->scale);
  } else if (!strcmp(name, "apply_mask")) {
    l->plan.mask = mask_tree(l, mlirOperationGetOperand(op, 1));
  } else if (!strcmp(name, "prune_tokens")) {
    s->token_keep = f64_or(op, "keep", 1.0);
  } else if (!strcmp(name, "prune_heads")) {
    s->head_keep = f64_or(op, "keep", 1.0);
  } else if (!strcmp(name, "predict")) {
    s->has_predict = true;
    s->predict_dim = i64_or(op, "dim", 1);
    s->predict_bits = (int)i64_or(op, "bits", 8);
    s->predict_seed = (uint64_t)i64_or(op, "seed", 0);
    s->predict_keep = read_keep(op);
  } else if (!strcmp(name, "filter_round")) {
    if (s->n_filter_rounds == SA_MAX_FILTER_ROUNDS) {
      plan_error(l, op, "more than 8 filter rounds");
      return;
    }
    SaFilterRound *r = &s->filter[s->n_filter_rounds++];
    r->q_bits = (int)i64_or(op, "q_bits", 8);
    r->k_bits = (int)i64_or(op, "k_bits", 8);
    r->keep = read_keep(op);
  } else if (!strcmp(name, "select_nm")) {
    s->nm_n = (int)i64_or(op, "n", 1);
    s->nm_m = (int)i64_or(op, "m", 1);
  } else if (!strcmp(name, "requantize")) {
    s->has_progressive = true;
    s->msb_bits = (int)i64_or(op, "msb", 8);
    s->lsb_bits = (int)i64_or(op, "lsb", 0);
    s->requant_threshold = f64_or(op, "threshold", 0.0);
  } else if (!strcmp(name, "prune_values")) {
    s->value_keep = f64_or(op, "keep", 1.0);
  } else if (!strcmp(name, "av")) {
    MlirType t = mlirValueGetType(mlirOperationGetResult(op, 0));
    if (!mlirTypeIsARankedTensor(t) || !plan_dtype(mlirShapedTypeGetElementType(t), &s->output))
      plan_error(l, op, "the output must be a tensor of a float type");
  }
}

static void read_func(PlanReader *l) {
  SaSpec *s = &l->plan.s;
  MlirOperation f = l->func;
  MlirAttribute sym = mlirOperationGetAttributeByName(f, dl_ref("sym_name"));
  MlirStringRef nm = mlirStringAttrGetValue(sym);
  snprintf(l->name, sizeof l->name, "%.*s", (int)nm.length, nm.data);
  s->name = l->name;
  s->token_keep = s->head_keep = s->value_keep = 1.0;
  char layout[16] = "bhsd";
  dl_get_str(f, "sattn.layout", layout, sizeof layout);
  s->layout = strcmp(layout, "bshd") == 0 ? LAYOUT_BSHD : LAYOUT_BHSD;

  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(f, 0));
  if (mlirBlockGetNumArguments(body) < 3) {
    plan_error(l, f, "a sattn func takes q, k and v");
    return;
  }
  int64_t qd[4], kd[4];
  MlirType qt = mlirValueGetType(mlirBlockGetArgument(body, 0));
  MlirType kt = mlirValueGetType(mlirBlockGetArgument(body, 1));
  if (!pass_tensor(qt, 4, qd) || !pass_tensor(kt, 4, kd) || qd[1] < 1 || kd[1] < 1 || qd[3] < 1) {
    plan_error(l, f, "q and k must be [batch, heads, seq, head_dim] tensors with static heads and head_dim");
    return;
  }
  /* the kernel generator's register blocking assumes the language's limits */
  int64_t vd[4];
  MlirType vt = mlirValueGetType(mlirBlockGetArgument(body, 2));
  if (qd[3] > 256 || kd[3] != qd[3] || qd[1] > 65536 || !pass_tensor(vt, 4, vd) || vd[1] != kd[1] ||
      vd[3] != kd[3]) {
    plan_error(l, f, "q, k and v must share head_dim (at most 256), k and v their heads (at most 65536)");
    return;
  }
  s->batch = qd[0] < 0 ? SA_DYNAMIC : qd[0];
  s->heads = qd[1];
  s->seq = qd[2] < 0 ? SA_DYNAMIC : qd[2];
  s->head_dim = qd[3];
  s->kv_heads = kd[1];
  s->scale = 1.0;
  if (s->heads % s->kv_heads != 0) {
    plan_error(l, f, "heads must be a multiple of kv heads");
    return;
  }
  if (!plan_dtype(mlirShapedTypeGetElementType(qt), &s->storage)) {
    plan_error(l, f, "q, k and v must hold fp32, fp16, bf16 or fp8");
    return;
  }
  s->output = s->storage;

  int last = -1;
  for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationIsNull(op) && !l->failed;
       op = mlirOperationGetNextInBlock(op)) {
    MlirStringRef opn = mlirIdentifierStr(mlirOperationGetName(op));
    if (opn.length > 11 && memcmp(opn.data, "sattn.mask_", 11) == 0)
      continue; /* read through apply_mask */
    if (opn.length < 6 || memcmp(opn.data, "sattn.", 6) != 0)
      continue; /* func.return */
    int stage = -1;
    for (int k = 0; k < N_STAGES; k++)
      if (dl_is(op, stage_names[k]))
        stage = k;
    if (stage < 0) {
      plan_error(l, op, "op not supported by the lowering");
      return;
    }
    bool repeatable = !strcmp(stage_names[stage], "filter_round");
    if (stage < last || (stage == last && !repeatable)) {
      plan_error(l, op, "stages out of the order the fused kernel runs them (see docs/semantics.md)");
      return;
    }
    last = stage;
    read_stage(l, op, stage);
  }
}

void plan_free(PlanReader *l) {
  for (int i = 0; i < l->n_nodes; i++) {
    free(l->nodes[i]->list);
    free(l->nodes[i]);
  }
  l->n_nodes = 0;
}


bool plan_read(PlanReader *l, MlirOperation func, const char *pass) {
  memset(l, 0, sizeof *l);
  l->func = func;
  l->pass = pass;
  read_func(l);
  if (l->failed)
    plan_free(l);
  return !l->failed;
}

static bool has_sattn_ops(MlirOperation func) {
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(func, 0));
  if (mlirBlockIsNull(body))
    return false;
  for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationIsNull(op);
       op = mlirOperationGetNextInBlock(op)) {
    MlirStringRef n = mlirIdentifierStr(mlirOperationGetName(op));
    if (n.length > 6 && memcmp(n.data, "sattn.", 6) == 0)
      return true;
  }
  return false;
}

bool plan_lower_funcs(MlirOperation module, bool (*lower)(MlirOperation func, void *ud), void *ud) {
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(module, 0));
  bool ok = true;
  MlirOperation op = mlirBlockGetFirstOperation(body);
  while (!mlirOperationIsNull(op)) {
    MlirOperation next = mlirOperationGetNextInBlock(op);
    MlirStringRef n = mlirIdentifierStr(mlirOperationGetName(op));
    if (n.length == 9 && memcmp(n.data, "func.func", 9) == 0 && has_sattn_ops(op))
      ok = lower(op, ud) && ok;
    op = next;
  }
  return ok;
}

bool plan_replace(MlirOperation func, const char *text, const char *pass) {
  MlirContext ctx = mlirOperationGetContext(func);
  MlirModule m = mlirModuleCreateParse(ctx, mlirStringRefCreateFromCString(text));
  if (mlirModuleIsNull(m)) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: internal error: the generated code does not parse (the diagnostic above says where)",
             pass);
    mlirEmitError(mlirOperationGetLocation(func), msg);
    return false;
  }
  /* Move the new ops; a declaration another kernel already brought (the
   * runtime's entry points) is not moved twice. */
  MlirSymbolTable table = mlirSymbolTableCreate(mlirOperationGetParentOperation(func));
  MlirOperation next;
  for (MlirOperation op = mlirBlockGetFirstOperation(mlirModuleGetBody(m)); !mlirOperationIsNull(op); op = next) {
    next = mlirOperationGetNextInBlock(op);
    MlirAttribute sym = mlirOperationGetAttributeByName(op, dl_ref("sym_name"));
    MlirOperation found =
        mlirAttributeIsNull(sym) ? (MlirOperation){NULL} : mlirSymbolTableLookup(table, mlirStringAttrGetValue(sym));
    bool dup = !mlirOperationIsNull(found) && !mlirOperationEqual(found, func);
    if (!dup)
      mlirOperationMoveBefore(op, func);
  }
  mlirSymbolTableDestroy(table);
  mlirOperationDestroy(func);
  mlirModuleDestroy(m);
  return true;
}
