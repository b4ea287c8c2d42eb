/* emit.h: a small writer of MLIR text for the code generators.
 *
 * Lowerings build their output as textual MLIR in upstream dialects (scf,
 * vector, memref, arith, math, llvm) and hand it to MLIR's parser, which
 * verifies it. Values get fresh names (%v1, %v2, ...); a value is returned
 * by value as a small string so that callers can pass it to format strings
 * without managing memory. Regions nest with em_for/em_if ... em_end.
 *
 * Ownership: an Em owns its buffers; em_take hands the text to the caller.
 * An allocation failure sets `oom` and makes every later call a no-op. */
#ifndef SATTN_EMIT_H
#define SATTN_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char s[24];
} V;

typedef struct {
  char *buf;
  size_t len, cap;
} EmBuf;

typedef struct {
  EmBuf head; /* entry-block allocas, spliced in front of the body */
  EmBuf body;
  int next;   /* next value number */
  int depth;  /* indentation */
  bool oom;
} Em;

/* `%vN = <op>`; returns %vN. */
V em(Em *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An op line with no result. */
void em_do(Em *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* `%vN:n = <op>` for an op with n results; result i is em_res(v, i). */
V em_multi(Em *e, int n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
V em_res(V v, int i);
/* A fresh value name, for block arguments the caller writes itself. */
V em_fresh(Em *e);
/* Raw text (no indentation, no newline). */
void em_raw(Em *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* scf.for over index values [lo, hi) with step; returns the induction var. */
V em_for(Em *e, V lo, V hi, V step);
void em_if(Em *e, V cond);
void em_else(Em *e);
void em_end(Em *e);

/* Constants. */
V em_index(Em *e, int64_t v);
V em_int(Em *e, int64_t v, const char *type); /* i1/i8/i32/i64 */
V em_float(Em *e, double v, const char *type); /* f32/f64, printed exactly */

/* A mutable scalar: a rank-0 alloca in the entry block. */
V em_var(Em *e, const char *type);
V em_get(Em *e, V var, const char *type);
void em_set(Em *e, V var, V value, const char *type);
/* A static-size alloca in the entry block: memref<NxT>. */
V em_alloca(Em *e, int64_t n, const char *type);

/* The finished text: head then body, NUL-terminated. Returns NULL after an
 * allocation failure. The caller frees it. Resets the writer. */
char *em_take(Em *e);
void em_free(Em *e);

#endif
