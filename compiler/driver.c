/* driver.c: context set-up, diagnostics, input and pipelines for the tools. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../codegen/codegen.h"
#include "../dialect/dialect.h"
#include "../passes/passes.h"
#include "driver.h"
#include "mlir-c/Diagnostics.h"
#include "mlir-c/Pass.h"
#include "mlir-c/RegisterEverything.h"

static void print_to_file(MlirStringRef s, void *ud) { fwrite(s.data, 1, s.length, (FILE *)ud); }

static const char *severity_name(MlirDiagnosticSeverity s) {
  switch (s) {
  case MlirDiagnosticError: return "error";
  case MlirDiagnosticWarning: return "warning";
  case MlirDiagnosticNote: return "note";
  case MlirDiagnosticRemark: return "remark";
  }
  return "error";
}

/* MLIR diagnostics in the same form as the front end's: file:line:col. */
static MlirLogicalResult on_diagnostic(MlirDiagnostic d, void *ud) {
  FILE *out = ud;
  MlirLocation loc = mlirDiagnosticGetLocation(d);
  if (mlirLocationIsAFileLineColRange(loc)) {
    MlirStringRef file = mlirIdentifierStr(mlirLocationFileLineColRangeGetFilename(loc));
    fprintf(out, "%.*s:%d:%d: ", (int)file.length, file.data, mlirLocationFileLineColRangeGetStartLine(loc),
            mlirLocationFileLineColRangeGetStartColumn(loc));
  } else {
    fputs("<unknown>: ", out);
  }
  fprintf(out, "%s: ", severity_name(mlirDiagnosticGetSeverity(d)));
  mlirDiagnosticPrint(d, print_to_file, out);
  fputc('\n', out);
  for (intptr_t i = 0; i < mlirDiagnosticGetNumNotes(d); i++)
    on_diagnostic(mlirDiagnosticGetNote(d, i), ud);
  return mlirLogicalResultSuccess();
}

MlirContext drv_context_create(FILE *diag) {
  MlirDialectRegistry reg = mlirDialectRegistryCreate();
  mlirRegisterAllDialects(reg);
  MlirContext ctx = mlirContextCreateWithRegistry(reg, false);
  mlirDialectRegistryDestroy(reg);
  mlirRegisterAllPasses();
  mlirRegisterAllLLVMTranslations(ctx);
  mlirContextAttachDiagnosticHandler(ctx, on_diagnostic, diag ? diag : stderr, NULL);
  if (!dl_load(ctx)) {
    mlirContextDestroy(ctx);
    return (MlirContext){NULL};
  }
  return ctx;
}

char *drv_read_file(const char *path, size_t *out_len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "error: cannot open '%s': %s\n", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1)
      break;
    char *g = realloc(buf, cap * 2);
    if (!g) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = g;
    cap *= 2;
  }
  bool bad = !buf || ferror(f);
  if (f != stdin)
    fclose(f);
  if (bad) {
    fprintf(stderr, "error: cannot read '%s'%s\n", path, buf ? "" : ": out of memory");
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *out_len = n;
  return buf;
}

static void print_pipeline_error(MlirStringRef s, void *ud) {
  (void)ud;
  fwrite(s.data, 1, s.length, stderr);
}

bool drv_add_pipeline(MlirPassManager pm, const char *pipeline) {
  const char *p = pipeline;
  size_t len = strlen(p);
  static const char wrap[] = "builtin.module(";
  if (strncmp(p, wrap, sizeof wrap - 1) == 0 && len > sizeof wrap && p[len - 1] == ')') {
    p += sizeof wrap - 1;
    len -= sizeof wrap;
  }
  MlirOpPassManager opm = mlirPassManagerGetAsOpPassManager(pm);
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= len; i++) {
    char c = i < len ? p[i] : ',';
    if (c == '(' || c == '{')
      depth++;
    else if (c == ')' || c == '}')
      depth--;
    if (c != ',' || depth != 0)
      continue;
    size_t a = start, b = i;
    while (a < b && p[a] == ' ')
      a++;
    while (b > a && p[b - 1] == ' ')
      b--;
    start = i + 1;
    if (a == b)
      continue;
    const PassInfo *info = pass_lookup(p + a, b - a);
    if (info) {
      mlirPassManagerAddOwnedPass(pm, pass_create(info));
      continue;
    }
    MlirStringRef el = {p + a, b - a};
    if (mlirLogicalResultIsFailure(mlirOpPassManagerAddPipeline(opm, el, print_pipeline_error, NULL))) {
      fprintf(stderr, "\nerror: unknown pass or bad pipeline element '%.*s'\n", (int)(b - a), p + a);
      return false;
    }
  }
  if (depth != 0) {
    fprintf(stderr, "error: unbalanced parentheses in pipeline '%s'\n", pipeline);
    return false;
  }
  return true;
}

void drv_print(MlirOperation op, FILE *f, bool generic) {
  MlirOpPrintingFlags flags = mlirOpPrintingFlagsCreate();
  if (generic)
    mlirOpPrintingFlagsPrintGenericOpForm(flags);
  mlirOperationPrintWithFlags(op, flags, print_to_file, f);
  mlirOpPrintingFlagsDestroy(flags);
  fputc('\n', f);
}

int drv_for_each_part(const char *text, size_t len, const char *marker, FILE *out,
                      int (*fn)(const char *part, size_t n, void *ud), void *ud) {
  char *part = malloc(len + 1);
  if (!part) {
    fputs("error: out of memory\n", stderr);
    return 1;
  }
  size_t mlen = strlen(marker), start = 0, line = 0, start_line = 0;
  int rc = 0;
  for (size_t i = 0; i <= len; i++) {
    bool sep = i < len && (i == 0 || text[i - 1] == '\n') && strncmp(text + i, marker, mlen) == 0;
    if (!sep && i < len) {
      line += text[i] == '\n';
      continue;
    }
    /* The padding never exceeds the text before the part, so len + 1 bytes hold it. */
    size_t n = 0;
    for (size_t l = 0; l < start_line; l++)
      part[n++] = '\n';
    memcpy(part + n, text + start, i - start);
    n += i - start;
    part[n] = 0;
    if (start > 0)
      fprintf(out, "%s\n", marker);
    rc |= fn(part, n, ud);
    if (i == len)
      break;
    while (i < len && text[i] != '\n')
      i++;
    line++;
    start = i + 1;
    start_line = line;
  }
  free(part);
  return rc;
}

MlirModule drv_build(MlirContext ctx, const FeFile *file, const char *kernel) {
  const SaSpec **specs = malloc((size_t)(file->count > 0 ? file->count : 1) * sizeof *specs);
  if (!specs)
    return (MlirModule){NULL};
  int n = 0;
  for (const FeSpec *fs = file->first; fs; fs = fs->next)
    if (!kernel || strcmp(fs->spec.name, kernel) == 0)
      specs[n++] = &fs->spec;
  MlirModule m = irgen_module(ctx, specs, n);
  free(specs);
  return m;
}

/* The pipeline that takes freshly built sattn IR to each stage. */
static const char *stage_pipeline(DrvStage stage) {
  switch (stage) {
  case DRV_SATTN: return "sattn-verify";
  case DRV_CANONICAL: return "sattn-verify,sattn-canonicalize,sattn-verify";
  case DRV_CPU: return "sattn-verify,sattn-canonicalize,sattn-verify,sattn-lower-cpu";
  case DRV_LLVM: break;
  }
  return NULL;
}

bool drv_lower(MlirContext ctx, MlirModule m, DrvStage stage) {
  MlirOperation op = mlirModuleGetOperation(m);
  if (!mlirOperationVerify(op))
    return false;
  MlirPassManager pm = mlirPassManagerCreateOnOperation(ctx, dl_ref("builtin.module"));
  bool ok;
  if (stage == DRV_LLVM) {
    ok = drv_add_pipeline(pm, stage_pipeline(DRV_CPU)) && drv_add_pipeline(pm, cg_cpu_llvm_pipeline);
  } else {
    ok = drv_add_pipeline(pm, stage_pipeline(stage));
  }
  ok = ok && mlirLogicalResultIsSuccess(mlirPassManagerRunOnOp(pm, op));
  mlirPassManagerDestroy(pm);
  return ok;
}
