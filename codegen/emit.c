/* emit.c: the MLIR text writer (see emit.h). */
#include "emit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void buf_vadd(Em *e, EmBuf *b, const char *fmt, va_list ap) {
  if (e->oom)
    return;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    e->oom = true;
    return;
  }
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + (size_t)n + 1)
      cap *= 2;
    char *g = realloc(b->buf, cap);
    if (!g) {
      e->oom = true;
      return;
    }
    b->buf = g;
    b->cap = cap;
  }
  vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

static void buf_add(Em *e, EmBuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vadd(e, b, fmt, ap);
  va_end(ap);
}

static void indent(Em *e, EmBuf *b) { buf_add(e, b, "%*s", 2 * (e->depth + 1), ""); }

static V fresh(Em *e) {
  V v;
  snprintf(v.s, sizeof v.s, "%%v%d", ++e->next);
  return v;
}

/* `%vN = op` (n == 1) or `%vN:n = op`. */
static V vdefine(Em *e, int n, const char *fmt, va_list ap) {
  V v = fresh(e);
  indent(e, &e->body);
  if (n == 1)
    buf_add(e, &e->body, "%s = ", v.s);
  else
    buf_add(e, &e->body, "%s:%d = ", v.s, n);
  buf_vadd(e, &e->body, fmt, ap);
  buf_add(e, &e->body, "\n");
  return v;
}

V em(Em *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  V v = vdefine(e, 1, fmt, ap);
  va_end(ap);
  return v;
}

V em_multi(Em *e, int n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  V v = vdefine(e, n, fmt, ap);
  va_end(ap);
  return v;
}

V em_res(V v, int i) {
  V r;
  size_t n = strlen(v.s);
  memcpy(r.s, v.s, n);
  snprintf(r.s + n, sizeof r.s - n, "#%d", i % 100000);
  return r;
}

V em_fresh(Em *e) { return fresh(e); }

void em_do(Em *e, const char *fmt, ...) {
  indent(e, &e->body);
  va_list ap;
  va_start(ap, fmt);
  buf_vadd(e, &e->body, fmt, ap);
  va_end(ap);
  buf_add(e, &e->body, "\n");
}

void em_raw(Em *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vadd(e, &e->body, fmt, ap);
  va_end(ap);
}

V em_for(Em *e, V lo, V hi, V step) {
  V iv = fresh(e);
  em_do(e, "scf.for %s = %s to %s step %s {", iv.s, lo.s, hi.s, step.s);
  e->depth++;
  return iv;
}

void em_if(Em *e, V cond) {
  em_do(e, "scf.if %s {", cond.s);
  e->depth++;
}

void em_else(Em *e) {
  e->depth--;
  em_do(e, "} else {");
  e->depth++;
}

void em_end(Em *e) {
  e->depth--;
  em_do(e, "}");
}

V em_index(Em *e, int64_t v) { return em(e, "arith.constant %lld : index", (long long)v); }

V em_int(Em *e, int64_t v, const char *type) {
  return em(e, "arith.constant %lld : %s", (long long)v, type);
}

/* Hexadecimal float literals keep every bit of the value. */
V em_float(Em *e, double v, const char *type) {
  if (!strcmp(type, "f32")) {
    float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return em(e, "arith.constant 0x%08X : f32", bits);
  }
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return em(e, "arith.constant 0x%016llX : f64", (unsigned long long)bits);
}

V em_var(Em *e, const char *type) {
  V v = fresh(e);
  buf_add(e, &e->head, "  %s = memref.alloca() : memref<%s>\n", v.s, type);
  return v;
}

V em_get(Em *e, V var, const char *type) { return em(e, "memref.load %s[] : memref<%s>", var.s, type); }

void em_set(Em *e, V var, V value, const char *type) {
  em_do(e, "memref.store %s, %s[] : memref<%s>", value.s, var.s, type);
}

V em_alloca(Em *e, int64_t n, const char *type) {
  V v = fresh(e);
  /* 64-byte aligned: a 16-lane vector load that crosses a cache line costs two */
  buf_add(e, &e->head, "  %s = memref.alloca() {alignment = 64} : memref<%lldx%s>\n", v.s, (long long)n, type);
  return v;
}

char *em_take(Em *e) {
  if (e->oom) {
    em_free(e);
    return NULL;
  }
  size_t n = e->head.len + e->body.len;
  char *out = malloc(n + 1);
  if (!out) {
    em_free(e);
    return NULL;
  }
  if (e->head.len)
    memcpy(out, e->head.buf, e->head.len);
  if (e->body.len)
    memcpy(out + e->head.len, e->body.buf, e->body.len);
  out[n] = '\0';
  em_free(e);
  return out;
}

void em_free(Em *e) {
  free(e->head.buf);
  free(e->body.buf);
  memset(e, 0, sizeof *e);
}
