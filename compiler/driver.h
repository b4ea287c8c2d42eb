/* driver.h: the inside of the public API (compiler/api.c): the context
 * with its diagnostics, an MLIR context with sattn loaded whose diagnostics
 * go to the same place, reading inputs, and pass pipelines that mix sattn
 * and upstream passes. */
#ifndef SATTN_DRIVER_H
#define SATTN_DRIVER_H

#include <stdbool.h>
#include <stdio.h>

#include "compiler.h"
#include "mlir-c/IR.h"
#include "mlir-c/Pass.h"
#include "sattn/sattn.h"

struct SattnContext {
  MlirContext mlir; /* made on first use: drv_mlir */
  bool mlir_failed;
  SattnDiagnosticFn fn; /* NULL: print to stderr */
  void *user;
  int errors;
};

/* Reports one message through the context's handler. file NULL: "sattn". */
void drv_report(SattnContext *c, SattnSeverity sev, const char *file, int line, int col, const char *src_line,
                const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* A Diag that reports through c (front-end messages). */
Diag drv_diag(SattnContext *c);

/* The context's MLIR context with every upstream dialect and translation
 * and sattn loaded, made on the first call; its diagnostics go to the
 * handler. Null (after a diagnostic) when sattn cannot be loaded. */
MlirContext drv_mlir(SattnContext *c);

/* Reads a whole file ("-" is standard input) into malloc'ed memory with a
 * terminating NUL. NULL after a diagnostic when it cannot. */
char *drv_read_file(SattnContext *c, const char *path, size_t *out_len);

/* Adds a comma-separated pipeline to pm: sattn passes by flag, anything
 * else handed to MLIR's pipeline parser. An optional builtin.module(...)
 * wrapper is accepted. False after a diagnostic for unknown passes. */
bool drv_add_pipeline(SattnContext *c, MlirPassManager pm, const char *pipeline);

/* How far drv_lower takes a module that irgen built. */
typedef enum {
  DRV_SATTN,     /* verified sattn IR */
  DRV_CANONICAL, /* after sattn-canonicalize */
  DRV_CPU,       /* after sattn-lower-cpu: upstream dialects, C ABI */
  DRV_LLVM,      /* the LLVM dialect, ready for translation or the JIT */
  DRV_ACCEL,     /* after sattn-lower-accel: saccel programs (the PE array from
                    the module's saccel.config) */
  DRV_CUDA,      /* after sattn-lower-cuda: gpu.module @sattn_kernels */
} DrvStage;

/* Runs the passes to `stage` in place. False after diagnostics. */
bool drv_lower(SattnContext *c, MlirModule m, DrvStage stage);

/* Runs a pipeline (drv_add_pipeline's syntax) on m. False after diagnostics. */
bool drv_run(SattnContext *c, MlirModule m, const char *pipeline);

/* Prints op to f; generic form when `generic`. */
void drv_print(MlirOperation op, FILE *f, bool generic);

#endif
