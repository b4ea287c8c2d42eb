/* diag.c: user errors as `file:line:col: error: message`, then the source
 * line and a caret under the column, the way C compilers print them. */
#include <stdlib.h>
#include <string.h>

#include "compiler.h"

_Noreturn void fe_unreachable_at(const char *file, int line) {
  fprintf(stderr, "internal error: unreachable code reached at %s:%d\n", file, line);
  abort();
}

/* Prints the source line holding `offset`, with non-printing bytes shown as
 * '?' so binary input cannot garble the terminal, then a caret. */
static void print_caret(FILE *out, const Source *src, Loc loc) {
  size_t start = loc.offset > src->len ? src->len : loc.offset;
  while (start > 0 && src->text[start - 1] != '\n')
    start--;
  size_t end = start;
  while (end < src->len && src->text[end] != '\n' && end - start < 200)
    end++;
  fputs("  ", out);
  for (size_t i = start; i < end; i++) {
    unsigned char c = (unsigned char)src->text[i];
    fputc(c == '\t' || (c >= 0x20 && c < 0x7f) ? c : '?', out);
  }
  fputs("\n  ", out);
  for (size_t i = start; i < loc.offset && i < end; i++)
    fputc(src->text[i] == '\t' ? '\t' : ' ', out);
  fputs("^\n", out);
}

void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap) {
  d->errors++;
  if (!d->out)
    return;
  const char *file = d->src && d->src->file ? d->src->file : "<input>";
  if (loc.line > 0)
    fprintf(d->out, "%s:%d:%d: error: ", file, loc.line, loc.col);
  else
    fprintf(d->out, "%s: error: ", file);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  if (loc.line > 0 && d->src)
    print_caret(d->out, d->src, loc);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(d, loc, fmt, ap);
  va_end(ap);
}
