/* frontend.c: the front end's stages in one straight line. */
#include <string.h>

#include "compiler.h"

bool fe_run(FrontEnd *fe, const char *file, const char *text, size_t len, FeStop stop, Diag *d) {
  fe->src = (Source){file, text, len};
  d->src = &fe->src;
  if (!fe_lex(&fe->src, &fe->arena, d, &fe->toks))
    return false;
  if (stop == FE_STOP_TOKENS)
    return true;
  if (!fe_parse(&fe->toks, &fe->arena, d, &fe->file))
    return false;
  if (stop == FE_STOP_PARSE)
    return true;
  return fe_check(&fe->file, d);
}

void fe_free(FrontEnd *fe) {
  arena_free(&fe->arena);
  memset(fe, 0, sizeof *fe);
}
