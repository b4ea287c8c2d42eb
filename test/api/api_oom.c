/* api-oom: allocation failures inside the compiler's C API and the
 * accelerator runtime. Linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc, so that every allocation sattn's own code makes comes
 * here; fails the Nth one for N = 1, 2, ... until a whole run goes through,
 * and checks that each failing run ends with a status (never a crash), that
 * a run after it still works, and (under ASan) that nothing leaks.
 * The job stays on the paths that do not enter MLIR (parsing, shape
 * changes, the header, and loading, listing and running an accelerator
 * stream, which is compiled once beforehand since sattn-lower-accel runs in
 * MLIR): LLVM and MLIR treat running out of memory as fatal by design
 * (their C API does not check its own allocations), so an embedding program
 * cannot expect a status from them.
 * usage: api-oom */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/accel.h"
#include "sattn/sattn.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
static atomic_long countdown = -1; /* -1: never fail */
static atomic_long failures;

static int fail_now(void) {
  if (atomic_fetch_sub(&countdown, 1) == 1) {
    atomic_fetch_add(&failures, 1);
    return 1;
  }
  return 0;
}
void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return fail_now() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }

static void quiet(const SattnDiagnostic *d, void *user) {
  (void)d;
  (void)user;
}

static const char spec[] = "attention local {\n"
                           "  shape   heads=2 kv_heads=1 seq=40 head_dim=16\n"
                           "  pattern causal and window 9 and global [0, 17]\n"
                           "}\n";

/* The accelerator stream of spec, compiled before any failure is injected. */
static unsigned char *stream;
static size_t stream_len;

static SaStatus compile_stream(void) {
  SattnContext *ctx = sattn_context_create();
  SattnModule *m = NULL;
  SattnArtifact *s = NULL;
  SaStatus st = ctx ? sattn_module_parse(ctx, "oom.sattn", spec, sizeof spec - 1, &m) : SA_ERR_OUT_OF_MEMORY;
  if (st == SA_OK)
    st = sattn_module_set_shape(m, 0, &(SattnShape){.head_dim = 24});
  if (st == SA_OK)
    st = sattn_emit(m, SATTN_ARTIFACT_ACCEL, &(SattnOptions){.target = SATTN_TARGET_ACCEL}, &s);
  if (st == SA_OK) {
    const void *bytes = sattn_artifact_data(s, &stream_len);
    stream = malloc(stream_len);
    st = stream ? SA_OK : SA_ERR_OUT_OF_MEMORY;
    if (stream)
      memcpy(stream, bytes, stream_len);
  }
  sattn_artifact_destroy(s);
  sattn_module_destroy(m);
  sattn_context_destroy(ctx);
  return st;
}

/* The whole job once; returns the first status that is not SA_OK. */
static SaStatus job(void) {
  SattnContext *ctx = sattn_context_create();
  if (!ctx)
    return SA_ERR_OUT_OF_MEMORY;
  sattn_context_set_diagnostic_handler(ctx, quiet, NULL);
  SattnModule *m = NULL;
  SattnArtifact *a = NULL, *h = NULL;
  SaAccelProgram *p = NULL;
  float *buf = NULL;
  char *text = NULL;
  SaStatus st = sattn_module_parse(ctx, "oom.sattn", spec, sizeof spec - 1, &m);
  if (st == SA_OK)
    st = sattn_module_set_shape(m, 0, &(SattnShape){.head_dim = 24});
  if (st == SA_OK)
    st = sattn_emit(m, SATTN_ARTIFACT_AST, NULL, &a);
  if (st == SA_OK)
    st = sattn_emit(m, SATTN_ARTIFACT_HEADER, NULL, &h);
  if (st == SA_OK)
    st = sa_accel_load(stream, stream_len, &p, NULL, 0);
  if (st == SA_OK) {
    text = sa_accel_disassemble(p);
    st = text ? SA_OK : SA_ERR_OUT_OF_MEMORY;
  }
  if (st == SA_OK) {
    size_t nq = 2 * 40 * 24, nkv = 40 * 24;
    buf = __real_calloc(nq * 2 + nkv * 2, sizeof *buf); /* the caller's tensors are not the test's subject */
    SaAccelConfig c;
    sa_accel_config_default(&c);
    SaAccelStats stats;
    st = buf ? sa_accel_run(p, &c, buf, buf + nq, buf + nq + nkv, buf + nq + 2 * nkv, 1, NULL, &stats, NULL, 0)
             : SA_ERR_OUT_OF_MEMORY;
  }
  free(buf);
  free(text);
  sa_accel_free(p);
  sattn_artifact_destroy(a);
  sattn_artifact_destroy(h);
  sattn_module_destroy(m);
  sattn_context_destroy(ctx);
  return st;
}

int main(void) {
  int bad = 0, n;
  if (compile_stream() != SA_OK) {
    printf("the accelerator stream does not compile\n");
    return 1;
  }
  for (n = 1; n < 100000; n++) {
    atomic_store(&failures, 0);
    atomic_store(&countdown, n);
    SaStatus st = job();
    atomic_store(&countdown, -1);
    long f = atomic_load(&failures);
    if (f == 0) {
      if (st != SA_OK) {
        printf("no failure injected, but status %s\n", sa_status_name(st));
        bad++;
      }
      break;
    }
    /* a failure must surface as a status, and the next run must work */
    if (st == SA_OK) {
      printf("allocation %d failed, yet the job reported success\n", n);
      bad++;
    }
    if (job() != SA_OK) {
      printf("after the failure of allocation %d, a clean run failed\n", n);
      bad++;
    }
  }
  printf("failed each of the first %d allocations: a status each time%s\n", n - 1, bad ? ", with ERRORS" : "");
  free(stream);
  return bad != 0;
}
