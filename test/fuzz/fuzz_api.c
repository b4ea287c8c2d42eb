/* libFuzzer target: the C API's compile entry, as an embedding program
 * calls it. The input is spec text: sattn_module_parse checks it; a module
 * that parses goes through sattn_emit for the checked specs (ast), their C
 * header, verified and canonical sattn IR, a mask picture, the CUDA
 * lowering's gpu.module (the generated kernels parsed and verified by
 * MLIR; the NVPTX pipeline after it is LLVM's, and slow) and, at a short
 * length, an accelerator stream that the runtime then loads and runs.
 * Diagnostics are expected; a crash, a sanitizer report or a leak is a
 * finding. One context serves every input, as in a long-lived host. */
#include <stdint.h>
#include <stdlib.h>

#include "sattn/accel.h"
#include "sattn/sattn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(const SattnDiagnostic *d, void *user) {
  (void)d;
  (void)user;
}

static SattnContext *ctx;

static void emit(SattnModule *m, SattnArtifactKind kind, SattnOptions opt) {
  SattnArtifact *a = NULL;
  sattn_emit(m, kind, &opt, &a);
  sattn_artifact_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ctx) {
    ctx = sattn_context_create();
    if (!ctx)
      abort();
    sattn_context_set_diagnostic_handler(ctx, quiet, NULL);
  }
  SattnModule *m = NULL;
  if (sattn_module_parse(ctx, "fuzz.sattn", (const char *)data, size, &m) != SA_OK)
    return 0;
  emit(m, SATTN_ARTIFACT_AST, (SattnOptions){0});
  emit(m, SATTN_ARTIFACT_HEADER, (SattnOptions){0});
  emit(m, SATTN_ARTIFACT_MLIR_CANONICAL, (SattnOptions){0});
  const SaSpec *s = sattn_module_kernel(m, 0);
  if (s && s->head_dim <= 256)
    emit(m, SATTN_ARTIFACT_MLIR_CUDA, (SattnOptions){.target = SATTN_TARGET_CUDA, .kernel = s->name});
  if (s && s->heads * s->head_dim <= 4096) {
    emit(m, SATTN_ARTIFACT_MASK_SVG, (SattnOptions){.kernel = s->name, .seq = 24});
    SattnArtifact *a = NULL;
    SattnOptions opt = {.target = SATTN_TARGET_ACCEL, .kernel = s->name, .seq = 24};
    if (sattn_emit(m, SATTN_ARTIFACT_ACCEL, &opt, &a) == SA_OK) {
      size_t len;
      const void *bytes = sattn_artifact_data(a, &len);
      SaAccelProgram *p = NULL;
      if (sa_accel_load(bytes, len, &p, NULL, 0) == SA_OK) {
        size_t nq = (size_t)(s->heads * 24 * s->head_dim), nkv = (size_t)(s->kv_heads * 24 * s->head_dim);
        float *q = calloc(nq, 4), *k = calloc(nkv, 4), *v = calloc(nkv, 4), *o = calloc(nq, 4);
        SaAccelConfig c;
        sa_accel_config_default(&c);
        if (q && k && v && o)
          sa_accel_run(p, &c, q, k, v, o, 1, NULL, NULL, NULL, 0);
        free(q), free(k), free(v), free(o);
      }
      sa_accel_free(p);
    }
    sattn_artifact_destroy(a);
  }
  sattn_module_destroy(m);
  return 0;
}
