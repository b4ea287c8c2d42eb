/* check.c: tensors between fp32 and the kernels' element types, and the
 * comparison with the reference that sattn-run and sattn-gpu share. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/reference.h"

/* IEEE binary16 bits of a float that is exactly representable in it. */
static uint16_t half_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  float a = fabsf(x);
  if (isnan(x))
    return sign | 0x7E00;
  if (isinf(x) || a >= 65520.0f)
    return sign | 0x7C00;
  if (a < ldexpf(1.0f, -14)) /* subnormal or zero: multiples of 2^-24 */
    return sign | (uint16_t)lrintf(ldexpf(a, 24));
  int e;
  float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
  return sign | (uint16_t)((e + 14) << 10) | (uint16_t)(lrintf(ldexpf(m, 11)) - 1024);
}

static float half_value(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m + 1024), e - 25);
  return (h & 0x8000) ? -v : v;
}

/* fp8 bytes of a float already rounded to the format (or NaN, or Inf for
 * e5m2): e4m3 has 3 mantissa bits, bias 7, no Inf; e5m2 2 bits, bias 15. */
static uint8_t fp8_bits(float r, SaDtype t) {
  bool e4 = t == DT_FP8E4M3;
  int mant = e4 ? 3 : 2, emin = e4 ? -6 : -14, bias = e4 ? 7 : 15;
  uint8_t sign = signbit(r) ? 0x80 : 0;
  float a = fabsf(r);
  if (isnan(r))
    return sign | (e4 ? 0x7F : 0x7E);
  if (isinf(r))
    return sign | 0x7C;
  if (a < ldexpf(1.0f, emin))
    return sign | (uint8_t)lrintf(ldexpf(a, mant - emin));
  int e;
  float f = frexpf(a, &e); /* a = f * 2^e, f in [0.5, 1) */
  return sign | (uint8_t)(((e - 1 + bias) << mant) | (int)lrintf(ldexpf(2 * f - 1, mant)));
}

void *chk_alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 64) / 64 * 64); }

size_t chk_dtype_bytes(SaDtype t) { return t == DT_FP32 ? 4 : t == DT_FP8E4M3 || t == DT_FP8E5M2 ? 1 : 2; }

/* The kernel's memory for a tensor of type t from fp32 values (rounded to t first). */
void *chk_encode(const float *x, size_t n, SaDtype t) {
  size_t elem = chk_dtype_bytes(t);
  /* 64-byte aligned, as frameworks allocate tensors: kernels read aligned
   * inputs in place where they can, and copy others */
  unsigned char *out = chk_alloc64(n * elem);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    float r = sa_round_to_dtype(x[i], t);
    if (elem == 1) {
      out[i] = fp8_bits(r, t);
    } else if (t == DT_FP32) {
      memcpy(out + 4 * i, &r, 4);
    } else {
      uint32_t u;
      memcpy(&u, &r, sizeof u);
      uint16_t h = t == DT_FP16 ? half_bits(r) : (uint16_t)(u >> 16);
      memcpy(out + 2 * i, &h, 2);
    }
  }
  return out;
}

void chk_decode(const void *mem, size_t n, SaDtype t, float *out) {
  const unsigned char *p = mem;
  for (size_t i = 0; i < n; i++) {
    if (t == DT_FP32) {
      memcpy(&out[i], p + 4 * i, 4);
    } else {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      uint32_t u = (uint32_t)h << 16;
      if (t == DT_FP16)
        out[i] = half_value(h);
      else
        memcpy(&out[i], &u, 4);
    }
  }
}

/* ---- input files ---- */

/* Opens path and finds its size in bytes; NULL after an error on stderr. */
static FILE *open_sized(const char *tool, const char *path, long *bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: error: cannot open '%s'\n", tool, path);
    return NULL;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (*bytes = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "%s: error: cannot read '%s'\n", tool, path);
    fclose(f);
    return NULL;
  }
  return f;
}

bool chk_f32_count(const char *tool, const char *path, size_t *out_n) {
  long bytes;
  FILE *f = open_sized(tool, path, &bytes);
  if (!f)
    return false;
  fclose(f);
  *out_n = (size_t)bytes / sizeof(float);
  return true;
}

float *chk_read_f32(const char *tool, const char *path, size_t want) {
  long bytes;
  FILE *f = open_sized(tool, path, &bytes);
  if (!f)
    return NULL;
  if ((size_t)bytes != want * sizeof(float)) {
    fprintf(stderr, "%s: error: '%s' holds %ld bytes, expected %zu floats\n", tool, path, bytes, want);
    fclose(f);
    return NULL;
  }
  float *p = malloc(want * sizeof *p + 1);
  if (!p) {
    fprintf(stderr, "%s: error: out of memory reading '%s'\n", tool, path);
  } else if (fread(p, sizeof *p, want, f) != want) {
    fprintf(stderr, "%s: error: cannot read '%s'\n", tool, path);
    free(p);
    p = NULL;
  }
  fclose(f);
  return p;
}

/* Index of logical element (b, h, i, d) of a tensor with nh heads in the layout. */
static size_t at(const SaSpec *s, int64_t nh, int64_t S, int64_t b, int64_t h, int64_t i, int64_t d) {
  int64_t row = s->layout == LAYOUT_BHSD ? (b * nh + h) * S + i : (b * S + i) * nh + h;
  return (size_t)(row * s->head_dim + d);
}

/* Copies between [B, nh, S, D] order and the spec's layout. */
void chk_to_layout(const SaSpec *s, int64_t B, int64_t nh, int64_t S, const float *src, float *dst, bool back) {
  size_t n = 0; /* the [B, H, S, D] index */
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < nh; h++)
      for (int64_t i = 0; i < S; i++)
        for (int64_t d = 0; d < s->head_dim; d++, n++) {
          size_t a = at(s, nh, S, b, h, i, d);
          if (back)
            dst[n] = src[a];
          else
            dst[a] = src[n];
        }
}

/* ---- comparison ---- */


ChkErr chk_compare(const float *got, const float *want, size_t n) {
  ChkErr e = {0};
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    bool fg = isfinite(got[i]), fw = isfinite(want[i]);
    if (!fg || !fw) {
      bool same = (isnan(got[i]) && isnan(want[i])) || got[i] == want[i];
      e.mismatch_nonfinite |= !same;
      continue;
    }
    double d = fabs((double)got[i] - (double)want[i]);
    e.max_abs = fmax(e.max_abs, d);
    e.ref_max = fmax(e.ref_max, fabs((double)want[i]));
    num += d * d;
    den += (double)want[i] * want[i];
  }
  e.rel = den > 0 ? sqrt(num / den) : sqrt(num);
  return e;
}

/* The documented tolerance of an output type: relative Frobenius error and
 * largest absolute error relative to the largest reference value. */
void chk_tolerance(SaDtype out, double *rel, double *abs_rel) {
  switch (out) {
  case DT_FP16: *rel = 1e-3, *abs_rel = 2e-3; break;
  case DT_BF16: *rel = 8e-3, *abs_rel = 1.6e-2; break;
  default: *rel = 1e-5, *abs_rel = 1e-4; break;
  }
}

bool chk_within(ChkErr e, double rel, double abs_rel) {
  return !e.mismatch_nonfinite && e.rel <= rel && e.max_abs <= abs_rel * fmax(e.ref_max, 1e-30);
}

/* The largest row norm of x (rows of d values). */
static double max_row_norm(const float *x, size_t n, int64_t d) {
  double m = 0;
  for (size_t r = 0; r < n / (size_t)d; r++) {
    double n2 = 0;
    for (int64_t i = 0; i < d; i++)
      n2 += (double)x[r * (size_t)d + (size_t)i] * x[r * (size_t)d + (size_t)i];
    m = fmax(m, sqrt(n2));
  }
  return m;
}

double chk_logit_bound(const SaSpec *s, const float *q, size_t nq, const float *k, size_t nkv) {
  return fabs(s->scale) * max_row_norm(q, nq, s->head_dim) * max_row_norm(k, nkv, s->head_dim);
}

void chk_cuda_widen(const SaSpec *s, double logit_bound, double *rel, double *abs_rel) {
  double u = s->storage == DT_BF16 ? ldexp(1.0, -8) : ldexp(1.0, -11); /* unit roundoff of P's type */
  double w = 2 * u;
  /* V rounded to tf32; q and k each by u move a logit by up to 2 u L, and
   * the softmax's normalization can double that in a weight */
  if (s->storage == DT_FP32)
    w += u + 4 * u * logit_bound;
  *rel += w;
  *abs_rel += 2 * w;
}
