/* An fp16 kernel compiled for the generic x86-64 CPU (no F16C: fp16 goes
 * through the compiler runtime's conversions) links with a plain cc and
 * computes: with every q, k, v equal to 1.0 each output is 1.0 (0x3C00).
 * Built by aot.test with -include <header of fp16_causal>. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  int64_t S = 50, n = FP16_CAUSAL_HEADS * S * FP16_CAUSAL_HEAD_DIM;
  uint16_t *q = calloc((size_t)n, 2), *k = calloc((size_t)n, 2), *v = calloc((size_t)n, 2), *o = calloc((size_t)n, 2);
  if (!q || !k || !v || !o)
    return 1;
  for (int64_t i = 0; i < n; i++)
    q[i] = k[i] = v[i] = 0x3C00;
  int st = fp16_causal(q, k, v, o, 1, S, NULL, NULL, NULL, NULL);
  int ones = 0;
  for (int64_t i = 0; i < n; i++)
    ones += o[i] == 0x3C00;
  printf("status %d, %d of %lld outputs are 1.0\n", st, ones, (long long)n);
  free(q), free(k), free(v), free(o);
  return st != 0 || ones != n;
}
