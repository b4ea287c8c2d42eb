/* aot_demo: calls kernels that sattn_add_kernels compiled at build time.
 *
 * The header attention_kernels.h declares every kernel with its shapes as
 * macros (DECODER_LOCAL_HEADS, ...). The program checks the causal window
 * kernel against a direct double-precision loop over the same pattern, and
 * runs the N:M kernel on fp16 data; then it runs the causal window's
 * accelerator stream (embedded in the library as data) on the machine model
 * with the same inputs, and its PTX (embedded too) on a GPU when the
 * machine has a CUDA driver. No compiler is involved at run time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_cuda.h"
#include "attention_kernels.h"
#include "sattn/accel.h"
#include "sattn/cpu.h"
#include "sattn/cuda.h"

/* Deterministic inputs in [-1, 1). */
static float next_input(uint64_t *s) {
  *s = *s * 6364136223846793005u + 1442695040888963407u;
  return (float)((*s >> 40) * 0x1p-23) - 1.0f;
}

/* IEEE binary16 bits of x, for values of moderate size (round to nearest). */
static uint16_t to_half(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  uint32_t sign = (u >> 16) & 0x8000, e = (u >> 23) & 0xff, m = u & 0x7fffff;
  if (e < 103)
    return (uint16_t)sign;
  if (e < 113) { /* subnormal half */
    m |= 0x800000;
    uint32_t shift = 126 - e, h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    h += rem > half || (rem == half && (h & 1));
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((e - 112) << 10) | (m >> 13), rem = m & 0x1fff;
  h += rem > 0x1000 || (rem == 0x1000 && (h & 1));
  return (uint16_t)(sign | h);
}

/* Attention of query row (b, h, i) over the causal window, directly. */
static void direct_row(const float *q, const float *k, const float *v, int64_t S, int64_t h, int64_t i, double *out) {
  enum { H = DECODER_LOCAL_HEADS, KVH = DECODER_LOCAL_KV_HEADS, D = DECODER_LOCAL_HEAD_DIM };
  int64_t kh = h / (H / KVH), r = 256 / 2;
  const float *qi = q + (h * S + i) * D;
  double m = -INFINITY, l = 0, acc[D] = {0};
  for (int64_t j = i - r < 0 ? 0 : i - r; j <= i; j++) {
    const float *kj = k + (kh * S + j) * D;
    double s = 0;
    for (int d = 0; d < D; d++)
      s += (double)qi[d] * kj[d];
    s /= sqrt((double)D);
    double mn = s > m ? s : m, c = exp(m - mn), p = exp(s - mn);
    l = l * c + p;
    for (int d = 0; d < D; d++)
      acc[d] = acc[d] * c + p * v[(kh * S + j) * D + d];
    m = mn;
  }
  for (int d = 0; d < D; d++)
    out[d] = acc[d] / l;
}

int main(void) {
  int64_t S = 777; /* the spec leaves seq (and batch) to the call */
  size_t nq = (size_t)(DECODER_LOCAL_HEADS * S * DECODER_LOCAL_HEAD_DIM);
  size_t nkv = (size_t)(DECODER_LOCAL_KV_HEADS * S * DECODER_LOCAL_HEAD_DIM);
  float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *o = malloc(nq * 4);
  if (!q || !k || !v || !o)
    return 1;
  uint64_t s = 1;
  for (size_t i = 0; i < nq; i++)
    q[i] = next_input(&s);
  for (size_t i = 0; i < nkv; i++)
    k[i] = next_input(&s), v[i] = next_input(&s);
  int32_t st = decoder_local(q, k, v, o, 1, S, NULL, NULL, NULL, NULL);
  double worst = 0, row[DECODER_LOCAL_HEAD_DIM];
  for (int64_t h = 0; h < DECODER_LOCAL_HEADS && st == 0; h++)
    for (int64_t i = 0; i < S; i += 7) {
      direct_row(q, k, v, S, h, i, row);
      for (int d = 0; d < DECODER_LOCAL_HEAD_DIM; d++)
        worst = fmax(worst, fabs(row[d] - o[(h * S + i) * DECODER_LOCAL_HEAD_DIM + d]));
    }
  printf("decoder_local: status %d, seq %lld on %d threads, largest difference from the direct loop %.1e: %s\n", st,
         (long long)S, sattn_cpu_threads(), worst, st == 0 && worst < 1e-5 ? "ok" : "MISMATCH");
  int rc = st == 0 && worst < 1e-5 ? 0 : 1;

  /* the same layer on the accelerator model, from the embedded stream */
  SaAccelProgram *prog = NULL;
  SaAccelConfig cfg;
  SaAccelStats stats;
  char err[256];
  float *ao = malloc(nq * 4);
  sa_accel_config_default(&cfg);
  SaStatus as = sa_accel_load(decoder_local_sacc, decoder_local_sacc_size, &prog, err, sizeof err);
  if (as == SA_OK && ao)
    as = sa_accel_run(prog, &cfg, q, k, v, ao, 1, NULL, &stats, err, sizeof err);
  double adiff = 0;
  for (size_t i = 0; as == SA_OK && i < nq; i++)
    adiff = fmax(adiff, fabs((double)ao[i] - o[i]));
  if (as == SA_OK)
    printf("decoder_local on the accelerator: %lld cycles, %.1f KB DRAM read, largest difference from the CPU "
           "kernel %.1e: %s\n",
           (long long)stats.cycles, stats.dram_read_bytes / 1e3, adiff, adiff < 1e-4 ? "ok" : "MISMATCH");
  else
    printf("decoder_local on the accelerator: %s: %s\n", sa_status_name(as), err);
  rc |= as != SA_OK || adiff >= 1e-4;
  sa_accel_free(prog);
  free(ao);

  /* the same layer on a GPU, from the embedded PTX (tf32 tensor cores for
   * fp32 inputs: about 1e-3 from the CPU kernel); skipped without a driver */
  SaCuda *cu = NULL;
  SaCudaModule *cm = NULL;
  SaCudaPtr dq = 0, dk = 0, dv = 0, dout = 0;
  float *go = malloc(nq * 4);
  SaStatus cs = go ? sa_cuda_open(0, &cu, err, sizeof err) : SA_ERR_OUT_OF_MEMORY;
  if (cs == SA_ERR_UNSUPPORTED) {
    printf("decoder_local on CUDA: skipped (%s)\n", err);
  } else {
    if (cs == SA_OK)
      cs = sa_cuda_module_load(cu, decoder_local_ptx, decoder_local_ptx_size, &cm, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_alloc(cu, nq * 4, &dq, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_alloc(cu, nkv * 4, &dk, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_alloc(cu, nkv * 4, &dv, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_alloc(cu, nq * 4, &dout, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_upload(cu, dq, q, nq * 4, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_upload(cu, dk, k, nkv * 4, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_upload(cu, dv, v, nkv * 4, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_launch(cm, &decoder_local_cuda, dq, dk, dv, dout, 1, S, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_sync(cu, err, sizeof err);
    if (cs == SA_OK)
      cs = sa_cuda_download(cu, go, dout, nq * 4, err, sizeof err);
    double gdiff = 0;
    for (size_t i = 0; cs == SA_OK && i < nq; i++)
      gdiff = fmax(gdiff, fabs((double)go[i] - o[i]));
    if (cs == SA_OK)
      printf("decoder_local on CUDA: largest difference from the CPU kernel %.1e: %s\n", gdiff,
             gdiff < 1e-2 ? "ok" : "MISMATCH");
    else
      printf("decoder_local on CUDA: %s: %s\n", sa_status_name(cs), err);
    rc |= cs != SA_OK || gdiff >= 1e-2;
  }
  sa_cuda_free(cu, dq), sa_cuda_free(cu, dk), sa_cuda_free(cu, dv), sa_cuda_free(cu, dout);
  sa_cuda_module_unload(cm);
  sa_cuda_close(cu);
  free(go);

  /* the fp16 N:M kernel: fixed shape */
  size_t n = (size_t)(ENCODER_NM_BATCH * ENCODER_NM_HEADS * ENCODER_NM_SEQ * ENCODER_NM_HEAD_DIM);
  uint16_t *hq = malloc(n * 2), *hk = malloc(n * 2), *hv = malloc(n * 2), *ho = malloc(n * 2);
  if (!hq || !hk || !hv || !ho)
    return 1;
  for (size_t i = 0; i < n; i++)
    hq[i] = to_half(next_input(&s)), hk[i] = to_half(next_input(&s)), hv[i] = to_half(next_input(&s));
  st = encoder_nm(hq, hk, hv, ho, ENCODER_NM_BATCH, ENCODER_NM_SEQ, NULL, NULL, NULL, NULL);
  printf("encoder_nm: status %d\n", st);
  /* a wrong sequence length is refused with status 3, nothing written */
  printf("encoder_nm at seq 100: status %d\n", encoder_nm(hq, hk, hv, ho, 1, 100, NULL, NULL, NULL, NULL));
  rc |= st != 0;
  free(q), free(k), free(v), free(o), free(hq), free(hk), free(hv), free(ho);
  return rc;
}
