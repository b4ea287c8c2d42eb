/* verify.c: sattn-verify. IRDL checks which ops exist and the kinds of
 * their operands and attributes; this pass checks the rest: ranks, shapes
 * that must agree, element types, and the ranges of integer and float
 * attributes. Every failure is a located error; the pass never stops at the
 * first, so one run shows every problem. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../dialect/dialect.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/Diagnostics.h"
#include "passes.h"

typedef struct {
  MlirOperation op;
  int errors;
} Check;

static void fail(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Check *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  MlirStringRef name = mlirIdentifierStr(mlirOperationGetName(c->op));
  char full[600];
  snprintf(full, sizeof full, "'%.*s': %s", (int)name.length, name.data, msg);
  mlirEmitError(mlirOperationGetLocation(c->op), full);
  c->errors++;
}

static bool same_dim(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

static MlirType operand_type(Check *c, int i) {
  return mlirValueGetType(mlirOperationGetOperand(c->op, i));
}
static MlirType result_type(Check *c) { return mlirValueGetType(mlirOperationGetResult(c->op, 0)); }

static bool is_float_type(MlirType t) {
  return mlirTypeIsAF32(t) || mlirTypeIsAF16(t) || mlirTypeIsABF16(t);
}

static void want_int(Check *c, const char *name, int64_t lo, int64_t hi, int64_t *out) {
  int64_t v = 0;
  if (!dl_get_i64(c->op, name, &v)) {
    fail(c, "needs an integer attribute '%s'", name);
  } else if (v < lo || v > hi) {
    fail(c, "'%s' must be in [%lld, %lld], got %lld", name, (long long)lo, (long long)hi, (long long)v);
  }
  if (out)
    *out = v;
}

static void want_ratio(Check *c, const char *name) {
  double v = 0;
  if (!dl_get_f64(c->op, name, &v))
    fail(c, "needs a float attribute '%s'", name);
  else if (!(v > 0.0 && v <= 1.0))
    fail(c, "'%s' must be in (0, 1], got %g", name, v);
}

static void want_float_precision(Check *c, const char *name) {
  MlirType t;
  if (!dl_get_type(c->op, name, &t))
    fail(c, "needs a type attribute '%s'", name);
  else if (!is_float_type(t))
    fail(c, "'%s' must be f32, f16 or bf16", name);
}

/* Operand i (or the result when i < 0) must be a rank-r tensor. */
static bool want_tensor(Check *c, int i, int rank, int64_t *dims, const char *what) {
  MlirType t = i < 0 ? result_type(c) : operand_type(c, i);
  if (!pass_tensor(t, rank, dims)) {
    fail(c, "%s must be a ranked tensor of rank %d", what, rank);
    return false;
  }
  return true;
}

/* Scores and probabilities: [B, H, S, S]. */
static void check_scores(Check *c, int i, const char *what) {
  int64_t d[4];
  if (want_tensor(c, i, 4, d, what) && !same_dim(d[2], d[3]))
    fail(c, "%s must be square in its last two dims (queries x keys)", what);
}

static void check_keep(Check *c) {
  char kind[32];
  double v;
  if (!dl_get_str(c->op, "keep", kind, sizeof kind) || !dl_get_f64(c->op, "keep_value", &v)) {
    fail(c, "needs 'keep' and 'keep_value'");
    return;
  }
  if (!strcmp(kind, "top_ratio") && !(v > 0.0 && v <= 1.0))
    fail(c, "keep top_ratio must be in (0, 1], got %g", v);
  else if (!strcmp(kind, "top_count") && !(v >= 1.0 && v == floor(v)))
    fail(c, "keep top_count must be a whole number of at least 1, got %g", v);
  else if (!strcmp(kind, "mean") && !(v >= -1.0 && v <= 1.0))
    fail(c, "keep mean offset must be in [-1, 1], got %g", v);
}

/* Q [B,H,S,D] and K [B,KVH,S,D] as operands qi and ki. */
static int64_t check_qk_operands(Check *c, int qi, int ki) {
  int64_t q[4], k[4];
  if (!want_tensor(c, qi, 4, q, "Q") || !want_tensor(c, ki, 4, k, "K"))
    return -1;
  if (!same_dim(q[0], k[0]) || !same_dim(q[2], k[2]) || !same_dim(q[3], k[3]))
    fail(c, "Q and K must agree in batch, sequence length and head_dim");
  if (q[1] > 0 && k[1] > 0 && q[1] % k[1] != 0)
    fail(c, "K's heads (%lld) must divide Q's heads (%lld)", (long long)k[1], (long long)q[1]);
  return q[3];
}

static void v_qk(Check *c) {
  check_qk_operands(c, 0, 1);
  check_scores(c, -1, "scores");
  double scale;
  if (!dl_get_f64(c->op, "scale", &scale) || !(scale > 0.0 && isfinite(scale)))
    fail(c, "'scale' must be a positive finite float");
  want_float_precision(c, "precision");
  MlirType q = operand_type(c, 0), k = operand_type(c, 1);
  if (mlirTypeIsARankedTensor(q) && mlirTypeIsARankedTensor(k) &&
      !mlirTypeEqual(mlirShapedTypeGetElementType(q), mlirShapedTypeGetElementType(k)))
    fail(c, "Q and K must have the same element type");
}

static void check_mask_result(Check *c) {
  int64_t d[2];
  if (!want_tensor(c, -1, 2, d, "a mask"))
    return;
  if (!mlirTypeIsAInteger(mlirShapedTypeGetElementType(result_type(c))) ||
      mlirIntegerTypeGetWidth(mlirShapedTypeGetElementType(result_type(c))) != 1)
    fail(c, "a mask must have element type i1");
  if (!same_dim(d[0], d[1]))
    fail(c, "a mask must be square (queries x keys)");
}

static void v_mask(Check *c) { check_mask_result(c); }

static void v_mask_window(Check *c) {
  check_mask_result(c);
  want_int(c, "size", 1, 1 << 24, NULL);
  want_int(c, "dilation", 1, 1 << 24, NULL);
}

static void v_mask_window2d(Check *c) {
  check_mask_result(c);
  int64_t ih, iw, wh, ww;
  want_int(c, "image_h", 1, 1 << 20, &ih);
  want_int(c, "image_w", 1, 1 << 20, &iw);
  want_int(c, "win_h", 1, 1 << 21, &wh);
  want_int(c, "win_w", 1, 1 << 21, &ww);
  want_int(c, "offset", 0, INT64_C(1) << 32, NULL);
  if (wh % 2 == 0 || ww % 2 == 0)
    fail(c, "window sizes must be odd");
}

static bool dense_array(Check *c, const char *name, MlirAttribute *out) {
  MlirAttribute a = mlirOperationGetAttributeByName(c->op, dl_ref(name));
  if (mlirAttributeIsNull(a) || !mlirAttributeIsADenseI64Array(a)) {
    fail(c, "'%s' must be an array<i64>", name);
    return false;
  }
  *out = a;
  return true;
}

static void v_mask_global(Check *c) {
  check_mask_result(c);
  MlirAttribute a;
  if (!dense_array(c, "tokens", &a))
    return;
  intptr_t n = mlirDenseArrayGetNumElements(a);
  if (n == 0)
    fail(c, "'tokens' must not be empty");
  for (intptr_t i = 0; i < n; i++) {
    int64_t t = mlirDenseI64ArrayGetElement(a, i);
    if (t < 0 || (i > 0 && t <= mlirDenseI64ArrayGetElement(a, i - 1))) {
      fail(c, "'tokens' must be non-negative, sorted and unique");
      break;
    }
  }
}

static void v_mask_blocks(Check *c) {
  check_mask_result(c);
  want_int(c, "block", 1, 1 << 20, NULL);
  MlirAttribute a;
  if (!dense_array(c, "pairs", &a))
    return;
  intptr_t n = mlirDenseArrayGetNumElements(a);
  if (n == 0 || n % 2)
    fail(c, "'pairs' must hold a non-empty list of (query block, key block) pairs");
  for (intptr_t i = 0; i < n; i++)
    if (mlirDenseI64ArrayGetElement(a, i) < 0) {
      fail(c, "block indices must not be negative");
      break;
    }
}

static void v_mask_bigbird(Check *c) {
  check_mask_result(c);
  int64_t w;
  want_int(c, "block", 1, 1 << 20, NULL);
  want_int(c, "window", 1, 1 << 20, &w);
  want_int(c, "random", 0, 1024, NULL);
  want_int(c, "global", 0, 1024, NULL);
  want_int(c, "seed", 0, INT64_MAX, NULL);
  if (w % 2 == 0)
    fail(c, "'window' must be odd");
}

static void v_mask_binary(Check *c) { check_mask_result(c); }

static void v_apply_mask(Check *c) {
  check_scores(c, 0, "scores");
  int64_t s[4], m[2];
  if (want_tensor(c, 0, 4, s, "scores") && want_tensor(c, 1, 2, m, "mask") &&
      (!same_dim(s[2], m[0]) || !same_dim(s[3], m[1])))
    fail(c, "the mask's shape must match the scores' last two dims");
}

static void check_importance(Check *c, int i, int dim_of_scores) {
  int64_t s[4], imp[2];
  if (!want_tensor(c, 0, 4, s, "scores") || !want_tensor(c, i, 2, imp, "importance"))
    return;
  if (!same_dim(s[0], imp[0]) || !same_dim(s[dim_of_scores], imp[1]))
    fail(c, "importance must be [batch, %s]", dim_of_scores == 1 ? "heads" : "seq");
  if (!mlirTypeIsAF32(mlirShapedTypeGetElementType(operand_type(c, i))))
    fail(c, "importance must be f32");
}

static void v_prune_tokens(Check *c) {
  check_importance(c, 1, 3);
  want_ratio(c, "keep");
}

static void v_prune_heads(Check *c) {
  check_importance(c, 1, 1);
  want_ratio(c, "keep");
}

static void v_predict(Check *c) {
  check_scores(c, 0, "scores");
  int64_t d = check_qk_operands(c, 1, 2);
  want_int(c, "dim", 1, d > 0 ? d : 4096, NULL);
  want_int(c, "bits", 2, 8, NULL);
  want_int(c, "seed", 0, INT64_MAX, NULL);
  check_keep(c);
}

static void v_filter_round(Check *c) {
  check_scores(c, 0, "scores");
  check_qk_operands(c, 1, 2);
  want_int(c, "q_bits", 2, 8, NULL);
  want_int(c, "k_bits", 2, 8, NULL);
  check_keep(c);
}

static void v_select_nm(Check *c) {
  check_scores(c, 0, "scores");
  int64_t n, m;
  want_int(c, "n", 1, 64, &n);
  want_int(c, "m", 2, 64, &m);
  if (n > m)
    fail(c, "needs n <= m, got %lld:%lld", (long long)n, (long long)m);
}

static void v_softmax(Check *c) {
  check_scores(c, 0, "scores");
  check_scores(c, -1, "probabilities");
  want_float_precision(c, "precision");
}

static void v_requantize(Check *c) {
  check_scores(c, 0, "probabilities");
  check_qk_operands(c, 1, 2);
  int64_t msb, lsb;
  want_int(c, "msb", 2, 8, &msb);
  want_int(c, "lsb", 1, 8, &lsb);
  if (msb + lsb > 16)
    fail(c, "msb + lsb must be at most 16");
  double t;
  if (!dl_get_f64(c->op, "threshold", &t) || !(t > 0.0 && t < 1.0))
    fail(c, "'threshold' must be a probability in (0, 1)");
}

static void v_prune_values(Check *c) {
  check_scores(c, 0, "probabilities");
  want_ratio(c, "keep");
}

static void v_av(Check *c) {
  int64_t p[4], v[4], o[4];
  check_scores(c, 0, "probabilities");
  if (!want_tensor(c, 0, 4, p, "probabilities") || !want_tensor(c, 1, 4, v, "V") ||
      !want_tensor(c, -1, 4, o, "the output"))
    return;
  if (!same_dim(p[3], v[2]) || !same_dim(p[0], v[0]))
    fail(c, "V must have one row per key of the probabilities");
  if (!same_dim(o[0], p[0]) || !same_dim(o[1], p[1]) || !same_dim(o[2], p[2]) || !same_dim(o[3], v[3]))
    fail(c, "the output must be [batch, heads, seq, head_dim of V]");
  MlirType acc;
  if (!dl_get_type(c->op, "accumulate", &acc) || !(mlirTypeIsAF32(acc) || mlirTypeIsAF16(acc)))
    fail(c, "'accumulate' must be f32 or f16");
}

static void v_token_importance(Check *c) { check_importance(c, 1, 3); }
static void v_head_importance(Check *c) { check_importance(c, 1, 1); }

static const struct {
  const char *name;
  void (*check)(Check *);
} rules[] = {
    {"qk", v_qk},
    {"mask_all", v_mask},
    {"mask_causal", v_mask},
    {"mask_window", v_mask_window},
    {"mask_window2d", v_mask_window2d},
    {"mask_global", v_mask_global},
    {"mask_blocks", v_mask_blocks},
    {"mask_bigbird", v_mask_bigbird},
    {"mask_and", v_mask_binary},
    {"mask_or", v_mask_binary},
    {"apply_mask", v_apply_mask},
    {"prune_tokens", v_prune_tokens},
    {"prune_heads", v_prune_heads},
    {"predict", v_predict},
    {"filter_round", v_filter_round},
    {"select_nm", v_select_nm},
    {"softmax", v_softmax},
    {"requantize", v_requantize},
    {"prune_values", v_prune_values},
    {"av", v_av},
    {"token_importance", v_token_importance},
    {"head_importance", v_head_importance},
};

static MlirWalkResult visit(MlirOperation op, void *ud) {
  Check *c = ud;
  for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
    if (dl_is(op, rules[i].name)) {
      c->op = op;
      rules[i].check(c);
      break;
    }
  return MlirWalkResultAdvance;
}

bool pass_verify_run(MlirOperation module) {
  Check c = {0};
  mlirOperationWalk(module, visit, &c, MlirWalkPreOrder);
  return c.errors == 0;
}
