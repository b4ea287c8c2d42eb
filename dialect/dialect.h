/* dialect.h: the sattn dialect's loader and its small C helpers to build and
 * read ops. The dialect itself is dialect/sattn.irdl.mlir, embedded in the
 * library at build time and loaded into each context on demand. */
#ifndef SATTN_DIALECT_H
#define SATTN_DIALECT_H

#include <stdbool.h>
#include <stdint.h>

#include "mlir-c/IR.h"
#include "sattn/spec.h"

/* ---- dialect.c ---- */

/* Loads func, arith and the sattn and saccel dialects into ctx; loading twice is a
 * no-op (IRDL would crash on a second load). Returns false on failure, with
 * a diagnostic emitted through the context. */
bool dl_load(MlirContext ctx);

/* A builder appends ops at the end of one block. */
typedef struct {
  MlirContext ctx;
  MlirBlock block;
  MlirLocation loc;
} Builder;

typedef struct {
  const char *name;
  MlirAttribute value;
} Attr;

/* Creates `name` with the given operands, result types and attributes at the
 * builder's location and appends it. Returns the op (owned by the block). */
MlirOperation dl_build(Builder *b, const char *name, int n_operands, const MlirValue *operands,
                       int n_results, const MlirType *results, int n_attrs, const Attr *attrs);
MlirValue dl_result(MlirOperation op);

MlirAttribute dl_i64(MlirContext ctx, int64_t v);
MlirAttribute dl_f64(MlirContext ctx, double v);
MlirAttribute dl_str(MlirContext ctx, const char *s);
MlirType dl_dtype(MlirContext ctx, SaDtype t);
MlirStringRef dl_ref(const char *s);

/* Reading attributes of an op; each returns false when the attribute is
 * missing or of another kind. */
bool dl_get_i64(MlirOperation op, const char *name, int64_t *out);
bool dl_get_f64(MlirOperation op, const char *name, double *out);
bool dl_get_type(MlirOperation op, const char *name, MlirType *out);
bool dl_get_str(MlirOperation op, const char *name, char *out, int cap);

/* True when op is `sattn.<short_name>`. */
bool dl_is(MlirOperation op, const char *short_name);

/* ---- irgen.c: checked specs to sattn IR, one func.func per spec. ---- */

/* Builds the module for n specs. The caller owns the module; null when out
 * of memory. */
MlirModule irgen_module(MlirContext ctx, const SaSpec *const *specs, int n);

#endif
