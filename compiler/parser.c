/* parser.c: tokens to FeSpec, by recursive descent. The grammar is in
 * docs/spec-language.md; each parse function carries its rule. Checks that
 * need only the value at hand happen here, where its location is known;
 * checks that relate parts of a spec are in sema.c. The parser stops at the
 * first syntax error: after one, the rest of the file rarely means much. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "compiler.h"

typedef struct {
  const TokenList *toks;
  size_t pos;
  Arena *arena;
  Diag *diag;
} Parser;

/* The parser unwinds on the first error by returning false everywhere. */
#define TRY(x)        \
  do {                \
    if (!(x))         \
      return false;   \
  } while (0)

static const Token *peek_tok(Parser *p) { return &p->toks->toks[p->pos]; }
static const Token *peek2_tok(Parser *p) {
  return p->pos + 1 < p->toks->n ? &p->toks->toks[p->pos + 1] : peek_tok(p);
}
static const Token *next_tok(Parser *p) {
  const Token *t = &p->toks->toks[p->pos];
  if (t->kind != TK_EOF)
    p->pos++;
  return t;
}

static bool tok_is(const Token *t, const char *word) {
  return t->kind == TK_IDENT && strlen(word) == t->len && memcmp(t->start, word, t->len) == 0;
}

static bool err(Parser *p, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool err(Parser *p, Loc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(p->diag, loc, fmt, ap);
  va_end(ap);
  return false;
}

static bool describe_and_fail(Parser *p, const char *what) {
  const Token *t = peek_tok(p);
  if (t->kind == TK_EOF)
    return err(p, t->loc, "expected %s, found end of file", what);
  return err(p, t->loc, "expected %s, found '%.*s'", what, (int)t->len, t->start);
}

static bool expect(Parser *p, TokenKind k) {
  if (peek_tok(p)->kind != k) {
    char what[32];
    snprintf(what, sizeof what, "'%s'", tok_kind_name(k));
    return describe_and_fail(p, what);
  }
  next_tok(p);
  return true;
}

static bool expect_word(Parser *p, const char *word) {
  if (!tok_is(peek_tok(p), word)) {
    char what[64];
    snprintf(what, sizeof what, "'%s'", word);
    return describe_and_fail(p, what);
  }
  next_tok(p);
  return true;
}

/* int := '-'? INT   (the sign is accepted so that sema can say why not) */
static bool parse_int(Parser *p, int64_t *out, Loc *out_loc) {
  const Token *t = peek_tok(p);
  *out_loc = t->loc;
  bool neg = false;
  if (t->kind == TK_MINUS) {
    neg = true;
    next_tok(p);
    t = peek_tok(p);
  }
  if (t->kind != TK_INT)
    return describe_and_fail(p, "an integer");
  next_tok(p);
  *out = neg ? -t->ival : t->ival;
  return true;
}

static bool parse_positive(Parser *p, const char *what, int64_t *out, Loc *out_loc) {
  TRY(parse_int(p, out, out_loc));
  if (*out <= 0)
    return err(p, *out_loc, "%s must be positive, got %lld", what, (long long)*out);
  return true;
}

/* number := '-'? (INT | FLOAT) */
static bool parse_number(Parser *p, double *out, Loc *out_loc) {
  const Token *t = peek_tok(p);
  *out_loc = t->loc;
  bool neg = false;
  if (t->kind == TK_MINUS) {
    neg = true;
    next_tok(p);
    t = peek_tok(p);
  }
  if (t->kind != TK_INT && t->kind != TK_FLOAT)
    return describe_and_fail(p, "a number");
  next_tok(p);
  *out = neg ? -t->fval : t->fval;
  return true;
}

/* An integer in [lo, hi], with a message naming what it is. */
static bool parse_int_in(Parser *p, const char *what, int64_t lo, int64_t hi, int64_t *out) {
  Loc loc;
  TRY(parse_int(p, out, &loc));
  if (*out < lo || *out > hi)
    return err(p, loc, "%s must be in [%lld, %lld], got %lld", what, (long long)lo, (long long)hi,
               (long long)*out);
  return true;
}

/* A keep ratio in (0, 1]. */
static bool parse_ratio(Parser *p, const char *what, double *out) {
  Loc loc;
  TRY(parse_number(p, out, &loc));
  if (!(*out > 0.0 && *out <= 1.0))
    return err(p, loc, "%s must be in (0, 1], got %g", what, *out);
  return true;
}

/* Marks a statement or term as seen; a second one is an error. */
static bool first_time(Parser *p, Loc *slot, Loc at, const char *what) {
  if (slot->line) {
    return err(p, at, "%s given twice (first at line %d)", what, slot->line);
  }
  *slot = at;
  return true;
}

/* ---- shape ---- */

typedef struct {
  const char *name;
  size_t field; /* offsetof(SaSpec, ...) */
  size_t loc;   /* offsetof(SpecLocs, ...) */
  bool may_be_dynamic;
} ShapeKey;

static const ShapeKey shape_keys[] = {
    {"batch", offsetof(SaSpec, batch), offsetof(SpecLocs, batch), true},
    {"heads", offsetof(SaSpec, heads), offsetof(SpecLocs, heads), false},
    {"kv_heads", offsetof(SaSpec, kv_heads), offsetof(SpecLocs, kv_heads), false},
    {"seq", offsetof(SaSpec, seq), offsetof(SpecLocs, seq), true},
    {"head_dim", offsetof(SaSpec, head_dim), offsetof(SpecLocs, head_dim), false},
};

/* Loops over `key = ...` pairs: a word followed by '='. */
static bool at_key(Parser *p) { return peek_tok(p)->kind == TK_IDENT && peek2_tok(p)->kind == TK_EQ; }

/* shape := 'shape' (KEY '=' (int | '?'))+ */
static bool parse_shape(Parser *p, FeSpec *fs) {
  if (!at_key(p))
    return describe_and_fail(p, "a shape key (batch, heads, kv_heads, seq, head_dim)");
  while (at_key(p)) {
    const Token *key = next_tok(p);
    const ShapeKey *k = NULL;
    for (size_t i = 0; i < sizeof shape_keys / sizeof *shape_keys; i++)
      if (tok_is(key, shape_keys[i].name))
        k = &shape_keys[i];
    if (!k)
      return err(p, key->loc, "unknown shape key '%.*s' (expected batch, heads, kv_heads, seq or head_dim)",
                 (int)key->len, key->start);
    next_tok(p); /* '=' */
    Loc *loc = (Loc *)((char *)&fs->at + k->loc);
    int64_t *field = (int64_t *)((char *)&fs->spec + k->field);
    TRY(first_time(p, loc, key->loc, k->name));
    if (peek_tok(p)->kind == TK_QUESTION) {
      if (!k->may_be_dynamic)
        return err(p, peek_tok(p)->loc, "%s must be a number: only batch and seq may be '?'", k->name);
      next_tok(p);
      *field = SA_DYNAMIC;
      continue;
    }
    Loc vloc;
    TRY(parse_positive(p, k->name, field, &vloc));
  }
  return true;
}

/* ---- precision ---- */

/* Which element types each stage can use, as a bit set over SaDtype. */
#define DT_BIT(t) (1u << (t))
#define DT_FLOATS16 (DT_BIT(DT_FP32) | DT_BIT(DT_FP16) | DT_BIT(DT_BF16))

typedef struct {
  const char *name;
  size_t field;
  unsigned allowed;
  const char *allowed_text;
} Stage;

static const Stage stages[] = {
    {"input", offsetof(SaSpec, storage),
     DT_FLOATS16 | DT_BIT(DT_FP8E4M3) | DT_BIT(DT_FP8E5M2) | DT_BIT(DT_INT8),
     "fp32, fp16, bf16, fp8e4m3, fp8e5m2 or int8"},
    {"score", offsetof(SaSpec, score), DT_FLOATS16, "fp32, fp16 or bf16"},
    {"softmax", offsetof(SaSpec, softmax), DT_FLOATS16, "fp32, fp16 or bf16"},
    {"accumulate", offsetof(SaSpec, accumulate), DT_BIT(DT_FP32) | DT_BIT(DT_FP16), "fp32 or fp16"},
    {"output", offsetof(SaSpec, output), DT_FLOATS16, "fp32, fp16 or bf16"},
};

/* precision := 'precision' (STAGE '=' DTYPE)+ */
static bool parse_precision(Parser *p, FeSpec *fs) {
  if (!at_key(p))
    return describe_and_fail(p, "a stage (input, score, softmax, accumulate, output)");
  unsigned seen = 0;
  while (at_key(p)) {
    const Token *key = next_tok(p);
    int si = -1;
    for (int i = 0; i < (int)(sizeof stages / sizeof *stages); i++)
      if (tok_is(key, stages[i].name))
        si = i;
    if (si < 0)
      return err(p, key->loc,
                 "unknown precision stage '%.*s' (expected input, score, softmax, accumulate or output)",
                 (int)key->len, key->start);
    if (seen & (1u << si))
      return err(p, key->loc, "precision of %s given twice", stages[si].name);
    seen |= 1u << si;
    next_tok(p); /* '=' */
    const Token *ty = peek_tok(p);
    if (ty->kind != TK_IDENT)
      return describe_and_fail(p, "an element type");
    int dt = -1;
    for (int t = 0; t < DT_COUNT; t++)
      if (tok_is(ty, sa_dtype_name((SaDtype)t)))
        dt = t;
    if (dt < 0)
      return err(p, ty->loc,
                 "unknown element type '%.*s' (expected fp32, fp16, bf16, fp8e4m3, fp8e5m2, int8, int4 or int2)",
                 (int)ty->len, ty->start);
    if (!(stages[si].allowed & DT_BIT(dt)))
      return err(p, ty->loc, "%s cannot be used for %s (use %s%s)", sa_dtype_name((SaDtype)dt),
                 stages[si].name, stages[si].allowed_text,
                 sa_dtype_bits((SaDtype)dt) < 8 ? "; low-bit scoring is set per filter round with bits=" : "");
    next_tok(p);
    *(SaDtype *)((char *)&fs->spec + stages[si].field) = (SaDtype)dt;
  }
  return true;
}

/* ---- pattern terms ---- */

/* keep := 'top' number '%' | 'top' int | 'mean' (('+' | '-') number)? */
static bool parse_keep(Parser *p, SaKeep *out) {
  const Token *t = peek_tok(p);
  if (tok_is(t, "top")) {
    next_tok(p);
    double v = 0; /* set by parse_number; GCC 13 cannot see it */
    Loc loc;
    TRY(parse_number(p, &v, &loc));
    if (peek_tok(p)->kind == TK_PERCENT) {
      next_tok(p);
      if (!(v > 0.0 && v <= 100.0))
        return err(p, loc, "keep must be in (0%%, 100%%], got %g%%", v);
      *out = (SaKeep){KEEP_TOP_RATIO, v / 100.0};
      return true;
    }
    if (v != floor(v) || v < 1)
      return err(p, loc, "keep=top needs a count of at least 1 or a percentage, got %g", v);
    *out = (SaKeep){KEEP_TOP_COUNT, v};
    return true;
  }
  if (tok_is(t, "mean")) {
    next_tok(p);
    double alpha = 0.0;
    TokenKind sign = peek_tok(p)->kind;
    if (sign == TK_PLUS || sign == TK_MINUS) {
      next_tok(p);
      Loc loc;
      TRY(parse_number(p, &alpha, &loc));
      if (alpha > 1.0)
        return err(p, loc, "the offset of keep=mean must be in [-1, 1], got %g", alpha);
      if (sign == TK_MINUS)
        alpha = -alpha;
    }
    *out = (SaKeep){KEEP_MEAN, alpha};
    return true;
  }
  return describe_and_fail(p, "a keep rule ('top N%', 'top N' or 'mean+A')");
}

/* window := 'window' int ('dilation' int)? */
static bool parse_window(Parser *p, SaSpec *s) {
  Loc loc;
  TRY(parse_positive(p, "window size", &s->window, &loc));
  s->has_window = true;
  s->dilation = 1;
  if (tok_is(peek_tok(p), "dilation")) {
    next_tok(p);
    TRY(parse_positive(p, "dilation", &s->dilation, &loc));
  }
  return true;
}

/* dims := int 'x' int */
static bool parse_dims(Parser *p, const char *what, int64_t *a, int64_t *b) {
  Loc loc;
  TRY(parse_positive(p, what, a, &loc));
  TRY(expect(p, TK_TIMES));
  TRY(parse_positive(p, what, b, &loc));
  return true;
}

/* window2d := 'window2d' 'image' '=' dims 'size' '=' dims ('offset' '=' int)? */
static bool parse_window2d(Parser *p, SaSpec *s) {
  TRY(expect_word(p, "image"));
  TRY(expect(p, TK_EQ));
  TRY(parse_dims(p, "image size", &s->image_h, &s->image_w));
  TRY(expect_word(p, "size"));
  TRY(expect(p, TK_EQ));
  Loc size_loc = peek_tok(p)->loc;
  TRY(parse_dims(p, "window size", &s->win_h, &s->win_w));
  if (s->win_h % 2 == 0 || s->win_w % 2 == 0)
    return err(p, size_loc, "2-D window sizes must be odd (centred on the query), got %lldx%lld",
               (long long)s->win_h, (long long)s->win_w);
  if (s->win_h > 2 * s->image_h - 1 || s->win_w > 2 * s->image_w - 1)
    return err(p, size_loc, "2-D window %lldx%lld is larger than allowed for a %lldx%lld image (at most %lldx%lld)",
               (long long)s->win_h, (long long)s->win_w, (long long)s->image_h, (long long)s->image_w,
               (long long)(2 * s->image_h - 1), (long long)(2 * s->image_w - 1));
  if (tok_is(peek_tok(p), "offset")) {
    next_tok(p);
    TRY(expect(p, TK_EQ));
    TRY(parse_int_in(p, "image offset", 0, INT64_C(1) << 32, &s->image_offset));
  }
  s->has_window2d = true;
  return true;
}

enum { MAX_LIST = 65536 };

/* global := 'global' '[' int (',' int)* ']'   (kept sorted) */
static bool parse_global(Parser *p, SaSpec *s) {
  TRY(expect(p, TK_LBRACKET));
  size_t cap = 16, n = 0;
  int64_t *v = arena_alloc(p->arena, cap * sizeof *v);
  if (!v)
    return err(p, peek_tok(p)->loc, "out of memory");
  for (;;) {
    int64_t x;
    Loc loc;
    TRY(parse_int(p, &x, &loc));
    if (x < 0)
      return err(p, loc, "global token index must not be negative, got %lld", (long long)x);
    if (n == MAX_LIST)
      return err(p, loc, "too many global tokens (the limit is %d)", MAX_LIST);
    /* insertion keeps the list sorted; a repeat is an error */
    size_t i = n;
    while (i > 0 && v[i - 1] > x)
      i--;
    if (i > 0 && v[i - 1] == x)
      return err(p, loc, "global token %lld listed twice", (long long)x);
    if (n == cap) {
      int64_t *g = arena_alloc(p->arena, 2 * cap * sizeof *v);
      if (!g)
        return err(p, loc, "out of memory");
      memcpy(g, v, n * sizeof *v);
      v = g;
      cap *= 2;
    }
    memmove(v + i + 1, v + i, (n - i) * sizeof *v);
    v[i] = x;
    n++;
    if (peek_tok(p)->kind != TK_COMMA)
      break;
    next_tok(p);
  }
  TRY(expect(p, TK_RBRACKET));
  s->global = v;
  s->n_global = (int)n;
  return true;
}

/* blocks := 'blocks' int '[' int ':' int (',' int ':' int)* ']' */
static bool parse_blocks(Parser *p, SaSpec *s) {
  Loc loc;
  TRY(parse_positive(p, "block size", &s->block, &loc));
  TRY(expect(p, TK_LBRACKET));
  size_t cap = 16, n = 0;
  SaBlockPair *v = arena_alloc(p->arena, cap * sizeof *v);
  if (!v)
    return err(p, loc, "out of memory");
  for (;;) {
    SaBlockPair bp;
    TRY(parse_int(p, &bp.q, &loc));
    if (bp.q < 0)
      return err(p, loc, "block index must not be negative, got %lld", (long long)bp.q);
    TRY(expect(p, TK_COLON));
    TRY(parse_int(p, &bp.k, &loc));
    if (bp.k < 0)
      return err(p, loc, "block index must not be negative, got %lld", (long long)bp.k);
    if (n == MAX_LIST)
      return err(p, loc, "too many block pairs (the limit is %d)", MAX_LIST);
    if (n == cap) {
      SaBlockPair *g = arena_alloc(p->arena, 2 * cap * sizeof *v);
      if (!g)
        return err(p, loc, "out of memory");
      memcpy(g, v, n * sizeof *v);
      v = g;
      cap *= 2;
    }
    v[n++] = bp;
    if (peek_tok(p)->kind != TK_COMMA)
      break;
    next_tok(p);
  }
  TRY(expect(p, TK_RBRACKET));
  s->block_pairs = v;
  s->n_block_pairs = (int)n;
  return true;
}

/* Reads `key = int` pairs for terms with named integer parameters. */
typedef struct {
  const char *name;
  int64_t lo, hi;
  int64_t *dst;
  bool seen;
  double *fdst; /* a number instead of an integer; the caller checks its range */
  Loc loc;
} IntKey;

static bool parse_int_keys(Parser *p, IntKey *keys, int nkeys, const char *term, SaKeep *keep) {
  while (at_key(p)) {
    const Token *key = peek_tok(p);
    if (keep && tok_is(key, "keep")) {
      next_tok(p);
      next_tok(p);
      if (keep->kind != KEEP_ALL)
        return err(p, key->loc, "keep given twice");
      TRY(parse_keep(p, keep));
      continue;
    }
    IntKey *k = NULL;
    for (int i = 0; i < nkeys; i++)
      if (tok_is(key, keys[i].name))
        k = &keys[i];
    if (!k)
      break; /* not ours: the caller decides whether it is an error */
    next_tok(p);
    next_tok(p);
    if (k->seen)
      return err(p, key->loc, "%s given twice", k->name);
    k->seen = true;
    if (k->fdst) {
      TRY(parse_number(p, k->fdst, &k->loc));
      continue;
    }
    char what[64];
    snprintf(what, sizeof what, "%s %s", term, k->name);
    TRY(parse_int_in(p, what, k->lo, k->hi, k->dst));
  }
  if (at_key(p)) {
    const Token *key = peek_tok(p);
    return err(p, key->loc, "unknown parameter '%.*s' of %s", (int)key->len, key->start, term);
  }
  return true;
}

/* bigbird := 'bigbird' (('block'|'window'|'random'|'global'|'seed') '=' int)+ */
static bool parse_bigbird(Parser *p, SaSpec *s, Loc at) {
  int64_t seed = 0;
  s->bb_window = 3;
  IntKey keys[] = {
      {"block", 1, INT64_C(1) << 20, &s->block, false},
      {"window", 1, INT64_C(1) << 20, &s->bb_window, false},
      {"random", 0, 1024, &s->bb_random, false},
      {"global", 0, 1024, &s->bb_global, false},
      {"seed", 0, INT64_C(1) << 40, &seed, false},
  };
  TRY(parse_int_keys(p, keys, 5, "bigbird", NULL));
  if (!keys[0].seen)
    return err(p, at, "bigbird needs block=SIZE");
  if (s->bb_window % 2 == 0)
    return err(p, at, "bigbird window counts blocks centred on the diagonal and must be odd, got %lld",
               (long long)s->bb_window);
  s->bb_seed = (uint64_t)seed;
  s->has_bigbird = true;
  return true;
}

/* nm := 'nm' int ':' int */
static bool parse_nm(Parser *p, SaSpec *s) {
  int64_t n, m;
  Loc nloc, mloc;
  TRY(parse_int(p, &n, &nloc));
  TRY(expect(p, TK_COLON));
  TRY(parse_int(p, &m, &mloc));
  if (n < 1)
    return err(p, nloc, "N of N:M must be at least 1, got %lld", (long long)n);
  if (m < 2 || m > 64)
    return err(p, mloc, "M of N:M must be in [2, 64], got %lld", (long long)m);
  if (n > m)
    return err(p, nloc, "N:M needs N < M, got %lld:%lld", (long long)n, (long long)m);
  /* N == M is accepted and canonicalizes away: it keeps everything. */
  s->nm_n = (int)n;
  s->nm_m = (int)m;
  return true;
}

/* predict := 'predict' (('dim'|'bits'|'seed') '=' int | 'keep' '=' keep)+ */
static bool parse_predict(Parser *p, SaSpec *s, Loc at) {
  int64_t bits = 4, seed = 0;
  IntKey keys[] = {
      {"dim", 1, 4096, &s->predict_dim, false},
      {"bits", 2, 8, &bits, false},
      {"seed", 0, INT64_C(1) << 40, &seed, false},
  };
  TRY(parse_int_keys(p, keys, 3, "predict", &s->predict_keep));
  if (!keys[0].seen)
    return err(p, at, "predict needs dim=K (the projection dimension)");
  if (s->predict_keep.kind == KEEP_ALL)
    return err(p, at, "predict needs keep=... (which approximate scores survive)");
  s->predict_bits = (int)bits;
  s->predict_seed = (uint64_t)seed;
  s->has_predict = true;
  return true;
}

/* filter := 'filter' '{' round+ '}'
 * round  := 'round' (('bits'|'qbits'|'kbits') '=' int | 'keep' '=' keep)+ */
static bool parse_filter(Parser *p, SaSpec *s) {
  TRY(expect(p, TK_LBRACE));
  if (!tok_is(peek_tok(p), "round"))
    return describe_and_fail(p, "'round'");
  while (tok_is(peek_tok(p), "round")) {
    Loc at = next_tok(p)->loc;
    if (s->n_filter_rounds == SA_MAX_FILTER_ROUNDS)
      return err(p, at, "too many filter rounds (the limit is %d)", SA_MAX_FILTER_ROUNDS);
    SaFilterRound *r = &s->filter[s->n_filter_rounds++];
    int64_t bits = 0, qbits = 0, kbits = 0;
    IntKey keys[] = {
        {"bits", 2, 8, &bits, false},
        {"qbits", 2, 8, &qbits, false},
        {"kbits", 2, 8, &kbits, false},
    };
    TRY(parse_int_keys(p, keys, 3, "round", &r->keep));
    if (!keys[0].seen && !(keys[1].seen && keys[2].seen))
      return err(p, at, "a filter round needs bits=B (or both qbits= and kbits=)");
    if (keys[0].seen && (keys[1].seen || keys[2].seen))
      return err(p, at, "a filter round takes bits= or qbits=/kbits=, not both");
    if (r->keep.kind == KEEP_ALL)
      return err(p, at, "a filter round needs keep=...");
    r->q_bits = (int)(keys[0].seen ? bits : qbits);
    r->k_bits = (int)(keys[0].seen ? bits : kbits);
  }
  return expect(p, TK_RBRACE);
}

typedef enum {
#define PATTERN_TERMS(X)                         \
  X(T_DENSE, "dense", dense)                     \
  X(T_CAUSAL, "causal", causal)                  \
  X(T_WINDOW, "window", window)                  \
  X(T_WINDOW2D, "window2d", window2d)            \
  X(T_GLOBAL, "global", global)                  \
  X(T_BLOCKS, "blocks", blocks)                  \
  X(T_BIGBIRD, "bigbird", bigbird)               \
  X(T_NM, "nm", nm)                              \
  X(T_PREDICT, "predict", predict)               \
  X(T_FILTER, "filter", filter)
#define X(e, s, f) e,
  PATTERN_TERMS(X)
#undef X
  T_COUNT
} TermKind;

static const struct {
  const char *name;
  size_t loc;
} terms[] = {
#define X(e, s, f) [e] = {s, offsetof(SpecLocs, f)},
    PATTERN_TERMS(X)
#undef X
};

/* term := 'dense' | 'causal' | window | window2d | global | blocks | bigbird
 *       | nm | predict | filter */
static bool parse_term(Parser *p, FeSpec *fs) {
  const Token *t = peek_tok(p);
  int k = -1;
  for (int i = 0; i < T_COUNT; i++)
    if (tok_is(t, terms[i].name))
      k = i;
  if (k < 0) {
    if (t->kind == TK_IDENT)
      return err(p, t->loc,
                 "unknown pattern '%.*s' (expected dense, causal, window, window2d, global, blocks, "
                 "bigbird, nm, predict or filter)",
                 (int)t->len, t->start);
    return describe_and_fail(p, "a pattern");
  }
  next_tok(p);
  TRY(first_time(p, (Loc *)((char *)&fs->at + terms[k].loc), t->loc, terms[k].name));
  SaSpec *s = &fs->spec;
  switch ((TermKind)k) {
  case T_DENSE: return true;
  case T_CAUSAL: s->causal = true; return true;
  case T_WINDOW: return parse_window(p, s);
  case T_WINDOW2D: return parse_window2d(p, s);
  case T_GLOBAL: return parse_global(p, s);
  case T_BLOCKS: return parse_blocks(p, s);
  case T_BIGBIRD: return parse_bigbird(p, s, t->loc);
  case T_NM: return parse_nm(p, s);
  case T_PREDICT: return parse_predict(p, s, t->loc);
  case T_FILTER: return parse_filter(p, s);
  case T_COUNT: break;
  }
  unreachable();
}

/* pattern := 'pattern' term ('and' term)* */
static bool parse_pattern(Parser *p, FeSpec *fs) {
  TRY(parse_term(p, fs));
  while (tok_is(peek_tok(p), "and")) {
    next_tok(p);
    TRY(parse_term(p, fs));
  }
  return true;
}

/* prune := 'prune' (('tokens'|'heads'|'values') '=' number)+ */
static bool parse_prune(Parser *p, FeSpec *fs) {
  static const struct {
    const char *name;
    size_t field;
  } keys[] = {
      {"tokens", offsetof(SaSpec, token_keep)},
      {"heads", offsetof(SaSpec, head_keep)},
      {"values", offsetof(SaSpec, value_keep)},
  };
  if (!at_key(p))
    return describe_and_fail(p, "tokens=, heads= or values=");
  unsigned seen = 0;
  while (at_key(p)) {
    const Token *key = next_tok(p);
    int ki = -1;
    for (int i = 0; i < 3; i++)
      if (tok_is(key, keys[i].name))
        ki = i;
    if (ki < 0)
      return err(p, key->loc, "unknown prune target '%.*s' (expected tokens, heads or values)",
                 (int)key->len, key->start);
    if (seen & (1u << ki))
      return err(p, key->loc, "prune %s given twice", keys[ki].name);
    seen |= 1u << ki;
    next_tok(p);
    char what[64];
    snprintf(what, sizeof what, "the kept fraction of %s", keys[ki].name);
    TRY(parse_ratio(p, what, (double *)((char *)&fs->spec + keys[ki].field)));
  }
  return true;
}

/* progressive := 'progressive' ('msb' '=' int | 'lsb' '=' int | 'threshold' '=' number)+ */
static bool parse_progressive(Parser *p, FeSpec *fs, Loc at) {
  SaSpec *s = &fs->spec;
  int64_t msb = 0, lsb = 0;
  IntKey keys[] = {
      {"msb", 2, 8, &msb, false, NULL, {0}},
      {"lsb", 1, 8, &lsb, false, NULL, {0}},
      {"threshold", 0, 0, NULL, false, &s->requant_threshold, {0}},
  };
  TRY(parse_int_keys(p, keys, 3, "progressive", NULL));
  if (!keys[0].seen || !keys[1].seen || !keys[2].seen)
    return err(p, at, "progressive needs msb=, lsb= and threshold=");
  if (!(s->requant_threshold > 0.0 && s->requant_threshold < 1.0))
    return err(p, keys[2].loc, "the requantization threshold is a probability in (0, 1), got %g",
               s->requant_threshold);
  s->msb_bits = (int)msb;
  s->lsb_bits = (int)lsb;
  s->has_progressive = true;
  return true;
}

/* stmt := shape | layout | precision | scale | pattern | prune | progressive */
static bool parse_stmt(Parser *p, FeSpec *fs) {
  const Token *t = next_tok(p);
  SpecLocs *at = &fs->at;
  if (tok_is(t, "shape")) {
    TRY(first_time(p, &at->shape, t->loc, "shape"));
    return parse_shape(p, fs);
  }
  if (tok_is(t, "layout")) {
    TRY(first_time(p, &at->layout, t->loc, "layout"));
    const Token *v = peek_tok(p);
    if (tok_is(v, "bhsd"))
      fs->spec.layout = LAYOUT_BHSD;
    else if (tok_is(v, "bshd"))
      fs->spec.layout = LAYOUT_BSHD;
    else
      return describe_and_fail(p, "a layout (bhsd or bshd)");
    next_tok(p);
    return true;
  }
  if (tok_is(t, "precision")) {
    TRY(first_time(p, &at->precision, t->loc, "precision"));
    return parse_precision(p, fs);
  }
  if (tok_is(t, "scale")) {
    TRY(first_time(p, &at->scale, t->loc, "scale"));
    Loc loc;
    TRY(parse_number(p, &fs->spec.scale, &loc));
    if (!(fs->spec.scale > 0.0))
      return err(p, loc, "scale must be positive, got %g", fs->spec.scale);
    return true;
  }
  if (tok_is(t, "pattern")) {
    TRY(first_time(p, &at->pattern, t->loc, "pattern"));
    return parse_pattern(p, fs);
  }
  if (tok_is(t, "prune")) {
    TRY(first_time(p, &at->prune, t->loc, "prune"));
    return parse_prune(p, fs);
  }
  if (tok_is(t, "progressive")) {
    TRY(first_time(p, &at->progressive, t->loc, "progressive"));
    return parse_progressive(p, fs, t->loc);
  }
  p->pos--;
  if (t->kind == TK_IDENT)
    return err(p, t->loc,
               "unknown statement '%.*s' (expected shape, layout, precision, scale, pattern, prune or "
               "progressive)",
               (int)t->len, t->start);
  return describe_and_fail(p, "a statement or '}'");
}

enum { MAX_NAME = 63 };

/* spec := 'attention' IDENT '{' stmt* '}' */
static bool parse_spec(Parser *p, FeSpec *fs) {
  TRY(expect_word(p, "attention"));
  const Token *name = peek_tok(p);
  if (name->kind != TK_IDENT)
    return describe_and_fail(p, "a name for the attention spec");
  if (name->len > MAX_NAME)
    return err(p, name->loc, "name too long (%zu characters; the limit is %d)", name->len, MAX_NAME);
  next_tok(p);
  SaSpec *s = &fs->spec;
  s->name = arena_strndup(p->arena, name->start, name->len);
  if (!s->name)
    return err(p, name->loc, "out of memory");
  s->file = p->diag->src ? p->diag->src->file : NULL;
  s->line = name->loc.line;
  s->col = name->loc.col;
  fs->at.name = name->loc;
  /* Defaults for everything a spec may leave out. */
  s->batch = 1;
  s->storage = s->score = s->softmax = s->accumulate = s->output = DT_FP32;
  s->token_keep = s->head_keep = s->value_keep = 1.0;
  TRY(expect(p, TK_LBRACE));
  while (peek_tok(p)->kind != TK_RBRACE) {
    if (peek_tok(p)->kind == TK_EOF)
      return err(p, peek_tok(p)->loc, "expected '}' to close attention '%s' (opened at line %d)", s->name,
                 name->loc.line);
    TRY(parse_stmt(p, fs));
  }
  next_tok(p);
  return true;
}

/* file := spec+ */
bool fe_parse(const TokenList *toks, Arena *a, Diag *d, FeFile *out) {
  Parser p = {toks, 0, a, d};
  FeSpec **tail = &out->first;
  *out = (FeFile){0};
  if (peek_tok(&p)->kind == TK_EOF)
    return err(&p, (Loc){0}, "no attention spec in the input");
  while (peek_tok(&p)->kind != TK_EOF) {
    FeSpec *fs = arena_alloc(a, sizeof *fs);
    if (!fs)
      return err(&p, peek_tok(&p)->loc, "out of memory");
    TRY(parse_spec(&p, fs));
    *tail = fs;
    tail = &fs->next;
    out->count++;
  }
  return true;
}
