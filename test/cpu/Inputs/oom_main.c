/* Allocation failures inside compiled kernels: links a kernel object with
 * -Wl,--wrap=malloc so that the kernel's malloc calls come here, fails the
 * Nth one for N = 1, 2, ... until a call goes through, and checks that every
 * failing call returns status 2 (out of memory), that the call after it
 * still works, and (under ASan) that nothing leaks.
 * Built by kernel-oom.test with -DKERNEL=<name> -include <header>.
 * usage: oom-main SEQ THREADS */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/cpu.h"

void *__real_malloc(size_t n);
static atomic_long countdown = -1; /* -1: never fail */
static atomic_long failures;

void *__wrap_malloc(size_t n) {
  if (atomic_fetch_sub(&countdown, 1) == 1) {
    atomic_fetch_add(&failures, 1);
    return NULL;
  }
  return __real_malloc(n);
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  int64_t S = atoll(argv[1]);
  sattn_cpu_set_threads(atoi(argv[2]));
  int64_t H = KERNEL_HEADS, KVH = KERNEL_KV_HEADS, D = KERNEL_HEAD_DIM;
  size_t nq = (size_t)(H * S * D), nkv = (size_t)(KVH * S * D);
  float *q = calloc(nq, sizeof *q), *k = calloc(nkv, sizeof *k), *v = calloc(nkv, sizeof *v);
  float *o = calloc(nq, sizeof *o);
  for (size_t i = 0; i < nq; i++)
    q[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < nkv; i++)
    k[i] = (float)(i % 5) * 0.1f, v[i] = (float)(i % 3);
  int bad = 0, n;
  for (n = 1; n < 200; n++) {
    atomic_store(&failures, 0);
    atomic_store(&countdown, n);
    int st = KERNEL(q, k, v, o, 1, S, NULL, NULL, NULL, NULL);
    atomic_store(&countdown, -1);
    long f = atomic_load(&failures);
    if ((f > 0 && st != 2) || (f == 0 && st != 0)) {
      printf("allocation %d: status %d after %ld failures\n", n, st, f);
      bad++;
    }
    if (f == 0)
      break; /* every allocation of a call succeeded */
  }
  int st = KERNEL(q, k, v, o, 1, S, NULL, NULL, NULL, NULL);
  printf("failed each of the first %d allocations: %s; then status %d\n", n - 1, bad ? "WRONG STATUS" : "status 2 each time", st);
  free(q), free(k), free(v), free(o);
  return bad != 0 || st != 0;
}
