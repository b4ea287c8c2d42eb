/* libFuzzer target: the accelerator runtime's loader and executor.
 * Arbitrary bytes go to sa_accel_load; a stream that loads and is small
 * runs on the configuration its header names, on fixed inputs. The input's
 * checksum is fixed first, so that mutations reach the checks behind it
 * (stream.test covers the checksum itself). A rejected stream is expected;
 * a crash, a sanitizer report, a leak or a hang is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/accel/accel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  SaAccelProgram *p = NULL;
  char err[256];
  uint8_t *b = malloc(size ? size : 1);
  if (!b)
    return 0;
  memcpy(b, data, size);
  if (size >= 24) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i + 8 < size; i++)
      h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    for (int i = 0; i < 8; i++)
      b[size - 8 + i] = (uint8_t)(h >> (8 * i));
  }
  SaStatus loaded = sa_accel_load(b, size, &p, err, sizeof err);
  free(b);
  if (loaded != SA_OK)
    return 0;
  const SaSpec *s = sa_accel_spec(p);
  int64_t nq = s->heads * s->seq * s->head_dim, nkv = s->kv_heads * s->seq * s->head_dim;
  if (nq <= (1 << 14) && p->header[H_ROWS] * p->header[H_COLS] <= (1 << 12) && p->n_code <= (1 << 14)) {
    SaAccelConfig c;
    sa_accel_config_default(&c);
    c.pe_rows = p->header[H_ROWS], c.pe_cols = p->header[H_COLS], c.global_pes = p->header[H_GLOBAL_PES];
    float *q = calloc((size_t)nq, sizeof *q), *k = calloc((size_t)nkv, sizeof *k), *v = calloc((size_t)nkv, sizeof *v);
    float *o = calloc((size_t)nq, sizeof *o);
    for (int64_t i = 0; q && k && v && i < nkv; i++)
      k[i] = (float)(i % 7) - 3.0f, v[i] = (float)(i % 5) * 0.5f;
    for (int64_t i = 0; q && i < nq; i++)
      q[i] = (float)(i % 3) - 1.0f;
    SaAccelStats st;
    if (q && k && v && o)
      sa_accel_run(p, &c, q, k, v, o, 1, NULL, &st, err, sizeof err);
    free(q), free(k), free(v), free(o);
  }
  sa_accel_free(p);
  return 0;
}
