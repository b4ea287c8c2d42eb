/* aot_time.c: times one kernel compiled ahead of time (sattnc --emit=obj),
 * batch 1 x 16 heads x head_dim 64, inputs uniform in [-0.5, 0.5) stored as
 * the kernel's type (ELEM 0: f32, 1: fp16, 2: bf16), calls back to back.
 * Built by bench/storage.sh with -DKNAME=<kernel> -DELEM=<type>.
 * usage: aot_time SEQ REPS   prints the median call in ms */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  long S = atol(argv[1]);
  int reps = atoi(argv[2]);
  size_t n = (size_t)16 * S * 64, es = ELEM ? 2 : 4;
  unsigned char *buf[4];
  for (int t = 0; t < 4; t++)
    if (!(buf[t] = malloc(n * es)))
      return 1;
  srand(1);
  for (size_t i = 0; i < n; i++)
    for (int t = 0; t < 3; t++) {
      float f = rand() / (float)RAND_MAX - 0.5f;
      if (ELEM == 0) {
        memcpy(buf[t] + 4 * i, &f, 4);
      } else if (ELEM == 1) {
        _Float16 h = (_Float16)f;
        memcpy(buf[t] + 2 * i, &h, 2);
      } else {
        uint32_t u;
        memcpy(&u, &f, 4);
        uint16_t hi = (uint16_t)(u >> 16);
        memcpy(buf[t] + 2 * i, &hi, 2);
      }
    }
  double *ms = malloc(sizeof(double) * (size_t)reps);
  for (int r = 0; r < reps; r++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = KNAME((void *)buf[0], (void *)buf[1], (void *)buf[2], (void *)buf[3], 1, S, 0, 0, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc)
      return 1;
    ms[r] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmp);
  printf("%.2f\n", ms[reps / 2]);
  return 0;
}
