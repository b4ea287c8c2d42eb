/* sattn-eval: how close each approximate pattern is to full attention.
 *
 *   sattn-eval [--data DIR]... [--synthetic A,A,...] [--gaussian] [--seq N]
 *              [--heads N] [--head-dim N] [--seed S] [--only FAMILY] [--json OUT]
 *
 * For every data set and every setting of the table below it runs the
 * reference semantics twice, dense and with the setting, and reports: the
 * output's relative error against dense, the dense probability mass the
 * setting keeps, the recall of the true top-k keys (k = the keys the setting
 * kept in that row), the fraction of scores that reach softmax, and the same
 * error and mass for a random selection of the same density (the same rows,
 * each with the same number of keys drawn uniformly), which a useful
 * dynamic pattern must beat.
 *
 * Data comes in three tiers, always labelled in the output:
 *   real       tensors of trained models: every DIR given holds files
 *              NAME.shapes.json and NAME.L.{q,k,v}.f32 (../shared/data layout)
 *   synthetic  a seeded generator with planted structure (strength A; see
 *              docs/fidelity.md for its definition)
 *   gaussian   iid N(0, 1) Q, K and V
 * Token and head pruning read the dense layer's own importance outputs as
 * their inputs (what a previous layer would pass on in SpAtten's cascade).
 * Exit status 1 on a user error or when a setting fails to run. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/reference.h"
#include "sattn/sattn.h"

/* The settings: X(family, label, spec lines). %d in a line is replaced by
 * a value computed from the shape (see setting_text). */
#define SETTINGS(X)                                                                  \
  X("nm", "N:M 1:2", "pattern nm 1:2")                                              \
  X("nm", "N:M 2:4", "pattern nm 2:4")                                              \
  X("filter", "filter 2-bit top 10%", "pattern filter { round bits=2 keep=top 10% }") \
  X("filter", "filter 4-bit top 10%", "pattern filter { round bits=4 keep=top 10% }") \
  X("filter", "filter 8-bit top 10%", "pattern filter { round bits=8 keep=top 10% }") \
  X("filter", "filter 2-bit top 25%", "pattern filter { round bits=2 keep=top 25% }") \
  X("filter", "filter 4-bit top 25%", "pattern filter { round bits=4 keep=top 25% }") \
  X("filter", "filter 4-bit mean+0", "pattern filter { round bits=4 keep=mean+0.0 }") \
  X("filter", "Energon 4/2-bit mean, 4-bit top 25%",                                 \
    "pattern filter { round qbits=4 kbits=2 keep=mean+0.0 round bits=4 keep=top 25% }") \
  X("predict", "DSA dim D/4 4-bit top 10%", "pattern predict dim=PDIM4 bits=4 keep=top 10% seed=1") \
  X("predict", "DSA dim D/2 4-bit top 10%", "pattern predict dim=PDIM2 bits=4 keep=top 10% seed=1") \
  X("predict", "DSA dim D/2 4-bit top 25%", "pattern predict dim=PDIM2 bits=4 keep=top 25% seed=1") \
  X("predict", "DSA dim D/2 8-bit top 10%", "pattern predict dim=PDIM2 bits=8 keep=top 10% seed=1") \
  X("tokens", "token pruning keep 0.9", "prune tokens=0.9")                          \
  X("tokens", "token pruning keep 0.7", "prune tokens=0.7")                          \
  X("tokens", "token pruning keep 0.5", "prune tokens=0.5")                          \
  X("heads", "head pruning keep 0.75", "prune heads=0.75")                           \
  X("heads", "head pruning keep 0.5", "prune heads=0.5")                             \
  X("values", "value pruning keep 0.5", "prune values=0.5")                          \
  X("values", "value pruning keep 0.2", "prune values=0.2")                          \
  X("progressive", "progressive 4+4 bits, threshold 0.02", "progressive msb=4 lsb=4 threshold=0.02") \
  X("progressive", "progressive 4+4 bits, threshold 0.1", "progressive msb=4 lsb=4 threshold=0.1") \
  X("progressive", "progressive 4+4 bits, threshold 0.3", "progressive msb=4 lsb=4 threshold=0.3")

typedef struct {
  const char *family, *label, *body;
} Setting;

static const Setting settings[] = {
#define X(f, l, b) {f, l, b},
    SETTINGS(X)
#undef X
};
enum { N_SETTINGS = sizeof settings / sizeof *settings };

/* One data set: [1, H, S, D] float32 q, k, v. */
typedef struct {
  char tier[16], name[400];
  int64_t heads, seq, dim;
  float *q, *k, *v;
} DataSet;

/* ---- data ---- */

static float *read_exact(const char *path, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  float *p = malloc(n * sizeof *p);
  if (p && fread(p, sizeof *p, n, f) != n) {
    free(p);
    p = NULL;
  }
  fclose(f);
  return p;
}

/* Adds every tensor set of one shapes.json file: entries "L.q": [1, H, S, D]. */
static int load_shapes(const char *dir, const char *file, DataSet **sets, int *n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  char text[8192];
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[len] = 0;
  char stem[256];
  snprintf(stem, sizeof stem, "%.*s", (int)(strlen(file) - strlen(".shapes.json")), file);
  int added = 0;
  for (char *p = text; (p = strstr(p, ".q\"")) != NULL; p += 3) {
    char *open = p;
    while (open > text && open[-1] != '"')
      open--;
    char layer[64];
    snprintf(layer, sizeof layer, "%.*s", (int)(p - open), open);
    long long b, h, s, d;
    if (sscanf(p, ".q\": [%lld, %lld, %lld, %lld]", &b, &h, &s, &d) != 4 || b != 1)
      continue;
    DataSet ds = {.heads = h, .seq = s, .dim = d};
    snprintf(ds.tier, sizeof ds.tier, "real");
    snprintf(ds.name, sizeof ds.name, "%s.%s", stem, layer);
    size_t count = (size_t)(h * s * d);
    char tp[1500];
    snprintf(tp, sizeof tp, "%s/%s.q.f32", dir, ds.name);
    ds.q = read_exact(tp, count);
    snprintf(tp, sizeof tp, "%s/%s.k.f32", dir, ds.name);
    ds.k = read_exact(tp, count);
    snprintf(tp, sizeof tp, "%s/%s.v.f32", dir, ds.name);
    ds.v = read_exact(tp, count);
    if (!ds.q || !ds.k || !ds.v) {
      fprintf(stderr, "sattn-eval: error: cannot read the tensors of %s/%s\n", dir, ds.name);
      free(ds.q), free(ds.k), free(ds.v);
      return -1;
    }
    DataSet *g = realloc(*sets, (size_t)(*n + 1) * sizeof *g);
    if (!g)
      return -1;
    *sets = g;
    (*sets)[(*n)++] = ds;
    added++;
  }
  return added;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_dir(const char *dir, DataSet **sets, int *n) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "sattn-eval: error: cannot open data folder '%s'\n", dir);
    return -1;
  }
  char *names[256];
  int count = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL && count < 256;) {
    size_t l = strlen(e->d_name);
    if (l > 12 && strcmp(e->d_name + l - 12, ".shapes.json") == 0)
      names[count++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)count, sizeof *names, cmp_str);
  int total = 0;
  for (int i = 0; i < count; i++) {
    int r = names[i] ? load_shapes(dir, names[i], sets, n) : -1;
    total = total < 0 || r < 0 ? -1 : total + r;
    free(names[i]);
  }
  if (total == 0)
    fprintf(stderr, "sattn-eval: error: no NAME.shapes.json with tensors in '%s'\n", dir);
  return total > 0 ? total : -1;
}

/* iid Gaussian (a = 0) or the planted generator: each query gets +a on the
 * logits of 16 random keys, +a/2 on the keys within 8 positions, and +a on
 * key 0 (a sink), planted through Q: q_i += a * sqrt(D) * k_j / |k_j|^2 for
 * each planted key j (halved for the band), which adds a to q_i . k_j /
 * sqrt(D) exactly and little elsewhere. */
static DataSet make_synthetic(double a, int64_t H, int64_t S, int64_t D, uint64_t seed) {
  DataSet ds = {.heads = H, .seq = S, .dim = D};
  snprintf(ds.tier, sizeof ds.tier, a > 0 ? "synthetic" : "gaussian");
  if (a > 0)
    snprintf(ds.name, sizeof ds.name, "planted a=%g seed=%llu", a, (unsigned long long)seed);
  else
    snprintf(ds.name, sizeof ds.name, "iid N(0,1) seed=%llu", (unsigned long long)seed);
  size_t n = (size_t)(H * S * D);
  ds.q = malloc(n * sizeof(float));
  ds.k = malloc(n * sizeof(float));
  ds.v = malloc(n * sizeof(float));
  double *acc = malloc((size_t)D * sizeof *acc);
  if (!ds.q || !ds.k || !ds.v || !acc) {
    free(acc);
    return ds;
  }
  uint64_t st = seed;
  for (size_t i = 0; i < n; i++) {
    ds.k[i] = (float)sa_gaussian(&st);
    ds.v[i] = (float)sa_gaussian(&st);
    ds.q[i] = (float)sa_gaussian(&st);
  }
  for (int64_t h = 0; a > 0 && h < H; h++) {
    const float *K = ds.k + h * S * D;
    for (int64_t i = 0; i < S; i++) {
      for (int64_t d = 0; d < D; d++)
        acc[d] = 0;
      for (int r = 0; r < 18 + 17; r++) {
        int64_t j;
        double w = a;
        if (r < 16)
          j = (int64_t)(sa_splitmix64(&st) % (uint64_t)S); /* relevant keys */
        else if (r == 16)
          j = 0; /* the sink */
        else if (r == 17)
          continue;
        else {
          j = i + (r - 18) - 8; /* the band, i-8 .. i+8 */
          w = a / 2;
          if (j < 0 || j >= S)
            continue;
        }
        double nrm = 0;
        for (int64_t d = 0; d < D; d++)
          nrm += (double)K[j * D + d] * K[j * D + d];
        for (int64_t d = 0; d < D; d++)
          acc[d] += w * sqrt((double)D) * K[j * D + d] / nrm;
      }
      for (int64_t d = 0; d < D; d++)
        ds.q[(h * S + i) * D + d] += (float)acc[d];
    }
  }
  free(acc);
  return ds;
}

/* ---- one setting on one data set ---- */

/* The spec text of a setting for a shape, with its placeholders filled. */
static void setting_text(const Setting *st, const DataSet *ds, char *out, size_t cap) {
  char body[256];
  snprintf(body, sizeof body, "%s", st->body);
  struct {
    const char *key;
    long long val;
  } subs[] = {{"PDIM4", ds->dim / 4 > 1 ? ds->dim / 4 : 1},
              {"PDIM2", ds->dim / 2 > 1 ? ds->dim / 2 : 1}};
  for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
    char *p = strstr(body, subs[i].key);
    if (p) {
      char tail[256];
      snprintf(tail, sizeof tail, "%s", p + strlen(subs[i].key));
      snprintf(p, sizeof body - (size_t)(p - body), "%lld%s", subs[i].val, tail);
    }
  }
  snprintf(out, cap, "attention eval {\n  shape heads=%lld seq=%lld head_dim=%lld\n  %s\n}\n", (long long)ds->heads,
           (long long)ds->seq, (long long)ds->dim, body);
}

typedef struct {
  double rel_error, mass, recall, kept_scores, kept_weights, random_rel_error, random_mass;
} Metrics;

typedef struct {
  float *out, *probs, *tok_out, *head_out;
  uint8_t *surv;
} Run;

static bool run_spec(const char *text, const DataSet *ds, const float *tok_in, const float *head_in, Run *r,
                     double *kept) {
  SattnContext *ctx = sattn_context_create();
  SattnModule *m = NULL;
  bool ok = ctx && sattn_module_parse(ctx, "<setting>", text, strlen(text), &m) == SA_OK;
  if (ok) {
    SaProblem p = {.batch = 1, .seq = ds->seq, .q = ds->q, .k = ds->k, .v = ds->v, .out = r->out,
                   .token_importance_in = tok_in, .token_importance_out = r->tok_out,
                   .head_importance_in = head_in, .head_importance_out = r->head_out,
                   .survivors_out = r->surv, .probs_out = r->probs};
    SaStatus s = sa_reference(sattn_module_kernel(m, 0), &p, kept);
    if (s != SA_OK) {
      fprintf(stderr, "sattn-eval: error: the reference failed: %s\n", sa_status_name(s));
      ok = false;
    }
  } else if (!ctx) {
    fputs("sattn-eval: error: out of memory\n", stderr);
  }
  sattn_module_destroy(m);
  sattn_context_destroy(ctx);
  return ok;
}

static double rel_err(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : 0;
}

/* Row attention over an explicit key set, in double (the random baseline). */
static void masked_row(const DataSet *ds, int64_t h, int64_t i, const uint8_t *keep, double scale, float *out) {
  int64_t S = ds->seq, D = ds->dim;
  const float *q = ds->q + (h * S + i) * D, *K = ds->k + h * S * D, *V = ds->v + h * S * D;
  double m = -INFINITY, sum = 0;
  double *s = malloc((size_t)S * sizeof *s);
  if (!s)
    return;
  for (int64_t j = 0; j < S; j++) {
    if (!keep[j])
      continue;
    double acc = 0;
    for (int64_t d = 0; d < D; d++)
      acc += (double)q[d] * K[j * D + d];
    s[j] = scale * acc;
    m = fmax(m, s[j]);
  }
  for (int64_t d = 0; d < D; d++)
    out[d] = 0;
  for (int64_t j = 0; j < S; j++)
    if (keep[j])
      sum += (s[j] = exp(s[j] - m));
  for (int64_t j = 0; j < S; j++)
    if (keep[j])
      for (int64_t d = 0; d < D; d++)
        out[d] += (float)(s[j] / sum * V[j * D + d]);
  free(s);
}

static int cmp_desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Compares a setting's run with the dense one. */
static Metrics measure(const DataSet *ds, const Run *dense, const Run *sp, double kept, uint64_t seed) {
  int64_t H = ds->heads, S = ds->seq, D = ds->dim;
  size_t n_out = (size_t)(H * S * D);
  Metrics m = {.kept_scores = kept};
  m.rel_error = rel_err(sp->out, dense->out, n_out);
  float *rnd = calloc(n_out, sizeof *rnd), *sorted = malloc((size_t)S * sizeof *sorted);
  uint8_t *keep = malloc((size_t)S);
  uint64_t st = seed;
  double mass = 0, rmass = 0, recall = 0, weights = 0;
  int64_t rows = 0, recall_rows = 0;
  for (int64_t h = 0; rnd && sorted && keep && h < H; h++)
    for (int64_t i = 0; i < S; i++, rows++) {
      size_t row = (size_t)((h * S + i) * S);
      const float *pd = dense->probs + row, *ps = sp->probs + row;
      int64_t k = 0;
      double ms = 0;
      for (int64_t j = 0; j < S; j++)
        if (ps[j] > 0) {
          k++;
          ms += pd[j];
        }
      mass += ms;
      weights += (double)k;
      if (k == 0)
        continue;
      /* recall of the true top-k */
      memcpy(sorted, pd, (size_t)S * sizeof *sorted);
      qsort(sorted, (size_t)S, sizeof *sorted, cmp_desc);
      float kth = sorted[k - 1];
      int64_t above = 0, hit = 0, ties_hit = 0;
      for (int64_t j = 0; j < S; j++) {
        if (pd[j] > kth) {
          above++;
          hit += ps[j] > 0;
        } else if (pd[j] == kth) {
          ties_hit += ps[j] > 0;
        }
      }
      /* ties at the k-th value count as hits up to the slots they fill */
      int64_t slots = k - above;
      recall += (double)(hit + (ties_hit < slots ? ties_hit : slots)) / (double)k;
      recall_rows++;
      /* random baseline: k keys uniformly from the row (Floyd's sampling) */
      memset(keep, 0, (size_t)S);
      for (int64_t t = S - k; t < S; t++) {
        int64_t j = (int64_t)(sa_splitmix64(&st) % (uint64_t)(t + 1));
        keep[keep[j] ? t : j] = 1;
      }
      double rm = 0;
      for (int64_t j = 0; j < S; j++)
        rm += keep[j] ? pd[j] : 0;
      rmass += rm;
      masked_row(ds, h, i, keep, 1.0 / sqrt((double)D), rnd + (h * S + i) * D);
    }
  m.mass = rows ? mass / (double)rows : 0;
  m.recall = recall_rows ? recall / (double)recall_rows : 0;
  m.kept_weights = rows ? weights / ((double)rows * (double)S) : 0;
  m.random_mass = rows ? rmass / (double)rows : 0;
  m.random_rel_error = rnd ? rel_err(rnd, dense->out, n_out) : NAN;
  free(rnd), free(sorted), free(keep);
  return m;
}

/* The oracle: each row keeps its true top `ratio` keys by dense
 * probability (not a pattern: it needs the dense scores). The best any
 * selection of that size can do, for scale. */
static void oracle_topk(const DataSet *ds, const Run *dense, double ratio, Run *out) {
  int64_t H = ds->heads, S = ds->seq, D = ds->dim, k = (int64_t)ceil(ratio * (double)S);
  float *sorted = malloc((size_t)S * sizeof *sorted);
  uint8_t *keep = malloc((size_t)S);
  for (int64_t h = 0; sorted && keep && h < H; h++)
    for (int64_t i = 0; i < S; i++) {
      size_t row = (size_t)((h * S + i) * S);
      memcpy(sorted, dense->probs + row, (size_t)S * sizeof *sorted);
      qsort(sorted, (size_t)S, sizeof *sorted, cmp_desc);
      float kth = sorted[k - 1];
      int64_t taken = 0;
      for (int64_t j = 0; j < S; j++) /* above the k-th, then ties in index order */
        keep[j] = dense->probs[row + (size_t)j] > kth;
      for (int64_t j = 0; j < S; j++)
        taken += keep[j];
      for (int64_t j = 0; j < S && taken < k; j++)
        if (!keep[j] && dense->probs[row + (size_t)j] == kth) {
          keep[j] = 1;
          taken++;
        }
      masked_row(ds, h, i, keep, 1.0 / sqrt((double)D), out->out + (h * S + i) * D);
      for (int64_t j = 0; j < S; j++)
        out->probs[row + (size_t)j] = keep[j] ? dense->probs[row + (size_t)j] + 1e-30f : 0.0f;
    }
  free(sorted);
  free(keep);
}

static bool alloc_run(Run *r, const DataSet *ds) {
  size_t nss = (size_t)(ds->heads * ds->seq * ds->seq);
  r->out = malloc((size_t)(ds->heads * ds->seq * ds->dim) * sizeof(float));
  r->probs = malloc(nss * sizeof(float));
  r->surv = malloc(nss);
  r->tok_out = malloc((size_t)ds->seq * sizeof(float));
  r->head_out = malloc((size_t)ds->heads * sizeof(float));
  return r->out && r->probs && r->surv && r->tok_out && r->head_out;
}

static void free_run(Run *r) { free(r->out), free(r->probs), free(r->surv), free(r->tok_out), free(r->head_out); }

static bool eval_set(const DataSet *ds, const char *only, uint64_t seed, FILE *json, bool *first) {
  Run dense = {0}, sp = {0};
  bool ok = alloc_run(&dense, ds) && alloc_run(&sp, ds);
  char text[1024];
  double kept = 0;
  snprintf(text, sizeof text, "attention eval {\n  shape heads=%lld seq=%lld head_dim=%lld\n}\n", (long long)ds->heads,
           (long long)ds->seq, (long long)ds->dim);
  ok = ok && run_spec(text, ds, NULL, NULL, &dense, &kept);
  /* the top-10% mass: how concentrated this data set's attention is */
  double top10 = 0;
  float *sorted = malloc((size_t)ds->seq * sizeof *sorted);
  int64_t k10 = (int64_t)ceil(0.1 * (double)ds->seq);
  for (int64_t r = 0; ok && sorted && r < ds->heads * ds->seq; r++) {
    memcpy(sorted, dense.probs + r * ds->seq, (size_t)ds->seq * sizeof *sorted);
    qsort(sorted, (size_t)ds->seq, sizeof *sorted, cmp_desc);
    for (int64_t j = 0; j < k10; j++)
      top10 += sorted[j];
  }
  free(sorted);
  top10 /= (double)(ds->heads * ds->seq);
  printf("\n[%s] %s: heads=%lld seq=%lld head_dim=%lld, dense top-10%% mass %.3f\n", ds->tier, ds->name,
         (long long)ds->heads, (long long)ds->seq, (long long)ds->dim, top10);
  printf("  %-40s %8s %8s %8s %8s %8s %10s %9s %s\n", "setting", "kept", "weights", "rel.err", "mass", "recall",
         "rand.err", "rand.mass", "beats random on");
  static const Setting oracles[] = {{"oracle", "oracle top 10% (not a pattern)", NULL},
                                    {"oracle", "oracle top 25% (not a pattern)", NULL}};
  for (int i = 0; ok && i < N_SETTINGS + 2; i++) {
    const Setting *st = i < N_SETTINGS ? &settings[i] : &oracles[i - N_SETTINGS];
    if (only && strcmp(only, st->family) != 0)
      continue;
    if (st->body) {
      setting_text(st, ds, text, sizeof text);
      /* the dense layer's importance outputs feed token and head pruning */
      bool imp = !strcmp(st->family, "tokens") || !strcmp(st->family, "heads");
      ok = run_spec(text, ds, imp ? dense.tok_out : NULL, imp ? dense.head_out : NULL, &sp, &kept);
    } else {
      double ratio = i == N_SETTINGS ? 0.10 : 0.25;
      oracle_topk(ds, &dense, ratio, &sp);
      kept = ceil(ratio * (double)ds->seq) / (double)ds->seq;
    }
    if (!ok)
      break;
    Metrics m = measure(ds, &dense, &sp, kept, seed + (uint64_t)i);
    /* progressive quantization keeps every key and head pruning whole rows:
     * a random selection of the same density is the same selection */
    bool selects = strcmp(st->family, "progressive") != 0 && strcmp(st->family, "heads") != 0;
    const char *beats = !selects                                                      ? "n/a"
                        : m.rel_error < m.random_rel_error && m.mass > m.random_mass ? "both"
                        : m.mass > m.random_mass                                     ? "mass only"
                        : m.rel_error < m.random_rel_error                           ? "error only"
                                                                                     : "neither";
    printf("  %-40s %8.4f %8.4f %8.2e %8.4f %8.4f %10.2e %9.4f %s\n", st->label, m.kept_scores, m.kept_weights,
           m.rel_error, m.mass, m.recall, m.random_rel_error, m.random_mass, beats);
    if (json) {
      fprintf(json,
              "%s  {\"tier\": \"%s\", \"data\": \"%s\", \"heads\": %lld, \"seq\": %lld, \"head_dim\": %lld, "
              "\"dense_top10_mass\": %.4f, \"family\": \"%s\", \"setting\": \"%s\", \"kept_scores\": %.5f, "
              "\"kept_weights\": %.5f, \"rel_error\": %.5e, \"mass\": %.5f, \"recall\": %.5f, "
              "\"random_rel_error\": %.5e, \"random_mass\": %.5f, \"beats_random\": \"%s\"}",
              *first ? "" : ",\n", ds->tier, ds->name, (long long)ds->heads, (long long)ds->seq, (long long)ds->dim,
              top10, st->family, st->label, m.kept_scores, m.kept_weights, m.rel_error, m.mass, m.recall,
              m.random_rel_error, m.random_mass, beats);
      *first = false;
    }
  }
  free_run(&dense);
  free_run(&sp);
  return ok;
}

int main(int argc, char **argv) {
  const char *dirs[16], *json_path = NULL, *only = NULL;
  int n_dirs = 0;
  double strengths[8];
  int n_strengths = 0;
  bool gaussian = false;
  int64_t seq = 512, heads = 4, dim = 64;
  uint64_t seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has = i + 1 < argc;
    if (!strcmp(a, "--data") && has && n_dirs < 16) {
      dirs[n_dirs++] = argv[++i];
    } else if (!strcmp(a, "--synthetic") && has) {
      for (char *p = argv[++i]; *p && n_strengths < 8;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v <= 0) {
          fprintf(stderr, "sattn-eval: error: --synthetic takes positive strengths, e.g. 2,4,6\n");
          return 2;
        }
        strengths[n_strengths++] = v;
        p = *end == ',' ? end + 1 : end;
      }
    } else if (!strcmp(a, "--gaussian")) {
      gaussian = true;
    } else if ((!strcmp(a, "--seq") || !strcmp(a, "--heads") || !strcmp(a, "--head-dim")) && has) {
      long long v = atoll(argv[++i]);
      if (v < 1) {
        fprintf(stderr, "sattn-eval: error: %s needs a positive integer\n", a);
        return 2;
      }
      *(!strcmp(a, "--seq") ? &seq : !strcmp(a, "--heads") ? &heads : &dim) = v;
    } else if (!strcmp(a, "--seed") && has) {
      seed = strtoull(argv[++i], NULL, 0);
    } else if (!strcmp(a, "--only") && has) {
      only = argv[++i];
    } else if (!strcmp(a, "--json") && has) {
      json_path = argv[++i];
    } else {
      fprintf(stderr, "sattn-eval: error: unknown or incomplete option '%s'\n"
                      "usage: sattn-eval [--data DIR]... [--synthetic A,A,...] [--gaussian] [--seq N] [--heads N]\n"
                      "                  [--head-dim N] [--seed S] [--only FAMILY] [--json OUT]\n",
              a);
      return 2;
    }
  }
  DataSet *sets = NULL;
  int n = 0;
  for (int i = 0; i < n_dirs; i++)
    if (load_dir(dirs[i], &sets, &n) < 0)
      return 1;
  for (int i = 0; i < n_strengths; i++) {
    DataSet ds = make_synthetic(strengths[i], heads, seq, dim, seed);
    DataSet *g = realloc(sets, (size_t)(n + 1) * sizeof *g);
    if (!g || !ds.q)
      return 1;
    sets = g;
    sets[n++] = ds;
  }
  if (gaussian) {
    DataSet ds = make_synthetic(0, heads, seq, dim, seed);
    DataSet *g = realloc(sets, (size_t)(n + 1) * sizeof *g);
    if (!g || !ds.q)
      return 1;
    sets = g;
    sets[n++] = ds;
  }
  if (n == 0) {
    fputs("sattn-eval: error: no data: give --data DIR, --synthetic A,... or --gaussian\n", stderr);
    return 2;
  }
  FILE *json = NULL;
  if (json_path && !(json = fopen(json_path, "w"))) {
    fprintf(stderr, "sattn-eval: error: cannot write '%s'\n", json_path);
    return 1;
  }
  if (json)
    fputs("[\n", json);
  bool ok = true, first = true;
  for (int i = 0; i < n && ok; i++)
    ok = eval_set(&sets[i], only, seed, json, &first);
  if (json) {
    fputs("\n]\n", json);
    fclose(json);
  }
  for (int i = 0; i < n; i++)
    free(sets[i].q), free(sets[i].k), free(sets[i].v);
  free(sets);
  return ok ? 0 : 1;
}
