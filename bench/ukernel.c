/* ukernel.c: the tile kernel's two register blocks (6 query rows x 64 keys
 * for S = Q K^T, 6 rows x 64 columns for O += P V; docs/cpu-abi.md) as C
 * intrinsics, timed alone on one thread: what the blocking itself reaches
 * on this CPU, apart from the generated code around it. Needs AVX-512.
 *   cc -O3 -march=native bench/ukernel.c -o build/ukernel && build/ukernel */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { TQ = 96, TK = 64, D = 64, TILES = 64, REPS = 20000 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* pt[r][c] = sum_d q[r][d] kt[d][c]: K transposed tile by tile. */
static void qk_block(const float *q, const float *kt, float *pt) {
  for (int rb = 0; rb < TQ; rb += 6) {
    __m512 a[6][4];
    for (int r = 0; r < 6; r++)
      for (int v = 0; v < 4; v++)
        a[r][v] = _mm512_setzero_ps();
    for (int d = 0; d < D; d++) {
      __m512 k[4];
      for (int v = 0; v < 4; v++)
        k[v] = _mm512_loadu_ps(kt + d * TK + 16 * v);
      for (int r = 0; r < 6; r++) {
        __m512 b = _mm512_set1_ps(q[(rb + r) * D + d]);
        for (int v = 0; v < 4; v++)
          a[r][v] = _mm512_fmadd_ps(b, k[v], a[r][v]);
      }
    }
    for (int r = 0; r < 6; r++)
      for (int v = 0; v < 4; v++)
        _mm512_storeu_ps(pt + (rb + r) * TK + 16 * v, a[r][v]);
  }
}

/* acc[r][d] += sum_c pt[r][c] v[c][d]. */
static void pv_block(const float *pt, const float *v, float *acc) {
  for (int rb = 0; rb < TQ; rb += 6) {
    __m512 a[6][4];
    for (int r = 0; r < 6; r++)
      for (int x = 0; x < 4; x++)
        a[r][x] = _mm512_loadu_ps(acc + (rb + r) * D + 16 * x);
    for (int c = 0; c < TK; c++) {
      __m512 w[4];
      for (int x = 0; x < 4; x++)
        w[x] = _mm512_loadu_ps(v + c * D + 16 * x);
      for (int r = 0; r < 6; r++) {
        __m512 b = _mm512_set1_ps(pt[(rb + r) * TK + c]);
        for (int x = 0; x < 4; x++)
          a[r][x] = _mm512_fmadd_ps(b, w[x], a[r][x]);
      }
    }
    for (int r = 0; r < 6; r++)
      for (int x = 0; x < 4; x++)
        _mm512_storeu_ps(acc + (rb + r) * D + 16 * x, a[r][x]);
  }
}

int main(void) {
  float *q = aligned_alloc(64, sizeof(float) * TQ * D), *pt = aligned_alloc(64, sizeof(float) * TQ * TK);
  float *acc = aligned_alloc(64, sizeof(float) * TQ * D);
  float *kv = aligned_alloc(64, sizeof(float) * TILES * TK * D); /* a 1 MB head, as at 4096 keys */
  if (!q || !pt || !acc || !kv)
    return 1;
  for (int i = 0; i < TQ * D; i++)
    q[i] = (float)(i % 97) * 1e-3f, acc[i] = 0.0f;
  for (int i = 0; i < TQ * TK; i++)
    pt[i] = (float)(i % 89) * 1e-3f;
  for (int i = 0; i < TILES * TK * D; i++)
    kv[i] = (float)(i % 101) * 1e-3f;
  double flop = 2.0 * TQ * TK * D * REPS;
  double t = now();
  for (int r = 0; r < REPS; r++)
    qk_block(q, kv + (size_t)(r % TILES) * TK * D, pt);
  double tq = now() - t;
  t = now();
  for (int r = 0; r < REPS; r++)
    pv_block(pt, kv + (size_t)(r % TILES) * TK * D, acc);
  double tv = now() - t;
  printf("Q K^T block: %.1f GFLOP/s   P V block: %.1f GFLOP/s   (checksum %g)\n", flop / tq / 1e9, flop / tv / 1e9,
         (double)(pt[7] + acc[7]));
  return 0;
}
