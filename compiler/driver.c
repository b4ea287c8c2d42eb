/* driver.c: the context's diagnostics, MLIR set-up, input and pipelines. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
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

void drv_report(SattnContext *c, SattnSeverity sev, const char *file, int line, int col, const char *src_line,
                const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* a message is one line: later lines (MLIR's pipeline errors) join it */
  for (char *p = msg; *p; p++)
    if (*p == '\n')
      *p = p[1] ? ' ' : 0;
  SattnDiagnostic d = {sev, file ? file : "sattn", line, col, msg, src_line};
  if (sev == SATTN_SEVERITY_ERROR)
    c->errors++;
  if (c->fn)
    c->fn(&d, c->user);
  else
    sattn_print_diagnostic(&d, stderr);
}

static void front_end_sink(void *ud, const char *file, int line, int col, const char *msg, const char *src_line) {
  drv_report(ud, SATTN_SEVERITY_ERROR, file, line, col, src_line, "%s", msg);
}

Diag drv_diag(SattnContext *c) { return (Diag){.sink = front_end_sink, .sink_ud = c}; }

static void append(MlirStringRef s, void *ud) {
  char *buf = ud;
  size_t n = strlen(buf);
  size_t room = 1023 - n;
  size_t k = s.length < room ? s.length : room;
  memcpy(buf + n, s.data, k);
  buf[n + k] = 0;
}

/* MLIR diagnostics reach the handler in the front end's form. */
static MlirLogicalResult on_diagnostic(MlirDiagnostic d, void *ud) {
  SattnContext *c = ud;
  static const SattnSeverity sev[] = {[MlirDiagnosticError] = SATTN_SEVERITY_ERROR,
                                      [MlirDiagnosticWarning] = SATTN_SEVERITY_WARNING,
                                      [MlirDiagnosticNote] = SATTN_SEVERITY_NOTE,
                                      [MlirDiagnosticRemark] = SATTN_SEVERITY_REMARK};
  MlirLocation loc = mlirDiagnosticGetLocation(d);
  char file[512] = "<unknown>", msg[1024] = "";
  int line = 0, col = 0;
  if (mlirLocationIsAFileLineColRange(loc)) {
    MlirStringRef f = mlirIdentifierStr(mlirLocationFileLineColRangeGetFilename(loc));
    snprintf(file, sizeof file, "%.*s", (int)f.length, f.data);
    line = mlirLocationFileLineColRangeGetStartLine(loc);
    col = mlirLocationFileLineColRangeGetStartColumn(loc);
  }
  mlirDiagnosticPrint(d, append, msg);
  drv_report(c, sev[mlirDiagnosticGetSeverity(d)], file, line, col, NULL, "%s", msg);
  for (intptr_t i = 0; i < mlirDiagnosticGetNumNotes(d); i++)
    on_diagnostic(mlirDiagnosticGetNote(d, i), ud);
  return mlirLogicalResultSuccess();
}

/* MLIR's pass registry is process-wide: filled once, from any thread. */
static pthread_once_t passes_once = PTHREAD_ONCE_INIT;
static void register_passes(void) {
  mlirRegisterAllPasses();
  cg_cpu_init();
}

MlirContext drv_mlir(SattnContext *c) {
  if (!mlirContextIsNull(c->mlir) || c->mlir_failed)
    return c->mlir;
  pthread_once(&passes_once, register_passes);
  MlirDialectRegistry reg = mlirDialectRegistryCreate();
  mlirRegisterAllDialects(reg);
  /* no MLIR thread pool: contexts are many and small, and callers thread */
  MlirContext ctx = mlirContextCreateWithRegistry(reg, false);
  mlirDialectRegistryDestroy(reg);
  mlirRegisterAllLLVMTranslations(ctx);
  mlirContextAttachDiagnosticHandler(ctx, on_diagnostic, c, NULL);
  if (!dl_load(ctx)) {
    mlirContextDestroy(ctx);
    c->mlir_failed = true;
    drv_report(c, SATTN_SEVERITY_ERROR, NULL, 0, 0, NULL, "internal error: cannot load the sattn dialect");
    return (MlirContext){NULL};
  }
  c->mlir = ctx;
  return ctx;
}

char *drv_read_file(SattnContext *c, const char *path, size_t *out_len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    drv_report(c, SATTN_SEVERITY_ERROR, path, 0, 0, NULL, "cannot open '%s': %s", path, strerror(errno));
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
    drv_report(c, SATTN_SEVERITY_ERROR, path, 0, 0, NULL, "cannot read '%s'%s", path, buf ? "" : ": out of memory");
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *out_len = n;
  return buf;
}

bool drv_add_pipeline(SattnContext *c, MlirPassManager pm, const char *pipeline) {
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
    char ch = i < len ? p[i] : ',';
    if (ch == '(' || ch == '{')
      depth++;
    else if (ch == ')' || ch == '}')
      depth--;
    if (ch != ',' || depth != 0)
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
    char why[1024] = "";
    if (mlirLogicalResultIsFailure(mlirOpPassManagerAddPipeline(opm, el, append, why))) {
      /* MLIR's message: "<parser>:1:1: error: WHY\n<element>\n^": keep WHY */
      char *e = strstr(why, "error: "), *nl;
      if (e)
        memmove(why, e + 7, strlen(e + 7) + 1);
      if ((nl = strchr(why, '\n')))
        *nl = 0;
      drv_report(c, SATTN_SEVERITY_ERROR, NULL, 0, 0, NULL, "unknown pass or bad pipeline element '%.*s': %s",
                 (int)(b - a), p + a, why);
      return false;
    }
  }
  if (depth != 0) {
    drv_report(c, SATTN_SEVERITY_ERROR, NULL, 0, 0, NULL, "unbalanced parentheses in pipeline '%s'", pipeline);
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

/* The pipeline that takes freshly built sattn IR to each stage. */
static const char *stage_pipeline(DrvStage stage) {
  switch (stage) {
  case DRV_SATTN: return "sattn-verify";
  case DRV_CANONICAL: return "sattn-verify,sattn-canonicalize,sattn-verify";
  case DRV_CPU: return "sattn-verify,sattn-canonicalize,sattn-verify,sattn-lower-cpu";
  case DRV_ACCEL: return "sattn-verify,sattn-canonicalize,sattn-verify,sattn-lower-accel";
  case DRV_CUDA: return "sattn-verify,sattn-canonicalize,sattn-verify,sattn-lower-cuda";
  case DRV_LLVM: break;
  }
  return NULL;
}

bool drv_lower(SattnContext *c, MlirModule m, DrvStage stage) {
  MlirOperation op = mlirModuleGetOperation(m);
  if (!mlirOperationVerify(op))
    return false;
  MlirPassManager pm = mlirPassManagerCreateOnOperation(c->mlir, dl_ref("builtin.module"));
  bool ok;
  if (stage == DRV_LLVM) {
    ok = drv_add_pipeline(c, pm, stage_pipeline(DRV_CPU)) && drv_add_pipeline(c, pm, cg_cpu_llvm_pipeline);
  } else {
    ok = drv_add_pipeline(c, pm, stage_pipeline(stage));
  }
  ok = ok && mlirLogicalResultIsSuccess(mlirPassManagerRunOnOp(pm, op));
  mlirPassManagerDestroy(pm);
  return ok;
}

bool drv_run(SattnContext *c, MlirModule m, const char *pipeline) {
  MlirPassManager pm = mlirPassManagerCreateOnOperation(c->mlir, dl_ref("builtin.module"));
  bool ok = drv_add_pipeline(c, pm, pipeline) &&
            mlirLogicalResultIsSuccess(mlirPassManagerRunOnOp(pm, mlirModuleGetOperation(m)));
  mlirPassManagerDestroy(pm);
  return ok;
}
