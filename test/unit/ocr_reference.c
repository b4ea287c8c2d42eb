/* ocr-reference: the reference implementation against a real model.
 *
 * Reads the PP-OCRv4 attention tensors (q, k, v and the model's own output
 * o, [1, 8, seq, 15] float32) from a data folder, compiles the spec
 * examples/ocr.sattn with the front end (seq=? fixed here from the data),
 * runs sa_reference and compares with o by relative Frobenius error, which
 * must stay under 1e-5. Usage: ocr-reference SPEC DATA_DIR. Prints one line
 * per tensor set and `N passed, M failed` last. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compiler/compiler.h"
#include "sattn/reference.h"

static float *read_f32(const char *dir, const char *name, size_t *out_n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  float *p = bytes > 0 ? malloc((size_t)bytes) : NULL;
  if (p && fread(p, 1, (size_t)bytes, f) != (size_t)bytes) {
    free(p);
    p = NULL;
  }
  fclose(f);
  *out_n = (size_t)bytes / sizeof(float);
  return p;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fputs("usage: ocr-reference SPEC DATA_DIR\n", stderr);
    return 2;
  }
  FILE *sf = fopen(argv[1], "rb");
  if (!sf) {
    fprintf(stderr, "cannot open %s\n", argv[1]);
    return 2;
  }
  static char text[1 << 16];
  size_t len = fread(text, 1, sizeof text - 1, sf);
  fclose(sf);
  FrontEnd fe = {0};
  Diag d = {.out = stderr};
  if (!fe_run(&fe, argv[1], text, len, FE_STOP_CHECK, &d))
    return 1;
  const SaSpec *spec = &fe.file.first->spec;
  int passed = 0, failed = 0;
  const char *sets[] = {"line0.L0", "line0.L1", "line1.L0", "line1.L1"};
  for (int i = 0; i < 4; i++) {
    const char *parts[] = {"q", "k", "v", "o"};
    float *t[4];
    size_t n[4];
    for (int j = 0; j < 4; j++) {
      char name[64];
      snprintf(name, sizeof name, "%s.%s.f32", sets[i], parts[j]);
      t[j] = read_f32(argv[2], name, &n[j]);
    }
    if (!t[0] || !t[1] || !t[2] || !t[3] || n[0] != n[3]) {
      printf("%s: missing or unreadable tensors\n", sets[i]);
      failed++;
    } else {
      int64_t seq = (int64_t)(n[0] / (size_t)(spec->heads * spec->head_dim));
      float *out = calloc(n[0], sizeof *out);
      SaProblem p = {.batch = 1, .seq = seq, .q = t[0], .k = t[1], .v = t[2], .out = out};
      SaStatus st = sa_reference(spec, &p, NULL);
      double num = 0, den = 0;
      for (size_t e = 0; e < n[0]; e++) {
        double diff = (double)out[e] - t[3][e];
        num += diff * diff;
        den += (double)t[3][e] * t[3][e];
      }
      double rel = sqrt(num / den);
      bool ok = st == SA_OK && rel < 1e-5;
      printf("%s: seq=%lld relative error %.3g %s\n", sets[i], (long long)seq, rel, ok ? "ok" : "FAILED");
      ok ? passed++ : failed++;
      free(out);
    }
    for (int j = 0; j < 4; j++)
      free(t[j]);
  }
  fe_free(&fe);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
