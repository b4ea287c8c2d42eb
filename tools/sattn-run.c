/* sattn-run: compiles one spec, runs the kernel on seeded random or given
 * inputs, runs the reference on the same inputs and compares.
 *
 *   sattn-run FILE [--kernel NAME] [--target=cpu] [--seq N] [--batch N]
 *             [--heads N] [--kv-heads N] [--head-dim N] [--seed S]
 *             [--input-scale X] [--q F --k F --v F] [--expect F] [--out F]
 *             [--survivors F] [--importance-files P]
 *             [--repeat N] [--importance] [--threads N] [--misalign B] [--json]
 *
 * Tensors in files are raw little-endian float32 in [batch, heads, seq,
 * head_dim] order whatever the spec's layout. --seq, --batch, --heads,
 * --kv-heads and --head-dim override the spec's shape (the kernel is then
 * compiled for that shape). Without --seed a fresh seed is drawn and
 * printed. --importance asks for the importance outputs even when the spec
 * prunes nothing (which runs a static pattern's row-at-a-time kernel instead
 * of its tiles); --threads sets the kernel's worker threads; --misalign
 * starts the CPU kernel's Q, K and V B bytes past a 64-byte boundary (a
 * multiple of the storage's element size; 0 by default). --survivors F
 * writes the reference's survivor flags, one byte per (batch, head, query,
 * key), 1 where the key reaches softmax. --importance-files P writes the
 * importance vectors of a pruning spec, raw float32: P-token-in.f32 and
 * P-token-out.f32 ([batch, seq]; the drawn input and the kernel's output)
 * when it prunes tokens, P-head-in.f32 and P-head-out.f32 ([batch, heads])
 * when it prunes heads. Exit status: 0 when every error is within the tolerance of the
 * spec's output type (docs/cpu-abi.md), 1 otherwise or on a user error, 2
 * on bad usage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sattn/accel.h"
#include "sattn/cuda.h"
#include "sattn/reference.h"
#include "sattn/sattn.h"
#include "check.h"
#include "tool.h"

#define OUT_GUARD 64     /* bytes checked after the output */
#define GUARD_BYTE 0xA5

typedef struct {
  const char *file, *kernel, *qf, *kf, *vf, *expect, *out, *survivors, *imp_files;
  int64_t seq, batch, heads, kv_heads, head_dim;
  uint64_t seed;
  bool have_seed, json, importance, accel, cuda;
  const char *arch; /* --arch: the PTX's chip; default: the device's (sm_90 as sm_90a) */
  const char *cpu;  /* --cpu: compile the CPU kernel for this CPU's instructions (within the host's) */
  const char *accel_config_file;
  char *accel_config;
  double input_scale;
  int repeat;
  int64_t misalign; /* --misalign: bytes past a 64-byte boundary of Q, K and V */
} Args;

static void usage(FILE *f) {
  fputs("usage: sattn-run FILE [--kernel NAME] [--target=cpu|accel|cuda] [--arch SM] [--accel-config F] [--seq N] [--batch N] [--heads N]\n"
        "                 [--kv-heads N] [--head-dim N] [--seed S] [--input-scale X]\n"
        "                 [--q F --k F --v F] [--expect F] [--out F] [--survivors F] [--importance-files P]\n"
        "                 [--repeat N] [--importance]\n"
        "                 [--threads N] [--cpu NAME] [--misalign B] [--json]\n",
        f);
}

/* x (n bytes, from chk_encode) moved to `by` bytes past a 64-byte
 * boundary: the new block's start in *base (for free), NULL when out of
 * memory. x is freed. */
static void *misaligned(void *x, size_t n, int64_t by, void **base) {
  unsigned char *b = x ? chk_alloc64(n + (size_t)by) : NULL;
  if (b)
    memcpy(b + by, x, n);
  free(x);
  *base = b;
  return b ? b + by : NULL;
}

static int bad_usage(const char *msg, const char *arg) {
  fprintf(stderr, "sattn-run: error: %s%s\n", msg, arg);
  usage(stderr);
  return 2;
}

static bool parse_i64(const char *s, int64_t *out) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (*s == 0 || *end != 0 || v < 1)
    return false;
  *out = v;
  return true;
}

/* ---- inputs ---- */

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- the GPU ---- */

/* Exit status of a CUDA run on a machine without a GPU or driver. */
enum { EXIT_NO_GPU = 77 };

/* Compiles spec s to PTX for the device, loads it, fills the output with
 * NaN bits, runs the kernel (reps times when timing) and downloads the
 * output (bytes in the spec's layout and output type) into ko. Returns 0,
 * 1 after an error message, or EXIT_NO_GPU. */
static int run_cuda(const Args *a, SattnModule *mod, const SaSpec *s, const void *q, const void *k, const void *v,
                    void *ko, int64_t B, int64_t S, const float *imp_in[2], float *imp_out[2], double *kernel_s) {
  char err[2300];
  SaCuda *cu = NULL;
  SaStatus st = sa_cuda_open(0, &cu, err, sizeof err);
  if (st != SA_OK) {
    fprintf(stderr, "sattn-run: %s: %s\n", st == SA_ERR_UNSUPPORTED ? "skipped" : "error", err);
    return st == SA_ERR_UNSUPPORTED ? EXIT_NO_GPU : 1;
  }
  char arch[16] = "sm_80", name[128];
  int cc = 80;
  sa_cuda_device(cu, name, sizeof name, &cc);
  if (a->arch)
    snprintf(arch, sizeof arch, "%s", a->arch);
  else
    snprintf(arch, sizeof arch, cc >= 90 ? "sm_90a" : cc >= 89 ? "sm_89" : cc >= 86 ? "sm_86" : "sm_80");
  SattnArtifact *ptx = NULL;
  int rc = 1;
  SaCudaModule *m = NULL;
  SaCudaPtr dq = 0, dk = 0, dv = 0, dout = 0;
  /* the importance vectors, tokens then heads: [B, S] and [B, heads] f32 */
  SaCudaPtr din[2] = {0, 0}, dimp[2] = {0, 0};
  size_t nimp[2] = {(size_t)(B * S) * sizeof(float), (size_t)(B * s->heads) * sizeof(float)};
  if (sattn_emit(mod, SATTN_ARTIFACT_PTX, &(SattnOptions){.target = SATTN_TARGET_CUDA, .kernel = s->name, .arch = arch},
                 &ptx) != SA_OK)
    goto out;
  size_t len;
  const void *text = sattn_artifact_data(ptx, &len);
  SaCudaKernel kd;
  sa_cuda_describe(s, &kd);
  size_t in_b = (size_t)sa_dtype_bits(s->storage) / 8, out_b = (size_t)sa_dtype_bits(s->output) / 8;
  size_t nq = (size_t)(B * s->heads * S * s->head_dim), nkv = (size_t)(B * s->kv_heads * S * s->head_dim);
  if ((st = sa_cuda_module_load(cu, text, len + 1, &m, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_alloc(cu, nq * in_b, &dq, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_alloc(cu, nkv * in_b, &dk, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_alloc(cu, nkv * in_b, &dv, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_alloc(cu, nq * out_b, &dout, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_upload(cu, dq, q, nq * in_b, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_upload(cu, dk, k, nkv * in_b, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_upload(cu, dv, v, nkv * in_b, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_fill(cu, dout, 0xFF, nq * out_b, err, sizeof err)) == SA_OK) {
    for (int i = 0; i < 2 && st == SA_OK; i++) {
      if (imp_in[i] && (st = sa_cuda_alloc(cu, nimp[i], &din[i], err, sizeof err)) == SA_OK)
        st = sa_cuda_upload(cu, din[i], imp_in[i], nimp[i], err, sizeof err);
      if (st == SA_OK && imp_out[i] && (st = sa_cuda_alloc(cu, nimp[i], &dimp[i], err, sizeof err)) == SA_OK)
        st = sa_cuda_fill(cu, dimp[i], 0xFF, nimp[i], err, sizeof err);
    }
  }
  SaCudaImportance imp = {din[0], din[1], dimp[0], dimp[1]};
  if (st == SA_OK && (st = sa_cuda_launch_importance(m, &kd, dq, dk, dv, dout, &imp, B, S, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_sync(cu, err, sizeof err)) == SA_OK &&
      (st = sa_cuda_download(cu, ko, dout, nq * out_b, err, sizeof err)) == SA_OK) {
    for (int i = 0; i < 2 && st == SA_OK; i++)
      if (imp_out[i])
        st = sa_cuda_download(cu, imp_out[i], dimp[i], nimp[i], err, sizeof err);
    double ms = 0;
    if (a->repeat > 1)
      st = sa_cuda_time(m, &kd, dq, dk, dv, dout, B, S, a->repeat, &ms, err, sizeof err);
    *kernel_s = ms * 1e-3;
    if (st == SA_OK)
      rc = 0;
  }
  if (st != SA_OK)
    fprintf(stderr, "sattn-run: error: %s (%s, %s, device %s)\n", err, sa_status_name(st), arch, name);
out:
  sa_cuda_free(cu, dq), sa_cuda_free(cu, dk), sa_cuda_free(cu, dv), sa_cuda_free(cu, dout);
  for (int i = 0; i < 2; i++)
    sa_cuda_free(cu, din[i]), sa_cuda_free(cu, dimp[i]);
  sa_cuda_module_unload(m);
  sattn_artifact_destroy(ptx);
  sa_cuda_close(cu);
  return rc;
}

/* ---- the accelerator ---- */

/* Compiles spec s to a stream through the API, loads it and runs it on the
 * model; the output (in the spec's layout) goes to out. */
static bool run_accel(const Args *a, SattnModule *mod, const SaSpec *s, const float *q, const float *k,
                      const float *v, float *out, int64_t B, const SaAccelImportance *io, SaAccelStats *stats) {
  SaAccelConfig cfg;
  char err[256];
  sa_accel_config_default(&cfg);
  if (a->accel_config && sa_accel_config_parse(a->accel_config, strlen(a->accel_config), &cfg, err, sizeof err)) {
    fprintf(stderr, "sattn-run: error: %s: %s\n", a->accel_config_file, err);
    return false;
  }
  SattnArtifact *art = NULL;
  SattnOptions opt = {.target = SATTN_TARGET_ACCEL, .kernel = s->name, .seq = s->seq == SA_DYNAMIC ? a->seq : 0,
                      .accel_config = a->accel_config};
  if (sattn_emit(mod, SATTN_ARTIFACT_ACCEL, &opt, &art) != SA_OK)
    return false;
  size_t len;
  const void *bytes = sattn_artifact_data(art, &len);
  SaAccelProgram *prog = NULL;
  SaStatus st = sa_accel_load(bytes, len, &prog, err, sizeof err);
  if (st == SA_OK)
    st = sa_accel_run(prog, &cfg, q, k, v, out, B, io, stats, err, sizeof err);
  if (st != SA_OK)
    fprintf(stderr, "sattn-run: error: the accelerator: %s (%s)\n", err, sa_status_name(st));
  else
    printf("%s: accelerator stream of %zu bytes, %zu words\n", s->name, len, sa_accel_program_words(prog));
  sa_accel_free(prog);
  sattn_artifact_destroy(art);
  return st == SA_OK;
}

static void print_accel(const SaAccelStats *t) {
  printf("  accelerator: %lld cycles (%.4f ms): compute %lld, DRAM transfer %lld\n", (long long)t->cycles,
         1e3 * t->seconds, (long long)t->compute_cycles, (long long)t->dram_cycles);
  printf("  DRAM read %lld B, written %lld B in %lld requests; SRAM %lld B; %lld MACs; energy %.1f uJ; %lld scores\n",
         (long long)t->dram_read_bytes, (long long)t->dram_write_bytes, (long long)t->dram_requests,
         (long long)t->sram_bytes, (long long)t->macs, 1e-6 * t->energy_pj, (long long)t->pairs);
  printf("  %-8s %12s %12s %14s %14s %12s\n", "class", "instructions", "cycles", "DRAM bytes", "MACs", "energy uJ");
  for (int i = 0; i < SA_ACCEL_CLASSES; i++) {
    const SaAccelClassStats *c = &t->cls[i];
    printf("  %-8s %12lld %12lld %14lld %14lld %12.2f\n", c->name, (long long)c->instructions, (long long)c->cycles,
           (long long)(c->dram_read_bytes + c->dram_write_bytes), (long long)c->macs, 1e-6 * c->energy_pj);
  }
}

static void print_accel_json(const SaAccelStats *t) {
  printf(", \"accel\": {\"cycles\": %lld, \"seconds\": %.6g, \"compute_cycles\": %lld, \"dram_cycles\": %lld, "
         "\"dram_read_bytes\": %lld, \"dram_write_bytes\": %lld, \"dram_requests\": %lld, \"sram_bytes\": %lld, "
         "\"macs\": %lld, \"energy_pj\": %.1f, \"scores\": %lld, \"classes\": {",
         (long long)t->cycles, t->seconds, (long long)t->compute_cycles, (long long)t->dram_cycles,
         (long long)t->dram_read_bytes, (long long)t->dram_write_bytes, (long long)t->dram_requests,
         (long long)t->sram_bytes, (long long)t->macs, t->energy_pj, (long long)t->pairs);
  for (int i = 0; i < SA_ACCEL_CLASSES; i++) {
    const SaAccelClassStats *c = &t->cls[i];
    printf("%s\"%s\": {\"instructions\": %lld, \"cycles\": %lld, \"dram_bytes\": %lld, \"macs\": %lld, "
           "\"energy_pj\": %.1f}",
           i ? ", " : "", c->name, (long long)c->instructions, (long long)c->cycles,
           (long long)(c->dram_read_bytes + c->dram_write_bytes), (long long)c->macs, c->energy_pj);
  }
  printf("}}");
}

/* ---- main ---- */

static int run(const Args *a, SattnModule *mod, int index) {
  SaSpec spec = *sattn_module_kernel(mod, index), *s = &spec;
  int64_t B = a->batch ? a->batch : s->batch != SA_DYNAMIC ? s->batch : 1;
  int64_t H = s->heads, KVH = s->kv_heads, D = s->head_dim, S = a->seq;
  if (!S && s->seq != SA_DYNAMIC)
    S = s->seq;
  if (!S && a->qf) { /* the length from the query file */
    size_t n;
    if (!chk_f32_count("sattn-run", a->qf, &n))
      return 1;
    S = (int64_t)(n / (size_t)(B * H * D));
  }
  if (!S) {
    fprintf(stderr, "sattn-run: error: spec '%s' has seq=?; give --seq N or --q FILE\n", s->name);
    return 1;
  }
  /* the kernel is compiled for the run's shape (dynamic sizes stay dynamic) */
  if (sattn_module_set_shape(mod, index, &(SattnShape){.batch = B, .seq = S}) != SA_OK)
    return 1;
  spec = *sattn_module_kernel(mod, index);

  size_t nq = (size_t)(B * H * S * D), nkv = (size_t)(B * KVH * S * D);
  float *lq = NULL, *lk = NULL, *lv = NULL, *expect = NULL;
  uint64_t state = a->seed;
  if (a->qf || a->kf || a->vf) {
    if (!a->qf || !a->kf || !a->vf) {
      fputs("sattn-run: error: give all of --q, --k and --v\n", stderr);
      return 1;
    }
    lq = chk_read_f32("sattn-run", a->qf, nq);
    lk = chk_read_f32("sattn-run", a->kf, nkv);
    lv = chk_read_f32("sattn-run", a->vf, nkv);
  } else {
    lq = malloc(nq * sizeof *lq);
    lk = malloc(nkv * sizeof *lk);
    lv = malloc(nkv * sizeof *lv);
    for (size_t i = 0; lq && i < nq; i++)
      lq[i] = (float)(sa_gaussian(&state) * a->input_scale);
    for (size_t i = 0; lk && lv && i < nkv; i++) {
      lk[i] = (float)sa_gaussian(&state);
      lv[i] = (float)sa_gaussian(&state);
    }
  }
  if (a->expect)
    expect = chk_read_f32("sattn-run", a->expect, nq);
  if (!lq || !lk || !lv || (a->expect && !expect)) {
    free(lq), free(lk), free(lv), free(expect);
    return 1;
  }
  /* Importance inputs for pruning specs: random, with a few tokens and
   * heads already pruned (-inf) as a previous layer would leave them. */
  bool tokens = s->token_keep < 1.0 || a->importance, heads = s->head_keep < 1.0 || a->importance;
  float *tin = NULL, *hin = NULL;
  if (tokens) {
    tin = malloc((size_t)(B * S) * sizeof *tin);
    for (int64_t i = 0; tin && i < B * S; i++)
      tin[i] = (sa_splitmix64(&state) % 20 == 0 && i % S != 0) ? -INFINITY : (float)fabs(sa_gaussian(&state));
  }
  if (heads) {
    hin = malloc((size_t)(B * H) * sizeof *hin);
    for (int64_t i = 0; hin && i < B * H; i++)
      hin[i] = (float)fabs(sa_gaussian(&state));
  }
  float *q = malloc(nq * sizeof *q), *k = malloc(nkv * sizeof *k), *v = malloc(nkv * sizeof *v);
  float *ref = malloc(nq * sizeof *ref), *got = malloc(nq * sizeof *got), *got_l = malloc(nq * sizeof *got_l);
  float *tout_r = calloc((size_t)(B * S), sizeof(float)), *tout_k = calloc((size_t)(B * S), sizeof(float));
  float *hout_r = calloc((size_t)(B * H), sizeof(float)), *hout_k = calloc((size_t)(B * H), sizeof(float));
  void *kq = NULL, *kk = NULL, *kv = NULL, *ko = NULL;
  uint8_t *surv = NULL; /* the reference's survivor flags, for --survivors */
  int rc = 1;
  SattnJit *jit = NULL;
  if (!q || !k || !v || !ref || !got || !got_l || !tout_r || !tout_k || !hout_r || !hout_k || (tokens && !tin) ||
      (heads && !hin)) {
    fputs("sattn-run: error: out of memory\n", stderr);
    goto done;
  }
  chk_to_layout(s, B, H, S, lq, q, false);
  chk_to_layout(s, B, KVH, S, lk, k, false);
  chk_to_layout(s, B, KVH, S, lv, v, false);
  kq = chk_encode(q, nq, s->storage);
  kk = chk_encode(k, nkv, s->storage);
  kv = chk_encode(v, nkv, s->storage);
  /* the CPU kernel's inputs, past an alignment when asked (kq, kk and kv
   * keep the blocks' starts, for free) */
  void *cq = kq, *ck = kk, *cv = kv;
  if (a->misalign) {
    size_t eb = chk_dtype_bytes(s->storage);
    if (a->misalign % (int64_t)eb) {
      fprintf(stderr, "sattn-run: error: --misalign %lld is not a multiple of %s's %zu bytes\n", (long long)a->misalign,
              sa_dtype_name(s->storage), eb);
      goto done;
    }
    cq = misaligned(kq, nq * eb, a->misalign, &kq);
    ck = misaligned(kk, nkv * eb, a->misalign, &kk);
    cv = misaligned(kv, nkv * eb, a->misalign, &kv);
  }
  /* the output, then a guard that must come back untouched: a kernel that
   * writes past its output (a tail store one lane too wide) is a failure */
  size_t out_bytes = nq * chk_dtype_bytes(s->output);
  ko = malloc(out_bytes + OUT_GUARD);
  if (!kq || !kk || !kv || !ko) {
    fputs("sattn-run: error: out of memory\n", stderr);
    goto done;
  }
  memset((unsigned char *)ko + out_bytes, GUARD_BYTE, OUT_GUARD);

  double t0 = now_s(), compile_s, kernel_s;
  SaAccelStats stats = {0};
  if (a->accel) {
    SaAccelImportance io = {tin, tokens ? tout_k : NULL, hin, heads ? hout_k : NULL};
    if (!run_accel(a, mod, s, q, k, v, got_l, B, &io, &stats))
      goto done;
    compile_s = now_s() - t0;
    kernel_s = 0;
    goto compare;
  }
  if (a->cuda) {
    kernel_s = 0;
    const float *imp_in[2] = {tin, hin};
    float *imp_out[2] = {tokens ? tout_k : NULL, heads ? hout_k : NULL};
    int cr = run_cuda(a, mod, s, kq, kk, kv, ko, B, S, imp_in, imp_out, &kernel_s);
    if (cr) {
      rc = cr;
      goto done;
    }
    compile_s = now_s() - t0;
    chk_decode(ko, nq, s->output, got_l);
    goto compare;
  }
  /* compile */
  SaStatus cs = sattn_jit_create(mod, &(SattnOptions){.kernel = s->name, .cpu = a->cpu}, &jit);
  if (cs != SA_OK) {
    if (cs == SA_ERR_OUT_OF_MEMORY)
      fputs("sattn-run: error: out of memory\n", stderr);
    goto done;
  }
  SattnCpuKernelFn fn = sattn_jit_lookup(jit, s->name);
  if (!fn) {
    fprintf(stderr, "sattn-run: error: no kernel '%s' in the compiled module\n", s->name);
    goto done;
  }
  compile_s = now_s() - t0;

  /* run */
  int reps = a->repeat > 0 ? a->repeat : 1;
  double *times = malloc((size_t)reps * sizeof *times);
  int32_t st = 0;
  for (int r = 0; times && r < reps; r++) {
    double t = now_s();
    st = fn(cq, ck, cv, ko, B, S, tin, tokens ? tout_k : NULL, hin, heads ? hout_k : NULL);
    times[r] = now_s() - t;
  }
  if (!times) {
    fputs("sattn-run: error: out of memory\n", stderr);
    goto done;
  }
  qsort(times, (size_t)reps, sizeof *times, cmp_double);
  kernel_s = times[reps / 2];
  free(times);
  if (st != 0) {
    fprintf(stderr, "sattn-run: error: the kernel returned status %d (%s)\n", st, sa_status_name((SaStatus)st));
    goto done;
  }
  for (size_t g = 0; g < OUT_GUARD; g++)
    if (((unsigned char *)ko)[out_bytes + g] != GUARD_BYTE) {
      fprintf(stderr, "sattn-run: error: the kernel wrote past the end of its output (byte %zu after it)\n", g);
      goto done;
    }
  chk_decode(ko, nq, s->output, got_l);
compare:
  chk_to_layout(s, B, H, S, got_l, got, true); /* back to [B,H,S,D] */

  SaProblem p = {B, S, q, k, v, ref, tin, tokens ? tout_r : NULL, hin, heads ? hout_r : NULL};
  double kept = 0;
  size_t nsurv = (size_t)B * (size_t)H * (size_t)S * (size_t)S;
  if (a->survivors && !(p.survivors_out = surv = malloc(nsurv ? nsurv : 1))) {
    fprintf(stderr, "sattn-run: error: out of memory for the survivor flags\n");
    goto done;
  }
  t0 = now_s();
  SaStatus rs = sa_reference(s, &p, &kept);
  double ref_s = now_s() - t0;
  if (rs != SA_OK) {
    fprintf(stderr, "sattn-run: error: the reference failed: %s\n", sa_status_name(rs));
    goto done;
  }
  float *ref_b = got_l; /* reuse: the reference output in [B,H,S,D] order */
  chk_to_layout(s, B, H, S, ref, ref_b, true);

  double tol_rel, tol_abs;
  chk_tolerance(s->output, &tol_rel, &tol_abs);
  if (a->accel) { /* the accelerator's table exp: 1.5e-5 per weight (docs/accel-isa.md) */
    tol_rel += 1e-4;
    tol_abs += 4e-4;
  }
  /* Scores are computed in fp32: a logit of magnitude L carries an error of
   * about L * 2^-24, which shifts the probabilities by that much. Bound L by
   * scale * max |q_i| * max |k_j| (Cauchy-Schwarz) and widen both
   * tolerances by it: this only matters for large logits. */
  double logit_bound = chk_logit_bound(s, q, nq, k, nkv);
  if (a->cuda)
    chk_cuda_widen(s, logit_bound, &tol_rel, &tol_abs);
  tol_rel += logit_bound * ldexp(1.0, -24);
  tol_abs += logit_bound * ldexp(1.0, -24);
  ChkErr eo = chk_compare(got, ref_b, nq);
  bool ok = chk_within(eo, tol_rel, tol_abs);
  ChkErr et = {0}, eh = {0}, ee = {0};
  if (tokens) {
    et = chk_compare(tout_k, tout_r, (size_t)(B * S));
    ok = ok && chk_within(et, 1e-5, 1e-4);
  }
  if (heads) {
    eh = chk_compare(hout_k, hout_r, (size_t)(B * H));
    ok = ok && chk_within(eh, 1e-5, 1e-4);
  }
  if (expect) {
    ee = chk_compare(got, expect, nq);
    ok = ok && chk_within(ee, tol_rel, tol_abs);
  }
  if (a->out) {
    FILE *f = fopen(a->out, "wb");
    if (!f || fwrite(got, sizeof *got, nq, f) != nq || fclose(f) != 0) {
      fprintf(stderr, "sattn-run: error: cannot write '%s'\n", a->out);
      ok = false;
    }
  }
  if (a->imp_files) {
    struct {
      const char *what;
      const float *x;
      size_t n;
    } vec[4] = {{"token-in", tokens ? tin : NULL, (size_t)(B * S)},
                {"token-out", tokens ? tout_k : NULL, (size_t)(B * S)},
                {"head-in", heads ? hin : NULL, (size_t)(B * H)},
                {"head-out", heads ? hout_k : NULL, (size_t)(B * H)}};
    for (int i = 0; i < 4; i++) {
      if (!vec[i].x)
        continue;
      char path[4096];
      snprintf(path, sizeof path, "%s-%s.f32", a->imp_files, vec[i].what);
      FILE *f = fopen(path, "wb");
      if (!f || fwrite(vec[i].x, sizeof(float), vec[i].n, f) != vec[i].n || fclose(f) != 0) {
        fprintf(stderr, "sattn-run: error: cannot write '%s'\n", path);
        ok = false;
      }
    }
  }
  if (surv) {
    FILE *f = fopen(a->survivors, "wb");
    if (!f || fwrite(surv, 1, nsurv, f) != nsurv || fclose(f) != 0) {
      fprintf(stderr, "sattn-run: error: cannot write '%s'\n", a->survivors);
      ok = false;
    }
  }
  if (a->json) {
    printf("{\"kernel\": \"%s\", \"target\": \"%s\", \"batch\": %lld, \"heads\": %lld, \"kv_heads\": %lld, "
           "\"seq\": %lld, \"head_dim\": %lld, \"storage\": \"%s\", \"output\": \"%s\", \"seed\": %llu, "
           "\"kept_fraction\": %.6g, \"max_abs_error\": %.3e, \"rel_error\": %.3e, \"tolerance_rel\": %.1e, "
           "\"compile_s\": %.4f, \"kernel_s\": %.6f, \"reference_s\": %.4f",
           s->name, a->cuda ? "cuda" : a->accel ? "accel" : "cpu", (long long)B, (long long)H, (long long)KVH,
           (long long)S, (long long)D, sa_dtype_name(s->storage), sa_dtype_name(s->output),
           (unsigned long long)a->seed, kept, eo.max_abs, eo.rel, tol_rel, compile_s,
           kernel_s, ref_s);
    if (tokens)
      printf(", \"token_importance_rel_error\": %.3e", et.rel);
    if (heads)
      printf(", \"head_importance_rel_error\": %.3e", eh.rel);
    if (expect)
      printf(", \"expected_rel_error\": %.3e", ee.rel);
    if (a->accel)
      print_accel_json(&stats);
    printf(", \"ok\": %s}\n", ok ? "true" : "false");
  } else {
    printf("%s: batch=%lld heads=%lld kv_heads=%lld seq=%lld head_dim=%lld %s->%s seed=%llu\n", s->name, (long long)B,
           (long long)H, (long long)KVH, (long long)S, (long long)D, sa_dtype_name(s->storage),
           sa_dtype_name(s->output), (unsigned long long)a->seed);
    printf("  kept fraction %.4f\n", kept);
    printf("  output: max abs error %.3e, relative error %.3e (tolerance %.1e)%s\n", eo.max_abs, eo.rel, tol_rel,
           eo.mismatch_nonfinite ? ", NON-FINITE MISMATCH" : "");
    if (tokens)
      printf("  token importance: relative error %.3e%s\n", et.rel, et.mismatch_nonfinite ? ", NON-FINITE MISMATCH" : "");
    if (heads)
      printf("  head importance: relative error %.3e\n", eh.rel);
    if (expect)
      printf("  against %s: relative error %.3e\n", a->expect, ee.rel);
    if (a->accel)
      print_accel(&stats);
    else
      printf("  time: compile %.3f s, kernel %.6f s, reference %.3f s\n", compile_s, kernel_s, ref_s);
    printf("  %s\n", ok ? "ok" : "FAILED");
  }
  rc = ok ? 0 : 1;
done:
  sattn_jit_destroy(jit);
  void *all[] = {lq, lk, lv, expect, tin, hin, q, k, v, ref, got, got_l, tout_r, tout_k, hout_r, hout_k, kq, kk, kv, ko, surv};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    free(all[i]);
  return rc;
}

int main(int argc, char **argv) {
  Args a = {.input_scale = 1.0};
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    const char **str = !strcmp(s, "--kernel") ? &a.kernel
                       : !strcmp(s, "--q")    ? &a.qf
                       : !strcmp(s, "--k")    ? &a.kf
                       : !strcmp(s, "--v")    ? &a.vf
                       : !strcmp(s, "--expect") ? &a.expect
                       : !strcmp(s, "--out")  ? &a.out
                       : !strcmp(s, "--survivors") ? &a.survivors
                       : !strcmp(s, "--importance-files") ? &a.imp_files
                                              : NULL;
    int64_t *num = !strcmp(s, "--seq")        ? &a.seq
                   : !strcmp(s, "--batch")    ? &a.batch
                   : !strcmp(s, "--heads")    ? &a.heads
                   : !strcmp(s, "--kv-heads") ? &a.kv_heads
                   : !strcmp(s, "--head-dim") ? &a.head_dim
                                              : NULL;
    if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
      usage(stdout);
      return 0;
    } else if ((str || num || !strcmp(s, "--seed") || !strcmp(s, "--input-scale") || !strcmp(s, "--repeat") ||
                !strcmp(s, "--misalign")) &&
               i + 1 == argc) {
      return bad_usage(s, " needs an argument");
    } else if (str) {
      *str = argv[++i];
    } else if (num) {
      if (!parse_i64(argv[++i], num))
        return bad_usage("expected a positive integer after ", s);
    } else if (!strcmp(s, "--seed")) {
      a.seed = strtoull(argv[++i], NULL, 0);
      a.have_seed = true;
    } else if (!strcmp(s, "--input-scale")) {
      a.input_scale = strtod(argv[++i], NULL);
    } else if (!strcmp(s, "--repeat")) {
      a.repeat = atoi(argv[++i]);
    } else if (!strcmp(s, "--misalign")) {
      char *end;
      a.misalign = strtoll(argv[++i], &end, 10);
      if (*end || a.misalign < 0 || a.misalign > 63)
        return bad_usage("expected a byte count from 0 to 63 after ", s);
    } else if (!strcmp(s, "--json")) {
      a.json = true;
    } else if (!strcmp(s, "--importance")) {
      a.importance = true;
    } else if (!strcmp(s, "--threads")) {
      if (i + 1 == argc || atoi(argv[i + 1]) < 1)
        return bad_usage("expected a positive integer after ", s);
      sattn_cpu_set_threads(atoi(argv[++i]));
    } else if (!strncmp(s, "--target=", 9)) {
      if (strcmp(s + 9, "cpu") != 0 && strcmp(s + 9, "accel") != 0 && strcmp(s + 9, "cuda") != 0)
        return bad_usage("unknown target ", s + 9);
      a.accel = strcmp(s + 9, "accel") == 0;
      a.cuda = strcmp(s + 9, "cuda") == 0;
    } else if (!strcmp(s, "--cpu")) {
      if (i + 1 == argc)
        return bad_usage(s, " needs a CPU name (x86-64-v4, znver4, ...)");
      a.cpu = argv[++i];
    } else if (!strcmp(s, "--arch")) {
      if (i + 1 == argc)
        return bad_usage(s, " needs a chip (sm_80, sm_90a, ...)");
      a.arch = argv[++i];
    } else if (!strcmp(s, "--accel-config")) {
      if (i + 1 == argc)
        return bad_usage(s, " needs a file");
      size_t n;
      a.accel_config_file = argv[++i];
      free(a.accel_config);
      if (!(a.accel_config = tool_read_file(argv[i], &n)))
        return 1;
    } else if (s[0] == '-' && s[1]) {
      return bad_usage("unknown option ", s);
    } else if (a.file) {
      return bad_usage("more than one input file: ", s);
    } else {
      a.file = s;
    }
  }
  if (!a.file)
    return bad_usage("no input file", "");
  if (a.accel && (a.importance || a.repeat > 1))
    return bad_usage("--importance and --repeat are for the cpu target", "");
  if (a.cuda && a.importance)
    return bad_usage("--importance is for the cpu target", "");
  if (!a.have_seed) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    uint64_t st = (uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 20);
    a.seed = sa_splitmix64(&st) >> 16;
  }
  SattnContext *ctx = sattn_context_create();
  SattnModule *mod = NULL;
  int rc = 1;
  if (!ctx) {
    fputs("sattn-run: error: out of memory\n", stderr);
    return 1;
  }
  SaStatus ps = sattn_module_parse_file(ctx, a.file, &mod);
  if (ps == SA_ERR_OUT_OF_MEMORY)
    fputs("sattn-run: error: out of memory\n", stderr);
  if (ps == SA_OK) {
    int index = a.kernel ? sattn_module_find(mod, a.kernel) : sattn_module_kernel_count(mod) > 0 ? 0 : -1;
    if (index < 0)
      fprintf(stderr, "%s: error: no attention spec named '%s'\n", a.file, a.kernel ? a.kernel : "");
    else if (sattn_module_set_shape(mod, index,
                                    &(SattnShape){.heads = a.heads, .kv_heads = a.kv_heads, .head_dim = a.head_dim}) ==
             SA_OK)
      rc = run(&a, mod, index);
  }
  sattn_module_destroy(mod);
  sattn_context_destroy(ctx);
  free(a.accel_config);
  return rc;
}
