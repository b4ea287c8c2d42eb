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
 *   mask-svg, mask-png  a picture of the pattern at --seq (codegen/picture.c)
 *   mlir-accel          after sattn-lower-accel: the scheduled programs in
 *                       the saccel dialect (--target=accel)
 *   accel, accel-asm    an accelerator stream (.sacc) and its listing
 *                       (--target=accel; docs/accel-isa.md)
 *   accel-c             a C source embedding the streams (with header)
 *   mlir-cuda           after sattn-lower-cuda: the kernels as gpu.funcs in
 *                       the nvvm and llvm dialects (--target=cuda)
 *   ptx, cubin          PTX from LLVM's NVPTX back end for --arch, and
 *                       ptxas's cubin of it (--target=cuda; docs/cuda.md)
 *   ptx-c               a C source embedding each kernel's PTX (with header)
 * Exit status: 0 on success, 1 on a user error (with a located message),
 * 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/sattn.h"
#include "tool.h"

static void usage(FILE *f) {
  fputs("usage: sattnc FILE [--emit=KIND] [--target=cpu|accel|cuda] [--cpu=NAME] [--kernel NAME] [-o OUT]\n"
        "              [--accel-config FILE] [--arch=SM] [--cuda-path DIR] [--split-input-file]\n"
        "  FILE            a .sattn spec file, or - for standard input\n"
        "  --emit=KIND     tokens | ast | mlir (default) | mlir-canonical | mlir-cpu |\n"
        "                  mlir-llvm | llvm | asm | obj | header | mask-svg | mask-png |\n"
        "                  mlir-accel | accel | accel-asm | accel-c | mlir-cuda | ptx | cubin |\n"
        "                  ptx-c\n"
        "  --target=T      cpu (default: mlir-cpu to obj, header), accel (mlir-accel, accel,\n"
        "                  accel-asm, accel-c, header) or cuda (mlir-cuda, ptx, cubin, ptx-c,\n"
        "                  header)\n"
        "  --arch=SM       the GPU of --target=cuda: sm_80 (default), sm_86, sm_89, sm_90, sm_90a\n"
        "  --cuda-path DIR the CUDA toolkit whose ptxas makes cubins (default: $CUDA_HOME,\n"
        "                  then /usr/local/cuda)\n"
        "  --cpu=NAME      LLVM CPU name for mlir-cpu to obj (skylake-avx512, znver4, x86-64, ...);\n"
        "                  default: the host (native). Kernels use AVX512-VNNI if it has it\n"
        "  --accel-config FILE  the accelerator's hardware configuration (default: SALO's array)\n"
        "  --seq N         sequence length of a mask picture or an accelerator stream\n"
        "                  (default: the spec's)\n"
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
  SattnContext *ctx;
  SattnArtifactKind emit;
  SattnOptions opt;
} Options;

/* Runs the stages on one buffer and writes the chosen artifact. 0 or 1. */
static int compile_text(const char *display, const char *text, size_t len, const Options *o, FILE *out) {
  SattnArtifact *a = NULL;
  SaStatus st;
  int errors = sattn_context_error_count(o->ctx);
  if (o->emit == SATTN_ARTIFACT_TOKENS) {
    st = sattn_lex(o->ctx, display, text, len, &a);
  } else {
    SattnModule *m = NULL;
    st = sattn_module_parse(o->ctx, display, text, len, &m);
    if (st == SA_OK)
      st = sattn_emit(m, o->emit, &o->opt, &a);
    sattn_module_destroy(m);
  }
  if (st == SA_OK) {
    size_t n;
    const void *data = sattn_artifact_data(a, &n);
    fwrite(data, 1, n, out);
  } else if (sattn_context_error_count(o->ctx) == errors) {
    fprintf(stderr, "sattnc: error: %s\n", sa_status_name(st)); /* out of memory */
  }
  sattn_artifact_destroy(a);
  return st == SA_OK ? 0 : 1;
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
  Options o = {NULL, SATTN_ARTIFACT_MLIR, {.picture_seed = 1}};
  char *accel_config = NULL;
  bool split = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strncmp(a, "--emit=", 7)) {
      int k = sattn_artifact_kind_parse(a + 7);
      if (k < 0)
        return bad_usage("unknown --emit kind '%s'", a + 7);
      o.emit = (SattnArtifactKind)k;
    } else if (!strncmp(a, "--target=", 9)) {
      int t = sattn_target_parse(a + 9);
      if (t < 0)
        return bad_usage("unknown --target '%s' (this build has: cpu, accel, cuda)", a + 9);
      o.opt.target = (SattnTarget)t;
    } else if ((!strcmp(a, "--seq") || !strcmp(a, "--seed")) && i + 1 < argc) {
      char *end;
      long long v = strtoll(argv[++i], &end, 0);
      if (*end || v < (a[4] == 'q' ? 1 : 0))
        return bad_usage("bad number for %s", a);
      if (a[4] == 'q')
        o.opt.seq = v;
      else
        o.opt.picture_seed = (uint64_t)v;
    } else if (!strncmp(a, "--cpu=", 6)) {
      o.opt.cpu = a + 6;
    } else if (!strncmp(a, "--arch=", 7)) {
      o.opt.arch = a + 7;
    } else if (!strcmp(a, "--cuda-path")) {
      if (i + 1 == argc)
        return bad_usage("%s needs a directory", a);
      o.opt.cuda_path = argv[++i];
    } else if (!strcmp(a, "--accel-config")) {
      if (i + 1 == argc)
        return bad_usage("%s needs a file", a);
      size_t n;
      free(accel_config);
      if (!(accel_config = tool_read_file(argv[++i], &n)))
        return 1;
      o.opt.accel_config = accel_config;
    } else if (!strcmp(a, "--split-input-file")) {
      split = true;
    } else if (!strcmp(a, "-o") || !strcmp(a, "--kernel")) {
      if (i + 1 == argc)
        return bad_usage("%s needs an argument", a);
      *(a[1] == 'o' ? &output : &o.opt.kernel) = argv[++i];
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
  char *text = tool_read_file(input, &len);
  if (!text)
    return 1;
  FILE *out = stdout;
  if (output && !(out = fopen(output, "wb"))) {
    fprintf(stderr, "sattnc: error: cannot write '%s'\n", output);
    free(text);
    return 1;
  }
  o.ctx = sattn_context_create();
  if (!o.ctx) {
    fputs("sattnc: error: out of memory\n", stderr);
    free(text);
    return 1;
  }
  const char *display = strcmp(input, "-") == 0 ? "<stdin>" : input;
  SplitCtx sc = {display, &o, out};
  int rc = split ? tool_for_each_part(text, len, "# -----", out, compile_part, &sc)
                 : compile_text(display, text, len, &o, out);
  if (out != stdout && fclose(out) != 0) {
    fprintf(stderr, "sattnc: error: cannot write '%s'\n", output);
    rc = 1;
  }
  sattn_context_destroy(o.ctx);
  free(text);
  free(accel_config);
  return rc;
}
