/* plan.h: what the lowering passes share: reading a sattn func into a
 * KernelPlan, visiting the funcs of a module written in sattn, and
 * replacing such a func by generated MLIR text. */
#ifndef SATTN_PLAN_H
#define SATTN_PLAN_H

#include <stdbool.h>

#include "../codegen/codegen.h"
#include "mlir-c/IR.h"

typedef struct {
  MlirOperation func;
  const char *pass; /* prefix of the diagnostics */
  KernelPlan plan;
  MaskNode *nodes[64]; /* the mask tree's nodes, owned */
  int n_nodes;
  char name[128];
  bool failed;
} PlanReader;

/* Reads func into r->plan. False after a diagnostic at the offending op
 * (and nothing left to free). */
bool plan_read(PlanReader *r, MlirOperation func, const char *pass);
void plan_free(PlanReader *r);
/* Emits "<pass>: msg" at op and marks the reader failed. */
void plan_error(PlanReader *r, MlirOperation op, const char *msg);
/* The SaDtype of a float type; false for other types. */
bool plan_dtype(MlirType t, SaDtype *out);

/* Calls lower(func, ud) on every func.func of module that holds sattn ops; false
 * when any call failed (each has emitted its diagnostics). */
bool plan_lower_funcs(MlirOperation module, bool (*lower)(MlirOperation func, void *ud), void *ud);

/* Parses text (a module's body: funcs and declarations) and puts its ops
 * where func was, which it destroys. A symbol already in the parent (a
 * runtime declaration) is not moved twice. False after a diagnostic. */
bool plan_replace(MlirOperation func, const char *text, const char *pass);

#endif
