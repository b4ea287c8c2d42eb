/* sattn-bench: times compiled CPU kernels and, in the same run, the dense
 * baselines a user would otherwise call, against the machine's measured
 * FP32 FMA peak.
 *
 *   sattn-bench FILE [--kernel NAME] [--seq LIST] [--threads LIST]
 *               [--reps N] [--baselines] [--json OUT]
 *
 * Every spec of FILE (or the one named) is compiled through the JIT for
 * each sequence length and timed for each thread count: a warm-up call, then
 * --reps calls (default 5); the median, minimum and maximum are reported.
 * Useful work counts 4 * head_dim flops per (query, key) pair the pattern
 * keeps (Q K^T and P V; exponentials not counted): the static pattern's pairs
 * exactly, times the keep ratio of top-ratio selections and N/M for N:M.
 * --baselines also times, on the same shapes (fp32, dense, non-causal):
 *   naive     a plain C loop, one query row at a time
 *   openblas  cblas_sgemm + C softmax + cblas_sgemm per head, BLAS threads
 *             (run with OPENBLAS_CORETYPE=SkylakeX to get its AVX-512 kernel)
 *   onednn    batched matmul + softmax primitive + matmul
 * (each when the build found its library). The peak is measured first with
 * independent FMA chains on 512-bit (else 256-bit) vectors, on 1 and on all
 * threads. Exit status 1 on a user error. */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sattn/reference.h"
#include "sattn/sattn.h"
#ifdef SATTN_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef SATTN_HAVE_DNNL
#include <dnnl.h>
#endif

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  double median, min, max;
} Timing;

/* One warm-up call, then reps timed calls. */
static Timing time_calls(void (*fn)(void *), void *ctx, int reps) {
  double t[64];
  if (reps > 64)
    reps = 64;
  fn(ctx);
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    fn(ctx);
    t[r] = now_s() - t0;
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_d);
  return (Timing){t[reps / 2], t[0], t[reps - 1]};
}

/* ---- the machine's FMA peak ---- */

/* 12 independent accumulators, written out so that they stay in registers
 * whatever the optimizer does with loops over arrays. */
#define CHAINS 12
#define FOR12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
static long peak_iters = 20000000;

__attribute__((target("avx512f"))) static float fma_loop_512(long n) {
  __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)i);
  FOR12(DECL)
#undef DECL
  for (long k = 0; k < n; k++) {
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, b, c);
    FOR12(STEP)
#undef STEP
  }
  float s = 0;
#define SUM(i) s += _mm512_reduce_add_ps(a##i);
  FOR12(SUM)
#undef SUM
  return s;
}

__attribute__((target("avx2,fma"))) static float fma_loop_256(long n) {
  __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)i);
  FOR12(DECL)
#undef DECL
  for (long k = 0; k < n; k++) {
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, b, c);
    FOR12(STEP)
#undef STEP
  }
  float buf[8], s = 0;
#define SUM(i)                    \
  _mm256_storeu_ps(buf, a##i);    \
  for (int j = 0; j < 8; j++)     \
    s += buf[j];
  FOR12(SUM)
#undef SUM
  return s;
}

static bool have_512;
static volatile float peak_sink;

static void *peak_thread(void *arg) {
  (void)arg;
  peak_sink = have_512 ? fma_loop_512(peak_iters) : fma_loop_256(peak_iters);
  return NULL;
}

/* GFLOP/s of `threads` threads running independent FMA chains. */
static double measure_peak(int threads) {
  pthread_t t[64];
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
      pthread_create(&t[i], NULL, peak_thread, NULL);
    for (int i = 0; i < threads; i++)
      pthread_join(t[i], NULL);
    double sec = now_s() - t0;
    double flops = (double)threads * (double)peak_iters * CHAINS * (have_512 ? 16 : 8) * 2;
    best = fmax(best, flops / sec / 1e9);
  }
  return best;
}

static void cpu_model(char *out, size_t cap) {
  snprintf(out, cap, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10)) {
      char *p = strchr(line, ':');
      if (p) {
        snprintf(out, cap, "%s", p + 2);
        out[strcspn(out, "\n")] = 0;
      }
      break;
    }
  if (f)
    fclose(f);
}

/* ---- inputs ---- */

typedef struct {
  int64_t bh, S, D;
  float *q, *k, *v, *o;
  float *scores; /* baselines: [bh, S, S] */
  double scale;
} Dense;

/* n floats, 64-byte aligned as PyTorch's CPU allocator gives them (and
 * the baselines get the same tensors). */
static float *tensor(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

static float *rand_tensor(size_t n, uint64_t *st) {
  float *x = tensor(n);
  for (size_t i = 0; x && i < n; i++)
    x[i] = (float)((double)(sa_splitmix64(st) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  return x;
}

/* ---- baselines ---- */

#ifdef SATTN_HAVE_OPENBLAS
/* Row softmax for the baselines, compiled for AVX-512 with fast math so
 * that GCC calls glibc's vector expf (libmvec), as a tuned user's code
 * would; the kernels under test get no such help. */
__attribute__((target("avx512f"), optimize("O3", "fast-math"))) static void softmax_rows_512(float *s, int64_t rows,
                                                                                            int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    float *x = s + r * n, m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++)
      m = x[j] > m ? x[j] : m;
    for (int64_t j = 0; j < n; j++)
      sum += (x[j] = expf(x[j] - m));
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++)
      x[j] *= inv;
  }
}
#endif

static void softmax_rows_plain(float *s, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    float *x = s + r * n, m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++)
      m = x[j] > m ? x[j] : m;
    for (int64_t j = 0; j < n; j++)
      sum += (x[j] = expf(x[j] - m));
    for (int64_t j = 0; j < n; j++)
      x[j] /= sum;
  }
}

static void naive_run(void *ctx) {
  Dense *d = ctx;
  int64_t S = d->S, D = d->D;
  float *row = d->scores;
  for (int64_t h = 0; h < d->bh; h++)
    for (int64_t i = 0; i < S; i++) {
      const float *q = d->q + (h * S + i) * D;
      for (int64_t j = 0; j < S; j++) {
        float acc = 0;
        for (int64_t e = 0; e < D; e++)
          acc += q[e] * d->k[(h * S + j) * D + e];
        row[j] = acc * (float)d->scale;
      }
      softmax_rows_plain(row, 1, S);
      float *o = d->o + (h * S + i) * D;
      for (int64_t e = 0; e < D; e++)
        o[e] = 0;
      for (int64_t j = 0; j < S; j++)
        for (int64_t e = 0; e < D; e++)
          o[e] += row[j] * d->v[(h * S + j) * D + e];
    }
}

#ifdef SATTN_HAVE_OPENBLAS
static void softmax_rows(float *s, int64_t rows, int64_t n) {
  if (__builtin_cpu_supports("avx512f"))
    softmax_rows_512(s, rows, n);
  else
    softmax_rows_plain(s, rows, n);
}

/* One head: sgemm, softmax, sgemm. Heads are spread over the threads (one
 * BLAS thread each), the fastest way found to drive OpenBLAS here. */
static void openblas_head(void *ctx, int64_t h) {
  Dense *d = ctx;
  int S = (int)d->S, D = (int)d->D;
  float *s = d->scores + h * d->S * d->S;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, D, (float)d->scale, d->q + h * S * D, D,
              d->k + h * S * D, D, 0.0f, s, S);
  softmax_rows(s, S, S);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, D, S, 1.0f, s, S, d->v + h * S * D, D, 0.0f,
              d->o + h * S * D, D);
}

static void openblas_run(void *ctx) {
  Dense *d = ctx;
  sattn_cpu_parallel(openblas_head, d, d->bh);
}
#endif

#ifdef SATTN_HAVE_DNNL
typedef struct {
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  dnnl_primitive_t qk, sm, pv;
  dnnl_memory_t mq, mk, mv, ms, mo;
  bool ok;
} Dnnl;

static Dnnl dnnl;

static bool dnnl_setup(Dense *d) {
  memset(&dnnl, 0, sizeof dnnl);
  if (dnnl_engine_create(&dnnl.eng, dnnl_cpu, 0) || dnnl_stream_create(&dnnl.stream, dnnl.eng, dnnl_stream_default_flags))
    return false;
  dnnl_dim_t B = d->bh, S = d->S, D = d->D;
  dnnl_memory_desc_t q_md, kt_md, s_md, v_md, o_md;
  dnnl_dims_t qd = {B, S, D}, ktd = {B, D, S}, sd = {B, S, S};
  dnnl_dims_t kts = {S * D, 1, D}; /* K^T as a strided view of K */
  dnnl_memory_desc_init_by_tag(&q_md, 3, qd, dnnl_f32, dnnl_abc);
  dnnl_memory_desc_init_by_strides(&kt_md, 3, ktd, dnnl_f32, kts);
  dnnl_memory_desc_init_by_tag(&s_md, 3, sd, dnnl_f32, dnnl_abc);
  dnnl_memory_desc_init_by_tag(&v_md, 3, qd, dnnl_f32, dnnl_abc);
  dnnl_memory_desc_init_by_tag(&o_md, 3, qd, dnnl_f32, dnnl_abc);
  dnnl_matmul_desc_t mm1, mm2;
  dnnl_softmax_desc_t smd;
  dnnl_primitive_attr_t attr;
  float scale = (float)d->scale;
  dnnl_primitive_attr_create(&attr);
  dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
  dnnl_primitive_desc_t pd1, pd2, pd3;
  if (dnnl_matmul_desc_init(&mm1, &q_md, &kt_md, NULL, &s_md) ||
      dnnl_primitive_desc_create(&pd1, &mm1, attr, dnnl.eng, NULL) || dnnl_primitive_create(&dnnl.qk, pd1))
    return false;
  if (dnnl_softmax_forward_desc_init(&smd, dnnl_forward_inference, &s_md, 2) ||
      dnnl_primitive_desc_create(&pd2, &smd, NULL, dnnl.eng, NULL) || dnnl_primitive_create(&dnnl.sm, pd2))
    return false;
  if (dnnl_matmul_desc_init(&mm2, &s_md, &v_md, NULL, &o_md) ||
      dnnl_primitive_desc_create(&pd3, &mm2, NULL, dnnl.eng, NULL) || dnnl_primitive_create(&dnnl.pv, pd3))
    return false;
  dnnl_memory_create(&dnnl.mq, &q_md, dnnl.eng, d->q);
  dnnl_memory_create(&dnnl.mk, &kt_md, dnnl.eng, d->k);
  dnnl_memory_create(&dnnl.ms, &s_md, dnnl.eng, d->scores);
  dnnl_memory_create(&dnnl.mv, &v_md, dnnl.eng, d->v);
  dnnl_memory_create(&dnnl.mo, &o_md, dnnl.eng, d->o);
  dnnl_primitive_desc_destroy(pd1), dnnl_primitive_desc_destroy(pd2), dnnl_primitive_desc_destroy(pd3);
  dnnl_primitive_attr_destroy(attr);
  dnnl.ok = true;
  return true;
}

static void dnnl_run(void *ctx) {
  (void)ctx;
  dnnl_exec_arg_t a1[] = {{DNNL_ARG_SRC, dnnl.mq}, {DNNL_ARG_WEIGHTS, dnnl.mk}, {DNNL_ARG_DST, dnnl.ms}};
  dnnl_exec_arg_t a2[] = {{DNNL_ARG_SRC, dnnl.ms}, {DNNL_ARG_DST, dnnl.ms}};
  dnnl_exec_arg_t a3[] = {{DNNL_ARG_SRC, dnnl.ms}, {DNNL_ARG_WEIGHTS, dnnl.mv}, {DNNL_ARG_DST, dnnl.mo}};
  dnnl_primitive_execute(dnnl.qk, dnnl.stream, 3, a1);
  dnnl_primitive_execute(dnnl.sm, dnnl.stream, 2, a2);
  dnnl_primitive_execute(dnnl.pv, dnnl.stream, 3, a3);
  dnnl_stream_wait(dnnl.stream);
}

static void dnnl_teardown(void) {
  if (!dnnl.ok)
    return;
  dnnl_primitive_destroy(dnnl.qk), dnnl_primitive_destroy(dnnl.sm), dnnl_primitive_destroy(dnnl.pv);
  dnnl_memory_t ms[] = {dnnl.mq, dnnl.mk, dnnl.mv, dnnl.ms, dnnl.mo};
  for (int i = 0; i < 5; i++)
    dnnl_memory_destroy(ms[i]);
  dnnl_stream_destroy(dnnl.stream);
  dnnl_engine_destroy(dnnl.eng);
}
#endif

/* omp_set_num_threads from the OpenMP runtime oneDNN and OpenBLAS may use. */
extern void omp_set_num_threads(int) __attribute__((weak));

extern int omp_get_max_threads(void) __attribute__((weak));

static void set_baseline_threads(int n) {
#ifdef SATTN_HAVE_OPENBLAS
  openblas_set_num_threads(1); /* heads are split over the pool instead */
#endif
  sattn_cpu_set_threads(n);
  if (omp_set_num_threads)
    omp_set_num_threads(n);
}

/* ---- the compiled kernels ---- */

typedef struct {
  SattnCpuKernelFn fn;
  const float *q, *k, *v;
  float *o;
  int64_t batch, seq;
  int32_t status;
} KernelCall;

static void kernel_run(void *ctx) {
  KernelCall *c = ctx;
  c->status = c->fn(c->q, c->k, c->v, c->o, c->batch, c->seq, NULL, NULL, NULL, NULL);
}

/* Pairs the pattern keeps, for the useful-work count. */
static double kept_pairs(const SaSpec *s, int64_t S) {
  double pairs = 0;
  bool any_static = s->causal || s->has_window || s->has_window2d || s->n_global || s->block || s->has_bigbird;
  if (!any_static)
    pairs = (double)S * (double)S;
  else
    for (int64_t i = 0; i < S; i++)
      for (int64_t j = 0; j < S; j++)
        pairs += sa_static_allowed(s, S, i, j);
  double ratio = 1;
  if (s->nm_m)
    ratio *= (double)s->nm_n / s->nm_m;
  if (s->has_predict && s->predict_keep.kind == KEEP_TOP_RATIO)
    ratio *= s->predict_keep.value;
  for (int r = 0; r < s->n_filter_rounds; r++)
    if (s->filter[r].keep.kind == KEEP_TOP_RATIO)
      ratio *= s->filter[r].keep.value;
  return pairs * ratio;
}

static int parse_list(const char *s, long *out, int cap) {
  int n = 0;
  while (*s && n < cap) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1)
      return -1;
    out[n++] = v;
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      return -1;
  }
  return n;
}

static FILE *json;
static bool json_first = true;
static double peak1, peakN;
static int peak_threads;

static void report(const char *what, const char *name, const char *pattern, int64_t S, int threads, Timing t,
                   double flops) {
  double gf = flops / t.median / 1e9, peak = threads > 1 ? peakN * threads / peak_threads : peak1;
  printf("%-10s %-22s %-26s %6lld %3d %10.2f %10.2f %10.2f %9.1f %6.1f%%\n", what, name, pattern, (long long)S, threads,
         1e3 * t.median, 1e3 * t.min, 1e3 * t.max, gf, 100 * gf / peak);
  if (json)
    fprintf(json,
            "%s  {\"impl\": \"%s\", \"spec\": \"%s\", \"pattern\": \"%s\", \"seq\": %lld, \"threads\": %d, "
            "\"median_ms\": %.4f, \"min_ms\": %.4f, \"max_ms\": %.4f, \"useful_gflops\": %.2f, \"peak_fraction\": %.4f}",
            json_first ? "" : ",\n", what, name, pattern, (long long)S, threads, 1e3 * t.median, 1e3 * t.min,
            1e3 * t.max, gf, gf / peak);
  json_first = false;
  fflush(stdout);
}

static void pattern_name(const SaSpec *s, char *out, size_t cap) {
  out[0] = 0;
  size_t n = 0;
#define ADD(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
  if (s->causal)
    ADD("causal ");
  if (s->has_window)
    ADD("window %lld ", (long long)s->window);
  if (s->has_window2d)
    ADD("window2d ");
  if (s->n_global)
    ADD("global ");
  if (s->has_bigbird)
    ADD("bigbird ");
  else if (s->block)
    ADD("blocks ");
  if (s->nm_m)
    ADD("nm %d:%d ", s->nm_n, s->nm_m);
  if (s->n_filter_rounds)
    ADD("filter x%d ", s->n_filter_rounds);
  if (s->has_predict)
    ADD("predict ");
  if (n == 0)
    ADD("dense ");
  if (n > 0 && n < cap)
    out[n - 1] = 0;
#undef ADD
}

int main(int argc, char **argv) {
  const char *file = NULL, *kernel = NULL, *json_path = NULL;
  long seqs[16] = {1024, 2048, 4096}, threads[8] = {1, 2};
  int n_seq = 3, n_thr = 2, reps = 5;
  bool baselines = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has = i + 1 < argc;
    if (!strcmp(a, "--kernel") && has)
      kernel = argv[++i];
    else if (!strcmp(a, "--seq") && has)
      n_seq = parse_list(argv[++i], seqs, 16);
    else if (!strcmp(a, "--threads") && has)
      n_thr = parse_list(argv[++i], threads, 8);
    else if (!strcmp(a, "--reps") && has)
      reps = atoi(argv[++i]);
    else if (!strcmp(a, "--json") && has)
      json_path = argv[++i];
    else if (!strcmp(a, "--baselines"))
      baselines = true;
    else if (a[0] != '-' && !file)
      file = a;
    else {
      fprintf(stderr, "usage: sattn-bench FILE [--kernel NAME] [--seq LIST] [--threads LIST] [--reps N] "
                      "[--baselines] [--json OUT]\n");
      return 2;
    }
  }
  if (!file || n_seq < 1 || n_thr < 1 || reps < 1) {
    fprintf(stderr, "sattn-bench: error: need a spec file, and positive --seq, --threads and --reps\n");
    return 2;
  }
  SattnContext *ctx = sattn_context_create();
  SattnModule *mod = NULL;
  if (!ctx || sattn_module_parse_file(ctx, file, &mod) != SA_OK) {
    if (!ctx)
      fputs("sattn-bench: error: out of memory\n", stderr);
    sattn_context_destroy(ctx);
    return 1;
  }

  __builtin_cpu_init();
  have_512 = __builtin_cpu_supports("avx512f");
  char model[256];
  cpu_model(model, sizeof model);
  peak_threads = (int)threads[n_thr - 1];
  for (int i = 0; i < n_thr; i++)
    peak_threads = threads[i] > peak_threads ? (int)threads[i] : peak_threads;
  peak1 = measure_peak(1);
  peakN = measure_peak(peak_threads);
  printf("cpu: %s; FP32 FMA peak (%s): %.1f GFLOP/s on 1 thread, %.1f on %d\n", model, have_512 ? "512-bit" : "256-bit",
         peak1, peakN, peak_threads);
  if (json_path && !(json = fopen(json_path, "w"))) {
    fprintf(stderr, "sattn-bench: error: cannot write '%s'\n", json_path);
    return 1;
  }
  if (json) {
    fprintf(json, "{\"cpu\": \"%s\", \"vector_bits\": %d, \"peak_gflops_1t\": %.2f, \"peak_gflops_%dt\": %.2f, ", model,
            have_512 ? 512 : 256, peak1, peak_threads, peakN);
    fprintf(json, "\"command\": \"");
    for (int i = 0; i < argc; i++)
      fprintf(json, "%s%s", i ? " " : "", argv[i]);
    fprintf(json, "\", \"results\": [\n");
  }
  printf("%-10s %-22s %-26s %6s %3s %10s %10s %10s %9s %7s\n", "impl", "spec", "pattern", "seq", "thr", "median ms",
         "min ms", "max ms", "GFLOP/s", "peak");

  int rc = 0;
  for (int ki = 0; ki < sattn_module_kernel_count(mod); ki++) {
    const char *name = sattn_module_kernel(mod, ki)->name;
    if (kernel && strcmp(name, kernel) != 0)
      continue;
    char pattern[128];
    pattern_name(sattn_module_kernel(mod, ki), pattern, sizeof pattern);
    for (int si = 0; si < n_seq; si++) {
      int64_t S = seqs[si];
      SattnJit *jit = NULL;
      if (sattn_module_set_shape(mod, ki, &(SattnShape){.seq = S}) != SA_OK ||
          sattn_jit_create(mod, &(SattnOptions){.kernel = name}, &jit) != SA_OK) {
        fprintf(stderr, "sattn-bench: error: cannot compile '%s'\n", name);
        rc = 1;
        continue;
      }
      SaSpec s = *sattn_module_kernel(mod, ki);
      int64_t B = s.batch == SA_DYNAMIC ? 1 : s.batch;
      uint64_t st = 7;
      size_t nq = (size_t)(B * s.heads * S * s.head_dim), nkv = (size_t)(B * s.kv_heads * S * s.head_dim);
      KernelCall call = {sattn_jit_lookup(jit, s.name), rand_tensor(nq, &st), rand_tensor(nkv, &st),
                         rand_tensor(nkv, &st), tensor(nq), B, S, 0};
      double flops = 4.0 * (double)s.head_dim * kept_pairs(&s, S) * (double)(B * s.heads);
      for (int ti = 0; ti < n_thr && call.q && call.k && call.v && call.o; ti++) {
        sattn_cpu_set_threads((int)threads[ti]);
        Timing t = time_calls(kernel_run, &call, reps);
        if (call.status != 0) {
          fprintf(stderr, "sattn-bench: error: kernel status %d\n", call.status);
          rc = 1;
          break;
        }
        report("sattn", s.name, pattern, S, (int)threads[ti], t, flops);
      }
      free((void *)call.q), free((void *)call.k), free((void *)call.v), free(call.o);
      sattn_jit_destroy(jit);
    }
  }

  /* Dense baselines on the shape of the first spec (batch x heads, head_dim). */
  for (int si = 0; baselines && si < n_seq && sattn_module_kernel_count(mod) > 0; si++) {
    const SaSpec *s = sattn_module_kernel(mod, 0);
    int64_t S = seqs[si];
    uint64_t st = 7;
    Dense d = {s->heads * (s->batch == SA_DYNAMIC ? 1 : s->batch), S, s->head_dim};
    size_t n = (size_t)(d.bh * S * d.D);
    d.q = rand_tensor(n, &st), d.k = rand_tensor(n, &st), d.v = rand_tensor(n, &st);
    d.o = tensor(n);
    d.scores = tensor((size_t)(d.bh * S * S));
    d.scale = 1.0 / sqrt((double)d.D);
    double flops = 4.0 * (double)d.D * (double)S * (double)S * (double)d.bh;
    if (!d.q || !d.k || !d.v || !d.o || !d.scores) {
      fprintf(stderr, "sattn-bench: error: out of memory for the baselines at seq %lld\n", (long long)S);
      rc = 1;
    } else {
      for (int ti = 0; ti < n_thr; ti++) {
        int thr = (int)threads[ti];
        set_baseline_threads(thr);
#ifdef SATTN_HAVE_OPENBLAS
        report("openblas", "dense", "dense", S, thr, time_calls(openblas_run, &d, reps), flops);
#endif
#ifdef SATTN_HAVE_DNNL
        if (ti == 0 ? dnnl_setup(&d) : dnnl.ok) {
          if (omp_get_max_threads && omp_get_max_threads() != thr)
            fprintf(stderr, "sattn-bench: warning: oneDNN runs %d OpenMP threads, not %d\n", omp_get_max_threads(), thr);
          report("onednn", "dense", "dense", S, thr, time_calls(dnnl_run, &d, reps), flops);
        }
#endif
        if (S <= 2048 && thr == 1) /* the naive loop is for scale, one thread */
          report("naive", "dense", "dense", S, 1, time_calls(naive_run, &d, reps < 3 ? reps : 3), flops);
      }
#ifdef SATTN_HAVE_DNNL
      dnnl_teardown();
#endif
    }
    free(d.q), free(d.k), free(d.v), free(d.o), free(d.scores);
  }
#ifdef SATTN_HAVE_OPENBLAS
  if (baselines)
    printf("openblas: %s\n", openblas_get_config());
#endif
  if (json) {
    fprintf(json, "\n]}\n");
    fclose(json);
  }
  sattn_module_destroy(mod);
  sattn_context_destroy(ctx);
  return rc;
}
