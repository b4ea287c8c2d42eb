/* rows.c: the accelerator's row engine, for the dynamic stages.
 *
 * A dynamic tile holds R query rows, each with a candidate set over every
 * key: `cand` fills it from the mask unit and the kept tokens; `lowqk`
 * scores the candidates from low-bit integer grids (DSA's projection,
 * Energon's rounds) and `select` applies the stage's rule (top ratio, top
 * count, mean threshold) in the top-k / threshold engine; `fullqk` scores
 * what is left exactly (products of storage values, summed in a wide
 * accumulator: the model uses double, in key order, like the reference);
 * `nm` keeps N of every M keys; `msbqk` scores from K's MSB plane and
 * `requant` rescores rows whose largest probability is under the threshold
 * with the LSB plane added (SpAtten's progressive quantization);
 * `rsoftmax` is a row softmax with the table exponent; `vprune` keeps a
 * row's largest probabilities; `rav` accumulates p·v for the kept keys.
 * `tprune` and `hprune` (before the head loop) keep tokens and heads by
 * their importance, and the importance of the next layer is accumulated.
 *
 * The selection units and quantizers are the reference's own code
 * (runtime/reference/ref.h): they implement the rules of docs/semantics.md,
 * so the kept sets agree with the reference exactly. DRAM traffic counts
 * each plane of a key row once per head (the buffer holds a head's working
 * set): K for exact scores, V only for the keys value pruning keeps, the
 * MSB plane, the LSB plane only when some row requantizes, and each low-bit
 * plane at its width. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"

struct Rows {
  const float *token_in, *head_in;
  float *token_out, *head_out;
  bool *token_kept, *head_kept;
  double *token_val, *token_sum, *head_val, *head_abs;
  /* the head, as the reference prepares it */
  double *q, *k, *v, *proj, *pq, *pk, *pq_step, *pk_step, *fq, *fk, *fq_step, *fk_step, *k_msb, *k_full;
  unsigned char *fetched; /* PL_COUNT x S: planes already read in this head */
  /* the tile: per row */
  bool *active, *cand, *top;   /* R, R x S, R x S */
  double *a, *s, *ps;          /* low-bit, exact and softmax scores, R x S */
  float *pr;                   /* probabilities, R x S */
  double *pmax;                /* R: each row's largest probability, as the reference computes it */
  int64_t *survivors;          /* R */
  bool pruned_values;
  RefRank *rank;
};

static void *zalloc(int64_t n, size_t elem, bool *ok) {
  void *p = calloc((size_t)(n > 0 ? n : 1), elem);
  *ok = *ok && p;
  return p;
}

bool rows_alloc(M *m, const float *token_in, float *token_out, const float *head_in, float *head_out) {
  const SaSpec *s = &m->p->spec;
  int64_t S = m->S, D = m->D, R = m->R, H = m->H, nr = s->n_filter_rounds;
  int64_t pd = s->has_predict ? s->predict_dim : 0, prog = s->has_progressive ? S : 0;
  bool ok = true;
  Rows *w = zalloc(1, sizeof *w, &ok);
  m->rows_engine = w;
  if (!w)
    return false;
  *w = (Rows){.token_in = token_in, .token_out = token_out, .head_in = head_in, .head_out = head_out};
  w->token_kept = zalloc(S, sizeof(bool), &ok);
  w->head_kept = zalloc(H, sizeof(bool), &ok);
  w->token_val = zalloc(S, sizeof(double), &ok);
  w->token_sum = zalloc(S, sizeof(double), &ok);
  w->head_val = zalloc(H, sizeof(double), &ok);
  w->head_abs = zalloc(H, sizeof(double), &ok);
  w->q = zalloc(S * D, sizeof(double), &ok);
  w->k = zalloc(S * D, sizeof(double), &ok);
  w->v = zalloc(S * D, sizeof(double), &ok);
  w->proj = zalloc(D * pd, sizeof(double), &ok);
  w->pq = zalloc(S * pd, sizeof(double), &ok);
  w->pk = zalloc(S * pd, sizeof(double), &ok);
  w->pq_step = zalloc(pd ? S : 0, sizeof(double), &ok);
  w->pk_step = zalloc(pd ? S : 0, sizeof(double), &ok);
  w->fq = zalloc(nr * S * D, sizeof(double), &ok);
  w->fk = zalloc(nr * S * D, sizeof(double), &ok);
  w->fq_step = zalloc(nr * S, sizeof(double), &ok);
  w->fk_step = zalloc(nr * S, sizeof(double), &ok);
  w->k_msb = zalloc(prog * D, sizeof(double), &ok);
  w->k_full = zalloc(prog * D, sizeof(double), &ok);
  w->fetched = zalloc(PL_COUNT * S, 1, &ok);
  w->active = zalloc(R, sizeof(bool), &ok);
  w->cand = zalloc(R * S, sizeof(bool), &ok);
  w->top = zalloc(R * S, sizeof(bool), &ok);
  w->a = zalloc(R * S, sizeof(double), &ok);
  w->s = zalloc(R * S, sizeof(double), &ok);
  w->ps = zalloc(R * S, sizeof(double), &ok);
  w->pr = zalloc(R * S, sizeof(float), &ok);
  w->pmax = zalloc(R, sizeof(double), &ok);
  w->survivors = zalloc(R, sizeof(int64_t), &ok);
  w->rank = zalloc(S > H ? S : H, sizeof(RefRank), &ok);
  if (ok && s->has_predict)
    ref_build_projection(s, w->proj);
  return ok;
}

void rows_free(M *m) {
  Rows *w = m->rows_engine;
  if (!w)
    return;
  void *all[] = {w->token_kept, w->head_kept, w->token_val, w->token_sum, w->head_val, w->head_abs, w->q,
                 w->k,          w->v,         w->proj,      w->pq,        w->pk,       w->pq_step,  w->pk_step,
                 w->fq,         w->fk,        w->fq_step,   w->fk_step,   w->k_msb,    w->k_full,   w->fetched,
                 w->active,     w->cand,      w->top,       w->a,         w->s,        w->ps,       w->pr,
                 w->pmax,       w->survivors, w->rank};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    free(all[i]);
  free(w);
  m->rows_engine = NULL;
}

void rows_begin_batch(M *m) {
  Rows *w = m->rows_engine;
  for (int64_t j = 0; j < m->S; j++) {
    w->token_val[j] = w->token_in ? w->token_in[m->b * m->S + j] : 0.0;
    w->token_sum[j] = 0.0;
    w->token_kept[j] = true;
  }
  for (int64_t h = 0; h < m->H; h++) {
    w->head_val[h] = w->head_in ? w->head_in[m->b * m->H + h] : 0.0;
    w->head_abs[h] = 0.0;
    w->head_kept[h] = true;
  }
}

bool rows_begin_head(M *m) {
  Rows *w = m->rows_engine;
  const SaSpec *s = &m->p->spec;
  if (!w->head_kept[m->h])
    return false;
  int64_t S = m->S, D = m->D, kh = m->h / (m->H / m->KVH);
  for (int64_t i = 0; i < S; i++)
    for (int64_t d = 0; d < D; d++) {
      w->q[i * D + d] = m->q[qrow(m, m->h, i) + (size_t)d];
      w->k[i * D + d] = m->k[kvrow(m, kh, i) + (size_t)d];
      w->v[i * D + d] = m->v[kvrow(m, kh, i) + (size_t)d];
    }
  ref_quantize_head(s, S,
                    &(RefHeadQuant){w->q, w->k, w->proj, w->pq, w->pk, w->pq_step, w->pk_step, w->fq, w->fk,
                                    w->fq_step, w->fk_step, w->k_msb, w->k_full});
  memset(w->fetched, 0, (size_t)(PL_COUNT * S));
  return true;
}

/* Reads plane `pl` of key row j from DRAM unless this head already has it. */
static void fetch(M *m, int pl, int64_t j, int64_t bits_per_elem, int64_t dim, AccClass cl) {
  Rows *w = m->rows_engine;
  unsigned char *f = &w->fetched[pl * m->S + j];
  if (*f)
    return;
  *f = 1;
  int64_t bytes = (dim * bits_per_elem + 7) / 8;
  m->cls[cl].dram_read_bytes += bytes;
  m->cls[cl].dram_requests++;
  m->cls[cl].sram_bytes += bytes;
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The top-k engine's time for n values: SpAtten's quick-select with C
 * comparators, about two sweeps plus a few cycles per round. */
static int64_t topk_cycles(int64_t n, int64_t C) {
  int64_t rounds = 0;
  while (((int64_t)1 << rounds) < n + 1)
    rounds++;
  return 2 * cdiv(n, C) + 4 * rounds;
}

/* The row softmax over row r's candidates from `sc`, with the table
 * exponent, into pr. Returns the row's largest probability as the
 * reference computes it (exp and the sum in double, in key order): the
 * progressive stage compares it with its threshold, and a choice made on
 * the table's value could differ from the reference's near the threshold,
 * where the two choices' outputs differ by far more than rounding. */
static double row_softmax(M *m, int64_t r, const double *sc) {
  Rows *w = m->rows_engine;
  const bool *cand = w->cand + r * m->S;
  float *pr = w->pr + r * m->S;
  double mx = -INFINITY;
  for (int64_t j = 0; j < m->S; j++)
    if (cand[j])
      mx = fmax(mx, sc[j]);
  float sum = 0.0f;
  double exact = 0.0, emax = 0.0;
  for (int64_t j = 0; j < m->S; j++) {
    pr[j] = cand[j] ? exp2_table(&m->exp, (float)((sc[j] - mx) * 1.4426950408889634)) : 0.0f;
    sum += pr[j];
    double e = cand[j] ? exp(sc[j] - mx) : 0.0;
    exact += e;
    emax = fmax(emax, e);
    m->cls[CL_SOFTMAX].exps += cand[j];
  }
  float inv = sum > 0 ? 1.0f / sum : 0.0f;
  for (int64_t j = 0; j < m->S; j++)
    pr[j] *= inv;
  /* ref_softmax's largest p, NaN cases included: dividing by a positive
   * sum keeps the order, and a NaN sum leaves the p undivided */
  return exact > 0.0 ? emax / exact : emax;
}

/* The largest candidate count among the tile's active rows. */
static int64_t max_cand(M *m) {
  Rows *w = m->rows_engine;
  int64_t n = 0;
  for (int64_t r = 0; r < m->rows; r++)
    if (w->active[r]) {
      int64_t c = ref_count(w->cand + r * m->S, m->S);
      n = c > n ? c : n;
    }
  return n;
}

int64_t rows_exec(M *m, AccInsn in, AccClass *cl) {
  Rows *w = m->rows_engine;
  const SaSpec *s = &m->p->spec;
  int64_t S = m->S, D = m->D, C = m->C, n = 0;
  *cl = CL_QK;
  switch (in.op) {
  case OP_TPRUNE: { /* the reference's rule: finite importance, then the top ratio */
    *cl = CL_CONTROL;
    for (int64_t j = 0; j < S; j++)
      w->token_kept[j] = isfinite(w->token_val[j]);
    ref_keep_top(w->token_val, w->token_kept, S, ref_ceil_ratio(s->token_keep, S), w->rank);
    return topk_cycles(S, C);
  }
  case OP_HPRUNE:
    *cl = CL_CONTROL;
    for (int64_t h = 0; h < m->H; h++)
      w->head_kept[h] = isfinite(w->head_val[h]);
    ref_keep_top(w->head_val, w->head_kept, m->H, ref_ceil_ratio(s->head_keep, m->H), w->rank);
    return topk_cycles(m->H, C);
  case OP_CAND:
    *cl = CL_CONTROL;
    for (int64_t r = 0; r < m->R; r++) {
      int64_t i = m->row0 + r;
      w->active[r] = r < m->rows && w->token_kept[i];
      w->pmax[r] = 0;
      for (int64_t j = 0; j < S; j++)
        w->cand[r * S + j] = w->active[r] && w->token_kept[j] && allowed(m, i, j);
      m->l[r] = w->active[r] ? 1.0f : 0.0f; /* rav leaves normalized rows */
      m->engine_rows += w->active[r];
    }
    w->pruned_values = false;
    return cdiv(S, C);
  case OP_LOWQK: {
    n = max_cand(m);
    bool pred = in.b == 0;
    int rd = (int)in.b - 1;
    int64_t dim = pred ? s->predict_dim : D;
    int qb = pred ? s->predict_bits : s->filter[rd].q_bits, kb = pred ? s->predict_bits : s->filter[rd].k_bits;
    for (int64_t r = 0; r < m->rows; r++) {
      if (!w->active[r])
        continue;
      int64_t i = m->row0 + r;
      bool *cand = w->cand + r * S;
      if (pred)
        ref_grid_scores(s, w->pq, w->pq_step, w->pk, w->pk_step, dim, i, cand, S, w->a + r * S);
      else
        ref_grid_scores(s, w->fq + rd * S * D, w->fq_step + rd * S, w->fk + rd * S * D, w->fk_step + rd * S, D, i,
                        cand, S, w->a + r * S);
      int64_t c = 0;
      for (int64_t j = 0; j < S; j++)
        if (cand[j]) {
          fetch(m, PL_LOW + (int)in.b, j, kb, dim, CL_LOAD);
          c++;
        }
      m->cls[CL_QK].low_macs += c * dim;
      m->cls[CL_QK].sram_bytes += c * dim * (qb > kb ? qb : kb) / 8;
    }
    return cdiv(n, C) * cdiv(dim * (qb > kb ? qb : kb), 16);
  }
  case OP_SELECT: {
    *cl = CL_CONTROL;
    SaKeep keep = in.b == 0 ? s->predict_keep : s->filter[in.b - 1].keep;
    n = max_cand(m);
    for (int64_t r = 0; r < m->rows; r++)
      if (w->active[r])
        ref_select(keep, w->a + r * S, w->cand + r * S, S, w->rank);
    return keep.kind == KEEP_MEAN ? cdiv(n, C) + 3 : keep.kind == KEEP_ALL ? 0 : topk_cycles(n, C);
  }
  case OP_FULLQK:
  case OP_MSBQK: {
    n = max_cand(m);
    bool msb = in.op == OP_MSBQK;
    for (int64_t r = 0; r < m->rows; r++) {
      if (!w->active[r])
        continue;
      bool *cand = w->cand + r * S;
      ref_scores(s, w->q, msb ? w->k_msb : w->k, D, m->row0 + r, cand, S, (msb ? w->ps : w->s) + r * S);
      for (int64_t j = 0; j < S; j++)
        if (cand[j]) {
          if (msb)
            fetch(m, PL_MSB, j, s->msb_bits, D, CL_LOAD);
          else
            fetch(m, PL_K, j, 8 * (int64_t)m->in_bytes, D, CL_LOAD);
          m->cls[CL_QK].macs += D;
          m->pairs++;
        }
    }
    return cdiv(n, C) * D;
  }
  case OP_NM:
    *cl = CL_CONTROL;
    n = max_cand(m);
    for (int64_t r = 0; r < m->rows; r++)
      for (int64_t g = 0; w->active[r] && g * s->nm_m < S; g++) {
        int64_t start = g * s->nm_m, len = S - start < s->nm_m ? S - start : s->nm_m;
        ref_keep_top(w->s + r * S + start, w->cand + r * S + start, len, s->nm_n, w->rank);
      }
    return cdiv(n, C);
  case OP_RSOFTMAX:
    *cl = CL_SOFTMAX;
    n = max_cand(m);
    for (int64_t r = 0; r < m->rows; r++)
      if (w->active[r]) {
        w->survivors[r] = ref_count(w->cand + r * S, S);
        if (!s->has_progressive) /* the softmax scores are the exact ones */
          memcpy(w->ps + r * S, w->s + r * S, (size_t)S * sizeof(double));
        w->pmax[r] = row_softmax(m, r, w->ps + r * S);
      }
    return cdiv(n, C) + C + 3;
  case OP_REQUANT: {
    *cl = CL_SOFTMAX;
    n = max_cand(m);
    bool any = false;
    for (int64_t r = 0; r < m->rows; r++) {
      if (!w->active[r] || !(w->pmax[r] < s->requant_threshold))
        continue;
      any = true;
      m->requantized_rows++;
      bool *cand = w->cand + r * S;
      ref_scores(s, w->q, w->k_full, D, m->row0 + r, cand, S, w->ps + r * S);
      for (int64_t j = 0; j < S; j++)
        if (cand[j]) {
          fetch(m, PL_LSB, j, s->lsb_bits, D, CL_LOAD);
          m->cls[CL_QK].macs += D;
        }
      w->pmax[r] = row_softmax(m, r, w->ps + r * S);
    }
    return any ? cdiv(n, C) * D + cdiv(n, C) + C + 3 : 0;
  }
  case OP_VPRUNE:
    *cl = CL_CONTROL;
    n = max_cand(m);
    /* the largest probabilities are the largest softmax scores: the engine
     * ranks the scores (ties to the lower index) */
    for (int64_t r = 0; r < m->rows; r++)
      if (w->active[r]) {
        memcpy(w->top + r * S, w->cand + r * S, (size_t)S * sizeof(bool));
        ref_keep_top(w->ps + r * S, w->top + r * S, S, ref_ceil_ratio(s->value_keep, w->survivors[r]), w->rank);
      }
    w->pruned_values = true;
    return topk_cycles(n, C);
  case OP_RAV: {
    *cl = CL_AV;
    int64_t most = 0;
    for (int64_t r = 0; r < m->rows; r++) {
      if (!w->active[r])
        continue;
      const bool *keep = (w->pruned_values ? w->top : w->cand) + r * S;
      const float *pr = w->pr + r * S;
      float *acc = m->acc + r * D;
      int64_t used = 0;
      for (int64_t j = 0; j < S; j++) {
        w->token_sum[j] += pr[j]; /* importance: the probabilities before value pruning */
        if (!keep[j] || pr[j] == 0.0f)
          continue; /* a key without weight is not read: an Inf in its V row stays out */
        fetch(m, PL_V, j, 8 * (int64_t)m->in_bytes, D, CL_LOAD);
        const float *vj = m->v + kvrow(m, m->h / (m->H / m->KVH), j);
        for (int64_t d = 0; d < D; d++)
          acc[d] += pr[j] * vj[d];
        used++;
      }
      m->cls[CL_AV].macs += used * D;
      most = used > most ? used : most;
      for (int64_t d = 0; d < D; d++)
        w->head_abs[m->h] += fabs((double)acc[d]);
    }
    return cdiv(most, C) * D;
  }
  default: break;
  }
  return 0;
}

void rows_end_batch(M *m) {
  Rows *w = m->rows_engine;
  for (int64_t j = 0; w->token_out && j < m->S; j++)
    w->token_out[m->b * m->S + j] = w->token_kept[j] ? (float)(w->token_val[j] + w->token_sum[j]) : -INFINITY;
  for (int64_t h = 0; w->head_out && h < m->H; h++)
    w->head_out[m->b * m->H + h] = w->head_kept[h] ? (float)(w->head_val[h] + w->head_abs[h]) : -INFINITY;
}
