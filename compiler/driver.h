/* driver.h: what the tools share: an MLIR context with sattn loaded and its
 * diagnostics printed as `file:line:col: error: message`, reading inputs,
 * and running pass pipelines that mix sattn and upstream passes. */
#ifndef SATTN_DRIVER_H
#define SATTN_DRIVER_H

#include <stdbool.h>
#include <stdio.h>

#include "compiler.h"
#include "mlir-c/IR.h"
#include "mlir-c/Pass.h"

/* A context with func, arith and sattn loaded. Diagnostics go to `diag`
 * (stderr when NULL). Null on failure. The caller destroys it. */
MlirContext drv_context_create(FILE *diag);

/* Reads a whole file ("-" is standard input) into malloc'ed memory with a
 * terminating NUL. NULL with a message on stderr when it cannot. */
char *drv_read_file(const char *path, size_t *out_len);

/* Adds a comma-separated pipeline to pm: sattn passes by flag, anything
 * else handed to MLIR's pipeline parser. An optional builtin.module(...)
 * wrapper is accepted. False with a message on stderr for unknown passes. */
bool drv_add_pipeline(MlirPassManager pm, const char *pipeline);

/* Calls fn on each part of text between lines that start with `marker`
 * (`// -----` for IR, `# -----` for specs), as a NUL-terminated copy padded
 * with the newlines before it, so that messages keep the file's line
 * numbers; prints the marker line to out between parts. Returns the OR of
 * fn's results, or 1 when out of memory. */
int drv_for_each_part(const char *text, size_t len, const char *marker, FILE *out,
                      int (*fn)(const char *part, size_t n, void *ud), void *ud);

/* The module of the specs in `file` (only the one named `kernel` when not
 * NULL), built by irgen. Null when out of memory. The caller owns it. */
MlirModule drv_build(MlirContext ctx, const FeFile *file, const char *kernel);

/* How far drv_lower takes a module built by drv_build. */
typedef enum {
  DRV_SATTN,     /* verified sattn IR */
  DRV_CANONICAL, /* after sattn-canonicalize */
  DRV_CPU,       /* after sattn-lower-cpu: upstream dialects, C ABI */
  DRV_LLVM,      /* the LLVM dialect, ready for translation or the JIT */
} DrvStage;

/* Runs the passes to `stage` in place. False after diagnostics. */
bool drv_lower(MlirContext ctx, MlirModule m, DrvStage stage);

/* Prints op to f; generic form when `generic`. */
void drv_print(MlirOperation op, FILE *f, bool generic);

#endif
