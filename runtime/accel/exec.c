/* exec.c: runs a validated program on a model of the accelerator.
 *
 * Function: each pass scores the (query row, key) pairs its key stream
 * names, for rows of the loaded tile; the mask unit (the stream's static
 * pattern, evaluated per pair) drops pairs the pattern does not allow, and a
 * per-tile record drops pairs an earlier pass already scored, so any
 * schedule that covers the pattern computes it exactly once. Scores and
 * A·V are fp32 multiply-accumulates on inputs rounded to the storage type;
 * softmax is online (running max and sum per row, as SALO's window
 * splitting merges sub-windows) with exp computed as 2^x from a 64-entry
 * table with linear interpolation (relative error below 1.5e-5).
 *
 * Model: every instruction charges the cycles of isa.h to the array or to
 * the global row, which run side by side; K and V rows are fetched from
 * DRAM when they are not in the K/V buffer (FIFO, sram_kv_bytes), Q tiles
 * and outputs always move. Time is compute plus the DRAM transfer time the
 * compute cannot hide (perfect double buffering otherwise). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"
#include "sattn/reference.h"

static const char *const class_names[] = {
#define X(e, s) s,
    ACC_CLASSES(X)
#undef X
};

/* ---- 2^x from a table ---- */

void exp_table_init(ExpTable *e) {
  for (int k = 0; k <= EXP_SEGMENTS; k++)
    e->t[k] = (float)exp2((double)k / EXP_SEGMENTS);
}

/* 2^x for x <= 0: the integer part shifts, the fraction interpolates
 * linearly between table entries. NaN stays NaN (a NaN score's
 * probability is NaN, as in the reference's softmax). */
float exp2_table(const ExpTable *e, float x) {
  if (isnan(x))
    return x;
  if (!(x > -126.0f))
    return 0.0f;
  float fl = floorf(x), pos = (x - fl) * EXP_SEGMENTS;
  int k = (int)pos;
  if (k >= EXP_SEGMENTS)
    k = EXP_SEGMENTS - 1;
  return ldexpf(e->t[k] + (e->t[k + 1] - e->t[k]) * (pos - (float)k), (int)fl);
}

size_t qrow(const M *m, int64_t h, int64_t i) {
  int64_t r = m->p->spec.layout == LAYOUT_BHSD ? h * m->S + i : i * m->H + h;
  return (size_t)(r * m->D);
}
size_t kvrow(const M *m, int64_t kh, int64_t j) {
  int64_t r = m->p->spec.layout == LAYOUT_BHSD ? kh * m->S + j : j * m->KVH + kh;
  return (size_t)(r * m->D);
}

/* Brings K and V row j of the current head into the buffer. */
static void fetch_kv(M *m, int64_t j, AccClass cl) {
  if (m->resident[j] >= 0 && m->resident[j] >= m->fetched - m->capacity)
    return;
  m->resident[j] = m->fetched++;
  int64_t bytes = 2 * m->D * (int64_t)m->in_bytes;
  m->cls[cl].dram_read_bytes += bytes;
  m->cls[cl].dram_requests += 2; /* a K row and a V row */
  m->cls[cl].sram_bytes += bytes;
}

bool allowed(const M *m, int64_t i, int64_t j) { return sa_static_allowed(&m->p->spec, m->S, i, j); }

/* Scores row r (absolute row i) against the pass's keys. */
static void qk_row(M *m, int64_t r, int64_t i, AccClass cl) {
  const float *qi = m->q + qrow(m, m->h, i);
  int64_t kh = m->h / (m->H / m->KVH);
  for (int64_t c = 0; c < m->ncols; c++) {
    int64_t j = m->keys[r * m->C + c];
    if (j < 0)
      continue;
    fetch_kv(m, j, CL_LOAD);
    const float *kj = m->k + kvrow(m, kh, j);
    float s = 0;
    for (int64_t d = 0; d < m->D; d++)
      s += qi[d] * kj[d];
    m->score[r * m->C + c] = s * m->scale_log2e;
    m->cls[cl].macs += m->D;
    m->pairs++;
  }
}

/* The online softmax step and A·V of row r over the pass's scores. */
static void softmax_av_row(M *m, int64_t r, bool do_av, AccClass cl) {
  float mx = m->m[r];
  bool any = false;
  for (int64_t c = 0; c < m->ncols; c++)
    if (m->keys[r * m->C + c] >= 0) {
      mx = fmaxf(mx, m->score[r * m->C + c]);
      any = true;
    }
  if (!any)
    return;
  if (!do_av) {
    /* softmax: rescale what the row holds to the new max, then p = 2^(s - max) */
    float f = m->l[r] > 0 ? exp2_table(&m->exp, m->m[r] - mx) : 0.0f;
    m->l[r] *= f;
    for (int64_t d = 0; d < m->D; d++)
      m->acc[r * m->D + d] *= f;
    m->m[r] = mx;
    m->cls[CL_SOFTMAX].exps++;
    for (int64_t c = 0; c < m->ncols; c++)
      if (m->keys[r * m->C + c] >= 0) {
        float pr = exp2_table(&m->exp, m->score[r * m->C + c] - mx);
        m->score[r * m->C + c] = pr;
        m->l[r] += pr;
        m->cls[CL_SOFTMAX].exps++;
      }
    return;
  }
  int64_t kh = m->h / (m->H / m->KVH);
  for (int64_t c = 0; c < m->ncols; c++) {
    int64_t j = m->keys[r * m->C + c];
    if (j < 0)
      continue;
    const float *vj = m->v + kvrow(m, kh, j);
    float pr = m->score[r * m->C + c];
    for (int64_t d = 0; d < m->D; d++)
      m->acc[r * m->D + d] += pr * vj[d];
    m->cls[cl].macs += m->D;
  }
}

/* Fills the pass's key table: the key each PE (row r, column c) sees, or -1
 * when the pair is outside the sequence, not allowed, or already scored. */
static void set_keys(M *m, AccInsn in) {
  m->ncols = in.b;
  for (int64_t r = 0; r < m->R; r++)
    for (int64_t c = 0; c < m->ncols; c++) {
      int64_t i = m->row0 + r, j = -1;
      if (r < m->rows && !m->grown[i]) {
        if (in.op == OP_DIAG)
          j = i + m->p->offsets[in.c + c];
        else if (in.op == OP_BLOCK)
          j = (int64_t)in.c + c;
        else
          j = m->p->globals[in.c + c];
      }
      if (j >= 0 && j < m->S && allowed(m, i, j)) {
        unsigned char *bit = &m->seen[(r * m->S + j) / 8];
        unsigned char mask = (unsigned char)(1u << ((r * m->S + j) % 8));
        if (*bit & mask)
          j = -1;
        else
          *bit |= mask;
      } else {
        j = -1;
      }
      m->keys[r * m->C + c] = j;
    }
}

/* The global query row: token t over every key it may see, in chunks of C,
 * on the unit beside the array. Its result is final: later passes skip t. */
static void grow(M *m, int64_t t) {
  const float *qt = m->q + qrow(m, m->h, t);
  int64_t kh = m->h / (m->H / m->KVH);
  float mx = -INFINITY, sum = 0;
  float *acc = m->acc + (size_t)m->R * (size_t)m->D; /* a spare row */
  memset(acc, 0, (size_t)m->D * sizeof *acc);
  for (int64_t j0 = 0; j0 < m->S; j0 += m->C) {
    m->global_cycles += 2 * m->D + m->C + 3;
    for (int64_t j = j0; j < j0 + m->C && j < m->S; j++) {
      if (!allowed(m, t, j))
        continue;
      fetch_kv(m, j, CL_GLOBAL);
      const float *kj = m->k + kvrow(m, kh, j), *vj = m->v + kvrow(m, kh, j);
      float s = 0;
      for (int64_t d = 0; d < m->D; d++)
        s += qt[d] * kj[d];
      s *= m->scale_log2e;
      float nm = fmaxf(mx, s), f = sum > 0 ? exp2_table(&m->exp, mx - nm) : 0.0f, pr = exp2_table(&m->exp, s - nm);
      sum = sum * f + pr;
      for (int64_t d = 0; d < m->D; d++)
        acc[d] = acc[d] * f + pr * vj[d];
      mx = nm;
      m->cls[CL_GLOBAL].macs += 2 * m->D;
      m->cls[CL_GLOBAL].exps += 2;
      m->pairs++;
    }
  }
  float *out = m->o + qrow(m, m->h, t);
  float inv = sum > 0 ? 1.0f / sum : 0.0f;
  for (int64_t d = 0; d < m->D; d++)
    out[d] = sa_round_to_dtype(acc[d] * inv, m->p->spec.output);
  m->cls[CL_GLOBAL].dram_write_bytes += m->D * (int64_t)m->out_bytes;
  m->cls[CL_GLOBAL].dram_requests++;
  m->grown[t] = true;
}

static void store(M *m) {
  for (int64_t r = 0; r < m->rows; r++) {
    int64_t i = m->row0 + r;
    if (m->grown[i])
      continue;
    float *out = m->o + qrow(m, m->h, i);
    float inv = m->l[r] > 0 ? 1.0f / m->l[r] : 0.0f; /* one reciprocal per row */
    for (int64_t d = 0; d < m->D; d++)
      out[d] = sa_round_to_dtype(m->acc[r * m->D + d] * inv, m->p->spec.output);
  }
  m->cls[CL_STORE].dram_write_bytes += m->rows * m->D * (int64_t)m->out_bytes;
  m->cls[CL_STORE].dram_requests++;
  m->cls[CL_STORE].sram_bytes += m->rows * m->D * 4;
}

/* The first head from h on that runs (heads pruning leaves out), set up;
 * H when none is left. */
static int64_t next_head(M *m, int64_t h) {
  for (; h < m->H; h++) {
    m->h = h;
    if (!m->rows_engine || rows_begin_head(m))
      break;
  }
  if (h < m->H) {
    memset(m->grown, 0, (size_t)m->S * sizeof *m->grown);
    for (int64_t j = 0; j < m->S; j++)
      m->resident[j] = -1;
  }
  return h;
}

/* Runs the code once (one batch entry). */
static void run_code(M *m) {
  const SaAccelProgram *p = m->p;
  size_t loop_start = 0, loop_end = 0;
  if (m->rows_engine)
    rows_begin_batch(m);
  for (size_t pc = 0; pc < p->n_code; pc++) {
    AccInsn in = acc_decode(p->code[pc]);
    AccClass cl = CL_CONTROL;
    int64_t cyc = 0;
    switch (in.op) {
    case OP_NOP: cyc = 1; break;
    case OP_HEADS:
      loop_start = pc + 1, loop_end = pc + in.c;
      m->h = next_head(m, 0);
      if (m->h == m->H)
        pc = loop_end; /* every head pruned: nothing runs */
      break;
    case OP_LOADQ:
      cl = CL_LOAD;
      m->row0 = in.c, m->rows = in.b;
      memset(m->seen, 0, (size_t)(m->R * m->S + 7) / 8);
      for (int64_t r = 0; r < m->R; r++)
        m->m[r] = -INFINITY, m->l[r] = 0;
      memset(m->acc, 0, (size_t)(m->R * m->D) * sizeof *m->acc);
      m->cls[CL_LOAD].dram_read_bytes += in.b * m->D * (int64_t)m->in_bytes;
      m->cls[CL_LOAD].dram_requests++;
      m->cls[CL_LOAD].sram_bytes += in.b * m->D * (int64_t)m->in_bytes;
      break;
    case OP_DIAG:
    case OP_BLOCK:
    case OP_GCOL:
      set_keys(m, in);
      m->global_pass = in.op == OP_GCOL && in.b <= m->G;
      break;
    case OP_GROW:
      cl = CL_GLOBAL;
      grow(m, in.c);
      break;
    case OP_QK:
    case OP_SOFTMAX:
    case OP_AV:
      cl = m->global_pass ? CL_GLOBAL : in.op == OP_QK ? CL_QK : in.op == OP_SOFTMAX ? CL_SOFTMAX : CL_AV;
      cyc = in.op == OP_SOFTMAX ? m->C + 3 : m->D;
      for (int64_t r = 0; r < m->rows; r++) {
        if (in.op == OP_QK)
          qk_row(m, r, m->row0 + r, cl);
        else
          softmax_av_row(m, r, in.op == OP_AV, cl);
      }
      m->cls[cl].sram_bytes += in.op == OP_SOFTMAX ? 0 : (m->rows + m->ncols) * m->D * (int64_t)m->in_bytes;
      break;
    case OP_SYNC: cyc = m->global_pass ? 0 : 1; break;
    case OP_STORE:
      cl = CL_STORE;
      store(m);
      break;
    case OP_END: cyc = m->C + m->G - 1; break;
    case OP_COUNT: break;
    default: cyc = rows_exec(m, in, &cl); break;
    }
    m->cls[cl].instructions++;
    m->cls[cl].cycles += cyc;
    if (cl == CL_GLOBAL)
      m->global_cycles += cyc;
    else
      m->array_cycles += cyc;
    if (loop_end && pc == loop_end && m->h < m->H && (m->h = next_head(m, m->h + 1)) < m->H)
      pc = loop_start - 1;
  }
  if (m->rows_engine)
    rows_end_batch(m);
}

SaStatus sa_accel_run(const SaAccelProgram *p, const SaAccelConfig *c, const float *q, const float *k,
                      const float *v, float *o, int64_t batch, const SaAccelImportance *importance,
                      SaAccelStats *stats, char *err, size_t cap) {
  if (!p || !c || !q || !k || !v || !o || batch < 1)
    return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "NULL tensor, program or configuration, or batch below 1");
  if (sa_accel_config_hash(c) != p->config_hash || c->pe_rows != p->header[H_ROWS] ||
      c->pe_cols != p->header[H_COLS] || c->global_pes != p->header[H_GLOBAL_PES])
    return acc_fail(err, cap, SA_ERR_UNSUPPORTED,
                "the stream was scheduled for a %lldx%lld array with %lld global PEs, not this configuration's "
                "%lldx%lld with %lld",
                (long long)p->header[H_ROWS], (long long)p->header[H_COLS], (long long)p->header[H_GLOBAL_PES],
                (long long)c->pe_rows, (long long)c->pe_cols, (long long)c->global_pes);
  if (p->spec.batch != SA_DYNAMIC && batch != p->spec.batch)
    return acc_fail(err, cap, SA_ERR_SHAPE, "batch %lld, the stream fixes %lld", (long long)batch,
                (long long)p->spec.batch);
  /* the tiles must fit this machine's Q and output buffers */
  int64_t fit = acc_tile_rows(c, p->spec.head_dim, sa_dtype_bits(p->spec.storage) / 8);
  for (size_t w = 0; w < p->n_code; w++) {
    AccInsn in = acc_decode(p->code[w]);
    if (in.op == OP_LOADQ && in.b > fit)
      return acc_fail(err, cap, SA_ERR_UNSUPPORTED,
                      "word %zu loads a tile of %u query rows; this configuration's Q and output buffers "
                      "(%lld and %lld bytes) hold %lld",
                      w, in.b, (long long)c->sram_q_bytes, (long long)c->sram_out_bytes, (long long)fit);
  }
  const SaSpec *s = &p->spec;
  M m = {.p = p,
         .c = c,
         .H = s->heads,
         .KVH = s->kv_heads,
         .S = s->seq,
         .D = s->head_dim,
         .R = c->pe_rows,
         .C = c->pe_cols,
         .G = c->global_pes};
  m.in_bytes = (size_t)sa_dtype_bits(s->storage) / 8;
  m.out_bytes = (size_t)sa_dtype_bits(s->output) / 8;
  m.scale_log2e = (float)(s->scale * 1.4426950408889634);
  exp_table_init(&m.exp);
  m.capacity = c->sram_kv_bytes / (2 * m.D * (int64_t)m.in_bytes);
  if (m.capacity < m.C)
    m.capacity = m.C;
  size_t nq = (size_t)(m.H * m.S * m.D), nkv = (size_t)(m.KVH * m.S * m.D);
  float *rq = malloc(nq * sizeof *rq), *rk = malloc(nkv * sizeof *rk), *rv = malloc(nkv * sizeof *rv);
  m.grown = malloc((size_t)m.S * sizeof *m.grown);
  m.seen = malloc((size_t)(m.R * m.S + 7) / 8);
  m.m = malloc((size_t)m.R * sizeof *m.m);
  m.l = malloc((size_t)m.R * sizeof *m.l);
  m.acc = malloc((size_t)((m.R + 1) * m.D) * sizeof *m.acc);
  m.keys = malloc((size_t)(m.R * m.C) * sizeof *m.keys);
  m.score = malloc((size_t)(m.R * m.C) * sizeof *m.score);
  m.resident = malloc((size_t)m.S * sizeof *m.resident);
  SaStatus st = SA_OK;
  SaAccelImportance io = importance ? *importance : (SaAccelImportance){0};
  bool ok = rq && rk && rv && m.grown && m.seen && m.m && m.l && m.acc && m.keys && m.score && m.resident;
  if (ok && p->dynamic)
    ok = rows_alloc(&m, io.token_in, io.token_out, io.head_in, io.head_out);
  if (!ok) {
    st = acc_fail(err, cap, SA_ERR_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  for (int64_t b = 0; b < batch; b++) {
    for (size_t i = 0; i < nq; i++)
      rq[i] = sa_round_to_dtype(q[(size_t)b * nq + i], s->storage);
    for (size_t i = 0; i < nkv; i++) {
      rk[i] = sa_round_to_dtype(k[(size_t)b * nkv + i], s->storage);
      rv[i] = sa_round_to_dtype(v[(size_t)b * nkv + i], s->storage);
    }
    m.q = rq, m.k = rk, m.v = rv, m.o = o + (size_t)b * nq, m.b = b;
    /* rows no pass reaches (fully masked) output zeros */
    memset(m.o, 0, nq * sizeof *m.o);
    run_code(&m);
  }
  if (stats) {
    SaAccelStats t = {0};
    /* a MAC costs what a multiplier of the storage width does: fp8 inputs
     * go through the 8-bit multipliers the low-bit scores use */
    double e_mac = s->storage == DT_FP32                                   ? c->e_mac_fp32_pj
                   : s->storage == DT_FP8E4M3 || s->storage == DT_FP8E5M2 ? c->e_mac_int8_pj
                                                                          : c->e_mac_fp16_pj;
    for (int i = 0; i < CL_COUNT; i++) {
      SaAccelClassStats *x = &m.cls[i];
      x->name = class_names[i];
      x->energy_pj = (double)x->macs * e_mac + (double)x->low_macs * c->e_mac_int8_pj +
                     (double)x->exps * c->e_exp_pj + (double)x->sram_bytes * c->e_sram_byte_pj +
                     (double)(x->dram_read_bytes + x->dram_write_bytes) * c->e_dram_byte_pj;
      t.cls[i] = *x;
      t.dram_read_bytes += x->dram_read_bytes;
      t.dram_write_bytes += x->dram_write_bytes;
      t.dram_requests += x->dram_requests;
      t.sram_bytes += x->sram_bytes;
      t.macs += x->macs;
      t.low_macs += x->low_macs;
      t.energy_pj += x->energy_pj;
    }
    t.compute_cycles = m.array_cycles > m.global_cycles ? m.array_cycles : m.global_cycles;
    /* Each channel serves one request at a time and requests spread evenly
     * over the channels, so latency is paid once per request and channel
     * in parallel; bandwidth is the channels' total. */
    if (c->dram_bytes_per_cycle > 0)
      t.dram_cycles = (int64_t)ceil((double)(t.dram_read_bytes + t.dram_write_bytes) / c->dram_bytes_per_cycle +
                                    (double)t.dram_requests * (double)c->dram_latency_cycles /
                                        (double)(c->dram_channels > 0 ? c->dram_channels : 1));
    t.cycles = t.compute_cycles + (t.dram_cycles > t.compute_cycles ? t.dram_cycles - t.compute_cycles : 0);
    t.seconds = (double)t.cycles / (c->clock_ghz * 1e9);
    t.pairs = m.pairs / batch;
    t.rows = m.engine_rows, t.requantized_rows = m.requantized_rows;
    *stats = t;
  }
done:
  rows_free(&m);
  free(rq), free(rk), free(rv), free(m.grown), free(m.seen), free(m.m), free(m.l), free(m.acc), free(m.keys),
      free(m.score), free(m.resident);
  return st;
}
