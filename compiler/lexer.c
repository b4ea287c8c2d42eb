/* lexer.c: spec text to tokens.
 *
 * Tokens are identifiers, unsigned numbers and single-character punctuation;
 * `#` starts a comment to the end of the line. Signs are separate tokens so
 * that `mean-0.5` and `heads=-3` lex the same way and the parser can say
 * what is wrong with a negative value. An `x` directly after a number
 * (`56x56`) is the dimension separator. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"

static const char *const punct_spelling[TK_COUNT] = {
#define X(e, s) [e] = s,
    FE_PUNCTS(X)
#undef X
};

const char *tok_kind_name(TokenKind k) {
  switch (k) {
  case TK_EOF: return "end of file";
  case TK_IDENT: return "identifier";
  case TK_INT: return "integer";
  case TK_FLOAT: return "number";
  default: return punct_spelling[k] ? punct_spelling[k] : "?";
  }
}

/* Inputs larger than this are refused: specs are small, and it keeps every
 * offset and column in range of an int. */
enum { MAX_SOURCE = 16 * 1024 * 1024 };

typedef struct {
  const Source *src;
  size_t pos;
  int line, col;
} Cursor;

static Loc here(const Cursor *c) { return (Loc){c->line, c->col, c->pos}; }

static void advance(Cursor *c) {
  if (c->src->text[c->pos] == '\n') {
    c->line++;
    c->col = 1;
  } else {
    c->col++;
  }
  c->pos++;
}

static int peek(const Cursor *c, size_t ahead) {
  size_t p = c->pos + ahead;
  return p < c->src->len ? (unsigned char)c->src->text[p] : 0;
}

static TokenKind punct_kind(int ch) {
  for (int k = 0; k < TK_COUNT; k++)
    if (punct_spelling[k] && k != TK_TIMES && punct_spelling[k][0] == ch)
      return (TokenKind)k;
  return TK_EOF;
}

/* number := digits ('.' digits)? ([eE] [+-]? digits)?  */
static bool lex_number(Cursor *c, Token *t, Diag *d) {
  size_t start = c->pos;
  bool is_float = false;
  while (isdigit(peek(c, 0)))
    advance(c);
  if (peek(c, 0) == '.' && isdigit(peek(c, 1))) {
    is_float = true;
    advance(c);
    while (isdigit(peek(c, 0)))
      advance(c);
  }
  if ((peek(c, 0) == 'e' || peek(c, 0) == 'E') &&
      (isdigit(peek(c, 1)) || ((peek(c, 1) == '+' || peek(c, 1) == '-') && isdigit(peek(c, 2))))) {
    is_float = true;
    advance(c);
    advance(c);
    while (isdigit(peek(c, 0)))
      advance(c);
  }
  size_t len = c->pos - start;
  char buf[64];
  if (len >= sizeof buf) {
    diag_error(d, t->loc, "number too long");
    return false;
  }
  memcpy(buf, c->src->text + start, len);
  buf[len] = 0;
  t->start = c->src->text + start;
  t->len = len;
  errno = 0;
  t->fval = strtod(buf, NULL);
  if (errno == ERANGE || !isfinite(t->fval)) {
    diag_error(d, t->loc, "number out of range: %s", buf);
    return false;
  }
  if (is_float) {
    t->kind = TK_FLOAT;
    return true;
  }
  t->kind = TK_INT;
  errno = 0;
  long long v = strtoll(buf, NULL, 10);
  if (errno == ERANGE || v > INT64_C(1) << 40) {
    diag_error(d, t->loc, "integer too large: %s (the limit is 2^40)", buf);
    return false;
  }
  t->ival = v;
  return true;
}

bool fe_lex(const Source *src, Arena *a, Diag *d, TokenList *out) {
  if (src->len > MAX_SOURCE) {
    diag_error(d, (Loc){0}, "input too large (%zu bytes; the limit is %d)", src->len, MAX_SOURCE);
    return false;
  }
  size_t cap = 256, n = 0;
  Token *toks = arena_alloc(a, cap * sizeof(Token));
  if (!toks)
    goto oom;
  Cursor c = {src, 0, 1, 1};
  for (;;) {
    int ch = peek(&c, 0);
    if (c.pos >= src->len)
      ch = 0;
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
      advance(&c);
      continue;
    }
    if (ch == '#') {
      while (c.pos < src->len && src->text[c.pos] != '\n')
        advance(&c);
      continue;
    }
    if (n + 2 > cap) { /* room for a number and a glued x */
      Token *grown = arena_alloc(a, 2 * cap * sizeof(Token));
      if (!grown)
        goto oom;
      memcpy(grown, toks, n * sizeof(Token));
      toks = grown;
      cap *= 2;
    }
    Token *t = &toks[n];
    *t = (Token){.loc = here(&c), .start = src->text + c.pos};
    if (c.pos >= src->len) {
      t->kind = TK_EOF;
      n++;
      break;
    }
    if (isdigit(ch)) {
      if (!lex_number(&c, t, d))
        return false;
      n++;
      /* `56x56`: an x glued to a number separates dimensions. */
      if (peek(&c, 0) == 'x' && isdigit(peek(&c, 1))) {
        toks[n++] = (Token){.kind = TK_TIMES, .loc = here(&c), .start = src->text + c.pos, .len = 1};
        advance(&c);
      }
      continue;
    }
    if (isalpha(ch) || ch == '_') {
      while (isalnum(peek(&c, 0)) || peek(&c, 0) == '_')
        advance(&c);
      t->kind = TK_IDENT;
      t->len = (size_t)(src->text + c.pos - t->start);
      n++;
      continue;
    }
    TokenKind k = punct_kind(ch);
    if (k == TK_EOF) {
      if (ch >= 0x20 && ch < 0x7f)
        diag_error(d, t->loc, "unexpected character '%c'", ch);
      else
        diag_error(d, t->loc, "unexpected byte 0x%02x", ch);
      return false;
    }
    t->kind = k;
    t->len = 1;
    advance(&c);
    n++;
  }
  out->toks = toks;
  out->n = n;
  return true;
oom:
  diag_error(d, (Loc){0}, "out of memory");
  return false;
}

void fe_print_tokens(FILE *out, const TokenList *toks) {
  for (size_t i = 0; i < toks->n; i++) {
    const Token *t = &toks->toks[i];
    fprintf(out, "%d:%d %s", t->loc.line, t->loc.col, tok_kind_name(t->kind));
    if (t->kind == TK_IDENT || t->kind == TK_INT || t->kind == TK_FLOAT)
      fprintf(out, " '%.*s'", (int)t->len, t->start);
    fputc('\n', out);
  }
}
