/* compiler.h: the front end's internal header, sectioned by file.
 *
 * The front end turns spec text into checked SaSpec values:
 *   lexer.c (text -> tokens) -> parser.c (tokens -> FeSpec) -> sema.c (checks).
 * Everything here is internal to libsattn; the public API is include/sattn/. */
#ifndef SATTN_COMPILER_H
#define SATTN_COMPILER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sattn/spec.h"

/* Internal bugs (never user errors): name the place and stop. */
_Noreturn void fe_unreachable_at(const char *file, int line);
#define unreachable() fe_unreachable_at(__FILE__, __LINE__)

/* ---- arena.c: bump allocation; everything a compile makes dies with it. ---- */

typedef struct ArenaChunk ArenaChunk;
typedef struct {
  ArenaChunk *head;
  /* Fault injection: when > 0, the fail_at-th allocation fails (tests). */
  long fail_at, count;
  bool failed; /* an allocation has failed: errors after it may be its echoes */
} Arena;

/* Zero-initialized memory, or NULL when out of memory. */
void *arena_alloc(Arena *a, size_t size);
char *arena_strndup(Arena *a, const char *s, size_t n);
void arena_free(Arena *a);

/* ---- diag.c: user diagnostics in file:line:col form with a caret. ---- */

typedef struct {
  const char *file; /* display name */
  const char *text; /* whole source, NUL-terminated */
  size_t len;
} Source;

typedef struct {
  int line, col; /* 1-based; line 0 means "no location" */
  size_t offset;
} Loc;

/* Where a message goes instead of `out` when set: the 1-based position (0
 * without one), the formatted message and the source line (or NULL). */
typedef void (*DiagSink)(void *ud, const char *file, int line, int col, const char *msg, const char *src_line);

typedef struct Diag {
  const Source *src;
  FILE *out; /* where messages go; NULL discards them */
  int errors;
  DiagSink sink;
  void *sink_ud;
} Diag;

void diag_error(Diag *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap);
/* The printed form of one message: `file:line:col: severity: msg`, then the
 * source line and a caret under col when src_line is given. */
void diag_print(FILE *out, const char *file, int line, int col, const char *severity, const char *msg,
                const char *src_line);

/* ---- lexer.c ---- */

/* Punctuation tokens. X(enum, spelling) */
#define FE_PUNCTS(X) \
  X(TK_LBRACE, "{")  \
  X(TK_RBRACE, "}")  \
  X(TK_LBRACKET, "[") \
  X(TK_RBRACKET, "]") \
  X(TK_EQ, "=")      \
  X(TK_COLON, ":")   \
  X(TK_COMMA, ",")   \
  X(TK_PLUS, "+")    \
  X(TK_MINUS, "-")   \
  X(TK_PERCENT, "%") \
  X(TK_QUESTION, "?") \
  X(TK_TIMES, "x")

typedef enum {
  TK_EOF,
  TK_IDENT,
  TK_INT,
  TK_FLOAT,
#define X(e, s) e,
  FE_PUNCTS(X)
#undef X
  TK_COUNT
} TokenKind;

typedef struct {
  TokenKind kind;
  Loc loc;
  const char *start; /* into the source text */
  size_t len;
  int64_t ival; /* TK_INT */
  double fval;  /* TK_INT and TK_FLOAT */
} Token;

typedef struct {
  Token *toks;
  size_t n;
} TokenList;

const char *tok_kind_name(TokenKind k);
/* Tokenizes src into arena memory. Returns false after reporting an error. */
bool fe_lex(const Source *src, Arena *a, Diag *d, TokenList *out);
void fe_print_tokens(FILE *out, const TokenList *toks);

/* ---- parser.c ---- */

/* Where each part of a spec was written, for checks that relate parts. */
typedef struct {
  Loc name, shape, heads, kv_heads, seq, batch, head_dim;
  Loc pattern, dense, causal, window, window2d, global, blocks, bigbird, nm, predict, filter;
  Loc layout, prune, progressive, precision, scale;
} SpecLocs;

typedef struct FeSpec {
  SaSpec spec;
  SpecLocs at;
  struct FeSpec *next;
} FeSpec;

typedef struct {
  FeSpec *first;
  int count;
} FeFile;

/* Parses one file of specs. Returns false after reporting an error. */
bool fe_parse(const TokenList *toks, Arena *a, Diag *d, FeFile *out);

/* ---- sema.c ---- */

/* Checks relations between parts of each spec and across specs, and fills
 * derived values (defaults). Reports every error found; false if any. */
bool fe_check(FeFile *f, Diag *d);
/* The checks of one spec alone (after a change of its shape). */
bool fe_check_spec(FeSpec *fs, Diag *d);

/* ---- ast.c ---- */
/* Prints every spec, or only the one called `only` when it is not NULL. */
void fe_print_ast(FILE *out, const FeFile *f, const char *only);

/* ---- frontend.c: the whole front end in one call. ---- */
typedef struct {
  Arena arena;
  Source src;
  TokenList toks;
  FeFile file;
} FrontEnd;

typedef enum { FE_STOP_TOKENS, FE_STOP_PARSE, FE_STOP_CHECK } FeStop;
/* Runs the front end up to `stop`. text must stay alive as long as fe. */
bool fe_run(FrontEnd *fe, const char *file, const char *text, size_t len, FeStop stop,
            Diag *d);
void fe_free(FrontEnd *fe);

#endif
