/* saccel.c: an accelerator program in the saccel dialect
 * (dialect/saccel.irdl.mlir) and back: printing a CgAccel as a func.func
 * for sattn-lower-accel, reading such a func into a CgAccel for the
 * encoder, and writing the .sacc stream.
 *
 * One table per section says which attribute holds which field and how it
 * is spelt in MLIR; one table per opcode names its operands. The printer
 * and the reader both walk these tables, so they cannot disagree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/accel/accel.h"
#include "../codegen.h"
#include "../../dialect/dialect.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/Diagnostics.h"

/* How a field is spelt: an i64, a bool, an f64 (stored as its bits), a
 * keep rule's name, an element type, a layout's name. */
typedef enum { FK_INT, FK_BOOL, FK_F64, FK_KEEP, FK_DTYPE, FK_LAYOUT } FieldKind;

typedef struct {
  int index; /* into the section's fields */
  const char *name;
  FieldKind kind;
} Field;

static const Field header_fields[] = {
    {H_BATCH, "batch", FK_INT},         {H_HEADS, "heads", FK_INT},       {H_KV_HEADS, "kv_heads", FK_INT},
    {H_SEQ, "seq", FK_INT},             {H_HEAD_DIM, "head_dim", FK_INT}, {H_LAYOUT, "layout", FK_LAYOUT},
    {H_STORAGE, "storage", FK_DTYPE},   {H_OUTPUT, "output", FK_DTYPE},   {H_SCALE_BITS, "scale", FK_F64},
    {H_ROWS, "rows", FK_INT},           {H_COLS, "cols", FK_INT},         {H_GLOBAL_PES, "global_pes", FK_INT},
};

static const Field mask_fields[] = {
    {M_CAUSAL, "causal", FK_BOOL},         {M_HAS_WINDOW, "has_window", FK_BOOL},
    {M_WINDOW, "window", FK_INT},          {M_DILATION, "dilation", FK_INT},
    {M_HAS_WINDOW2D, "has_window2d", FK_BOOL}, {M_IMAGE_H, "image_h", FK_INT},
    {M_IMAGE_W, "image_w", FK_INT},        {M_WIN_H, "win_h", FK_INT},
    {M_WIN_W, "win_w", FK_INT},            {M_IMAGE_OFFSET, "image_offset", FK_INT},
    {M_BLOCK, "block", FK_INT},            {M_HAS_BIGBIRD, "has_bigbird", FK_BOOL},
    {M_BB_WINDOW, "bb_window", FK_INT},    {M_BB_RANDOM, "bb_random", FK_INT},
    {M_BB_GLOBAL, "bb_global", FK_INT},    {M_BB_SEED, "bb_seed", FK_INT},
};

/* D_FILTER_ROUNDS is the number of saccel.round ops, not an attribute. */
static const Field dynamic_fields[] = {
    {D_HAS_PREDICT, "has_predict", FK_BOOL},   {D_PREDICT_DIM, "predict_dim", FK_INT},
    {D_PREDICT_BITS, "predict_bits", FK_INT},  {D_PREDICT_KEEP_KIND, "predict_keep", FK_KEEP},
    {D_PREDICT_KEEP_VALUE, "predict_keep_value", FK_F64}, {D_PREDICT_SEED, "predict_seed", FK_INT},
    {D_NM_N, "nm_n", FK_INT},                  {D_NM_M, "nm_m", FK_INT},
    {D_TOKEN_KEEP, "token_keep", FK_F64},      {D_HEAD_KEEP, "head_keep", FK_F64},
    {D_VALUE_KEEP, "value_keep", FK_F64},      {D_HAS_PROGRESSIVE, "has_progressive", FK_BOOL},
    {D_MSB_BITS, "msb_bits", FK_INT},          {D_LSB_BITS, "lsb_bits", FK_INT},
    {D_THRESHOLD, "threshold", FK_F64},
};

/* A filter round's four fields, from D_ROUNDS + 4 * round. */
static const Field round_fields[] = {
    {0, "q_bits", FK_INT}, {1, "k_bits", FK_INT}, {2, "keep", FK_KEEP}, {3, "keep_value", FK_F64}};

/* The attributes that hold each instruction's b and c fields (NULL: the
 * field is zero). HEADS's c, the loop's length, is computed. */
static const struct {
  const char *b, *c;
} operands[OP_COUNT] = {
    [OP_HEADS] = {"count", NULL},   [OP_LOADQ] = {"rows", "first"},  [OP_DIAG] = {"columns", "first"},
    [OP_BLOCK] = {"columns", "first"}, [OP_GCOL] = {"count", "first"}, [OP_GROW] = {NULL, "token"},
    [OP_STORE] = {"rows", "first"}, [OP_LOWQK] = {"source", NULL},   [OP_SELECT] = {"source", NULL},
    [OP_NM] = {"n", "m"},
};

static const char *const keep_names[] = {[KEEP_ALL] = "all", [KEEP_TOP_RATIO] = "top_ratio",
                                         [KEEP_TOP_COUNT] = "top_count", [KEEP_MEAN] = "mean"};
static const char *const layout_names[] = {[LAYOUT_BHSD] = "bhsd", [LAYOUT_BSHD] = "bshd"};
/* MLIR's spelling of the element types a stream may name. */
static const char *const dtype_names[DT_COUNT] = {
    [DT_FP32] = "f32", [DT_FP16] = "f16", [DT_BF16] = "bf16", [DT_FP8E4M3] = "f8E4M3FN", [DT_FP8E5M2] = "f8E5M2",
    [DT_INT8] = "i8", [DT_INT4] = "i4", [DT_INT2] = "i2"};

#define N_OF(a) (int)(sizeof(a) / sizeof *(a))

/* ---- printing ---- */

static const char *name_or(const char *const *names, int n, int64_t i) {
  return i >= 0 && i < n && names[i] ? names[i] : "?";
}

static void print_fields(FILE *f, const char *op, const Field *fields, int n, const int64_t *v, const char *extra) {
  fprintf(f, "  \"saccel.%s\"() {", op);
  for (int i = 0; i < n; i++) {
    int64_t x = v[fields[i].index];
    fprintf(f, "%s%s = ", i ? ", " : "", fields[i].name);
    switch (fields[i].kind) {
    case FK_INT: fprintf(f, "%lld : i64", (long long)x); break;
    case FK_BOOL: fputs(x ? "true" : "false", f); break;
    case FK_F64: fprintf(f, "0x%016llX : f64", (unsigned long long)x); break; /* exact */
    case FK_KEEP: fprintf(f, "\"%s\"", name_or(keep_names, N_OF(keep_names), x)); break;
    case FK_DTYPE: fputs(name_or(dtype_names, N_OF(dtype_names), x), f); break;
    case FK_LAYOUT: fprintf(f, "\"%s\"", name_or(layout_names, N_OF(layout_names), x)); break;
    }
  }
  fprintf(f, "%s} : () -> ()\n", extra ? extra : "");
}

static void print_array(FILE *f, const char *name, const int64_t *v, size_t n, bool last) {
  fprintf(f, "%s = array<i64%s", name, n ? ": " : "");
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%s%lld", i ? ", " : "", (long long)v[i]);
  fprintf(f, ">%s", last ? "" : ", ");
}

char *cg_accel_print(const CgAccel *p) {
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f)
    return NULL;
  fprintf(f, "func.func @%s() attributes {saccel.program} {\n", p->name);
  char hash[64];
  snprintf(hash, sizeof hash, ", config_hash = %lld : i64", (long long)p->config_hash);
  print_fields(f, "header", header_fields, N_OF(header_fields), p->header, hash);
  print_fields(f, "mask", mask_fields, N_OF(mask_fields), p->mask, NULL);
  fputs("  \"saccel.tables\"() {", f);
  print_array(f, "globals", p->globals, (size_t)p->n_globals, false);
  int64_t *flat = malloc(2 * (size_t)p->n_blocks * sizeof *flat + 1);
  bool flat_ok = flat != NULL;
  for (int i = 0; flat && i < p->n_blocks; i++)
    flat[2 * i] = p->blocks[i].q, flat[2 * i + 1] = p->blocks[i].k;
  print_array(f, "blocks", flat, flat ? 2 * (size_t)p->n_blocks : 0, false);
  free(flat);
  print_array(f, "offsets", p->offsets, p->n_offsets, true);
  fputs("} : () -> ()\n", f);
  if (p->dynamic) {
    print_fields(f, "dynamic", dynamic_fields, N_OF(dynamic_fields), p->dyn, NULL);
    for (int64_t r = 0; r < p->dyn[D_FILTER_ROUNDS] && r < 8; r++)
      print_fields(f, "round", round_fields, N_OF(round_fields), p->dyn + D_ROUNDS + 4 * r, NULL);
  }
  for (size_t i = 0; i < p->n_code; i++) {
    AccInsn in = acc_decode(p->code[i]);
    fprintf(f, "  \"saccel.%s\"()", acc_op_name(in.op));
    const char *b = (unsigned)in.op < OP_COUNT ? operands[in.op].b : NULL;
    const char *c = (unsigned)in.op < OP_COUNT ? operands[in.op].c : NULL;
    if (b && c)
      fprintf(f, " {%s = %u : i64, %s = %u : i64}", b, in.b, c, in.c);
    else if (b || c)
      fprintf(f, " {%s = %u : i64}", b ? b : c, b ? in.b : in.c);
    fputs(" : () -> ()\n", f);
  }
  fputs("  return\n}\n", f);
  bool ok = fclose(f) == 0 && flat_ok;
  if (!ok) {
    free(text);
    return NULL;
  }
  return text;
}

/* ---- reading ---- */

typedef struct {
  CgAccel *p;
  bool failed;
  size_t code_cap;
} Reader;

static void read_error(Reader *r, MlirOperation op, const char *fmt, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, what);
  mlirEmitError(mlirOperationGetLocation(op), msg);
  r->failed = true;
}

static int index_of(const char *const *names, int n, MlirStringRef s) {
  for (int i = 0; i < n; i++)
    if (names[i] && strlen(names[i]) == s.length && memcmp(names[i], s.data, s.length) == 0)
      return i;
  return -1;
}

static bool read_field(MlirOperation op, const Field *fl, int64_t *out) {
  MlirAttribute a = mlirOperationGetAttributeByName(op, dl_ref(fl->name));
  if (mlirAttributeIsNull(a))
    return false;
  switch (fl->kind) {
  case FK_INT:
    if (!mlirAttributeIsAInteger(a))
      return false;
    *out = mlirIntegerAttrGetValueInt(a);
    return true;
  case FK_BOOL:
    if (!mlirAttributeIsABool(a))
      return false;
    *out = mlirBoolAttrGetValue(a);
    return true;
  case FK_F64: {
    if (!mlirAttributeIsAFloat(a))
      return false;
    double d = mlirFloatAttrGetValueDouble(a);
    memcpy(out, &d, sizeof d);
    return true;
  }
  case FK_KEEP:
  case FK_LAYOUT: {
    if (!mlirAttributeIsAString(a))
      return false;
    int i = fl->kind == FK_KEEP ? index_of(keep_names, N_OF(keep_names), mlirStringAttrGetValue(a))
                                : index_of(layout_names, N_OF(layout_names), mlirStringAttrGetValue(a));
    *out = i;
    return i >= 0;
  }
  case FK_DTYPE: {
    if (!mlirAttributeIsAType(a))
      return false;
    SaDtype t;
    MlirType ty = mlirTypeAttrGetValue(a);
    for (t = 0; t < DT_COUNT; t++)
      if (mlirTypeEqual(ty, dl_dtype(mlirAttributeGetContext(a), t)))
        break;
    *out = t;
    return t < DT_COUNT;
  }
  }
  return false;
}

static void read_fields(Reader *r, MlirOperation op, const Field *fields, int n, int64_t *v) {
  for (int i = 0; i < n && !r->failed; i++)
    if (!read_field(op, &fields[i], &v[fields[i].index]))
      read_error(r, op, "saccel: attribute '%s' is missing or not of its kind", fields[i].name);
}

static int64_t *read_array(Reader *r, MlirOperation op, const char *name, size_t *n) {
  MlirAttribute a = mlirOperationGetAttributeByName(op, dl_ref(name));
  *n = 0;
  if (mlirAttributeIsNull(a) || !mlirAttributeIsADenseI64Array(a)) {
    read_error(r, op, "saccel: attribute '%s' must be an array<i64>", name);
    return NULL;
  }
  *n = (size_t)mlirDenseArrayGetNumElements(a);
  int64_t *v = malloc((*n ? *n : 1) * sizeof *v);
  if (!v) {
    read_error(r, op, "saccel: out of memory reading '%s'", name);
    return NULL;
  }
  for (size_t i = 0; i < *n; i++)
    v[i] = mlirDenseI64ArrayGetElement(a, (intptr_t)i);
  return v;
}

static void read_tables(Reader *r, MlirOperation op) {
  CgAccel *p = r->p;
  size_t n;
  p->globals = read_array(r, op, "globals", &n);
  p->n_globals = (int)n;
  int64_t *flat = r->failed ? NULL : read_array(r, op, "blocks", &n);
  if (flat && (n % 2 || n / 2 > INT32_MAX))
    read_error(r, op, "saccel: '%s' must hold (query block, key block) pairs", "blocks");
  if (flat && !r->failed) {
    p->blocks = malloc((n / 2 ? n / 2 : 1) * sizeof *p->blocks);
    if (!p->blocks)
      read_error(r, op, "saccel: out of memory reading '%s'", "blocks");
    for (size_t i = 0; p->blocks && i < n / 2; i++)
      p->blocks[i] = (SaBlockPair){flat[2 * i], flat[2 * i + 1]};
    p->n_blocks = (int)(n / 2);
  }
  free(flat);
  if (!r->failed)
    p->offsets = read_array(r, op, "offsets", &p->n_offsets);
}

/* The opcode of an instruction op, or -1 for any other op. */
static int opcode_of(MlirOperation op) {
  MlirStringRef n = mlirIdentifierStr(mlirOperationGetName(op));
  if (n.length < 8 || memcmp(n.data, "saccel.", 7) != 0)
    return -1;
  for (int o = 0; o < OP_COUNT; o++) {
    const char *m = acc_op_name((AccOpcode)o);
    if (strlen(m) == n.length - 7 && memcmp(m, n.data + 7, n.length - 7) == 0)
      return o;
  }
  return -1;
}

static void read_insn(Reader *r, MlirOperation op, AccOpcode code) {
  CgAccel *p = r->p;
  int64_t v[2] = {0, 0};
  const char *names[2] = {operands[code].b, operands[code].c};
  static const int64_t limit[2] = {UINT16_MAX, UINT32_MAX};
  for (int i = 0; i < 2 && !r->failed; i++) {
    if (!names[i])
      continue;
    Field fl = {i, names[i], FK_INT};
    if (!read_field(op, &fl, &v[i]))
      read_error(r, op, "saccel: attribute '%s' is missing or not an integer", names[i]);
    else if (v[i] < 0 || v[i] > limit[i])
      read_error(r, op, "saccel: '%s' is outside its instruction field", names[i]);
  }
  if (r->failed)
    return;
  if (p->n_code == r->code_cap) {
    size_t cap = r->code_cap ? 2 * r->code_cap : 256;
    uint64_t *w = realloc(p->code, cap * sizeof *w);
    if (!w) {
      read_error(r, op, "saccel: %s", "out of memory");
      return;
    }
    p->code = w, r->code_cap = cap;
  }
  p->code[p->n_code++] = acc_encode((AccInsn){code, 0, (uint16_t)v[0], (uint32_t)v[1]});
}

bool cg_accel_read(MlirOperation func, CgAccel *out) {
  memset(out, 0, sizeof *out);
  Reader r = {out, false, 0};
  MlirAttribute sym = mlirOperationGetAttributeByName(func, dl_ref("sym_name"));
  MlirStringRef nm = mlirStringAttrGetValue(sym);
  if (nm.length >= sizeof out->name) {
    read_error(&r, func, "saccel: a program's name has at most %s characters", "63");
    return false;
  }
  memcpy(out->name, nm.data, nm.length);
  /* sections first, in order; then instructions, the last one end */
  enum { S_HEADER, S_MASK, S_TABLES, S_DYNAMIC, S_CODE } at = S_HEADER;
  size_t heads_at = SIZE_MAX;
  bool ended = false;
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(func, 0));
  for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationIsNull(op) && !r.failed;
       op = mlirOperationGetNextInBlock(op)) {
    if (mlirOperationIsNull(mlirOperationGetNextInBlock(op)))
      break; /* func.return */
    const char *expect[] = {"header", "mask", "tables"};
    if (at < S_DYNAMIC) {
      char full[32];
      snprintf(full, sizeof full, "saccel.%s", expect[at]);
      MlirStringRef n = mlirIdentifierStr(mlirOperationGetName(op));
      if (n.length != strlen(full) || memcmp(n.data, full, n.length) != 0) {
        read_error(&r, op, "saccel: a program begins with saccel.header, saccel.mask and saccel.tables; expected %s",
                   full);
        break;
      }
      if (at == S_HEADER) {
        read_fields(&r, op, header_fields, N_OF(header_fields), out->header);
        Field h = {0, "config_hash", FK_INT};
        int64_t hash = 0;
        if (!r.failed && !read_field(op, &h, &hash))
          read_error(&r, op, "saccel: attribute '%s' is missing or not of its kind", "config_hash");
        out->config_hash = (uint64_t)hash;
      } else if (at == S_MASK) {
        read_fields(&r, op, mask_fields, N_OF(mask_fields), out->mask);
      } else {
        read_tables(&r, op);
      }
      at++;
      continue;
    }
    MlirStringRef n = mlirIdentifierStr(mlirOperationGetName(op));
    bool is_dynamic = n.length == 14 && memcmp(n.data, "saccel.dynamic", 14) == 0;
    bool is_round = n.length == 12 && memcmp(n.data, "saccel.round", 12) == 0;
    if (is_dynamic || is_round) {
      if (at != S_DYNAMIC || (is_round && !out->dynamic) || (is_dynamic && out->dynamic)) {
        read_error(&r, op, "saccel: %s must follow saccel.tables (one dynamic, then its rounds)",
                   is_dynamic ? "saccel.dynamic" : "saccel.round");
        break;
      }
      if (is_dynamic) {
        out->dynamic = true;
        read_fields(&r, op, dynamic_fields, N_OF(dynamic_fields), out->dyn);
      } else if (out->dyn[D_FILTER_ROUNDS] == 8) {
        read_error(&r, op, "saccel: more than %s filter rounds", "8");
      } else {
        read_fields(&r, op, round_fields, N_OF(round_fields), out->dyn + D_ROUNDS + 4 * out->dyn[D_FILTER_ROUNDS]++);
      }
      continue;
    }
    at = S_CODE;
    int code = opcode_of(op);
    if (code < 0) {
      read_error(&r, op, "saccel: not an accelerator instruction%s", "");
      break;
    }
    if (ended) {
      read_error(&r, op, "saccel: instructions after %s", "saccel.end");
      break;
    }
    if (code == OP_HEADS) {
      if (heads_at != SIZE_MAX) {
        read_error(&r, op, "saccel: a program has one %s loop", "saccel.heads");
        break;
      }
      heads_at = out->n_code;
    }
    ended = code == OP_END;
    read_insn(&r, op, (AccOpcode)code);
  }
  if (!r.failed && (at < S_DYNAMIC || !ended))
    read_error(&r, func, "saccel: a program has its three sections and ends with %s", "saccel.end");
  if (!r.failed && heads_at != SIZE_MAX) {
    /* the loop runs up to, not including, end */
    AccInsn h = acc_decode(out->code[heads_at]);
    h.c = (uint32_t)(out->n_code - 2 - heads_at);
    out->code[heads_at] = acc_encode(h);
  }
  if (r.failed)
    cg_accel_free(out);
  return !r.failed;
}

unsigned char *cg_accel_write(const CgAccel *p, size_t *len) {
  AccStreamParts parts = {p->name,   p->config_hash, p->header,    p->mask,      p->globals,
                          p->n_globals, p->blocks,   p->n_blocks,  p->offsets,   p->n_offsets,
                          p->code,   p->n_code,      p->dynamic ? p->dyn : NULL};
  return acc_stream_write(&parts, len);
}
