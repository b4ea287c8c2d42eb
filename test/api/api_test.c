/* api-test: the public C API (include/sattn/sattn.h), as a user sees it.
 * Prints what it observes for FileCheck (test/api/api.test) and checks
 * numbers itself: every JIT'ed kernel against the reference, and four
 * contexts compiling and running kernels on four threads at once. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sattn/reference.h"
#include "sattn/sattn.h"

static int failures;

#define EXPECT(cond)                                                 \
  do {                                                               \
    if (!(cond)) {                                                   \
      printf("FAILED: %s (line %d)\n", #cond, __LINE__);             \
      failures++;                                                    \
    }                                                                \
  } while (0)

/* A handler that prints each diagnostic on one line for FileCheck. */
static void print_diag(const SattnDiagnostic *d, void *user) {
  int *count = user;
  (*count)++;
  printf("diag: %s:%d:%d: %s [%s]\n", d->file, d->line, d->col, d->message,
         d->source_line ? d->source_line : "-");
}

static const char specs[] =
    "attention dense {\n"
    "  shape batch=? heads=4 seq=? head_dim=32\n"
    "  pattern dense\n"
    "}\n"
    "attention local {\n"
    "  shape batch=1 heads=2 kv_heads=1 seq=100 head_dim=24\n"
    "  pattern causal and window 17\n"
    "}\n"
    "attention pruned {\n"
    "  shape batch=1 heads=4 seq=64 head_dim=16\n"
    "  pattern nm 3:7\n" /* groups of 7: the row path */
    "}\n";

/* Runs kernel `name` of jit on seeded inputs and returns the relative error
 * against the reference (fp32 in, fp32 out), or +inf on a failure. */
static double run_against_reference(const SattnJit *jit, const char *name, int64_t batch, int64_t seq,
                                    uint64_t seed) {
  const SattnKernelInfo *k = NULL;
  for (int i = 0; i < sattn_jit_kernel_count(jit); i++)
    if (strcmp(sattn_jit_kernel(jit, i)->name, name) == 0)
      k = sattn_jit_kernel(jit, i);
  SattnCpuKernelFn fn = sattn_jit_lookup(jit, name);
  if (!k || !fn)
    return INFINITY;
  size_t nq = (size_t)(batch * k->heads * seq * k->head_dim), nkv = (size_t)(batch * k->kv_heads * seq * k->head_dim);
  float *q = malloc(nq * 4), *kk = malloc(nkv * 4), *v = malloc(nkv * 4), *o = malloc(nq * 4), *r = malloc(nq * 4);
  double err = INFINITY;
  if (q && kk && v && o && r) {
    for (size_t i = 0; i < nq; i++)
      q[i] = (float)sa_gaussian(&seed);
    for (size_t i = 0; i < nkv; i++)
      kk[i] = (float)sa_gaussian(&seed), v[i] = (float)sa_gaussian(&seed);
    int32_t st = fn(q, kk, v, o, batch, seq, NULL, NULL, NULL, NULL);
    SaProblem p = {.batch = batch, .seq = seq, .q = q, .k = kk, .v = v, .out = r};
    if (st == 0 && sa_reference(k->spec, &p, NULL) == SA_OK) {
      double num = 0, den = 0;
      for (size_t i = 0; i < nq; i++)
        num += (o[i] - r[i]) * (double)(o[i] - r[i]), den += (double)r[i] * r[i];
      err = sqrt(num / den);
    }
  }
  free(q), free(kk), free(v), free(o), free(r);
  return err;
}

static void test_errors(void) {
  SattnContext *ctx = sattn_context_create();
  int n = 0;
  sattn_context_set_diagnostic_handler(ctx, print_diag, &n);
  SattnModule *m = (SattnModule *)1;
  const char bad[] = "attention a {\n  shape heads=4 seq=8 head_dim=300\n  pattern dense\n}\n";
  SaStatus st = sattn_module_parse(ctx, "bad.sattn", bad, sizeof bad - 1, &m);
  printf("bad spec: %s, module %s, %d diagnostics, %d errors\n", sa_status_name(st), m ? "set" : "NULL", n,
         sattn_context_error_count(ctx));
  st = sattn_module_parse_file(ctx, "/nonexistent/x.sattn", &m);
  printf("missing file: %s\n", sa_status_name(st));
  /* NULL arguments are refused without a diagnostic */
  int before = n;
  EXPECT(sattn_module_parse(NULL, "x", "", 0, &m) == SA_ERR_INVALID_ARGUMENT && m == NULL);
  EXPECT(sattn_module_parse(ctx, "x", NULL, 3, &m) == SA_ERR_INVALID_ARGUMENT);
  EXPECT(sattn_module_parse(ctx, "x", "", 0, NULL) == SA_ERR_INVALID_ARGUMENT);
  EXPECT(sattn_emit(NULL, SATTN_ARTIFACT_MLIR, NULL, &(SattnArtifact *){NULL}) == SA_ERR_INVALID_ARGUMENT);
  EXPECT(sattn_jit_create(NULL, NULL, &(SattnJit *){NULL}) == SA_ERR_INVALID_ARGUMENT);
  EXPECT(n == before);
  st = sattn_module_parse(ctx, "empty", "", 0, &m);
  printf("empty: %s\n", sa_status_name(st));

  EXPECT(sattn_module_parse(ctx, "specs.sattn", specs, sizeof specs - 1, &m) == SA_OK);
  SattnArtifact *a = (SattnArtifact *)1;
  st = sattn_emit(m, SATTN_ARTIFACT_MLIR, &(SattnOptions){.kernel = "nope"}, &a);
  printf("unknown kernel: %s, artifact %s\n", sa_status_name(st), a ? "set" : "NULL");
  st = sattn_emit(m, SATTN_ARTIFACT_OBJECT, &(SattnOptions){.cpu = "pentium9"}, &a);
  printf("unknown cpu: %s\n", sa_status_name(st));
  EXPECT(sattn_emit(m, SATTN_ARTIFACT_COUNT, NULL, &a) == SA_ERR_INVALID_ARGUMENT);
  st = sattn_module_set_shape(m, 1, &(SattnShape){.heads = 3, .kv_heads = 2});
  printf("bad shape: %s; heads still %lld\n", sa_status_name(st), (long long)sattn_module_kernel(m, 1)->heads);
  st = sattn_module_set_shape(m, 1, &(SattnShape){.seq = 10});
  printf("window spec at seq 10: %s\n", sa_status_name(st));
  sattn_module_destroy(m);

  /* IR through sattn_opt: a bad pipeline, then IR that does not parse */
  const char ir[] = "func.func @f() { return }";
  st = sattn_opt(ctx, "f.mlir", ir, sizeof ir - 1, "no-such-pass", false, &a);
  printf("bad pipeline: %s\n", sa_status_name(st));
  st = sattn_opt(ctx, "g.mlir", "func.func @", 11, "", false, &a);
  printf("bad IR: %s\n", sa_status_name(st));
  EXPECT(sattn_opt(ctx, "f.mlir", ir, sizeof ir - 1, "canonicalize", true, &a) == SA_OK);
  printf("generic IR: %s", (const char *)sattn_artifact_data(a, NULL));
  sattn_artifact_destroy(a);
  sattn_context_destroy(ctx);
}

static void test_artifacts(void) {
  SattnContext *ctx = sattn_context_create();
  SattnModule *m;
  EXPECT(sattn_module_parse(ctx, "specs.sattn", specs, sizeof specs - 1, &m) == SA_OK);
  printf("kernels: %d; 'local' at %d\n", sattn_module_kernel_count(m), sattn_module_find(m, "local"));
  /* The CUDA target reads 16-bit inputs: its kinds compile this spec. */
  static const char half[] = "attention local {\n  shape batch=1 heads=2 kv_heads=1 seq=? head_dim=24\n"
                             "  precision input=fp16 output=fp16\n  pattern causal and window 9\n}\n";
  SattnModule *mh;
  EXPECT(sattn_module_parse(ctx, "half.sattn", half, sizeof half - 1, &mh) == SA_OK);
  for (int k = 0; k < SATTN_ARTIFACT_COUNT; k++) {
    SattnArtifact *a = NULL;
    bool accel = k == SATTN_ARTIFACT_ACCEL || k == SATTN_ARTIFACT_ACCEL_ASM || k == SATTN_ARTIFACT_ACCEL_C ||
                 k == SATTN_ARTIFACT_MLIR_ACCEL;
    bool cuda = k == SATTN_ARTIFACT_MLIR_CUDA || k == SATTN_ARTIFACT_PTX || k == SATTN_ARTIFACT_CUBIN ||
                k == SATTN_ARTIFACT_PTX_C;
    if (k == SATTN_ARTIFACT_CUBIN && access("/usr/local/cuda/bin/ptxas", X_OK) != 0 && !getenv("CUDA_HOME")) {
      printf("artifact cubin: skipped (no CUDA toolkit)\n");
      continue;
    }
    SattnOptions opt = {.target = accel ? SATTN_TARGET_ACCEL : cuda ? SATTN_TARGET_CUDA : SATTN_TARGET_CPU,
                        .kernel = "local", .cpu = "x86-64-v3", .seq = 32};
    SaStatus st = sattn_emit(cuda ? mh : m, (SattnArtifactKind)k, &opt, &a);
    size_t size = 0;
    const unsigned char *d = sattn_artifact_data(a, &size);
    EXPECT(st == SA_OK && size > 0 && sattn_artifact_kind(a) == (SattnArtifactKind)k);
    EXPECT(sattn_artifact_kind_is_binary((SattnArtifactKind)k) || (d && d[size] == 0 && strlen((const char *)d) == size));
    printf("artifact %s: %s, %s, %d kernel(s)%s\n", sattn_artifact_kind_name((SattnArtifactKind)k), sa_status_name(st),
           size > 0 ? "non-empty" : "EMPTY", sattn_artifact_kernel_count(a),
           (k == SATTN_ARTIFACT_OBJECT || k == SATTN_ARTIFACT_CUBIN) && size > 4 && memcmp(d, "\x7f" "ELF", 4) == 0
               ? ", ELF"
           : k == SATTN_ARTIFACT_ACCEL && size > 4 && memcmp(d, "SACC", 4) == 0 ? ", SACC"
                                                                                 : "");
    sattn_artifact_destroy(a);
  }
  sattn_module_destroy(mh);
  /* metadata, which outlives the module */
  SattnArtifact *h;
  EXPECT(sattn_emit(m, SATTN_ARTIFACT_HEADER, NULL, &h) == SA_OK);
  sattn_module_destroy(m);
  for (int i = 0; i < sattn_artifact_kernel_count(h); i++) {
    const SattnKernelInfo *k = sattn_artifact_kernel(h, i);
    printf("kernel %s: batch=%lld seq=%lld heads=%lld kv_heads=%lld head_dim=%lld %s %s->%s (%zu->%zu bytes) "
           "split=%d tile=%lld scale=%.6f\n",
           k->name, (long long)k->batch, (long long)k->seq, (long long)k->heads, (long long)k->kv_heads,
           (long long)k->head_dim, k->layout == LAYOUT_BHSD ? "bhsd" : "bshd", sa_dtype_name(k->storage),
           sa_dtype_name(k->output), k->storage_bytes, k->output_bytes, (int)k->split, (long long)k->query_tile,
           k->spec->scale);
    EXPECT(strstr((const char *)sattn_artifact_data(h, NULL), k->prototype) != NULL);
  }
  EXPECT(sattn_artifact_kernel(h, 3) == NULL && sattn_artifact_kernel(h, -1) == NULL);
  sattn_artifact_destroy(h);
  sattn_context_destroy(ctx);
}

static void test_jit(void) {
  SattnContext *ctx = sattn_context_create();
  SattnModule *m;
  EXPECT(sattn_module_parse(ctx, "specs.sattn", specs, sizeof specs - 1, &m) == SA_OK);
  /* a changed shape, after which the module goes away before the JIT is used */
  EXPECT(sattn_module_set_shape(m, 0, &(SattnShape){.head_dim = 15}) == SA_OK);
  SattnJit *jit;
  EXPECT(sattn_jit_create(m, NULL, &jit) == SA_OK);
  sattn_module_destroy(m);
  printf("jit: %d kernels; lookup of 'nope' %s\n", sattn_jit_kernel_count(jit),
         sattn_jit_lookup(jit, "nope") ? "found" : "NULL");
  double e1 = run_against_reference(jit, "dense", 2, 37, 1), e2 = run_against_reference(jit, "local", 1, 100, 2),
         e3 = run_against_reference(jit, "pruned", 1, 64, 3);
  printf("jit vs reference: dense %s, local %s, pruned %s\n", e1 < 1e-5 ? "ok" : "BAD", e2 < 1e-5 ? "ok" : "BAD",
         e3 < 1e-5 ? "ok" : "BAD");
  sattn_jit_destroy(jit);
  sattn_context_destroy(ctx);
}

/* ---- several contexts on several threads ---- */

typedef struct {
  int id;
  int ok;
} ThreadJob;

static void *compile_and_run(void *arg) {
  ThreadJob *j = arg;
  static const char *const names[] = {"dense", "local", "pruned"};
  const char *name = names[j->id % 3];
  int64_t seqs[] = {45, 100, 64};
  SattnContext *ctx = sattn_context_create();
  SattnModule *m = NULL;
  SattnJit *jit = NULL;
  SattnArtifact *obj = NULL;
  j->ok = ctx && sattn_module_parse(ctx, "specs.sattn", specs, sizeof specs - 1, &m) == SA_OK &&
          sattn_emit(m, SATTN_ARTIFACT_OBJECT, &(SattnOptions){.kernel = name}, &obj) == SA_OK &&
          sattn_jit_create(m, &(SattnOptions){.kernel = name}, &jit) == SA_OK &&
          run_against_reference(jit, name, 1, seqs[j->id % 3], (uint64_t)j->id) < 1e-5;
  sattn_artifact_destroy(obj);
  sattn_jit_destroy(jit);
  sattn_module_destroy(m);
  sattn_context_destroy(ctx);
  return NULL;
}

static void test_threads(void) {
  enum { N = 4 };
  pthread_t t[N];
  ThreadJob jobs[N];
  for (int i = 0; i < N; i++) {
    jobs[i] = (ThreadJob){i, 0};
    EXPECT(pthread_create(&t[i], NULL, compile_and_run, &jobs[i]) == 0);
  }
  int ok = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ok += jobs[i].ok;
  }
  printf("threads: %d of %d contexts compiled and matched the reference\n", ok, N);
}

int main(void) {
  printf("version %s\n", sattn_version());
  bool znver4 = false;
  for (const char *const *c = sattn_cpu_names(); *c; c++)
    znver4 |= strcmp(*c, "znver4") == 0;
  printf("target %s; cpu names include znver4: %s; emit kind 'obj' is %d\n", sattn_target_name(SATTN_TARGET_CPU),
         znver4 ? "yes" : "no", sattn_artifact_kind_parse("obj"));
  test_errors();
  test_artifacts();
  test_jit();
  test_threads();
  printf("%d failures\n", failures);
  return failures != 0;
}
