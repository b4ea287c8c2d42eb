/* sattn-gpu: runs CUDA kernels that sattnc compiled elsewhere and checks
 * them against the reference, with only the runtime and the front end (no
 * LLVM, MLIR or CUDA toolkit), for GPU machines that have neither:
 *
 *   sattn-gpu FILE IMAGE [--kernel NAME] [--seq N] [--batch N] [--seed S]
 *             [--input-scale X] [--q F --k F --v F [--expect F]] [--repeat N]
 *             [--no-check] [--json]
 *
 * FILE is the spec file IMAGE (PTX or cubin from `sattnc FILE
 * --target=cuda --emit=ptx|cubin`) was compiled from; each selected spec's
 * kernel runs on fresh random inputs (or the raw fp32 files --q, --k, --v,
 * in [batch, heads, seq, head_dim] order whatever the spec's layout, which
 * also give seq) with a NaN-poisoned output, and its output is
 * compared with the reference (docs/cuda.md has the tolerance); --expect F
 * also reports the error against a known output, such as a model's own.
 * --repeat N also times N launches with CUDA events; --no-check skips the
 * reference (for timing long sequences) and only checks that every output
 * element was written and is finite. SpAtten's pruning kernels also get
 * importance inputs (random, a few tokens already pruned to -inf as a
 * previous layer leaves them), and their importance outputs are compared
 * with the reference's (relative error 1e-4). Exit status: 0 when
 * every kernel is within the tolerance, 1 otherwise or on an error, 2 on
 * bad usage, 77 without a GPU driver. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../compiler/compiler.h"
#include "check.h"
#include "sattn/cuda.h"
#include "sattn/reference.h"
#include "tool.h"

typedef struct {
  const char *file, *image, *kernel, *qf, *kf, *vf, *expect;
  int64_t seq, batch;
  uint64_t seed;
  double input_scale;
  int repeat;
  bool json, no_check;
} Args;

static int usage(FILE *f, int rc) {
  fputs("usage: sattn-gpu FILE IMAGE [--kernel NAME] [--seq N] [--batch N] [--seed S] [--input-scale X]\n"
        "                 [--q F --k F --v F [--expect F]] [--repeat N] [--no-check] [--json]\n",
        f);
  return rc;
}

/* The fraction of (query, key) pairs the static pattern allows, counted on
 * at most 4096 evenly spaced query rows (exact up to S = 4096; the timed
 * patterns are smooth in the row, so the sample's error is far below the
 * timing noise beyond it). */
static double kept_fraction(const SaSpec *s, int64_t S) {
  int64_t step = S > 4096 ? (S + 4095) / 4096 : 1, rows = 0;
  double kept = 0;
  for (int64_t i = 0; i < S; i += step, rows++)
    for (int64_t j = 0; j < S; j++)
      kept += sa_static_allowed(s, S, i, j);
  return kept / ((double)rows * (double)S);
}

/* TFLOP/s of useful work, 4 head_dim flops per allowed pair; 0 untimed. */
static double useful_tflops(const SaSpec *s, double kept, int64_t B, int64_t S, double ms) {
  double flops = 4.0 * (double)s->head_dim * kept * (double)(B * s->heads) * (double)S * (double)S;
  return ms > 0 ? flops / (ms * 1e9) : 0.0;
}

/* Runs one spec's kernel; 0 when within the tolerance, 1 otherwise. */
static int run_one(const Args *a, SaCuda *cu, SaCudaModule *m, const SaSpec *spec) {
  SaSpec s = *spec;
  int64_t S = s.seq != SA_DYNAMIC ? s.seq : a->seq, B = s.batch != SA_DYNAMIC ? s.batch : a->batch;
  if (S <= 0 && a->qf) { /* the length from the query file */
    size_t n;
    if (!chk_f32_count("sattn-gpu", a->qf, &n))
      return 1;
    S = (int64_t)(n / (size_t)(B * s.heads * s.head_dim));
    if (S <= 0) {
      fprintf(stderr, "sattn-gpu: error: '%s' holds fewer values than one query row of spec '%s'\n", a->qf, s.name);
      return 1;
    }
  }
  if (S <= 0 || B <= 0) {
    fprintf(stderr, "sattn-gpu: error: spec '%s' has seq=?: give --seq N or --q FILE\n", s.name);
    return 1;
  }
  s.seq = S;
  s.batch = B;
  size_t nq = (size_t)(B * s.heads * S * s.head_dim), nkv = (size_t)(B * s.kv_heads * S * s.head_dim);
  size_t in_b = (size_t)sa_dtype_bits(s.storage) / 8, out_b = (size_t)sa_dtype_bits(s.output) / 8;
  float *q, *k, *v, *expect = NULL;
  if (a->qf) {
    q = chk_read_f32("sattn-gpu", a->qf, nq);
    k = chk_read_f32("sattn-gpu", a->kf, nkv);
    v = chk_read_f32("sattn-gpu", a->vf, nkv);
  } else {
    q = malloc(nq * sizeof *q), k = malloc(nkv * sizeof *k), v = malloc(nkv * sizeof *v);
  }
  if (a->expect)
    expect = chk_read_f32("sattn-gpu", a->expect, nq);
  float *ref = malloc(nq * sizeof *ref), *got = malloc(nq * sizeof *got);
  void *hq = NULL, *hk = NULL, *hv = NULL, *ho = malloc(nq * out_b + 1);
  SaCudaPtr dq = 0, dk = 0, dv = 0, dout = 0;
  /* pruning kernels: importance vectors, tokens then heads (inputs, the
   * kernel's outputs, the reference's), on the device din and dimp */
  size_t nimp[2] = {(size_t)(B * S), (size_t)(B * s.heads)};
  float *imp_in[2] = {NULL, NULL}, *imp_got[2] = {NULL, NULL}, *imp_ref[2] = {NULL, NULL};
  SaCudaPtr din[2] = {0, 0}, dimp[2] = {0, 0};
  char err[2300] = "";
  int rc = 1;
  uint64_t state = a->seed;
  if ((a->qf && (!q || !k || !v)) || (a->expect && !expect))
    goto done; /* chk_read_f32 said why */
  /* files are [B, H, S, D] whatever the spec's layout (as for sattn-run) */
  float **files[] = {&q, &k, &v, &expect};
  int64_t heads_of[] = {s.heads, s.kv_heads, s.kv_heads, s.heads};
  for (int i = 0; a->qf && s.layout != LAYOUT_BHSD && i < 4; i++) {
    if (!*files[i])
      continue;
    size_t n = (size_t)(B * heads_of[i] * S * s.head_dim);
    float *t = malloc(n * sizeof *t + 1);
    if (!t)
      goto oom;
    chk_to_layout(&s, B, heads_of[i], S, *files[i], t, false);
    free(*files[i]);
    *files[i] = t;
  }
  if (!q || !k || !v || !ref || !got || !ho)
    goto oom;
  /* Timing runs (--no-check) draw 2^20 values per tensor and repeat them:
   * the speed does not depend on the values being fresh, and drawing
   * 10^8 Gaussians took most of a timing run's minute. */
  size_t fresh = a->no_check ? (size_t)1 << 20 : SIZE_MAX;
  for (size_t i = 0; !a->qf && i < nq; i++)
    q[i] = i < fresh ? (float)(sa_gaussian(&state) * a->input_scale) : q[i - fresh];
  for (size_t i = 0; !a->qf && i < nkv; i++) {
    k[i] = i < fresh ? (float)sa_gaussian(&state) : k[i - fresh];
    v[i] = i < fresh ? (float)sa_gaussian(&state) : v[i - fresh];
  }
  if (!(hq = chk_encode(q, nq, s.storage)) || !(hk = chk_encode(k, nkv, s.storage)) ||
      !(hv = chk_encode(v, nkv, s.storage)))
    goto oom;
  SaCudaKernel kd;
  sa_cuda_describe(&s, &kd);
  for (int i = 0; kd.pruning && i < 2; i++) {
    imp_in[i] = malloc(nimp[i] * sizeof(float));
    imp_got[i] = malloc(nimp[i] * sizeof(float));
    imp_ref[i] = malloc(nimp[i] * sizeof(float));
    if (!imp_in[i] || !imp_got[i] || !imp_ref[i])
      goto oom;
    for (size_t j = 0; j < nimp[i]; j++)
      imp_in[i][j] = i == 0 && sa_splitmix64(&state) % 20 == 0 && j % (size_t)S != 0 ? -INFINITY
                                                                                   : (float)fabs(sa_gaussian(&state));
  }
  SaStatus st = SA_OK;
  double ms = 0;
  for (int i = 0; kd.pruning && i < 2 && st == SA_OK; i++) {
    size_t bytes = nimp[i] * sizeof(float);
    if ((st = sa_cuda_alloc(cu, bytes, &din[i], err, sizeof err)) == SA_OK &&
        (st = sa_cuda_upload(cu, din[i], imp_in[i], bytes, err, sizeof err)) == SA_OK &&
        (st = sa_cuda_alloc(cu, bytes, &dimp[i], err, sizeof err)) == SA_OK)
      st = sa_cuda_fill(cu, dimp[i], 0xFF, bytes, err, sizeof err);
  }
  SaCudaImportance imp = {din[0], din[1], dimp[0], dimp[1]};
  if (st != SA_OK || (st = sa_cuda_alloc(cu, nq * in_b, &dq, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_alloc(cu, nkv * in_b, &dk, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_alloc(cu, nkv * in_b, &dv, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_alloc(cu, nq * out_b, &dout, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_upload(cu, dq, hq, nq * in_b, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_upload(cu, dk, hk, nkv * in_b, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_upload(cu, dv, hv, nkv * in_b, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_fill(cu, dout, 0xFF, nq * out_b, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_launch_importance(m, &kd, dq, dk, dv, dout, &imp, B, S, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_sync(cu, err, sizeof err)) != SA_OK ||
      (st = sa_cuda_download(cu, ho, dout, nq * out_b, err, sizeof err)) != SA_OK ||
      (kd.pruning && (st = sa_cuda_download(cu, imp_got[0], dimp[0], nimp[0] * sizeof(float), err, sizeof err)) != SA_OK) ||
      (kd.pruning && (st = sa_cuda_download(cu, imp_got[1], dimp[1], nimp[1] * sizeof(float), err, sizeof err)) != SA_OK) ||
      (a->repeat > 0 && (st = sa_cuda_time(m, &kd, dq, dk, dv, dout, B, S, a->repeat, &ms, err, sizeof err)) != SA_OK)) {
    fprintf(stderr, "sattn-gpu: error: %s: %s (%s)\n", s.name, err, sa_status_name(st));
    goto done;
  }
  chk_decode(ho, nq, s.output, got);
  SaProblem p = {B, S, q, k, v, ref, imp_in[0], imp_ref[0], imp_in[1], imp_ref[1]};
  double kept = 0;
  if (a->no_check) { /* every element written (the poison is NaN) and finite */
    size_t bad = 0;
    for (size_t i = 0; i < nq; i++)
      bad += !isfinite(got[i]);
    kept = kept_fraction(&s, S);
    double tf = useful_tflops(&s, kept, B, S, ms);
    if (a->json)
      printf("{\"kernel\": \"%s\", \"batch\": %lld, \"heads\": %lld, \"seq\": %lld, \"head_dim\": %lld, "
             "\"storage\": \"%s\", \"kept_fraction\": %.6g, \"unwritten_or_nonfinite\": %zu, \"ms\": %.5f, "
             "\"tflops\": %.3f, \"ok\": %s}\n",
             s.name, (long long)B, (long long)s.heads, (long long)S, (long long)s.head_dim, sa_dtype_name(s.storage),
             kept, bad, ms, tf, bad ? "false" : "true");
    else
      printf("%s: batch=%lld seq=%lld head_dim=%lld: %zu outputs unwritten or non-finite; %.4f ms per launch, "
             "%.1f TFLOP/s of useful work\n",
             s.name, (long long)B, (long long)S, (long long)s.head_dim, bad, ms, tf);
    rc = bad ? 1 : 0;
    goto done;
  }
  if ((st = sa_reference(&s, &p, &kept)) != SA_OK) {
    fprintf(stderr, "sattn-gpu: error: the reference failed: %s\n", sa_status_name(st));
    goto done;
  }
  double tol_rel, tol_abs, L = chk_logit_bound(&s, q, nq, k, nkv);
  chk_tolerance(s.output, &tol_rel, &tol_abs);
  tol_rel += L * ldexp(1.0, -24);
  tol_abs += L * ldexp(1.0, -24);
  chk_cuda_widen(&s, L, &tol_rel, &tol_abs);
  ChkErr e = chk_compare(got, ref, nq), ee = {0}, ei[2] = {{0}, {0}};
  bool ok = chk_within(e, tol_rel, tol_abs);
  for (int i = 0; kd.pruning && i < 2; i++) {
    ei[i] = chk_compare(imp_got[i], imp_ref[i], nimp[i]);
    ok = ok && chk_within(ei[i], 1e-4, 1e-4);
  }
  if (expect) /* reported, not judged: the known output was not computed in the kernel's precision */
    ee = chk_compare(got, expect, nq);
  double tf = useful_tflops(&s, kept, B, S, ms);
  if (a->json)
    printf("{\"kernel\": \"%s\", \"batch\": %lld, \"heads\": %lld, \"kv_heads\": %lld, \"seq\": %lld, "
           "\"head_dim\": %lld, \"storage\": \"%s\", \"output\": \"%s\", \"seed\": %llu, \"kept_fraction\": %.6g, "
           "\"max_abs_error\": %.3e, \"rel_error\": %.3e, \"tolerance_rel\": %.2e, \"expected_rel_error\": %.3e, "
           "\"token_importance_rel_error\": %.3e, \"head_importance_rel_error\": %.3e, "
           "\"ms\": %.5f, \"tflops\": %.3f, \"ok\": %s}\n",
           s.name, (long long)B, (long long)s.heads, (long long)s.kv_heads, (long long)S, (long long)s.head_dim,
           sa_dtype_name(s.storage), sa_dtype_name(s.output), (unsigned long long)a->seed, kept, e.max_abs, e.rel,
           tol_rel, expect ? ee.rel : -1.0, kd.pruning ? ei[0].rel : -1.0, kd.pruning ? ei[1].rel : -1.0, ms, tf,
           ok ? "true" : "false");
  else
    printf("%s: batch=%lld seq=%lld head_dim=%lld %s->%s: rel error %.3e (tolerance %.2e), max abs %.3e%s%s\n",
           s.name, (long long)B, (long long)S, (long long)s.head_dim, sa_dtype_name(s.storage),
           sa_dtype_name(s.output), e.rel, tol_rel, e.max_abs, e.mismatch_nonfinite ? ", NON-FINITE MISMATCH" : "",
           ok ? ", ok" : ", FAILED");
  if (!a->json && expect)
    printf("  against %s: relative error %.3e\n", a->expect, ee.rel);
  if (!a->json && kd.pruning)
    printf("  importance: tokens relative error %.3e%s, heads %.3e%s\n", ei[0].rel,
           ei[0].mismatch_nonfinite ? " (NON-FINITE MISMATCH)" : "", ei[1].rel,
           ei[1].mismatch_nonfinite ? " (NON-FINITE MISMATCH)" : "");
  if (!a->json && ms > 0)
    printf("  %.4f ms per launch, %.1f TFLOP/s of useful work\n", ms, tf);
  rc = ok ? 0 : 1;
  goto done;
oom:
  fputs("sattn-gpu: error: out of memory\n", stderr);
done:
  sa_cuda_free(cu, dq), sa_cuda_free(cu, dk), sa_cuda_free(cu, dv), sa_cuda_free(cu, dout);
  for (int i = 0; i < 2; i++) {
    sa_cuda_free(cu, din[i]), sa_cuda_free(cu, dimp[i]);
    free(imp_in[i]), free(imp_got[i]), free(imp_ref[i]);
  }
  void *all[] = {q, k, v, expect, ref, got, hq, hk, hv, ho};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    free(all[i]);
  return rc;
}

int main(int argc, char **argv) {
  Args a = {.batch = 1, .seed = 1, .input_scale = 1.0};
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    bool arg = i + 1 < argc;
    if (!strcmp(s, "-h") || !strcmp(s, "--help"))
      return usage(stdout, 0);
    else if (!strcmp(s, "--kernel") && arg)
      a.kernel = argv[++i];
    else if (!strcmp(s, "--seq") && arg)
      a.seq = strtoll(argv[++i], NULL, 10);
    else if (!strcmp(s, "--batch") && arg)
      a.batch = strtoll(argv[++i], NULL, 10);
    else if (!strcmp(s, "--seed") && arg)
      a.seed = strtoull(argv[++i], NULL, 0);
    else if (!strcmp(s, "--input-scale") && arg)
      a.input_scale = strtod(argv[++i], NULL);
    else if (!strcmp(s, "--repeat") && arg)
      a.repeat = atoi(argv[++i]);
    else if (!strcmp(s, "--q") && arg)
      a.qf = argv[++i];
    else if (!strcmp(s, "--k") && arg)
      a.kf = argv[++i];
    else if (!strcmp(s, "--v") && arg)
      a.vf = argv[++i];
    else if (!strcmp(s, "--expect") && arg)
      a.expect = argv[++i];
    else if (!strcmp(s, "--json"))
      a.json = true;
    else if (!strcmp(s, "--no-check"))
      a.no_check = true;
    else if (s[0] == '-' && s[1])
      return usage(stderr, 2);
    else if (!a.file)
      a.file = s;
    else if (!a.image)
      a.image = s;
    else
      return usage(stderr, 2);
  }
  if (!a.file || !a.image || a.batch < 1 || a.seq < 0 || a.repeat < 0)
    return usage(stderr, 2);
  if ((a.qf || a.kf || a.vf) && !(a.qf && a.kf && a.vf)) {
    fputs("sattn-gpu: error: give all of --q, --k and --v\n", stderr);
    return 2;
  }
  if (a.expect && (!a.qf || a.no_check)) {
    fputs("sattn-gpu: error: --expect needs --q, --k, --v and the check (no --no-check)\n", stderr);
    return 2;
  }
  size_t len, ilen;
  char *text = tool_read_file(a.file, &len), *image = text ? tool_read_file(a.image, &ilen) : NULL;
  FrontEnd fe = {0};
  Diag d = {.out = stderr};
  SaCuda *cu = NULL;
  SaCudaModule *m = NULL;
  int rc = 1;
  char err[2300];
  if (!image || !fe_run(&fe, a.file, text, len, FE_STOP_CHECK, &d))
    goto out;
  SaStatus st = sa_cuda_open(0, &cu, err, sizeof err);
  if (st != SA_OK) {
    fprintf(stderr, "sattn-gpu: %s: %s\n", st == SA_ERR_UNSUPPORTED ? "skipped" : "error", err);
    rc = st == SA_ERR_UNSUPPORTED ? 77 : 1;
    goto out;
  }
  if ((st = sa_cuda_module_load(cu, image, ilen + 1, &m, err, sizeof err)) != SA_OK) {
    fprintf(stderr, "sattn-gpu: error: %s: %s\n", a.image, err);
    goto out;
  }
  rc = 0;
  int n = 0;
  for (FeSpec *fs = fe.file.first; fs; fs = fs->next)
    if (!a.kernel || !strcmp(a.kernel, fs->spec.name)) {
      rc |= run_one(&a, cu, m, &fs->spec);
      n++;
    }
  if (n == 0) {
    fprintf(stderr, "sattn-gpu: error: no attention spec named '%s'\n", a.kernel ? a.kernel : "");
    rc = 1;
  }
out:
  sa_cuda_module_unload(m);
  sa_cuda_close(cu);
  fe_free(&fe);
  free(text);
  free(image);
  return rc;
}
