/* An ahead-of-time user of a CPU kernel: links the object sattnc emitted,
 * includes the header it generated, and checks the kernel against the
 * reference and its documented statuses.
 * Built by aot.test with -DKERNEL=<name> -include <generated header>.
 * usage: aot-main SPEC_FILE SEQ */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler.h"
#include "sattn/reference.h"

static float *random_tensor(size_t n, uint64_t *state) {
  float *x = malloc(n * sizeof *x);
  for (size_t i = 0; x && i < n; i++)
    x[i] = (float)((double)(sa_splitmix64(state) >> 11) / 9007199254740992.0 * 4.0 - 2.0);
  return x;
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  FILE *f = fopen(argv[1], "rb");
  static char text[1 << 16];
  size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f)
    fclose(f);
  FrontEnd fe = {0};
  Diag d = {.out = stderr};
  if (!fe_run(&fe, argv[1], text, len, FE_STOP_CHECK, &d))
    return 1;
  const SaSpec *s = NULL;
  for (FeSpec *fs = fe.file.first; fs; fs = fs->next)
    if (!strcmp(fs->spec.name, KERNEL_NAME))
      s = &fs->spec;
  if (!s)
    return 1;
  int64_t S = atoll(argv[2]), B = 1;
  size_t nq = (size_t)(B * s->heads * S * s->head_dim), nkv = (size_t)(B * s->kv_heads * S * s->head_dim);
  uint64_t state = 42;
  float *q = random_tensor(nq, &state), *k = random_tensor(nkv, &state), *v = random_tensor(nkv, &state);
  float *o = calloc(nq, sizeof *o), *ref = calloc(nq, sizeof *ref);

  int st = KERNEL(q, k, v, o, B, S, NULL, NULL, NULL, NULL);
  printf("status %d\n", st);
  SaProblem p = {.batch = B, .seq = S, .q = q, .k = k, .v = v, .out = ref};
  sa_reference(s, &p, NULL);
  double num = 0, den = 0;
  for (size_t i = 0; i < nq; i++) {
    num += ((double)o[i] - ref[i]) * ((double)o[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  printf("relative error %s\n", sqrt(num / den) < 1e-5 ? "ok" : "FAILED");

  /* documented statuses; nothing is written on failure */
  memset(o, 0, nq * sizeof *o);
  printf("null q: %d\n", KERNEL(NULL, k, v, o, B, S, NULL, NULL, NULL, NULL));
  printf("seq 0: %d\n", KERNEL(q, k, v, o, B, 0, NULL, NULL, NULL, NULL));
  printf("batch -1: %d\n", KERNEL(q, k, v, o, -1, S, NULL, NULL, NULL, NULL));
  printf("huge seq: %d\n", KERNEL(q, k, v, o, B, INT64_C(1) << 40, NULL, NULL, NULL, NULL));
  bool untouched = true;
  for (size_t i = 0; i < nq; i++)
    untouched = untouched && o[i] == 0.0f;
  printf("output untouched: %s\n", untouched ? "yes" : "no");
  free(q), free(k), free(v), free(o), free(ref);
  fe_free(&fe);
  return 0;
}
