/* lower_cpu.c: sattn-lower-cpu. Replaces each func.func written in the
 * sattn dialect by one fused CPU kernel in upstream dialects.
 *
 * The pass reads the func into a KernelPlan (passes/plan.c) and has
 * codegen/cpu/kernel.c write the kernel, which MLIR's parser verifies. The
 * new func keeps the name and has the C ABI of docs/cpu-abi.md. A unit
 * attribute sattn.x86_vnni on the module lets the kernels use AVX512-VNNI
 * (the driver sets it when the target CPU has it). */
#include <stdlib.h>

#include "../codegen/codegen.h"
#include "passes.h"
#include "plan.h"

static const char pass_name[] = "sattn-lower-cpu";

/* Lowers one func; false after a diagnostic. */
static bool lower_func(MlirOperation func, void *vnni) {
  PlanReader r;
  if (!plan_read(&r, func, pass_name))
    return false;
  SaDtype out = r.plan.s.output;
  if (out != DT_FP32 && out != DT_FP16 && out != DT_BF16) {
    plan_error(&r, func, "the CPU target writes fp32, fp16 or bf16 outputs");
    plan_free(&r);
    return false;
  }
  char *text = cg_cpu_kernel(&r.plan, *(bool *)vnni);
  plan_free(&r);
  if (!text) {
    plan_error(&r, func, "out of memory while generating the kernel");
    return false;
  }
  bool ok = plan_replace(func, text, pass_name);
  free(text);
  return ok;
}

bool pass_lower_cpu_run(MlirOperation module) {
  bool vnni = !mlirAttributeIsNull(mlirOperationGetAttributeByName(module, mlirStringRefCreateFromCString(CG_CPU_VNNI_ATTR)));
  return plan_lower_funcs(module, lower_func, &vnni);
}
