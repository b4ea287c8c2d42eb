/* stream.c: the .sacc container (writing and validating), the program a
 * validated stream becomes, its listing, and hardware configurations.
 *
 * The loader trusts nothing: every offset, count and operand is checked
 * against the bytes actually given before anything is read through it, so a
 * malformed stream is an SA_ERR_BAD_STREAM with a reason, never a crash
 * (test/fuzz/fuzz_accel.c keeps it so). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../reference/ref.h"
#include "accel.h"

static const char *const op_names[] = {
#define X(e, m, a, b, c, cost) m,
    ACC_OPCODES(X)
#undef X
};

static const size_t sec_elem[] = {
#define X(e, s, z) z,
    ACC_SECTIONS(X)
#undef X
};

static const char *const sec_names[] = {
#define X(e, s, z) s,
    ACC_SECTIONS(X)
#undef X
};

const char *acc_op_name(AccOpcode op) { return (unsigned)op < OP_COUNT ? op_names[op] : "?"; }

SaStatus acc_fail(char *err, size_t cap, SaStatus st, const char *fmt, ...) {
  if (err && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
  }
  return st;
}

/* FNV-1a, 64 bits: the stream's checksum and the configuration hash. */
static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * UINT64_C(0x100000001b3);
  return h;
}
#define FNV_START UINT64_C(0xcbf29ce484222325)

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- writing ---- */

enum { PREAMBLE = 16, ENTRY = 16 };

unsigned char *acc_stream_write(const AccStreamParts *s, size_t *out_len) {
  const void *data[SEC_COUNT] = {s->header, s->mask, s->globals, s->blocks, s->offsets, s->code, s->name,
                                 s->dynamic};
  size_t count[SEC_COUNT] = {H_COUNT,   M_COUNT, (size_t)s->n_globals, 2 * (size_t)s->n_blocks, s->n_offsets,
                             s->n_code, strlen(s->name), s->dynamic ? D_COUNT : 0};
  size_t len = PREAMBLE + SEC_COUNT * ENTRY, off[SEC_COUNT];
  for (int k = 0; k < SEC_COUNT; k++) {
    off[k] = len;
    len += (count[k] * sec_elem[k] + 7) / 8 * 8;
  }
  len += 8; /* checksum */
  unsigned char *b = calloc(1, len);
  if (!b)
    return NULL;
  memcpy(b, ACC_MAGIC, 4);
  b[4] = ACC_VERSION & 0xff, b[5] = ACC_VERSION >> 8;
  b[6] = SEC_COUNT, b[7] = 0;
  put64(b + 8, s->config_hash);
  for (int k = 0; k < SEC_COUNT; k++) {
    unsigned char *e = b + PREAMBLE + k * ENTRY;
    put32(e, (uint32_t)k);
    put32(e + 4, (uint32_t)count[k]);
    put64(e + 8, off[k]);
    if (sec_elem[k] == 8) {
      for (size_t i = 0; i < count[k]; i++)
        put64(b + off[k] + 8 * i, k == SEC_BLOCKS ? (uint64_t)(i % 2 ? s->blocks[i / 2].k : s->blocks[i / 2].q)
                                                  : ((const uint64_t *)data[k])[i]);
    } else if (count[k]) {
      memcpy(b + off[k], data[k], count[k]);
    }
  }
  put64(b + len - 8, fnv1a(b, len - 8, FNV_START));
  *out_len = len;
  return b;
}

/* ---- loading ---- */

static bool dtype_ok(int64_t t) { return t == DT_FP32 || t == DT_FP16 || t == DT_BF16; }
static bool storage_ok(int64_t t) { return dtype_ok(t) || t == DT_FP8E4M3 || t == DT_FP8E5M2; }

/* The header and mask fields, range by range. */
static SaStatus check_fields(const int64_t *h, const int64_t *m, char *err, size_t cap) {
  static const struct {
    int field;
    int64_t lo, hi;
    const char *name;
  } hr[] = {
      {H_HEADS, 1, 4096, "heads"},       {H_KV_HEADS, 1, 4096, "kv_heads"}, {H_SEQ, 1, 1 << 24, "seq"},
      {H_HEAD_DIM, 1, 256, "head_dim"},  {H_LAYOUT, 0, 1, "layout"},       {H_ROWS, 1, 4096, "rows"},
      {H_COLS, 1, 4096, "columns"},      {H_GLOBAL_PES, 0, 64, "global PEs"},
  };
  for (size_t i = 0; i < sizeof hr / sizeof *hr; i++)
    if (h[hr[i].field] < hr[i].lo || h[hr[i].field] > hr[i].hi)
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "header: %s %lld out of range [%lld, %lld]", hr[i].name,
                  (long long)h[hr[i].field], (long long)hr[i].lo, (long long)hr[i].hi);
  if (h[H_BATCH] != SA_DYNAMIC && (h[H_BATCH] < 1 || h[H_BATCH] > INT32_MAX))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "header: batch %lld out of range", (long long)h[H_BATCH]);
  if (h[H_HEADS] % h[H_KV_HEADS] != 0)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "header: kv_heads does not divide heads");
  if (!storage_ok(h[H_STORAGE]) || !dtype_ok(h[H_OUTPUT]))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM,
                    "header: storage must be fp32, fp16, bf16 or fp8 (e4m3, e5m2), output fp32, fp16 or bf16");
  if (h[H_HEADS] * h[H_SEQ] * h[H_HEAD_DIM] > (INT64_C(1) << 36))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "header: tensors larger than 2^36 elements");
  double scale;
  memcpy(&scale, &h[H_SCALE_BITS], sizeof scale);
  if (!isfinite(scale))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "header: scale is not finite");
  /* sizes within the language's limits, so that no product overflows */
  for (int f = 0; f < M_COUNT; f++)
    if (f != M_BB_SEED && (m[f] < 0 || m[f] > (INT64_C(1) << 24)))
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "mask: field %d out of range [0, 2^24]", f);
  static const int flags[] = {M_CAUSAL, M_HAS_WINDOW, M_HAS_WINDOW2D, M_HAS_BIGBIRD};
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
    if (m[flags[i]] > 1)
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "mask: a flag is neither 0 nor 1");
  if (m[M_HAS_WINDOW] && m[M_DILATION] < 1)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "mask: dilation below 1");
  if (m[M_HAS_WINDOW2D] && (m[M_IMAGE_H] < 1 || m[M_IMAGE_W] < 1 || m[M_WIN_H] < 1 || m[M_WIN_W] < 1))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "mask: empty 2-D window or image");
  if (m[M_HAS_BIGBIRD] && m[M_BLOCK] < 1)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "mask: bigbird without a block size");
  return SA_OK;
}

static double f64(int64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* The DYNAMIC section into the spec, checked with the semantics' own
 * ranges (the reference's). */
static SaStatus dynamic_fields(SaAccelProgram *p, char *err, size_t cap) {
  const int64_t *d = p->dyn;
  SaSpec *s = &p->spec;
  for (int f = 0; f < D_COUNT; f++) {
    bool is_f64 = f == D_PREDICT_KEEP_VALUE || f == D_TOKEN_KEEP || f == D_HEAD_KEEP || f == D_VALUE_KEEP ||
                  f == D_THRESHOLD || (f >= D_ROUNDS && (f - D_ROUNDS) % 4 == 3);
    if (is_f64 ? !isfinite(f64(d[f])) : f != D_PREDICT_SEED && (d[f] < 0 || d[f] > (1 << 24)))
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "dynamic: field %d out of range", f);
  }
  if (d[D_FILTER_ROUNDS] > SA_MAX_FILTER_ROUNDS || d[D_HAS_PREDICT] > 1 || d[D_HAS_PROGRESSIVE] > 1 ||
      d[D_PREDICT_KEEP_KIND] > KEEP_MEAN)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "dynamic: flag or count out of range");
  s->has_predict = d[D_HAS_PREDICT];
  s->predict_dim = d[D_PREDICT_DIM];
  s->predict_bits = (int)d[D_PREDICT_BITS];
  s->predict_keep = (SaKeep){(SaKeepKind)d[D_PREDICT_KEEP_KIND], f64(d[D_PREDICT_KEEP_VALUE])};
  s->predict_seed = (uint64_t)d[D_PREDICT_SEED];
  s->nm_n = (int)d[D_NM_N], s->nm_m = (int)d[D_NM_M];
  s->token_keep = f64(d[D_TOKEN_KEEP]), s->head_keep = f64(d[D_HEAD_KEEP]), s->value_keep = f64(d[D_VALUE_KEEP]);
  s->has_progressive = d[D_HAS_PROGRESSIVE];
  s->msb_bits = (int)d[D_MSB_BITS], s->lsb_bits = (int)d[D_LSB_BITS];
  s->requant_threshold = f64(d[D_THRESHOLD]);
  s->n_filter_rounds = (int)d[D_FILTER_ROUNDS];
  for (int r = 0; r < s->n_filter_rounds; r++) {
    const int64_t *f = d + D_ROUNDS + 4 * r;
    if (f[2] > KEEP_MEAN)
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "dynamic: round %d keep kind out of range", r);
    s->filter[r] = (SaFilterRound){(int)f[0], (int)f[1], {(SaKeepKind)f[2], f64(f[3])}};
  }
  if (!ref_dynamic_valid(s))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "dynamic: stage parameters outside the ranges of the semantics");
  if (s->has_predict && s->predict_dim > s->head_dim)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "dynamic: predict dim larger than head_dim");
  return SA_OK;
}

/* Each instruction's operands, and the order of the code:
 *   [tprune] [hprune] heads H, n; <n words>; end
 * inside the loop, tiles `loadq ... store` of either passes
 * (diag|block|gcol; qk; softmax; av; sync) or one dynamic row sequence
 * (cand; (lowqk s; select s)*; [fullqk]; [nm]; [msbqk]; rsoftmax;
 * [requant]; [vprune]; rav), and `grow` between tiles. */
typedef enum { T_NONE, T_PASSES, T_DYNAMIC } TileKind;

/* The dynamic row sequence: each opcode's position (its rank) and the
 * ranks it may follow, as a bit mask (1 << rank). */
static const struct {
  AccOpcode op;
  int rank;
  unsigned after;
} dyn_order[] = {
    {OP_CAND, 1, 1u << 0},
    {OP_LOWQK, 2, 1u << 1 | 1u << 3},
    {OP_SELECT, 3, 1u << 2},
    {OP_FULLQK, 4, 1u << 1 | 1u << 3},
    {OP_NM, 5, 1u << 4},
    {OP_MSBQK, 6, 1u << 1 | 1u << 3 | 1u << 4 | 1u << 5},
    {OP_RSOFTMAX, 7, 1u << 4 | 1u << 5 | 1u << 6},
    {OP_REQUANT, 8, 1u << 7},
    {OP_VPRUNE, 9, 1u << 7 | 1u << 8},
    {OP_RAV, 10, 1u << 7 | 1u << 8 | 1u << 9},
};
enum { DYN_DONE = 10 };

static int dyn_index(AccOpcode op) {
  for (size_t i = 0; i < sizeof dyn_order / sizeof *dyn_order; i++)
    if (dyn_order[i].op == op)
      return (int)i;
  return -1;
}

static SaStatus check_code(const SaAccelProgram *p, char *err, size_t cap) {
  enum { NONE, KEYS, SCORES, PROBS } pass = NONE;
  const SaSpec *s = &p->spec;
  TileKind tile = T_NONE;
  bool heads_seen = false;
  int rank = 0, low_source = -1;
  int64_t tile_row0 = 0, tile_rows = 0, seq = p->header[H_SEQ];
  for (size_t pc = 0; pc < p->n_code; pc++) {
    AccInsn in = acc_decode(p->code[pc]);
    if ((unsigned)in.op >= OP_COUNT)
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu: unknown opcode %u", pc, (unsigned)in.op);
    const char *name = op_names[in.op];
    if (in.a != 0)
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): field a must be 0", pc, name);
    bool no_bc = false, in_loop = heads_seen && pc + 1 < p->n_code;
    if (!in_loop && in.op != OP_HEADS && in.op != OP_END && in.op != OP_TPRUNE && in.op != OP_HPRUNE)
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): outside the head loop", pc, name);
    int di = dyn_index(in.op);
    if (di >= 0) { /* the dynamic row sequence */
      int r = dyn_order[di].rank;
      bool ok = tile_rows > 0 && pass == NONE && tile != T_PASSES && (dyn_order[di].after >> rank & 1u);
      if (in.op == OP_RSOFTMAX && s->has_progressive && rank != 6)
        ok = false; /* progressive scores come from msbqk */
      if (!ok)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): out of order in its tile's row sequence", pc, name);
      if (!p->dynamic) /* the row engine exists for streams with dynamic stages */
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): the stream has no dynamic stages", pc, name);
      if (in.op == OP_LOWQK || in.op == OP_SELECT) {
        int nsrc = s->n_filter_rounds + 1;
        bool src_ok = (int)in.b < nsrc && (in.b > 0 || s->has_predict) && in.c == 0;
        if (!src_ok || (in.op == OP_SELECT && (int)in.b != low_source) ||
            (in.op == OP_LOWQK && (int)in.b <= low_source))
          return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): source %u is not the next stage", pc, name, in.b);
        low_source = in.b;
      } else if (in.op == OP_NM) {
        if (s->nm_m == 0 || in.b != s->nm_n || in.c != (uint32_t)s->nm_m)
          return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (nm): %u:%u is not the stream's N:M", pc, in.b, in.c);
      } else {
        no_bc = true;
      }
      if ((in.op == OP_MSBQK || in.op == OP_REQUANT) && !s->has_progressive)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): no progressive quantization", pc, name);
      if (in.op == OP_VPRUNE && !(s->value_keep < 1.0))
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (vprune): no value pruning", pc);
      tile = T_DYNAMIC;
      rank = r;
      goto operands;
    }
    switch (in.op) {
    case OP_NOP:
    case OP_SYNC: no_bc = true; break;
    case OP_TPRUNE:
    case OP_HPRUNE:
      no_bc = true;
      if (heads_seen || pc > 1 || (in.op == OP_TPRUNE && pc != 0) || !p->dynamic ||
          !((in.op == OP_TPRUNE ? s->token_keep : s->head_keep) < 1.0))
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): only before the head loop, tprune first, and "
                    "only when the stream prunes", pc, name);
      break;
    case OP_HEADS:
      /* the code is `[tprune] [hprune] heads; body; end`: every other word runs in a head */
      if (heads_seen || in.b != p->header[H_HEADS] || in.c < 1 || pc + in.c + 2 != p->n_code)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM,
                    "word %zu (heads): the code must be one loop over every head, then 'end'", pc);
      heads_seen = true;
      break;
    case OP_LOADQ:
    case OP_STORE:
      if (in.b < 1 || in.b > p->header[H_ROWS] || in.c >= seq || in.c + in.b > seq)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): rows %u at %u outside the tile or sequence", pc, name,
                    in.b, in.c);
      if (in.op == OP_STORE && (tile_rows == 0 || tile_row0 != in.c || tile_rows != in.b || pass != NONE ||
                                (tile == T_DYNAMIC && rank != DYN_DONE)))
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (store): not the loaded tile, or its work unfinished", pc);
      if (in.op == OP_LOADQ && (tile_rows != 0 || pass != NONE))
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (loadq): the previous tile is not stored", pc);
      tile_row0 = in.c, tile_rows = in.op == OP_LOADQ ? in.b : 0;
      tile = T_NONE, rank = 0, low_source = -1;
      break;
    case OP_DIAG:
    case OP_BLOCK:
    case OP_GCOL: {
      size_t table = in.op == OP_DIAG ? p->n_offsets : in.op == OP_GCOL ? (size_t)p->spec.n_global : (size_t)seq;
      bool cols_ok = in.b >= 1 && (in.op == OP_GCOL || in.b <= p->header[H_COLS]);
      if (!cols_ok || (uint64_t)in.c + in.b > table)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): %u columns from %u exceed its table", pc, name, in.b,
                    in.c);
      if (tile_rows == 0 || pass != NONE || tile == T_DYNAMIC)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): a pass needs a loaded tile and the last pass done",
                    pc, name);
      pass = KEYS;
      tile = T_PASSES;
      break;
    }
    case OP_GROW:
      if (in.b != 0 || in.c >= seq || tile_rows != 0)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (grow): token %u outside the sequence, or inside a tile", pc,
                    in.c);
      break;
    case OP_QK:
    case OP_SOFTMAX:
    case OP_AV: {
      no_bc = true;
      int need = in.op == OP_QK ? KEYS : in.op == OP_SOFTMAX ? SCORES : PROBS;
      if ((int)pass != need)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): out of order in its pass", pc, name);
      pass = in.op == OP_AV ? NONE : (int)pass + 1;
      break;
    }
    case OP_END:
      no_bc = true;
      if (pc + 1 != p->n_code || tile_rows != 0 || pass != NONE)
        return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (end): not the last word, or a tile is open", pc);
      break;
    default: break;
    }
  operands:
    if (no_bc && (in.b != 0 || in.c != 0))
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "word %zu (%s): takes no operands", pc, name);
  }
  if (p->n_code == 0 || acc_decode(p->code[p->n_code - 1]).op != OP_END)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "the code does not end with 'end'");
  if (!heads_seen)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "the code does not start with a head loop");
  return SA_OK;
}

SaStatus sa_accel_load(const void *bytes, size_t len, SaAccelProgram **out, char *err, size_t cap) {
  if (!out)
    return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "no output pointer");
  *out = NULL;
  if (!bytes && len)
    return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "no stream");
  const unsigned char *b = bytes;
  if (len < PREAMBLE + 8 || memcmp(b, ACC_MAGIC, 4) != 0)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "not an accelerator stream (bad magic or too short)");
  unsigned version = b[4] | (unsigned)b[5] << 8, nsec = b[6] | (unsigned)b[7] << 8;
  if (version != ACC_VERSION)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "stream version %u; this runtime reads version %d", version, ACC_VERSION);
  if (nsec > 64 || PREAMBLE + (size_t)nsec * ENTRY > len - 8)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "section table (%u entries) beyond the stream", nsec);
  if (get64(b + len - 8) != fnv1a(b, len - 8, FNV_START))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "checksum mismatch: the stream is damaged");
  const unsigned char *sec[SEC_COUNT] = {0};
  size_t cnt[SEC_COUNT] = {0};
  size_t body = PREAMBLE + (size_t)nsec * ENTRY;
  for (unsigned i = 0; i < nsec; i++) {
    const unsigned char *e = b + PREAMBLE + i * ENTRY;
    uint32_t kind = get32(e), count = get32(e + 4);
    uint64_t off = get64(e + 8);
    if (kind >= SEC_COUNT || sec[kind])
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "section %u: unknown or repeated kind %u", i, kind);
    if (off < body || off % 8 != 0 || off > len - 8 || (uint64_t)count * sec_elem[kind] > len - 8 - off)
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "section '%s': %u elements at %llu lie outside the stream",
                  sec_names[kind], count, (unsigned long long)off);
    sec[kind] = b + off;
    cnt[kind] = count;
  }
  const int required[] = {SEC_HEADER, SEC_MASK, SEC_CODE, SEC_NAME};
  for (size_t i = 0; i < sizeof required / sizeof *required; i++)
    if (!sec[required[i]])
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "no '%s' section", sec_names[required[i]]);
  if (cnt[SEC_HEADER] != H_COUNT || cnt[SEC_MASK] != M_COUNT || cnt[SEC_BLOCKS] % 2 != 0)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "header, mask or block sections of the wrong size");
  if (cnt[SEC_NAME] < 1 || cnt[SEC_NAME] > 63)
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "kernel name of %zu bytes", cnt[SEC_NAME]);
  for (size_t i = 0; i < cnt[SEC_NAME]; i++)
    if (!isalnum(sec[SEC_NAME][i]) && sec[SEC_NAME][i] != '_')
      return acc_fail(err, cap, SA_ERR_BAD_STREAM, "kernel name holds a byte that is not a letter, digit or '_'");
  if (cnt[SEC_GLOBALS] > 65536 || cnt[SEC_BLOCKS] > 2 * 65536 || cnt[SEC_OFFSETS] > (1u << 20) ||
      cnt[SEC_CODE] > (1u << 26))
    return acc_fail(err, cap, SA_ERR_BAD_STREAM, "a table is larger than this runtime accepts");

  SaAccelProgram *p = calloc(1, sizeof *p);
  if (!p)
    return acc_fail(err, cap, SA_ERR_OUT_OF_MEMORY, "out of memory");
  for (int f = 0; f < H_COUNT; f++)
    p->header[f] = (int64_t)get64(sec[SEC_HEADER] + 8 * f);
  for (int f = 0; f < M_COUNT; f++)
    p->mask[f] = (int64_t)get64(sec[SEC_MASK] + 8 * f);
  SaStatus st = check_fields(p->header, p->mask, err, cap);
  p->config_hash = get64(b + 8);
  p->n_offsets = cnt[SEC_OFFSETS];
  p->n_code = cnt[SEC_CODE];
  size_t ng = cnt[SEC_GLOBALS], nb = cnt[SEC_BLOCKS] / 2;
  p->globals = malloc((ng ? ng : 1) * sizeof *p->globals);
  p->blocks = malloc((nb ? nb : 1) * sizeof *p->blocks);
  p->offsets = malloc((p->n_offsets ? p->n_offsets : 1) * sizeof *p->offsets);
  p->code = malloc((p->n_code ? p->n_code : 1) * sizeof *p->code);
  if (st == SA_OK && (!p->globals || !p->blocks || !p->offsets || !p->code))
    st = acc_fail(err, cap, SA_ERR_OUT_OF_MEMORY, "out of memory");
  if (st != SA_OK) {
    sa_accel_free(p);
    return st;
  }
  memcpy(p->name, sec[SEC_NAME], cnt[SEC_NAME]);
  int64_t seq = p->header[H_SEQ];
  for (size_t i = 0; i < ng; i++) {
    p->globals[i] = (int64_t)get64(sec[SEC_GLOBALS] + 8 * i);
    /* tokens beyond a sequence shorter than the spec's are allowed and unused */
    if (p->globals[i] < 0 || p->globals[i] > (INT64_C(1) << 40) || (i > 0 && p->globals[i] <= p->globals[i - 1]))
      st = acc_fail(err, cap, SA_ERR_BAD_STREAM, "global tokens are not sorted, unique and non-negative");
  }
  for (size_t i = 0; i < nb; i++) {
    p->blocks[i].q = (int64_t)get64(sec[SEC_BLOCKS] + 16 * i);
    p->blocks[i].k = (int64_t)get64(sec[SEC_BLOCKS] + 16 * i + 8);
    if (p->blocks[i].q < 0 || p->blocks[i].k < 0 || p->blocks[i].q > (INT64_C(1) << 40) ||
        p->blocks[i].k > (INT64_C(1) << 40))
      st = acc_fail(err, cap, SA_ERR_BAD_STREAM, "block pair %zu out of range", i);
  }
  if (nb > 0 && p->mask[M_BLOCK] < 1)
    st = acc_fail(err, cap, SA_ERR_BAD_STREAM, "block pairs without a block size");
  for (size_t i = 0; i < p->n_offsets; i++) {
    p->offsets[i] = (int64_t)get64(sec[SEC_OFFSETS] + 8 * i);
    if (p->offsets[i] <= -seq || p->offsets[i] >= seq)
      st = acc_fail(err, cap, SA_ERR_BAD_STREAM, "key offset %lld outside the sequence", (long long)p->offsets[i]);
  }
  for (size_t i = 0; i < p->n_code; i++)
    p->code[i] = get64(sec[SEC_CODE] + 8 * i);
  if (cnt[SEC_DYNAMIC] != 0 && cnt[SEC_DYNAMIC] != D_COUNT)
    st = acc_fail(err, cap, SA_ERR_BAD_STREAM, "dynamic section of %zu fields, not %d", cnt[SEC_DYNAMIC], D_COUNT);
  p->dynamic = cnt[SEC_DYNAMIC] == D_COUNT;
  for (int f = 0; p->dynamic && f < D_COUNT; f++)
    p->dyn[f] = (int64_t)get64(sec[SEC_DYNAMIC] + 8 * f);

  /* the layer as a spec, for the mask unit and the reference */
  SaSpec *s = &p->spec;
  s->name = p->name;
  s->file = "<stream>";
  s->batch = p->header[H_BATCH], s->heads = p->header[H_HEADS], s->kv_heads = p->header[H_KV_HEADS];
  s->seq = seq, s->head_dim = p->header[H_HEAD_DIM];
  s->layout = (SaLayout)p->header[H_LAYOUT];
  s->storage = (SaDtype)p->header[H_STORAGE], s->output = (SaDtype)p->header[H_OUTPUT];
  s->score = s->softmax = s->accumulate = DT_FP32;
  memcpy(&s->scale, &p->header[H_SCALE_BITS], sizeof s->scale);
  s->causal = p->mask[M_CAUSAL];
  s->has_window = p->mask[M_HAS_WINDOW], s->window = p->mask[M_WINDOW], s->dilation = p->mask[M_DILATION];
  s->has_window2d = p->mask[M_HAS_WINDOW2D], s->image_h = p->mask[M_IMAGE_H], s->image_w = p->mask[M_IMAGE_W];
  s->win_h = p->mask[M_WIN_H], s->win_w = p->mask[M_WIN_W], s->image_offset = p->mask[M_IMAGE_OFFSET];
  s->block = p->mask[M_BLOCK], s->has_bigbird = p->mask[M_HAS_BIGBIRD];
  s->bb_window = p->mask[M_BB_WINDOW], s->bb_random = p->mask[M_BB_RANDOM], s->bb_global = p->mask[M_BB_GLOBAL];
  s->bb_seed = (uint64_t)p->mask[M_BB_SEED];
  s->n_global = (int)ng, s->global = p->globals;
  s->n_block_pairs = (int)nb, s->block_pairs = p->blocks;
  s->token_keep = s->head_keep = s->value_keep = 1.0;
  if (!s->has_window)
    s->dilation = 1;
  if (st == SA_OK && p->dynamic)
    st = dynamic_fields(p, err, cap);
  if (st == SA_OK)
    st = check_code(p, err, cap);
  if (st != SA_OK) {
    sa_accel_free(p);
    return st;
  }
  *out = p;
  return SA_OK;
}

void sa_accel_free(SaAccelProgram *p) {
  if (!p)
    return;
  free(p->globals), free(p->blocks), free(p->offsets), free(p->code);
  free(p);
}

const SaSpec *sa_accel_spec(const SaAccelProgram *p) { return p ? &p->spec : NULL; }
uint64_t sa_accel_program_config_hash(const SaAccelProgram *p) { return p ? p->config_hash : 0; }
size_t sa_accel_program_words(const SaAccelProgram *p) { return p ? p->n_code : 0; }

/* ---- the listing ---- */

char *sa_accel_disassemble(const SaAccelProgram *p) {
  if (!p)
    return NULL;
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f)
    return NULL;
  const SaSpec *s = &p->spec;
  fprintf(f, "; sattn accelerator stream v%d: kernel %s, config %016llx\n", ACC_VERSION, p->name,
          (unsigned long long)p->config_hash);
  fprintf(f, "; heads=%lld kv_heads=%lld seq=%lld head_dim=%lld batch=%lld layout=%s %s->%s scale=%.9g\n",
          (long long)s->heads, (long long)s->kv_heads, (long long)s->seq, (long long)s->head_dim, (long long)s->batch,
          s->layout == LAYOUT_BHSD ? "bhsd" : "bshd", sa_dtype_name(s->storage), sa_dtype_name(s->output), s->scale);
  fprintf(f, "; array %lldx%lld, %lld global PEs; %zu words\n", (long long)p->header[H_ROWS],
          (long long)p->header[H_COLS], (long long)p->header[H_GLOBAL_PES], p->n_code);
  fprintf(f, ".mask causal=%lld window=%lld/%lld dilation=%lld window2d=%lld image=%lldx%lld size=%lldx%lld "
             "offset=%lld block=%lld bigbird=%lld/%lld/%lld/%lld seed=%lld\n",
          (long long)p->mask[M_CAUSAL], (long long)p->mask[M_HAS_WINDOW], (long long)p->mask[M_WINDOW],
          (long long)p->mask[M_DILATION], (long long)p->mask[M_HAS_WINDOW2D], (long long)p->mask[M_IMAGE_H],
          (long long)p->mask[M_IMAGE_W], (long long)p->mask[M_WIN_H], (long long)p->mask[M_WIN_W],
          (long long)p->mask[M_IMAGE_OFFSET], (long long)p->mask[M_BLOCK], (long long)p->mask[M_HAS_BIGBIRD],
          (long long)p->mask[M_BB_WINDOW], (long long)p->mask[M_BB_RANDOM], (long long)p->mask[M_BB_GLOBAL],
          (long long)p->mask[M_BB_SEED]);
  if (p->dynamic) {
    fprintf(f, ".dynamic predict=%d dim=%lld bits=%d keep=%d/%.9g seed=%llu nm=%d:%d tokens=%.9g heads=%.9g "
               "values=%.9g progressive=%d msb=%d lsb=%d threshold=%.9g rounds=%d",
            s->has_predict, (long long)s->predict_dim, s->predict_bits, (int)s->predict_keep.kind,
            s->predict_keep.value, (unsigned long long)s->predict_seed, s->nm_n, s->nm_m, s->token_keep, s->head_keep,
            s->value_keep, s->has_progressive, s->msb_bits, s->lsb_bits, s->requant_threshold, s->n_filter_rounds);
    for (int r = 0; r < s->n_filter_rounds; r++)
      fprintf(f, " [q%d k%d keep=%d/%.9g]", s->filter[r].q_bits, s->filter[r].k_bits, (int)s->filter[r].keep.kind,
              s->filter[r].keep.value);
    fputc('\n', f);
  }
  const struct {
    const char *name;
    size_t n;
    const int64_t *v;
  } tables[] = {{"globals", (size_t)s->n_global, s->global},
                {"blocks", 2 * (size_t)s->n_block_pairs, (const int64_t *)s->block_pairs},
                {"offsets", p->n_offsets, p->offsets}};
  for (size_t t = 0; t < sizeof tables / sizeof *tables; t++) {
    if (!tables[t].n)
      continue;
    fprintf(f, ".%s", tables[t].name);
    for (size_t i = 0; i < tables[t].n; i++)
      fprintf(f, "%s%lld", i % 16 ? " " : (i ? "\n  " : " "), (long long)tables[t].v[i]);
    fputc('\n', f);
  }
  int depth = 0;
  size_t loop_end = 0;
  for (size_t pc = 0; pc < p->n_code; pc++) {
    AccInsn in = acc_decode(p->code[pc]);
    char ops[64] = "";
    switch (in.op) {
    case OP_HEADS: snprintf(ops, sizeof ops, "%u, %u", in.b, in.c); break;
    case OP_LOADQ:
    case OP_STORE: snprintf(ops, sizeof ops, "rows %u @ %u", in.b, in.c); break;
    case OP_DIAG: snprintf(ops, sizeof ops, "%u @ offsets[%u]", in.b, in.c); break;
    case OP_BLOCK: snprintf(ops, sizeof ops, "%u @ key %u", in.b, in.c); break;
    case OP_GCOL: snprintf(ops, sizeof ops, "%u @ globals[%u]", in.b, in.c); break;
    case OP_GROW: snprintf(ops, sizeof ops, "token %u", in.c); break;
    case OP_LOWQK:
    case OP_SELECT: snprintf(ops, sizeof ops, "%u", in.b); break;
    case OP_NM: snprintf(ops, sizeof ops, "%u:%u", in.b, in.c); break;
    default: break;
    }
    if (*ops)
      fprintf(f, "%6zu: %*s%-8s %s", pc, 2 * depth, "", op_names[in.op], ops);
    else
      fprintf(f, "%6zu: %*s%s", pc, 2 * depth, "", op_names[in.op]);
    fputc('\n', f);
    if (in.op == OP_HEADS)
      depth = 1, loop_end = pc + in.c;
    else if (depth && pc == loop_end)
      depth = 0;
  }
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

/* ---- hardware configurations ---- */

void sa_accel_config_default(SaAccelConfig *c) {
  *c = (SaAccelConfig){
      .pe_rows = 32,
      .pe_cols = 32,
      .global_pes = 1,
      .clock_ghz = 1.0,
      .sram_q_bytes = 32 * 1024,
      .sram_kv_bytes = 512 * 1024,
      .sram_out_bytes = 32 * 1024,
      .dram_bytes_per_cycle = 0,
      .dram_channels = 16,
      .dram_latency_cycles = 100,
      .e_mac_fp32_pj = 3.7,
      .e_mac_fp16_pj = 1.5,
      .e_mac_int8_pj = 0.23,
      .e_exp_pj = 2.0,
      .e_sram_byte_pj = 1.25,
      .e_dram_byte_pj = 80.0,
  };
}

#define CONFIG_FIELDS(X)                                                                                       \
  X(pe_rows, 1) X(pe_cols, 1) X(global_pes, 1) X(clock_ghz, 0) X(sram_q_bytes, 1) X(sram_kv_bytes, 1)        \
      X(sram_out_bytes, 1) X(dram_bytes_per_cycle, 0) X(dram_channels, 1) X(dram_latency_cycles, 1)          \
          X(e_mac_fp32_pj, 0) X(e_mac_fp16_pj, 0) X(e_mac_int8_pj, 0) X(e_exp_pj, 0) X(e_sram_byte_pj, 0)    \
              X(e_dram_byte_pj, 0)

SaStatus sa_accel_config_parse(const char *text, size_t len, SaAccelConfig *out, char *err, size_t cap) {
  if (!out || (!text && len))
    return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "no configuration");
  SaAccelConfig c;
  sa_accel_config_default(&c);
  size_t i = 0;
  for (int line = 1; i < len; line++) {
    char buf[256];
    size_t n = 0;
    while (i < len && text[i] != '\n') {
      if (n + 1 < sizeof buf)
        buf[n++] = text[i];
      i++;
    }
    i++;
    buf[n] = 0;
    char *hash = strchr(buf, '#');
    if (hash)
      *hash = 0;
    char key[64], rest[128];
    double v;
    int used = 0;
    if (sscanf(buf, " %63[a-z0-9_] = %lf %n", key, &v, &used) != 2) {
      if (sscanf(buf, " %127s", rest) == 1)
        return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "line %d: expected 'key = number'", line);
      continue;
    }
    if (buf[used] != 0)
      return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "line %d: text after the value", line);
    bool found = false;
#define X(f, integral)                                                                                        \
  if (!strcmp(key, #f)) {                                                                                     \
    found = true;                                                                                             \
    if (!(v >= 0) || v > 1e15 || (integral && v != floor(v)))                                                 \
      return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "line %d: %s must be a %s", line, key,                  \
                  integral ? "non-negative integer" : "non-negative number");                                 \
    c.f = v;                                                                                                  \
  }
    CONFIG_FIELDS(X)
#undef X
    if (!found)
      return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT, "line %d: unknown key '%s'", line, key);
  }
  if (c.pe_rows < 1 || c.pe_cols < 1 || c.pe_rows > 4096 || c.pe_cols > 4096 || c.global_pes > 64 ||
      !(c.clock_ghz > 0) || c.dram_channels < 1)
    return acc_fail(err, cap, SA_ERR_INVALID_ARGUMENT,
                    "pe_rows and pe_cols in [1, 4096], global_pes <= 64, clock_ghz > 0, dram_channels >= 1");
  *out = c;
  return SA_OK;
}

int64_t acc_tile_rows(const SaAccelConfig *c, int64_t d, int64_t in_bytes) {
  int64_t rows = c->pe_rows;
  if (d < 1 || in_bytes < 1)
    return 0;
  if (c->sram_q_bytes / (d * in_bytes) < rows)
    rows = c->sram_q_bytes / (d * in_bytes);
  if (c->sram_out_bytes / (d * 4) < rows)
    rows = c->sram_out_bytes / (d * 4);
  return rows;
}

uint64_t sa_accel_config_hash(const SaAccelConfig *c) {
  int64_t shape[3] = {c->pe_rows, c->pe_cols, c->global_pes};
  return fnv1a(shape, sizeof shape, FNV_START);
}
