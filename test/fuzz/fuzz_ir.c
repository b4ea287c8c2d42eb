/* libFuzzer target: sattn-opt's input path through the public API.
 * Arbitrary bytes are parsed as MLIR with the sattn dialect loaded; what
 * parses and verifies goes through sattn-verify, sattn-canonicalize and
 * sattn-lower-cpu (whose generated kernel MLIR's parser verifies in turn)
 * and is printed; then through sattn-lower-accel, and the saccel program
 * it makes (or any the input holds) through the encoder and the stream
 * loader (sattn_accel_encode). Diagnostics are expected; a crash, a sanitizer report or
 * a leak in our code is a finding. The context is made once: loading every
 * dialect per input would drown the search. */
#include <stdint.h>
#include <stdlib.h>

#include "sattn/sattn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(const SattnDiagnostic *d, void *user) {
  (void)d;
  (void)user;
}

static SattnContext *ctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ctx) {
    ctx = sattn_context_create();
    if (!ctx)
      abort();
    sattn_context_set_diagnostic_handler(ctx, quiet, NULL);
  }
  SattnArtifact *a = NULL, *s = NULL;
  sattn_opt(ctx, "fuzz", (const char *)data, size, "sattn-canonicalize,sattn-verify,sattn-lower-cpu", false, &a);
  sattn_artifact_destroy(a);
  a = NULL;
  if (sattn_opt(ctx, "fuzz", (const char *)data, size, "sattn-canonicalize,sattn-verify,sattn-lower-accel", false,
                &a) == SA_OK) {
    size_t n;
    const char *text = sattn_artifact_data(a, &n);
    sattn_accel_encode(ctx, "fuzz", text, n, NULL, &s);
    sattn_artifact_destroy(s);
  }
  sattn_artifact_destroy(a);
  return 0;
}
