/* api.c: the public API (include/sattn/sattn.h) over the front end, the
 * MLIR pipeline and the CPU back end.
 *
 * Every artifact is written through a memory stream (open_memstream), so
 * the printers the stages already have serve both files and memory. Kernel
 * metadata carries deep copies of the specs, so artifacts and JITs outlive
 * the modules they came from. */
#include <stdlib.h>
#include <string.h>

#include "../codegen/codegen.h"
#include "../codegen/picture.h"
#include "sattn/accel.h"
#include "../dialect/dialect.h"
#include "../passes/passes.h"
#include "driver.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/Diagnostics.h"

#define STR2(x) #x
#define STR(x) STR2(x)

const char *sattn_version(void) {
  return STR(SATTN_VERSION_MAJOR) "." STR(SATTN_VERSION_MINOR) "." STR(SATTN_VERSION_PATCH);
}

/* ---- names ---- */

static const char *const target_names[] = {
#define X(e, s) s,
    SATTN_TARGETS(X)
#undef X
};

static const struct {
  const char *name;
  bool binary;
} artifact_kinds[] = {
#define X(e, s, b) {s, b},
    SATTN_ARTIFACTS(X)
#undef X
};

const char *sattn_target_name(SattnTarget t) {
  return (unsigned)t < SATTN_TARGET_COUNT ? target_names[t] : "unknown";
}

int sattn_target_parse(const char *name) {
  for (int i = 0; name && i < SATTN_TARGET_COUNT; i++)
    if (strcmp(name, target_names[i]) == 0)
      return i;
  return -1;
}

const char *sattn_artifact_kind_name(SattnArtifactKind k) {
  return (unsigned)k < SATTN_ARTIFACT_COUNT ? artifact_kinds[k].name : "unknown";
}

int sattn_artifact_kind_parse(const char *name) {
  for (int i = 0; name && i < SATTN_ARTIFACT_COUNT; i++)
    if (strcmp(name, artifact_kinds[i].name) == 0)
      return i;
  return -1;
}

bool sattn_artifact_kind_is_binary(SattnArtifactKind k) {
  return (unsigned)k < SATTN_ARTIFACT_COUNT && artifact_kinds[k].binary;
}

const char *const *sattn_cpu_names(void) { return cg_cpu_names(); }

int sattn_pass_count(void) { return pass_count; }
const char *sattn_pass_flag(int i) { return i >= 0 && i < pass_count ? pass_table[i].flag : NULL; }
const char *sattn_pass_summary(int i) { return i >= 0 && i < pass_count ? pass_table[i].summary : NULL; }

/* ---- contexts ---- */

SattnContext *sattn_context_create(void) { return calloc(1, sizeof(SattnContext)); }

void sattn_context_destroy(SattnContext *ctx) {
  if (!ctx)
    return;
  if (!mlirContextIsNull(ctx->mlir))
    mlirContextDestroy(ctx->mlir);
  free(ctx);
}

void sattn_context_set_diagnostic_handler(SattnContext *ctx, SattnDiagnosticFn fn, void *user) {
  if (!ctx)
    return;
  ctx->fn = fn;
  ctx->user = user;
}

int sattn_context_error_count(const SattnContext *ctx) { return ctx ? ctx->errors : 0; }

void sattn_print_diagnostic(const SattnDiagnostic *d, FILE *out) {
  static const char *const names[] = {"error", "warning", "note", "remark"};
  if (!d || !out)
    return;
  const char *sev = (unsigned)d->severity < 4 ? names[d->severity] : "error";
  diag_print(out, d->file ? d->file : "sattn", d->line, d->col, sev, d->message ? d->message : "", d->source_line);
}

/* ---- modules ---- */

struct SattnModule {
  SattnContext *ctx;
  char *text; /* the front end points into it */
  FrontEnd fe;
  int n;
  FeSpec **specs; /* in source order, in the front end's arena */
};

static char *dup_text(const char *text, size_t len) {
  char *p = malloc(len + 1);
  if (p) {
    if (len)
      memcpy(p, text, len);
    p[len] = 0;
  }
  return p;
}

/* Takes ownership of text (malloc'ed, NUL-terminated). */
static SaStatus parse_owned(SattnContext *ctx, const char *name, char *text, size_t len, SattnModule **out) {
  SattnModule *m = calloc(1, sizeof *m);
  if (!name)
    name = "<input>";
  char *display = m && text ? arena_strndup(&m->fe.arena, name, strlen(name)) : NULL;
  if (!display) {
    if (m)
      fe_free(&m->fe);
    free(m);
    free(text);
    return SA_ERR_OUT_OF_MEMORY;
  }
  m->ctx = ctx;
  m->text = text;
  Diag d = drv_diag(ctx);
  if (!fe_run(&m->fe, display, text, len, FE_STOP_CHECK, &d)) {
    /* the front end reports running out of memory as an error too */
    SaStatus st = m->fe.arena.failed ? SA_ERR_OUT_OF_MEMORY : SA_ERR_INVALID_SPEC;
    sattn_module_destroy(m);
    return st;
  }
  m->n = m->fe.file.count;
  m->specs = arena_alloc(&m->fe.arena, (size_t)(m->n > 0 ? m->n : 1) * sizeof *m->specs);
  if (!m->specs) {
    sattn_module_destroy(m);
    return SA_ERR_OUT_OF_MEMORY;
  }
  int i = 0;
  for (FeSpec *fs = m->fe.file.first; fs; fs = fs->next)
    m->specs[i++] = fs;
  *out = m;
  return SA_OK;
}

SaStatus sattn_module_parse(SattnContext *ctx, const char *name, const char *text, size_t len, SattnModule **out) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!ctx || (!text && len))
    return SA_ERR_INVALID_ARGUMENT;
  return parse_owned(ctx, name, dup_text(text ? text : "", len), len, out);
}

SaStatus sattn_module_parse_file(SattnContext *ctx, const char *path, SattnModule **out) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!ctx || !path)
    return SA_ERR_INVALID_ARGUMENT;
  size_t len;
  char *text = drv_read_file(ctx, path, &len);
  if (!text)
    return SA_ERR_IO;
  return parse_owned(ctx, strcmp(path, "-") == 0 ? "<stdin>" : path, text, len, out);
}

void sattn_module_destroy(SattnModule *m) {
  if (!m)
    return;
  fe_free(&m->fe);
  free(m->text);
  free(m);
}

int sattn_module_kernel_count(const SattnModule *m) { return m ? m->n : 0; }

const SaSpec *sattn_module_kernel(const SattnModule *m, int i) {
  return m && i >= 0 && i < m->n ? &m->specs[i]->spec : NULL;
}

int sattn_module_find(const SattnModule *m, const char *name) {
  for (int i = 0; m && name && i < m->n; i++)
    if (strcmp(m->specs[i]->spec.name, name) == 0)
      return i;
  return -1;
}

SaStatus sattn_module_set_shape(SattnModule *m, int i, const SattnShape *shape) {
  if (!m || !shape || i < 0 || i >= m->n || shape->batch < 0 || shape->seq < 0 || shape->heads < 0 ||
      shape->kv_heads < 0 || shape->head_dim < 0)
    return SA_ERR_INVALID_ARGUMENT;
  FeSpec t = *m->specs[i];
  SaSpec *s = &t.spec;
  if (shape->batch && s->batch != SA_DYNAMIC)
    s->batch = shape->batch;
  if (shape->seq && s->seq != SA_DYNAMIC)
    s->seq = shape->seq;
  if (shape->heads)
    s->heads = shape->heads;
  if (shape->kv_heads) {
    s->kv_heads = shape->kv_heads;
    if (!t.at.kv_heads.line) /* so that the checks keep it */
      t.at.kv_heads = t.at.shape;
  }
  if (shape->head_dim)
    s->head_dim = shape->head_dim;
  Diag d = drv_diag(m->ctx);
  d.src = &m->fe.src;
  if (!fe_check_spec(&t, &d))
    return SA_ERR_INVALID_SPEC;
  *m->specs[i] = t;
  return SA_OK;
}

/* ---- kernel metadata ---- */

static void *copy_array(Arena *a, const void *p, size_t bytes) {
  void *q = bytes ? arena_alloc(a, bytes) : NULL;
  if (q)
    memcpy(q, p, bytes);
  return q;
}

/* A SattnKernelInfo for s in arena memory (the spec deep-copied). */
static bool kernel_info(Arena *a, const SaSpec *s, SattnKernelInfo *k) {
  SaSpec *c = arena_alloc(a, sizeof *c);
  char proto[512];
  cg_cpu_prototype(s, proto, sizeof proto);
  if (!c)
    return false;
  *c = *s;
  c->name = arena_strndup(a, s->name, strlen(s->name));
  c->file = s->file ? arena_strndup(a, s->file, strlen(s->file)) : NULL;
  c->global = copy_array(a, s->global, (size_t)s->n_global * sizeof *s->global);
  c->block_pairs = copy_array(a, s->block_pairs, (size_t)s->n_block_pairs * sizeof *s->block_pairs);
  const char *p = arena_strndup(a, proto, strlen(proto));
  if (!c->name || (s->file && !c->file) || (s->n_global && !c->global) || (s->n_block_pairs && !c->block_pairs) || !p)
    return false;
  bool per_head;
  int64_t tile = cg_cpu_query_tile(s, &per_head);
  *k = (SattnKernelInfo){
      .name = c->name,
      .spec = c,
      .prototype = p,
      .batch = s->batch,
      .seq = s->seq,
      .heads = s->heads,
      .kv_heads = s->kv_heads,
      .head_dim = s->head_dim,
      .layout = s->layout,
      .storage = s->storage,
      .output = s->output,
      .storage_bytes = (size_t)(sa_dtype_bits(s->storage) + 7) / 8,
      .output_bytes = (size_t)(sa_dtype_bits(s->output) + 7) / 8,
      .prunes_tokens = s->token_keep < 1.0,
      .prunes_heads = s->head_keep < 1.0,
      .split = tile ? SATTN_SPLIT_TILES : per_head ? SATTN_SPLIT_HEADS : SATTN_SPLIT_NONE,
      .query_tile = tile,
  };
  return true;
}

static bool kernel_infos(Arena *a, const SaSpec *const *specs, int n, SattnKernelInfo **out) {
  *out = arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof **out);
  if (!*out)
    return false;
  for (int i = 0; i < n; i++)
    if (!kernel_info(a, specs[i], &(*out)[i]))
      return false;
  return true;
}

/* ---- compiling ---- */

struct SattnArtifact {
  SattnArtifactKind kind;
  char *data;
  size_t size;
  Arena arena; /* the kernel metadata */
  int n_kernels;
  SattnKernelInfo *kernels;
};

/* The specs opt->kernel selects into a malloc'ed array. */
static SaStatus select_specs(SattnModule *m, const SattnOptions *o, const SaSpec ***out, int *n) {
  *out = malloc((size_t)(m->n > 0 ? m->n : 1) * sizeof **out);
  if (!*out)
    return SA_ERR_OUT_OF_MEMORY;
  *n = 0;
  for (int i = 0; i < m->n; i++)
    if (!o->kernel || strcmp(o->kernel, m->specs[i]->spec.name) == 0)
      (*out)[(*n)++] = &m->specs[i]->spec;
  if (o->kernel && *n == 0) {
    drv_report(m->ctx, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL, "no attention spec named '%s'", o->kernel);
    free(*out);
    *out = NULL;
    return SA_ERR_NOT_FOUND;
  }
  return SA_OK;
}

/* False, after a diagnostic, when `cpu` names no CPU the back end knows. */
static bool cpu_known(SattnModule *m, const char *cpu) {
  if (cg_cpu_known(cpu))
    return true;
  drv_report(m->ctx, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL,
             "unknown CPU '%s' (use native, x86-64, x86-64-v3, haswell, skylake-avx512, znver4, ...)", cpu);
  return false;
}

static const DrvStage stage_of[SATTN_ARTIFACT_COUNT] = {
    [SATTN_ARTIFACT_MLIR] = DRV_SATTN,    [SATTN_ARTIFACT_MLIR_CANONICAL] = DRV_CANONICAL,
    [SATTN_ARTIFACT_MLIR_CPU] = DRV_CPU,  [SATTN_ARTIFACT_MLIR_LLVM] = DRV_LLVM,
    [SATTN_ARTIFACT_LLVM_IR] = DRV_LLVM,  [SATTN_ARTIFACT_ASM] = DRV_LLVM,
    [SATTN_ARTIFACT_OBJECT] = DRV_LLVM,
};

/* Builds the IR of the specs, lowers it to `stage`, letting CPU kernels use
 * AVX512-VNNI when `vnni`; null after diagnostics. */
static MlirModule build_lowered(SattnContext *c, const SaSpec *const *specs, int n, DrvStage stage, bool vnni,
                                SaStatus *st) {
  MlirContext mctx = drv_mlir(c);
  *st = SA_ERR_INVALID_SPEC;
  if (mlirContextIsNull(mctx))
    return (MlirModule){NULL};
  MlirModule mod = irgen_module(mctx, (const SaSpec **)specs, n);
  if (mlirModuleIsNull(mod)) {
    *st = SA_ERR_OUT_OF_MEMORY;
    return mod;
  }
  if (vnni)
    mlirOperationSetAttributeByName(mlirModuleGetOperation(mod), mlirStringRefCreateFromCString(CG_CPU_VNNI_ATTR),
                                    mlirUnitAttrGet(mctx));
  if (!drv_lower(c, mod, stage)) {
    mlirModuleDestroy(mod);
    return (MlirModule){NULL};
  }
  *st = SA_OK;
  return mod;
}

/* The accelerator configuration the options name (sattn's default when
 * none); false after a diagnostic. */
static bool options_config(SattnContext *c, const SattnOptions *o, SaAccelConfig *cfg) {
  char err[256];
  sa_accel_config_default(cfg);
  if (o->accel_config && sa_accel_config_parse(o->accel_config, strlen(o->accel_config), cfg, err, sizeof err)) {
    drv_report(c, SATTN_SEVERITY_ERROR, "<accel config>", 0, 0, NULL, "%s", err);
    return false;
  }
  return true;
}

/* The saccel programs of the specs (each at the options' sequence length
 * when given), scheduled for the options' PE array by sattn-lower-accel;
 * null after diagnostics. */
static MlirModule build_accel(SattnModule *m, const SattnOptions *o, const SaSpec *const *specs, int n,
                              SaStatus *st) {
  SattnContext *c = m->ctx;
  SaAccelConfig cfg;
  *st = SA_ERR_INVALID_ARGUMENT;
  if (!options_config(c, o, &cfg))
    return (MlirModule){NULL};
  *st = SA_ERR_OUT_OF_MEMORY;
  SaSpec *copies = malloc((size_t)(n > 0 ? n : 1) * sizeof *copies);
  const SaSpec **ptrs = malloc((size_t)(n > 0 ? n : 1) * sizeof *ptrs);
  MlirModule mod = {NULL};
  if (copies && ptrs) {
    for (int i = 0; i < n; i++) {
      copies[i] = *specs[i];
      if (o->seq > 0)
        copies[i].seq = o->seq;
      ptrs[i] = &copies[i];
      if (copies[i].seq == SA_DYNAMIC) {
        drv_report(c, SATTN_SEVERITY_ERROR, m->fe.src.file, specs[i]->line, specs[i]->col, NULL,
                   "an accelerator stream is scheduled for one sequence length; spec '%s' has seq=? "
                   "(give sattnc --seq N)",
                   specs[i]->name);
        *st = SA_ERR_INVALID_SPEC;
        goto done;
      }
    }
    MlirContext mctx = drv_mlir(c);
    *st = SA_ERR_INVALID_SPEC;
    if (mlirContextIsNull(mctx))
      goto done;
    mod = irgen_module(mctx, ptrs, n);
    *st = SA_ERR_OUT_OF_MEMORY;
    if (mlirModuleIsNull(mod))
      goto done;
    MlirNamedAttribute pe[] = {
        mlirNamedAttributeGet(mlirIdentifierGet(mctx, dl_ref("pe_rows")), dl_i64(mctx, cfg.pe_rows)),
        mlirNamedAttributeGet(mlirIdentifierGet(mctx, dl_ref("pe_cols")), dl_i64(mctx, cfg.pe_cols)),
        mlirNamedAttributeGet(mlirIdentifierGet(mctx, dl_ref("global_pes")), dl_i64(mctx, cfg.global_pes)),
        mlirNamedAttributeGet(mlirIdentifierGet(mctx, dl_ref("sram_q_bytes")), dl_i64(mctx, cfg.sram_q_bytes)),
        mlirNamedAttributeGet(mlirIdentifierGet(mctx, dl_ref("sram_out_bytes")), dl_i64(mctx, cfg.sram_out_bytes)),
    };
    mlirOperationSetAttributeByName(mlirModuleGetOperation(mod), dl_ref("saccel.config"),
                                    mlirDictionaryAttrGet(mctx, 5, pe));
    *st = SA_ERR_UNSUPPORTED;
    if (!drv_lower(c, mod, DRV_ACCEL)) {
      mlirModuleDestroy(mod);
      mod = (MlirModule){NULL};
      goto done;
    }
    *st = SA_OK;
  }
done:
  free(copies);
  free(ptrs);
  return mod;
}

/* The stream of a saccel program func, checked by the runtime's loader,
 * into *bytes (malloc'ed). */
static SaStatus encode_program(MlirOperation func, unsigned char **bytes, size_t *len) {
  CgAccel prog;
  *bytes = NULL;
  if (!cg_accel_read(func, &prog))
    return SA_ERR_INVALID_SPEC;
  *bytes = cg_accel_write(&prog, len);
  cg_accel_free(&prog);
  if (!*bytes)
    return SA_ERR_OUT_OF_MEMORY;
  SaAccelProgram *p;
  char err[256];
  SaStatus st = sa_accel_load(*bytes, *len, &p, err, sizeof err);
  if (st == SA_ERR_OUT_OF_MEMORY)
    return st;
  if (st != SA_OK) {
    char msg[320];
    snprintf(msg, sizeof msg, "saccel: the program is not a valid stream: %s", err);
    mlirEmitError(mlirOperationGetLocation(func), msg);
    free(*bytes);
    *bytes = NULL;
    return SA_ERR_INVALID_SPEC;
  }
  sa_accel_free(p);
  return SA_OK;
}

/* The stream of spec s for the options' configuration and length, into
 * *bytes (malloc'ed): the saccel program sattn-lower-accel makes, encoded. */
static SaStatus make_stream(SattnModule *m, const SattnOptions *o, const SaSpec *s, unsigned char **bytes,
                            size_t *len) {
  SaStatus st;
  *bytes = NULL;
  MlirModule mod = build_accel(m, o, &s, 1, &st);
  if (st != SA_OK)
    return st;
  st = encode_program(mlirBlockGetFirstOperation(mlirModuleGetBody(mod)), bytes, len);
  mlirModuleDestroy(mod);
  return st == SA_ERR_INVALID_SPEC ? SA_ERR_UNSUPPORTED : st;
}

/* `const size_t NAME_SUFFIX_size = len; const unsigned char NAME_SUFFIX[] = {...};`:
 * the bytes a generated C source embeds (accel-c, ptx-c). */
static void write_c_bytes(FILE *f, const char *name, const char *suffix, const unsigned char *bytes, size_t len) {
  fprintf(f, "\nconst size_t %s_%s_size = %zu;\nconst unsigned char %s_%s[] = {", name, suffix, len, name, suffix);
  for (size_t b = 0; b < len; b++)
    fprintf(f, "%s%u,", b % 24 ? "" : "\n  ", bytes[b]);
  fputs("\n};\n", f);
}

/* A C source that embeds the stream of every selected spec as
 * `const unsigned char NAME_sacc[]` and `NAME_sacc_size`, or the header
 * that declares them. */
static SaStatus write_accel_embedded(SattnModule *m, const SattnOptions *o, const SaSpec *const *specs, int n,
                                     FILE *f, bool header) {
  fprintf(f, "/* Generated by sattnc --target=accel --emit=%s: accelerator streams (docs/accel-isa.md);\n"
             " * run them with sa_accel_load and sa_accel_run (sattn/accel.h, libsattn_runtime.a). */\n",
          header ? "header" : "accel-c");
  fputs(header ? "#pragma once\n#include <stddef.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
               : "#include <stddef.h>\n",
        f);
  for (int i = 0; i < n; i++) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    SaStatus st = make_stream(m, o, specs[i], &bytes, &len);
    if (st != SA_OK)
      return st;
    if (header) {
      fprintf(f, "\n/* %s: seq %lld, %zu bytes */\nextern const unsigned char %s_sacc[];\nextern const size_t %s_sacc_size;\n",
              specs[i]->name, (long long)(o->seq > 0 ? o->seq : specs[i]->seq), len, specs[i]->name, specs[i]->name);
    } else {
      write_c_bytes(f, specs[i]->name, "sacc", bytes, len);
    }
    free(bytes);
  }
  if (header)
    fputs("\n#ifdef __cplusplus\n}\n#endif\n", f);
  return SA_OK;
}

/* A stream for the one selected spec, or its listing. */
static SaStatus write_accel(SattnModule *m, SattnArtifactKind k, const SattnOptions *o, const SaSpec *const *specs,
                            int n, FILE *f) {
  SattnContext *c = m->ctx;
  const char *file = m->fe.src.file;
  if (n != 1) {
    drv_report(c, SATTN_SEVERITY_ERROR, file, 0, 0, NULL,
               "an accelerator stream holds one kernel; this file has %d (choose one with --kernel)", n);
    return SA_ERR_UNSUPPORTED;
  }
  unsigned char *bytes;
  size_t len;
  char err[256];
  SaStatus st = make_stream(m, o, specs[0], &bytes, &len);
  if (st != SA_OK)
    return st;
  if (k == SATTN_ARTIFACT_ACCEL) {
    fwrite(bytes, 1, len, f);
  } else {
    /* the listing is the disassembly of the stream itself, so the two agree */
    SaAccelProgram *p;
    st = sa_accel_load(bytes, len, &p, err, sizeof err);
    char *text = st == SA_OK ? sa_accel_disassemble(p) : NULL;
    if (st != SA_OK)
      drv_report(c, SATTN_SEVERITY_ERROR, file, 0, 0, NULL, "internal error: the stream does not load: %s", err);
    else if (!text)
      st = SA_ERR_OUT_OF_MEMORY;
    else
      fputs(text, f);
    free(text);
    sa_accel_free(p);
  }
  free(bytes);
  return st;
}

/* The chip the options name (sm_80 by default). */
static const char *options_arch(const SattnOptions *o) { return o->arch ? o->arch : "sm_80"; }

/* mlir-cuda, ptx and cubin: the specs lowered by sattn-lower-cuda, then
 * through the NVVM pipeline to PTX, then by ptxas to a cubin. */
static SaStatus write_cuda(SattnModule *m, SattnArtifactKind k, const SattnOptions *o, const SaSpec *const *specs,
                           int n, FILE *f) {
  SattnContext *c = m->ctx;
  SaStatus st;
  MlirModule mod = build_lowered(c, specs, n, DRV_CUDA, false, &st);
  if (st != SA_OK)
    return st;
  if (k == SATTN_ARTIFACT_MLIR_CUDA) {
    drv_print(mlirModuleGetOperation(mod), f, false);
    mlirModuleDestroy(mod);
    return SA_OK;
  }
  char pipeline[1024], err[512];
  cg_cuda_pipeline(options_arch(o), pipeline, sizeof pipeline);
  st = SA_ERR_UNSUPPORTED;
  if (!drv_run(c, mod, pipeline)) {
    mlirModuleDestroy(mod);
    return st;
  }
  char *ptx = NULL;
  size_t len = 0;
  FILE *pf = k == SATTN_ARTIFACT_PTX ? f : open_memstream(&ptx, &len);
  if (!pf) {
    mlirModuleDestroy(mod);
    return SA_ERR_OUT_OF_MEMORY;
  }
  bool ok = cg_cuda_write_ptx(mod, pf, err, sizeof err);
  mlirModuleDestroy(mod);
  if (pf != f && fclose(pf) != 0)
    ok = false, snprintf(err, sizeof err, "out of memory");
  if (ok && k == SATTN_ARTIFACT_CUBIN)
    ok = cg_cuda_write_cubin(ptx, len, options_arch(o), o->cuda_path, f, err, sizeof err);
  free(ptx);
  if (!ok) {
    drv_report(c, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL, "%s", err);
    return SA_ERR_UNSUPPORTED;
  }
  return SA_OK;
}

/* ptx-c: each selected spec's kernel as a module of its own, its PTX
 * embedded as `const unsigned char NAME_ptx[]` (NUL-terminated) and
 * `const size_t NAME_ptx_size` (with the NUL), for sa_cuda_module_load;
 * the cuda header declares them beside the launch contracts. */
static SaStatus write_cuda_embedded(SattnModule *m, const SattnOptions *o, const SaSpec *const *specs, int n, FILE *f) {
  fprintf(f, "/* Generated by sattnc --target=cuda --arch=%s --emit=ptx-c: each kernel's PTX (docs/cuda.md);\n"
             " * load it with sa_cuda_module_load and launch with the header's SaCudaKernel. */\n#include <stddef.h>\n",
          options_arch(o));
  for (int i = 0; i < n; i++) {
    char *ptx = NULL;
    size_t len = 0;
    FILE *pf = open_memstream(&ptx, &len);
    if (!pf)
      return SA_ERR_OUT_OF_MEMORY;
    SaStatus st = write_cuda(m, SATTN_ARTIFACT_PTX, o, &specs[i], 1, pf);
    if (fclose(pf) != 0 && st == SA_OK)
      st = SA_ERR_OUT_OF_MEMORY;
    if (st != SA_OK) {
      free(ptx);
      return st;
    }
    write_c_bytes(f, specs[i]->name, "ptx", (const unsigned char *)ptx, len + 1); /* open_memstream's NUL too */
    free(ptx);
  }
  return SA_OK;
}

/* Writes the artifact's bytes for kind k to f. */
static SaStatus write_kind(SattnModule *m, SattnArtifactKind k, const SattnOptions *o, const SaSpec *const *specs,
                           int n, FILE *f) {
  SattnContext *c = m->ctx;
  switch (k) {
  case SATTN_ARTIFACT_TOKENS: fe_print_tokens(f, &m->fe.toks); return SA_OK;
  case SATTN_ARTIFACT_AST: fe_print_ast(f, &m->fe.file, o->kernel); return SA_OK;
  case SATTN_ARTIFACT_HEADER:
    if (o->target == SATTN_TARGET_ACCEL)
      return write_accel_embedded(m, o, specs, n, f, true);
    if (o->target == SATTN_TARGET_CUDA) {
      cg_cuda_header(f, specs, n, options_arch(o));
      return SA_OK;
    }
    cg_cpu_header(f, specs, n);
    return SA_OK;
  case SATTN_ARTIFACT_ACCEL_C: return write_accel_embedded(m, o, specs, n, f, false);
  case SATTN_ARTIFACT_MASK_SVG:
  case SATTN_ARTIFACT_MASK_PNG: {
    if (n == 0)
      return SA_OK; /* one picture of the first spec (or opt->kernel) */
    const SaSpec *s = specs[0];
    int64_t seq = o->seq ? o->seq : s->seq;
    if (seq == SA_DYNAMIC) {
      drv_report(c, SATTN_SEVERITY_ERROR, m->fe.src.file, s->line, s->col, NULL,
                 "spec '%s' has seq=?; give --seq N for its picture", s->name);
      return SA_ERR_INVALID_SPEC;
    }
    return pic_write(f, s, seq, o->picture_seed, k == SATTN_ARTIFACT_MASK_PNG) ? SA_OK : SA_ERR_OUT_OF_MEMORY;
  }
  case SATTN_ARTIFACT_MLIR:
  case SATTN_ARTIFACT_MLIR_CANONICAL:
  case SATTN_ARTIFACT_MLIR_CPU:
  case SATTN_ARTIFACT_MLIR_LLVM:
  case SATTN_ARTIFACT_LLVM_IR:
  case SATTN_ARTIFACT_ASM:
  case SATTN_ARTIFACT_OBJECT: {
    SaStatus st;
    bool cpu_stage = stage_of[k] == DRV_CPU || stage_of[k] == DRV_LLVM;
    if (cpu_stage && !cpu_known(m, o->cpu))
      return SA_ERR_UNSUPPORTED;
    MlirModule mod = build_lowered(c, specs, n, stage_of[k], cpu_stage && cg_cpu_has_vnni(o->cpu), &st);
    if (st != SA_OK)
      return st;
    if (k == SATTN_ARTIFACT_LLVM_IR || k == SATTN_ARTIFACT_ASM || k == SATTN_ARTIFACT_OBJECT) {
      char err[512];
      CgOutput what = k == SATTN_ARTIFACT_LLVM_IR ? CG_OUT_LLVM : k == SATTN_ARTIFACT_ASM ? CG_OUT_ASM : CG_OUT_OBJ;
      if (!cg_cpu_emit(mod, o->cpu, what, f, err, sizeof err)) {
        drv_report(c, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL, "%s", err);
        st = SA_ERR_UNSUPPORTED;
      }
    } else {
      drv_print(mlirModuleGetOperation(mod), f, false);
    }
    mlirModuleDestroy(mod);
    return st;
  }
  case SATTN_ARTIFACT_ACCEL:
  case SATTN_ARTIFACT_ACCEL_ASM: return write_accel(m, k, o, specs, n, f);
  case SATTN_ARTIFACT_MLIR_ACCEL: {
    SaStatus st;
    MlirModule mod = build_accel(m, o, specs, n, &st);
    if (st != SA_OK)
      return st;
    drv_print(mlirModuleGetOperation(mod), f, false);
    mlirModuleDestroy(mod);
    return SA_OK;
  }
  case SATTN_ARTIFACT_MLIR_CUDA:
  case SATTN_ARTIFACT_PTX:
  case SATTN_ARTIFACT_CUBIN: return write_cuda(m, k, o, specs, n, f);
  case SATTN_ARTIFACT_PTX_C: return write_cuda_embedded(m, o, specs, n, f);
  case SATTN_ARTIFACT_COUNT: break;
  }
  return SA_ERR_INVALID_ARGUMENT;
}

/* An artifact whose bytes `fill` writes through a memory stream. */
static SaStatus make_artifact(SattnArtifactKind kind, SattnArtifact **out,
                              SaStatus (*fill)(FILE *f, void *ud), void *ud) {
  SattnArtifact *a = calloc(1, sizeof *a);
  if (!a)
    return SA_ERR_OUT_OF_MEMORY;
  a->kind = kind;
  FILE *f = open_memstream(&a->data, &a->size);
  if (!f) {
    free(a);
    return SA_ERR_OUT_OF_MEMORY;
  }
  SaStatus st = fill(f, ud);
  if (fclose(f) != 0 && st == SA_OK)
    st = SA_ERR_OUT_OF_MEMORY;
  if (st != SA_OK) {
    sattn_artifact_destroy(a);
    return st;
  }
  *out = a;
  return SA_OK;
}

typedef struct {
  SattnModule *m;
  SattnArtifactKind kind;
  const SattnOptions *o;
  const SaSpec *const *specs;
  int n;
} EmitJob;

static SaStatus fill_emit(FILE *f, void *ud) {
  EmitJob *j = ud;
  return write_kind(j->m, j->kind, j->o, j->specs, j->n, f);
}

/* The CPU-specific checks of the options, before any work. */
static SaStatus check_options(SattnModule *m, SattnArtifactKind kind, const SattnOptions *o) {
  if ((unsigned)o->target >= SATTN_TARGET_COUNT || (unsigned)kind >= SATTN_ARTIFACT_COUNT)
    return SA_ERR_INVALID_ARGUMENT;
  bool cpu_kind = kind >= SATTN_ARTIFACT_MLIR_CPU && kind <= SATTN_ARTIFACT_OBJECT;
  bool accel_kind = kind == SATTN_ARTIFACT_ACCEL || kind == SATTN_ARTIFACT_ACCEL_ASM ||
                    kind == SATTN_ARTIFACT_ACCEL_C || kind == SATTN_ARTIFACT_MLIR_ACCEL;
  bool cuda_kind = kind == SATTN_ARTIFACT_MLIR_CUDA || kind == SATTN_ARTIFACT_PTX || kind == SATTN_ARTIFACT_CUBIN ||
                   kind == SATTN_ARTIFACT_PTX_C;
  if ((cpu_kind && o->target != SATTN_TARGET_CPU) || (accel_kind && o->target != SATTN_TARGET_ACCEL) ||
      (cuda_kind && o->target != SATTN_TARGET_CUDA)) {
    drv_report(m->ctx, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL, "target %s does not make '%s' (%s)",
               sattn_target_name(o->target), sattn_artifact_kind_name(kind),
               o->target == SATTN_TARGET_ACCEL  ? "it makes mlir-accel, accel, accel-asm, accel-c and header"
               : o->target == SATTN_TARGET_CUDA ? "it makes mlir-cuda, ptx, cubin, ptx-c and header"
                                                : "it makes mlir-cpu to obj and header");
    return SA_ERR_UNSUPPORTED;
  }
  if (o->target == SATTN_TARGET_CUDA && !cg_cuda_arch_known(options_arch(o))) {
    drv_report(m->ctx, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL,
               "unknown CUDA arch '%s' (use sm_80, sm_86, sm_89, sm_90 or sm_90a)", o->arch);
    return SA_ERR_UNSUPPORTED;
  }
  if ((kind == SATTN_ARTIFACT_LLVM_IR || kind == SATTN_ARTIFACT_ASM || kind == SATTN_ARTIFACT_OBJECT) &&
      !cg_cpu_known(o->cpu)) {
    drv_report(m->ctx, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL,
               "unknown CPU '%s' (use native, x86-64, x86-64-v3, haswell, skylake-avx512, znver4, ...)", o->cpu);
    return SA_ERR_UNSUPPORTED;
  }
  return SA_OK;
}

SaStatus sattn_emit(SattnModule *m, SattnArtifactKind kind, const SattnOptions *opt, SattnArtifact **out) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!m)
    return SA_ERR_INVALID_ARGUMENT;
  SattnOptions o = opt ? *opt : (SattnOptions){0};
  SaStatus st = check_options(m, kind, &o);
  const SaSpec **specs = NULL;
  int n = 0;
  if (st == SA_OK)
    st = select_specs(m, &o, &specs, &n);
  if (st != SA_OK)
    return st;
  EmitJob job = {m, kind, &o, specs, n};
  SattnArtifact *a = NULL;
  st = make_artifact(kind, &a, fill_emit, &job);
  if (st == SA_OK && kind != SATTN_ARTIFACT_TOKENS) {
    a->n_kernels = n;
    if (!kernel_infos(&a->arena, specs, n, &a->kernels)) {
      sattn_artifact_destroy(a);
      a = NULL;
      st = SA_ERR_OUT_OF_MEMORY;
    }
  }
  free(specs);
  *out = a;
  return st;
}

typedef struct {
  SattnContext *ctx;
  const char *name, *text;
  size_t len;
  const char *pipeline;
  bool generic;
} OptJob;

static SaStatus fill_tokens(FILE *f, void *ud) {
  OptJob *j = ud;
  FrontEnd fe = {0};
  Diag d = drv_diag(j->ctx);
  char *text = dup_text(j->text, j->len);
  SaStatus st = SA_ERR_OUT_OF_MEMORY;
  if (text) {
    st = fe_run(&fe, j->name, text, j->len, FE_STOP_TOKENS, &d) ? SA_OK : SA_ERR_INVALID_SPEC;
    if (st == SA_OK)
      fe_print_tokens(f, &fe.toks);
  }
  fe_free(&fe);
  free(text);
  return st;
}

SaStatus sattn_lex(SattnContext *ctx, const char *name, const char *text, size_t len, SattnArtifact **out) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!ctx || (!text && len))
    return SA_ERR_INVALID_ARGUMENT;
  OptJob j = {ctx, name ? name : "<input>", text ? text : "", len, NULL, false};
  return make_artifact(SATTN_ARTIFACT_TOKENS, out, fill_tokens, &j);
}

/* The job's text as a module: parsed (from a NUL-terminated copy, since
 * MLIR's lexer reads up to a NUL), a lone top-level op (one func.func) put
 * in the module mlir-opt would give it. Null after a diagnostic, with *st
 * saying why. */
static MlirOperation parse_job(OptJob *j, SaStatus *st) {
  MlirOperation none = {NULL};
  MlirContext mctx = drv_mlir(j->ctx);
  *st = SA_ERR_INVALID_SPEC;
  if (mlirContextIsNull(mctx))
    return none;
  char *text = dup_text(j->text, j->len);
  if (!text) {
    *st = SA_ERR_OUT_OF_MEMORY;
    return none;
  }
  MlirOperation op = mlirOperationCreateParse(mctx, (MlirStringRef){text, j->len}, dl_ref(j->name));
  free(text);
  if (mlirOperationIsNull(op))
    return none;
  MlirStringRef opname = mlirIdentifierStr(mlirOperationGetName(op));
  if (opname.length != 14 || memcmp(opname.data, "builtin.module", 14) != 0) {
    MlirModule m = mlirModuleCreateEmpty(mlirOperationGetLocation(op));
    mlirBlockAppendOwnedOperation(mlirModuleGetBody(m), op);
    op = mlirModuleGetOperation(m);
  }
  *st = SA_OK;
  return op;
}

static SaStatus fill_opt(FILE *f, void *ud) {
  OptJob *j = ud;
  SaStatus st;
  MlirOperation op = parse_job(j, &st);
  if (st != SA_OK)
    return st;
  MlirContext mctx = drv_mlir(j->ctx);
  st = SA_ERR_INVALID_SPEC;
  MlirPassManager pm = mlirPassManagerCreateOnOperation(mctx, dl_ref("builtin.module"));
  /* Like mlir-opt, the input is verified before any pass runs. */
  if (drv_add_pipeline(j->ctx, pm, "sattn-verify") && drv_add_pipeline(j->ctx, pm, j->pipeline) &&
      mlirOperationVerify(op) && mlirLogicalResultIsSuccess(mlirPassManagerRunOnOp(pm, op))) {
    drv_print(op, f, j->generic);
    st = SA_OK;
  }
  mlirPassManagerDestroy(pm);
  mlirOperationDestroy(op);
  return st;
}

SaStatus sattn_opt(SattnContext *ctx, const char *name, const char *text, size_t len, const char *pipeline,
                   bool generic, SattnArtifact **out) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!ctx || (!text && len))
    return SA_ERR_INVALID_ARGUMENT;
  OptJob j = {ctx, name ? name : "<input>", text ? text : "", len, pipeline ? pipeline : "", generic};
  return make_artifact(SATTN_ARTIFACT_MLIR, out, fill_opt, &j);
}

typedef struct {
  OptJob job;
  const char *program;
} EncodeJob;

static SaStatus fill_encode(FILE *f, void *ud) {
  EncodeJob *e = ud;
  OptJob *j = &e->job;
  SaStatus st;
  MlirOperation op = parse_job(j, &st);
  if (st != SA_OK)
    return st;
  if (!mlirOperationVerify(op)) {
    mlirOperationDestroy(op);
    return SA_ERR_INVALID_SPEC;
  }
  /* the programs among the module's ops */
  MlirOperation found = {NULL};
  int n = 0;
  for (MlirOperation it = mlirBlockGetFirstOperation(mlirModuleGetBody(mlirModuleFromOperation(op)));
       !mlirOperationIsNull(it); it = mlirOperationGetNextInBlock(it)) {
    if (mlirAttributeIsNull(mlirOperationGetAttributeByName(it, dl_ref("saccel.program"))))
      continue;
    MlirStringRef sym = mlirStringAttrGetValue(mlirOperationGetAttributeByName(it, dl_ref("sym_name")));
    if (e->program && (strlen(e->program) != sym.length || memcmp(e->program, sym.data, sym.length) != 0))
      continue;
    found = it;
    n++;
  }
  if (n == 0) {
    drv_report(j->ctx, SATTN_SEVERITY_ERROR, j->name, 0, 0, NULL,
               "no saccel program named '%s' (a func.func with the saccel.program attribute)",
               e->program ? e->program : "");
    st = SA_ERR_NOT_FOUND;
  } else if (n > 1) {
    drv_report(j->ctx, SATTN_SEVERITY_ERROR, j->name, 0, 0, NULL, "%d saccel programs; name the one to encode", n);
    st = SA_ERR_INVALID_SPEC;
  }
  unsigned char *bytes = NULL;
  size_t len = 0;
  if (st == SA_OK)
    st = encode_program(found, &bytes, &len);
  if (st == SA_OK && fwrite(bytes, 1, len, f) != len)
    st = SA_ERR_OUT_OF_MEMORY;
  free(bytes);
  mlirOperationDestroy(op);
  return st;
}

SaStatus sattn_accel_encode(SattnContext *ctx, const char *name, const char *text, size_t len, const char *program,
                            SattnArtifact **out) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!ctx || (!text && len))
    return SA_ERR_INVALID_ARGUMENT;
  EncodeJob e = {{ctx, name ? name : "<input>", text ? text : "", len, NULL, false}, program};
  return make_artifact(SATTN_ARTIFACT_ACCEL, out, fill_encode, &e);
}

const void *sattn_artifact_data(const SattnArtifact *a, size_t *size) {
  if (size)
    *size = a ? a->size : 0;
  return a ? a->data : NULL;
}

SattnArtifactKind sattn_artifact_kind(const SattnArtifact *a) { return a ? a->kind : SATTN_ARTIFACT_COUNT; }
int sattn_artifact_kernel_count(const SattnArtifact *a) { return a ? a->n_kernels : 0; }

const SattnKernelInfo *sattn_artifact_kernel(const SattnArtifact *a, int i) {
  return a && i >= 0 && i < a->n_kernels ? &a->kernels[i] : NULL;
}

SaStatus sattn_artifact_write(const SattnArtifact *a, SattnContext *ctx, const char *path) {
  if (!a || !path)
    return SA_ERR_INVALID_ARGUMENT;
  bool out = strcmp(path, "-") == 0;
  FILE *f = out ? stdout : fopen(path, "wb");
  bool ok = f && fwrite(a->data, 1, a->size, f) == a->size;
  ok = f && (out ? fflush(f) == 0 : fclose(f) == 0) && ok;
  if (ok)
    return SA_OK;
  SattnContext fallback = {0}; /* no context: the default handler */
  drv_report(ctx ? ctx : &fallback, SATTN_SEVERITY_ERROR, path, 0, 0, NULL, "cannot write '%s'", path);
  return SA_ERR_IO;
}

void sattn_artifact_destroy(SattnArtifact *a) {
  if (!a)
    return;
  arena_free(&a->arena);
  free(a->data);
  free(a);
}

/* ---- the JIT ---- */

struct SattnJit {
  CgJit jit;
  Arena arena;
  int n_kernels;
  SattnKernelInfo *kernels;
};

SaStatus sattn_jit_create(SattnModule *m, const SattnOptions *opt, SattnJit **out) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!m)
    return SA_ERR_INVALID_ARGUMENT;
  SattnOptions o = opt ? *opt : (SattnOptions){0};
  if ((unsigned)o.target >= SATTN_TARGET_COUNT)
    return SA_ERR_INVALID_ARGUMENT;
  if (o.target != SATTN_TARGET_CPU) {
    drv_report(m->ctx, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL,
               "the JIT runs CPU kernels; accelerator streams run with sa_accel_run (sattn/accel.h)");
    return SA_ERR_UNSUPPORTED;
  }
  const SaSpec **specs = NULL;
  int n = 0;
  SaStatus st = select_specs(m, &o, &specs, &n);
  if (st != SA_OK)
    return st;
  SattnJit *j = calloc(1, sizeof *j);
  MlirModule mod = {NULL};
  if (!j) {
    st = SA_ERR_OUT_OF_MEMORY;
    goto done;
  }
  /* The JIT compiles for the host; a named CPU can only take instructions
   * away (VNNI when the named CPU lacks it), never add what the host lacks. */
  if (!cpu_known(m, o.cpu)) {
    st = SA_ERR_UNSUPPORTED;
    goto done;
  }
  mod = build_lowered(m->ctx, specs, n, DRV_LLVM, cg_cpu_has_vnni(NULL) && cg_cpu_has_vnni(o.cpu), &st);
  if (st != SA_OK)
    goto done;
  if (!cg_cpu_jit_create(mod, &j->jit)) {
    drv_report(m->ctx, SATTN_SEVERITY_ERROR, m->fe.src.file, 0, 0, NULL, "the JIT could not compile the kernels");
    st = SA_ERR_UNSUPPORTED;
    goto done;
  }
  j->n_kernels = n;
  if (!kernel_infos(&j->arena, specs, n, &j->kernels)) {
    st = SA_ERR_OUT_OF_MEMORY;
    goto done;
  }
done:
  if (!mlirModuleIsNull(mod))
    mlirModuleDestroy(mod);
  free(specs);
  if (st != SA_OK) {
    sattn_jit_destroy(j);
    return st;
  }
  *out = j;
  return SA_OK;
}

SattnCpuKernelFn sattn_jit_lookup(const SattnJit *jit, const char *name) {
  for (int i = 0; jit && name && i < jit->n_kernels; i++)
    if (strcmp(jit->kernels[i].name, name) == 0)
      return cg_cpu_jit_lookup((CgJit *)&jit->jit, name);
  return NULL;
}

int sattn_jit_kernel_count(const SattnJit *jit) { return jit ? jit->n_kernels : 0; }

const SattnKernelInfo *sattn_jit_kernel(const SattnJit *jit, int i) {
  return jit && i >= 0 && i < jit->n_kernels ? &jit->kernels[i] : NULL;
}

void sattn_jit_destroy(SattnJit *jit) {
  if (!jit)
    return;
  cg_cpu_jit_destroy(&jit->jit);
  arena_free(&jit->arena);
  free(jit);
}
