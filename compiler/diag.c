/* diag.c: user errors as `file:line:col: error: message`, then the source
 * line and a caret under the column, the way C compilers print them. */
#include <stdlib.h>
#include <string.h>

#include "compiler.h"

_Noreturn void fe_unreachable_at(const char *file, int line) {
  fprintf(stderr, "internal error: unreachable code reached at %s:%d\n", file, line);
  abort();
}

/* The source line holding `offset` into buf (at most 200 bytes of it), with
 * non-printing bytes shown as '?' so binary input cannot garble a terminal. */
static void source_line(const Source *src, Loc loc, char *buf, size_t cap) {
  size_t start = loc.offset > src->len ? src->len : loc.offset;
  while (start > 0 && src->text[start - 1] != '\n')
    start--;
  size_t n = 0;
  for (size_t i = start; i < src->len && src->text[i] != '\n' && n + 1 < cap; i++) {
    unsigned char c = (unsigned char)src->text[i];
    buf[n++] = c == '\t' || (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  buf[n] = 0;
}

void diag_print(FILE *out, const char *file, int line, int col, const char *severity, const char *msg,
                const char *src_line) {
  if (line > 0)
    fprintf(out, "%s:%d:%d: %s: %s\n", file, line, col, severity, msg);
  else
    fprintf(out, "%s: %s: %s\n", file, severity, msg);
  if (line <= 0 || !src_line)
    return;
  fprintf(out, "  %s\n  ", src_line);
  for (int i = 0; i + 1 < col && src_line[i]; i++)
    fputc(src_line[i] == '\t' ? '\t' : ' ', out);
  fputs("^\n", out);
}

void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap) {
  d->errors++;
  if (!d->out && !d->sink)
    return;
  const char *file = d->src && d->src->file ? d->src->file : "<input>";
  char msg[1024], line[201];
  vsnprintf(msg, sizeof msg, fmt, ap);
  bool located = loc.line > 0 && d->src;
  if (located)
    source_line(d->src, loc, line, sizeof line);
  if (d->sink)
    d->sink(d->sink_ud, file, loc.line, loc.col, msg, located ? line : NULL);
  else
    diag_print(d->out, file, loc.line, loc.col, "error", msg, located ? line : NULL);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(d, loc, fmt, ap);
  va_end(ap);
}
