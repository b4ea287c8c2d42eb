/* The reference implementation of docs/semantics.md.
 *
 * Deliberately naive: every score in double, one query row at a time, each
 * stage a separate loop over the row in the order the document gives. Speed
 * does not matter here; being easy to check against the document does. */
#include "sattn/reference.h"
#include "ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Quantization widths beyond this would lose the integer grid in double. */
#define REF_MAX_QUANT_BITS 32
/* Filter rounds and DSA prediction multiply grids: (2^15)^2 * head_dim
 * stays below 2^53 for any head_dim under 2^23. */
#define REF_MAX_GRID_BITS 16

/* ------------------------------------------------------------------ */
/* PRNG and rounding                                                  */

uint64_t sa_splitmix64(uint64_t *state) {
  if (state == NULL)
    return 0;
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

double sa_gaussian(uint64_t *state) {
  double u1 = ((double)(sa_splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(sa_splitmix64(state) >> 11) / 9007199254740992.0;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Ties to even by hand rather than rint(), so the result does not depend on
 * the caller's floating-point rounding mode. `y` is non-negative. */
static double ref_round_half_even(double y) {
  double f = floor(y), frac = y - f;
  if (frac > 0.5)
    return f + 1.0;
  if (frac < 0.5)
    return f;
  return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

/* Rounds to a binary format with `mant` stored mantissa bits and smallest
 * normal exponent `emin`. Rounding on the grid of the value's own exponent
 * (clamped at emin, which gives subnormals) with an unbounded top exponent,
 * then comparing with the largest finite value, is exactly IEEE overflow. */
static float ref_round_format(float x, int mant, int emin, double max_finite,
                              bool saturate) {
  if (isnan(x) || x == 0.0f)
    return x;
  if (isinf(x))
    return saturate ? (float)copysign(max_finite, x) : x;
  int e;
  frexp(x, &e); /* |x| = f * 2^e with f in [0.5, 1): leading bit is 2^(e-1) */
  int lead = e - 1 < emin ? emin : e - 1;
  double quantum = ldexp(1.0, lead - mant);
  double r = ref_round_half_even(fabs((double)x) / quantum) * quantum;
  if (r > max_finite)
    r = saturate ? max_finite : INFINITY;
  return (float)copysign(r, x);
}

float sa_round_to_dtype(float x, SaDtype t) {
  switch (t) {
  case DT_FP16:
    return ref_round_format(x, 10, -14, 65504.0, false);
  case DT_BF16:
    return ref_round_format(x, 7, -126, ldexp(255.0, 120), false);
  case DT_FP8E4M3:
    return ref_round_format(x, 3, -6, 448.0, true);
  case DT_FP8E5M2:
    return ref_round_format(x, 2, -14, 57344.0, false);
  default:
    return x;
  }
}

/* ------------------------------------------------------------------ */
/* Static pattern                                                     */

static int64_t ref_abs_diff(int64_t a, int64_t b) { return a > b ? a - b : b - a; }

/* The fields each present term divides by or indexes with; sa_static_allowed
 * answers false for a spec that fails this instead of dividing by zero. */
static bool ref_pattern_valid(const SaSpec *s) {
  if (s->has_window && (s->window < 0 || s->dilation < 1))
    return false;
  if (s->has_window2d && (s->image_h < 1 || s->image_w < 1 || s->win_h < 1 ||
                          s->win_w < 1 || s->image_offset < 0))
    return false;
  if (s->n_global < 0 || (s->n_global > 0 && s->global == NULL))
    return false;
  if (s->block < 0 || s->n_block_pairs < 0 ||
      (s->n_block_pairs > 0 && s->block_pairs == NULL))
    return false;
  if (s->has_bigbird && (s->block < 1 || s->bb_window < 0 || s->bb_random < 0 ||
                         s->bb_global < 0))
    return false;
  return true;
}

static bool ref_window_allows(const SaSpec *s, int64_t i, int64_t j) {
  int64_t dist = ref_abs_diff(i, j);
  return dist <= (s->window / 2) * s->dilation && dist % s->dilation == 0;
}

static bool ref_image_pos(const SaSpec *s, int64_t t, int64_t *row, int64_t *col) {
  int64_t rel = t - s->image_offset;
  if (rel < 0 || rel >= s->image_h * s->image_w)
    return false;
  *row = rel / s->image_w;
  *col = rel % s->image_w;
  return true;
}

static bool ref_window2d_allows(const SaSpec *s, int64_t i, int64_t j) {
  int64_t ri, ci, rj, cj;
  if (!ref_image_pos(s, i, &ri, &ci) || !ref_image_pos(s, j, &rj, &cj))
    return false;
  return ref_abs_diff(ri, rj) <= s->win_h / 2 && ref_abs_diff(ci, cj) <= s->win_w / 2;
}

static bool ref_block_pairs_allow(const SaSpec *s, int64_t i, int64_t j) {
  for (int n = 0; n < s->n_block_pairs; n++)
    if (s->block_pairs[n].q == i / s->block && s->block_pairs[n].k == j / s->block)
      return true;
  return false;
}

static bool ref_bigbird_allows(const SaSpec *s, int64_t seq, int64_t i, int64_t j) {
  int64_t nb = (seq + s->block - 1) / s->block;
  int64_t qb = i / s->block, kb = j / s->block;
  if (ref_abs_diff(qb, kb) <= s->bb_window / 2 || qb < s->bb_global || kb < s->bb_global)
    return true;
  for (int64_t r = 0; r < s->bb_random; r++) {
    uint64_t state = s->bb_seed ^ ((uint64_t)qb * UINT64_C(0x9E3779B97F4A7C15)) ^
                     ((uint64_t)r * UINT64_C(0xBF58476D1CE4E5B9) + 1);
    if (sa_splitmix64(&state) % (uint64_t)nb == (uint64_t)kb)
      return true;
  }
  return false;
}

static bool ref_is_global(const SaSpec *s, int64_t t) {
  for (int g = 0; g < s->n_global; g++)
    if (s->global[g] == t)
      return true;
  return false;
}

bool sa_static_allowed(const SaSpec *s, int64_t seq, int64_t i, int64_t j) {
  if (s == NULL || !ref_pattern_valid(s) || i < 0 || j < 0 || i >= seq || j >= seq)
    return false;
  if (s->causal && j > i)
    return false;
  bool any_local = false, local = false;
  if (s->has_window) {
    any_local = true;
    local = local || ref_window_allows(s, i, j);
  }
  if (s->has_window2d) {
    any_local = true;
    local = local || ref_window2d_allows(s, i, j);
  }
  if (s->block > 0 && !s->has_bigbird) {
    any_local = true;
    local = local || ref_block_pairs_allow(s, i, j);
  }
  if (s->has_bigbird) {
    any_local = true;
    local = local || ref_bigbird_allows(s, seq, i, j);
  }
  if (!any_local || local)
    return true;
  return ref_is_global(s, i) || ref_is_global(s, j);
}

/* ------------------------------------------------------------------ */
/* Selection helpers                                                  */


/* Larger value first, then lower index. NaN sorts last so that the order
 * stays total (qsort needs a consistent comparator). */
static int ref_rank_cmp(const void *pa, const void *pb) {
  const RefRank *a = pa, *b = pb;
  bool na = isnan(a->val), nb = isnan(b->val);
  if (na != nb)
    return na ? 1 : -1;
  if (!na && a->val != b->val)
    return a->val > b->val ? -1 : 1;
  return a->idx < b->idx ? -1 : (a->idx > b->idx ? 1 : 0);
}

int64_t ref_count(const bool *set, int64_t n) {
  int64_t c = 0;
  for (int64_t j = 0; j < n; j++)
    c += set[j];
  return c;
}

/* Shrinks `set` (n flags) to its `k` members with the largest `val`, ties to
 * the lower index; keeps all members when there are k or fewer. */
void ref_keep_top(const double *val, bool *set, int64_t n, int64_t k,
                         RefRank *rank) {
  int64_t c = 0;
  for (int64_t j = 0; j < n; j++)
    if (set[j])
      rank[c++] = (RefRank){val[j], j};
  if (k >= c)
    return;
  qsort(rank, (size_t)c, sizeof *rank, ref_rank_cmp);
  for (int64_t r = k; r < c; r++)
    set[rank[r].idx] = false;
}

/* ceil(ratio * n) in double, as the document specifies. */
int64_t ref_ceil_ratio(double ratio, int64_t n) {
  return (int64_t)ceil(ratio * (double)n);
}

/* Applies one selection rule to the candidate set `cand` with values `a`. */
void ref_select(SaKeep keep, const double *a, bool *cand, int64_t n,
                       RefRank *rank) {
  int64_t c = ref_count(cand, n);
  if (c == 0)
    return;
  switch (keep.kind) {
  case KEEP_ALL:
    return;
  case KEEP_TOP_RATIO:
    ref_keep_top(a, cand, n, ref_ceil_ratio(keep.value, c), rank);
    return;
  case KEEP_TOP_COUNT:
    ref_keep_top(a, cand, n, (int64_t)keep.value, rank);
    return;
  case KEEP_MEAN: {
    double sum = 0.0, mx = -INFINITY, mn = INFINITY;
    for (int64_t j = 0; j < n; j++)
      if (cand[j]) {
        sum += a[j];
        mx = fmax(mx, a[j]);
        mn = fmin(mn, a[j]);
      }
    double mean = sum / (double)c, alpha = keep.value;
    double theta = alpha >= 0 ? alpha * mx + (1 - alpha) * mean
                              : -alpha * mn + (1 + alpha) * mean;
    /* Mathematically theta <= max; rounding in the mean must not empty the set. */
    theta = fmin(theta, mx);
    for (int64_t j = 0; j < n; j++)
      cand[j] = cand[j] && a[j] >= theta;
    return;
  }
  }
}

/* Symmetric per-row quantization onto the integer grid: out[d] is the
 * integer clamp(round(x[d] / step), -qmax, qmax) (as a double) and the
 * return value is step. `out` may alias `x`. */
double ref_quant_grid(const double *x, int64_t n, int bits, double *out) {
  double qmax = ldexp(1.0, bits - 1) - 1.0, amax = 0.0;
  for (int64_t d = 0; d < n; d++)
    amax = fmax(amax, fabs(x[d]));
  double step = amax / qmax;
  /* C's round() is the half-away-from-zero rounding the document asks for. */
  for (int64_t d = 0; d < n; d++)
    out[d] = amax == 0.0 ? 0.0 : fmin(fmax(round(x[d] / step), -qmax), qmax);
  return step;
}

/* The same, dequantized: out[d] = grid[d] * step. */
static void ref_quant_row(const double *x, int64_t n, int bits, double *out) {
  double step = ref_quant_grid(x, n, bits, out);
  for (int64_t d = 0; d < n; d++)
    out[d] *= step;
}

void ref_quant_grid_rows(const double *x, int64_t rows, int64_t n, int bits, double *grid,
                                double *steps) {
  for (int64_t r = 0; r < rows; r++)
    steps[r] = ref_quant_grid(x + r * n, n, bits, grid + r * n);
}

void ref_quant_rows(const double *x, int64_t rows, int64_t n, int bits,
                           double *out) {
  for (int64_t r = 0; r < rows; r++)
    ref_quant_row(x + r * n, n, bits, out + r * n);
}

double ref_dot(const double *x, const double *y, int64_t n) {
  double acc = 0.0;
  for (int64_t d = 0; d < n; d++)
    acc += x[d] * y[d];
  return acc;
}

/* ------------------------------------------------------------------ */
/* Validation and scratch                                             */

/* a * b * c * d * e for non-negative values, false on size_t overflow. */
static bool ref_size(size_t *out, int64_t a, int64_t b, int64_t c, int64_t d,
                     int64_t e) {
  int64_t f[5] = {a, b, c, d, e};
  size_t r = 1;
  for (int n = 0; n < 5; n++) {
    if (f[n] < 0 || (uint64_t)f[n] > SIZE_MAX)
      return false;
    if (f[n] != 0 && r > SIZE_MAX / (size_t)f[n])
      return false;
    r *= (size_t)f[n];
  }
  *out = r;
  return true;
}

static bool ref_keep_valid(SaKeep k) {
  switch (k.kind) {
  case KEEP_ALL:
    return true;
  case KEEP_TOP_RATIO:
    return k.value > 0.0 && k.value <= 1.0;
  case KEEP_TOP_COUNT:
    return k.value >= 0.0 && k.value <= 4e18 && k.value == floor(k.value);
  case KEEP_MEAN:
    return k.value >= -1.0 && k.value <= 1.0;
  }
  return false;
}

static bool ref_bits_valid(int bits) { return bits >= 2 && bits <= REF_MAX_QUANT_BITS; }

/* Widths whose integer dot products stay exact in double (see ref_grid_scores). */
static bool ref_grid_bits_valid(int bits) { return bits >= 2 && bits <= REF_MAX_GRID_BITS; }

static bool ref_ratio_valid(double r) { return r > 0.0 && r <= 1.0; }

bool ref_dynamic_valid(const SaSpec *s) {
  if (s->has_predict && (s->predict_dim < 1 || !ref_grid_bits_valid(s->predict_bits) ||
                         !ref_keep_valid(s->predict_keep)))
    return false;
  if (s->n_filter_rounds < 0 || s->n_filter_rounds > SA_MAX_FILTER_ROUNDS)
    return false;
  for (int r = 0; r < s->n_filter_rounds; r++)
    if (!ref_grid_bits_valid(s->filter[r].q_bits) || !ref_grid_bits_valid(s->filter[r].k_bits) ||
        !ref_keep_valid(s->filter[r].keep))
      return false;
  if (s->nm_m < 0 || (s->nm_m == 0 && s->nm_n != 0) ||
      (s->nm_m > 0 && (s->nm_n < 1 || s->nm_n > s->nm_m)))
    return false;
  if (!ref_ratio_valid(s->token_keep) || !ref_ratio_valid(s->head_keep) ||
      !ref_ratio_valid(s->value_keep))
    return false;
  if (s->has_progressive &&
      (s->msb_bits < 2 || s->lsb_bits < 0 ||
       !ref_bits_valid(s->msb_bits + s->lsb_bits) || !isfinite(s->requant_threshold)))
    return false;
  return true;
}

static SaStatus ref_validate(const SaSpec *s, const SaProblem *p) {
  if (s == NULL || p == NULL || p->q == NULL || p->k == NULL || p->v == NULL ||
      p->out == NULL)
    return SA_ERR_INVALID_ARGUMENT;
  if (s->heads < 1 || s->kv_heads < 1 || s->head_dim < 1 || s->heads % s->kv_heads != 0)
    return SA_ERR_INVALID_ARGUMENT;
  if (p->batch < 1 || p->seq < 1 || (s->batch != SA_DYNAMIC && s->batch < 1) ||
      (s->seq != SA_DYNAMIC && s->seq < 1))
    return SA_ERR_INVALID_ARGUMENT;
  if ((s->batch != SA_DYNAMIC && s->batch != p->batch) ||
      (s->seq != SA_DYNAMIC && s->seq != p->seq))
    return SA_ERR_SHAPE;
  size_t bytes;
  if (!ref_size(&bytes, p->batch, s->heads, p->seq, s->head_dim, (int64_t)sizeof(float)))
    return SA_ERR_SHAPE;
  if ((p->survivors_out || p->probs_out) &&
      !ref_size(&bytes, p->batch, s->heads, p->seq, p->seq, (int64_t)sizeof(float)))
    return SA_ERR_SHAPE;
  if ((s->layout != LAYOUT_BHSD && s->layout != LAYOUT_BSHD) || s->storage < 0 ||
      s->storage >= DT_COUNT || s->output < 0 || s->output >= DT_COUNT ||
      !isfinite(s->scale))
    return SA_ERR_INVALID_ARGUMENT;
  if (!ref_pattern_valid(s) || !ref_dynamic_valid(s))
    return SA_ERR_INVALID_ARGUMENT;
  return SA_OK;
}

/* All scratch of one call, allocated up front so nothing fails mid-way. */
typedef struct {
  /* per batch */
  bool *token_kept, *head_kept;
  double *token_val, *token_sum, *head_val;
  /* per head: storage-rounded rows, then each stage's quantized copies */
  double *q, *k, *v;
  double *proj, *pq, *pk; /* DSA: D x predict_dim matrix, projected rows (integer grid) */
  double *pq_step, *pk_step;
  double *fq, *fk;        /* filter round r at offset r * S * D (integer grid) */
  double *fq_step, *fk_step; /* round r at offset r * S */
  double *k_msb, *k_full; /* progressive quantization of K */
  /* per row */
  bool *cand, *top;
  double *a, *s, *p, *o;
  RefRank *rank;
} RefWork;

static void ref_work_free(RefWork *w) {
  void *ptrs[] = {w->token_kept, w->head_kept, w->token_val, w->token_sum, w->head_val,
                  w->q,          w->k,         w->v,         w->proj,      w->pq,
                  w->pk,         w->fq,        w->fk,        w->k_msb,     w->k_full,
                  w->pq_step,    w->pk_step,   w->fq_step,   w->fk_step,
                  w->cand,       w->top,       w->a,         w->s,         w->p,
                  w->o,          w->rank};
  for (size_t n = 0; n < sizeof ptrs / sizeof ptrs[0]; n++)
    free(ptrs[n]);
}

/* malloc(rows * cols * elem); a zero count still gets a real block so that
 * NULL always means failure. */
static void *ref_alloc(int64_t rows, int64_t cols, size_t elem, bool *ok) {
  size_t bytes;
  if (!ref_size(&bytes, rows, cols, (int64_t)elem, 1, 1)) {
    *ok = false;
    return NULL;
  }
  void *m = malloc(bytes > 0 ? bytes : 1);
  if (m == NULL)
    *ok = false;
  return m;
}

static bool ref_work_alloc(RefWork *w, const SaSpec *s, int64_t S) {
  int64_t D = s->head_dim, H = s->heads, R = s->n_filter_rounds;
  int64_t pd = s->has_predict ? s->predict_dim : 0;
  int64_t prog = s->has_progressive ? S : 0;
  bool ok = true;
  memset(w, 0, sizeof *w);
  w->token_kept = ref_alloc(S, 1, sizeof(bool), &ok);
  w->head_kept = ref_alloc(H, 1, sizeof(bool), &ok);
  w->token_val = ref_alloc(S, 1, sizeof(double), &ok);
  w->token_sum = ref_alloc(S, 1, sizeof(double), &ok);
  w->head_val = ref_alloc(H, 1, sizeof(double), &ok);
  w->q = ref_alloc(S, D, sizeof(double), &ok);
  w->k = ref_alloc(S, D, sizeof(double), &ok);
  w->v = ref_alloc(S, D, sizeof(double), &ok);
  w->proj = ref_alloc(D, pd, sizeof(double), &ok);
  w->pq = ref_alloc(S, pd, sizeof(double), &ok);
  w->pk = ref_alloc(S, pd, sizeof(double), &ok);
  w->pq_step = ref_alloc(pd ? S : 0, 1, sizeof(double), &ok);
  w->pk_step = ref_alloc(pd ? S : 0, 1, sizeof(double), &ok);
  w->fq_step = ref_alloc(R * S, 1, sizeof(double), &ok);
  w->fk_step = ref_alloc(R * S, 1, sizeof(double), &ok);
  w->fq = ref_alloc(R * S, D, sizeof(double), &ok); /* R <= 8: no overflow */
  w->fk = ref_alloc(R * S, D, sizeof(double), &ok);
  w->k_msb = ref_alloc(prog, D, sizeof(double), &ok);
  w->k_full = ref_alloc(prog, D, sizeof(double), &ok);
  w->cand = ref_alloc(S, 1, sizeof(bool), &ok);
  w->top = ref_alloc(S, 1, sizeof(bool), &ok);
  w->a = ref_alloc(S, 1, sizeof(double), &ok);
  w->s = ref_alloc(S, 1, sizeof(double), &ok);
  w->p = ref_alloc(S, 1, sizeof(double), &ok);
  w->o = ref_alloc(D, 1, sizeof(double), &ok);
  w->rank = ref_alloc(S > H ? S : H, 1, sizeof(RefRank), &ok);
  return ok;
}

/* ------------------------------------------------------------------ */
/* Stages                                                             */

/* Offset of row (b, h, i) of a tensor with `nh` heads, in elements. The
 * validated B*H*S*D bound keeps every product here in range. */
static size_t ref_row_offset(const SaSpec *s, int64_t nh, int64_t S, int64_t b,
                             int64_t h, int64_t i) {
  int64_t row = s->layout == LAYOUT_BHSD ? (b * nh + h) * S + i : (b * S + i) * nh + h;
  return (size_t)row * (size_t)s->head_dim;
}

/* DSA's random +-1/sqrt(predict_dim) matrix, drawn row-major from the seed. */
void ref_build_projection(const SaSpec *s, double *proj) {
  uint64_t state = s->predict_seed;
  double mag = 1.0 / sqrt((double)s->predict_dim);
  for (int64_t n = 0; n < s->head_dim * s->predict_dim; n++)
    proj[n] = (sa_splitmix64(&state) & 1) ? mag : -mag;
}

void ref_project_rows(const SaSpec *s, const double *x, int64_t S,
                             const double *proj, double *out, double *steps) {
  int64_t D = s->head_dim, pd = s->predict_dim;
  for (int64_t i = 0; i < S; i++) {
    for (int64_t c = 0; c < pd; c++) {
      double acc = 0.0;
      for (int64_t d = 0; d < D; d++)
        acc += x[i * D + d] * proj[d * pd + c];
      out[i * pd + c] = acc;
    }
    steps[i] = ref_quant_grid(out + i * pd, pd, s->predict_bits, out + i * pd);
  }
}

void ref_quantize_head(const SaSpec *s, int64_t S, const RefHeadQuant *h) {
  int64_t D = s->head_dim;
  if (s->has_predict) {
    ref_project_rows(s, h->q, S, h->proj, h->pq, h->pq_step);
    ref_project_rows(s, h->k, S, h->proj, h->pk, h->pk_step);
  }
  for (int r = 0; r < s->n_filter_rounds; r++) {
    ref_quant_grid_rows(h->q, S, D, s->filter[r].q_bits, h->fq + r * S * D, h->fq_step + r * S);
    ref_quant_grid_rows(h->k, S, D, s->filter[r].k_bits, h->fk + r * S * D, h->fk_step + r * S);
  }
  if (s->has_progressive) {
    ref_quant_rows(h->k, S, D, s->msb_bits, h->k_msb);
    ref_quant_rows(h->k, S, D, s->msb_bits + s->lsb_bits, h->k_full);
  }
}

/* Loads head h of batch b rounded to storage precision, and precomputes the
 * quantized copies the selection stages and progressive softmax score with. */
static void ref_load_head(const SaSpec *s, const SaProblem *p, RefWork *w, int64_t b,
                          int64_t h) {
  int64_t S = p->seq, D = s->head_dim, kvh = h / (s->heads / s->kv_heads);
  for (int64_t i = 0; i < S; i++) {
    const float *q = p->q + ref_row_offset(s, s->heads, S, b, h, i);
    const float *k = p->k + ref_row_offset(s, s->kv_heads, S, b, kvh, i);
    const float *v = p->v + ref_row_offset(s, s->kv_heads, S, b, kvh, i);
    for (int64_t d = 0; d < D; d++) {
      w->q[i * D + d] = sa_round_to_dtype(q[d], s->storage);
      w->k[i * D + d] = sa_round_to_dtype(k[d], s->storage);
      w->v[i * D + d] = sa_round_to_dtype(v[d], s->storage);
    }
  }
  ref_quantize_head(s, S,
                    &(RefHeadQuant){w->q, w->k, w->proj, w->pq, w->pk, w->pq_step, w->pk_step, w->fq, w->fk,
                                    w->fq_step, w->fk_step, w->k_msb, w->k_full});
}

/* Token pruning for batch b: marks the kept tokens, loads importance_in. */
static void ref_prune_tokens(const SaSpec *s, const SaProblem *p, RefWork *w, int64_t b) {
  int64_t S = p->seq;
  const float *in = p->token_importance_in ? p->token_importance_in + b * S : NULL;
  for (int64_t j = 0; j < S; j++) {
    w->token_val[j] = in ? in[j] : 0.0;
    w->token_sum[j] = 0.0;
    w->token_kept[j] = s->token_keep >= 1.0 || isfinite(w->token_val[j]);
  }
  if (s->token_keep < 1.0)
    ref_keep_top(w->token_val, w->token_kept, S, ref_ceil_ratio(s->token_keep, S), w->rank);
}

/* Head pruning for batch b, in the same way over heads. */
static void ref_prune_heads(const SaSpec *s, const SaProblem *p, RefWork *w, int64_t b) {
  int64_t H = s->heads;
  const float *in = p->head_importance_in ? p->head_importance_in + b * H : NULL;
  for (int64_t h = 0; h < H; h++) {
    w->head_val[h] = in ? in[h] : 0.0;
    w->head_kept[h] = s->head_keep >= 1.0 || isfinite(w->head_val[h]);
  }
  if (s->head_keep < 1.0)
    ref_keep_top(w->head_val, w->head_kept, H, ref_ceil_ratio(s->head_keep, H), w->rank);
}

/* Softmax of `score` over `cand` into `p` (zero elsewhere); returns the
 * largest probability, 0 for an empty row. Subtracting the row maximum keeps
 * exp() finite for logits of any size. */
static double ref_softmax(const double *score, const bool *cand, double *p, int64_t S) {
  double m = -INFINITY, sum = 0.0, pmax = 0.0;
  for (int64_t j = 0; j < S; j++)
    if (cand[j])
      m = fmax(m, score[j]);
  for (int64_t j = 0; j < S; j++) {
    p[j] = cand[j] ? exp(score[j] - m) : 0.0;
    sum += p[j];
  }
  for (int64_t j = 0; j < S; j++) {
    if (sum > 0.0)
      p[j] /= sum;
    pmax = fmax(pmax, p[j]);
  }
  return pmax;
}

/* Scores of row i against every candidate with the given Q and K rows. */
void ref_scores(const SaSpec *s, const double *q, const double *k, int64_t dim,
                       int64_t i, const bool *cand, int64_t S, double *out) {
  for (int64_t j = 0; j < S; j++)
    out[j] = cand[j] ? s->scale * ref_dot(q + i * dim, k + j * dim, dim) : 0.0;
}

/* Scores from quantized rows: ((scale * step_q) * step_k) * (integer dot),
 * the integer dot being exact in double, so that equal products tie
 * exactly in every implementation. */
void ref_grid_scores(const SaSpec *s, const double *q, const double *q_step,
                            const double *k, const double *k_step, int64_t dim, int64_t i,
                            const bool *cand, int64_t S, double *out) {
  double coef = s->scale * q_step[i];
  for (int64_t j = 0; j < S; j++)
    out[j] = cand[j] ? coef * k_step[j] * ref_dot(q + i * dim, k + j * dim, dim) : 0.0;
}

/* Query row i of the loaded head: selection, softmax, value pruning, and
 * o = P V into w->o. Adds the probabilities to the token importance and
 * returns how many scores reached softmax. */
static int64_t ref_attend_row(const SaSpec *s, RefWork *w, int64_t S, int64_t i) {
  int64_t D = s->head_dim;
  for (int64_t j = 0; j < S; j++)
    w->cand[j] = w->token_kept[j] && sa_static_allowed(s, S, i, j);
  if (s->has_predict) {
    ref_grid_scores(s, w->pq, w->pq_step, w->pk, w->pk_step, s->predict_dim, i, w->cand, S, w->a);
    ref_select(s->predict_keep, w->a, w->cand, S, w->rank);
  }
  for (int r = 0; r < s->n_filter_rounds; r++) {
    ref_grid_scores(s, w->fq + r * S * D, w->fq_step + r * S, w->fk + r * S * D, w->fk_step + r * S,
                    D, i, w->cand, S, w->a);
    ref_select(s->filter[r].keep, w->a, w->cand, S, w->rank);
  }
  ref_scores(s, w->q, w->k, D, i, w->cand, S, w->s);
  for (int64_t g = 0; s->nm_m > 0 && g * s->nm_m < S; g++) {
    int64_t start = g * s->nm_m, len = S - start < s->nm_m ? S - start : s->nm_m;
    ref_keep_top(w->s + start, w->cand + start, len, s->nm_n, w->rank);
  }
  int64_t survivors = ref_count(w->cand, S);

  if (s->has_progressive) {
    ref_scores(s, w->q, w->k_msb, D, i, w->cand, S, w->a);
    if (ref_softmax(w->a, w->cand, w->p, S) < s->requant_threshold) {
      ref_scores(s, w->q, w->k_full, D, i, w->cand, S, w->a);
      ref_softmax(w->a, w->cand, w->p, S);
    }
  } else {
    ref_softmax(w->s, w->cand, w->p, S);
  }
  for (int64_t j = 0; j < S; j++)
    w->token_sum[j] += w->p[j];

  if (s->value_keep < 1.0) {
    memcpy(w->top, w->cand, (size_t)S * sizeof(bool));
    ref_keep_top(w->p, w->top, S, ref_ceil_ratio(s->value_keep, survivors), w->rank);
    for (int64_t j = 0; j < S; j++)
      if (!w->top[j])
        w->p[j] = 0.0;
  }
  /* Keys with zero weight are skipped, not multiplied: a masked or pruned
   * key must not contribute even when its value row holds an Inf. */
  for (int64_t d = 0; d < D; d++) {
    w->o[d] = 0.0;
    for (int64_t j = 0; j < S; j++)
      if (w->p[j] != 0.0)
        w->o[d] += w->p[j] * w->v[j * D + d];
  }
  return survivors;
}

/* One (batch, head): writes its output rows and returns the kept-score count;
 * *abs_sum receives sum |O| for the head importance. */
static int64_t ref_head(const SaSpec *s, const SaProblem *p, RefWork *w, int64_t b,
                        int64_t h, double *abs_sum) {
  int64_t S = p->seq, D = s->head_dim, kept = 0;
  *abs_sum = 0.0;
  if (w->head_kept[h])
    ref_load_head(s, p, w, b, h);
  for (int64_t i = 0; i < S; i++) {
    float *out = p->out + ref_row_offset(s, s->heads, S, b, h, i);
    if (!w->head_kept[h] || !w->token_kept[i]) {
      for (int64_t d = 0; d < D; d++)
        out[d] = 0.0f;
      size_t row = ((size_t)(b * s->heads + h) * (size_t)S + (size_t)i) * (size_t)S;
      if (p->survivors_out)
        memset(p->survivors_out + row, 0, (size_t)S);
      if (p->probs_out)
        memset(p->probs_out + row, 0, (size_t)S * sizeof(float));
      continue;
    }
    kept += ref_attend_row(s, w, S, i);
    size_t row = ((size_t)(b * s->heads + h) * (size_t)S + (size_t)i) * (size_t)S;
    for (int64_t j = 0; j < S; j++) {
      if (p->survivors_out)
        p->survivors_out[row + (size_t)j] = w->cand[j];
      if (p->probs_out)
        p->probs_out[row + (size_t)j] = (float)w->p[j];
    }
    for (int64_t d = 0; d < D; d++) {
      *abs_sum += fabs(w->o[d]);
      out[d] = sa_round_to_dtype((float)w->o[d], s->output);
    }
  }
  return kept;
}

SaStatus sa_reference(const SaSpec *spec, const SaProblem *p, double *out_kept_fraction) {
  SaStatus st = ref_validate(spec, p);
  if (st != SA_OK)
    return st;
  RefWork w;
  if (!ref_work_alloc(&w, spec, p->seq)) {
    ref_work_free(&w);
    return SA_ERR_OUT_OF_MEMORY;
  }
  if (spec->has_predict)
    ref_build_projection(spec, w.proj);

  int64_t B = p->batch, H = spec->heads, S = p->seq;
  double kept = 0.0;
  for (int64_t b = 0; b < B; b++) {
    ref_prune_tokens(spec, p, &w, b);
    ref_prune_heads(spec, p, &w, b);
    for (int64_t h = 0; h < H; h++) {
      double abs_sum;
      kept += (double)ref_head(spec, p, &w, b, h, &abs_sum);
      if (p->head_importance_out)
        p->head_importance_out[b * H + h] =
            w.head_kept[h] ? (float)(w.head_val[h] + abs_sum) : -INFINITY;
    }
    if (p->token_importance_out)
      for (int64_t j = 0; j < S; j++)
        p->token_importance_out[b * S + j] =
            w.token_kept[j] ? (float)(w.token_val[j] + w.token_sum[j]) : -INFINITY;
  }
  ref_work_free(&w);
  if (out_kept_fraction)
    *out_kept_fraction = kept / ((double)B * (double)H * (double)S * (double)S);
  return SA_OK;
}
