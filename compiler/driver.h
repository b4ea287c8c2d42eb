/* driver.h: what the tools share: an MLIR context with sattn loaded and its
 * diagnostics printed as `file:line:col: error: message`, reading inputs,
 * and running pass pipelines that mix sattn and upstream passes. */
#ifndef SATTN_DRIVER_H
#define SATTN_DRIVER_H

#include <stdbool.h>
#include <stdio.h>

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

/* Prints op to f; generic form when `generic`. */
void drv_print(MlirOperation op, FILE *f, bool generic);

#endif
