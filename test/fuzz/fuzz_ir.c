/* libFuzzer target: sattn-opt's input path. Arbitrary bytes are parsed as
 * MLIR with the sattn dialect loaded; what parses and verifies goes through
 * sattn-verify, sattn-canonicalize and sattn-lower-cpu (whose generated
 * kernel MLIR's parser verifies in turn). Diagnostics are expected; a crash,
 * a sanitizer report or a leak in our code is a finding. The context is
 * made once: loading every dialect per input would drown the search. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compiler/driver.h"
#include "../../dialect/dialect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static MlirContext ctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mlirContextIsNull(ctx)) {
    FILE *null = fopen("/dev/null", "w");
    ctx = drv_context_create(null ? null : stderr);
    if (mlirContextIsNull(ctx))
      abort();
  }
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = 0;
  MlirModule m = mlirModuleCreateParse(ctx, mlirStringRefCreate(text, size));
  free(text);
  if (mlirModuleIsNull(m))
    return 0;
  drv_lower(ctx, m, DRV_CPU);
  mlirModuleDestroy(m);
  return 0;
}
