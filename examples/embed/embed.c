/* embed: compiling an attention spec inside a program and running the
 * kernel, through the C API alone (sattn/sattn.h).
 *
 *   cc embed.c $(pkg-config --cflags --libs sattn) -lm -o embed
 *   ./embed [seq]
 *
 * The spec is a string; the kernel is compiled for this machine at run
 * time, called on random inputs, and checked against the plain C reference
 * of the semantics (sattn/reference.h). Diagnostics arrive through a
 * callback, with their location in the spec. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sattn/reference.h"
#include "sattn/sattn.h"

static const char spec[] =
    "# causal attention over the 256 tokens before each query, 8 query heads sharing 2 key/value heads\n"
    "attention decoder_local {\n"
    "  shape   batch=? heads=8 kv_heads=2 seq=? head_dim=64\n"
    "  pattern causal and window 512\n"
    "}\n";

static void on_diagnostic(const SattnDiagnostic *d, void *user) {
  (void)user;
  fprintf(stderr, "embed: %s:%d:%d: %s\n", d->file, d->line, d->col, d->message);
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  int64_t batch = 1, seq = argc > 1 ? atoll(argv[1]) : 1000;
  if (seq < 1) {
    fprintf(stderr, "usage: embed [seq]\n");
    return 2;
  }
  SattnContext *ctx = sattn_context_create();
  if (!ctx)
    return 1;
  sattn_context_set_diagnostic_handler(ctx, on_diagnostic, NULL);

  SattnModule *m = NULL;
  SattnJit *jit = NULL;
  int rc = 1;
  double t0 = seconds();
  SaStatus st = sattn_module_parse(ctx, "decoder.sattn", spec, sizeof spec - 1, &m);
  if (st == SA_OK)
    st = sattn_jit_create(m, NULL, &jit);
  if (st != SA_OK) {
    fprintf(stderr, "embed: compiling failed: %s\n", sa_status_name(st));
    goto done;
  }
  const SattnKernelInfo *k = sattn_jit_kernel(jit, 0);
  SattnCpuKernelFn fn = sattn_jit_lookup(jit, k->name);
  printf("compiled %s in %.2f s: heads=%lld kv_heads=%lld head_dim=%lld, %s in, %s out\n", k->name, seconds() - t0,
         (long long)k->heads, (long long)k->kv_heads, (long long)k->head_dim, sa_dtype_name(k->storage),
         sa_dtype_name(k->output));
  printf("%s;\n", k->prototype);

  size_t nq = (size_t)(batch * k->heads * seq * k->head_dim), nkv = (size_t)(batch * k->kv_heads * seq * k->head_dim);
  float *q = malloc(nq * sizeof *q), *kk = malloc(nkv * sizeof *kk), *v = malloc(nkv * sizeof *v);
  float *o = malloc(nq * sizeof *o), *ref = malloc(nq * sizeof *ref);
  if (q && kk && v && o && ref) {
    uint64_t seed = 42;
    for (size_t i = 0; i < nq; i++)
      q[i] = (float)sa_gaussian(&seed);
    for (size_t i = 0; i < nkv; i++) {
      kk[i] = (float)sa_gaussian(&seed);
      v[i] = (float)sa_gaussian(&seed);
    }
    t0 = seconds();
    int32_t ks = fn(q, kk, v, o, batch, seq, NULL, NULL, NULL, NULL);
    double kt = seconds() - t0;
    SaProblem p = {.batch = batch, .seq = seq, .q = q, .k = kk, .v = v, .out = ref};
    SaStatus rs = sa_reference(k->spec, &p, NULL);
    if (ks != 0 || rs != SA_OK) {
      fprintf(stderr, "embed: kernel status %d, reference: %s\n", ks, sa_status_name(rs));
    } else {
      double num = 0, den = 0;
      for (size_t i = 0; i < nq; i++) {
        num += ((double)o[i] - ref[i]) * ((double)o[i] - ref[i]);
        den += (double)ref[i] * ref[i];
      }
      double rel = sqrt(num / den);
      printf("seq=%lld: kernel %.2f ms on %d threads; relative error vs reference %.1e: %s\n", (long long)seq,
             1e3 * kt, sattn_cpu_threads(), rel, rel < 1e-5 ? "ok" : "MISMATCH");
      rc = rel < 1e-5 ? 0 : 1;
    }
  } else {
    fprintf(stderr, "embed: out of memory\n");
  }
  free(q), free(kk), free(v), free(o), free(ref);
done:
  sattn_jit_destroy(jit);
  sattn_module_destroy(m);
  sattn_context_destroy(ctx);
  return rc;
}
