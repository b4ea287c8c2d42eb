/* sattnc: the compiler driver. Reads a file of attention specs and prints
 * the stage that --emit names:
 *   tokens          the lexer's tokens
 *   ast             the checked specs
 *   mlir            the sattn IR the front end builds (verified)
 *   mlir-canonical  that IR after sattn-canonicalize
 * Exit status: 0 on success, 1 on a user error (with a located message),
 * 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../compiler/compiler.h"
#include "../compiler/driver.h"
#include "../dialect/dialect.h"
#include "../passes/passes.h"
#include "mlir-c/Pass.h"

typedef enum {
#define EMIT_KINDS(X)                  \
  X(EMIT_TOKENS, "tokens")             \
  X(EMIT_AST, "ast")                   \
  X(EMIT_MLIR, "mlir")                 \
  X(EMIT_MLIR_CANONICAL, "mlir-canonical")
#define X(e, s) e,
  EMIT_KINDS(X)
#undef X
  EMIT_COUNT
} EmitKind;

static const char *const emit_names[] = {
#define X(e, s) s,
    EMIT_KINDS(X)
#undef X
};

static void usage(FILE *f) {
  fputs("usage: sattnc FILE [--emit=KIND] [--kernel NAME] [-o OUT] [--split-input-file]\n"
        "  FILE            a .sattn spec file, or - for standard input\n"
        "  --emit=KIND     tokens | ast | mlir (default) | mlir-canonical\n"
        "  --kernel NAME   only the spec called NAME\n"
        "  -o OUT          write to OUT instead of standard output\n"
        "  --split-input-file  compile each part between '# -----' lines alone\n",
        f);
}

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "sattnc: error: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  usage(stderr);
  return 2;
}

/* Builds, verifies (and canonicalizes) the IR, then prints it. */
static int emit_mlir(const FeFile *file, const char *kernel, bool canonical, FILE *out) {
  MlirContext ctx = drv_context_create(stderr);
  if (mlirContextIsNull(ctx)) {
    fputs("sattnc: internal error: cannot load the sattn dialect\n", stderr);
    return 1;
  }
  const SaSpec **specs = malloc((size_t)file->count * sizeof *specs);
  int n = 0;
  for (const FeSpec *fs = file->first; specs && fs; fs = fs->next)
    if (!kernel || strcmp(fs->spec.name, kernel) == 0)
      specs[n++] = &fs->spec;
  int rc = 0;
  MlirModule m = specs ? irgen_module(ctx, specs, n) : (MlirModule){NULL};
  free(specs);
  if (mlirModuleIsNull(m)) {
    fputs("sattnc: error: out of memory building IR\n", stderr);
    mlirContextDestroy(ctx);
    return 1;
  }
  MlirOperation op = mlirModuleGetOperation(m);
  MlirPassManager pm = mlirPassManagerCreateOnOperation(ctx, dl_ref("builtin.module"));
  drv_add_pipeline(pm, canonical ? "sattn-verify,sattn-canonicalize,sattn-verify" : "sattn-verify");
  if (!mlirOperationVerify(op) || mlirLogicalResultIsFailure(mlirPassManagerRunOnOp(pm, op))) {
    fputs("sattnc: internal error: the IR built from the spec does not verify\n", stderr);
    rc = 1;
  } else {
    drv_print(op, out, false);
  }
  mlirPassManagerDestroy(pm);
  mlirModuleDestroy(m);
  mlirContextDestroy(ctx);
  return rc;
}

typedef struct {
  EmitKind emit;
  const char *kernel;
} Options;

/* Runs the stages on one buffer and prints the chosen one. 0 or 1. */
static int compile_text(const char *display, const char *text, size_t len, const Options *o, FILE *out) {
  FrontEnd fe = {0};
  Diag d = {.out = stderr};
  FeStop stop = o->emit == EMIT_TOKENS ? FE_STOP_TOKENS : FE_STOP_CHECK;
  int rc = 0;
  if (!fe_run(&fe, display, text, len, stop, &d)) {
    rc = 1;
    goto done;
  }
  if (o->kernel && stop == FE_STOP_CHECK) {
    bool found = false;
    for (FeSpec *fs = fe.file.first; fs; fs = fs->next)
      found |= strcmp(fs->spec.name, o->kernel) == 0;
    if (!found) {
      fprintf(stderr, "%s: error: no attention spec named '%s'\n", display, o->kernel);
      rc = 1;
      goto done;
    }
  }
  switch (o->emit) {
  case EMIT_TOKENS: fe_print_tokens(out, &fe.toks); break;
  case EMIT_AST: fe_print_ast(out, &fe.file, o->kernel); break;
  case EMIT_MLIR:
  case EMIT_MLIR_CANONICAL: rc = emit_mlir(&fe.file, o->kernel, o->emit == EMIT_MLIR_CANONICAL, out); break;
  case EMIT_COUNT: unreachable();
  }
done:
  fe_free(&fe);
  return rc;
}

typedef struct {
  const char *display;
  const Options *o;
  FILE *out;
} SplitCtx;

static int compile_part(const char *part, size_t n, void *ud) {
  SplitCtx *c = ud;
  return compile_text(c->display, part, n, c->o, c->out);
}

int main(int argc, char **argv) {
  const char *input = NULL, *output = NULL;
  Options o = {EMIT_MLIR, NULL};
  bool split = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strncmp(a, "--emit=", 7)) {
      int k = -1;
      for (int e = 0; e < EMIT_COUNT; e++)
        if (!strcmp(a + 7, emit_names[e]))
          k = e;
      if (k < 0)
        return bad_usage("unknown --emit kind '%s'", a + 7);
      o.emit = (EmitKind)k;
    } else if (!strcmp(a, "--split-input-file")) {
      split = true;
    } else if (!strcmp(a, "-o") || !strcmp(a, "--kernel")) {
      if (i + 1 == argc)
        return bad_usage("%s needs an argument", a);
      *(a[1] == 'o' ? &output : &o.kernel) = argv[++i];
    } else if (a[0] == '-' && a[1] != 0) {
      return bad_usage("unknown option '%s'", a);
    } else if (input) {
      return bad_usage("more than one input file ('%s')", a);
    } else {
      input = a;
    }
  }
  if (!input)
    return bad_usage("no input file%s", "");
  size_t len;
  char *text = drv_read_file(input, &len);
  if (!text)
    return 1;
  FILE *out = stdout;
  if (output && !(out = fopen(output, "w"))) {
    fprintf(stderr, "sattnc: error: cannot write '%s'\n", output);
    free(text);
    return 1;
  }
  const char *display = strcmp(input, "-") == 0 ? "<stdin>" : input;
  SplitCtx sc = {display, &o, out};
  int rc = split ? drv_for_each_part(text, len, "# -----", out, compile_part, &sc)
                 : compile_text(display, text, len, &o, out);
  if (out != stdout && fclose(out) != 0) {
    fprintf(stderr, "sattnc: error: cannot write '%s'\n", output);
    rc = 1;
  }
  free(text);
  return rc;
}
