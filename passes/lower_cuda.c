/* lower_cuda.c: sattn-lower-cuda. Replaces each func.func written in the
 * sattn dialect by a fused attention kernel: a gpu.func of the same name in
 * the module's gpu.module @sattn_kernels (made on first use, with the
 * dynamic shared block @sattn_smem its kernels share), written by
 * codegen/cuda/kernel.c. The module becomes a gpu.container_module; its
 * gpu.module is then ready for nvvm-attach-target and gpu-module-to-binary
 * (docs/cuda.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../codegen/codegen.h"
#include "../dialect/dialect.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/Diagnostics.h"
#include "passes.h"
#include "plan.h"
#include "sattn/cuda.h"

static const char pass_name[] = "sattn-lower-cuda";
static const char gpu_module_name[] = "sattn_kernels";

static bool is_named(MlirOperation op, const char *opname, const char *sym) {
  MlirStringRef n = mlirIdentifierStr(mlirOperationGetName(op));
  if (n.length != strlen(opname) || memcmp(n.data, opname, n.length))
    return false;
  MlirAttribute a = mlirOperationGetAttributeByName(op, dl_ref("sym_name"));
  if (mlirAttributeIsNull(a))
    return false;
  MlirStringRef v = mlirStringAttrGetValue(a);
  return v.length == strlen(sym) && !memcmp(v.data, sym, v.length);
}

/* The gpu.module @sattn_kernels of module, or a null op. */
static MlirOperation find_gpu_module(MlirOperation module) {
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(module, 0));
  for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationIsNull(op);
       op = mlirOperationGetNextInBlock(op))
    if (is_named(op, "gpu.module", gpu_module_name))
      return op;
  return (MlirOperation){NULL};
}

static bool lower_func(MlirOperation func, void *ud) {
  MlirOperation module = *(MlirOperation *)ud;
  PlanReader r;
  if (!plan_read(&r, func, pass_name))
    return false;
  char why[256];
  if (!cg_cuda_supported(&r.plan.s, why, sizeof why)) {
    plan_error(&r, func, why);
    plan_free(&r);
    return false;
  }
  int stages[SA_MAX_FILTER_ROUNDS + 1];
  bool select = sa_cuda_select_stages(&r.plan.s, stages) > 0;
  SaCudaKernel geo;
  sa_cuda_describe(&r.plan.s, &geo);
  char *kernel = select        ? cg_cuda_select_kernels(&r.plan)
                 : geo.pruning ? cg_cuda_prune_kernels(&r.plan)
                               : cg_cuda_kernel(&r.plan);
  plan_free(&r);
  static const char head[] = "gpu.module @sattn_kernels {\n"
                             "  llvm.mlir.global external @sattn_smem() {addr_space = 3 : i32, alignment = 16 : i64}"
                             " : !llvm.array<0 x i8>\n";
  char *text = kernel ? malloc(sizeof head + strlen(kernel) + 4) : NULL;
  if (!text) {
    free(kernel);
    plan_error(&r, func, kernel ? "out of memory while generating the kernel"
                                : "internal error: the kernel generator failed (out of memory, or its tile sizes "
                                  "disagree with the launch contract, sa_cuda_describe)");
    return false;
  }
  sprintf(text, "%s%s}\n", head, kernel);
  free(kernel);
  MlirModule parsed = mlirModuleCreateParse(mlirOperationGetContext(func), mlirStringRefCreateFromCString(text));
  free(text);
  if (mlirModuleIsNull(parsed)) {
    mlirEmitError(mlirOperationGetLocation(func),
                  "sattn-lower-cuda: internal error: the generated kernel does not parse (the diagnostic above says "
                  "where)");
    return false;
  }
  MlirOperation fresh = mlirBlockGetFirstOperation(mlirModuleGetBody(parsed));
  MlirOperation existing = find_gpu_module(module);
  if (mlirOperationIsNull(existing)) {
    mlirOperationMoveBefore(fresh, func);
  } else {
    /* Move the new gpu.funcs (all but the shared block's global) behind
     * the last op of the existing gpu.module. */
    MlirBlock from = mlirRegionGetFirstBlock(mlirOperationGetRegion(fresh, 0));
    MlirBlock to = mlirRegionGetFirstBlock(mlirOperationGetRegion(existing, 0));
    MlirOperation last = mlirBlockGetFirstOperation(to);
    for (MlirOperation op = last; !mlirOperationIsNull(op); op = mlirOperationGetNextInBlock(op))
      last = op;
    MlirOperation kfunc = mlirOperationGetNextInBlock(mlirBlockGetFirstOperation(from));
    while (!mlirOperationIsNull(kfunc)) {
      MlirOperation after = mlirOperationGetNextInBlock(kfunc);
      mlirOperationMoveAfter(kfunc, last);
      last = kfunc;
      kfunc = after;
    }
  }
  mlirModuleDestroy(parsed);
  mlirOperationDestroy(func);
  return true;
}

bool pass_lower_cuda_run(MlirOperation module) {
  MlirContext ctx = mlirOperationGetContext(module);
  mlirOperationSetAttributeByName(module, dl_ref("gpu.container_module"), mlirUnitAttrGet(ctx));
  return plan_lower_funcs(module, lower_func, &module);
}
