/* Unit test of the reference implementation (runtime/reference).
 *
 * Every expectation is computed here independently of reference.c: either
 * written out by hand, or by a second, differently organised formula (the
 * textbook softmax that divides once at the end, a separately written PRNG,
 * quantizer and bf16 rounding). Prints "N passed, M failed" last and exits
 * non-zero on any failure.
 *
 * Build: cc -std=c11 -Wall -Wextra -O1 -Iinclude runtime/spec.c
 *        runtime/reference/status.c runtime/reference/reference.c
 *        test/unit/reference_test.c -lm */
#include "sattn/cuda.h"
#include "sattn/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_passed, g_failed;
static const char *g_case = "";

static void check(bool ok, int line, const char *what) {
  if (ok) {
    g_passed++;
    return;
  }
  g_failed++;
  printf("FAIL [%s] line %d: %s\n", g_case, line, what);
}
#define CHECK(cond) check((cond), __LINE__, #cond)

/* ------------------------------------------------------------------ */
/* Independent helpers                                                */

/* SplitMix64 written out again, to check sa_splitmix64 and to rebuild the
 * random choices of BigBird and DSA without trusting the library. */
static uint64_t my_splitmix(uint64_t *x) {
  *x += 0x9E3779B97F4A7C15u;
  uint64_t z = *x;
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9u;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

/* Test data comes from a different generator (a 64-bit LCG), in [-1, 1). */
static uint64_t g_lcg = 12345;
static float my_rand(void) {
  g_lcg = g_lcg * 6364136223846793005u + 1442695040888963407u;
  return (float)((double)(g_lcg >> 40) / 16777216.0 * 2.0 - 1.0);
}

/* Symmetric per-row quantization, with rounding half away from zero spelled
 * out through floor. */
static void my_quant(const double *x, int n, int bits, double *out) {
  double qmax = (double)((1 << (bits - 1)) - 1), amax = 0.0;
  for (int d = 0; d < n; d++)
    if (fabs(x[d]) > amax)
      amax = fabs(x[d]);
  for (int d = 0; d < n; d++) {
    if (amax == 0.0) {
      out[d] = 0.0;
      continue;
    }
    double y = x[d] / (amax / qmax);
    double r = y < 0 ? -floor(-y + 0.5) : floor(y + 0.5);
    if (r > qmax)
      r = qmax;
    if (r < -qmax)
      r = -qmax;
    out[d] = r * (amax / qmax);
  }
}

/* bf16 by the usual bit trick: add half an ulp (plus the even bit), cut. */
static float my_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  memcpy(&x, &u, 4);
  return x;
}

/* ------------------------------------------------------------------ */
/* Cases                                                              */

typedef struct {
  SaSpec spec;
  SaProblem p;
  int64_t S, D, H, KVH, B;
  float *q, *k, *v, *out;
} Case;

static SaSpec base_spec(int64_t B, int64_t H, int64_t KVH, int64_t S, int64_t D) {
  SaSpec s;
  memset(&s, 0, sizeof s);
  s.name = "test";
  s.batch = B;
  s.heads = H;
  s.kv_heads = KVH;
  s.seq = S;
  s.head_dim = D;
  s.layout = LAYOUT_BHSD;
  s.storage = s.score = s.softmax = s.accumulate = s.output = DT_FP32;
  s.scale = 1.0 / sqrt((double)D);
  s.token_keep = s.head_keep = s.value_keep = 1.0;
  return s;
}

static Case make_case(int64_t B, int64_t H, int64_t KVH, int64_t S, int64_t D) {
  Case c;
  memset(&c, 0, sizeof c);
  c.spec = base_spec(B, H, KVH, S, D);
  c.B = B, c.H = H, c.KVH = KVH, c.S = S, c.D = D;
  size_t nq = (size_t)(B * H * S * D), nk = (size_t)(B * KVH * S * D);
  c.q = malloc(nq * sizeof(float));
  c.k = malloc(nk * sizeof(float));
  c.v = malloc(nk * sizeof(float));
  c.out = malloc(nq * sizeof(float));
  if (!c.q || !c.k || !c.v || !c.out) {
    printf("test out of memory\n");
    exit(2);
  }
  for (size_t n = 0; n < nq; n++)
    c.q[n] = my_rand();
  for (size_t n = 0; n < nk; n++) {
    c.k[n] = my_rand();
    c.v[n] = my_rand();
  }
  for (size_t n = 0; n < nq; n++)
    c.out[n] = -7.0f; /* any stale value would show */
  c.p.batch = B;
  c.p.seq = S;
  c.p.q = c.q;
  c.p.k = c.k;
  c.p.v = c.v;
  c.p.out = c.out;
  return c;
}

static void free_case(Case *c) {
  free(c->q);
  free(c->k);
  free(c->v);
  free(c->out);
}

/* Flat index of element (b, h, i, d) of a tensor with nh heads. */
static size_t at(const Case *c, int64_t nh, int64_t b, int64_t h, int64_t i, int64_t d) {
  if (c->spec.layout == LAYOUT_BSHD)
    return (size_t)(((b * c->S + i) * nh + h) * c->D + d);
  return (size_t)(((b * nh + h) * c->S + i) * c->D + d);
}

typedef bool (*KeyFn)(const void *ctx, int64_t b, int64_t h, int64_t i, int64_t j);

typedef struct {
  int64_t S;
  const bool *allow; /* S x S, shared by every batch and head */
} Mask;

static bool mask_fn(const void *ctx, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  const Mask *m = ctx;
  return m->allow == NULL || m->allow[i * m->S + j];
}

/* One row by the textbook formula: s_j in double, the row maximum, weights
 * e_j = exp(s_j - max), o = (sum e_j v_j) / (sum e_j). q, k, v are the
 * double copies the caller prepared (rounded or quantized as a test needs).
 * Writes e_j / sum into p (if not NULL) and o into out (D values). */
static void naive_row(const Case *c, const double *q, const double *k, const double *v,
                      int64_t b, int64_t h, int64_t i, KeyFn fn, const void *ctx,
                      double *p, double *out) {
  int64_t S = c->S, D = c->D, kvh = h / (c->H / c->KVH);
  double *s = malloc((size_t)S * sizeof(double));
  double m = -HUGE_VAL, z = 0.0;
  for (int64_t j = 0; j < S; j++) {
    s[j] = 0.0;
    for (int64_t d = 0; d < D; d++)
      s[j] += q[at(c, c->H, b, h, i, d)] * k[at(c, c->KVH, b, kvh, j, d)];
    s[j] *= c->spec.scale;
    if (fn(ctx, b, h, i, j) && s[j] > m)
      m = s[j];
  }
  for (int64_t d = 0; d < D; d++)
    out[d] = 0.0;
  for (int64_t j = 0; j < S; j++) {
    double e = fn(ctx, b, h, i, j) ? exp(s[j] - m) : 0.0;
    z += e;
    for (int64_t d = 0; d < D; d++)
      out[d] += e * v[at(c, c->KVH, b, kvh, j, d)];
    s[j] = e;
  }
  for (int64_t d = 0; d < D; d++)
    out[d] = z > 0 ? out[d] / z : 0.0;
  if (p)
    for (int64_t j = 0; j < S; j++)
      p[j] = z > 0 ? s[j] / z : 0.0;
  free(s);
}

static double *to_double(const float *x, size_t n) {
  double *d = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++)
    d[i] = x[i];
  return d;
}

static size_t nq_of(const Case *c) { return (size_t)(c->B * c->H * c->S * c->D); }
static size_t nk_of(const Case *c) { return (size_t)(c->B * c->KVH * c->S * c->D); }

static bool close_to(double got, double want, double tol) {
  return isfinite(got) && fabs(got - want) <= tol * (1.0 + fabs(want));
}

/* Largest output deviation from the naive formula on the case's own inputs,
 * restricted by `fn`; +inf if any output is not finite. */
static double naive_error(const Case *c, KeyFn fn, const void *ctx) {
  double *q = to_double(c->q, nq_of(c)), *k = to_double(c->k, nk_of(c)),
         *v = to_double(c->v, nk_of(c)), *o = malloc((size_t)c->D * sizeof(double));
  double err = 0.0;
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t h = 0; h < c->H; h++)
      for (int64_t i = 0; i < c->S; i++) {
        naive_row(c, q, k, v, b, h, i, fn, ctx, NULL, o);
        for (int64_t d = 0; d < c->D; d++) {
          double got = c->out[at(c, c->H, b, h, i, d)];
          err = isfinite(got) ? fmax(err, fabs(got - o[d])) : INFINITY;
        }
      }
  free(q), free(k), free(v), free(o);
  return err;
}

/* Runs the reference and compares against the naive formula with `allow`
 * (NULL = dense); also checks the kept fraction against the mask. */
static void expect_masked(Case *c, const bool *allow) {
  double frac = -1.0;
  CHECK(sa_reference(&c->spec, &c->p, &frac) == SA_OK);
  Mask m = {c->S, allow};
  CHECK(naive_error(c, mask_fn, &m) < 1e-6);
  int64_t n = 0;
  for (int64_t x = 0; x < c->S * c->S; x++)
    n += allow ? allow[x] : 1;
  CHECK(fabs(frac - (double)n / (double)(c->S * c->S)) < 1e-12);
}

/* Number of (i, j) where sa_static_allowed disagrees with `allow`. */
static int pattern_mismatches(const SaSpec *s, int64_t S, const bool *allow) {
  int bad = 0;
  for (int64_t i = 0; i < S; i++)
    for (int64_t j = 0; j < S; j++)
      bad += sa_static_allowed(s, S, i, j) != allow[i * S + j];
  return bad;
}

/* True when row i of the static pattern is exactly the listed keys. */
static bool row_is(const SaSpec *s, int64_t S, int64_t i, const int64_t *keys, int n) {
  for (int64_t j = 0; j < S; j++) {
    bool listed = false;
    for (int x = 0; x < n; x++)
      listed = listed || keys[x] == j;
    if (sa_static_allowed(s, S, i, j) != listed)
      return false;
  }
  return true;
}
#define ROW_IS(s, S, i, ...) \
  row_is((s), (S), (i), (const int64_t[]){__VA_ARGS__}, \
         (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

static bool row_is_zero(const Case *c, int64_t b, int64_t h, int64_t i) {
  for (int64_t d = 0; d < c->D; d++)
    if (c->out[at(c, c->H, b, h, i, d)] != 0.0f)
      return false;
  return true;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */

static void test_basics(void) {
  g_case = "basics";
  uint64_t st = 0;
  CHECK(sa_splitmix64(&st) == 0xE220A8397B1DCDAFu);
  st = 1234567;
  CHECK(sa_splitmix64(&st) == 6457827717110365317u);
  CHECK(sa_splitmix64(&st) == 3203168211198807973u);
  uint64_t a = 99, b = 99;
  bool same = true;
  for (int n = 0; n < 100; n++)
    same = same && sa_splitmix64(&a) == my_splitmix(&b);
  CHECK(same);

  CHECK(strcmp(sa_status_name(SA_OK), "ok") == 0);
  CHECK(strcmp(sa_status_name(SA_ERR_SHAPE), "shape mismatch") == 0);
  CHECK(strcmp(sa_status_name((SaStatus)99), "unknown status") == 0);
  CHECK(strcmp(sa_dtype_name(DT_BF16), "bf16") == 0);
  CHECK(sa_dtype_bits(DT_FP8E4M3) == 8 && sa_dtype_bits(DT_INT4) == 4);
  CHECK(sa_dtype_is_float(DT_FP8E5M2) && !sa_dtype_is_float(DT_INT8));
}

static void test_rounding(void) {
  g_case = "rounding";
  CHECK(sa_round_to_dtype(0.1f, DT_FP32) == 0.1f);
  CHECK(sa_round_to_dtype(3.7f, DT_INT8) == 3.7f);
  /* fp16: ties to even, overflow to inf, subnormals. */
  CHECK(sa_round_to_dtype(1.0f + 0x1p-11f, DT_FP16) == 1.0f);
  CHECK(sa_round_to_dtype(1.0f + 3 * 0x1p-11f, DT_FP16) == 1.0f + 0x1p-9f);
  CHECK(sa_round_to_dtype(65519.0f, DT_FP16) == 65504.0f);
  CHECK(isinf(sa_round_to_dtype(65520.0f, DT_FP16)));
  CHECK(sa_round_to_dtype(-65520.0f, DT_FP16) == -INFINITY);
  CHECK(sa_round_to_dtype(0x1p-24f, DT_FP16) == 0x1p-24f);
  CHECK(sa_round_to_dtype(0x1p-25f, DT_FP16) == 0.0f);
  CHECK(sa_round_to_dtype(3 * 0x1p-26f, DT_FP16) == 0x1p-24f);
  CHECK(signbit(sa_round_to_dtype(-0x1p-30f, DT_FP16)));
  CHECK(isnan(sa_round_to_dtype(NAN, DT_FP16)));
  /* fp8e4m3: no inf, saturates at 448. */
  CHECK(sa_round_to_dtype(1000.0f, DT_FP8E4M3) == 448.0f);
  CHECK(sa_round_to_dtype(-INFINITY, DT_FP8E4M3) == -448.0f);
  CHECK(sa_round_to_dtype(464.0f, DT_FP8E4M3) == 448.0f);
  CHECK(sa_round_to_dtype(0.3f, DT_FP8E4M3) == 0.3125f);
  CHECK(sa_round_to_dtype(0x1p-9f, DT_FP8E4M3) == 0x1p-9f);
  CHECK(sa_round_to_dtype(0x1p-10f, DT_FP8E4M3) == 0.0f);
  CHECK(isnan(sa_round_to_dtype(NAN, DT_FP8E4M3)));
  /* fp8e5m2: IEEE-like. */
  CHECK(sa_round_to_dtype(57344.0f, DT_FP8E5M2) == 57344.0f);
  CHECK(sa_round_to_dtype(60000.0f, DT_FP8E5M2) == 57344.0f);
  CHECK(isinf(sa_round_to_dtype(61440.0f, DT_FP8E5M2)));
  CHECK(sa_round_to_dtype(1.2f, DT_FP8E5M2) == 1.25f);
  /* bf16 against the bit trick over many magnitudes. */
  int bad = 0;
  for (int n = 0; n < 20000; n++) {
    float x = ldexpf(my_rand(), (n % 260) - 130);
    bad += sa_round_to_dtype(x, DT_BF16) != my_bf16(x);
  }
  CHECK(bad == 0);
  CHECK(isinf(sa_round_to_dtype(3.4e38f, DT_BF16)));
}

static void test_dense(void) {
  g_case = "dense";
  for (int layout = 0; layout < 2; layout++) {
    Case c = make_case(2, 2, 2, 5, 4);
    c.spec.layout = layout ? LAYOUT_BSHD : LAYOUT_BHSD;
    expect_masked(&c, NULL);
    free_case(&c);
  }
  /* A spec with dynamic batch and seq takes the run-time values. */
  Case c = make_case(2, 1, 1, 3, 2);
  c.spec.batch = c.spec.seq = SA_DYNAMIC;
  expect_masked(&c, NULL);
  free_case(&c);
}

static void test_causal(void) {
  g_case = "causal seq 1";
  Case c = make_case(1, 1, 1, 1, 3);
  c.spec.causal = true;
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(memcmp(c.out, c.v, 3 * sizeof(float)) == 0 && frac == 1.0);
  free_case(&c);

  g_case = "causal seq 7";
  c = make_case(2, 2, 1, 7, 4);
  c.spec.causal = true;
  bool allow[49];
  for (int i = 0; i < 7; i++)
    for (int j = 0; j < 7; j++)
      allow[i * 7 + j] = j <= i;
  CHECK(pattern_mismatches(&c.spec, 7, allow) == 0);
  expect_masked(&c, allow); /* kept fraction 28/49 */
  free_case(&c);
}

static void test_window(void) {
  g_case = "window dilation";
  Case c = make_case(1, 1, 1, 9, 2);
  c.spec.has_window = true;
  c.spec.window = 5, c.spec.dilation = 2; /* reach 2 steps of 2 */
  CHECK(ROW_IS(&c.spec, 9, 0, 0, 2, 4));
  CHECK(ROW_IS(&c.spec, 9, 1, 1, 3, 5));
  CHECK(ROW_IS(&c.spec, 9, 4, 0, 2, 4, 6, 8));
  CHECK(ROW_IS(&c.spec, 9, 8, 4, 6, 8));
  CHECK(!sa_static_allowed(&c.spec, 9, 0, 9) && !sa_static_allowed(&c.spec, 9, -1, 0));
  bool allow[81];
  for (int i = 0; i < 9; i++)
    for (int j = 0; j < 9; j++)
      allow[i * 9 + j] = abs(i - j) <= 4 && (i - j) % 2 == 0;
  CHECK(pattern_mismatches(&c.spec, 9, allow) == 0);
  expect_masked(&c, allow);
  c.spec.window = 4, c.spec.dilation = 1; /* even width: floor(4/2) = 2 */
  CHECK(ROW_IS(&c.spec, 9, 0, 0, 1, 2));
  CHECK(ROW_IS(&c.spec, 9, 8, 6, 7, 8));
  c.spec.causal = true;
  CHECK(ROW_IS(&c.spec, 9, 5, 3, 4, 5));
  free_case(&c);
}

static void test_global(void) {
  g_case = "global";
  const int64_t globals[] = {0, 5, 9}; /* 9 >= seq: ignored */
  Case c = make_case(1, 2, 2, 6, 3);
  c.spec.has_window = true;
  c.spec.window = 1, c.spec.dilation = 1; /* the diagonal only */
  c.spec.n_global = 3, c.spec.global = globals;
  bool allow[36];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++)
      allow[i * 6 + j] = i == j || i == 0 || i == 5 || j == 0 || j == 5;
  CHECK(pattern_mismatches(&c.spec, 6, allow) == 0);
  expect_masked(&c, allow);
  c.spec.causal = true;
  CHECK(ROW_IS(&c.spec, 6, 0, 0));
  CHECK(ROW_IS(&c.spec, 6, 3, 0, 3));
  CHECK(ROW_IS(&c.spec, 6, 5, 0, 1, 2, 3, 4, 5));
  /* Without a local term L is true: globals add nothing. */
  c.spec.causal = false, c.spec.has_window = false;
  expect_masked(&c, NULL);
  free_case(&c);
}

static bool img_pos(int64_t t, int64_t *r, int64_t *col) {
  t -= 2; /* image of 3 x 4 at offset 2 */
  if (t < 0 || t >= 12)
    return false;
  *r = t / 4, *col = t % 4;
  return true;
}

static void test_window2d(void) {
  g_case = "window2d";
  Case c = make_case(1, 1, 1, 16, 2);
  c.spec.has_window2d = true;
  c.spec.image_h = 3, c.spec.image_w = 4, c.spec.image_offset = 2;
  c.spec.win_h = 3, c.spec.win_w = 3;
  CHECK(ROW_IS(&c.spec, 16, 2, 2, 3, 6, 7));
  CHECK(ROW_IS(&c.spec, 16, 7, 2, 3, 4, 6, 7, 8, 10, 11, 12));
  CHECK(ROW_IS(&c.spec, 16, 13, 8, 9, 12, 13));
  bool allow[256];
  for (int64_t i = 0; i < 16; i++)
    for (int64_t j = 0; j < 16; j++) {
      int64_t ri, ci, rj, cj;
      allow[i * 16 + j] = img_pos(i, &ri, &ci) && img_pos(j, &rj, &cj) &&
                          llabs(ri - rj) <= 1 && llabs(ci - cj) <= 1;
    }
  CHECK(pattern_mismatches(&c.spec, 16, allow) == 0);
  expect_masked(&c, allow);
  /* Text tokens before and after the image see nothing: zero rows. */
  CHECK(row_is_zero(&c, 0, 0, 0) && row_is_zero(&c, 0, 0, 1) && row_is_zero(&c, 0, 0, 15));
  c.spec.win_h = 1;
  CHECK(ROW_IS(&c.spec, 16, 7, 6, 7, 8));
  free_case(&c);
}

static void test_block_pairs(void) {
  g_case = "block pairs";
  const SaBlockPair pairs[] = {{0, 0}, {1, 0}, {2, 2}};
  Case c = make_case(1, 1, 1, 6, 2);
  c.spec.block = 2, c.spec.n_block_pairs = 3, c.spec.block_pairs = pairs;
  bool allow[36];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++)
      allow[i * 6 + j] = (i < 4 && j < 2) || (i >= 4 && j >= 4);
  CHECK(pattern_mismatches(&c.spec, 6, allow) == 0);
  expect_masked(&c, allow);
  /* A partial last block: seq 5 leaves token 4 alone in block 2. */
  CHECK(ROW_IS(&c.spec, 5, 4, 4));
  CHECK(ROW_IS(&c.spec, 5, 3, 0, 1));
  free_case(&c);
}

static void bigbird_expected(uint64_t seed, bool *allow) {
  const int64_t S = 30, blk = 4, nb = 8; /* ceil(30 / 4) */
  for (int64_t i = 0; i < S; i++)
    for (int64_t j = 0; j < S; j++) {
      int64_t qb = i / blk, kb = j / blk;
      bool ok = llabs(qb - kb) <= 1 || qb < 1 || kb < 1;
      for (uint64_t r = 0; r < 2; r++) {
        uint64_t x = seed ^ ((uint64_t)qb * 0x9E3779B97F4A7C15u) ^ (r * 0xBF58476D1CE4E5B9u + 1);
        ok = ok || my_splitmix(&x) % nb == (uint64_t)kb;
      }
      allow[i * S + j] = ok;
    }
}

static void test_bigbird(void) {
  g_case = "bigbird";
  Case c = make_case(1, 2, 1, 30, 4);
  c.spec.has_bigbird = true;
  c.spec.block = 4, c.spec.bb_window = 3, c.spec.bb_random = 2, c.spec.bb_global = 1;
  c.spec.bb_seed = 42;
  bool allow[900], other[900];
  bigbird_expected(42, allow);
  bigbird_expected(43, other);
  CHECK(pattern_mismatches(&c.spec, 30, allow) == 0);
  CHECK(memcmp(allow, other, sizeof allow) != 0); /* the seed matters */
  expect_masked(&c, allow);
  float *first = malloc(nq_of(&c) * sizeof(float));
  memcpy(first, c.out, nq_of(&c) * sizeof(float));
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  CHECK(memcmp(first, c.out, nq_of(&c) * sizeof(float)) == 0);
  c.spec.bb_seed = 43;
  CHECK(pattern_mismatches(&c.spec, 30, other) == 0);
  free(first);
  free_case(&c);
}

/* Keys of a hand-written per-row list; -1 ends a row. */
typedef struct {
  int64_t S;
  const int64_t (*rows)[8];
} RowKeys;

static bool rowkeys_fn(const void *ctx, int64_t b, int64_t h, int64_t i, int64_t j) {
  (void)b, (void)h;
  const RowKeys *r = ctx;
  for (int x = 0; x < 8 && r->rows[i][x] >= 0; x++)
    if (r->rows[i][x] == j)
      return true;
  return false;
}

static void test_nm(void) {
  g_case = "N:M 2:4";
  Case c = make_case(1, 1, 1, 7, 1);
  const float keys[7] = {1, 1, 1, 0.5f, 2, 3, 2}; /* ties in group 0 and the tail */
  for (int j = 0; j < 7; j++)
    c.k[j] = keys[j], c.q[j] = 1.0f;
  c.spec.scale = 1.0;
  c.spec.nm_n = 2, c.spec.nm_m = 4;
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  static const int64_t dense[7][8] = {
      {0, 1, 4, 5, -1}, {0, 1, 4, 5, -1}, {0, 1, 4, 5, -1}, {0, 1, 4, 5, -1},
      {0, 1, 4, 5, -1}, {0, 1, 4, 5, -1}, {0, 1, 4, 5, -1}};
  RowKeys rk = {7, dense};
  CHECK(naive_error(&c, rowkeys_fn, &rk) < 1e-6);
  CHECK(fabs(frac - 28.0 / 49.0) < 1e-12);

  /* Causal first: fewer candidates than N in a group keeps them all. */
  c.spec.causal = true;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  static const int64_t causal[7][8] = {
      {0, -1}, {0, 1, -1}, {0, 1, -1}, {0, 1, -1}, {0, 1, 4, -1}, {0, 1, 4, 5, -1},
      {0, 1, 4, 5, -1}};
  rk.rows = causal;
  CHECK(naive_error(&c, rowkeys_fn, &rk) < 1e-6);
  CHECK(fabs(frac - 18.0 / 49.0) < 1e-12);
  free_case(&c);
}

static void test_masked_row_and_extremes(void) {
  g_case = "fully masked row";
  const SaBlockPair pairs[] = {{0, 0}};
  Case c = make_case(1, 1, 1, 4, 2);
  c.spec.block = 2, c.spec.n_block_pairs = 1, c.spec.block_pairs = pairs;
  c.v[3 * 2] = INFINITY; /* a masked key's value must not leak in */
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(row_is_zero(&c, 0, 0, 2) && row_is_zero(&c, 0, 0, 3));
  bool finite = true;
  for (int n = 0; n < 8; n++)
    finite = finite && isfinite(c.out[n]);
  CHECK(finite && frac == 4.0 / 16.0);
  free_case(&c);

  g_case = "logits +-1e4";
  c = make_case(1, 1, 1, 3, 1);
  c.spec.scale = 1.0;
  const float qs[3] = {100, -100, 0}, ks[3] = {100, -100, 99};
  for (int j = 0; j < 3; j++)
    c.q[j] = qs[j], c.k[j] = ks[j];
  float tin[3] = {0, 0, 0}, tout[3];
  c.p.token_importance_in = tin, c.p.token_importance_out = tout;
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  finite = true;
  for (int n = 0; n < 3; n++)
    finite = finite && isfinite(c.out[n]) && isfinite(tout[n]);
  CHECK(finite);
  CHECK(c.out[0] == c.v[0]); /* s = 1e4 beats 9900 by 100: weight exactly 1 in float */
  CHECK(c.out[1] == c.v[1]); /* row 1: s = -1e4, +1e4, -9900 */
  CHECK(close_to(c.out[2], (c.v[0] + c.v[1] + c.v[2]) / 3.0, 1e-6)); /* all scores 0 */
  CHECK(close_to(tout[0] + tout[1] + tout[2], 3.0, 1e-6));
  free_case(&c);
}

static void test_filter(void) {
  g_case = "filter quantized ties";
  /* q = (1, 0); k_j = (x_j, 4). At 2 bits each K row quantizes on a step of
   * 4: x = 1, 2, 3, 4 become 0, 4, 4, 4 (2/4 = 0.5 rounds away from zero),
   * so the top two by approximate score are keys 1 and 2 (ties -> lower
   * index), not the exact top two, 2 and 3. */
  Case c = make_case(1, 1, 1, 4, 2);
  for (int j = 0; j < 4; j++) {
    c.q[j * 2] = 1, c.q[j * 2 + 1] = 0;
    c.k[j * 2] = (float)(j + 1), c.k[j * 2 + 1] = 4;
  }
  c.spec.n_filter_rounds = 1;
  c.spec.filter[0] = (SaFilterRound){2, 2, {KEEP_TOP_COUNT, 2}};
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  static const int64_t r12[4][8] = {{1, 2, -1}, {1, 2, -1}, {1, 2, -1}, {1, 2, -1}};
  RowKeys rk = {4, r12};
  CHECK(naive_error(&c, rowkeys_fn, &rk) < 1e-6);
  CHECK(frac == 0.5);
  free_case(&c);

  g_case = "filter ratio then mean";
  /* k_j = (j + 1, 0): quantization keeps the order. Round 1 keeps
   * ceil(0.5 * 8) = 4 keys, 4..7 (values ~5..8, mean ~6.5, max ~8, min ~5).
   * Round 2's threshold picks by alpha. */
  c = make_case(1, 1, 1, 8, 2);
  for (int j = 0; j < 8; j++) {
    c.q[j * 2] = 1, c.q[j * 2 + 1] = 0;
    c.k[j * 2] = (float)(j + 1), c.k[j * 2 + 1] = 0;
  }
  c.spec.n_filter_rounds = 2;
  c.spec.filter[0] = (SaFilterRound){8, 8, {KEEP_TOP_RATIO, 0.5}};
  const struct {
    double alpha;
    int64_t keys[8];
  } rounds[] = {{1.0, {7, -1}}, {0.5, {7, -1}}, {0.0, {6, 7, -1}}, {-0.5, {5, 6, 7, -1}},
                {-1.0, {4, 5, 6, 7, -1}}};
  for (size_t n = 0; n < sizeof rounds / sizeof rounds[0]; n++) {
    c.spec.filter[1] = (SaFilterRound){8, 8, {KEEP_MEAN, rounds[n].alpha}};
    CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
    int64_t rows[8][8];
    for (int i = 0; i < 8; i++)
      memcpy(rows[i], rounds[n].keys, sizeof rows[i]);
    RowKeys r = {8, (const int64_t(*)[8])rows};
    CHECK(naive_error(&c, rowkeys_fn, &r) < 1e-6);
  }
  free_case(&c);

  g_case = "filter mean of equal values";
  /* Three equal scores of 0.1: their double mean is 0.10000000000000002,
   * above each of them. The threshold never exceeds the maximum, so all
   * three stay and the output is the plain average of V. */
  c = make_case(1, 1, 1, 3, 2);
  for (int j = 0; j < 3; j++) {
    c.q[j * 2] = 1, c.q[j * 2 + 1] = 0;
    c.k[j * 2] = 1, c.k[j * 2 + 1] = 0;
  }
  c.spec.scale = 0.1;
  c.spec.n_filter_rounds = 1;
  c.spec.filter[0] = (SaFilterRound){8, 8, {KEEP_MEAN, 0.0}};
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(frac == 1.0);
  CHECK(close_to(c.out[0], (c.v[0] + c.v[2] + c.v[4]) / 3.0, 1e-6));
  free_case(&c);
}

/* What DSA keeps with keep = top 1: the argmax of the approximate scores,
 * rebuilt here from the seed. */
static int64_t dsa_argmax(const Case *c, int64_t i, int pd, int bits, uint64_t seed) {
  int64_t D = c->D, S = c->S;
  double proj[4][3], qt[3], kt[3], raw[3];
  uint64_t st = seed;
  for (int d = 0; d < D; d++)
    for (int x = 0; x < pd; x++)
      proj[d][x] = (my_splitmix(&st) & 1 ? 1.0 : -1.0) / sqrt((double)pd);
  for (int x = 0; x < pd; x++) {
    raw[x] = 0;
    for (int d = 0; d < D; d++)
      raw[x] += (double)c->q[i * D + d] * proj[d][x];
  }
  my_quant(raw, pd, bits, qt);
  int64_t best = -1;
  double best_a = -HUGE_VAL;
  for (int64_t j = 0; j < S; j++) {
    for (int x = 0; x < pd; x++) {
      raw[x] = 0;
      for (int d = 0; d < D; d++)
        raw[x] += (double)c->k[j * D + d] * proj[d][x];
    }
    my_quant(raw, pd, bits, kt);
    double a = 0;
    for (int x = 0; x < pd; x++)
      a += qt[x] * kt[x];
    a *= c->spec.scale;
    if (a > best_a)
      best_a = a, best = j;
  }
  return best;
}

static void test_dsa(void) {
  g_case = "dsa predict";
  Case c = make_case(1, 1, 1, 6, 4);
  c.spec.has_predict = true;
  c.spec.predict_dim = 3, c.spec.predict_bits = 4, c.spec.predict_seed = 2024;
  c.spec.predict_keep = (SaKeep){KEEP_TOP_COUNT, 1};
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  bool exact = true;
  for (int64_t i = 0; i < 6; i++) {
    int64_t j = dsa_argmax(&c, i, 3, 4, 2024);
    exact = exact && memcmp(c.out + i * 4, c.v + j * 4, 4 * sizeof(float)) == 0;
  }
  CHECK(exact); /* one survivor: the output is that value row, exactly */
  CHECK(frac == 6.0 / 36.0);
  float first[24];
  memcpy(first, c.out, sizeof first);
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  CHECK(memcmp(first, c.out, sizeof first) == 0);
  free_case(&c);
}

/* The CUDA selection kernels' contract (runtime/cuda/cuda.c): stages, the
 * list bound and the workspace size, by hand from docs/cuda.md's layout.
 * ptxsim runs the kernels on a workspace of exactly this layout
 * (test/cuda/sim-select.test), so the runtime's size and the kernels'
 * offsets cannot drift apart unnoticed. */
static void test_cuda_contract(void) {
  g_case = "cuda selection contract";
  SaSpec s = base_spec(1, 4, 2, SA_DYNAMIC, 64);
  SaCudaKernel k;
  sa_cuda_describe(&s, &k);
  CHECK(k.select_rounds == 0 && k.query_tile == 64 && sa_cuda_workspace_bytes(&k, 2, 77) == 0);
  s.has_predict = true;
  s.predict_dim = 16, s.predict_bits = 4, s.predict_seed = 1;
  s.predict_keep = (SaKeep){KEEP_TOP_RATIO, 0.1};
  s.n_filter_rounds = 2;
  s.filter[0] = (SaFilterRound){8, 8, {KEEP_TOP_RATIO, 1.0}}; /* keeps everything: no stage */
  s.filter[1] = (SaFilterRound){4, 2, {KEEP_MEAN, 0.0}};
  int st[SA_MAX_FILTER_ROUNDS + 1];
  CHECK(sa_cuda_select_stages(&s, st) == 2 && st[0] == -1 && st[1] == 1);
  sa_cuda_describe(&s, &k);
  CHECK(k.select_rounds == 2 && k.grid_bytes == 16 + 64 && k.query_tile == 4 && k.list_ratio == 0.1);
  /* per batch at seq 77: steps 8*77*6*2 = 7392, lengths 4*4*77 = 1232
   * (8624, a multiple of 16), grids 77*6*80 = 36960, lists of ceil(7.7) =
   * 8 and 32 entries of slack: 4*4*77*40 = 49280; 94864 rounded up to 256:
   * 94976 */
  CHECK(sa_cuda_workspace_bytes(&k, 2, 77) == 2 * 94976);
  s.predict_keep = (SaKeep){KEEP_TOP_COUNT, 5};
  sa_cuda_describe(&s, &k);
  /* a count above seq: lists of seq entries; 288 + 48 + 1440 + 144 = 1920,
   * rounded up to 2048 */
  CHECK(k.list_count == 5 && sa_cuda_workspace_bytes(&k, 1, 3) == 2048);
  /* a shape beyond any memory: SIZE_MAX, not a wrapped product */
  CHECK(sa_cuda_workspace_bytes(&k, INT64_C(1) << 30, INT64_C(1) << 30) == SIZE_MAX);

  /* SpAtten's kernels (test/cuda/sim-prune.test runs them on this layout) */
  g_case = "cuda pruning contract";
  s = base_spec(1, 4, 2, SA_DYNAMIC, 64);
  s.token_keep = 0.5;
  sa_cuda_describe(&s, &k);
  /* a warp per row: 4 query rows of 64 f32 and 4 stashes of 2048 f64; sums 9 * 77 + 9 * 4 = 729
   * bytes, 736 at 16, 768 at 256 */
  CHECK(k.pruning == 1 && k.progressive == 0 && k.select_rounds == 0 && k.query_tile == 4);
  CHECK(k.shared_bytes == 1024 + 65536 && sa_cuda_workspace_bytes(&k, 2, 77) == 2 * 768);
  s.value_keep = 0.3;
  s.has_progressive = true, s.msb_bits = 6, s.lsb_bits = 4, s.requant_threshold = 0.05;
  sa_cuda_describe(&s, &k);
  /* value pruning's histograms (4 KiB); K's steps and grids 77 * 2 * (16
   * + 4 * 64) = 41888: 42624, 42752 at 256 */
  CHECK(k.pruning == 1 && k.progressive == 1 && k.shared_bytes == 1024 + 4096 + 65536);
  CHECK(sa_cuda_workspace_bytes(&k, 2, 77) == 2 * 42752);
  CHECK(sa_cuda_workspace_bytes(&k, INT64_C(1) << 30, INT64_C(1) << 30) == SIZE_MAX);
  /* after DSA (top 10%): each batch's block is the selection's part
   * (steps 8*77*6 = 3696, lengths 4*4*77 = 1232: 4928; grids 77*6*16 =
   * 7392: 12320; lists 4*4*77*40 = 49280: 61600, 61696 at 256), then the
   * pruning's (42752) */
  s.has_predict = true;
  s.predict_dim = 16, s.predict_bits = 4, s.predict_seed = 1;
  s.predict_keep = (SaKeep){KEEP_TOP_RATIO, 0.1};
  sa_cuda_describe(&s, &k);
  CHECK(k.select_rounds == 1 && k.pruning == 1 && k.progressive == 1 && k.shared_bytes == 1024 + 4096 + 65536);
  CHECK(sa_cuda_workspace_bytes(&k, 2, 77) == 2 * (61696 + 42752));
  /* N:M after the selection, no pruning: the same exact-score kernels */
  s.token_keep = s.value_keep = 1.0;
  s.has_progressive = false;
  s.nm_n = 1, s.nm_m = 2;
  sa_cuda_describe(&s, &k);
  CHECK(k.select_rounds == 1 && k.pruning == 1 && k.progressive == 0 && k.shared_bytes == 1024 + 65536);
  /* N:M alone stays on the tiles (the flash kernel) */
  s.has_predict = false;
  sa_cuda_describe(&s, &k);
  CHECK(k.select_rounds == 0 && k.pruning == 0 && k.query_tile == 64);
  /* groups past the flash kernel's 8-key blocks (M not dividing 8): the row kernel */
  s.nm_n = 3, s.nm_m = 7;
  sa_cuda_describe(&s, &k);
  CHECK(k.select_rounds == 0 && k.pruning == 1 && k.progressive == 0 && k.query_tile == 4);
  s.nm_n = 4, s.nm_m = 16;
  sa_cuda_describe(&s, &k);
  CHECK(k.pruning == 1 && k.shared_bytes == 1024 + 65536);
}

static void test_token_pruning(void) {
  g_case = "token pruning";
  Case c = make_case(1, 2, 2, 4, 3);
  c.spec.token_keep = 0.5;
  float in[4] = {0.3f, -INFINITY, 0.9f, 0.1f}, out[4];
  c.p.token_importance_in = in, c.p.token_importance_out = out;
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  /* Alive: 0, 2, 3; keep ceil(0.5 * 4) = 2 of them: 2 and 0. */
  bool allow[16];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      allow[i * 4 + j] = (i == 0 || i == 2) && (j == 0 || j == 2);
  double *q = to_double(c.q, nq_of(&c)), *k = to_double(c.k, nk_of(&c)),
         *v = to_double(c.v, nk_of(&c));
  Mask m = {4, allow};
  double want[4] = {0.3, 0, 0.9, 0}, p[4], o[3], err = 0;
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < 4; i += 2) {
      naive_row(&c, q, k, v, 0, h, i, mask_fn, &m, p, o);
      for (int j = 0; j < 4; j++)
        want[j] += p[j];
      for (int d = 0; d < 3; d++)
        err = fmax(err, fabs(c.out[at(&c, 2, 0, h, i, d)] - o[d]));
    }
  CHECK(err < 1e-6);
  CHECK(row_is_zero(&c, 0, 0, 1) && row_is_zero(&c, 0, 1, 1));
  CHECK(row_is_zero(&c, 0, 0, 3) && row_is_zero(&c, 0, 1, 3));
  CHECK(out[1] == -INFINITY && out[3] == -INFINITY);
  CHECK(close_to(out[0], want[0], 1e-6) && close_to(out[2], want[2], 1e-6));
  CHECK(close_to((out[0] - 0.3) + (out[2] - 0.9), 4.0, 1e-6)); /* 2 heads x 2 rows */
  CHECK(frac == 8.0 / 32.0);

  /* Ties go to the lower index; NULL input means all zeros. */
  c.p.token_importance_in = NULL;
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  CHECK(isfinite(out[0]) && isfinite(out[1]) && out[2] == -INFINITY && out[3] == -INFINITY);
  CHECK(row_is_zero(&c, 0, 1, 2) && !row_is_zero(&c, 0, 1, 1));

  /* Fewer alive tokens than the ratio asks for: only those stay. */
  float dead[4] = {-INFINITY, -INFINITY, NAN, 5.0f};
  c.p.token_importance_in = dead;
  c.spec.token_keep = 0.75;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(out[0] == -INFINITY && out[1] == -INFINITY && out[2] == -INFINITY);
  CHECK(close_to(out[3], 5.0 + 2.0, 1e-6)); /* row 3 attends only to key 3 */
  CHECK(memcmp(c.out + 3 * 3, c.v + 3 * 3, 3 * sizeof(float)) == 0);
  CHECK(frac == 2.0 / 32.0);

  /* token_keep = 1: no pruning, importance still summed (columns of P). */
  c.spec.token_keep = 1.0;
  c.p.token_importance_in = NULL;
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  CHECK(close_to(out[0] + out[1] + out[2] + out[3], 8.0, 1e-6));
  free(q), free(k), free(v);
  free_case(&c);
}

static void test_head_pruning(void) {
  g_case = "head pruning";
  Case c = make_case(1, 4, 4, 3, 2);
  c.spec.head_keep = 0.5;
  float in[4] = {1, 5, NAN, 3}, out[4];
  c.p.head_importance_in = in, c.p.head_importance_out = out;
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(frac == 0.5);
  CHECK(out[0] == -INFINITY && out[2] == -INFINITY);
  for (int i = 0; i < 3; i++)
    CHECK(row_is_zero(&c, 0, 0, i) && row_is_zero(&c, 0, 2, i));
  double *q = to_double(c.q, nq_of(&c)), *k = to_double(c.k, nk_of(&c)),
         *v = to_double(c.v, nk_of(&c)), o[2], sum[4] = {0}, err = 0;
  Mask dense = {3, NULL};
  for (int h = 1; h < 4; h += 2)
    for (int i = 0; i < 3; i++) {
      naive_row(&c, q, k, v, 0, h, i, mask_fn, &dense, NULL, o);
      for (int d = 0; d < 2; d++) {
        err = fmax(err, fabs(c.out[at(&c, 4, 0, h, i, d)] - o[d]));
        sum[h] += fabs(o[d]);
      }
    }
  CHECK(err < 1e-6);
  CHECK(close_to(out[1], 5 + sum[1], 1e-6) && close_to(out[3], 3 + sum[3], 1e-6));

  /* head_keep = 1 still reports sum |O| for every head; ties in a pruning
   * run go to the lower heads. */
  c.spec.head_keep = 1.0;
  c.p.head_importance_in = NULL;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(frac == 1.0 && close_to(out[1], sum[1], 1e-6) && isfinite(out[0]));
  c.spec.head_keep = 0.25;
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  CHECK(isfinite(out[0]) && out[1] == -INFINITY && out[2] == -INFINITY && out[3] == -INFINITY);

  /* Already pruned heads (-inf in) stay pruned even when the ratio asks
   * for more heads than remain. */
  float dead[4] = {-INFINITY, -INFINITY, -INFINITY, 2};
  c.p.head_importance_in = dead;
  c.spec.head_keep = 0.75;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(out[0] == -INFINITY && out[1] == -INFINITY && out[2] == -INFINITY);
  CHECK(close_to(out[3], 2 + sum[3], 1e-6) && frac == 0.25);
  for (int i = 0; i < 3; i++)
    CHECK(row_is_zero(&c, 0, 0, i) && !row_is_zero(&c, 0, 3, i));
  free(q), free(k), free(v);
  free_case(&c);
}

static void test_value_pruning(void) {
  g_case = "value pruning";
  Case c = make_case(1, 1, 1, 4, 2);
  c.spec.value_keep = 0.5;
  float tout[4];
  c.p.token_importance_out = tout;
  double frac;
  CHECK(sa_reference(&c.spec, &c.p, &frac) == SA_OK);
  CHECK(frac == 1.0); /* counted before value pruning */
  double *q = to_double(c.q, 8), *k = to_double(c.k, 8), *v = to_double(c.v, 8), p[4], o[2];
  Mask dense = {4, NULL};
  double err = 0;
  for (int i = 0; i < 4; i++) {
    naive_row(&c, q, k, v, 0, 0, i, mask_fn, &dense, p, o);
    /* Keep the two largest (ties to the lower index), no renormalisation. */
    int first = 0, second = -1;
    for (int j = 1; j < 4; j++)
      if (p[j] > p[first])
        first = j;
    for (int j = 0; j < 4; j++)
      if (j != first && (second < 0 || p[j] > p[second]))
        second = j;
    for (int d = 0; d < 2; d++)
      err = fmax(err, fabs(c.out[i * 2 + d] - (p[first] * v[first * 2 + d] +
                                                  p[second] * v[second * 2 + d])));
  }
  CHECK(err < 1e-6);
  /* Importance sums the probabilities before pruning: 4 rows of 1. */
  CHECK(close_to(tout[0] + tout[1] + tout[2] + tout[3], 4.0, 1e-6));

  /* All scores equal: every p is 1/4; keys 0 and 1 win the tie. */
  memset(c.q, 0, 8 * sizeof(float));
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  CHECK(close_to(c.out[0], 0.25 * (c.v[0] + c.v[2]), 1e-7));
  CHECK(close_to(c.out[7], 0.25 * (c.v[1] + c.v[3]), 1e-7));
  free(q), free(k), free(v);
  free_case(&c);
}

static void test_progressive(void) {
  g_case = "progressive quantization";
  Case c = make_case(1, 1, 1, 6, 4);
  for (int n = 0; n < 24; n++)
    c.q[n] *= 3.0f; /* sharper rows so the row maxima spread out */
  c.spec.has_progressive = true;
  c.spec.msb_bits = 2, c.spec.lsb_bits = 6;
  double *q = to_double(c.q, 24), *v = to_double(c.v, 24), *k = to_double(c.k, 24);
  double k2[24], k8[24], want2[24], want8[24], pmax2[6], p[6];
  for (int j = 0; j < 6; j++) {
    my_quant(k + j * 4, 4, 2, k2 + j * 4);
    my_quant(k + j * 4, 4, 8, k8 + j * 4);
  }
  Mask dense = {6, NULL};
  for (int i = 0; i < 6; i++) {
    naive_row(&c, q, k2, v, 0, 0, i, mask_fn, &dense, p, want2 + i * 4);
    naive_row(&c, q, k8, v, 0, 0, i, mask_fn, &dense, NULL, want8 + i * 4);
    pmax2[i] = 0;
    for (int j = 0; j < 6; j++)
      pmax2[i] = fmax(pmax2[i], p[j]);
  }
  /* Threshold 0 never recomputes, above 1 always does, and one between two
   * row maxima splits the rows. */
  double lo = 1, hi = 0;
  for (int i = 0; i < 6; i++)
    lo = fmin(lo, pmax2[i]), hi = fmax(hi, pmax2[i]);
  const double thresholds[3] = {0.0, 1.5, (lo + hi) / 2};
  CHECK(hi - lo > 0.05);
  for (int t = 0; t < 3; t++) {
    c.spec.requant_threshold = thresholds[t];
    CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
    double err = 0;
    for (int i = 0; i < 6; i++) {
      const double *want = pmax2[i] < thresholds[t] ? want8 : want2;
      for (int d = 0; d < 4; d++)
        err = fmax(err, fabs(c.out[i * 4 + d] - want[i * 4 + d]));
    }
    CHECK(err < 1e-6);
  }
  double diff = 0;
  for (int n = 0; n < 24; n++)
    diff = fmax(diff, fabs(want2[n] - want8[n]));
  CHECK(diff > 1e-3); /* the two passes really differ */
  free(q), free(k), free(v);
  free_case(&c);
}

static void test_grouped_kv(void) {
  g_case = "grouped kv heads";
  for (int layout = 0; layout < 2; layout++) {
    Case c = make_case(2, 4, 2, 5, 3);
    c.spec.layout = layout ? LAYOUT_BSHD : LAYOUT_BHSD;
    expect_masked(&c, NULL); /* naive_row maps head h to kv head h / 2 */
    /* Heads 0 and 1 share K and V: equal queries give equal outputs. */
    for (int64_t i = 0; i < 5; i++)
      for (int64_t d = 0; d < 3; d++)
        c.q[at(&c, 4, 1, 1, i, d)] = c.q[at(&c, 4, 1, 0, i, d)];
    CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
    bool same = true;
    for (int64_t i = 0; i < 5; i++)
      for (int64_t d = 0; d < 3; d++)
        same = same && c.out[at(&c, 4, 1, 1, i, d)] == c.out[at(&c, 4, 1, 0, i, d)];
    CHECK(same);
    free_case(&c);
  }
}

static void test_storage_and_output(void) {
  g_case = "bf16 storage";
  Case c = make_case(1, 2, 1, 5, 4);
  c.spec.storage = DT_BF16;
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  double *q = to_double(c.q, nq_of(&c)), *k = to_double(c.k, nk_of(&c)),
         *v = to_double(c.v, nk_of(&c)), o[4], err_bf = 0, err_fp = 0;
  double *qr = malloc(nq_of(&c) * sizeof(double)), *kr = malloc(nk_of(&c) * sizeof(double)),
         *vr = malloc(nk_of(&c) * sizeof(double));
  for (size_t n = 0; n < nq_of(&c); n++)
    qr[n] = my_bf16(c.q[n]);
  for (size_t n = 0; n < nk_of(&c); n++)
    kr[n] = my_bf16(c.k[n]), vr[n] = my_bf16(c.v[n]);
  Mask dense = {5, NULL};
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < 5; i++) {
      naive_row(&c, qr, kr, vr, 0, h, i, mask_fn, &dense, NULL, o);
      for (int d = 0; d < 4; d++)
        err_bf = fmax(err_bf, fabs(c.out[at(&c, 2, 0, h, i, d)] - o[d]));
      naive_row(&c, q, k, v, 0, h, i, mask_fn, &dense, NULL, o);
      for (int d = 0; d < 4; d++)
        err_fp = fmax(err_fp, fabs(c.out[at(&c, 2, 0, h, i, d)] - o[d]));
    }
  CHECK(err_bf < 1e-6);
  CHECK(err_fp > 1e-4); /* the rounding is really there */

  g_case = "fp16 output";
  c.spec.storage = DT_FP32;
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  float full[40];
  memcpy(full, c.out, sizeof full);
  c.spec.output = DT_FP16;
  CHECK(sa_reference(&c.spec, &c.p, NULL) == SA_OK);
  bool same = true;
  for (int n = 0; n < 40; n++)
    same = same && c.out[n] == sa_round_to_dtype(full[n], DT_FP16);
  CHECK(same);
  free(q), free(k), free(v), free(qr), free(kr), free(vr);
  free_case(&c);
}

static void test_errors(void) {
  g_case = "errors";
  Case c = make_case(2, 2, 1, 3, 2);
  CHECK(sa_reference(NULL, &c.p, NULL) == SA_ERR_INVALID_ARGUMENT);
  CHECK(sa_reference(&c.spec, NULL, NULL) == SA_ERR_INVALID_ARGUMENT);
  SaProblem p = c.p;
  p.v = NULL;
  CHECK(sa_reference(&c.spec, &p, NULL) == SA_ERR_INVALID_ARGUMENT);
  p = c.p;
  p.seq = 0;
  CHECK(sa_reference(&c.spec, &p, NULL) == SA_ERR_INVALID_ARGUMENT);
  p.seq = 4;
  CHECK(sa_reference(&c.spec, &p, NULL) == SA_ERR_SHAPE);
  p = c.p;
  p.batch = 1;
  CHECK(sa_reference(&c.spec, &p, NULL) == SA_ERR_SHAPE);

  SaSpec s = c.spec;
  s.kv_heads = 3;
  CHECK(sa_reference(&s, &c.p, NULL) == SA_ERR_INVALID_ARGUMENT);
  s = c.spec;
  s.batch = s.seq = SA_DYNAMIC;
  p = c.p;
  p.batch = INT64_C(1) << 40, p.seq = INT64_C(1) << 30; /* B*H*S*D overflows */
  CHECK(sa_reference(&s, &p, NULL) == SA_ERR_SHAPE);

  /* A rejected call leaves the outputs alone. */
  s = c.spec;
  s.value_keep = 0.0;
  float before[24];
  memcpy(before, c.out, sizeof before);
  double frac = -3.0;
  CHECK(sa_reference(&s, &c.p, &frac) == SA_ERR_INVALID_ARGUMENT);
  CHECK(memcmp(before, c.out, sizeof before) == 0 && frac == -3.0);
  s = c.spec;
  s.nm_n = 5, s.nm_m = 4;
  CHECK(sa_reference(&s, &c.p, NULL) == SA_ERR_INVALID_ARGUMENT);
  s = c.spec;
  s.has_window = true, s.window = 3, s.dilation = 0;
  CHECK(sa_reference(&s, &c.p, NULL) == SA_ERR_INVALID_ARGUMENT);
  CHECK(!sa_static_allowed(&s, 3, 0, 0));
  s = c.spec;
  s.n_filter_rounds = 1;
  s.filter[0] = (SaFilterRound){1, 8, {KEEP_ALL, 0}};
  CHECK(sa_reference(&s, &c.p, NULL) == SA_ERR_INVALID_ARGUMENT);
  free_case(&c);
}

int main(void) {
  test_basics();
  test_rounding();
  test_dense();
  test_causal();
  test_window();
  test_global();
  test_window2d();
  test_block_pairs();
  test_bigbird();
  test_nm();
  test_masked_row_and_extremes();
  test_filter();
  test_dsa();
  test_cuda_contract();
  test_token_pruning();
  test_head_pruning();
  test_value_pruning();
  test_progressive();
  test_grouped_kv();
  test_storage_and_output();
  test_errors();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed != 0;
}
