/* schedule.c: the accelerator's scheduler: a spec's shapes, pattern and
 * stages to the program of docs/accel-isa.md for one PE array. The pass
 * sattn-lower-accel calls it and writes the result in the saccel dialect.
 *
 * Per head (one `heads` loop) and per tile of R query rows:
 *   - sliding and 2-D windows become diagonal passes (SALO's data
 *     scheduler): the window's key offsets, C per pass, so that row r of the
 *     tile sees key row0 + r + offset[c] in column c;
 *   - block layouts, BigBird and patterns without a local term become block
 *     passes over the key blocks of C keys that hold an allowed pair;
 *   - global keys go to the global columns (gcol), global queries to the
 *     global row (grow) before the tiles.
 * Each pass is `qk; softmax; av; sync`. The mask unit drops pairs the
 * pattern does not allow and pairs an earlier pass scored, so the passes
 * only have to cover the pattern. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/accel/accel.h"
#include "../codegen.h"
#include "sattn/reference.h"

static bool fail(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
  return false;
}

typedef struct {
  uint64_t *w;
  size_t n, cap;
  bool oom;
} Code;

static void put(Code *c, AccOpcode op, uint32_t b, uint32_t v) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 1024;
    uint64_t *w = realloc(c->w, cap * sizeof *w);
    if (!w) {
      c->oom = true;
      return;
    }
    c->w = w, c->cap = cap;
  }
  c->w[c->n++] = acc_encode((AccInsn){op, 0, (uint16_t)b, v});
}

static void pass_body(Code *c) {
  put(c, OP_QK, 0, 0);
  put(c, OP_SOFTMAX, 0, 0);
  put(c, OP_AV, 0, 0);
  put(c, OP_SYNC, 0, 0);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* The key offsets of the window terms, sorted and unique; causal drops the
 * positive ones. NULL with *n = 0 when there is no window term. */
static int64_t *window_offsets(const SaSpec *s, size_t *n, bool *oom) {
  size_t cap = 0;
  if (s->has_window)
    cap += (size_t)(2 * (s->window / 2) + 1);
  if (s->has_window2d)
    cap += (size_t)((2 * (s->win_h / 2) + 1) * (2 * (s->win_w / 2) + 1));
  *n = 0;
  if (!cap)
    return NULL;
  int64_t *o = malloc(cap * sizeof *o);
  if (!o) {
    *oom = true;
    return NULL;
  }
  if (s->has_window)
    for (int64_t k = -(s->window / 2); k <= s->window / 2; k++)
      o[(*n)++] = k * s->dilation;
  if (s->has_window2d)
    for (int64_t dy = -(s->win_h / 2); dy <= s->win_h / 2; dy++)
      for (int64_t dx = -(s->win_w / 2); dx <= s->win_w / 2; dx++)
        o[(*n)++] = dy * s->image_w + dx;
  qsort(o, *n, sizeof *o, cmp_i64);
  size_t u = 0;
  for (size_t i = 0; i < *n; i++)
    if ((u == 0 || o[i] != o[u - 1]) && (!s->causal || o[i] <= 0) && o[i] > -s->seq && o[i] < s->seq)
      o[u++] = o[i];
  *n = u;
  return o;
}

/* Whether a block pass over keys [k0, k0 + C) has a pair the block term
 * (block pairs or BigBird, without windows and globals) allows for rows
 * [r0, r0 + rows). Patterns without a local term need every block (but
 * those above the diagonal under causal). */
static bool block_needed(const SaSpec *blocks_only, bool any_local, int64_t r0, int64_t rows, int64_t k0,
                         int64_t C) {
  if (!any_local)
    return !blocks_only->causal || k0 <= r0 + rows - 1;
  for (int64_t i = r0; i < r0 + rows; i++)
    for (int64_t j = k0; j < k0 + C && j < blocks_only->seq; j++)
      if (sa_static_allowed(blocks_only, blocks_only->seq, i, j))
        return true;
  return false;
}

/* A dynamic tile's row sequence, in the order of docs/semantics.md. */
static void row_sequence(Code *c, const SaSpec *s) {
  put(c, OP_CAND, 0, 0);
  if (s->has_predict) {
    put(c, OP_LOWQK, 0, 0);
    put(c, OP_SELECT, 0, 0);
  }
  for (int r = 0; r < s->n_filter_rounds; r++) {
    put(c, OP_LOWQK, (uint32_t)r + 1, 0);
    put(c, OP_SELECT, (uint32_t)r + 1, 0);
  }
  if (s->nm_m > 0 || !s->has_progressive)
    put(c, OP_FULLQK, 0, 0);
  if (s->nm_m > 0)
    put(c, OP_NM, (uint32_t)s->nm_n, (uint32_t)s->nm_m);
  if (s->has_progressive)
    put(c, OP_MSBQK, 0, 0);
  put(c, OP_RSOFTMAX, 0, 0);
  if (s->has_progressive)
    put(c, OP_REQUANT, 0, 0);
  if (s->value_keep < 1.0)
    put(c, OP_VPRUNE, 0, 0);
  put(c, OP_RAV, 0, 0);
}

static int64_t f64_bits(double d) {
  int64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

/* The DYNAMIC section's fields of s. */
static void dynamic_fields(const SaSpec *s, int64_t *d) {
  d[D_HAS_PREDICT] = s->has_predict, d[D_PREDICT_DIM] = s->predict_dim, d[D_PREDICT_BITS] = s->predict_bits;
  d[D_PREDICT_KEEP_KIND] = s->predict_keep.kind, d[D_PREDICT_KEEP_VALUE] = f64_bits(s->predict_keep.value);
  d[D_PREDICT_SEED] = (int64_t)s->predict_seed;
  d[D_NM_N] = s->nm_n, d[D_NM_M] = s->nm_m;
  d[D_TOKEN_KEEP] = f64_bits(s->token_keep), d[D_HEAD_KEEP] = f64_bits(s->head_keep);
  d[D_VALUE_KEEP] = f64_bits(s->value_keep);
  d[D_HAS_PROGRESSIVE] = s->has_progressive, d[D_MSB_BITS] = s->msb_bits, d[D_LSB_BITS] = s->lsb_bits;
  d[D_THRESHOLD] = f64_bits(s->requant_threshold);
  d[D_FILTER_ROUNDS] = s->n_filter_rounds;
  for (int r = 0; r < s->n_filter_rounds; r++) {
    int64_t *f = d + D_ROUNDS + 4 * r;
    f[0] = s->filter[r].q_bits, f[1] = s->filter[r].k_bits, f[2] = s->filter[r].keep.kind;
    f[3] = f64_bits(s->filter[r].keep.value);
  }
}

/* A copy of n elements of size z (NULL for none); false when out of memory. */
static bool dup_array(void **out, const void *src, size_t n, size_t z) {
  *out = NULL;
  if (n == 0)
    return true;
  *out = malloc(n * z);
  if (*out)
    memcpy(*out, src, n * z);
  return *out != NULL;
}

void cg_accel_free(CgAccel *p) {
  free(p->globals);
  free(p->blocks);
  free(p->offsets);
  free(p->code);
  memset(p, 0, sizeof *p);
}

bool cg_accel_schedule(const SaSpec *s, const SaAccelConfig *cfg, CgAccel *out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  bool dynamic = s->has_predict || s->n_filter_rounds > 0 || s->nm_m > 0 || s->token_keep < 1.0 ||
                 s->head_keep < 1.0 || s->value_keep < 1.0 || s->has_progressive;
  if (s->seq == SA_DYNAMIC)
    return fail(err, cap, "an accelerator stream is scheduled for one sequence length; give seq (sattnc --seq N)");
  if (s->seq > UINT32_MAX || s->heads > UINT16_MAX)
    return fail(err, cap, "seq or heads too large for the instruction fields");
  bool out_ok = s->output == DT_FP32 || s->output == DT_FP16 || s->output == DT_BF16;
  bool in_ok = out_ok || s->storage == DT_FP8E4M3 || s->storage == DT_FP8E5M2;
  if (!in_ok || !out_ok)
    return fail(err, cap, "the accelerator reads fp32, fp16, bf16 or fp8 and writes fp32, fp16 or bf16, not %s -> %s",
                sa_dtype_name(s->storage), sa_dtype_name(s->output));
  int64_t R = cfg->pe_rows, C = cfg->pe_cols, G = cfg->global_pes, S = s->seq;
  if (R < 1 || C < 1 || R > UINT16_MAX || C > UINT16_MAX || G < 0 || G > 64)
    return fail(err, cap, "PE array outside the instruction fields (rows and columns 1 to 65535, global PEs 0 to 64)");
  /* A tile's Q rows (at the storage width) must fit the Q buffer and its
   * fp32 accumulators the output buffer: tiles are as tall as the array
   * unless the buffers hold fewer rows. */
  int64_t T = acc_tile_rows(cfg, s->head_dim, sa_dtype_bits(s->storage) / 8);
  if (T < 1)
    return fail(err, cap, "one query row of head_dim %lld does not fit the Q buffer (%lld bytes) or the output "
                "buffer (%lld bytes)", (long long)s->head_dim, (long long)cfg->sram_q_bytes,
                (long long)cfg->sram_out_bytes);
  bool oom = false;
  size_t n_off;
  int64_t *off = window_offsets(s, &n_off, &oom);
  bool blocks = s->n_block_pairs > 0 || s->has_bigbird;
  bool any_local = s->has_window || s->has_window2d || blocks;
  SaSpec bonly = *s; /* the block term alone */
  bonly.has_window = bonly.has_window2d = false;
  bonly.n_global = 0;
  int64_t gchunk = G > 0 ? G : C;
  int n_glob = any_local ? s->n_global : 0;

  Code c = {0};
  if (dynamic && s->token_keep < 1.0)
    put(&c, OP_TPRUNE, 0, 0);
  if (dynamic && s->head_keep < 1.0)
    put(&c, OP_HPRUNE, 0, 0);
  size_t loop = c.n;
  put(&c, OP_HEADS, (uint32_t)s->heads, 0);
  for (int g = 0; !dynamic && g < n_glob; g++)
    if (s->global[g] < S) /* a spec with seq=? may name tokens beyond this length */
      put(&c, OP_GROW, 0, (uint32_t)s->global[g]);
  for (int64_t r0 = 0; dynamic && r0 < S && !c.oom; r0 += T) {
    int64_t rows = S - r0 < T ? S - r0 : T;
    put(&c, OP_LOADQ, (uint32_t)rows, (uint32_t)r0);
    row_sequence(&c, s);
    put(&c, OP_STORE, (uint32_t)rows, (uint32_t)r0);
  }
  for (int64_t r0 = 0; !dynamic && r0 < S && !c.oom; r0 += T) {
    int64_t rows = S - r0 < T ? S - r0 : T;
    put(&c, OP_LOADQ, (uint32_t)rows, (uint32_t)r0);
    for (size_t o = 0; o < n_off; o += (size_t)C) {
      put(&c, OP_DIAG, (uint32_t)(n_off - o < (size_t)C ? n_off - o : (size_t)C), (uint32_t)o);
      pass_body(&c);
    }
    if (blocks || !any_local)
      for (int64_t k0 = 0; k0 < S; k0 += C)
        if (block_needed(&bonly, any_local, r0, rows, k0, C)) {
          put(&c, OP_BLOCK, (uint32_t)(S - k0 < C ? S - k0 : C), (uint32_t)k0);
          pass_body(&c);
        }
    for (int g = 0; g < n_glob; g += (int)gchunk) {
      put(&c, OP_GCOL, (uint32_t)(n_glob - g < gchunk ? n_glob - g : gchunk), (uint32_t)g);
      pass_body(&c);
    }
    put(&c, OP_STORE, (uint32_t)rows, (uint32_t)r0);
  }
  if (!c.oom)
    c.w[loop] = acc_encode((AccInsn){OP_HEADS, 0, (uint16_t)s->heads, (uint32_t)(c.n - 1 - loop)});
  put(&c, OP_END, 0, 0);
  if (c.n - 1 > UINT32_MAX)
    c.oom = true;

  int64_t *header = out->header, *mask = out->mask;
  header[H_BATCH] = s->batch, header[H_HEADS] = s->heads, header[H_KV_HEADS] = s->kv_heads;
  header[H_SEQ] = S, header[H_HEAD_DIM] = s->head_dim, header[H_LAYOUT] = s->layout;
  header[H_STORAGE] = s->storage, header[H_OUTPUT] = s->output;
  memcpy(&header[H_SCALE_BITS], &s->scale, sizeof s->scale);
  header[H_ROWS] = R, header[H_COLS] = C, header[H_GLOBAL_PES] = G;
  mask[M_CAUSAL] = s->causal;
  mask[M_HAS_WINDOW] = s->has_window, mask[M_WINDOW] = s->window, mask[M_DILATION] = s->dilation;
  mask[M_HAS_WINDOW2D] = s->has_window2d, mask[M_IMAGE_H] = s->image_h, mask[M_IMAGE_W] = s->image_w;
  mask[M_WIN_H] = s->win_h, mask[M_WIN_W] = s->win_w, mask[M_IMAGE_OFFSET] = s->image_offset;
  mask[M_BLOCK] = s->block, mask[M_HAS_BIGBIRD] = s->has_bigbird, mask[M_BB_WINDOW] = s->bb_window;
  mask[M_BB_RANDOM] = s->bb_random, mask[M_BB_GLOBAL] = s->bb_global, mask[M_BB_SEED] = (int64_t)s->bb_seed;
  out->dynamic = dynamic;
  if (dynamic)
    dynamic_fields(s, out->dyn);
  snprintf(out->name, sizeof out->name, "%s", s->name ? s->name : "attention");
  out->config_hash = sa_accel_config_hash(cfg);
  out->offsets = off, out->n_offsets = n_off;
  out->code = c.w, out->n_code = c.n;
  out->n_globals = s->n_global, out->n_blocks = s->n_block_pairs;
  if (oom || c.oom || !dup_array((void **)&out->globals, s->global, (size_t)s->n_global, sizeof *s->global) ||
      !dup_array((void **)&out->blocks, s->block_pairs, (size_t)s->n_block_pairs, sizeof *s->block_pairs)) {
    cg_accel_free(out);
    return fail(err, cap, "out of memory scheduling the accelerator stream");
  }
  return true;
}
