/* irgen.c: a checked SaSpec to sattn IR. One func.func per spec, whose body
 * states the spec op by op in the order docs/semantics.md defines. */
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/BuiltinTypes.h"

static MlirType tensor(int rank, const int64_t *dims, MlirType elem) {
  int64_t shape[4];
  for (int i = 0; i < rank; i++)
    shape[i] = dims[i] == SA_DYNAMIC ? mlirShapedTypeGetDynamicSize() : dims[i];
  return mlirRankedTensorTypeGet(rank, shape, elem, mlirAttributeGetNull());
}

static const char *keep_name(SaKeepKind k) {
  switch (k) {
  case KEEP_TOP_RATIO: return "top_ratio";
  case KEEP_TOP_COUNT: return "top_count";
  case KEEP_MEAN: return "mean";
  case KEEP_ALL: break;
  }
  return "top_ratio";
}

typedef struct {
  Builder b;
  MlirType mask_t;
  bool failed; /* out of memory while building */
} Gen;

static MlirValue mask0(Gen *g, const char *name, int n, const Attr *attrs) {
  return dl_result(dl_build(&g->b, name, 0, NULL, 1, &g->mask_t, n, attrs));
}

static MlirValue mask2(Gen *g, const char *name, MlirValue lhs, MlirValue rhs) {
  MlirValue ops[2] = {lhs, rhs};
  return dl_result(dl_build(&g->b, name, 2, ops, 1, &g->mask_t, 0, NULL));
}

/* Folds `acc op next`, where a null acc means "no term yet". */
static MlirValue combine(Gen *g, const char *name, MlirValue acc, MlirValue next) {
  return mlirValueIsNull(acc) ? next : mask2(g, name, acc, next);
}

/* The static mask C and (L or G); null when the pattern allows every pair. */
static MlirValue static_mask(Gen *g, const SaSpec *s) {
  MlirContext ctx = g->b.ctx;
  MlirValue local = {0};
  if (s->has_window) {
    Attr a[] = {{"size", dl_i64(ctx, s->window)}, {"dilation", dl_i64(ctx, s->dilation)}};
    local = combine(g, "sattn.mask_or", local, mask0(g, "sattn.mask_window", 2, a));
  }
  if (s->has_window2d) {
    Attr a[] = {{"image_h", dl_i64(ctx, s->image_h)}, {"image_w", dl_i64(ctx, s->image_w)},
                {"win_h", dl_i64(ctx, s->win_h)},     {"win_w", dl_i64(ctx, s->win_w)},
                {"offset", dl_i64(ctx, s->image_offset)}};
    local = combine(g, "sattn.mask_or", local, mask0(g, "sattn.mask_window2d", 5, a));
  }
  if (s->n_block_pairs > 0 && !s->has_bigbird) {
    int64_t *flat = malloc(2 * (size_t)s->n_block_pairs * sizeof *flat);
    if (!flat) {
      g->failed = true;
      return local;
    }
    for (int i = 0; i < s->n_block_pairs; i++) {
      flat[2 * i] = s->block_pairs[i].q;
      flat[2 * i + 1] = s->block_pairs[i].k;
    }
    Attr a[] = {{"block", dl_i64(ctx, s->block)},
                {"pairs", mlirDenseI64ArrayGet(ctx, 2 * s->n_block_pairs, flat)}};
    free(flat);
    local = combine(g, "sattn.mask_or", local, mask0(g, "sattn.mask_blocks", 2, a));
  }
  if (s->has_bigbird) {
    Attr a[] = {{"block", dl_i64(ctx, s->block)},        {"window", dl_i64(ctx, s->bb_window)},
                {"random", dl_i64(ctx, s->bb_random)},   {"global", dl_i64(ctx, s->bb_global)},
                {"seed", dl_i64(ctx, (int64_t)s->bb_seed)}};
    local = combine(g, "sattn.mask_or", local, mask0(g, "sattn.mask_bigbird", 5, a));
  }
  if (s->n_global > 0) {
    Attr a[] = {{"tokens", mlirDenseI64ArrayGet(ctx, s->n_global, s->global)}};
    local = combine(g, "sattn.mask_or", local, mask0(g, "sattn.mask_global", 1, a));
  }
  if (s->causal)
    local = combine(g, "sattn.mask_and", local, mask0(g, "sattn.mask_causal", 0, NULL));
  return local;
}

/* Appends a selection op `name(scores, q, k)` with keep attributes. */
static MlirValue select_op(Gen *g, const char *name, MlirValue s, MlirValue q, MlirValue k, SaKeep keep,
                           Attr *extra, int n_extra) {
  Attr a[8];
  memcpy(a, extra, (size_t)n_extra * sizeof *a);
  a[n_extra] = (Attr){"keep", dl_str(g->b.ctx, keep_name(keep.kind))};
  a[n_extra + 1] = (Attr){"keep_value", dl_f64(g->b.ctx, keep.value)};
  MlirValue ops[3] = {s, q, k};
  MlirType t = mlirValueGetType(s);
  return dl_result(dl_build(&g->b, name, 3, ops, 1, &t, n_extra + 2, a));
}

static MlirValue unary(Gen *g, const char *name, MlirValue in, MlirType t, int n, const Attr *a) {
  return dl_result(dl_build(&g->b, name, 1, &in, 1, &t, n, a));
}

static MlirValue binary(Gen *g, const char *name, MlirValue x, MlirValue y, MlirType t, int n, const Attr *a) {
  MlirValue ops[2] = {x, y};
  return dl_result(dl_build(&g->b, name, 2, ops, 1, &t, n, a));
}

static bool gen_spec(MlirContext ctx, MlirBlock module_body, const SaSpec *s) {
  MlirLocation loc = mlirLocationFileLineColGet(ctx, dl_ref(s->file ? s->file : "<input>"), (unsigned)s->line,
                                                (unsigned)s->col);
  MlirType in_t = dl_dtype(ctx, s->storage), f32 = mlirF32TypeGet(ctx);
  int64_t qd[4] = {s->batch, s->heads, s->seq, s->head_dim};
  int64_t kd[4] = {s->batch, s->kv_heads, s->seq, s->head_dim};
  int64_t sd[4] = {s->batch, s->heads, s->seq, s->seq};
  int64_t md[2] = {s->seq, s->seq};
  int64_t td[2] = {s->batch, s->seq};
  int64_t hd[2] = {s->batch, s->heads};
  MlirType q_t = tensor(4, qd, in_t), kv_t = tensor(4, kd, in_t);
  MlirType o_t = tensor(4, qd, dl_dtype(ctx, s->output));
  MlirType score_t = tensor(4, sd, dl_dtype(ctx, s->score));
  MlirType prob_t = tensor(4, sd, dl_dtype(ctx, s->softmax));
  MlirType timp_t = tensor(2, td, f32), himp_t = tensor(2, hd, f32);
  bool tokens = s->token_keep < 1.0, heads = s->head_keep < 1.0;

  MlirType args[5] = {q_t, kv_t, kv_t}, rets[3] = {o_t};
  int nargs = 3, nrets = 1;
  if (tokens)
    args[nargs++] = timp_t, rets[nrets++] = timp_t;
  if (heads)
    args[nargs++] = himp_t, rets[nrets++] = himp_t;
  MlirLocation locs[5] = {loc, loc, loc, loc, loc};
  MlirBlock body = mlirBlockCreate(nargs, args, locs);
  MlirRegion region = mlirRegionCreate();
  mlirRegionAppendOwnedBlock(region, body);

  Gen g = {{ctx, body, loc}, tensor(2, md, mlirIntegerTypeGet(ctx, 1))};
  MlirValue q = mlirBlockGetArgument(body, 0), k = mlirBlockGetArgument(body, 1),
            v = mlirBlockGetArgument(body, 2);
  int next_arg = 3;
  MlirValue timp = tokens ? mlirBlockGetArgument(body, next_arg++) : (MlirValue){0};
  MlirValue himp = heads ? mlirBlockGetArgument(body, next_arg++) : (MlirValue){0};

  Attr qk_a[] = {{"scale", dl_f64(ctx, s->scale)}, {"precision", mlirTypeAttrGet(dl_dtype(ctx, s->score))}};
  MlirValue sc = binary(&g, "sattn.qk", q, k, score_t, 2, qk_a);
  MlirValue mask = static_mask(&g, s);
  if (!mlirValueIsNull(mask))
    sc = binary(&g, "sattn.apply_mask", sc, mask, score_t, 0, NULL);
  if (tokens) {
    Attr a[] = {{"keep", dl_f64(ctx, s->token_keep)}};
    sc = binary(&g, "sattn.prune_tokens", sc, timp, score_t, 1, a);
  }
  if (heads) {
    Attr a[] = {{"keep", dl_f64(ctx, s->head_keep)}};
    sc = binary(&g, "sattn.prune_heads", sc, himp, score_t, 1, a);
  }
  if (s->has_predict) {
    Attr a[] = {{"dim", dl_i64(ctx, s->predict_dim)},
                {"bits", dl_i64(ctx, s->predict_bits)},
                {"seed", dl_i64(ctx, (int64_t)s->predict_seed)}};
    sc = select_op(&g, "sattn.predict", sc, q, k, s->predict_keep, a, 3);
  }
  for (int r = 0; r < s->n_filter_rounds; r++) {
    Attr a[] = {{"q_bits", dl_i64(ctx, s->filter[r].q_bits)}, {"k_bits", dl_i64(ctx, s->filter[r].k_bits)}};
    sc = select_op(&g, "sattn.filter_round", sc, q, k, s->filter[r].keep, a, 2);
  }
  if (s->nm_m) {
    Attr a[] = {{"n", dl_i64(ctx, s->nm_n)}, {"m", dl_i64(ctx, s->nm_m)}};
    sc = unary(&g, "sattn.select_nm", sc, score_t, 2, a);
  }
  Attr sm_a[] = {{"precision", mlirTypeAttrGet(dl_dtype(ctx, s->softmax))}};
  MlirValue p = unary(&g, "sattn.softmax", sc, prob_t, 1, sm_a);
  if (s->has_progressive) {
    Attr a[] = {{"msb", dl_i64(ctx, s->msb_bits)},
                {"lsb", dl_i64(ctx, s->lsb_bits)},
                {"threshold", dl_f64(ctx, s->requant_threshold)}};
    MlirValue ops[3] = {p, q, k};
    p = dl_result(dl_build(&g.b, "sattn.requantize", 3, ops, 1, &prob_t, 3, a));
  }
  MlirValue results[3];
  int nres = 1;
  if (tokens)
    results[nres++] = binary(&g, "sattn.token_importance", p, timp, timp_t, 0, NULL);
  if (s->value_keep < 1.0) {
    Attr a[] = {{"keep", dl_f64(ctx, s->value_keep)}};
    p = unary(&g, "sattn.prune_values", p, prob_t, 1, a);
  }
  Attr av_a[] = {{"accumulate", mlirTypeAttrGet(dl_dtype(ctx, s->accumulate))}};
  results[0] = binary(&g, "sattn.av", p, v, o_t, 1, av_a);
  if (heads)
    results[nres++] = binary(&g, "sattn.head_importance", results[0], himp, himp_t, 0, NULL);
  dl_build(&g.b, "func.return", nres, results, 0, NULL, 0, NULL);

  MlirType fn_t = mlirFunctionTypeGet(ctx, nargs, args, nrets, rets);
  MlirOperationState st = mlirOperationStateGet(dl_ref("func.func"), loc);
  MlirNamedAttribute fa[] = {
      mlirNamedAttributeGet(mlirIdentifierGet(ctx, dl_ref("sym_name")), dl_str(ctx, s->name)),
      mlirNamedAttributeGet(mlirIdentifierGet(ctx, dl_ref("function_type")), mlirTypeAttrGet(fn_t)),
      mlirNamedAttributeGet(mlirIdentifierGet(ctx, dl_ref("sattn.layout")),
                            dl_str(ctx, s->layout == LAYOUT_BHSD ? "bhsd" : "bshd")),
  };
  mlirOperationStateAddAttributes(&st, 3, fa);
  mlirOperationStateAddOwnedRegions(&st, 1, &region);
  mlirBlockAppendOwnedOperation(module_body, mlirOperationCreate(&st));
  return !g.failed;
}

MlirModule irgen_module(MlirContext ctx, const SaSpec *const *specs, int n) {
  MlirModule m = mlirModuleCreateEmpty(mlirLocationUnknownGet(ctx));
  MlirBlock body = mlirModuleGetBody(m);
  for (int i = 0; i < n; i++)
    if (!gen_spec(ctx, body, specs[i])) {
      mlirModuleDestroy(m);
      return (MlirModule){NULL};
    }
  return m;
}
