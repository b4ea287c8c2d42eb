/* lower_accel.c: sattn-lower-accel. Replaces each func.func written in the
 * sattn dialect by an accelerator program in the saccel dialect
 * (dialect/saccel.irdl.mlir), scheduled for one PE array.
 *
 * The pass reads the func into a KernelPlan (passes/plan.c), turns the mask
 * tree into the one formula the accelerator's mask unit evaluates, and has
 * the scheduler (codegen/accel/schedule.c) tile the rows to the array, lay
 * the window terms on diagonal passes and blocks on block passes, and order
 * the row engine's stages; the program is written as saccel ops.
 *
 * The PE array and the on-chip buffers the tiles must fit come from the
 * module's `saccel.config` dictionary (pe_rows, pe_cols, global_pes,
 * sram_q_bytes, sram_out_bytes, as in the hardware configuration file);
 * sattn's defaults (SALO's 32 x 32 array, one global PE, 32 KiB buffers)
 * for what it does not name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../codegen/codegen.h"
#include "../dialect/dialect.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/Diagnostics.h"
#include "passes.h"
#include "plan.h"

static const char pass_name[] = "sattn-lower-accel";

/* The PE array named by the module's saccel.config, over the defaults. */
static bool read_config(MlirOperation module, SaAccelConfig *cfg) {
  sa_accel_config_default(cfg);
  MlirAttribute d = mlirOperationGetAttributeByName(module, dl_ref("saccel.config"));
  if (mlirAttributeIsNull(d))
    return true;
  static const char *const keys[] = {"pe_rows", "pe_cols", "global_pes", "sram_q_bytes", "sram_out_bytes"};
  int64_t *fields[] = {&cfg->pe_rows, &cfg->pe_cols, &cfg->global_pes, &cfg->sram_q_bytes, &cfg->sram_out_bytes};
  bool ok = mlirAttributeIsADictionary(d);
  for (intptr_t i = 0; ok && i < mlirDictionaryAttrGetNumElements(d); i++) {
    MlirNamedAttribute e = mlirDictionaryAttrGetElement(d, i);
    MlirStringRef k = mlirIdentifierStr(e.name);
    int f = -1;
    for (int j = 0; j < (int)(sizeof keys / sizeof *keys); j++)
      if (strlen(keys[j]) == k.length && memcmp(keys[j], k.data, k.length) == 0)
        f = j;
    ok = f >= 0 && mlirAttributeIsAInteger(e.attribute);
    if (ok)
      *fields[f] = mlirIntegerAttrGetValueInt(e.attribute);
  }
  if (!ok || cfg->pe_rows < 1 || cfg->pe_cols < 1 || cfg->pe_rows > 4096 || cfg->pe_cols > 4096 ||
      cfg->global_pes < 0 || cfg->global_pes > 64 || cfg->sram_q_bytes < 0 || cfg->sram_out_bytes < 0) {
    mlirEmitError(mlirOperationGetLocation(module),
                  "sattn-lower-accel: saccel.config is a dictionary of integers pe_rows and pe_cols (1 to 4096), "
                  "global_pes (0 to 64), sram_q_bytes and sram_out_bytes (at least 0)");
    return false;
  }
  return true;
}

/* The pattern fields of a spec, filled from a mask tree. */
typedef struct {
  SaSpec *s;
  int64_t *globals;
  SaBlockPair *pairs;
  bool all; /* a term that allows every pair */
  const char *why;
} Pattern;

/* One term of the union L OR G. */
static void union_term(Pattern *p, const MaskNode *n) {
  SaSpec *s = p->s;
  switch (n->kind) {
  case MK_OR:
    union_term(p, n->lhs);
    union_term(p, n->rhs);
    return;
  case MK_ALL: p->all = true; return;
  case MK_WINDOW:
    if (s->has_window)
      p->why = "two sliding windows";
    s->has_window = true, s->window = n->a[0], s->dilation = n->a[1];
    return;
  case MK_WINDOW2D:
    if (s->has_window2d)
      p->why = "two 2-D windows";
    s->has_window2d = true, s->image_h = n->a[0], s->image_w = n->a[1];
    s->win_h = n->a[2], s->win_w = n->a[3], s->image_offset = n->a[4];
    return;
  case MK_BLOCKS:
    if (s->n_block_pairs || s->has_bigbird)
      p->why = "two block terms";
    s->block = n->a[0];
    s->n_block_pairs = n->n_list / 2;
    p->pairs = malloc((size_t)(s->n_block_pairs + 1) * sizeof *p->pairs);
    if (!p->pairs) {
      p->why = "out of memory";
      return;
    }
    for (int i = 0; i < s->n_block_pairs; i++)
      p->pairs[i] = (SaBlockPair){n->list[2 * i], n->list[2 * i + 1]};
    s->block_pairs = p->pairs;
    return;
  case MK_BIGBIRD:
    if (s->n_block_pairs || s->has_bigbird)
      p->why = "two block terms";
    s->has_bigbird = true, s->block = n->a[0], s->bb_window = n->a[1];
    s->bb_random = n->a[2], s->bb_global = n->a[3], s->bb_seed = (uint64_t)n->a[4];
    return;
  case MK_GLOBAL:
    if (s->n_global)
      p->why = "two global lists";
    s->n_global = n->n_list;
    p->globals = malloc((size_t)(n->n_list + 1) * sizeof *p->globals);
    if (!p->globals) {
      p->why = "out of memory";
      return;
    }
    memcpy(p->globals, n->list, (size_t)n->n_list * sizeof *p->globals);
    s->global = p->globals;
    return;
  case MK_CAUSAL:
  case MK_AND: p->why = "causality or an intersection inside the union"; return;
  }
}

/* The mask unit evaluates C AND (L OR G) (docs/semantics.md §3): causality,
 * then the union of at most one term of each kind, where global tokens
 * widen a local term. Trees of another form are refused. */
static void mask_pattern(Pattern *p, const MaskNode *n) {
  if (!n)
    return;
  if (n->kind == MK_CAUSAL) {
    p->s->causal = true;
    return;
  }
  if (n->kind == MK_AND) {
    const MaskNode *other = n->lhs->kind == MK_CAUSAL ? n->rhs : n->rhs->kind == MK_CAUSAL ? n->lhs : NULL;
    if (!other) {
      p->why = "an intersection of terms other than causality";
      return;
    }
    p->s->causal = true;
    if (other->kind != MK_CAUSAL)
      union_term(p, other);
    return;
  }
  union_term(p, n);
}

static bool lower_func(MlirOperation func, void *config) {
  const SaAccelConfig *cfg = config;
  PlanReader r;
  if (!plan_read(&r, func, pass_name))
    return false;
  SaSpec s = r.plan.s;
  Pattern pat = {&s, NULL, NULL, false, NULL};
  mask_pattern(&pat, r.plan.mask);
  if (pat.all) { /* a term allowing everything: only causality is left */
    s.has_window = s.has_window2d = s.has_bigbird = false;
    s.n_block_pairs = 0, s.n_global = 0;
  }
  bool any_local = s.has_window || s.has_window2d || s.has_bigbird || s.n_block_pairs > 0;
  if (!pat.why && s.n_global > 0 && !any_local)
    pat.why = "global tokens without a local term to widen";
  bool ok = false;
  char err[256];
  CgAccel prog;
  if (pat.why) {
    snprintf(err, sizeof err,
             "the accelerator's mask unit evaluates causal AND (window OR window2d OR blocks OR bigbird OR global), "
             "one term of each at most; this mask has %s",
             pat.why);
    plan_error(&r, func, err);
  } else if (!cg_accel_schedule(&s, cfg, &prog, err, sizeof err)) {
    plan_error(&r, func, err);
  } else {
    char *text = cg_accel_print(&prog);
    cg_accel_free(&prog);
    if (!text)
      plan_error(&r, func, "out of memory writing the program");
    else
      ok = plan_replace(func, text, pass_name);
    free(text);
  }
  free(pat.globals);
  free(pat.pairs);
  plan_free(&r);
  return ok;
}

bool pass_lower_accel_run(MlirOperation module) {
  SaAccelConfig cfg;
  return read_config(module, &cfg) && plan_lower_funcs(module, lower_func, &cfg);
}
