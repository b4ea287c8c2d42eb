/* passes.h: sattn's MLIR passes, written in C as external passes.
 * One file per pass; each runs on a builtin.module and visits the sattn ops
 * inside. The table below is the registry the tools read. */
#ifndef SATTN_PASSES_H
#define SATTN_PASSES_H

#include <stdbool.h>

#include "mlir-c/IR.h"
#include "mlir-c/Pass.h"

/* X(run function, flag, summary) */
#define SATTN_PASSES(X)                                                                       \
  X(pass_verify_run, "sattn-verify", "check what IRDL cannot: ranks, shapes, element types, " \
                                     "integer ranges of sattn ops")                          \
  X(pass_canonicalize_run, "sattn-canonicalize",                                             \
    "remove selections that keep everything and masks that allow everything")                 \
  X(pass_lower_cpu_run, "sattn-lower-cpu",                                                   \
    "replace each sattn func by a fused CPU kernel in scf/vector/memref/arith/math with a C ABI")      \
  X(pass_lower_accel_run, "sattn-lower-accel",                                               \
    "replace each sattn func by an accelerator program in the saccel dialect, scheduled for "  \
    "the PE array of the module's saccel.config")                                              \
  X(pass_lower_cuda_run, "sattn-lower-cuda",                                                 \
    "replace each sattn func by a fused attention gpu.func (nvvm, tensor cores) in the module's " \
    "gpu.module @sattn_kernels")

/* Each pass's body; returns false after emitting diagnostics. */
#define X(fn, flag, summary) bool fn(MlirOperation module);
SATTN_PASSES(X)
#undef X

typedef struct {
  const char *flag;
  const char *summary;
  bool (*run)(MlirOperation module);
} PassInfo;

extern const PassInfo pass_table[];
extern const int pass_count;

/* NULL when `flag` names no sattn pass. */
const PassInfo *pass_lookup(const char *flag, size_t len);
/* A new pass object for a pass manager (which takes ownership). */
MlirPass pass_create(const PassInfo *info);

/* Shared by the passes: tensor shape queries. A dim of -1 is dynamic. */
bool pass_tensor(MlirType t, int rank, int64_t *out_dims);

#endif
