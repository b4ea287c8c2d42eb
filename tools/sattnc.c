/* sattnc: the compiler driver. Reads a file of attention specs and prints
 * the stage that --emit names:
 *   tokens          the lexer's tokens
 *   ast             the checked specs
 *   mlir            the sattn IR the front end builds (verified)
 *   mlir-canonical  that IR after sattn-canonicalize
 *   mlir-cpu        after sattn-lower-cpu: fused kernels in upstream dialects
 *   mlir-llvm       the LLVM dialect
 *   llvm            LLVM IR after O3 for the chosen CPU
 *   asm, obj        assembly or an ELF object for the chosen CPU
 *   header          the C header for the object's kernels
 *   mask-svg, mask-png  a picture of the pattern at --seq (tools/picture.c)
 * Exit status: 0 on success, 1 on a user error (with a located message),
 * 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../compiler/compiler.h"
#include "../codegen/codegen.h"
#include "../compiler/driver.h"
#include "../dialect/dialect.h"
#include "../passes/passes.h"
#include "picture.h"
#include "mlir-c/Pass.h"

typedef enum {
#define EMIT_KINDS(X)                  \
  X(EMIT_TOKENS, "tokens")             \
  X(EMIT_AST, "ast")                   \
  X(EMIT_MLIR, "mlir")                 \
  X(EMIT_MLIR_CANONICAL, "mlir-canonical") \
  X(EMIT_MLIR_CPU, "mlir-cpu")         \
  X(EMIT_MLIR_LLVM, "mlir-llvm")       \
  X(EMIT_LLVM, "llvm")                 \
  X(EMIT_ASM, "asm")                   \
  X(EMIT_OBJ, "obj")                   \
  X(EMIT_HEADER, "header")             \
  X(EMIT_MASK_SVG, "mask-svg")         \
  X(EMIT_MASK_PNG, "mask-png")
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
  fputs("usage: sattnc FILE [--emit=KIND] [--target=cpu] [--cpu=NAME] [--kernel NAME] [-o OUT]\n"
        "              [--split-input-file]\n"
        "  FILE            a .sattn spec file, or - for standard input\n"
        "  --emit=KIND     tokens | ast | mlir (default) | mlir-canonical | mlir-cpu |\n"
        "                  mlir-llvm | llvm | asm | obj | header | mask-svg | mask-png\n"
        "  --target=cpu    the back end for mlir-cpu and later stages (cpu is the only one yet)\n"
        "  --cpu=NAME      LLVM CPU name for llvm/asm/obj (skylake-avx512, haswell, x86-64, ...);\n"
        "                  default: the host (native)\n"
        "  --seq N         sequence length of a mask picture (default: the spec's)\n"
        "  --seed S        inputs of a dynamic pattern's picture (default 1)\n"
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

typedef struct {
  EmitKind emit;
  const char *kernel;
  const char *cpu;
  int64_t seq;
  uint64_t seed;
} Options;

/* Builds the IR, lowers it as far as the stage asks, then prints it. */
static int emit_ir(const FeFile *file, const Options *o, FILE *out) {
  MlirContext ctx = drv_context_create(stderr);
  if (mlirContextIsNull(ctx)) {
    fputs("sattnc: internal error: cannot load the sattn dialect\n", stderr);
    return 1;
  }
  static const DrvStage stage_of[EMIT_COUNT] = {
      [EMIT_MLIR] = DRV_SATTN, [EMIT_MLIR_CANONICAL] = DRV_CANONICAL, [EMIT_MLIR_CPU] = DRV_CPU,
      [EMIT_MLIR_LLVM] = DRV_LLVM, [EMIT_LLVM] = DRV_LLVM, [EMIT_ASM] = DRV_LLVM, [EMIT_OBJ] = DRV_LLVM};
  int rc = 0;
  MlirModule m = drv_build(ctx, file, o->kernel);
  if (mlirModuleIsNull(m)) {
    fputs("sattnc: error: out of memory building IR\n", stderr);
    mlirContextDestroy(ctx);
    return 1;
  }
  if (!drv_lower(ctx, m, stage_of[o->emit])) {
    rc = 1;
  } else if (o->emit == EMIT_LLVM || o->emit == EMIT_ASM || o->emit == EMIT_OBJ) {
    char err[512];
    CgOutput what = o->emit == EMIT_LLVM ? CG_OUT_LLVM : o->emit == EMIT_ASM ? CG_OUT_ASM : CG_OUT_OBJ;
    if (!cg_cpu_emit(m, o->cpu, what, out, err, sizeof err)) {
      fprintf(stderr, "sattnc: error: %s\n", err);
      rc = 1;
    }
  } else {
    drv_print(mlirModuleGetOperation(m), out, false);
  }
  mlirModuleDestroy(m);
  mlirContextDestroy(ctx);
  return rc;
}

static int emit_header(const FeFile *file, const char *kernel, FILE *out) {
  const SaSpec *specs[256];
  int n = 0;
  for (const FeSpec *fs = file->first; fs && n < 256; fs = fs->next)
    if (!kernel || strcmp(fs->spec.name, kernel) == 0)
      specs[n++] = &fs->spec;
  cg_cpu_header(out, specs, n);
  return 0;
}

static int emit_picture(const char *display, const FeFile *file, const Options *o, FILE *out) {
  for (const FeSpec *fs = file->first; fs; fs = fs->next) {
    if (o->kernel && strcmp(fs->spec.name, o->kernel) != 0)
      continue;
    int64_t seq = o->seq ? o->seq : fs->spec.seq;
    if (seq == SA_DYNAMIC) {
      fprintf(stderr, "%s:%d:%d: error: spec '%s' has seq=?; give --seq N for its picture\n", display, fs->spec.line,
              fs->spec.col, fs->spec.name);
      return 1;
    }
    if (!pic_write(out, &fs->spec, seq, o->seed, o->emit == EMIT_MASK_PNG)) {
      fputs("sattnc: error: out of memory drawing the pattern\n", stderr);
      return 1;
    }
    return 0; /* one picture per output: the first spec (or --kernel) */
  }
  return 0;
}

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
  case EMIT_HEADER: rc = emit_header(&fe.file, o->kernel, out); break;
  case EMIT_MASK_SVG:
  case EMIT_MASK_PNG: rc = emit_picture(display, &fe.file, o, out); break;
  case EMIT_MLIR:
  case EMIT_MLIR_CANONICAL:
  case EMIT_MLIR_CPU:
  case EMIT_MLIR_LLVM:
  case EMIT_LLVM:
  case EMIT_ASM:
  case EMIT_OBJ: rc = emit_ir(&fe.file, o, out); break;
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
  Options o = {EMIT_MLIR, NULL, NULL, 0, 1};
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
    } else if (!strncmp(a, "--target=", 9)) {
      if (strcmp(a + 9, "cpu") != 0)
        return bad_usage("unknown --target '%s' (this build has: cpu)", a + 9);
    } else if ((!strcmp(a, "--seq") || !strcmp(a, "--seed")) && i + 1 < argc) {
      char *end;
      long long v = strtoll(argv[++i], &end, 0);
      if (*end || v < (a[4] == 'q' ? 1 : 0))
        return bad_usage("bad number for %s", a);
      if (a[4] == 'q')
        o.seq = v;
      else
        o.seed = (uint64_t)v;
    } else if (!strncmp(a, "--cpu=", 6)) {
      o.cpu = a + 6;
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
  if (output && !(out = fopen(output, "wb"))) {
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
