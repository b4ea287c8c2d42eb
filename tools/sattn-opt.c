/* sattn-opt: mlir-opt for the sattn dialect. Parses IR (sattn ops in
 * generic form), verifies it with MLIR's verifier and sattn-verify, runs a
 * pipeline of sattn and upstream passes, and prints the result; with
 * --emit-accel, writes the .sacc stream of the saccel program in the result
 * instead (--program NAME picks one when there are several).
 * Exit status: 0 on success, 1 when the input or a pass fails, 2 on bad
 * usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/sattn.h"
#include "tool.h"

static void usage(FILE *f) {
  fputs("usage: sattn-opt [FILE|-] [--pass-pipeline=P] [--pass FLAG]... [--split-input-file]\n"
        "                 [--mlir-print-op-generic] [-o OUT] [--list-passes]\n"
        "                 [--emit-accel [--program NAME]]\n",
        f);
}

/* Set by --emit-accel: the program to encode ("" for the only one). */
static const char *accel_program;

/* One input buffer: parse, verify, run, print (or encode). Returns 0 or 1. */
static int process(SattnContext *ctx, const char *name, const char *text, size_t len, const char *pipeline,
                   bool generic, FILE *out) {
  SattnArtifact *a = NULL;
  int errors = sattn_context_error_count(ctx);
  SaStatus st = sattn_opt(ctx, name, text, len, pipeline, generic, &a);
  if (st == SA_OK && accel_program) {
    size_t n;
    const char *ir = sattn_artifact_data(a, &n);
    SattnArtifact *s = NULL;
    st = sattn_accel_encode(ctx, name, ir, n, *accel_program ? accel_program : NULL, &s);
    sattn_artifact_destroy(a);
    a = s;
  }
  if (st == SA_OK) {
    size_t n;
    const void *data = sattn_artifact_data(a, &n);
    fwrite(data, 1, n, out);
  } else if (sattn_context_error_count(ctx) == errors) {
    fprintf(stderr, "sattn-opt: error: %s\n", sa_status_name(st));
  }
  sattn_artifact_destroy(a);
  return st == SA_OK ? 0 : 1;
}

typedef struct {
  SattnContext *ctx;
  const char *name, *pipeline;
  bool generic;
  FILE *out;
} PartCtx;

static int process_part(const char *part, size_t n, void *ud) {
  PartCtx *c = ud;
  return process(c->ctx, c->name, part, n, c->pipeline, c->generic, c->out);
}

int main(int argc, char **argv) {
  const char *input = "-", *output = NULL;
  bool split = false, generic = false;
  size_t cap = 1;
  for (int i = 1; i < argc; i++)
    cap += strlen(argv[i]) + 1;
  char *pipeline = calloc(cap, 1);
  char *text = NULL;
  FILE *out = NULL;
  int rc = 0;
  if (!pipeline) {
    fputs("sattn-opt: error: out of memory\n", stderr);
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      goto done;
    } else if (!strcmp(a, "--list-passes")) {
      for (int p = 0; p < sattn_pass_count(); p++)
        printf("%-22s %s\n", sattn_pass_flag(p), sattn_pass_summary(p));
      goto done;
    } else if (!strncmp(a, "--pass-pipeline=", 16) || !strcmp(a, "--pass")) {
      const char *p = a[6] == '-' ? a + 16 : (i + 1 < argc ? argv[++i] : NULL);
      if (!p) {
        fprintf(stderr, "sattn-opt: error: --pass needs a pass flag\n");
        rc = 2;
        goto done;
      }
      if (*pipeline)
        strcat(pipeline, ",");
      strcat(pipeline, p);
    } else if (!strcmp(a, "--split-input-file")) {
      split = true;
    } else if (!strcmp(a, "--emit-accel")) {
      if (!accel_program)
        accel_program = "";
    } else if (!strcmp(a, "--program")) {
      if (i + 1 == argc) {
        fprintf(stderr, "sattn-opt: error: --program needs a name\n");
        rc = 2;
        goto done;
      }
      accel_program = argv[++i];
    } else if (!strcmp(a, "--mlir-print-op-generic")) {
      generic = true;
    } else if (!strcmp(a, "-o")) {
      if (i + 1 == argc) {
        fprintf(stderr, "sattn-opt: error: -o needs a file\n");
        rc = 2;
        goto done;
      }
      output = argv[++i];
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "sattn-opt: error: unknown option '%s'\n", a);
      usage(stderr);
      rc = 2;
      goto done;
    } else {
      input = a;
    }
  }
  size_t len;
  text = tool_read_file(input, &len);
  if (!text) {
    rc = 1;
    goto done;
  }
  out = output ? fopen(output, "w") : stdout;
  if (!out) {
    fprintf(stderr, "sattn-opt: error: cannot write '%s'\n", output);
    rc = 1;
    goto done;
  }
  SattnContext *ctx = sattn_context_create();
  if (!ctx) {
    fputs("sattn-opt: error: out of memory\n", stderr);
    rc = 1;
    goto done;
  }
  const char *name = strcmp(input, "-") == 0 ? "<stdin>" : input;
  if (!split) {
    rc = process(ctx, name, text, len, pipeline, generic, out);
  } else {
    PartCtx pc = {ctx, name, pipeline, generic, out};
    rc = tool_for_each_part(text, len, "// -----", out, process_part, &pc);
  }
  sattn_context_destroy(ctx);
done:
  free(text);
  free(pipeline);
  if (out && out != stdout && fclose(out) != 0) {
    fprintf(stderr, "sattn-opt: error: cannot write '%s'\n", output);
    rc = 1;
  }
  return rc;
}
