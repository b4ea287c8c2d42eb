/* dialect.c: loading the IRDL dialects (sattn, saccel) and the op-building
 * helpers. */
#include <string.h>

#include "dialect.h"
#include "mlir-c/Dialect/Arith.h"
#include "mlir-c/Dialect/Func.h"
#include "mlir-c/Dialect/IRDL.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/Diagnostics.h"

/* Generated at build time from sattn.irdl.mlir and saccel.irdl.mlir (see
 * CMakeLists.txt). */
extern const char sattn_irdl_text[];
extern const char saccel_irdl_text[];

MlirStringRef dl_ref(const char *s) { return mlirStringRefCreateFromCString(s); }

bool dl_load(MlirContext ctx) {
  mlirDialectHandleLoadDialect(mlirGetDialectHandle__func__(), ctx);
  mlirDialectHandleLoadDialect(mlirGetDialectHandle__arith__(), ctx);
  mlirDialectHandleLoadDialect(mlirGetDialectHandle__irdl__(), ctx);
  if (mlirContextIsRegisteredOperation(ctx, dl_ref("sattn.qk")))
    return true;
  const char *texts[] = {sattn_irdl_text, saccel_irdl_text};
  for (int i = 0; i < 2; i++) {
    MlirModule m = mlirModuleCreateParse(ctx, dl_ref(texts[i]));
    if (mlirModuleIsNull(m))
      return false;
    bool ok = mlirLogicalResultIsSuccess(mlirLoadIRDLDialects(m));
    mlirModuleDestroy(m);
    if (!ok)
      return false;
  }
  return true;
}

MlirOperation dl_build(Builder *b, const char *name, int n_operands, const MlirValue *operands,
                       int n_results, const MlirType *results, int n_attrs, const Attr *attrs) {
  MlirOperationState st = mlirOperationStateGet(dl_ref(name), b->loc);
  if (n_operands)
    mlirOperationStateAddOperands(&st, n_operands, operands);
  if (n_results)
    mlirOperationStateAddResults(&st, n_results, results);
  for (int i = 0; i < n_attrs; i++) {
    MlirNamedAttribute named =
        mlirNamedAttributeGet(mlirIdentifierGet(b->ctx, dl_ref(attrs[i].name)), attrs[i].value);
    mlirOperationStateAddAttributes(&st, 1, &named);
  }
  MlirOperation op = mlirOperationCreate(&st);
  mlirBlockAppendOwnedOperation(b->block, op);
  return op;
}

MlirValue dl_result(MlirOperation op) { return mlirOperationGetResult(op, 0); }

MlirAttribute dl_i64(MlirContext ctx, int64_t v) {
  return mlirIntegerAttrGet(mlirIntegerTypeGet(ctx, 64), v);
}
MlirAttribute dl_f64(MlirContext ctx, double v) { return mlirFloatAttrDoubleGet(ctx, mlirF64TypeGet(ctx), v); }
MlirAttribute dl_str(MlirContext ctx, const char *s) { return mlirStringAttrGet(ctx, dl_ref(s)); }

MlirType dl_dtype(MlirContext ctx, SaDtype t) {
  switch (t) {
  case DT_FP32: return mlirF32TypeGet(ctx);
  case DT_FP16: return mlirF16TypeGet(ctx);
  case DT_BF16: return mlirBF16TypeGet(ctx);
  case DT_FP8E4M3: return mlirFloat8E4M3FNTypeGet(ctx);
  case DT_FP8E5M2: return mlirFloat8E5M2TypeGet(ctx);
  case DT_INT8: return mlirIntegerTypeGet(ctx, 8);
  case DT_INT4: return mlirIntegerTypeGet(ctx, 4);
  case DT_INT2: return mlirIntegerTypeGet(ctx, 2);
  case DT_COUNT: break;
  }
  return mlirF32TypeGet(ctx);
}

static MlirAttribute get_attr(MlirOperation op, const char *name) {
  return mlirOperationGetAttributeByName(op, dl_ref(name));
}

bool dl_get_i64(MlirOperation op, const char *name, int64_t *out) {
  MlirAttribute a = get_attr(op, name);
  if (mlirAttributeIsNull(a) || !mlirAttributeIsAInteger(a))
    return false;
  *out = mlirIntegerAttrGetValueInt(a);
  return true;
}

bool dl_get_f64(MlirOperation op, const char *name, double *out) {
  MlirAttribute a = get_attr(op, name);
  if (mlirAttributeIsNull(a) || !mlirAttributeIsAFloat(a))
    return false;
  *out = mlirFloatAttrGetValueDouble(a);
  return true;
}

bool dl_get_type(MlirOperation op, const char *name, MlirType *out) {
  MlirAttribute a = get_attr(op, name);
  if (mlirAttributeIsNull(a) || !mlirAttributeIsAType(a))
    return false;
  *out = mlirTypeAttrGetValue(a);
  return true;
}

bool dl_get_str(MlirOperation op, const char *name, char *out, int cap) {
  MlirAttribute a = get_attr(op, name);
  if (mlirAttributeIsNull(a) || !mlirAttributeIsAString(a))
    return false;
  MlirStringRef r = mlirStringAttrGetValue(a);
  size_t n = r.length < (size_t)cap - 1 ? r.length : (size_t)cap - 1;
  memcpy(out, r.data, n);
  out[n] = 0;
  return true;
}

bool dl_is(MlirOperation op, const char *short_name) {
  MlirStringRef n = mlirIdentifierStr(mlirOperationGetName(op));
  size_t len = strlen(short_name);
  return n.length == len + 6 && memcmp(n.data, "sattn.", 6) == 0 && memcmp(n.data + 6, short_name, len) == 0;
}
